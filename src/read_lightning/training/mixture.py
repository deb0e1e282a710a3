"""``MixtureDataModule``: budget-limited batches from a user's own per-capability datasets.

The teacher-free source of the budget stream (``stream.py``, shared with ``CapabilityDataModule``):
a user who already has tokenised data for each capability gets ``BanditAllocationCallback``'s
re-weighting on their own Trainer. One epoch is one allocation interval (the Trainer needs
``reload_dataloaders_every_n_epochs=1``). The ledger is charged training tokens (prompt + label,
padding excluded) when a batch is handed to the training step, and never lets the budget be
exceeded.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from read_lightning.core.capabilities import validate_distribution
from read_lightning.core.checks import check_number
from read_lightning.training.batches import Example
from read_lightning.training.stream import BudgetStreamDataModule, IntervalExamples

__all__ = ["MixtureDataModule"]


class MixtureDataModule(BudgetStreamDataModule):
    """Streams batches drawn from per-capability datasets in the current mixture, under a budget.

    Each interval may spend its share of the remaining budget (``remaining // intervals left``)
    on training tokens. The share is filled one example at a time from the capability whose
    trained tokens are furthest below its mixture weight, so the token shares trained on track
    the mixture to within one example per capability; a capability of weight 0 is not drawn.
    Every source is read in a seeded random order without replacement; once it is exhausted it is
    reshuffled (a new order from ``seed``, the capability and the pass number) and read again.
    The interval ends when the next example of the neediest capability no longer fits its share.

    Args:
        sources: capability name -> a map-style dataset (``len`` and ``[i]``) of tokenised
            examples: ``Example`` (training/batches.py) or mappings with ``input_ids`` and
            ``labels`` (lists or 1-d tensors of equal length; ``labels`` is ``-100`` where no
            loss is taken).
        budget_tokens: training tokens the whole run may spend.
        num_intervals: allocation intervals (= training epochs) the budget is spread over.
        mixture: initial mixture over the capabilities; uniform if omitted.
            ``set_mixture_weights`` changes it from the next interval on.
        max_tokens_per_batch: padded tokens (batch size x longest sequence) per batch.
        max_length: longest example; longer ones are cut to it (input and labels alike).
        pad_id: token id that pads ``input_ids`` (labels pad with -100, the mask with 0).
        seed: seeds the source orders and the batch order.
    """

    def __init__(
        self,
        sources: Mapping[str, Sequence[Any]],
        budget_tokens: int,
        num_intervals: int = 10,
        mixture: dict[str, float] | None = None,
        max_tokens_per_batch: int = 4096,
        max_length: int = 1024,
        pad_id: int = 0,
        seed: int = 0,
    ) -> None:
        if not isinstance(sources, Mapping) or not sources:
            raise ValueError(f"sources must be a non-empty mapping capability -> dataset, got {sources!r}")
        for cap, source in sources.items():
            if not isinstance(cap, str) or not cap:
                raise ValueError(f"source names must be non-empty capability names, got {cap!r}")
            if not (hasattr(source, "__len__") and hasattr(source, "__getitem__")):
                raise TypeError(f"source {cap!r} must be a map-style dataset (len and [i]), got {type(source).__name__}")
            if len(source) == 0:
                raise ValueError(f"source {cap!r} is empty; give it examples or leave it out of sources")
        check_number("pad_id", pad_id, low=0, integer=True)
        # An example costs its own tokens, at most max_length: the budget is spent below that.
        super().__init__(capabilities=list(sources), mixture=mixture, budget_tokens=budget_tokens,
                         num_intervals=num_intervals, max_tokens_per_batch=max_tokens_per_batch,
                         max_length=max_length, generation_worst_case=0, seed=seed)
        if budget_tokens // num_intervals < max_length:
            raise ValueError(
                f"budget_tokens={budget_tokens} is too small for one example per interval: split over "
                f"num_intervals={num_intervals} it gives {budget_tokens // num_intervals} tokens per interval, "
                f"but one example can be max_length={max_length} tokens"
            )
        self.sources = dict(sources)
        self.pad_id = pad_id
        # Where each source's stream stands: [pass, position in that pass's order].
        self.cursors = {c: [0, 0] for c in self.capabilities}
        # What the current interval was drawn from, so a loader built again for it (a resume
        # inside the interval) draws the same examples.
        self._plan_start: dict[str, Any] | None = None
        self._orders: dict[str, tuple[int, list[int]]] = {}

    # ----------------------------------------------------------------- drawing
    def _order(self, cap: str, pass_no: int) -> list[int]:
        cached = self._orders.get(cap)
        if cached is None or cached[0] != pass_no:
            order = list(range(len(self.sources[cap])))
            # A string seed is hashed with SHA-512: the same order in every process and run.
            random.Random(f"{self.seed}:{cap}:{pass_no}").shuffle(order)
            self._orders[cap] = cached = (pass_no, order)
        return cached[1]

    def _peek(self, cap: str) -> tuple[Example, bool]:
        """The next example of ``cap``'s stream, without moving past it, and whether it was cut."""
        pass_no, pos = self.cursors[cap]
        if pos >= len(self.sources[cap]):
            pass_no, pos = pass_no + 1, 0
            self.cursors[cap] = [pass_no, pos]
        index = self._order(cap, pass_no)[pos]
        return self._example(self.sources[cap][index], cap, index)

    def _example(self, item: Any, cap: str, index: int) -> tuple[Example, bool]:
        where = f"source {cap!r} item {index}"
        if isinstance(item, Example):
            if item.capability != cap:
                raise ValueError(f"{where} is an Example of capability {item.capability!r}, not {cap!r}")
            ids, labels = item.input_ids, item.labels
        elif isinstance(item, Mapping) and "input_ids" in item and "labels" in item:
            ids, labels = item["input_ids"], item["labels"]
        else:
            raise ValueError(f"{where} must be an Example or a mapping with input_ids and labels, got {item!r}")
        ids, labels = (x.tolist() if isinstance(x, torch.Tensor) else list(x) for x in (ids, labels))
        if not ids or len(ids) != len(labels):
            raise ValueError(f"{where} has {len(ids)} input_ids and {len(labels)} labels; "
                             "it needs at least one token and one label per token")
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in ids + labels):
            raise ValueError(f"{where}: input_ids and labels must be integer token ids")
        cut = len(ids) > self.max_length
        ids, labels = ids[: self.max_length], labels[: self.max_length]
        return Example(input_ids=ids, labels=labels, capability=cap), cut

    def _draw(self, share: int, mixture: dict[str, float]) -> tuple[list[Example], int]:
        """Fill ``share`` tokens in ``mixture``, neediest capability first (see the class doc).

        Returns the examples and how many of them were cut to ``max_length``.
        """
        live = [c for c in self.capabilities if mixture[c] > 0]
        taken = dict.fromkeys(live, 0)
        examples: list[Example] = []
        truncated = 0
        while True:
            cap = min(live, key=lambda c: taken[c] / mixture[c])  # ties: the first listed
            example, cut = self._peek(cap)
            if len(example) > share:
                return examples, truncated
            self.cursors[cap][1] += 1
            examples.append(example)
            truncated += cut
            taken[cap] += len(example)
            share -= len(example)

    # ----------------------------------------------------------------- intervals
    def _interval_examples(self) -> IntervalExamples:
        start = self._plan_start
        if start is not None and start["interval"] == self.interval:
            # The same interval's loader again (a resume inside it): draw it again from where it began.
            self.cursors = {c: list(v) for c, v in start["cursors"].items()}
            share, mixture = start["share"], start["mixture"]
        else:
            # A resumed run that had spent its budget asks for one more interval: it gets none.
            share = 0 if self.budget_exhausted else self._interval_budget()
            mixture = dict(self.mixture)
            self._plan_start = {"interval": self.interval, "cursors": {c: list(v) for c, v in self.cursors.items()},
                                "share": share, "mixture": mixture}
        examples, truncated = self._draw(share, mixture)
        # "truncated": examples cut to max_length
        return IntervalExamples(examples, mixture, stats={"share": share, "truncated": truncated})

    # ----------------------------------------------------------------- checkpointing
    _source_fields = ("cursors", "plan_start")

    def _source_state(self) -> dict[str, Any]:
        return {"cursors": {c: list(v) for c, v in self.cursors.items()}, "plan_start": self._plan_start}

    def _load_source_state(self, state: dict[str, Any]) -> None:
        cursors = self._check_cursors(state["cursors"], "cursors")
        plan = state["plan_start"]
        if plan is not None:
            if not isinstance(plan, dict) or any(k not in plan for k in ("interval", "cursors", "share", "mixture")):
                raise ValueError(f"checkpoint data-module state: field 'plan_start' is malformed: {plan!r}")
            plan = {**plan, "cursors": self._check_cursors(plan["cursors"], "plan_start.cursors"),
                    "mixture": validate_distribution(plan["mixture"], self.capabilities, name="checkpoint plan mixture")}
        self.cursors, self._plan_start = cursors, plan

    def _check_cursors(self, cursors: Any, field: str) -> dict[str, list[int]]:
        if not isinstance(cursors, dict) or sorted(cursors) != sorted(self.capabilities):
            raise ValueError(f"checkpoint data-module state: field {field!r} must have a cursor for each of "
                             f"{self.capabilities}, got {cursors!r}")
        for cap, cursor in cursors.items():
            ok = isinstance(cursor, (list, tuple)) and len(cursor) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in cursor)
            if not ok or cursor[1] > len(self.sources[cap]):
                raise ValueError(f"checkpoint data-module state: {field}[{cap!r}] = {cursor!r} is not a "
                                 f"[pass, position] within the source's {len(self.sources[cap])} examples")
        return {c: list(v) for c, v in cursors.items()}
