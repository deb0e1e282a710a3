"""Progress of the long phases, and the trainer defaults without their noise."""

from __future__ import annotations

import logging
import time

import lightning as L
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint, ModelSummary, ProgressBar
from lightning.pytorch.loggers import TensorBoardLogger

from read_lightning.core import progress
from read_lightning.training import progress as lightning_progress


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture()
def log_lines():
    handler = Lines()
    progress.log.addHandler(handler)
    yield handler.lines
    progress.log.removeHandler(handler)


def test_without_a_display_a_phase_logs_phase_count_and_rate_while_it_runs_and_when_it_ends(log_lines):
    with progress.phase("teacher references", total=4, unit="answers", heartbeat_s=0.05) as p:
        p.advance(1, tokens=30)
        time.sleep(0.2)  # one slow batch: the heartbeat still speaks
        p.advance(3, tokens=90)
    assert len(log_lines) >= 3
    assert log_lines[0].startswith("teacher references: 1/4 answers") and "answers/s" in log_lines[0]
    assert "tok/s" in log_lines[0]
    assert log_lines[-1].startswith("teacher references: done, 4/4 answers")


def test_a_failed_phase_logs_no_done_line(log_lines):
    with pytest.raises(RuntimeError), progress.phase("probes", total=3, heartbeat_s=60):
        raise RuntimeError("boom")
    assert log_lines == []


def test_lower_layers_advance_the_innermost_phase_unless_it_counts_itself():
    progress.advance(5)  # outside any phase: nothing, no error
    with progress.phase("outer", total=10, heartbeat_s=60) as outer:
        progress.advance(2, tokens=7)
        with progress.phase("inner", total=100, heartbeat_s=60, explicit=True) as inner:
            progress.advance(50)  # a teacher's batch inside a phase that counts budget tokens itself
            assert progress.current() is inner and inner.done == 0
            inner.advance(40)
        progress.advance(20)  # clamped at the total
        assert (outer.done, outer.tokens, inner.done) == (10, 7, 40)
    assert progress.current() is None
    with progress.phase("answers", total=8, heartbeat_s=60) as uncounted:
        pass  # a teacher backend that counts nothing: when the block returns, the 8 are done
    assert uncounted.done == 8
    with progress.phase("budget", total=100, heartbeat_s=60, explicit=True) as budget:
        budget.advance(96)  # an explicit phase says what it counted, not its total
    assert budget.done == 96


class Recorder:
    def __init__(self):
        self.updates: list[tuple[int, int | None]] = []
        self.closed = False

    def update(self, phase):
        self.updates.append((phase.done, phase.total))

    def close(self, phase):
        self.closed = True


def test_a_display_draws_every_advance_and_is_closed(log_lines):
    shown = Recorder()
    with progress.phase("task evaluation", total=3, display=shown, heartbeat_s=0.01) as p:
        for _ in range(3):
            p.advance()
        time.sleep(0.05)
    assert shown.updates == [(0, 3), (1, 3), (2, 3), (3, 3)] and shown.closed
    assert log_lines == []  # a bar on the terminal, no log lines besides it


def test_bad_phase_arguments_are_refused():
    with pytest.raises(ValueError, match="total must be >= 0 or None, got -1"):
        with progress.phase("x", total=-1):
            pass
    with pytest.raises(ValueError, match="heartbeat_s must be > 0, got 0"):
        with progress.phase("x", heartbeat_s=0):
            pass


def test_teacher_generation_advances_once_per_teacher_call_with_its_tokens(tiny_tokenizer, monkeypatch):
    from test_data import CountingTeacher, consume_interval, make_dm

    calls = []
    original = progress.Phase.advance

    def record(self, n=1, *, tokens=0, info=None):
        calls.append((self.name, n, tokens, info))
        original(self, n, tokens=tokens, info=info)

    class Calls(CountingTeacher):
        calls = 0

        def generate(self, prompts, *, max_new_tokens=None):
            self.calls += 1
            return super().generate(prompts, max_new_tokens=max_new_tokens)

    monkeypatch.setattr(progress.Phase, "advance", record)
    teacher = Calls(num_tokens=6)
    dm = make_dm(tiny_tokenizer, teacher=teacher, generation_batch_size=4)
    consume_interval(dm, 0)
    assert calls and all(name == "interval 0: teacher generation" for name, *_ in calls)
    assert len(calls) == teacher.calls > 1
    assert sum(tokens for _, _, tokens, _ in calls) == 6 * len(teacher.prompts)
    assert calls[-1][3] == f"{len(teacher.prompts)} answers"


def test_the_trainer_progress_bar_draws_phases_only_on_a_terminal(monkeypatch, tmp_path):
    from lightning.pytorch.callbacks import TQDMProgressBar

    trainer = L.Trainer(callbacks=[TQDMProgressBar()], logger=False, default_root_dir=tmp_path)
    monkeypatch.setattr("sys.stdout.isatty", lambda: False, raising=False)
    assert lightning_progress.progress_display(trainer) is None
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    assert isinstance(lightning_progress.progress_display(trainer), lightning_progress._TqdmDisplay)
    quiet = L.Trainer(enable_progress_bar=False, logger=False, default_root_dir=tmp_path)
    assert lightning_progress.progress_display(quiet) is None


def test_the_default_callbacks_keep_one_checkpoint_and_drop_the_noise(tmp_path):
    added = lightning_progress.quiet_default_callbacks({}, [])
    (checkpoint,) = [c for c in added if isinstance(c, ModelCheckpoint)]
    assert checkpoint.save_last and checkpoint.save_top_k == 0
    assert any(isinstance(c, ProgressBar) for c in added) and any(isinstance(c, ModelSummary) for c in added)
    # what the recipe or the flags already decide is left alone
    mine = ModelCheckpoint(save_top_k=-1)
    assert lightning_progress.quiet_default_callbacks(
        {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}, []) == []
    assert not any(isinstance(c, ModelCheckpoint) for c in lightning_progress.quiet_default_callbacks({}, [mine]))

    bar = next(c for c in added if isinstance(c, ProgressBar))
    trainer = L.Trainer(callbacks=[bar], logger=TensorBoardLogger(tmp_path), default_root_dir=tmp_path)
    assert "v_num" not in bar.get_metrics(trainer, L.LightningModule())


def test_the_model_summary_has_no_flops_when_none_were_counted(capsys):
    columns = [(" ", ["0"]), ("Name", ["student"]), ("Type", ["LlamaForCausalLM"]), ("Params", ["135 M"]),
               ("Mode", ["train"]), ("FLOPs", ["0"])]
    lightning_progress._RunModelSummary.summarize(columns, 135_000_000, 100_000_000, 540.0,
                                                  {"train": 10, "eval": 2}, total_flops=0)
    out = capsys.readouterr().out
    assert "LlamaForCausalLM" in out and "Total params" in out and "135 M" in out
    assert "FLOPs" not in out and "Flops" not in out
