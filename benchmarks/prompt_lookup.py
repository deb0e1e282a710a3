"""Would prompt-lookup speculative decoding speed up the teacher? Replayed on a run's own answers.

    python benchmarks/prompt_lookup.py --run runs/smollm2-135m/version_0      # seconds

Prompt lookup drafts the next tokens by finding the answer's last n-gram (3, 2, then 1 token)
earlier in the prompt or the answer and copying what followed; one forward pass checks the draft,
and the tokens up to the first mismatch are kept. Greedy answers stay the same; seeded sampling can
too (one uniform per position). What it buys depends on two things this script measures without
running the model:

- how many tokens a step keeps, replayed on the answers a run's teacher actually gave
  (``generated/interval_*.jsonl``), for each draft length;
- what a step costs with the draft tokens in it. A decode step is memory-bound for a few rows and
  compute-bound for many: the step costs come from ``benchmarks/generation.py``'s
  ``decode_step_ms`` (``--step-ms``, milliseconds at 1, 4, 16, 32 and 64 tokens in a step;
  the default is the idle 2-core CPU's, docs/teachers.md). Each interval is one teacher call
  (as the data module asks it), all rows decoded together until the longest ends.

It prints one JSON object: per draft length (and a budget of tokens per step within which rows
draft), the tokens kept per step and the modelled decode seconds of the run against plain
decoding (draft length 0).
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

STEP_TOKENS = (1, 4, 16, 32, 64)


def propose(context: list[int], k: int) -> list[int]:
    """Up to ``k`` tokens that followed the latest earlier occurrence of the context's last n-gram."""
    for n in (3, 2, 1):
        if len(context) < n + 1:
            continue
        tail = context[-n:]
        for start in range(len(context) - n - 1, -1, -1):
            if context[start:start + n] == tail:
                return context[start + n:start + n + k]
    return []


def step_cost(tokens: int, step_ms: list[float]) -> float:
    """Milliseconds of one decode step with ``tokens`` positions, interpolated (linear past 64)."""
    if tokens <= STEP_TOKENS[-1]:
        return float(np.interp(tokens, STEP_TOKENS, step_ms))
    slope = (step_ms[-1] - step_ms[-2]) / (STEP_TOKENS[-1] - STEP_TOKENS[-2])
    return step_ms[-1] + slope * (tokens - STEP_TOKENS[-1])


def replay(calls: list[list[tuple[list[int], list[int]]]], k: int, budget: int | None,
           step_ms: list[float]) -> dict[str, Any]:
    """Decode every call with drafts of up to ``k`` tokens (only while the active rows times
    ``k + 1`` fit ``budget``, if given); returns kept tokens per row-step and modelled seconds."""
    seconds, row_steps, tokens = 0.0, 0, 0
    for rows in calls:
        done = [0] * len(rows)
        while True:
            active = [i for i, (_, answer) in enumerate(rows) if done[i] < len(answer)]
            if not active:
                break
            draft_len = k if budget is None else min(k, max(0, budget // len(active) - 1))
            in_step = 0
            for i in active:
                prompt, answer = rows[i]
                left = len(answer) - done[i]
                draft = propose(prompt + answer[:done[i]], draft_len)[:left - 1] if draft_len else []
                kept = 0
                while kept < len(draft) and draft[kept] == answer[done[i] + kept]:
                    kept += 1
                in_step += 1 + len(draft)
                done[i] += kept + 1
                row_steps += 1
            seconds += step_cost(in_step, step_ms) / 1000.0
        tokens += sum(len(a) for _, a in rows)
    return {"tokens_per_row_step": round(tokens / row_steps, 3), "decode_seconds": round(seconds, 1)}


def load_calls(run: Path, tokenizer: Any) -> list[list[tuple[list[int], list[int]]]]:
    """Per interval, (prompt ids, answer ids cut to the tokens the teacher generated)."""
    from read_lightning.teachers.generation import chat_prompt_ids

    calls = []
    for path in sorted(glob.glob(str(run / "generated" / "interval_*.jsonl"))):
        rows = []
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            answer = tokenizer.encode(row["answer"], add_special_tokens=False)[: int(row["gen_tokens"])]
            rows.append((chat_prompt_ids(tokenizer, row.get("teacher_prompt") or row["prompt"]), answer))
        calls.append(rows)
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a finished run directory (its generated/ answers)")
    parser.add_argument("--drafts", default="0,2,4,8", help="comma-separated draft lengths")
    parser.add_argument("--step-ms", default="60,100,102,151,249",
                        help="decode step milliseconds at 1,4,16,32,64 tokens in a step (default: generation.py's "
                             "decode_step_ms on the idle 2-core CPU; 64 extrapolated from 16 and 32)")
    args = parser.parse_args(argv)
    run = Path(args.run)
    if not sorted(run.glob("generated/interval_*.jsonl")):
        parser.error(f"{run} has no generated/interval_*.jsonl")
    try:
        drafts = [int(x) for x in args.drafts.split(",")]
        step_ms = [float(x) for x in args.step_ms.split(",")]
    except ValueError:
        parser.error(f"--drafts and --step-ms take comma-separated numbers, got {args.drafts!r}, {args.step_ms!r}")
    if len(step_ms) != len(STEP_TOKENS) or min(drafts) < 0:
        parser.error(f"--step-ms needs {len(STEP_TOKENS)} values and --drafts values >= 0")
    from read_lightning.teachers.models import EMBEDDED, load_tokenizer

    config = yaml.safe_load((run / "config.yaml").read_text()) or {}
    tokenizer = load_tokenizer((config.get("model") or {}).get("teacher") or EMBEDDED)
    calls = load_calls(run, tokenizer)
    result: dict[str, Any] = {"run": str(run), "calls": len(calls), "answers": sum(len(c) for c in calls),
                              "step_ms": dict(zip(map(str, STEP_TOKENS), step_ms)), "replays": []}
    base = replay(calls, 0, None, step_ms)["decode_seconds"]
    for k in drafts:
        for budget in ([None] if k == 0 else [None, 16, 32]):
            out = replay(calls, k, budget, step_ms)
            out.update(draft=k, draft_budget=budget, vs_plain=round(out["decode_seconds"] / base, 3))
            result["replays"].append(out)
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
