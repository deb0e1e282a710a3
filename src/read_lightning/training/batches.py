"""From teacher answers to training batches: one example per (prompt, answer), length-grouped
batches under a token cap, their split across ranks, and the padded tensors."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset

from read_lightning.core.checks import check_number
from read_lightning.teachers.generation import TeacherStates, chat_prompt_ids

__all__ = ["IGNORE_INDEX", "BatchStream", "IntervalLoader", "Example", "attach_teacher_states", "collate", "encode_example", "length_grouped_batches", "shard_batches", "trained_mixture"]

log = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass
class Example:
    """A tokenised training pair. ``labels`` is ``IGNORE_INDEX`` on prompt tokens.

    ``teacher_hidden``: the teacher's last hidden states ``[len - 1, d]`` at every position but the
    last, kept from generating the answer (:func:`attach_teacher_states`); None where the teacher
    must run on the row (an answer read back from a file, a row that re-tokenised differently).
    """

    input_ids: list[int]
    labels: list[int]
    capability: str
    teacher_hidden: torch.Tensor | None = field(default=None, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_example(
    tokenizer: Any, prompt: str, answer: str, capability: str, max_length: int,
    *, prompt_ids: Sequence[int] | None = None,
) -> Example | None:
    """Chat-format ``prompt`` and ``answer``; only answer tokens (and end-of-turn) are labelled.

    ``prompt_ids``: ``chat_prompt_ids(tokenizer, prompt)`` where the caller has them already
    (the generation planner tokenised the prompt to fit it), so it is not tokenised again.
    Returns None when the prompt alone leaves no room for a single answer token.
    """
    prompt_ids = chat_prompt_ids(tokenizer, prompt) if prompt_ids is None else list(prompt_ids)
    answer_ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    if len(prompt_ids) >= max_length:
        return None
    answer_ids = answer_ids[: max_length - len(prompt_ids)]
    return Example(
        input_ids=prompt_ids + answer_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + answer_ids,
        capability=capability,
    )


def attach_teacher_states(example: Example, states: TeacherStates | None) -> bool:
    """Give ``example`` the states the teacher computed while generating it, where they are its
    own: the example's tokens up to its last must be the ones the teacher read (the decoded answer
    can re-tokenise differently, a wrapped teacher prompt differs from the row's). Returns whether
    they were attached."""
    n = len(example) - 1
    if states is None or len(states.hidden) < n or states.ids[:n] != example.input_ids[:n]:
        return False
    example.teacher_hidden = states.hidden[:n]
    return True


def trained_mixture(examples: Sequence[Example]) -> dict[str, float]:
    """Each capability's share of the tokens in ``examples``: the mixture actually trained on,
    which can differ from the one chosen when a capability's prompts do not fit ``max_length``."""
    tokens: dict[str, int] = {}
    for ex in examples:
        tokens[ex.capability] = tokens.get(ex.capability, 0) + len(ex.input_ids)
    total = sum(tokens.values())
    return {c: round(n / total, 4) for c, n in sorted(tokens.items())} if total else {}


