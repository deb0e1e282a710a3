"""The budget-limited batch stream that every data module of ReAD shares.

One training epoch is one allocation interval. ``BudgetStreamDataModule`` owns what does not
depend on where an interval's examples come from: the ``TokenLedger`` (the one count of spent
tokens), the mixture the bandit sets, each interval's share of the budget, the length-grouped
batches and their split across ranks, the training tokens charged per step (summed over ranks),
when the budget is spent, and the checkpointed part of all this. A subclass says only where an
interval's examples come from (:meth:`BudgetStreamDataModule._interval_examples`): the teacher's
generated pool (``CapabilityDataModule``, ``data.py``) or a user's own per-capability datasets
(``MixtureDataModule``, ``mixture.py``). ``BanditAllocationCallback`` and ``RunState`` reach
either through the same attributes: ``capabilities``, ``mixture``, ``set_mixture_weights``,
``ledger``, ``budget_exhausted``, ``interval_stats``, ``training_progress``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from read_lightning.core.capabilities import validate_distribution
from read_lightning.core.checks import check_number
from read_lightning.core.ledger import TokenLedger
from read_lightning.training.batches import (
    BatchStream,
    Example,
    IntervalLoader,
    length_grouped_batches,
    shard_batches,
    trained_mixture,
)

__all__ = ["BudgetStreamDataModule", "IntervalExamples"]

log = logging.getLogger(__name__)


@dataclass
class IntervalExamples:
    """What a source gives the stream for one interval.

    ``examples`` are trained on in length-grouped batches; ``mixture`` is the mixture they were
    drawn from; ``generated_tokens`` is what the interval paid before training (the teacher's
    answers; spread over the interval's steps by ``training_progress``); ``stats`` are the
    source's own entries of ``interval_stats``.
    """

    examples: list[Example]
    mixture: dict[str, float]
    generated_tokens: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


class BudgetStreamDataModule(L.LightningDataModule):
    """Streams an interval's examples in length-grouped batches under a token budget.

    Each interval may spend its share of the remaining budget (``remaining // intervals left``,
    :meth:`_interval_budget`). Training tokens (prompt + label, padding excluded) are charged to
    ``ledger`` when a batch is handed to the training step, summed over ranks so that every rank
    holds the same ledger. Subclasses implement :meth:`_interval_examples` and give ``pad_id``, and
    add their own checkpointed fields through :meth:`_source_state` / :meth:`_load_source_state`.

    Args:
        capabilities: the capability names the mixture is over (checked by the subclass).
        mixture: initial mixture; uniform if omitted. ``set_mixture_weights`` changes it from the
            next interval on.
        budget_tokens: the total budget.
        num_intervals: allocation intervals (= training epochs) the budget is spread over.
        max_tokens_per_batch: padded tokens (batch size x longest sequence) per batch.
        max_length: longest training sequence.
        generation_worst_case: the most one example can cost before it is trained on (a
            full-length teacher answer; 0 without a teacher). With its training row, at most
            ``max_length``, it is ``example_worst_case``: the budget is spent once less is left.
        seed: seeds the batch order (with the interval).
    """

    pad_id: int  # the token id that pads ``input_ids``: a subclass's attribute or property

    def __init__(
        self,
        *,
        capabilities: Sequence[str],
        mixture: dict[str, float] | None,
        budget_tokens: int,
        num_intervals: int,
        max_tokens_per_batch: int,
        max_length: int,
        generation_worst_case: int,
        seed: int,
    ) -> None:
        super().__init__()
        for name, value in (("num_intervals", num_intervals), ("max_tokens_per_batch", max_tokens_per_batch),
                            ("max_length", max_length)):
            check_number(name, value, low=1, integer=True)
        check_number("seed", seed, integer=True)
        if max_length > max_tokens_per_batch:
            raise ValueError(
                f"max_length={max_length} does not fit in one batch of max_tokens_per_batch={max_tokens_per_batch}"
            )
        self.ledger = TokenLedger(budget_tokens)
        self.capabilities = list(capabilities)
        self.num_intervals, self.max_tokens_per_batch, self.max_length = num_intervals, max_tokens_per_batch, max_length
        self.example_worst_case, self.seed = generation_worst_case + max_length, seed
        self.mixture = validate_distribution(
            mixture or {c: 1.0 / len(self.capabilities) for c in self.capabilities}, self.capabilities, name="mixture"
        )
        self.interval = 0
        self.interval_steps = 0  # steps of the current interval whose training tokens are charged
        self.padding_tokens = 0  # padded positions handed to training (a statistic, not budget)
        self.interval_stats: dict[str, Any] = {}
        self._interval_plan = (0, 0)  # the current interval's generated tokens and steps on this rank

    # ----------------------------------------------------------------- what a source says
    def _interval_examples(self) -> IntervalExamples:
        """The current interval's examples (``self.interval``); the source's one job."""
        raise NotImplementedError

    @property
    def labels(self) -> list[str]:
        """What an example can be labelled (the ledger's books): the capabilities by default."""
        return list(self.capabilities)

    def _source_state(self) -> dict[str, Any]:
        """The source's own checkpointed fields."""
        return {}

    def _load_source_state(self, state: dict[str, Any]) -> None:
        """Check and restore :meth:`_source_state`'s fields of a checkpoint (all present)."""

    _source_fields: tuple[str, ...] = ()  # the fields _load_source_state needs

    # ----------------------------------------------------------------- mixture and budget
    def set_mixture_weights(self, weights: dict[str, float]) -> None:
        """Set the mixture used from the next interval on (a distribution over ``capabilities``)."""
        self.mixture = validate_distribution(weights, self.capabilities, name="mixture")

    @property
    def budget_exhausted(self) -> bool:
        """True once not even one more worst-case example fits in the budget."""
        return self.ledger.remaining < self.example_worst_case

    @property
    def training_progress(self) -> float:
        """The fraction of the budget spent, with the current interval's generation spread over its
        steps: it is charged at once when the interval's loader is built, so ``fraction_spent``
        jumps there, and a learning-rate schedule that read it would warm up in one step."""
        generated, steps = self._interval_plan
        pending = generated * (1.0 - min(self.interval_steps, steps) / steps) if steps else 0.0
        return max(self.ledger.spent - pending, 0.0) / self.ledger.budget

    def _interval_budget(self) -> int:
        """The current interval's share: what is left over the intervals left."""
        intervals_left = max(1, self.num_intervals - self.interval)
        return self.ledger.remaining // intervals_left

    # ----------------------------------------------------------------- ranks
    def _is_global_zero(self) -> bool:
        return self.trainer is None or self.trainer.is_global_zero

    def _world(self) -> tuple[int, int]:
        """``(world_size, global_rank)``; ``(1, 0)`` outside a trainer."""
        if self.trainer is None:
            return 1, 0
        return int(self.trainer.world_size), int(self.trainer.global_rank)

    def _broadcast(self, obj: Any) -> Any:
        if self.trainer is None or self.trainer.world_size == 1:
            return obj
        return self.trainer.strategy.broadcast(obj, src=0)

    def _sum_over_ranks(self, values: list[int]) -> list[int]:
        if self.trainer is None or self.trainer.world_size == 1:
            return values
        strategy = self.trainer.strategy
        # On the root device: NCCL reduces only CUDA tensors.
        total = strategy.reduce(torch.tensor(values, dtype=torch.long, device=strategy.root_device), reduce_op="sum")
        return [int(v) for v in total.tolist()]

    # ----------------------------------------------------------------- one interval
    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None:
            self.interval = self.trainer.current_epoch
        drawn = self._interval_examples()
        examples = drawn.examples
        # The batch order has its own RNG per interval: Lightning may build an interval's loader
        # again when it resumes, and that must not move any source's RNG.
        order_rng = random.Random(self.seed * 1_000_003 + self.interval)
        batches = length_grouped_batches([len(e) for e in examples], self.max_tokens_per_batch, order_rng)
        world_size, rank = self._world()
        mine = shard_batches(batches, world_size)[rank]
        self.interval_steps = 0
        self._interval_plan = (drawn.generated_tokens, len(mine))
        self.interval_stats = {
            "interval": self.interval,
            "examples": len(examples),
            "batches": len(batches),
            "steps": len(mine),
            **drawn.stats,
            "mixture": dict(drawn.mixture),
            "trained_mixture": trained_mixture(examples),
        }
        log.info("interval %d: %d examples in %d batches", self.interval, len(examples), len(batches))
        return IntervalLoader(BatchStream(examples, mine, self.pad_id), self)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Charge training tokens at the moment a batch is used, not when it is prefetched.
        if self.trainer is None or self.trainer.training:
            self._charge_step(batch)
        return batch

    def _charge_step(self, batch: dict[str, Any]) -> None:
        """Charge one training step: this rank's batch plus, under DDP, every other rank's.

        Every rank reaches this once per step, so the sum is a collective all of them join, and
        every rank's ledger (budget checks, the budget-based learning rate) stays identical.
        """
        tokens = batch.get("capability_tokens", {})
        local = [int(tokens.get(c, 0)) for c in self.labels]
        local.append(int((batch["attention_mask"] == 0).sum()))
        *totals, padding = self._sum_over_ranks(local)
        for cap, n in zip(self.labels, totals):
            if n:
                self.ledger.charge_training(cap, n)
        self.padding_tokens += padding
        self.interval_steps += 1

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger.state_dict(),
            "mixture": dict(self.mixture),
            "interval": self.interval,
            "padding_tokens": self.padding_tokens,
            **self._source_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = [k for k in ("ledger", "mixture", "interval", *self._source_fields) if k not in state]
        if missing:
            raise ValueError(f"checkpoint data-module state lacks field(s) {missing}; was it saved by this "
                             f"version of {type(self).__name__}?")
        for name in ("interval", "padding_tokens"):
            check_number(f"checkpoint data-module state: field {name!r}", state.get(name, 0), low=0, integer=True)
        if not isinstance(state["mixture"], dict):
            raise ValueError(f"checkpoint data-module state: field 'mixture' must be a mapping, got {state['mixture']!r}")
        mixture = validate_distribution(state["mixture"], self.capabilities, name="checkpoint mixture")
        TokenLedger(self.ledger.budget).load_state_dict(state["ledger"])  # checked before the source's part is set
        self._load_source_state(state)
        self.ledger.load_state_dict(state["ledger"])
        self.mixture, self.interval = mixture, state["interval"]
        self.padding_tokens = state.get("padding_tokens", 0)  # absent: saved before it was kept
