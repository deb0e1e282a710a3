"""``RunState``: the one owner of what belongs to a run rather than to one of its parts.

It owns the run's clock and the seconds of each phase of it, the stop decision, the reopening of
an interval's end on a resume, and the run's files (``ledger.json``, ``summary.json``). The
module, the data module and the callbacks ask it; none of them keeps a clock or a timer, sets
``trainer.should_stop`` or writes those files itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only

from read_lightning.core.checks import check_number
from read_lightning.core.jsonl import write_json_atomic
from read_lightning.core.provenance import code_version

if TYPE_CHECKING:
    from read_lightning.evaluation.tasks import TaskCard

__all__ = ["PHASES", "RunState", "TaskEvaluation", "reopen_interval_end", "time_shares", "timed"]

log = logging.getLogger(__name__)

# The phases the package's parts time, in the order summary.json lists them: the teacher's
# generation (the data module), the capability probes and the task evaluation (their callbacks).
# The rest of the wall clock is training (steps, checkpoints, model loading).
PHASES = ("generation", "probes", "task_evaluation")


class TaskEvaluation(Protocol):
    """What the run's task evaluation gives the other parts (``TaskEvaluationCallback`` is one):
    the task's card, and the task utility measured at the end of an interval."""

    card: TaskCard

    def utility_at(self, epoch: int) -> float | None:
        """The task utility measured at the end of interval ``epoch``; None when it was not
        measured then (evaluations every few intervals, or before the first)."""


