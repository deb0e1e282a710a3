"""Log-likelihood scoring with and without the shared prefix run once (probes, task scoring).

    python benchmarks/scoring.py                                          # the embedded teacher, ~1 minute
    python benchmarks/scoring.py --model runs/smollm2-135m/version_0/student   # a run's student
    python benchmarks/scoring.py --model runs/smollm2-135m/version_0/student --answers   # + test answers, ~3 minutes

``evaluation.scoring.score_continuations`` scores every (context, continuation) pair of a call; the
prefix all of them start with (the chat template's system turn and user header) is run once and
its KV cache reused by every batch (``share_prefix=True``, the default), where the plain path runs
it once per pair. This times both, alternating (``--repeats``), in one process on the same pairs,
as the default run scores them:

- ``task_dev``: the first ``--dev-rows`` rows of the ``fact_extract`` card's dev split (the
  recipe's development checkpoint), chat-formatted, continuation the gold answer and the
  end-of-turn token, ``--dev-batch`` pairs a forward (the recipe's task evaluation batch);
- ``probes``: the first ``--probe-items`` packaged items of every capability, continuation the
  item's answer (at most 32 tokens, the recipe's reference length) and end-of-turn, batch
  ``--probe-batch`` (the recipe's probe batch).

With ``--answers``, also ``test_answers``: the model's greedy answers to the first
``--answer-rows`` rows of the card's test split (``task_answers.answer_outcomes``, what the task
evaluation does before and after training), at each batch size of ``--answer-batches``,
alternating ``--repeats`` times: the seconds of each pass and whether every batch size gives the
same answers as the first.

It prints one JSON object: per set the pairs, the mean context length, the shared prefix, the
seconds of each pass per path, ``speedup`` (the plain path's median over the shared one's), the
largest difference of a pair's log-likelihood between the paths and how many greedy flags agree.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

def pairs(tokenizer: Any, dev_rows: int, probe_items: int) -> dict[str, tuple[list[list[int]], list[list[int]]]]:
    """The two sets of (context ids, continuation ids), as the default run scores them."""
    from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
    from read_lightning.evaluation.probes import probe_items as items_of
    from read_lightning.evaluation.tasks import TaskCard, list_example_tasks
    from read_lightning.teachers.generation import chat_prompt_ids

    def answer(text: str, cap: int | None = None) -> list[int]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return list(ids[:cap] if cap else ids) + [tokenizer.eos_token_id]

    card = TaskCard.load(next(p for p in list_example_tasks() if p.parent.name == "fact_extract"))
    rows = card.rows("dev")[:dev_rows]
    items = [item for cap in DEFAULT_CAPABILITIES for item in items_of(cap)[:probe_items]]
    return {
        "task_dev": ([chat_prompt_ids(tokenizer, card.user_message(r)) for r in rows],
                     [answer(str(r["answer"])) for r in rows]),
        "probes": ([chat_prompt_ids(tokenizer, item["prompt"]) for item in items],
                   [answer(str(item["answer"]), 32) for item in items]),
    }


def measure(model: torch.nn.Module, contexts: list[list[int]], continuations: list[list[int]], batch_size: int,
            repeats: int) -> dict[str, Any]:
    """Both paths on the same pairs, alternating ``repeats`` times."""
    from read_lightning.evaluation.scoring import score_continuations
    from read_lightning.teachers.decoding import _shared_prefix

    seconds: dict[str, list[float]] = {"plain": [], "shared_prefix": []}
    scores: dict[str, Any] = {}
    for _ in range(repeats):
        for name, share in (("plain", False), ("shared_prefix", True)):
            start = time.perf_counter()
            scores[name] = score_continuations(model, contexts, continuations, batch_size=batch_size,
                                               share_prefix=share)
            seconds[name].append(round(time.perf_counter() - start, 3))
    plain, shared = scores["plain"], scores["shared_prefix"]
    return {
        "pairs": len(contexts),
        "mean_context_tokens": round(sum(map(len, contexts)) / len(contexts), 1),
        "shared_prefix_tokens": _shared_prefix([c + t for c, t in zip(contexts, continuations)]),
        "batch_size": batch_size,
        "seconds": seconds,
        "speedup": round(statistics.median(seconds["plain"]) / statistics.median(seconds["shared_prefix"]), 3),
        "max_abs_logprob_difference": max(abs(a.logprob - b.logprob) for a, b in zip(plain, shared)),
        "greedy_flags_equal": sum(a.greedy == b.greedy for a, b in zip(plain, shared)),
    }


def answer_batches(model: torch.nn.Module, tokenizer: Any, rows: int, batches: list[int],
                   repeats: int) -> dict[str, Any]:
    """The greedy test answers at each batch size, alternating ``repeats`` times."""
    from read_lightning.evaluation.task_answers import answer_outcomes
    from read_lightning.evaluation.tasks import TaskCard, list_example_tasks

    card = TaskCard.load(next(p for p in list_example_tasks() if p.parent.name == "fact_extract"))
    seconds: dict[str, list[float]] = {str(b): [] for b in batches}
    answers: dict[int, list[str]] = {}
    for _ in range(repeats):
        for b in batches:
            start = time.perf_counter()
            got = answer_outcomes(card, model, tokenizer, "test", limit=rows, batch_size=b)
            seconds[str(b)].append(round(time.perf_counter() - start, 3))
            answers[b] = [o["answer"] for o in got]
    first = batches[0]
    return {"rows": len(answers[first]), "seconds": seconds,
            "speedup_vs_first": {str(b): round(statistics.median(seconds[str(first)]) / statistics.median(seconds[str(b)]), 3)
                                 for b in batches},
            "same_answers_as_first": {str(b): sum(x == y for x, y in zip(answers[first], answers[b])) for b in batches}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="a saved model directory (default: the embedded teacher)")
    parser.add_argument("--dev-rows", type=int, default=32)
    parser.add_argument("--dev-batch", type=int, default=32)
    parser.add_argument("--probe-items", type=int, default=6)
    parser.add_argument("--probe-batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--answers", action="store_true", help="also time the greedy test answers per batch size")
    parser.add_argument("--answer-rows", type=int, default=200)
    parser.add_argument("--answer-batches", default="16,32", help="comma-separated batch sizes, the first the reference")
    args = parser.parse_args(argv)
    for name in ("dev_rows", "dev_batch", "probe_items", "probe_batch", "repeats", "threads", "answer_rows"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        answer_sizes = [int(b) for b in args.answer_batches.split(",")]
    except ValueError:
        answer_sizes = []
    if not answer_sizes or min(answer_sizes) < 1:
        parser.error(f"--answer-batches must be positive integers separated by commas, got {args.answer_batches!r}")
    if args.model is not None and not (Path(args.model) / "config.json").is_file():
        parser.error(f"--model {args.model!r} is not a saved model directory (no config.json)")
    torch.set_num_threads(args.threads)
    if args.model is None:
        from generation import load_teacher

        model, tokenizer, how = load_teacher()
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        tokenizer, how = AutoTokenizer.from_pretrained(args.model), f"from_pretrained({args.model!r})"
    model.eval()
    sets = pairs(tokenizer, args.dev_rows, args.probe_items)
    batches = {"task_dev": args.dev_batch, "probes": args.probe_batch}
    result = {"model": how, "threads": args.threads,
              **{name: measure(model, *sets[name], batches[name], args.repeats) for name in sets}}
    if args.answers:
        result["test_answers"] = answer_batches(model, tokenizer, args.answer_rows, answer_sizes, args.repeats)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
