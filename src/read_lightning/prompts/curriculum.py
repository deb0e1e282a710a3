"""Difficulty tiers and the curriculum that picks one at the current budget progress."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TIERS", "Curriculum"]


TIERS: tuple[str, str, str] = ("easy", "medium", "hard")

# --------------------------------------------------------------------------------------------
# Curriculum
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curriculum:
    """Tier probabilities (easy, medium, hard) as a step function of budget progress.

    ``probs[i]`` applies while ``progress < boundaries[i]``; the last row applies after the last
    boundary. Defaults are the method's: 0.1/0.8/0.1 until 30% of the budget, 0.1/0.5/0.4 until
    70%, then 0.05/0.2/0.75.
    """

    boundaries: tuple[float, ...] = (0.3, 0.7)
    probs: tuple[tuple[float, float, float], ...] = ((0.1, 0.8, 0.1), (0.1, 0.5, 0.4), (0.05, 0.2, 0.75))

    def __post_init__(self) -> None:
        bounds = tuple(float(b) for b in self.boundaries)
        probs = tuple(tuple(float(p) for p in row) for row in self.probs)
        object.__setattr__(self, "boundaries", bounds)
        object.__setattr__(self, "probs", probs)
        if len(probs) != len(bounds) + 1:
            raise ValueError(
                f"curriculum needs len(boundaries) + 1 probability rows, got {len(bounds)} boundaries "
                f"and {len(probs)} rows"
            )
        if any(not 0.0 < b < 1.0 for b in bounds) or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"curriculum boundaries must be increasing and inside (0, 1), got {bounds!r}")
        for row in probs:
            if len(row) != 3 or any(p < 0 or not math.isfinite(p) for p in row) or abs(sum(row) - 1) > 1e-6:
                raise ValueError(f"curriculum row {row!r} must be 3 non-negative probabilities summing to 1")

    @classmethod
    def from_config(cls, value: "Curriculum | Mapping[str, Any] | None") -> "Curriculum":
        """Accept a ``Curriculum``, a mapping with ``boundaries``/``probs`` (YAML), or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Curriculum):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"boundaries", "probs"}
            if unknown:
                raise ValueError(f"unknown curriculum keys {sorted(unknown)!r}; expected 'boundaries' and 'probs'")
            kwargs = {k: tuple(tuple(r) if k == "probs" else r for r in v) for k, v in value.items()}
            return cls(**kwargs)
        raise TypeError(f"curriculum must be a Curriculum, a mapping or None, got {type(value).__name__}")

    def probabilities(self, progress: float) -> tuple[float, float, float]:
        for bound, row in zip(self.boundaries, self.probs):
            if progress < bound:
                return row  # type: ignore[return-value]
        return self.probs[-1]  # type: ignore[return-value]

    def tier(self, progress: float, rng: random.Random) -> str:
        return rng.choices(TIERS, weights=self.probabilities(progress))[0]
