"""The methods ``read-train compare`` runs: every allocator as the recipe has it, and the paper's six
one-hot teacher-signal baselines (Table 1), each an override of the recipe.

A paper baseline spends the whole budget on one target capability (the ``single`` allocator:
the top capability of the task's requirement vector, or ``--target-capability``) and fixes how
the student learns from the teacher:

========== ============ ====================== ========================================== =========
method     signal       teacher is asked       student loss (``model.*``)                  positions
========== ============ ====================== ========================================== =========
resp_sft   Resp         the prompt             CE on the answer (``kd_weight 0``)          answer
resp_kd    Resp         the prompt             0.5 CE + 0.5 KL(teacher || student)        answer
cot_sft    CoT          prompt + step by step  CE on the reasoning and answer              answer
cot_kd     CoT          prompt + step by step  0.5 CE + 0.5 KL(teacher || student)        answer
logit_sft  Logit        the prompt             KL(teacher || student) only (soft labels)   all
logit_kd   Logit        the prompt             0.5 CE + 0.5 KL(teacher || student)        all
========== ============ ====================== ========================================== =========

Every loss key is set (``kd_weight``, ``kd_positions``, ``divergence: forward_kl``,
``temperature: 1.0``), so a method means the same whatever the recipe's own loss; docs/guide.md
("The paper's baseline table") says why each is what it is.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from read_lightning.prompts.teacher_prompts import CHAIN_OF_THOUGHT

__all__ = [
    "METHOD_KEYS",
    "Method",
    "PAPER",
    "PAPER_BASELINES",
    "describe_loss",
    "resolve_methods",
]

# The group name that stands for the six paper baselines in ``--allocators``.
PAPER = "paper"

# The recipe keys a paper baseline sets: an override of one of them would change what it means.
METHOD_KEYS: tuple[str, ...] = ("model.kd_weight", "model.kd_positions", "model.divergence", "model.temperature",
                                "data.teacher_prompt")


@dataclass(frozen=True)
class Method:
    """One row of the comparison: an allocator, and what it changes in the recipe.

    ``model``/``data``: keys set in the recipe's ``model:``/``data:`` sections (a None value
    removes the key, so the class default applies); ``allocator_kwargs`` are added to the
    allocator's. An allocator compared as the recipe has it changes nothing but the allocator.
    """

    name: str
    allocator: str
    signal: str | None = None  # "Resp", "CoT", "Logit" for a paper baseline
    objective: str | None = None  # "SFT", "KD"
    model: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    allocator_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def paper(self) -> bool:
        return self.signal is not None


def _loss(kd_weight: float, kd_positions: str) -> dict[str, Any]:
    return {"kd_weight": kd_weight, "kd_positions": kd_positions, "divergence": "forward_kl", "temperature": 1.0}


_PLAIN: dict[str, Any] = {"teacher_prompt": None}
_COT: dict[str, Any] = {"teacher_prompt": CHAIN_OF_THOUGHT}

PAPER_BASELINES: dict[str, Method] = {
    m.name: m
    for m in (
        Method("resp_sft", "single", "Resp", "SFT", _loss(0.0, "answer"), _PLAIN),
        Method("resp_kd", "single", "Resp", "KD", _loss(0.5, "answer"), _PLAIN),
        Method("cot_sft", "single", "CoT", "SFT", _loss(0.0, "answer"), _COT),
        Method("cot_kd", "single", "CoT", "KD", _loss(0.5, "answer"), _COT),
        Method("logit_sft", "single", "Logit", "SFT", _loss(1.0, "all"), _PLAIN),
        Method("logit_kd", "single", "Logit", "KD", _loss(0.5, "all"), _PLAIN),
    )
}


def resolve_methods(names: Sequence[str], allocators: Sequence[str], target: str | None = None) -> list[Method]:
    """The methods ``names`` asks for, in order: an allocator's name, a paper baseline's, or
    ``paper`` for all six baselines. ``target`` sets the capability of every one-hot method (the
    paper baselines and ``single``); None leaves it to the requirement vector's top capability.

    Raises:
        ValueError: naming every unknown name with its close matches, or a name given twice.
    """
    known = [*allocators, *PAPER_BASELINES, PAPER]
    expanded: list[str] = []
    unknown: list[str] = []
    for name in names:
        if name == PAPER:
            expanded += list(PAPER_BASELINES)
        elif name in allocators or name in PAPER_BASELINES:
            expanded.append(name)
        else:
            unknown.append(name)
    if unknown or not names:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hints.append(f"{name!r}" + (f" (did you mean {' or '.join(close)}?)" if close else ""))
        raise ValueError(
            f"unknown method(s) {', '.join(hints) or repr(list(names))}; choose allocators from {sorted(allocators)}, "
            f"paper baselines from {list(PAPER_BASELINES)}, or {PAPER!r} for all six"
        )
    twice = sorted({n for n in expanded if expanded.count(n) > 1})
    if twice:
        raise ValueError(f"methods named twice: {twice}")
    methods = [PAPER_BASELINES.get(n) or Method(n, n) for n in expanded]
    if target is None:
        return methods
    return [Method(m.name, m.allocator, m.signal, m.objective, m.model, m.data, {**m.allocator_kwargs,
                                                                                 "capability": target})
            if m.allocator == "single" else m for m in methods]


def describe_loss(model: Mapping[str, Any]) -> str:
    """The student's loss of a recipe's ``model:`` section in a few words (DistillationModule's
    defaults where a key is absent), e.g. ``0.5 CE + 0.5 KL (all tokens)``."""
    weight = float(model.get("kd_weight", 0.0))
    if weight == 0.0:
        return "CE on the answer"
    names = {"forward_kl": "KL", "reverse_kl": "reverse KL", "jsd": "JSD"}
    kd = names.get(str(model.get("divergence", "forward_kl")), str(model.get("divergence")))
    temperature = float(model.get("temperature", 1.0))
    if temperature != 1.0:
        kd += f" (T={temperature:g})"
    where = "all tokens" if model.get("kd_positions", "answer") == "all" else "answer"
    terms = kd if weight == 1.0 else f"{1 - weight:g} CE + {weight:g} {kd}"
    return f"{terms} ({where})"
