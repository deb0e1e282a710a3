"""Generation benchmark: teacher tokens/s batched vs one by one, and template distinctness.

    python benchmarks/generation.py                 # about 2 minutes on 2 CPU cores
    python benchmarks/generation.py --prompts 4 --max-new-tokens 16 --distinct-n 2000   # quick

Loads the embedded teacher (SmolLM2-135M-Instruct, 4-bit GGUF de-quantised to fp32), draws the
same capability prompts for both runs, decodes greedily, and prints one JSON object with the
tokens/s of each mode and their ratio, plus the share of distinct prompts among ``--distinct-n``
prompts per capability.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

import torch

from read_lightning.prompts.library import TemplateLibrary
from read_lightning.teachers.generation import HFTeacher, chat_prompt_ids


def load_teacher() -> tuple[Any, Any, str]:
    """(model, tokenizer, how): the embedded teacher through the package's model loader."""
    from read_lightning.teachers.models import EMBEDDED, load_model, load_tokenizer

    return load_model(EMBEDDED), load_tokenizer(EMBEDDED), "models.load_model(EMBEDDED)"


def bench_teacher(n_prompts: int, max_new_tokens: int, seed: int) -> dict[str, Any]:
    load_start = time.perf_counter()
    model, tokenizer, how = load_teacher()
    load_s = time.perf_counter() - load_start
    library = TemplateLibrary(seed=seed)
    rng = random.Random(seed)
    # Short capabilities only: one long-context document would dominate both timings.
    caps = [c for c in library.capabilities if c != "long_context"]
    prompts = [library.sample(caps[i % len(caps)], rng, 0.0).text for i in range(n_prompts)]
    batched = HFTeacher(model, tokenizer, batch_size=n_prompts, max_new_tokens=max_new_tokens, temperature=0.0)
    single = HFTeacher(model, tokenizer, batch_size=1, max_new_tokens=max_new_tokens, temperature=0.0)
    single.generate(prompts[:1], max_new_tokens=2)  # warm-up: first-call allocations are not throughput

    start = time.perf_counter()
    out_b = batched.generate(prompts)
    batched_s = time.perf_counter() - start
    start = time.perf_counter()
    out_s = [single.generate([p])[0] for p in prompts]
    single_s = time.perf_counter() - start

    tok_b, tok_s = sum(g.num_tokens for g in out_b), sum(g.num_tokens for g in out_s)
    return {
        "teacher": f"SmolLM2-135M-Instruct Q4_1 (fp32 on {next(model.parameters()).device.type})",  # where it ran
        "loader": how,
        "load_s": round(load_s, 1),
        "torch_threads": torch.get_num_threads(),
        "prompts": n_prompts,
        "max_new_tokens": max_new_tokens,
        # what the teacher reads: the chat-formatted prompt, as HFTeacher encodes it
        "mean_prompt_tokens": round(sum(len(chat_prompt_ids(tokenizer, p)) for p in prompts) / n_prompts, 1),
        "batched": {"seconds": round(batched_s, 2), "tokens": tok_b, "tokens_per_s": round(tok_b / batched_s, 1)},
        "one_by_one": {"seconds": round(single_s, 2), "tokens": tok_s, "tokens_per_s": round(tok_s / single_s, 1)},
        "speedup_batched_over_single": round((tok_b / batched_s) / (tok_s / single_s), 2),
        "same_answers": sum(a.text == b.text for a, b in zip(out_b, out_s)),
    }


def bench_distinct(n: int, seed: int) -> dict[str, Any]:
    library = TemplateLibrary(seed=seed)
    out: dict[str, Any] = {"n_per_capability": n}
    start = time.perf_counter()
    for cap in library.capabilities:
        out[cap] = round(library.distinct_ratio(cap, n=n, seed=seed), 4)
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: on a shared 2-core box two threads mostly wait on each other)",
    )
    parser.add_argument("--distinct-n", type=int, default=10_000, help="0 skips the distinctness part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-teacher", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {}
    if not args.skip_teacher:
        print(f"timing the teacher on {args.prompts} prompts x {args.max_new_tokens} tokens ...", file=sys.stderr)
        result["teacher"] = bench_teacher(args.prompts, args.max_new_tokens, args.seed)
    if args.distinct_n:
        print(f"measuring distinct ratios over {args.distinct_n} prompts per capability ...", file=sys.stderr)
        result["distinct_ratio"] = bench_distinct(args.distinct_n, args.seed)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
