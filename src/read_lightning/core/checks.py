"""Checks for configuration values: a bad value fails where it is given, naming its key.

Config values arrive from YAML, where a ``None``, a string or a NaN is one typo away; they must
fail at construction with the key's name, not later inside an optimiser or a comparison.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_number"]


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    open_low: bool = False,
    open_high: bool = False,
    integer: bool = False,
) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is a finite number (an integer if
    ``integer``) between ``low`` and ``high``, bounds included unless ``open_low``/``open_high``.

    Config values arrive from YAML; a ``None``, a string or a NaN must fail here with the key's
    name, not later inside an optimiser or a comparison.
    """
    kind = "an integer" if integer else "a number"
    bounds = ("(" if open_low else "[") + f"{'-inf' if low is None else low}, {'inf' if high is None else high}" + (
        ")" if open_high else "]")
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    try:
        ok = ok and math.isfinite(value)
    except OverflowError:  # an integer too large for a float (10**400): out of any bounds here
        ok = False
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        raise ValueError(f"{name} must be {kind} in {bounds}, got {value!r}")
