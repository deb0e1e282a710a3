"""Task cards as requirement inference reads them: the result type, the card's text, the vector
written in the card (method ``"card"``), and finding a card by path or example name."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, validate_distribution
from read_lightning.evaluation.tasks import TaskCard

__all__ = [
    "RequirementResult",
    "card_requirement",
    "card_text",
    "describe_requirement",
    "load_card",
    "resolve_card",
]


@dataclass(frozen=True)
class RequirementResult:
    """A requirement vector (a distribution over capabilities), how it was obtained, and why."""

    vector: dict[str, float]
    method: str
    explanation: str


def describe_requirement(vector: Mapping[str, float], k: int = 3) -> str:
    """``"math 0.52, reasoning 0.31, code 0.09"``: the ``k`` largest entries, for explanations."""
    top = sorted(vector.items(), key=lambda kv: -kv[1])[:k]
    return ", ".join(f"{c} {v:.2f}" for c, v in top)


def card_text(card: TaskCard) -> str:
    """The text the identifier and the zero-shot teacher see: what the card says the task is.

    Description, instruction, input/output formats and exemplars; not the name (an arbitrary id)
    nor the hand-set requirement (that would leak the answer into the identifier's input).
    """
    parts = [card.description.strip()]
    if card.instruction.strip():
        parts.append(f"Instruction: {card.instruction.strip()}")
    if card.input_format.strip():
        parts.append(f"Input format: {card.input_format.strip()}")
    if card.output_format.strip():
        parts.append(f"Output format: {card.output_format.strip()}")
    for i, ex in enumerate(card.exemplars, start=1):
        parts.append(f"Example {i}: " + " | ".join(f"{k}: {str(v).strip()}" for k, v in ex.items()))
    return "\n".join(parts)


# --------------------------------------------------------------------------- 1. the card


def card_requirement(card: TaskCard, capabilities: Sequence[str] | None = None) -> RequirementResult:
    """The card's own vector, re-validated against ``capabilities`` and renormalised.

    ``TaskCard.load`` validates against the capabilities it was given; this checks again, so a
    card built in code, or loaded for another capability set, is held to the same rules.
    Raises ``ValueError`` naming the card and the bad entry, or that there is no vector.
    """
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    where = str(card.path or card.name)
    if card.requirement is None:
        raise ValueError(f"task card {where!r} has no 'requirement' field; use method 'identifier' or 'zero_shot'")
    vector = validate_distribution(
        card.requirement, capabilities, name=f"{where}: field 'requirement'", normalise=True
    )
    return RequirementResult(vector, "card", f"given in task card {card.name!r}: {describe_requirement(vector)}")


def resolve_card(name_or_path: str) -> Path:
    """A card path, or the name of a shipped example task (``arith_word``)."""
    from read_lightning.evaluation.tasks import list_example_tasks

    path = Path(name_or_path)
    if path.is_file():
        return path
    for example in list_example_tasks():
        if example.parent.name == name_or_path:
            return example
    names = [p.parent.name for p in list_example_tasks()]
    raise FileNotFoundError(f"task card {name_or_path!r} is neither a file nor an example task {names!r}")


def load_card(name_or_path: str, capabilities: Sequence[str] = (), *, check_data: bool = False) -> TaskCard:
    """A task card by path or example-task name, for inference tools.

    Its ``requirement`` is checked against the built-in capabilities plus ``capabilities``, so a
    tool working on a subset of capabilities can still read cards written for all of them.
    """
    known = list(dict.fromkeys([*DEFAULT_CAPABILITIES, *capabilities]))
    return TaskCard.load(resolve_card(name_or_path), known, check_data=check_data)
