"""The token ledger: what the budget B has been spent on, per capability.

B counts teacher-generated tokens plus student-trained tokens (prompt + label, padding
excluded). The ledger refuses any charge that would overdraw B, so "never exceeded" is an
invariant of this class rather than a hope about its callers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from read_lightning.core.checks import check_number

__all__ = ["BudgetExceeded", "TokenLedger"]


class BudgetExceeded(RuntimeError):
    """A charge would spend more than the budget."""


class TokenLedger:
    def __init__(self, budget: int) -> None:
        check_number("budget_tokens", budget, low=1, integer=True)
        self.budget = int(budget)
        self.generation: dict[str, int] = defaultdict(int)
        self.training: dict[str, int] = defaultdict(int)

    @property
    def spent(self) -> int:
        return sum(self.generation.values()) + sum(self.training.values())

    @property
    def remaining(self) -> int:
        return self.budget - self.spent

    @property
    def fraction_spent(self) -> float:
        return self.spent / self.budget

    def _charge(self, book: dict[str, int], kind: str, capability: str, tokens: int) -> None:
        if tokens < 0:
            raise ValueError(f"cannot charge a negative number of {kind} tokens: {tokens}")
        if tokens > self.remaining:
            raise BudgetExceeded(
                f"charging {tokens} {kind} tokens for {capability!r} would exceed the budget: "
                f"{self.remaining} of {self.budget} left"
            )
        book[capability] += int(tokens)

    def charge_generation(self, capability: str, tokens: int) -> None:
        self._charge(self.generation, "generation", capability, tokens)

    def charge_training(self, capability: str, tokens: int) -> None:
        self._charge(self.training, "training", capability, tokens)

    def by_capability(self) -> dict[str, dict[str, int]]:
        caps = sorted(set(self.generation) | set(self.training))
        return {
            c: {"generation": self.generation.get(c, 0), "training": self.training.get(c, 0)} for c in caps
        }

    def summary(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "spent": self.spent,
            "remaining": self.remaining,
            "generation": sum(self.generation.values()),
            "training": sum(self.training.values()),
            "by_capability": self.by_capability(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "generation": dict(self.generation), "training": dict(self.training)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved ledger. A malformed or overdrawn state is refused, naming the field,
        and leaves this ledger unchanged: a resumed run must not trust a broken budget."""
        if not isinstance(state, dict) or any(k not in state for k in ("budget", "generation", "training")):
            raise ValueError(f"ledger state must be a mapping with budget, generation and training, got {state!r}")
        if state["budget"] != self.budget:
            raise ValueError(
                f"checkpoint ledger has budget {state['budget']} but this run's budget_tokens is {self.budget}"
            )
        books = {kind: _check_book(kind, state[kind]) for kind in ("generation", "training")}
        spent = sum(sum(book.values()) for book in books.values())
        if spent > self.budget:
            raise ValueError(f"ledger state spends {spent} tokens, more than its budget of {self.budget}")
        self.generation = defaultdict(int, books["generation"])
        self.training = defaultdict(int, books["training"])

    def __repr__(self) -> str:
        return f"TokenLedger(budget={self.budget}, spent={self.spent})"


def _check_book(kind: str, book: Any) -> dict[str, int]:
    if not isinstance(book, dict):
        raise ValueError(f"ledger state field {kind!r} must map capability -> tokens, got {book!r}")
    for cap, tokens in book.items():
        if not isinstance(cap, str) or isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"ledger state field {kind!r}: {cap!r} -> {tokens!r} is not a non-negative token count")
    return dict(book)
