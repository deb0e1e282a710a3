"""Generation benchmark: the teacher's tokens/s against the machine's ceiling, per engine, at the run's settings.

    python benchmarks/generation.py                  # about 5 minutes on an idle 2-core CPU
    python benchmarks/generation.py --prompts 16 --greedy-prompts 16 --distinct-n 0   # quick

Loads the embedded teacher (SmolLM2-135M-Instruct, 4-bit GGUF de-quantised to fp32) and prints one
JSON object:

- ``ceiling``: the measured fp32 matmul throughput (a square 2048 product and the decode shape
  ``batch x hidden @ hidden x intermediate``), the model's FLOPs per token (2 x its linear
  weights, plus attention over the mean context), and so the tokens/s ceiling of decoding alone
  and of these prompts (their prefill at the square rate plus their answers at the decode rate).
- ``decode_step_ms``: the median time of one decode step at 1, 4, 8, 16 and 32 rows (150 cached
  positions): a step's cost grows far slower than its rows, which is why the run asks an
  interval's prompts in one call.
- ``compiled`` (with ``--compile``): ``torch.compile(model, dynamic=True)`` on the same decode
  step: the seconds compilation takes, and step times at 4 and 32 rows, compiled and eager
  alternating twice.
- ``sampled``: what the run does. Prompts drawn as the default recipe draws them: half from the
  ``fact_extract`` card's train split (``--task``, ``--task-share``), half from the capability mix
  (every capability, long_context included, each fitting ``max_length`` with room for an answer
  as the data module requires), answered in teacher calls of ``--per-call`` prompts (the run asks
  an interval's 25-35 prompts in one call) decoded ``--batch-size`` rows at a time with
  ``--max-new-tokens`` new tokens, temperature 0.2, top-p 0.95, seeded. Per engine:
  ``tokens_per_s`` and ``speedup_vs_baseline`` (the baseline is ``generate``, today's batched
  ``model.generate``), plus whether the loop gives the same answers when asked again.
- ``greedy``: the same at temperature 0 on ``--greedy-prompts`` prompts, with the share of
  answers token-identical to the baseline's.
- ``distinct_ratio``: the share of distinct prompts among ``--distinct-n`` per capability.

Engines run alternately on the same prompts in one process, so a change in the machine's load
shifts both; ``uptime``'s load average is printed next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from read_lightning.prompts.library import TemplateLibrary
from read_lightning.teachers.generation import Generation, HFTeacher, chat_prompt_ids

ENGINES = ("generate", "loop")  # the first is the baseline


def load_teacher() -> tuple[Any, Any, str]:
    """(model, tokenizer, how): the embedded teacher through the package's model loader."""
    from read_lightning.teachers.models import EMBEDDED, load_model, load_tokenizer

    return load_model(EMBEDDED), load_tokenizer(EMBEDDED), "models.load_model(EMBEDDED)"


