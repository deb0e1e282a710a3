"""``BanditAllocationCallback``: the Lightning adapter around the allocators of
:mod:`read_lightning.allocation` (read the profile, learn from the last choice, set the next mixture)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from read_lightning.allocation.bandit import make_allocator
from read_lightning.core.capabilities import Requirement
from read_lightning.core.checks import check_number
from read_lightning.core.jsonl import write_text_atomic
from read_lightning.core.run_summary import ALLOCATION
from read_lightning.training.run_state import RunState

__all__ = ["BanditAllocationCallback"]

log = logging.getLogger(__name__)


class BanditAllocationCallback(Callback):
    """Re-weights the data mixture after every probe-evaluation epoch.

    Works with any LightningDataModule that has ``set_mixture_weights(dict)``; a ``ledger``
    (``spent``, ``fraction_spent``) on it gives the bandit its cost signal, and a
    ``budget_exhausted`` property stops training once the budget is spent (the run's
    :class:`~read_lightning.training.run_state.RunState` decides the stop; the bandit asks it).

    Args:
        allocator: ``read`` (the default, docs/allocator.md), ``read_ucb`` (the published UCB over a
            bootstrap ensemble), ``read_transfer``, ``read_study`` (``read_transfer`` with a measured
            transfer prior, ``study``) or a baseline: ``uniform``, ``task_static``, ``single``,
            ``greedy``, ``fixed``, ``random``.
        requirement: the task's requirement vector (a distribution over capabilities): a
            :class:`~read_lightning.core.capabilities.Requirement`, or a mapping made into one
            (checked) here; its names are checked against the data module's capabilities at fit
            start. If omitted, it is inferred from a task card (``task_card``, else the card of
            the run's task evaluation, a ``TaskEvaluationCallback``, asked through the run's
            ``RunState.task``) by ``requirement_method``: ``card`` (the card's own
            vector), ``identifier`` (a learned g_phi at ``identifier_path``), ``zero_shot`` (the
            teacher rates each capability) or ``auto`` (the first of these that is available).
        allocator_kwargs: extra arguments for the allocator (``kappa``, ``beta``, ``lam``, ...). With a
            ``study`` (``read_study``: a ``read-train transfer`` output), ``interval_tokens`` defaults to
            the data module's budget over its intervals.
        log_file: JSONL of every decision; default ``<log_dir>/allocations.jsonl``.
    """

    summary_key = ALLOCATION  # its part of the run's summary.json

    def __init__(
        self,
        allocator: str = "read",
        requirement: Mapping[str, float] | None = None,
        seed: int = 0,
        allocator_kwargs: dict[str, Any] | None = None,
        log_file: str | None = None,
        task_card: str | None = None,
        requirement_method: str = "auto",
        identifier_path: str | None = None,
    ) -> None:
        from read_lightning.allocation.bandit import ALLOCATORS, allocator_options
        from read_lightning.requirement.inference import METHODS

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
        study = (allocator_kwargs or {}).get("study")
        if isinstance(study, (str, Path)) and not Path(study).is_file():
            # Before any model loads: the allocator reads it at fit start.
            raise ValueError(f"allocator_kwargs study {str(study)!r} is not a file (a read-train transfer output, "
                             "transfer.json; a relative path is read from the working directory)")
        if requirement is not None:
            # Checked once, here; names against the data module's capabilities at fit start.
            requirement = Requirement.of(requirement)
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
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Attached before a checkpoint is restored, so a checkpoint of an interval's last batch
        # resumes into the decision after it with a user's own module too.
        RunState.of(trainer)

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
            self.allocator_name, capabilities, requirement, seed=self.seed, **self._kwargs_for(dm)
        )
        if self.log_file is None and trainer.log_dir:
            self.log_file = str(Path(trainer.log_dir) / "allocations.jsonl")
        if self._restored is not None:
            self._apply_restored()
            self._truncate_log(trainer)
            if not self._awaiting(trainer):
                # The checkpoint is of a run that had observed its last interval: if it had spent
                # its budget (the stop itself is not checkpointed), nothing is left to train.
                RunState.of(trainer).decide(trainer)
            return
        self._decide(trainer, pl_module, self._profile(trainer))

    def _kwargs_for(self, dm: Any) -> dict[str, Any]:
        """The allocator's options, with ``interval_tokens`` filled in from the data module (its budget
        over its intervals) where a ``study`` is given without it: a ``read-train transfer`` study's token
        budgets are read in the run's intervals."""
        from read_lightning.allocation.bandit import allocator_options

        kwargs = dict(self.allocator_kwargs)
        takes = allocator_options(self.allocator_name) or set()
        ledger, intervals = getattr(dm, "ledger", None), getattr(dm, "num_intervals", None)
        if kwargs.get("study") is not None and "interval_tokens" in takes and kwargs.get("interval_tokens") is None \
                and ledger is not None and intervals:
            kwargs["interval_tokens"] = ledger.budget / intervals
        return kwargs

    def _awaiting(self, trainer: L.Trainer) -> bool:
        """Whether a choice is waiting for its interval's observation (rank 0 decides for all)."""
        awaiting = self.allocator.awaiting_observation if trainer.is_global_zero else None
        return bool(trainer.strategy.broadcast(awaiting, src=0))

    def _infer_requirement(self, trainer: L.Trainer, capabilities: list[str]) -> dict[str, float]:
        from read_lightning.requirement.cards import load_card
        from read_lightning.requirement.inference import infer_requirement

        task = RunState.of(trainer).task
        card = load_card(self.task_card) if self.task_card else (task.card if task is not None else None)
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
        state = RunState.of(trainer)
        if not self._awaiting(trainer):
            # An epoch that had no decision to score: one more after a resumed run that had spent
            # its budget (its data module trains on nothing then).
            state.request_stop("no mixture choice awaits this interval's observation")
            state.decide(trainer)
            return
        profile = self._profile(trainer)
        cost = self._spent(trainer) - self._spent_at_decision
        reward = None
        if trainer.is_global_zero:
            reward = self.allocator.observe(profile=profile, cost=cost)
            utility = state.task.utility_at(trainer.current_epoch) if state.task is not None else None
            if utility is not None:
                self.allocator.development_checkpoint(utility)
        reward = trainer.strategy.broadcast(reward, src=0)
        info = self.allocator.last_info if trainer.is_global_zero else {}
        # The token shares actually trained on, next to the mixture chosen (they differ when a
        # capability's prompts cannot fit the data module's max_length).
        trained = (getattr(trainer.datamodule, "interval_stats", None) or {}).get("trained_mixture")
        self._write({"event": "observe", "decision": self.decisions, "epoch": trainer.current_epoch,
                     "cost": cost, "reward": reward, "profile": profile, "trained_mixture": trained,
                     "info": _jsonable(info)}, trainer)
        self._log(pl_module, trainer, reward, info)
        if state.decide(trainer):
            return  # the budget is spent: no next mixture to choose
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
            # Allocator.state_dict is plain Python (lists, numbers): it loads under weights_only=True.
            "allocator": self.allocator.state_dict() if self.allocator is not None else None,
            "decisions": self.decisions,
            "spent_at_decision": self._spent_at_decision,
            "rows_written": self._rows_written,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # The allocator is built at fit start (it needs the data module); restore it then.
        self._restored = state
        if self.allocator is not None:
            self._apply_restored()

    def _apply_restored(self) -> None:
        state, self._restored = self._restored, None
        if state["allocator"] is not None:
            self.allocator.load_state_dict(state["allocator"])
        self.decisions = int(state["decisions"])
        self._spent_at_decision = int(state["spent_at_decision"])
        rows = state.get("rows_written")  # None: a checkpoint saved before it was kept
        self._rows_written = None if rows is None else int(rows)


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in info.items():
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
        elif isinstance(v, dict):  # e.g. read's ``explain``: why it chose the mixture
            out[k] = _jsonable(v)
        elif hasattr(v, "tolist"):
            out[k] = v.tolist()
        elif isinstance(v, (list, tuple)):
            out[k] = [x.tolist() if hasattr(x, "tolist") else x for x in v]
    return out
