"""Baseline allocators: static mixtures (uniform, ``w = r``, single capability, a given mixture) and random."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from read_lightning.allocation.protocol import Allocator, Vector
from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, validate_distribution

__all__ = [
    "UniformAllocator",
    "TaskStaticAllocator",
    "SingleCapabilityAllocator",
    "FixedAllocator",
    "RandomAllocator",
]


class _StaticAllocator(Allocator):
    """The same mixture every step (``self.mixture``, ``(K,)``)."""

    mixture: np.ndarray

    def _choose(self, s: np.ndarray, remaining: float) -> tuple[np.ndarray, dict[str, Any]]:
        return self.mixture.copy(), {}


class UniformAllocator(_StaticAllocator):
    """``w = 1/K`` everywhere."""

    def __init__(self, capabilities: Sequence[str] = DEFAULT_CAPABILITIES, requirement: Vector | None = None, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(capabilities, requirement, seed, **kwargs)
        self.mixture = np.full(len(self.capabilities), 1.0 / len(self.capabilities))


class TaskStaticAllocator(_StaticAllocator):
    """``w = r``: the mixture is the requirement vector."""

    def __init__(self, capabilities: Sequence[str] = DEFAULT_CAPABILITIES, requirement: Vector | None = None, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(capabilities, requirement, seed, **kwargs)
        self.mixture = self.requirement.copy()


class SingleCapabilityAllocator(_StaticAllocator):
    """All budget on one capability: ``capability``, or by default the most required one (ties:
    declaration order). The one-hot baselines of ``read-train compare`` use it."""

    def __init__(
        self,
        capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
        requirement: Vector | None = None,
        seed: int = 0,
        *,
        capability: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(capabilities, requirement, seed, **kwargs)
        if capability is not None and capability not in self.capabilities:
            raise ValueError(f"capability {capability!r} is not one of the capabilities {list(self.capabilities)}")
        self.capability = capability if capability is not None else self.capabilities[self.essential[0]]
        self.mixture = np.zeros(len(self.capabilities))
        self.mixture[self.capabilities.index(self.capability)] = 1.0


class FixedAllocator(_StaticAllocator):
    """A user-given mixture (dict name -> weight or list in capability order, summing to 1)."""

    def __init__(
        self,
        capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
        requirement: Vector | None = None,
        seed: int = 0,
        *,
        mixture: Vector | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(capabilities, requirement, seed, **kwargs)
        if mixture is None:
            raise ValueError("FixedAllocator needs mixture=..., a distribution over the capabilities")
        mix = validate_distribution(mixture, self.capabilities, name="mixture", atol=1e-3)
        self.mixture = np.array([mix[c] for c in self.capabilities])


class RandomAllocator(Allocator):
    """A fresh Dirichlet(``alpha``) mixture every step, from the seeded generator."""

    def __init__(
        self,
        capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
        requirement: Vector | None = None,
        seed: int = 0,
        *,
        alpha: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(capabilities, requirement, seed, **kwargs)
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}")
        self.alpha = float(alpha)

    def _choose(self, s: np.ndarray, remaining: float) -> tuple[np.ndarray, dict[str, Any]]:
        return self.rng.dirichlet(np.full(len(self.capabilities), self.alpha)), {}
