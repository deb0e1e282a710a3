"""``CapabilityProbeCallback``: the student's capability profile after every interval."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
from read_lightning.core.checks import check_number
from read_lightning.core.run_summary import PROBES
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
        tasks: capabilities probed by lm-eval tasks instead of the packaged probe sets:
            ``{capability: [task or group name, or {task, limit, num_fewshot, metric,
            dataset_path, dataset_name, dataset_kwargs, generation_kwargs}]}`` (see
            ``evaluation.harness``). The other capabilities keep the packaged probes. The tasks
            and their data load here, so a bad name, metric, limit or data file fails before any
            model loads.
        include_path: directories of the user's own lm-eval task YAMLs, for ``tasks``.
        seed: draws each task's ``limit`` subset (the same at every probe and after a resume)
            and seeds few-shot sampling.
        apply_chat_template: render the lm-eval tasks' requests with the student's chat template.
        allow_code_execution: let lm-eval tasks run model-written code (``humaneval``, ``mbpp``).
        references: ``"teacher"`` scores fidelity to the teacher's greedy answers (generated once
            and cached; an in-process teacher decodes greedily, a vLLM or HTTP backend is asked
            at temperature 0), ``"gold"`` scores the shipped answers, or a path to a reference JSONL.
        batch_size, limit: handed to the probes (cost control); ``limit`` counts the packaged
            probe items, each task in ``tasks`` has its own.
        reference_max_new_tokens: length of teacher reference answers.
        data_dir: directory of user probe sets (see ``CapabilityProbe``); default: the data
            module's ``probe_data_dir``, so the probed prompts are the ones training excludes.

    The profile is logged as ``probe/<capability>`` (0-100) and kept in ``latest_profile``; the
    standard error of a task-probed capability as ``probe_stderr/<capability>``.
    """

    _latest = "latest_profile"
    summary_key = PROBES
    phase = "probes"  # its phase of the run's time (RunState.timed)
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
        tasks: dict[str, list[str | dict[str, Any]]] | None = None,
        include_path: list[str] | None = None,
        seed: int = 0,
        apply_chat_template: bool = False,
        allow_code_execution: bool = False,
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
        self.harness: Any = None
        self.latest_stderr: dict[str, float] = {}
        self._order: list[str] = []
        if tasks:
            from read_lightning.evaluation.harness import HarnessProbe

            if capabilities is not None:
                extra = sorted(set(tasks) - set(capabilities))
                if extra:
                    raise ValueError(f"probe tasks name capabilities {extra} that are not probed ({capabilities})")
            # Tasks and their data load now, before any model; a Hub dataset out of reach here
            # (building the config offline) is loaded again in setup().
            self.harness = HarnessProbe(tasks, include_path=include_path, batch_size=batch_size, seed=seed,
                                        apply_chat_template=apply_chat_template, allow_code_execution=allow_code_execution,
                                        defer_unreachable=True)
        elif include_path:
            raise ValueError(f"probe include_path {include_path!r} is given but no tasks name its tasks")

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self.harness is not None:
            self.harness.load_pending()

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from read_lightning.evaluation.probes import CapabilityProbe

        self._start_clock(trainer)
        caps = self.capabilities or getattr(trainer.datamodule, "capabilities", None) or list(DEFAULT_CAPABILITIES)
        by_task = list(self.harness.capabilities) if self.harness is not None else []
        if set(by_task) - set(caps):
            raise ValueError(f"probe tasks name capabilities {sorted(set(by_task) - set(caps))} that are not probed ({caps})")
        self._order = list(caps)
        packaged = [c for c in caps if c not in by_task]
        work = Path(trainer.log_dir) / "probes" if trainer.log_dir else None
        self.probe = None
        if packaged:
            self.probe = CapabilityProbe(packaged, batch_size=self.batch_size, limit=self.limit,
                                         data_dir=self._data_dir(trainer), work_dir=work)
        if trainer.is_global_zero and self.probe is not None:
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
        measured: tuple[dict[str, float], dict[str, float]] | None = None
        student, tokenizer = evaluation_student(trainer, pl_module)
        if trainer.is_global_zero:
            from read_lightning.evaluation.harness import measure_profile

            measured = measure_profile(self.probe, self.harness, self._order, student, tokenizer)
        # Rank 0 measures; every rank receives the same profile.
        profile, stderr = trainer.strategy.broadcast(measured, src=0)
        self.latest_profile = dict(profile)
        self.latest_stderr = dict(stderr)
        entry = {"epoch": trainer.current_epoch, "profile": dict(profile)}
        if stderr:
            entry["stderr"] = dict(stderr)
        self.history.append(entry)
        return profile

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        profile = self._timed(self._measure, trainer, pl_module)
        for cap, score in profile.items():
            pl_module.log(f"probe/{cap}", float(score), rank_zero_only=True)
        for cap, err in self.latest_stderr.items():
            pl_module.log(f"probe_stderr/{cap}", float(err), rank_zero_only=True)
        pl_module.log("probe/mean", sum(profile.values()) / len(profile), rank_zero_only=True)
        pl_module.log("time/probe_fraction", self._fraction(), rank_zero_only=True)
