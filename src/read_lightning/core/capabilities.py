"""The capability set C and validation of vectors over it (requirement vectors, mixtures).

Pure Python: no torch, no Lightning. Every other module names capabilities through here so
an unknown name is rejected in one place, with one message.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "general_knowledge",
    "steerability",
    "reasoning",
    "math",
    "code",
    "tool_use",
    "long_context",
    "multilingual",
)

__all__ = ["DEFAULT_CAPABILITIES", "TASK_LABEL", "Requirement", "check_capabilities", "validate_distribution", "top_k"]

# What the rows drawn from the task's own inputs (``data.task_prompts``) are labelled with where
# capabilities label the others: generated files, the ledger, the report.
TASK_LABEL = "task"


def check_capabilities(names: Sequence[str], known: Sequence[str], *, what: str = "capability") -> None:
    """Raise ``ValueError`` naming every entry of ``names`` that is not in ``known``."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown!r}; known capabilities are {list(known)!r}")
    dupes = sorted({n for n in names if list(names).count(n) > 1})
    if dupes:
        raise ValueError(f"{what} listed more than once: {dupes!r}")


def validate_distribution(
    values: Mapping[str, float] | Sequence[float],
    capabilities: Sequence[str],
    *,
    name: str = "requirement vector",
    normalise: bool = False,
    atol: float = 1e-4,
) -> dict[str, float]:
    """Check that ``values`` is a distribution over ``capabilities`` and return it as a dict.

    A mapping may omit capabilities (they get 0); a sequence must have one entry per capability,
    in order. Negative, non-finite or unknown entries are errors. With ``normalise=False`` the
    entries must already sum to 1 (within ``atol``); with ``normalise=True`` any non-negative
    vector with a positive sum is rescaled.
    """
    vec = _checked_weights(values, capabilities, name)
    if not normalise:
        _check_sum(vec, name, atol)
    total = sum(vec.values())
    return {c: v / total for c, v in vec.items()}


def _checked_weights(values: Mapping[str, float] | Sequence[float], capabilities: Sequence[str],
                     name: str) -> dict[str, float]:
    """``values`` as floats over ``capabilities`` (0 where a mapping omits one), each a finite
    number >= 0 and at least one positive; a ``ValueError`` naming the bad entry otherwise."""
    capabilities = list(capabilities)
    if isinstance(values, Mapping):
        check_capabilities(list(values), capabilities, what=f"capability in the {name}")
        vec = {c: values.get(c, 0.0) for c in capabilities}
    else:
        values = list(values)
        if len(values) != len(capabilities):
            raise ValueError(
                f"{name} has {len(values)} entries but there are {len(capabilities)} capabilities "
                f"{capabilities!r}"
            )
        vec = dict(zip(capabilities, values))
    for c, v in vec.items():
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name}: value for {c!r} is not a number: {v!r}") from None
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{name}: value for {c!r} must be finite and >= 0, got {v!r}")
        vec[c] = v
    total = sum(vec.values())
    if total <= 0:
        raise ValueError(f"{name} sums to {total!r}; it needs at least one positive entry")
    return vec


def _check_sum(vec: dict[str, float], name: str, atol: float) -> None:
    total = sum(vec.values())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (a distribution), but sums to {total:.6g}: {vec!r}")


class Requirement(Mapping[str, float]):
    """A task's requirement vector ``r``: weights over named capabilities, each >= 0, summing to 1.

    Checked once, when it is made, with :func:`validate_distribution`'s messages naming the bad
    value (an unknown or repeated name, a negative or non-numeric weight, a sum other than 1
    within 1e-4). The parts that take one (``BanditAllocationCallback``, the allocators,
    ``read-train``) pass it along without checking it again; where they are given a plain
    mapping (or the allocators a list in capability order) they make it into a Requirement once,
    with :meth:`of`. It reads as the mapping it was made from (``dict(r)``, ``r["math"]``,
    ``r == {...}``) and cannot be changed.

    Which capabilities exist is not its to know: :meth:`over` places it over a run's
    capabilities, refusing a name that is not one of them.
    """

    def __init__(self, weights: Mapping[str, float], *, name: str = "requirement vector") -> None:
        if not isinstance(weights, Mapping):
            raise ValueError(f"{name} must be a mapping capability -> weight, got {weights!r}")
        self._init(_checked_weights(weights, list(weights), name), name)

    def _init(self, weights: dict[str, float], name: str) -> None:
        _check_sum(weights, name, atol=1e-4)
        self._weights = dict(weights)
        self.name = name

    @classmethod
    def of(cls, values: Requirement | Mapping[str, float] | Sequence[float],
           capabilities: Sequence[str] | None = None, *, name: str = "requirement vector") -> Requirement:
        """``values`` as a Requirement: itself if it is one (not checked again); else checked now.
        A sequence is one weight per capability of ``capabilities``, in order."""
        if isinstance(values, Requirement):
            return values
        if isinstance(values, Mapping) or capabilities is None:
            return cls(values, name=name)
        made = cls.__new__(cls)
        made._init(_checked_weights(values, capabilities, name), name)
        return made

    def over(self, capabilities: Sequence[str]) -> dict[str, float]:
        """The vector over ``capabilities``, in their order, 0 where it names none, rescaled to
        sum to 1 exactly; a ``ValueError`` naming any capability of positive weight that is not
        among them. A name of weight 0 outside them is left out: it asks for nothing (a task
        card's vector lists every built-in capability, and a run may train a subset)."""
        check_capabilities([c for c, v in self._weights.items() if v > 0], capabilities,
                           what=f"capability in the {self.name}")
        vec = {c: self._weights.get(c, 0.0) for c in capabilities}
        total = sum(vec.values())
        return {c: v / total for c, v in vec.items()}

    def __getitem__(self, capability: str) -> float:
        return self._weights[capability]

    def __iter__(self) -> Iterator[str]:
        return iter(self._weights)

    def __len__(self) -> int:
        return len(self._weights)

    def __setattr__(self, key: str, value: Any) -> None:
        if key in self.__dict__:
            raise AttributeError(f"a Requirement cannot be changed (its {key!r}); make a new one")
        super().__setattr__(key, value)

    def __hash__(self) -> int:
        return hash(tuple(self._weights.items()))

    def __repr__(self) -> str:
        return f"Requirement({self._weights!r})"


def top_k(requirement: Mapping[str, float], k: int) -> list[str]:
    """The ``k`` most required capabilities (C_ess), ties broken by declaration order."""
    order = sorted(requirement, key=lambda c: -requirement[c])
    return order[: max(1, min(k, len(order)))]