def length_grouped_batches(
    lengths: Sequence[int], max_tokens: int, rng: random.Random
) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size fits ``max_tokens``.

    Sorting by length keeps padding small; the order of batches is then shuffled so an epoch
    does not run from short to long sequences.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so lengths[i] is the padded width if i joins the batch.
        if current and lengths[i] * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def shard_batches(batches: Sequence[Sequence[int]], world_size: int) -> list[list[list[int]]]:
    """Deal an interval's batches to ``world_size`` ranks, the same number to each.

    DDP ranks must take the same number of optimiser steps per epoch, or the gradient all-reduce
    waits forever. While the count does not divide evenly, the largest batch of two or more
    examples is split in half (each half pads to at most the original width, so it still fits
    the token limit); if none can be split, the remainder is dropped: those examples are neither
    trained nor charged. Returns one list of batches per rank (rank ``r`` gets every
    ``world_size``-th batch from ``r``).
    """
    check_number("world_size", world_size, low=1, integer=True)
    planned = [list(b) for b in batches]
    while len(planned) % world_size:
        splittable = [i for i, b in enumerate(planned) if len(b) > 1]
        if not splittable:
            dropped = len(planned) % world_size
            log.warning("%d single-example batch(es) cannot be shared evenly over %d ranks; dropping them",
                        dropped, world_size)
            planned = planned[: len(planned) - dropped]
            break
        i = max(splittable, key=lambda j: len(planned[j]))
        half = len(planned[i]) // 2
        planned[i : i + 1] = [planned[i][:half], planned[i][half:]]
    return [planned[r::world_size] for r in range(world_size)]


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest example.

    Returns ``input_ids``/``attention_mask``/``labels`` of shape ``(B, T)`` and
    ``capability_tokens``: trained tokens (prompt + label, padding excluded) per capability.
    Where any example has ``teacher_hidden``, also ``teacher_hidden`` ``(B, T - 1, d)`` (zeros where
    a row has none) and ``teacher_hidden_rows`` ``(B,)``, True on the rows that have them.
    """
    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    tokens: Counter[str] = Counter()
    for row, e in enumerate(examples):
        input_ids[row, : len(e)] = torch.tensor(e.input_ids)
        labels[row, : len(e)] = torch.tensor(e.labels)
        mask[row, : len(e)] = 1
        tokens[e.capability] += len(e)
    batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels, "capability_tokens": dict(tokens)}
    kept = [e.teacher_hidden for e in examples]
    if any(h is not None for h in kept):
        first = next(h for h in kept if h is not None)
        hidden = first.new_zeros((len(examples), width - 1, first.shape[-1]))
        for row, h in enumerate(kept):
            if h is not None:
                hidden[row, : len(h)] = h
        batch["teacher_hidden"] = hidden
        batch["teacher_hidden_rows"] = torch.tensor([h is not None for h in kept])
    return batch


class BatchStream(IterableDataset):
    """Yields pre-planned batches; a fresh one is built for every interval.

    ``skip`` leading batches (already trained before a mid-interval checkpoint) are not yielded,
    but ``len`` stays the interval's full step count: Lightning restores its own count of the
    steps done and ends the epoch when that count reaches ``len``.
    """

    def __init__(self, examples: list[Example], batches: list[list[int]], pad_id: int) -> None:
        self.examples, self.batches, self.pad_id = examples, batches, pad_id
        self.skip = 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for idx in self.batches[self.skip :]:
            yield collate([self.examples[i] for i in idx], self.pad_id)


class IntervalLoader(DataLoader):
    """The interval's loader, resumable mid-interval through Lightning's ``state_dict`` interface.

    ``datamodule`` keeps ``interval`` and ``interval_steps`` (a ``BudgetStreamDataModule``,
    ``stream.py``). The state is the number of steps of this interval whose tokens the data module has charged
    (batches handed to training, not batches prefetched), so a resumed run neither trains nor
    pays for a step twice.
    """

    def __init__(self, stream: BatchStream, datamodule: Any) -> None:
        super().__init__(stream, batch_size=None)
        self.stream, self.datamodule = stream, datamodule

    def state_dict(self) -> dict[str, int]:
        return {"interval": self.datamodule.interval, "steps": self.datamodule.interval_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        interval, steps = state.get("interval"), state.get("steps")
        if interval != self.datamodule.interval:
            raise ValueError(
                f"the checkpoint's loader state is for interval {interval!r}, but interval "
                f"{self.datamodule.interval} is being resumed"
            )
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= len(self.stream):
            raise ValueError(f"the checkpoint's loader state has steps={steps!r}; this interval has "
                             f"{len(self.stream)} steps on this rank")
        self.stream.skip = steps
        self.datamodule.interval_steps = steps
