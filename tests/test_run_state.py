"""``RunState``: the one owner of the run's clock and stop decision."""

import re
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


def test_only_the_run_state_sets_should_stop_or_reopens_an_interval():
    src = Path(__file__).parent.parent / "src" / "read_lightning"
    for path in src.rglob("*.py"):
        text = path.read_text()
        if path.name != "run_state.py":
            assert not re.search(r"should_stop\s*=", text), path
            assert "reopen_interval_end(" not in text, path
