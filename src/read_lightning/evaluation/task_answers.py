"""Does the student answer the task, and does it answer like its teacher?

:func:`answer_outcomes` has the model answer every row of a split greedily, as a user would call
it, and scores each answer by the card's own rule (see :mod:`.answer_metrics`): agreement with
the teacher's greedy answer, correctness against gold where the card has gold, and whether the
answer is degenerate. :func:`answer_report` adds the rates with their 95% intervals.

This is the headline of a run; the log-likelihood fidelity of :func:`~.tasks.evaluate_task` is
a smooth diagnostic next to it, which can rise while no answer is right.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from read_lightning.evaluation.answer_metrics import final_answer, is_degenerate, summarise
from read_lightning.core.jsonl import write_json_atomic
from read_lightning.evaluation.answers import answers_match
from read_lightning.evaluation.scoring import preserved_state
from read_lightning.evaluation.tasks import TaskCard, verdicts
from read_lightning.teachers.generation import HFTeacher

__all__ = ["USEFUL_AGREEMENT", "MAX_DEGENERATE", "answer_outcomes", "answer_report", "has_gold"]

# A student is called usable when it gives its teacher's answer at least this often (percent)...
USEFUL_AGREEMENT = 50.0
# ... and at most this share of its answers are degenerate (percent).
MAX_DEGENERATE = 5.0


def has_gold(card: TaskCard) -> bool:
    """Whether the card's rows carry gold answers (a ``fidelity`` card's answers are references)."""
    return card.evaluation != "fidelity"


def _scored(card: TaskCard, rows: Sequence[Mapping[str, Any]], answers: Sequence[str]) -> list[str | None]:
    if card.evaluation == "pass_at_1":
        return [final_answer("pass_at_1", v) for v in verdicts(card, rows, answers)]
    return [final_answer(card.evaluation, a, r) for a, r in zip(answers, rows)]


def _correct(card: TaskCard, row: Mapping[str, Any], answer: str, scored: str | None) -> bool | None:
    if not has_gold(card):
        return None
    if card.evaluation == "exact_match":
        return answers_match(answer, str(row["answer"]))
    if card.evaluation == "multiple_choice":
        return scored == str(row["gold"])
    return scored == "passed"


def answer_outcomes(
    card: TaskCard,
    model: torch.nn.Module,
    tokenizer: Any,
    split: str = "test",
    *,
    teacher_answers: Sequence[Mapping[str, Any]] | None = None,
    limit: int | None = None,
    batch_size: int = 16,
    cache_dir: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """One record per row of ``split``: the model's greedy answer and how it scores.

    Keys: ``answer``, ``final`` (the scored part, None when unreadable), ``degenerate``,
    ``correct`` (None without gold), ``agree`` (None without ``teacher_answers``: rows with an
    ``answer`` text each, e.g. from :func:`~.tasks.task_references`). Deterministic; the model
    comes back in its train/eval mode with every RNG state unchanged.

    ``cache_dir``: keep the answers in ``<cache_dir>/<key>.json``, keyed by a hash of the model's
    weights, the prompts and the decoding settings, and read them from there next time. Worth it
    for a model met again, such as a recipe's untrained student; never wrong, since any change of
    a weight or a prompt is another key.
    """
    rows = card.rows(split)
    scored = rows if limit is None else rows[:limit]
    # teacher answers for the whole split, or for just the rows answered (the same limit)
    if teacher_answers is not None and len(teacher_answers) not in (len(rows), len(scored)):
        raise ValueError(f"{len(teacher_answers)} teacher answers for {len(rows)} rows of {card.name!r}/{split}")
    rows = scored
    if teacher_answers is not None:
        teacher_answers = teacher_answers[: len(rows)]
    messages = [card.user_message(r) for r in rows]
    strip = card.evaluation != "pass_at_1"
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / f"{_answers_key(model, messages, card.max_new_tokens, batch_size, strip)}.json"
    answers = _read_answers(cached, len(messages))
    if answers is None:
        with preserved_state(model):
            generator = HFTeacher(model, tokenizer, batch_size=batch_size, max_new_tokens=card.max_new_tokens,
                                  temperature=0.0, strip=strip)
            answers = [g.text for g in generator.generate(messages)]
        if cached is not None:
            write_json_atomic(cached, {"answers": answers})
    scored = _scored(card, rows, answers)
    teacher_scored = None
    if teacher_answers is not None:
        teacher_scored = _scored(card, rows, [str(t["answer"]) for t in teacher_answers])
    out = []
    for i, (row, answer, final) in enumerate(zip(rows, answers, scored)):
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        agree = None
        if teacher_scored is not None:
            agree = final is not None and final == teacher_scored[i]
        out.append({"answer": answer, "final": final, "degenerate": is_degenerate(ids, answer),
                    "correct": _correct(card, row, answer, final), "agree": agree})
    return out


def _answers_key(model: torch.nn.Module, messages: Sequence[Any], max_new_tokens: int, batch_size: int,
                 strip: bool) -> str:
    from read_lightning.teachers.models import weights_digest

    return weights_digest(model, max_new_tokens, batch_size, strip, list(messages))


def _read_answers(path: Path | None, expected: int) -> list[str] | None:
    if path is None or not path.is_file():
        return None
    try:
        answers = json.loads(path.read_text())["answers"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a broken cache file is regenerated
    if not isinstance(answers, list) or len(answers) != expected or not all(isinstance(a, str) for a in answers):
        return None
    return answers


def answer_report(outcomes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Rates with 95% intervals (see :func:`~.answer_metrics.summarise`) and a plain verdict.

    ``usable`` is False when agreement is below :data:`USEFUL_AGREEMENT` or more than
    :data:`MAX_DEGENERATE` percent of answers are degenerate; None without a teacher.
    """
    rates = summarise(outcomes)
    if "agreement" in rates:
        rates["usable"] = rates["agreement"] >= USEFUL_AGREEMENT and rates.get("degenerate", 0.0) <= MAX_DEGENERATE
    else:
        rates["usable"] = None
    return rates
