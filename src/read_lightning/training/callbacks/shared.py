"""What the evaluation callbacks share: the student to evaluate, the teacher to ask for references,
and ``TimedEvaluation`` (latest result and history, saved in checkpoints; its time spent, timed by
the run's ``RunState``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from read_lightning.training.run_state import RunState

__all__ = ["TimedEvaluation", "evaluation_student", "teacher_cache", "teacher_source"]


def _student_and_tokenizer(pl_module: L.LightningModule) -> tuple[torch.nn.Module, Any]:
    student = getattr(pl_module, "student", None)
    tokenizer = getattr(pl_module, "tokenizer", None)
    if student is None or tokenizer is None:
        raise AttributeError(
            f"{type(pl_module).__name__} needs `student` (a Hugging Face causal LM) and `tokenizer` "
            "attributes to be probed"
        )
    return student, tokenizer


def _shards_parameters(trainer: L.Trainer) -> bool:
    from lightning.pytorch.strategies import FSDPStrategy, ModelParallelStrategy

    return trainer.world_size > 1 and isinstance(trainer.strategy, (FSDPStrategy, ModelParallelStrategy))


def evaluation_student(trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[torch.nn.Module | None, Any]:
    """The student rank 0 evaluates and its tokenizer; ``(None, None)`` on the other ranks.

    Call it on every rank. Under a strategy that shards parameters (FSDP) rank 0 cannot run the
    student alone, since each forward gathers shards from every rank; so all ranks take part in
    gathering the full state dict and rank 0 evaluates an unsharded copy built from the config.
    (Reasoned, not yet run on GPUs: the repository's tests have no FSDP run.)
    """
    student, tokenizer = _student_and_tokenizer(pl_module)
    if not _shards_parameters(trainer):
        return (student, tokenizer) if trainer.is_global_zero else (None, None)
    from read_lightning.training.module import full_student_state

    state = full_student_state(trainer)
    if not trainer.is_global_zero:
        return None, None
    from transformers import AutoModelForCausalLM

    whole = AutoModelForCausalLM.from_config(student.config)
    whole.load_state_dict(state)
    dtype = next(iter(state.values())).dtype
    return whole.to(device=pl_module.device, dtype=dtype).eval(), tokenizer


def teacher_source(trainer: L.Trainer) -> tuple[Any, Any] | None:
    """``(source, tokenizer)`` to ask the data module's teacher for greedy reference answers:
    the model itself when it runs in process, else the backend (vLLM, HTTP or a user's), asked
    through ``generate()``; None when the data module has no teacher."""
    teacher = getattr(trainer.datamodule, "teacher", None)
    model, tokenizer = getattr(teacher, "model", None), getattr(teacher, "tokenizer", None)
    if isinstance(model, torch.nn.Module) and tokenizer is not None:
        return model, tokenizer
    if callable(getattr(teacher, "generate", None)):
        return teacher, tokenizer
    return None


def teacher_cache(trainer: L.Trainer, cache_dir: str | None, kind: str) -> Path:
    """``<cache>/<kind>/<teacher>.jsonl``: one file of reference answers per teacher (keyed rows)."""
    from read_lightning.teachers.models import default_cache_dir

    name = getattr(trainer.datamodule, "teacher_name", "teacher").replace("/", "--").replace(":", "-")
    return Path(cache_dir or default_cache_dir()) / kind / f"{name}.jsonl"


class TimedEvaluation(Callback):
    """Shared by the evaluation callbacks: the latest result and its history, saved in
    checkpoints, and the wall clock spent evaluating (part of the run summary). The time spent is
    the run's :class:`RunState`'s to keep, as its phase ``phase``, and so is the run's own wall
    clock that it is a fraction of.

    Subclasses name the attribute holding their latest result in ``_latest``, their phase of the
    run's time in ``phase``, and their part of the run's ``summary.json`` in ``summary_key``
    (:mod:`read_lightning.core.run_summary`).
    """

    _latest: str
    phase: str
    summary_key: str

    def __init__(self) -> None:
        self.run_state: RunState | None = None  # attached in setup
        self.history: list[dict[str, Any]] = []
        setattr(self, self._latest, None)

    def state_dict(self) -> dict[str, Any]:
        return {self._latest: getattr(self, self._latest), "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # An older checkpoint's "seconds" is read by RunState.on_load_checkpoint.
        setattr(self, self._latest, state[self._latest])
        self.history = list(state["history"])

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Attached before a checkpoint is restored, so it reopens an interval's end with a user's own module too.
        self.run_state = RunState.of(trainer)

    def _start_clock(self, trainer: L.Trainer) -> None:
        RunState.of(trainer).start_clock()

    @property
    def seconds(self) -> float:
        """Seconds this callback has spent evaluating, over all the run's processes."""
        return self.run_state.seconds(self.phase) if self.run_state is not None else 0.0

    def _fraction(self) -> float:
        return self.run_state.fraction(self.phase) if self.run_state is not None else 0.0

    def summary(self) -> dict[str, Any]:
        """What this callback contributes to the run's ``summary.json``."""
        return {"seconds": round(self.seconds, 2), "fraction_of_wall_clock": round(self._fraction(), 4),
                "history": self.history}

    def _timed(self, fn: Any, trainer: L.Trainer, *args: Any) -> Any:
        """``fn(trainer, *args)``, its seconds counted to this callback's phase of the run."""
        with RunState.of(trainer).timed(self.phase):
            return fn(trainer, *args)
