"""The parts of a run's ``summary.json``, each keyed by the role of the part that wrote it.

``RunState`` writes the file; each part that measures something names its role in a
``summary_key`` class attribute. The report and ``read-train compare`` read a part with
:func:`summary_part`, which also reads the ``summary.json`` of older runs, where each part was
keyed by the name of the callback class that wrote it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["ALLOCATION", "PROBES", "ROLES", "TASK", "summary_part"]

PROBES = "probes"  # the capability probes: profile history, seconds spent
TASK = "task"  # the task evaluation: dev utility history, test answers before and after
ALLOCATION = "allocation"  # the bandit: allocator, decisions, requirement vector

# The key of each part in summary.json files written before the roles.
_CLASS_KEYS = {
    PROBES: "CapabilityProbeCallback",
    TASK: "TaskEvaluationCallback",
    ALLOCATION: "BanditAllocationCallback",
}
ROLES = tuple(_CLASS_KEYS)


def summary_part(summary: Mapping[str, Any] | None, role: str) -> dict[str, Any]:
    """The part of a run's summary with ``role`` (``{}`` when the run has none), from a summary
    keyed by role or from an older one keyed by class name."""
    if role not in _CLASS_KEYS:
        raise ValueError(f"unknown summary part {role!r}; choose one of {list(ROLES)}")
    summary = summary or {}
    part = summary.get(role)
    if part is None:
        part = summary.get(_CLASS_KEYS[role])
    return dict(part) if isinstance(part, Mapping) else {}
