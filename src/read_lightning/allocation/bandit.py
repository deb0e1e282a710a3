"""Allocators: choose the data mixture ``w`` over capabilities at each decision step (the registry).

The protocol (``select`` / ``observe`` / ``development_checkpoint``, units, exact state) is
``protocol``'s. The allocators live in ``protocol`` (protocol, reward, state), ``ucb`` (the published
UCB-over-ensemble allocator, ``read_ucb``), ``gain`` (the default ``read``), ``transfer`` (``read_transfer``,
and ``read_study`` with a measured transfer prior from ``study``) and ``static`` (baselines); this module
names them and re-exports their public names.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Callable

from read_lightning.allocation.protocol import Allocator, Vector, compute_reward
from read_lightning.allocation.gain import GainTrackingAllocator
from read_lightning.allocation.transfer import StudyAllocator, TransferAllocator
from read_lightning.allocation.static import (
    FixedAllocator,
    RandomAllocator,
    SingleCapabilityAllocator,
    TaskStaticAllocator,
    UniformAllocator,
)
from read_lightning.allocation.ucb import BootstrapEnsemble, GreedyAllocator, UCBEnsembleAllocator, candidate_actions

__all__ = [
    "compute_reward",
    "candidate_actions",
    "BootstrapEnsemble",
    "Allocator",
    "GainTrackingAllocator",
    "TransferAllocator",
    "StudyAllocator",
    "UCBEnsembleAllocator",
    "GreedyAllocator",
    "UniformAllocator",
    "TaskStaticAllocator",
    "SingleCapabilityAllocator",
    "FixedAllocator",
    "RandomAllocator",
    "ALLOCATORS",
    "allocator_options",
    "make_allocator",
]

ALLOCATORS: dict[str, Callable[..., Allocator]] = {
    "read": GainTrackingAllocator,  # the default (docs/allocator.md)
    "read_transfer": TransferAllocator,  # read plus a fitted transfer model (opt-in: it did not beat read)
    "read_study": StudyAllocator,  # read_transfer with a measured transfer prior (opt-in: needs a study)
    "read_ucb": UCBEnsembleAllocator,  # the published UCB over a bootstrap ensemble: ReAD's reference
    "uniform": UniformAllocator,
    "task_static": TaskStaticAllocator,
    "single": SingleCapabilityAllocator,
    "greedy": GreedyAllocator,
    "fixed": FixedAllocator,
    "random": RandomAllocator,
}


def allocator_options(name: str) -> set[str] | None:
    """Keyword options the allocator ``name`` accepts, following ``**kwargs`` up its base
    classes; None if some constructor accepts anything."""
    if name not in ALLOCATORS:
        raise ValueError(f"unknown allocator {name!r}; choose one of {sorted(ALLOCATORS)!r}")
    names: set[str] = set()
    for klass in inspect.getmro(ALLOCATORS[name]):  # type: ignore[arg-type]
        if "__init__" not in vars(klass) or klass is object:
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names - {"self", "capabilities", "requirement", "seed"}
    return None


def make_allocator(name: str, capabilities: Sequence[str], requirement: Vector, seed: int = 0, **kwargs: Any) -> Allocator:
    """Build the allocator registered as ``name`` in ``ALLOCATORS``; extra kwargs go to its constructor."""
    if name not in ALLOCATORS:
        raise ValueError(f"unknown allocator {name!r}; choose one of {sorted(ALLOCATORS)!r}")
    return ALLOCATORS[name](capabilities, requirement, seed, **kwargs)
