"""``RunState``: the one owner of the run's clock and stop decision."""

import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from read_lightning.training.run_state import RunState


class Strategy:
    """A one-process strategy that records the cross-rank decisions it was asked for."""

    def __init__(self) -> None:
        self.decisions: list[bool] = []

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        assert all is False  # any rank's reason stops every rank
        self.decisions.append(decision)
        return decision


def trainer(spent: bool = False) -> SimpleNamespace:
    return SimpleNamespace(strategy=Strategy(), datamodule=SimpleNamespace(budget_exhausted=spent), should_stop=False,
                           callbacks=[])


def test_the_budget_or_a_request_stops_the_run_decided_once_per_interval():
    state, t = RunState(), trainer()
    assert not state.decide(t) and not t.should_stop
    state.request_stop("a reason given after the decision")
    assert not state.decide(t) and t.strategy.decisions == [False]  # decided once for this interval
    state.on_train_epoch_start(t, None)
    assert state.decide(t) and t.should_stop  # the request is honoured at the next decision
    spent = trainer(spent=True)
    assert RunState().decide(spent) and spent.should_stop


def test_of_attaches_one_run_state_to_the_trainer():
    t = trainer()
    state = RunState.of(t)
    assert RunState.of(t) is state and t.callbacks == [state]


def test_a_checkpoint_from_before_the_run_state_keeps_its_wall_clock():
    state = RunState()
    state.on_load_checkpoint(None, None, {"wall_clock_seconds": 30.0, "callbacks": {}})
    assert state.elapsed() >= 30.0
    with pytest.raises(ValueError, match="wall_clock_seconds"):
        state.load_state_dict({"wall_clock_seconds": -1.0})


def test_phase_seconds_accumulate_and_carry_over_a_resume():
    first = RunState()
    for _ in range(2):
        with first.timed("generation"):
            time.sleep(0.02)
    assert first.clock_running and 0.04 <= first.seconds("generation") <= first.elapsed()
    assert first.seconds("probes") == 0.0 and first.fraction("generation") > 0
    saved = first.state_dict()
    assert saved["phase_seconds"] == {"generation": first.seconds("generation")}
    resumed = RunState()
    resumed.load_state_dict(saved)
    with resumed.timed("generation"):
        time.sleep(0.02)
    assert resumed.seconds("generation") >= saved["phase_seconds"]["generation"] + 0.02
    split = resumed.time_split(10.0)
    assert list(split["seconds"]) == ["generation", "training_and_other"]
    assert split["seconds"]["training_and_other"] == pytest.approx(10.0 - resumed.seconds("generation"), abs=0.01)
    with pytest.raises(ValueError, match=r"phase_seconds\.probes"):
        RunState().load_state_dict({"wall_clock_seconds": 1.0, "phase_seconds": {"probes": -1.0}})


def test_a_checkpoint_from_before_the_phase_timers_keeps_each_parts_seconds():
    # Each part kept its own seconds then: the data module's generation_seconds, each evaluation
    # callback's seconds (found by its phase); none of them reads them any more.
    probe = SimpleNamespace(phase="probes", state_key="CapabilityProbeCallback")
    state = RunState()
    t = SimpleNamespace(datamodule=SimpleNamespace(), callbacks=[probe, state])
    checkpoint = {"callbacks": {"CapabilityProbeCallback": {"seconds": 4.0}, "RunState": {"wall_clock_seconds": 9.0}},
                  "SimpleNamespace": {"generation_seconds": 3.0}}
    state.on_load_checkpoint(t, None, checkpoint)
    state.load_state_dict(checkpoint["callbacks"]["RunState"])
    assert (state.seconds("generation"), state.seconds("probes")) == (3.0, 4.0)
    checkpoint["callbacks"]["RunState"]["phase_seconds"] = {"generation": 1.0}  # saved by this version
    state.on_load_checkpoint(t, None, checkpoint)
    state.load_state_dict(checkpoint["callbacks"]["RunState"])
    assert (state.seconds("generation"), state.seconds("probes")) == (1.0, 0.0)


def test_only_the_run_state_sets_should_stop_or_reopens_an_interval():
    src = Path(__file__).parent.parent / "src" / "read_lightning"
    for path in src.rglob("*.py"):
        text = path.read_text()
        if path.name != "run_state.py":
            assert not re.search(r"should_stop\s*=", text), path
            assert "reopen_interval_end(" not in text, path


def test_a_second_fit_of_the_same_trainer_keeps_the_first_fits_time():
    # The phases add up over both fits, so the wall clock must too (or the phases' shares would
    # pass 100%).
    state = RunState()
    with state.timed("generation"):
        time.sleep(0.03)
    state.teardown(None, None, "fit")
    assert not state.clock_running
    with state.timed("generation"):
        time.sleep(0.03)
    assert state.elapsed() >= state.seconds("generation") >= 0.06
    assert state.fraction("generation") <= 1.0


def test_the_commits_a_run_was_trained_at_carry_over_a_resume(monkeypatch):
    import read_lightning.training.run_state as run_state

    monkeypatch.setattr(run_state, "code_version", lambda: {"package": "read-lightning 0", "commit": "aaa"})
    first = RunState()
    first.setup(trainer(), None, "fit")
    first.setup(trainer(), None, "fit")  # a second fit of the same trainer is the same process
    assert first.commits() == ["aaa"]
    saved = first.state_dict()
    assert saved["commits"] == ["aaa"]

    monkeypatch.setattr(run_state, "code_version", lambda: {"package": "read-lightning 0", "commit": "bbb"})
    resumed = RunState()
    resumed.setup(trainer(), None, "fit")  # Lightning sets up the callbacks before it restores them
    resumed.load_state_dict(saved)
    assert resumed.commits() == ["aaa", "bbb"]
    again = RunState()
    again.setup(trainer(), None, "fit")
    again.load_state_dict({**saved, "commits": ["bbb"]})
    assert again.commits() == ["bbb"]  # a resume at the same commit is not listed twice

    older = RunState()
    older.setup(trainer(), None, "fit")
    older.load_state_dict({"wall_clock_seconds": 1.0})
    assert older.commits() == ["unknown (a checkpoint from before commits were recorded)", "bbb"]
    with pytest.raises(ValueError, match="commits"):
        RunState().load_state_dict({"wall_clock_seconds": 1.0, "commits": "aaa"})