class RunState(Callback):
    """The run's clock, its stop decision, its interval lifecycle on resume and its output files.

    Not configured by a user: the parts that need it (``DistillationModule`` and the three
    callbacks) attach it in their ``setup`` with :meth:`of`, so a user's own Trainer with only
    ``BanditAllocationCallback`` gets one too. Being a callback, it is checkpointed with the run.

    - **Clock**: seconds spent in ``fit``, summed over the processes of a resumed run (each
      earlier process up to its last checkpoint). It starts when first asked in a ``fit``:
      Lightning runs the callbacks' ``on_fit_start`` (the baseline probe, the teacher's
      references) before the module's, and each of them starts it (:meth:`start_clock`).
    - **Phases**: seconds spent in each phase of the run (:data:`PHASES`: generation, probes, task
      evaluation), summed over its processes as the clock is. A part times its work with
      ``with state.timed("probes"): ...``; the fractions the callbacks log and ``summary.json``'s
      ``time`` section are read from here (:meth:`seconds`, :meth:`fraction`).
    - **Stop**: the run stops after an interval once the data module's budget is spent or a part
      asked for it (:meth:`request_stop`). :meth:`decide` decides once per interval end (and once
      at fit start), agrees across ranks through the strategy (any rank's reason stops all, as
      ``EarlyStopping`` does) and sets ``trainer.should_stop``.
    - **Resume**: a checkpoint taken on an interval's last batch resumes into that interval's end
      (:func:`reopen_interval_end`).
    - **Task**: the run's task evaluation attaches itself (:meth:`attach_task`); the bandit asks
      :attr:`task` for the task's card and the utility of each interval, not the callback list.
    - **Files**: :meth:`write_outputs` writes ``ledger.json`` and ``summary.json`` once per fit,
      after the module has saved the student.
    - **Code**: the package version and the commits the run was trained at, one per process of a
      resumed run where they differ (``summary.json``'s ``code``; see :mod:`~read_lightning.core.provenance`).
    """

    def __init__(self) -> None:
        self._before = 0.0  # wall clock of earlier fits of this run: this trainer's, or the checkpoint's
        self._started: float | None = None
        self._phases: dict[str, float] = {}  # seconds per phase, this process's added to the checkpoint's
        self._requests: list[str] = []
        self._decision: bool | None = None
        self._outputs_written = False
        self._task: TaskEvaluation | None = None
        self._code: dict[str, Any] | None = None  # this process's, read at setup
        self._commits: list[str | None] = []  # of the run's processes, in order, see commits()

    @classmethod
    def of(cls, trainer: L.Trainer) -> RunState:
        """The trainer's run state, attached to its callbacks on the first ask."""
        for callback in trainer.callbacks:
            if isinstance(callback, RunState):
                return callback
        state = cls()
        trainer.callbacks.append(state)
        return state

    # ----------------------------------------------------------------- task
    def attach_task(self, evaluation: TaskEvaluation) -> None:
        """Make ``evaluation`` the run's task evaluation, the one the other parts ask for the task's
        card and utility. Attached in ``setup``, which runs in the callbacks' order: the first
        attached stays the run's (a second is evaluated and reported, not used by the bandit)."""
        if self._task is None:
            self._task = evaluation

    @property
    def task(self) -> TaskEvaluation | None:
        """The run's task evaluation; None when the run has none."""
        return self._task

    # ----------------------------------------------------------------- clock
    def start_clock(self) -> None:
        """Start this process's clock unless a part already did in this ``fit``."""
        if self._started is None:
            self._started = time.perf_counter()

    @property
    def clock_running(self) -> bool:
        return self._started is not None

    def elapsed(self) -> float:
        """Seconds spent in ``fit`` by this run, over all its processes."""
        self.start_clock()
        return self._before + time.perf_counter() - self._started

    # ----------------------------------------------------------------- phases
    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the seconds spent in the ``with`` block to ``phase`` (and start the clock, so the
        phase is part of the run's wall clock)."""
        self.start_clock()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._phases[phase] = self._phases.get(phase, 0.0) + time.perf_counter() - start

    def seconds(self, phase: str) -> float:
        """Seconds this run spent in ``phase``, over all its processes (0 when never timed)."""
        return self._phases.get(phase, 0.0)

    def fraction(self, phase: str) -> float:
        """The share of the run's wall clock spent in ``phase``. Both sum over the same processes,
        so it stays a fraction after a resume."""
        total = self.elapsed()
        return self.seconds(phase) / total if total > 0 else 0.0

    def time_split(self, wall: float) -> dict[str, Any]:
        """Where ``wall`` seconds of the run went: :func:`time_shares` of the phases timed in this
        run (over all its processes), the package's phases first, in :data:`PHASES` order."""
        order = [p for p in PHASES if p in self._phases] + [p for p in self._phases if p not in PHASES]
        return time_shares(wall, {p: self._phases[p] for p in order})

    # ----------------------------------------------------------------- stop
    def request_stop(self, reason: str) -> None:
        """Ask the run to stop; honoured by the next :meth:`decide`."""
        self._requests.append(reason)

    def decide(self, trainer: L.Trainer) -> bool:
        """Whether the run stops now: the budget is spent or a part asked. A collective: call it on
        every rank. Decided once per interval end; later calls in the same interval get the answer."""
        if self._decision is None:
            reasons = list(self._requests)
            if getattr(getattr(trainer, "datamodule", None), "budget_exhausted", False):
                reasons.append("the token budget is spent")
            self._requests = []
            self._decision = bool(trainer.strategy.reduce_boolean_decision(bool(reasons), all=False))
            if self._decision:
                log.info("stopping: %s", "; ".join(reasons) or "another rank asked")
                trainer.should_stop = True
        return self._decision

    # ----------------------------------------------------------------- files
    def write_outputs(self, trainer: L.Trainer, save_student: Callable[[str | None], Any] | None = None) -> None:
        """Save the student (``save_student(log_dir)``, the module's), then ``ledger.json`` and
        ``summary.json``; once per fit. Every rank calls it: the log dir and the student's state
        are collectives under several processes; rank 0 alone writes."""
        if self._outputs_written:
            return
        log_dir = trainer.log_dir
        student_dir = save_student(log_dir) if save_student is not None else None
        self._write_files(trainer, log_dir, student_dir)
        self._outputs_written = True

    @rank_zero_only
    def _write_files(self, trainer: L.Trainer, log_dir: str | None, student_dir: Any) -> None:
        if not log_dir:
            return
        dm = getattr(trainer, "datamodule", None)
        ledger = getattr(dm, "ledger", None)
        summary: dict[str, Any] = {
            "wall_clock_seconds": round(self.elapsed(), 2),
            "tokens_seen": getattr(trainer.lightning_module, "tokens_seen", None),
            "student": str(student_dir),
        }
        if ledger is not None:
            write_json_atomic(Path(log_dir) / "ledger.json", ledger.summary())
            summary["ledger"] = ledger.summary()
        # Callbacks that measure something (probe cost, decisions) report it here, each under
        # its role (read_lightning.core.run_summary); a user's own callback under its class name.
        for cb in trainer.callbacks:
            if callable(getattr(cb, "summary", None)):
                summary[getattr(cb, "summary_key", None) or type(cb).__name__] = cb.summary()
        summary["time"] = self.time_split(summary["wall_clock_seconds"])
        summary["code"] = {"package": (self._code or code_version())["package"], "commits": self.commits()}
        write_json_atomic(Path(log_dir) / "summary.json", summary)
        log.info("student saved to %s; run summary in %s", student_dir, Path(log_dir) / "summary.json")

    # ----------------------------------------------------------------- hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._requests, self._decision, self._outputs_written = [], None, False
        if self._code is None:
            self._code = code_version()
            self._commits = _followed_by(self._commits, self._code["commit"])

    def commits(self) -> list[str | None]:
        """The commits this run was trained at, one per process (None: not from a git checkout),
        a process at the same commit as the one before it not repeated."""
        return list(self._commits)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._decision = None  # a new interval: its end is decided anew

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.decide(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # A later fit of the same trainer continues this run (its phases keep adding up), so its
        # clock starts where this one stopped.
        if self._started is not None:
            self._before = self.elapsed()
            self._started = None

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"wall_clock_seconds": self.elapsed(), "phase_seconds": dict(self._phases), "commits": self.commits()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        seconds = state.get("wall_clock_seconds", 0.0)
        check_number("checkpoint run state: field 'wall_clock_seconds'", seconds, low=0.0)
        self._before = float(seconds)
        if "phase_seconds" in state:  # else kept from on_load_checkpoint (an older checkpoint)
            self._phases = _checked_phases(state["phase_seconds"])
        earlier = state.get("commits", ["unknown (a checkpoint from before commits were recorded)"])
        if not isinstance(earlier, list) or not all(c is None or isinstance(c, str) for c in earlier):
            raise ValueError(f"checkpoint run state: field 'commits' must be a list of commits, got {earlier!r}")
        # The checkpoint's processes came before this one (setup, which read this one's, runs first).
        self._commits = list(earlier) if self._code is None else _followed_by(earlier, self._code["commit"])

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        reopen_interval_end(checkpoint)
        own = checkpoint.get("callbacks", {}).get(self.state_key)
        if own is None:
            # A checkpoint from before the run state: the module kept the clock then.
            self._before = float(checkpoint.get("wall_clock_seconds", 0.0))
        if not isinstance(own, dict) or "phase_seconds" not in own:
            self._phases = _phases_of_older_checkpoint(trainer, checkpoint)


def _followed_by(commits: list[str | None], commit: str | None) -> list[str | None]:
    """``commits`` and then ``commit``, unless it is the last one already (a process at the same
    commit as the one before it)."""
    return list(commits) if commits and commits[-1] == commit else [*commits, commit]


def timed(trainer: L.Trainer | None, phase: str) -> contextlib.AbstractContextManager[None]:
    """``RunState.of(trainer).timed(phase)``; untimed outside a Trainer (a part used on its own)."""
    return RunState.of(trainer).timed(phase) if trainer is not None else contextlib.nullcontext()


def _checked_phases(phases: Any) -> dict[str, float]:
    if not isinstance(phases, dict):
        raise ValueError(f"checkpoint run state: field 'phase_seconds' must be a mapping, got {phases!r}")
    for name, seconds in phases.items():
        check_number(f"checkpoint run state: field 'phase_seconds.{name}'", seconds, low=0.0)
    return {str(name): float(seconds) for name, seconds in phases.items()}


def _phases_of_older_checkpoint(trainer: L.Trainer, checkpoint: dict[str, Any]) -> dict[str, float]:
    """The phase seconds of a checkpoint saved before the run state timed the phases: each part
    kept its own then (the data module's ``generation_seconds``, each evaluation callback's
    ``seconds``, found by the callback's ``phase``)."""
    found: dict[str, Any] = {}
    dm = getattr(trainer, "datamodule", None)
    if dm is not None:
        found["generation"] = (checkpoint.get(type(dm).__qualname__) or {}).get("generation_seconds")
    states = checkpoint.get("callbacks", {})
    for callback in getattr(trainer, "callbacks", ()):
        phase = getattr(callback, "phase", None)
        if phase is not None:
            found[phase] = (states.get(callback.state_key) or {}).get("seconds")
    return _checked_phases({name: seconds for name, seconds in found.items() if seconds is not None})


def time_shares(wall: float, phases: dict[str, float | None]) -> dict[str, Any]:
    """Where a run's wall clock went: seconds and share of each measured phase, the rest being
    training (steps, checkpoints, model loading). Phases not measured (None) are left out."""
    seconds = {name: round(float(v), 2) for name, v in phases.items() if v is not None}
    seconds["training_and_other"] = round(max(0.0, wall - sum(seconds.values())), 2)
    return {"seconds": seconds, "share": {k: round(v / wall, 4) if wall > 0 else 0.0 for k, v in seconds.items()}}


def reopen_interval_end(checkpoint: dict[str, Any]) -> None:
    """Make a checkpoint taken after an interval's last step still run the interval's end.

    A step-based checkpoint (``ModelCheckpoint(every_n_train_steps=...)``) can land on the last
    batch of an epoch, before ``on_train_epoch_end``. Lightning resumes such a checkpoint as a
    finished epoch and never calls that hook, so the interval would go unprobed and the bandit
    would neither observe it nor choose the next mixture. Marking the batch as not the last one
    makes Lightning resume inside the epoch; a resumable loader (one with ``state_dict``, as the
    data module's) has no batch left to give, so the epoch ends at once and its end-of-interval
    hooks run. Without a saved loader state the epoch would be replayed from its start, so the
    checkpoint is then left as it is. Called by :class:`RunState` before the loops are restored
    from ``checkpoint``; it is idempotent.
    """
    fit_loop = checkpoint.get("loops", {}).get("fit_loop", {})
    progress = fit_loop.get("epoch_loop.batch_progress")
    loader_state = (fit_loop.get("state_dict") or {}).get("combined_loader")
    if isinstance(progress, dict) and progress.get("is_last_batch") and loader_state:
        total = progress.get("total", {})
        # Saved from on_train_batch_end: the batch was processed but not yet counted completed.
        if total.get("processed") == total.get("completed", 0) + 1:
            progress["is_last_batch"] = False
