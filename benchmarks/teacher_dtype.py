"""What a bf16 teacher changes: its greedy answers against the fp32 teacher's, per task card.

    python benchmarks/teacher_dtype.py                       # three cards, 200 test items each: about 6 minutes
    python benchmarks/teacher_dtype.py --cards fact_extract --limit 50   # quick

``benchmarks/generation.py --bf16`` measures how much faster the decode loop runs on bfloat16
weights and how many greedy answers stay token-identical. This script says what the changed
answers are worth: the embedded teacher answers each card's test split greedily in fp32 and in
bf16, and it prints one JSON object with, per card, the answers with the same text, the answers
that agree by the card's own rule (final number, option, normalised answer line), and the gold
accuracy of each, with 95% Wilson intervals and the items whose correctness differs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import torch

from read_lightning.evaluation.answer_metrics import wilson_interval
from read_lightning.evaluation.task_answers import answer_outcomes
from read_lightning.evaluation.tasks import TaskCard
from read_lightning.requirement.cards import resolve_card
from read_lightning.teachers.models import EMBEDDED, load_model, load_tokenizer


def _share(k: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(k, n)
    return {"count": k, "percent": round(100.0 * k / n, 1) if n else None, "ci95": [round(low, 1), round(high, 1)]}


def compare_card(name: str, fp32: torch.nn.Module, bf16: torch.nn.Module, tokenizer: Any,
                 limit: int | None) -> dict[str, Any]:
    card = TaskCard.load(str(resolve_card(name)))
    reference = answer_outcomes(card, fp32, tokenizer, "test", limit=limit)
    out = answer_outcomes(card, bf16, tokenizer, "test", limit=limit,
                          teacher_answers=[{"answer": r["answer"]} for r in reference])
    n = len(out)
    result: dict[str, Any] = {
        "n": n,
        "same_text": _share(sum(o["answer"] == r["answer"] for o, r in zip(out, reference)), n),
        "same_by_card_rule": _share(sum(bool(o["agree"]) for o in out), n),
    }
    if reference and reference[0]["correct"] is not None:
        result["gold_fp32"] = _share(sum(bool(r["correct"]) for r in reference), n)
        result["gold_bf16"] = _share(sum(bool(o["correct"]) for o in out), n)
        result["gold_discordant"] = sum(bool(r["correct"]) != bool(o["correct"]) for r, o in zip(reference, out))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cards", default="fact_extract,arith_word,trivia_mc", help="comma-separated task cards")
    parser.add_argument("--limit", type=int, default=None, help="test items per card (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1, got {args.limit}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    cards = [c.strip() for c in args.cards.split(",") if c.strip()]
    if not cards:
        parser.error(f"--cards names no card: {args.cards!r}")
    for name in cards:
        try:
            resolve_card(name)  # an unknown card is refused before the models load
        except (FileNotFoundError, ValueError) as err:
            parser.error(f"--cards: {err}")
    torch.set_num_threads(args.threads)
    tokenizer = load_tokenizer(EMBEDDED)
    fp32, bf16 = load_model(EMBEDDED), load_model(EMBEDDED, dtype="bfloat16")
    result = {"teacher": EMBEDDED, "threads": args.threads,
              "cards": {name: compare_card(name, fp32, bf16, tokenizer, args.limit) for name in cards}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
