"""Lightning adapters around the pure core: probing the student and re-allocating the budget.

Put ``CapabilityProbeCallback`` (and optionally ``TaskEvaluationCallback``) before
``BanditAllocationCallback`` in the trainer's callback list: after each interval (epoch) the
probe measures the capability profile, then the bandit reads it, learns from the last choice and
pushes the next mixture into the data module.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from read_lightning.bandit import make_allocator
from read_lightning.capabilities import validate_distribution
from read_lightning.checks import check_number
from read_lightning.jsonl import write_text_atomic

log = logging.getLogger(__name__)

__all__ = ["BanditAllocationCallback", "CapabilityProbeCallback", "TaskEvaluationCallback"]


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


def _evaluation_student(trainer: L.Trainer, pl_module: L.LightningModule) -> tuple[torch.nn.Module | None, Any]:
    """The student rank 0 evaluates and its tokenizer; ``(None, None)`` on the other ranks.

    Call it on every rank. Under a strategy that shards parameters (FSDP) rank 0 cannot run the
    student alone, since each forward gathers shards from every rank; so all ranks take part in
    gathering the full state dict and rank 0 evaluates an unsharded copy built from the config.
    (Reasoned, not yet run on GPUs: the repository's tests have no FSDP run.)
    """
    student, tokenizer = _student_and_tokenizer(pl_module)
    if not _shards_parameters(trainer):
        return (student, tokenizer) if trainer.is_global_zero else (None, None)
    from read_lightning.module import full_student_state

    state = full_student_state(trainer)
    if not trainer.is_global_zero:
        return None, None
    from transformers import AutoModelForCausalLM

    whole = AutoModelForCausalLM.from_config(student.config)
    whole.load_state_dict(state)
    dtype = next(iter(state.values())).dtype
    return whole.to(device=pl_module.device, dtype=dtype).eval(), tokenizer


def _teacher_source(trainer: L.Trainer) -> tuple[Any, Any] | None:
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


def _teacher_cache(trainer: L.Trainer, cache_dir: str | None, kind: str) -> Path:
    """``<cache>/<kind>/<teacher>.jsonl``: one file of reference answers per teacher (keyed rows)."""
    from read_lightning.models import default_cache_dir

    name = getattr(trainer.datamodule, "teacher_name", "teacher").replace("/", "--").replace(":", "-")
    return Path(cache_dir or default_cache_dir()) / kind / f"{name}.jsonl"


class _TimedEvaluation(Callback):
    """Shared by the evaluation callbacks: the latest result, its history, and the wall-clock
    spent evaluating (part of the run summary), all saved in checkpoints.

    Subclasses name the attribute holding their latest result in ``_latest``.
    """

    _latest: str

    def __init__(self) -> None:
        self.seconds = 0.0
        self._fit_started = time.perf_counter()
        self._wall_before = 0.0  # fit wall clock of earlier processes of a resumed run
        self.history: list[dict[str, Any]] = []
        setattr(self, self._latest, None)

    def state_dict(self) -> dict[str, Any]:
        return {self._latest: getattr(self, self._latest), "history": self.history, "seconds": self.seconds,
                "wall_seconds": self._wall_clock()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        setattr(self, self._latest, state[self._latest])
        self.history = list(state["history"])
        self.seconds = float(state["seconds"])
        # Both sums run over the same processes, so the fraction stays a fraction after a resume.
        self._wall_before = float(state.get("wall_seconds", 0.0))

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        from read_lightning.module import reopen_interval_end

        reopen_interval_end(checkpoint)  # so the interval's evaluation runs with a user's own module too

    def _start_clock(self, trainer: L.Trainer) -> None:
        from read_lightning.module import fit_started

        self._fit_started = fit_started(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from read_lightning.module import clear_fit_started

        clear_fit_started(trainer)

    def _wall_clock(self) -> float:
        return self._wall_before + time.perf_counter() - self._fit_started

    def _fraction(self) -> float:
        total = self._wall_clock()
        return self.seconds / total if total > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """What this callback contributes to the run's ``summary.json``."""
        return {"seconds": round(self.seconds, 2), "fraction_of_wall_clock": round(self._fraction(), 4),
                "history": self.history}

    def _timed(self, fn: Any, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.seconds += time.perf_counter() - start


class CapabilityProbeCallback(_TimedEvaluation):
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
        from read_lightning.probes import CapabilityProbe

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
        found = _teacher_source(trainer)
        if found is None:
            log.warning("the data module has no teacher to ask; probes score the gold answers instead")
            return
        cache = _teacher_cache(trainer, self.cache_dir, "probe_references")
        self.probe.build_references(*found, cache, max_new_tokens=self.reference_max_new_tokens)

    def _measure(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        profile: dict[str, float] | None = None
        student, tokenizer = _evaluation_student(trainer, pl_module)
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



class TaskEvaluationCallback(_TimedEvaluation):
    """Evaluates the real task utility on the task card's dev split at coarse checkpoints.

    Args:
        task_card: a card path or the name of a packaged example task (``arith_word``).
        every_n_epochs: the spacing of development checkpoints, in intervals.
        limit, batch_size: dev rows scored (default all) and the scoring batch size.
        references: ``"gold"`` scores the card's own metric against its answers; ``"teacher"``
            scores fidelity to the teacher's greedy answers (generated once and cached, as the
            probes do), which is the utility to use where the teacher is itself mostly wrong
            (the embedded default) and what ``read-train compare`` scores on the test split.
        cache_dir: where teacher references are cached; default the models' cache.

    Logs ``task/utility`` (0-100), and ``task/agreement`` (greedy agreement, %) with teacher
    references. ``BanditAllocationCallback`` uses the utility for kappa decay and reward
    calibration.
    """

    _latest = "latest_utility"
    latest_utility: float | None

    def __init__(
        self,
        task_card: str,
        every_n_epochs: int = 1,
        limit: int | None = None,
        batch_size: int = 8,
        references: str = "gold",
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        from read_lightning.requirement import resolve_card
        from read_lightning.tasks import TaskCard

        check_number("every_n_epochs", every_n_epochs, low=1, integer=True)
        check_number("task batch_size", batch_size, low=1, integer=True)
        if limit is not None:
            check_number("task limit", limit, low=1, integer=True)
        if references not in ("gold", "teacher"):
            raise ValueError(f"task references must be 'gold' or 'teacher', got {references!r}")
        self.card = TaskCard.load(resolve_card(task_card))
        self.every_n_epochs, self.limit, self.batch_size = every_n_epochs, limit, batch_size
        self.references, self.cache_dir = references, cache_dir
        self._reference_rows: list[dict[str, Any]] | None = None
        self.evaluated_epoch: int | None = None  # the interval whose end was last evaluated

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "evaluated_epoch": self.evaluated_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.evaluated_epoch = state.get("evaluated_epoch")

    def _prepare_references(self, trainer: L.Trainer) -> None:
        from read_lightning.tasks import task_references

        found = _teacher_source(trainer)
        if found is None:
            log.warning("the data module has no teacher to ask; the task is scored on the card's gold answers")
            return
        cache = _teacher_cache(trainer, self.cache_dir, "task_references")
        self._reference_rows = task_references(self.card, *found, cache, split="dev", batch_size=self.batch_size)

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        from read_lightning.tasks import evaluate_task

        scores: dict[str, float] | None = None
        student, tokenizer = _evaluation_student(trainer, pl_module)
        if trainer.is_global_zero:
            was_training = student.training
            result = evaluate_task(self.card, student, tokenizer, split="dev", limit=self.limit,
                                   batch_size=self.batch_size, references=self._reference_rows)
            student.train(was_training)
            scores = {k: float(result[k]) for k in ("utility", "agreement") if k in result}
        scores = dict(trainer.strategy.broadcast(scores, src=0))
        self.latest_utility = scores["utility"]
        self.history.append({"epoch": trainer.current_epoch, **scores})
        return scores

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_clock(trainer)
        if self.references == "teacher" and trainer.is_global_zero:
            self._timed(self._prepare_references, trainer)  # cached: a resumed run reads the file
        if self.latest_utility is not None:
            return  # restored from a checkpoint: the checkpointed student's utility is known
        self._timed(self._evaluate, trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        scores = self._timed(self._evaluate, trainer, pl_module)
        self.evaluated_epoch = trainer.current_epoch
        for name, value in scores.items():
            pl_module.log(f"task/{name}", value, rank_zero_only=True)
        pl_module.log("time/task_fraction", self._fraction(), rank_zero_only=True)


class BanditAllocationCallback(Callback):
    """Re-weights the data mixture after every probe-evaluation epoch.

    Works with any LightningDataModule that has ``set_mixture_weights(dict)``; a ``ledger``
    (``spent``, ``fraction_spent``) on it gives the bandit its cost signal, and a
    ``budget_exhausted`` property stops training once the budget is spent.

    Args:
        allocator: ``read`` (UCB over a bootstrap ensemble) or a baseline: ``uniform``,
            ``task_static``, ``single``, ``greedy``, ``fixed``, ``random``.
        requirement: the task's requirement vector (a distribution over capabilities). If
            omitted, it is inferred from a task card (``task_card``, else the
            ``TaskEvaluationCallback``'s) by ``requirement_method``: ``card`` (the card's own
            vector), ``identifier`` (a learned g_phi at ``identifier_path``), ``zero_shot`` (the
            teacher rates each capability) or ``auto`` (the first of these that is available).
        allocator_kwargs: extra arguments for the allocator (``kappa``, ``beta``, ``lam``, ...).
        log_file: JSONL of every decision; default ``<log_dir>/allocations.jsonl``.
    """

    def __init__(
        self,
        allocator: str = "read",
        requirement: dict[str, float] | None = None,
        seed: int = 0,
        allocator_kwargs: dict[str, Any] | None = None,
        log_file: str | None = None,
        task_card: str | None = None,
        requirement_method: str = "auto",
        identifier_path: str | None = None,
    ) -> None:
        from read_lightning.bandit import ALLOCATORS, allocator_options
        from read_lightning.requirement import METHODS

        check_number("bandit seed", seed, integer=True)
        if allocator not in ALLOCATORS:
            raise ValueError(f"unknown allocator {allocator!r}; choose one of {sorted(ALLOCATORS)}")
        accepted = allocator_options(allocator)
        unknown = sorted(set(allocator_kwargs or {}) - accepted) if accepted is not None else []
        if unknown:
            # Checked here, not at fit start, so a recipe fails when it is parsed.
            raise ValueError(
                f"allocator_kwargs {unknown!r} are not options of allocator {allocator!r}; it takes {sorted(accepted)!r}"
            )
        if requirement is not None:
            # Names are checked against the data module's capabilities at fit start.
            validate_distribution(requirement, list(requirement), name="requirement vector")
        if requirement_method not in METHODS:
            raise ValueError(f"unknown requirement_method {requirement_method!r}; choose one of {list(METHODS)}")
        self.allocator_name = allocator
        self.requirement = requirement
        self.task_card, self.requirement_method, self.identifier_path = task_card, requirement_method, identifier_path
        self.requirement_explanation = "given in the configuration" if requirement is not None else None
        self.seed = seed
        self.allocator_kwargs = dict(allocator_kwargs or {})
        self.log_file = log_file
        self.allocator: Any = None
        self.decisions = 0
        self._spent_at_decision = 0
        self._rows_written: int | None = 0  # rows of log_file that belong to the state in the last checkpoint
        self._restored: dict[str, Any] | None = None

    # ----------------------------------------------------------------- setup
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        if dm is None or not callable(getattr(dm, "set_mixture_weights", None)):
            raise TypeError(
                f"BanditAllocationCallback needs a DataModule with set_mixture_weights(dict); got {type(dm).__name__}"
            )
        capabilities = list(getattr(dm, "capabilities", None) or (self.requirement or {}))
        requirement = self.requirement
        if requirement is None:
            # Rank 0 infers (a zero-shot inference asks the teacher, which only rank 0 holds).
            inferred = self._infer_requirement(trainer, capabilities) if trainer.is_global_zero else None
            requirement, self.requirement_explanation = trainer.strategy.broadcast(
                (inferred, self.requirement_explanation), src=0
            )
        self.allocator = make_allocator(
            self.allocator_name, capabilities, requirement, seed=self.seed, **self.allocator_kwargs
        )
        if self.log_file is None and trainer.log_dir:
            self.log_file = str(Path(trainer.log_dir) / "allocations.jsonl")
        if self._restored is not None:
            self._apply_restored()
            self._truncate_log(trainer)
            if not self._awaiting(trainer) and getattr(dm, "budget_exhausted", False):
                # The checkpoint is of a run that had observed its last interval and spent its
                # budget (the stop itself is not checkpointed): nothing is left to train.
                trainer.should_stop = True
            return
        self._decide(trainer, pl_module, self._profile(trainer))

    def _awaiting(self, trainer: L.Trainer) -> bool:
        """Whether a choice is waiting for its interval's observation (rank 0 decides for all)."""
        awaiting = self.allocator.awaiting_observation if trainer.is_global_zero else None
        return bool(trainer.strategy.broadcast(awaiting, src=0))

    def _infer_requirement(self, trainer: L.Trainer, capabilities: list[str]) -> dict[str, float]:
        from read_lightning.requirement import infer_requirement, load_card

        card = load_card(self.task_card) if self.task_card else _find(trainer, "card")
        if card is None:
            raise ValueError(
                "BanditAllocationCallback has no requirement vector: pass requirement: {...}, a task_card, "
                "or use a TaskEvaluationCallback"
            )
        result = infer_requirement(
            card,
            self.requirement_method,
            capabilities=capabilities,
            identifier_path=self.identifier_path,
            teacher=getattr(trainer.datamodule, "teacher", None),
        )
        self.requirement_explanation = f"{result.method}: {result.explanation}"
        log.info("requirement vector %s (%s)", result.vector, self.requirement_explanation)
        return result.vector

    # ----------------------------------------------------------------- the loop
    def _profile(self, trainer: L.Trainer) -> dict[str, float]:
        caps = self.allocator.capabilities
        metrics = trainer.callback_metrics
        if all(f"probe/{c}" in metrics for c in caps):
            return {c: float(metrics[f"probe/{c}"]) for c in caps}
        for cb in trainer.callbacks:
            profile = getattr(cb, "latest_profile", None)
            if profile is not None:
                missing = [c for c in caps if c not in profile or not math.isfinite(float(profile[c]))]
                if missing:
                    raise ValueError(f"the probe returned no score for capabilities {missing}")
                return {c: float(profile[c]) for c in caps}
        raise ValueError(
            f"no capability profile found: log probe/<capability> for {list(caps)} or add a "
            "CapabilityProbeCallback before BanditAllocationCallback"
        )

    def _remaining(self, trainer: L.Trainer) -> float:
        ledger = getattr(trainer.datamodule, "ledger", None)
        return 1.0 - ledger.fraction_spent if ledger is not None else 1.0

    def _spent(self, trainer: L.Trainer) -> int:
        ledger = getattr(trainer.datamodule, "ledger", None)
        return int(ledger.spent) if ledger is not None else 0

    def _decide(self, trainer: L.Trainer, pl_module: L.LightningModule, profile: dict[str, float]) -> None:
        weights = None
        if trainer.is_global_zero:
            weights = self.allocator.select(profile=profile, remaining=self._remaining(trainer))
        # Rank 0 decides; all ranks train on the same mixture.
        weights = trainer.strategy.broadcast(weights, src=0)
        mixture = dict(zip(self.allocator.capabilities, (float(w) for w in weights)))
        trainer.datamodule.set_mixture_weights(mixture)
        self._spent_at_decision = self._spent(trainer)
        self.decisions += 1
        self._write({"event": "select", "decision": self.decisions, "epoch": trainer.current_epoch,
                     "remaining": self._remaining(trainer), "profile": profile, "mixture": mixture,
                     "info": _jsonable(self.allocator.last_info)}, trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._awaiting(trainer):
            # An epoch that had no decision to score: one more after a resumed run that had spent
            # its budget (its data module trains on nothing then).
            trainer.should_stop = True
            return
        profile = self._profile(trainer)
        cost = self._spent(trainer) - self._spent_at_decision
        reward = None
        if trainer.is_global_zero:
            reward = self.allocator.observe(profile=profile, cost=cost)
            utility = _new_dev_utility(trainer)
            if utility is not None:
                self.allocator.development_checkpoint(utility)
        reward = trainer.strategy.broadcast(reward, src=0)
        info = self.allocator.last_info if trainer.is_global_zero else {}
        self._write({"event": "observe", "decision": self.decisions, "epoch": trainer.current_epoch,
                     "cost": cost, "reward": reward, "profile": profile, "info": _jsonable(info)}, trainer)
        self._log(pl_module, trainer, reward, info)
        dm = trainer.datamodule
        if getattr(dm, "budget_exhausted", False):
            trainer.should_stop = True
            return
        self._decide(trainer, pl_module, profile)

    def _log(self, pl_module: L.LightningModule, trainer: L.Trainer, reward: float | None, info: dict[str, Any]) -> None:
        mixture = getattr(trainer.datamodule, "mixture", {}) or {}
        for cap, w in mixture.items():
            pl_module.log(f"mixture/{cap}", float(w), rank_zero_only=True)
        if reward is not None:
            pl_module.log("bandit/reward", float(reward), rank_zero_only=True)
        for key in ("mu", "sigma", "kappa", "spill", "gain", "cost_penalty"):
            value = info.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                pl_module.log(f"bandit/{key}", float(value), rank_zero_only=True)

    def _write(self, row: dict[str, Any], trainer: L.Trainer) -> None:
        if self._rows_written is not None:  # None only on the ranks that do not write the log
            self._rows_written += 1
        if not trainer.is_global_zero or not self.log_file:
            return
        Path(self.log_file).parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def _truncate_log(self, trainer: L.Trainer) -> None:
        """Drop the log rows written after the checkpoint being resumed from.

        A run killed between a decision and the next checkpoint wrote rows that the resumed run
        writes again; keeping them would log those decisions twice.
        """
        if not trainer.is_global_zero or not self.log_file or not Path(self.log_file).is_file():
            return
        lines = Path(self.log_file).read_text(encoding="utf-8").splitlines(keepends=True)
        if self._rows_written is None:
            # A checkpoint from before the row count was kept: keep every row (the report reads
            # decisions logged again as superseding the earlier ones) rather than guess.
            log.warning("resuming from a checkpoint that does not say how many rows of %s it had written; "
                        "keeping all %d (decisions after it will be logged again)", self.log_file, len(lines))
            self._rows_written = len(lines)
            return
        if len(lines) < self._rows_written:
            raise ValueError(
                f"{self.log_file} has {len(lines)} rows but the checkpoint being resumed from had written "
                f"{self._rows_written}; is this the run directory the checkpoint belongs to?"
            )
        if len(lines) > self._rows_written:
            log.info("resuming: dropping %d row(s) of %s written after the checkpoint",
                     len(lines) - self._rows_written, self.log_file)
            write_text_atomic(self.log_file, "".join(lines[: self._rows_written]))

    def summary(self) -> dict[str, Any]:
        """What this callback contributes to the run's ``summary.json``."""
        alloc = self.allocator
        return {
            "allocator": self.allocator_name,
            "decisions": self.decisions,
            "requirement": dict(zip(alloc.capabilities, map(float, alloc.requirement))) if alloc else None,
            "requirement_explanation": self.requirement_explanation,
            "cumulative_reward": float(getattr(alloc, "cumulative_reward", 0.0)) if alloc else None,
            "calibration": list(getattr(alloc, "calibration", ())) if alloc else None,
            "log_file": self.log_file,
        }

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            # Lightning loads checkpoints with weights_only=True: keep numpy out of them.
            "allocator": _numpy_to_torch(self.allocator.state_dict()) if self.allocator is not None else None,
            "decisions": self.decisions,
            "spent_at_decision": self._spent_at_decision,
            "rows_written": self._rows_written,
        }

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        from read_lightning.module import reopen_interval_end

        reopen_interval_end(checkpoint)  # so the decision after the interval is made with a user's own module too

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # The allocator is built at fit start (it needs the data module); restore it then.
        self._restored = state
        if self.allocator is not None:
            self._apply_restored()

    def _apply_restored(self) -> None:
        state, self._restored = self._restored, None
        if state["allocator"] is not None:
            self.allocator.load_state_dict(_torch_to_numpy(state["allocator"]))
        self.decisions = int(state["decisions"])
        self._spent_at_decision = int(state["spent_at_decision"])
        rows = state.get("rows_written")  # None: a checkpoint saved before it was kept
        self._rows_written = None if rows is None else int(rows)


def _numpy_to_torch(obj: Any) -> Any:
    """Recursively replace numpy arrays and scalars by tensors and Python numbers."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _numpy_to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_numpy_to_torch(v) for v in obj)
    return obj


def _torch_to_numpy(obj: Any) -> Any:
    """Inverse of :func:`_numpy_to_torch` for the allocator's numpy-only state."""
    if isinstance(obj, torch.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _torch_to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_torch_to_numpy(v) for v in obj)
    return obj


def _find(trainer: L.Trainer, attribute: str) -> Any:
    for cb in trainer.callbacks:
        value = getattr(cb, attribute, None)
        if value is not None:
            return value
    return None


def _new_dev_utility(trainer: L.Trainer) -> float | None:
    """The task utility measured at the end of this interval, if one was. A callback that says
    which interval it last evaluated (``evaluated_epoch``, as ``TaskEvaluationCallback`` does)
    counts only then: with ``every_n_epochs > 1`` the utility of an earlier checkpoint is not a
    new development checkpoint (it would add a duplicate calibration point and shrink kappa)."""
    for cb in trainer.callbacks:
        utility = getattr(cb, "latest_utility", None)
        if utility is not None:
            fresh = getattr(cb, "evaluated_epoch", trainer.current_epoch) == trainer.current_epoch
            return float(utility) if fresh else None
    return None


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in info.items():
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
        elif hasattr(v, "tolist"):
            out[k] = v.tolist()
        elif isinstance(v, (list, tuple)):
            out[k] = [x.tolist() if hasattr(x, "tolist") else x for x in v]
    return out
