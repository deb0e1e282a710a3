"""Slot machinery: typed slots, the ``Template`` scaffold, and the registry of built-in templates.

A ``Template`` is an instruction scaffold with ``{slot}`` placeholders and a filler that draws the
slot values from a ``random.Random``. A filler also returns the *control factors* of what it drew
(number of constraints, hops, digits, tests, schema fields, document length, ...) and, where the
answer can be computed, a *check*: a small JSON-serialisable dict that ``verify_answer`` reads.
The check lives in ``Prompt.meta["check"]`` so prompts written to JSONL and read back on resume
still verify.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Fill", "Slot", "IntSlot", "FloatSlot", "ChoiceSlot", "WordsSlot", "Template"]


# A fill is (slot values, check or None, control factors).
Fill = tuple[dict[str, Any], "dict[str, Any] | None", dict[str, float]]


# --------------------------------------------------------------------------------------------
# Slots (the typed, user-visible part; built-in templates use the same hint-steered draws)
# --------------------------------------------------------------------------------------------


def _steer(rng: random.Random, hint: float, lo: float, hi: float) -> float:
    """A value in [lo, hi] near ``lo + hint * (hi - lo)``.

    The hint steers control factors towards a difficulty tier; the jitter keeps neighbouring
    tiers overlapping a little so every value stays reachable from every tier.
    """
    span = hi - lo
    return min(hi, max(lo, lo + hint * span + rng.uniform(-0.12, 0.12) * span))


def _ri(rng: random.Random, hint: float, lo: int, hi: int) -> int:
    """Integer version of ``_steer`` (inclusive bounds, ``lo <= hi``)."""
    if lo > hi:
        raise ValueError(f"_ri needs lo <= hi, got {lo} > {hi}")
    return int(min(hi, max(lo, round(_steer(rng, hint, lo - 0.49, hi + 0.49)))))


@dataclass(frozen=True)
class Slot:
    """Base class of typed slots for user-defined templates."""

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        """Return (value, control factor or None)."""
        raise NotImplementedError


@dataclass(frozen=True)
class IntSlot(Slot):
    min: int
    max: int

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        v = _ri(rng, hint, self.min, self.max)
        return v, float(v)


@dataclass(frozen=True)
class FloatSlot(Slot):
    min: float
    max: float
    digits: int = 2

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        v = round(_steer(rng, hint, self.min, self.max), self.digits)
        return f"{v:.{self.digits}f}", v


@dataclass(frozen=True)
class ChoiceSlot(Slot):
    values: tuple[Any, ...]

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        return rng.choice(self.values), None


@dataclass(frozen=True)
class WordsSlot(Slot):
    """``k`` distinct words from ``values`` joined by ``sep``; the control factor is ``k``."""

    values: tuple[str, ...]
    k_min: int = 1
    k_max: int = 3
    sep: str = ", "

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        k = _ri(rng, hint, self.k_min, min(self.k_max, len(self.values)))
        return self.sep.join(rng.sample(self.values, k)), float(k)


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """An instruction scaffold with ``{slot}`` placeholders and a filler for its slots.

    ``filler(rng, hint)`` returns ``(slots, check, factors)``: the slot values formatted into
    ``scaffold``, the verifier check (or None when the answer cannot be computed) and the
    control factors from which difficulty is scored. ``verifier`` names the check kind, for
    listing; the check itself travels with each prompt.
    """

    name: str
    capability: str
    scaffold: str
    filler: Callable[[random.Random, float], Fill] = field(repr=False, compare=False)
    verifier: str | None = None

    def fill(self, rng: random.Random, hint: float) -> tuple[str, dict[str, Any] | None, dict[str, float]]:
        slots, check, factors = self.filler(rng, hint)
        return self.scaffold.format(**slots).strip(), check, factors


_BUILTIN: list[Template] = []


def _template(name: str, capability: str, scaffold: str, verifier: str | None = None):
    """Register a built-in template whose filler is the decorated function."""

    def deco(fn: Callable[[random.Random, float], Fill]) -> Callable[[random.Random, float], Fill]:
        _BUILTIN.append(Template(name, capability, scaffold, fn, verifier))
        return fn

    return deco
