"""The task's own inputs as training prompts: a card's train split, or a user's JSONL of prompts.

Capability templates teach what a task needs; they never show the task itself. A user who
distils for one task usually has its inputs without answers, and the teacher can answer them:
the data module (``task_prompts``, ``task_share``) gives that share of every interval's prompts
to this pool and lets the allocator mix the capabilities over the rest. Rows it produces carry
the capability label ``task`` in the generated files and the ledger.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Callable, Sequence

from read_lightning.core.capabilities import TASK_LABEL
from read_lightning.core.jsonl import iter_jsonl
from read_lightning.teachers.generation import Prompt

__all__ = ["TASK_LABEL", "TaskPromptPool"]

log = logging.getLogger(__name__)

class TaskPromptPool:
    """Task prompts in a fixed seeded order, each used once before any is used again.

    Args:
        prompts: the user messages, deduplicated, in file order.
        name: what they are (a card's name, a file's stem), for the rows' ``template`` field.
        seed: shuffles the order, so a run sees the same prompts in the same order on a resume.
    """

    def __init__(self, prompts: Sequence[str], name: str, seed: int = 0) -> None:
        unique = list(dict.fromkeys(prompts))
        if not unique:
            raise ValueError(f"task prompts {name!r}: no prompt left to train on")
        self.name = name
        self.prompts = unique
        self.order = list(range(len(unique)))
        random.Random(f"task-prompts:{seed}").shuffle(self.order)
        self.cursor = 0  # prompts handed out (or skipped), over all passes
        self.skipped = 0  # prompts passed over because they did not fit

    @classmethod
    def from_jsonl(cls, path: str, held_out: set[str] | frozenset[str] = frozenset(), seed: int = 0) -> TaskPromptPool:
        """A JSONL file of ``{"prompt": ...}`` rows (or ``"question"``), less the prompts whose
        hash is in ``held_out``."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"task_prompts file {path!r} does not exist")
        prompts = []
        for lineno, row in iter_jsonl(path):
            text = row.get("prompt", row.get("question"))
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{path}:{lineno}: row has no 'prompt' (or 'question') string")
            prompts.append(text)
        return cls._kept(prompts, Path(path).stem, held_out, seed)

    @classmethod
    def from_card(cls, card: Any, held_out: set[str] | frozenset[str] = frozenset(), seed: int = 0) -> TaskPromptPool:
        """A task card's train split (a ``TaskCard``), less its own dev and test prompts and the
        prompts whose hash is in ``held_out``."""
        from read_lightning.prompts.leakage import prompt_hash

        if not card.has_train:
            raise ValueError(f"task_prompts: task card {card.name!r} has no train split; give it a 'train' JSONL "
                             "of task inputs, or pass a JSONL file of prompts")
        own = {prompt_hash(card.user_message(row)) for split in ("dev", "test") for row in card.rows(split)}
        prompts = [card.user_message(row) for row in card.rows("train")]
        return cls._kept(prompts, card.name, set(held_out) | own, seed)

    @classmethod
    def _kept(cls, prompts: list[str], name: str, held_out: set[str] | frozenset[str], seed: int) -> TaskPromptPool:
        """Training never sees an evaluation or probe prompt: drop them, and say how many."""
        from read_lightning.prompts.leakage import prompt_hash

        kept = [p for p in prompts if prompt_hash(p) not in held_out]
        if len(kept) < len(prompts):
            log.warning("task prompts %r: dropped %d of %d that are evaluation or probe prompts",
                        name, len(prompts) - len(kept), len(prompts))
        return cls(kept, name, seed)

    def __len__(self) -> int:
        return len(self.prompts)

    def next(self, fits: Callable[[str], bool] | None = None) -> Prompt | None:
        """The next prompt in order that passes ``fits``; None when no prompt of the pool does."""
        for _ in range(len(self.prompts)):
            if self.cursor and self.cursor % len(self.prompts) == 0:
                log.info("task prompts %r: all %d used; starting over in the same order", self.name, len(self))
            text = self.prompts[self.order[self.cursor % len(self.prompts)]]
            self.cursor += 1
            if fits is None or fits(text):
                return Prompt(text, TASK_LABEL, template=f"task:{self.name}", difficulty="task")
            self.skipped += 1
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"cursor": self.cursor, "skipped": self.skipped, "size": len(self.prompts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("size") != len(self.prompts):
            raise ValueError(f"the run drew from {state.get('size')} task prompts, this pool has {len(self.prompts)}")
        self.cursor, self.skipped = int(state["cursor"]), int(state.get("skipped", 0))
