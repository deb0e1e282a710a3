"""Zero-shot requirement (method ``"zero_shot"``): the teacher rates each capability 0-10 for the
card, and :func:`parse_importance` reads its answer robustly."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Sequence
from typing import Any

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, validate_distribution
from read_lightning.evaluation.tasks import TaskCard
from read_lightning.requirement.cards import RequirementResult, card_text, describe_requirement
from read_lightning.teachers.generation import Teacher

__all__ = ["parse_importance", "zero_shot_prompt", "zero_shot_requirement"]


# --------------------------------------------------------------------------- 3. zero-shot


def zero_shot_prompt(card: TaskCard, capabilities: Sequence[str] | None = None) -> str:
    """The user message asking a teacher to rate each capability 0-10 for ``card``."""
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    lines = "\n".join(f"{c}: <0-10>" for c in capabilities)
    return (
        "How important is each capability below for doing this task well? Rate each from 0 "
        "(not needed) to 10 (essential).\n\n"
        f"Task:\n{card_text(card)}\n\n"
        f"Answer with exactly one line per capability, in this form:\n{lines}"
    )


def _norm(name: str) -> str:
    """``"Tool-Use"``, ``"tool_use"``, ``" tool  use"`` -> ``"tool use"``."""
    return re.sub(r"[\s_\-]+", " ", name.lower()).strip()


_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_NUMBER = r"(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?"


def _score(value: Any) -> float | None:
    """A 0-10 rating from ``8``, ``"8"``, ``"8/10"``; ``None`` if it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
    else:
        match = re.fullmatch(r"\s*" + _NUMBER + r"\s*", str(value))
        if not match:
            return None
        v = float(match.group(1))
        if match.group(2) and float(match.group(2)) > 0:
            v = 10.0 * v / float(match.group(2))
    return min(max(v, 0.0), 10.0) if math.isfinite(v) else None


def parse_importance(text: str, capabilities: Sequence[str] | None = None) -> dict[str, float] | None:
    """Ratings ``{capability: 0-10}`` read from a model's answer; ``None`` when none can be read.

    Accepts a JSON object (``{"math": 8}``, single quotes too) or lines such as ``math: 8``,
    ``- **Math** - 8/10``, ``1. Tool use = 7``, ``long-context: 3 out of 10``, several per line
    or one per line; names match case-, space-, hyphen- and underscore-insensitively. The first
    rating of a capability wins; ratings are clipped to [0, 10], a ``/N`` denominator rescales to
    10. Unrated capabilities are left out (the caller decides what they mean).
    """
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    alias = {_norm(c): c for c in capabilities}
    scores: dict[str, float] = {}
    for blob in _JSON_OBJECT.findall(text):
        for candidate in (blob, blob.replace("'", '"')):
            try:
                obj = json.loads(candidate)
            except json.JSONDecodeError:
                continue
            for key, value in obj.items() if isinstance(obj, dict) else ():
                cap, v = alias.get(_norm(str(key))), _score(value)
                if cap is not None and v is not None:
                    scores.setdefault(cap, v)
            break
    if scores:
        return scores
    names = "|".join(re.escape(a).replace(r"\ ", r"[\s_\-]+") for a in sorted(alias, key=len, reverse=True))
    # A name, then only punctuation or a few filler words, then the number: "Math - 8/10",
    # "**math**: 8", "tool_use (importance: 7)". Digits in between break the match, so a name
    # next to an unrelated number further on is not read as a rating.
    pattern = re.compile(
        rf"(?<![a-z])({names})(?![a-z])[^\w\n]*(?:(?:importance|score|rating|is|of)[^\w\n]*)*" + _NUMBER,
        re.IGNORECASE,
    )
    for match in pattern.finditer(text):
        cap = alias[_norm(match.group(1))]
        v = _score(match.group(2) + (f"/{match.group(3)}" if match.group(3) else ""))
        if v is not None:
            scores.setdefault(cap, v)
    return scores or None


def zero_shot_requirement(
    card: TaskCard, teacher: Teacher, capabilities: Sequence[str] | None = None, *, max_new_tokens: int = 128
) -> RequirementResult:
    """Ask ``teacher`` to rate every capability 0-10 for ``card`` and normalise the ratings.

    Unrated capabilities count as 0. When nothing can be parsed or every rating is 0, the result
    is uniform, with a ``UserWarning`` and an explanation that says so.
    """
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    answer = teacher.generate([zero_shot_prompt(card, capabilities)], max_new_tokens=max_new_tokens)[0].text
    scores = parse_importance(answer, capabilities)
    if not scores or sum(scores.values()) <= 0:
        snippet = " ".join(answer.split())[:80]
        reason = "no capability ratings" if not scores else "all ratings 0"
        msg = f"zero-shot requirement for {card.name!r}: {reason} in the teacher's answer {snippet!r}; using uniform"
        warnings.warn(msg, stacklevel=2)
        uniform = {c: 1.0 / len(capabilities) for c in capabilities}
        return RequirementResult(uniform, "zero_shot", f"{msg} (fallback)")
    vector = validate_distribution(scores, capabilities, name="zero-shot ratings", normalise=True)
    rated = ", ".join(f"{c} {scores[c]:g}" for c in capabilities if c in scores)
    return RequirementResult(
        vector,
        "zero_shot",
        f"rated by the teacher (0-10; unrated = 0): {rated} -> {describe_requirement(vector)}",
    )
