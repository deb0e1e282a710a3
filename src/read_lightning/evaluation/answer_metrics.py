"""What a user reads first about a student: does it answer, and does it answer like its teacher?

Pure functions over answers that were already produced (no model here):

* :func:`final_answer` reads the part of an answer a task scores, by the card's evaluation type:
  the final number or ``Answer:`` word for ``exact_match`` and ``fidelity`` cards (GSM8K style,
  see :func:`~.answers.extract_answer`), the option an answer names
  for ``multiple_choice``, and the pass/fail verdict of its program for ``pass_at_1``.
* :func:`is_degenerate`: empty, or one token making up more than half of the answer.
* :func:`summarise` turns per-item outcomes into rates with 95% Wilson intervals.

Agreement counts an item when the student's final answer equals the teacher's; an answer with
no readable final answer agrees with nothing, so two blank answers are not a match.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from read_lightning.evaluation.answers import extract_answer

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion, in percent; (0, 100) when ``n`` is 0.

    Wilson rather than the normal approximation: it stays inside [0, 100] and is honest at the
    rates a broken student shows (0 of 200).
    """
    if n <= 0:
        return 0.0, 100.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float, float]:
    """Mean of ``values`` with a 95% normal interval (the interval is the mean itself for n < 2)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = z * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().strip(" .*:\"'`").lower()


def named_option(text: str, choices: Sequence[str]) -> int | None:
    """The index of the choice ``text`` names first (whole words, case-insensitive), else None."""
    low = text.lower()
    best: tuple[int, int] | None = None
    for i, choice in enumerate(choices):
        match = re.search(rf"(?<!\w){re.escape(str(choice).strip().lower())}(?!\w)", low)
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), i)
    return None if best is None else best[1]


def final_answer(evaluation: str, text: str, row: Mapping[str, Any] | None = None) -> str | None:
    """The scored part of ``text`` for a card of type ``evaluation``; None when there is none.

    ``row`` supplies the choices of a ``multiple_choice`` item. For ``pass_at_1`` the answer is
    the program's verdict, which needs running it: pass the verdict ("passed"/"failed") as text.
    """
    if evaluation in ("exact_match", "fidelity"):
        got = extract_answer(text)
        if got is None:
            lines = [line for line in text.splitlines() if line.strip()]
            got = _normalise(lines[-1]) if lines else None
        return got or None
    if evaluation == "multiple_choice":
        index = named_option(text, (row or {}).get("choices", ()))
        return None if index is None else str(index)
    if evaluation == "pass_at_1":
        return text if text in ("passed", "failed", "timeout") else None
    raise ValueError(f"unknown evaluation type {evaluation!r}")


def is_degenerate(token_ids: Sequence[int], text: str) -> bool:
    """Empty, or one token making up more than half of the answer (``"1222222"``, blank lines)."""
    if not text.strip() or not token_ids:
        return True
    return Counter(token_ids).most_common(1)[0][1] > len(token_ids) / 2


def summarise(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rates (percent) with 95% Wilson intervals from per-item outcomes.

    Each item may carry ``agree``, ``correct`` and ``degenerate`` (bools) and ``logprob``; a key
    absent from every item (no gold answers, no teacher) is absent from the result.
    """
    out: dict[str, Any] = {"n": len(items)}
    for key, name in (("agree", "agreement"), ("correct", "accuracy"), ("degenerate", "degenerate")):
        values = [bool(it[key]) for it in items if it.get(key) is not None]
        if values:
            hits = sum(values)
            out[name] = 100.0 * hits / len(values)
            out[f"{name}_ci"] = list(wilson_interval(hits, len(values)))
    return out


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired outcomes, with a 95% interval (pairs: the same item and seed)."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes differ in length: {len(a)} vs {len(b)}")
    return mean_interval([x - y for x, y in zip(a, b)])