def matmul_gflops(m: int, k: int, n: int, seconds: float = 1.0, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> float:
    """Measured GFLOP/s of ``[m, k] @ [k, n]`` on ``device`` in ``dtype``, over about ``seconds``
    (also used by ``throughput.py`` for its ceiling)."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    a @ b  # warm-up: first-call allocations are not throughput
    sync()
    reps, start = 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - start < seconds:
        a @ b
        reps += 1
        if reps % 8 == 0:
            sync()
    sync()
    return 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9


def flops_per_token(model: torch.nn.Module, context: float) -> float:
    """Forward FLOPs of one token: 2 per weight of every linear layer (the output head
    included), plus scores and weighted values over ``context`` cached positions."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    attention = 2 * 2 * cfg.num_hidden_layers * cfg.num_attention_heads * head_dim * context
    return 2 * linear + attention


def run_prompts(library: TemplateLibrary, tokenizer: Any, n: int, max_length: int, min_answer: int,
                seed: int, task: str | None = None, task_share: float = 0.0) -> list[str]:
    """``n`` prompts as the run draws them: a share ``task_share`` from the task card ``task``'s
    train split (the recipe's ``data.task_prompts``), the rest from the default capability mix,
    capabilities in turn, long_context included; each leaves ``min_answer`` tokens within
    ``max_length`` as the generation planner's ``draw_fitting`` requires."""
    rng = random.Random(seed)
    caps = library.capabilities
    pool = None
    if task is not None and task_share > 0:
        from read_lightning.prompts.task_pool import TaskPromptPool
        from read_lightning.requirement.cards import load_card, resolve_card

        pool = TaskPromptPool.from_card(load_card(str(resolve_card(task)), caps), seed=seed)
    prompts: list[str] = []
    drawn = 0
    while len(prompts) < n:
        if pool is not None and rng.random() < task_share:
            prompt = pool.next()
            text = prompt.text if prompt is not None else None
        else:
            text = library.sample(caps[drawn % len(caps)], rng, 0.0).text
            drawn += 1
        if text is not None and len(chat_prompt_ids(tokenizer, text)) + min_answer <= max_length:
            prompts.append(text)
    return prompts


def answer_in_calls(teacher: HFTeacher, prompts: Sequence[str], per_call: int) -> tuple[list[Generation], float]:
    """Answers and seconds, asking ``per_call`` prompts a call as the data module does."""
    out: list[Generation] = []
    start = time.perf_counter()
    for i in range(0, len(prompts), per_call):
        out += teacher.generate(prompts[i : i + per_call])
    return out, time.perf_counter() - start


def compare_engines(model: Any, tokenizer: Any, prompts: list[str], *, batch_size: int, per_call: int,
                    max_new_tokens: int, temperature: float, top_p: float, seed: int,
                    bf16_model: Any = None) -> tuple[dict[str, Any], dict[str, list[Generation]]]:
    """Per engine: seconds, tokens, tokens/s and speedup over the first engine, on the same prompts
    (with ``bf16_model``, also ``loop_bf16``: the loop on bfloat16 weights)."""
    models = {e: model for e in ENGINES}
    if bf16_model is not None:
        models["loop_bf16"] = bf16_model
    teachers = {e: HFTeacher(m, tokenizer, batch_size=batch_size, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, seed=seed, engine="loop" if e == "loop_bf16" else e) for e, m in models.items()}
    answers, seconds = {}, {}
    for engine, teacher in teachers.items():
        answers[engine], seconds[engine] = answer_in_calls(teacher, prompts, per_call)
        teacher.calls = 0
    out: dict[str, Any] = {}
    for engine in teachers:
        tokens = sum(g.num_tokens for g in answers[engine])
        out[engine] = {"seconds": round(seconds[engine], 2), "tokens": tokens,
                       "tokens_per_s": round(tokens / seconds[engine], 1),
                       "finished": sum(bool(g.finished) for g in answers[engine])}
    base = out[ENGINES[0]]["tokens_per_s"]
    for engine in teachers:
        out[engine]["speedup_vs_baseline"] = round(out[engine]["tokens_per_s"] / base, 2)
    return out, answers


@torch.no_grad()
def decode_step_ms(model: Any, batches: Sequence[int], context: int = 150, steps: int = 8,
                   cache_arg: str | None = None) -> dict[str, float]:
    """Median milliseconds of one decode step (one new token per row over ``context`` cached
    positions) at each batch size: what a teacher call pays per step whatever its rows."""
    from transformers import DynamicCache

    from read_lightning.teachers.decoding import _cache_argument

    device, cache_arg = next(model.parameters()).device, cache_arg or _cache_argument(model)
    out: dict[str, float] = {}
    for b in batches:
        cache = DynamicCache(config=model.config)
        model(input_ids=torch.randint(100, 1000, (b, context), device=device), use_cache=True, logits_to_keep=1,
              **{cache_arg: cache})
        mask = torch.ones(b, context + 1, dtype=torch.long, device=device)
        times = []
        for s in range(steps):
            start = time.perf_counter()
            model(input_ids=torch.randint(100, 1000, (b, 1), device=device), attention_mask=mask,
                  position_ids=torch.full((b, 1), context + s, device=device), use_cache=True, **{cache_arg: cache})
            times.append(time.perf_counter() - start)
            mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.long, device=device)], 1)
        out[str(b)] = round(1000 * sorted(times)[len(times) // 2], 1)
    return out


def compiled_steps(model: Any, batches: Sequence[int], repeats: int = 2) -> dict[str, Any]:
    """``torch.compile(model, dynamic=True)`` on the loop's decode step (the DynamicCache path):
    the seconds its first steps take (compilation) and its step times beside the eager model's,
    alternating ``repeats`` times in this process."""
    from read_lightning.teachers.decoding import _cache_argument

    cache_arg = _cache_argument(model)  # the compiled wrapper's signature hides it
    compiled = torch.compile(model, dynamic=True)
    start = time.perf_counter()
    decode_step_ms(compiled, batches[-1:], steps=2, cache_arg=cache_arg)
    out: dict[str, Any] = {"compile_seconds": round(time.perf_counter() - start, 1), "eager_ms": [], "compiled_ms": []}
    for _ in range(repeats):
        out["eager_ms"].append(decode_step_ms(model, batches))
        out["compiled_ms"].append(decode_step_ms(compiled, batches, cache_arg=cache_arg))
    return out


def identity(a: list[Generation], b: list[Generation]) -> dict[str, Any]:
    same = [x.text == y.text and x.num_tokens == y.num_tokens for x, y in zip(a, b)]
    return {"identical": sum(same), "of": len(same), "share": round(sum(same) / len(same), 3),
            "different_prompts": [i for i, s in enumerate(same) if not s]}


def bench_teacher(args: argparse.Namespace) -> dict[str, Any]:
    from read_lightning.training.generation_plan import GenerationPlanner

    load_start = time.perf_counter()
    model, tokenizer, how = load_teacher()
    load_s = time.perf_counter() - load_start
    library = TemplateLibrary(seed=args.seed)
    n = max(args.prompts, args.greedy_prompts)
    prompts = run_prompts(library, tokenizer, n, args.max_length, GenerationPlanner.MIN_ANSWER_TOKENS, args.seed,
                          args.task, args.task_share)
    prompt_tokens = [len(chat_prompt_ids(tokenizer, p)) for p in prompts]
    HFTeacher(model, tokenizer, max_new_tokens=2, engine="loop").generate(prompts[:2])  # warm-up

    hidden, inter = model.config.hidden_size, model.config.intermediate_size
    square = matmul_gflops(2048, 2048, 2048)
    decode_rate = matmul_gflops(args.batch_size, hidden, inter)
    mean_prompt = sum(prompt_tokens) / len(prompt_tokens)
    per_token = flops_per_token(model, mean_prompt + args.max_new_tokens / 2)
    # These prompts: prefill at the square rate, then max_new_tokens answers at the decode rate.
    seconds_per_prompt = mean_prompt * per_token / (square * 1e9) + args.max_new_tokens * per_token / (decode_rate * 1e9)
    result: dict[str, Any] = {
        "teacher": f"SmolLM2-135M-Instruct Q4_1 (fp32 on {next(model.parameters()).device.type})",
        "loader": how,
        "load_s": round(load_s, 1),
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "prompts_per_call": args.per_call,
        "task_prompts": {"card": args.task, "share": args.task_share},
        "max_new_tokens": args.max_new_tokens,
        "max_length": args.max_length,
        "mean_prompt_tokens": round(mean_prompt, 1),
        "prompt_tokens_range": [min(prompt_tokens), max(prompt_tokens)],
        "ceiling": {
            "matmul_gflops_2048": round(square, 1),
            f"matmul_gflops_decode_{args.batch_size}x{hidden}x{inter}": round(decode_rate, 1),
            "gflop_per_token": round(per_token / 1e9, 3),
            "decode_tokens_per_s": round(decode_rate * 1e9 / per_token, 1),
            "tokens_per_s_with_prefill": round(args.max_new_tokens / seconds_per_prompt, 1),
        },
    }
    result["decode_step_ms"] = decode_step_ms(model, (1, 4, 8, 16, 32))
    if args.compile:
        result["compiled"] = compiled_steps(model, (4, 32))
    print(f"ceiling {result['ceiling']}; decode step ms {result['decode_step_ms']}; load {os.getloadavg()}",
          file=sys.stderr)

    sampled_prompts = prompts[: args.prompts]
    print(f"sampled: {len(sampled_prompts)} prompts, engines {ENGINES} ...", file=sys.stderr)
    bf16_model = None
    if args.bf16:
        from read_lightning.teachers.models import EMBEDDED, load_model

        bf16_model = load_model(EMBEDDED, dtype="bfloat16")
    sampled, answers = compare_engines(model, tokenizer, sampled_prompts, batch_size=args.batch_size, per_call=args.per_call,
                                       max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                                       top_p=args.top_p, seed=args.seed, bf16_model=bf16_model)
    again = HFTeacher(model, tokenizer, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                      temperature=args.temperature, top_p=args.top_p, seed=args.seed, engine="loop")
    first = sampled_prompts[: args.per_call]
    sampled["loop"]["same_answers_when_asked_again"] = [g.text for g in again.generate(first)] == [
        g.text for g in answers["loop"][: len(first)]]
    sampled.update(temperature=args.temperature, top_p=args.top_p, seed=args.seed,
                   load_average=[round(x, 2) for x in os.getloadavg()])
    result["sampled"] = sampled
    print(f"sampled {sampled}", file=sys.stderr)

    if args.greedy_prompts:
        print(f"greedy: {args.greedy_prompts} prompts ...", file=sys.stderr)
        greedy, answers = compare_engines(model, tokenizer, prompts[: args.greedy_prompts],
                                          batch_size=args.batch_size, per_call=args.per_call,
                                          max_new_tokens=args.max_new_tokens,
                                          temperature=0.0, top_p=1.0, seed=args.seed, bf16_model=bf16_model)
        greedy["identical_to_baseline"] = identity(answers[ENGINES[0]], answers["loop"])
        if bf16_model is not None:
            greedy["loop_bf16"]["identical_to_baseline"] = identity(answers[ENGINES[0]], answers["loop_bf16"])
        greedy["load_average"] = [round(x, 2) for x in os.getloadavg()]
        result["greedy"] = greedy
    return result


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
    parser.add_argument("--prompts", type=int, default=32, help="prompts answered with sampling, per engine")
    parser.add_argument("--greedy-prompts", type=int, default=64, help="prompts answered greedily; 0 skips")
    parser.add_argument("--batch-size", type=int, default=32, help="rows decoded at once (the recipe's generation_batch_size)")
    parser.add_argument("--per-call", type=int, default=None,
                        help="prompts per teacher call (default: --batch-size; the run asks an interval's ~25-35 in one call)")
    parser.add_argument("--task", default="fact_extract", help="task card whose train split gives --task-share of the prompts")
    parser.add_argument("--task-share", type=float, default=0.5, help="the recipe's data.task_share; 0: capability prompts only")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256, help="the recipe's data.max_length")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (the run uses all cores)")
    parser.add_argument("--distinct-n", type=int, default=10_000, help="0 skips the distinctness part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-teacher", action="store_true")
    parser.add_argument("--compile", action="store_true",
                        help="also time the decode step under torch.compile(dynamic=True) beside the eager model")
    parser.add_argument("--bf16", action="store_true",
                        help="also run the loop on bfloat16 weights (data.teacher_dtype: bfloat16; answers differ from fp32's)")
    args = parser.parse_args(argv)
    if args.per_call is None:
        args.per_call = args.batch_size
    for name in ("prompts", "batch_size", "per_call", "max_new_tokens", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not 0 <= args.task_share <= 1:
        parser.error(f"--task-share must be in [0, 1], got {args.task_share}")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {}
    if not args.skip_teacher:
        result["teacher"] = bench_teacher(args)
    if args.distinct_n:
        print(f"measuring distinct ratios over {args.distinct_n} prompts per capability ...", file=sys.stderr)
        result["distinct_ratio"] = bench_distinct(args.distinct_n, args.seed)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
