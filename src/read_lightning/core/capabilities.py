"""The capability set C and validation of vectors over it (requirement vectors, mixtures).

Pure Python: no torch, no Lightning. Every other module names capabilities through here so
an unknown name is rejected in one place, with one message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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

__all__ = ["DEFAULT_CAPABILITIES", "TASK_LABEL", "check_capabilities", "validate_distribution", "top_k"]

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
    if not normalise and abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (a distribution), but sums to {total:.6g}: {vec!r}")
    return {c: v / total for c, v in vec.items()}


def top_k(requirement: Mapping[str, float], k: int) -> list[str]:
    """The ``k`` most required capabilities (C_ess), ties broken by declaration order."""
    order = sorted(requirement, key=lambda c: -requirement[c])
    return order[: max(1, min(k, len(order)))]
