"""``CapabilityProbeCallback``: the student's capability profile after every interval."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L

from read_lightning.core.checks import check_number
from read_lightning.training.callbacks.shared import (
    TimedEvaluation,
    evaluation_student,
    teacher_cache,
    teacher_source,
)

__all__ = ["CapabilityProbeCallback"]

log = logging.getLogger(__name__)


class CapabilityProbeCallback(TimedEvaluation):
    """Measures the student's capability profile with lm-eval probes after every interval.

    Args:
        capabilities: probed capabilities; default: the data module's.
        references: ``"teacher"`` scores fidelity to the teacher's greedy answers (generated once
            and cached; an in-process teacher decodes greedily, a vLLM or HTTP backend is asked
            at temperature 0), ``"gold"`` scores the shipped answers, or a path to a reference JSONL.
        batch_size, limit: handed to the probe (cost control).
        reference_max_new_tokens: length of teacher reference answers.
        data_dir: directory of user probe sets (see ``CapabilityProbe``); default: the data
            module's ``probe_data_dir``, so the probed prompts are the ones training excludes.

    The profile is logged as ``probe/<capability>`` (0-100) and kept in ``latest_profile``.
    """

    _latest = "latest_profile"
    latest_profile: dict[str, float] | None

    def __init__(
        self,
        capabilities: list[str] | None = None,
        references: str = "teacher",
        batch_size: int = 16,
        limit: int | None = None,
        reference_max_new_tokens: int = 48,
        cache_dir: str | None = None,
        data_dir: str | None = None,
    ) -> None:
        super().__init__()
        check_number("probe batch_size", batch_size, low=1, integer=True)
        if data_dir is not None and not Path(data_dir).is_dir():
            raise ValueError(f"probe data_dir {data_dir!r} is not a directory")
        check_number("probe reference_max_new_tokens", reference_max_new_tokens, low=1, integer=True)
        if limit is not None:
            check_number("probe limit", limit, low=1, integer=True)
        if not isinstance(references, str) or (references not in ("teacher", "gold") and not Path(references).is_file()):
            raise ValueError(f"references must be 'teacher', 'gold' or an existing JSONL file, got {references!r}")
        self.capabilities = capabilities
        self.references = references
        self.batch_size, self.limit = batch_size, limit
        self.reference_max_new_tokens = reference_max_new_tokens
        self.cache_dir = cache_dir
        self.data_dir = data_dir
        self.probe: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from read_lightning.evaluation.probes import CapabilityProbe

        self._start_clock(trainer)
        caps = self.capabilities or getattr(trainer.datamodule, "capabilities", None)
        work = Path(trainer.log_dir) / "probes" if trainer.log_dir else None
        self.probe = CapabilityProbe(caps, batch_size=self.batch_size, limit=self.limit,
                                     data_dir=self._data_dir(trainer), work_dir=work)
        if trainer.is_global_zero:
            self._timed(self._prepare_references, trainer)
        if self.latest_profile is not None:
            # Restored from a checkpoint: the profile of the checkpointed student is already known.
            return
        # The baseline profile s_0: the first allocation decision needs it.
        self._timed(self._measure, trainer, pl_module)

    def _data_dir(self, trainer: L.Trainer) -> str | None:
        """The probe sets' directory; it must be the one the data module keeps out of training."""
        module_dir = getattr(trainer.datamodule, "probe_data_dir", None)
        if self.data_dir is None:
            return module_dir
        if hasattr(trainer.datamodule, "probe_data_dir") and (
            module_dir is None or Path(module_dir).resolve() != Path(self.data_dir).resolve()
        ):
            raise ValueError(
                f"probe data_dir {self.data_dir!r} differs from the data module's probe_data_dir "
                f"{module_dir!r}: training would not exclude the probed prompts; set data.probe_data_dir instead"
            )
        return self.data_dir

    def _prepare_references(self, trainer: L.Trainer) -> None:
        if self.references == "gold":
            return
        if self.references != "teacher":
            self.probe.load_references(self.references)
            return
        found = teacher_source(trainer)
        if found is None:
            log.warning("the data module has no teacher to ask; probes score the gold answers instead")
            return
        cache = teacher_cache(trainer, self.cache_dir, "probe_references")
        self.probe.build_references(*found, cache, max_new_tokens=self.reference_max_new_tokens)

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        profile: dict[str, float] | None = None
        student, tokenizer = evaluation_student(trainer, pl_module)
        if trainer.is_global_zero:
            profile = self.probe.evaluate(student, tokenizer)
        # Rank 0 measures; every rank receives the same profile.
        profile = trainer.strategy.broadcast(profile, src=0)
        self.latest_profile = dict(profile)
        self.history.append({"epoch": trainer.current_epoch, "profile": dict(profile)})
        return profile

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        profile = self._timed(self._measure, trainer, pl_module)
        for cap, score in profile.items():
            pl_module.log(f"probe/{cap}", float(score), rank_zero_only=True)
        pl_module.log("probe/mean", sum(profile.values()) / len(profile), rank_zero_only=True)
        pl_module.log("time/probe_fraction", self._fraction(), rank_zero_only=True)
