"""Student training throughput: read-lightning's module/datamodule against a plain PyTorch loop.

Both sides train the same compressed embedded student (10 of SmolLM2-135M's 30 layers) on the
same teacher-answered examples, from the same initial weights, with AdamW at the same lr:

- ours: CapabilityDataModule (length-grouped batches under a padded-token cap) feeding
  DistillationModule (logits only at answer positions) through a Lightning Trainer;
- plain: fixed-size batches in arrival order, ``model(input_ids, labels=...)``, with the batch
  size set so both sides take the same number of optimiser steps (same tokens per step on average).

Teacher answers are generated once and cached, so neither side pays for generation here.
Prints one JSON object: trained (non-padding) tokens/s for each side and their ratio.

    python benchmarks/throughput.py [--examples 192] [--max-tokens-per-batch 2048]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from read_lightning.data import CapabilityDataModule, collate, encode_example
from read_lightning.generation import HFTeacher, chat_prompt_ids
from read_lightning.jsonl import read_jsonl, write_jsonl_atomic
from read_lightning.models import (
    EMBEDDED,
    compress_layers,
    default_cache_dir,
    load_model,
    load_tokenizer,
)
from read_lightning.module import DistillationModule
from read_lightning.templates import TemplateLibrary


class NoTeacher:
    """Stands in for teacher and prompt source: the timed run must not generate anything."""

    def generate(self, prompts, *, max_new_tokens=None):
        raise AssertionError("the benchmark replays cached answers; the teacher must not be called")

    sample = generate


def teacher_answers(n: int, max_new_tokens: int, max_length: int, seed: int) -> list[dict]:
    """``n`` template prompts over all capabilities that fit ``max_length``, with the teacher's
    greedy answers; cached, since generating them is not what this benchmark measures."""
    cache = default_cache_dir() / f"bench_answers_{n}_{max_new_tokens}_{max_length}_{seed}.jsonl"
    if cache.exists():
        return read_jsonl(cache)
    lib = TemplateLibrary(seed=seed)
    tok = load_tokenizer(EMBEDDED)
    rng = random.Random(seed)
    prompts = []
    while len(prompts) < n:
        p = lib.sample(lib.capabilities[len(prompts) % len(lib.capabilities)], rng, 0.5)
        # The data module redraws prompts that leave no room for an answer; so does this.
        if len(chat_prompt_ids(tok, p.text)) + CapabilityDataModule.MIN_ANSWER_TOKENS <= max_length:
            prompts.append(p)
    teacher = HFTeacher(load_model(EMBEDDED, shared=True), tok, batch_size=16,
                        max_new_tokens=max_new_tokens, temperature=0.0)
    gens = teacher.generate([p.text for p in prompts])
    rows = [{"capability": p.capability, "prompt": p.text, "answer": g.text, "num_tokens": g.num_tokens}
            for p, g in zip(prompts, gens)]
    write_jsonl_atomic(cache, rows)
    return rows


def run_ours(student, tok, rows, args) -> dict:
    # The data module reuses an interval's generated JSONL instead of calling the teacher (the
    # resume path), so writing the cached answers there replays exactly these examples.
    run_dir = Path(tempfile.mkdtemp(prefix="read_bench_"))
    generated = run_dir / "generated" / "interval_000.jsonl"
    generated.parent.mkdir(parents=True)
    generated.write_text("".join(
        json.dumps({"prompt": r["prompt"], "answer": r["answer"], "capability": r["capability"],
                    "gen_tokens": r["num_tokens"], "used": True}) + "\n" for r in rows))
    dm = CapabilityDataModule(
        capabilities=sorted({r["capability"] for r in rows}), budget_tokens=10**9, num_intervals=1,
        max_tokens_per_batch=args.max_tokens_per_batch, max_length=args.max_length,
        max_new_tokens=args.max_new_tokens, run_dir=str(run_dir), seed=args.seed,
    )
    dm.attach(teacher=NoTeacher(), tokenizer=tok, prompt_source=NoTeacher())
    module = DistillationModule(lr=args.lr, warmup_fraction=0.0, min_lr_ratio=1.0).attach(student=student, tokenizer=tok)
    timer = {}

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            timer["start"] = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            timer["end"] = time.perf_counter()

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Timer()], num_sanity_val_steps=0,
                        default_root_dir=str(run_dir))
    trainer.fit(module, datamodule=dm)
    shutil.rmtree(run_dir, ignore_errors=True)
    tokens = dm.ledger.summary()["training"]
    seconds = timer["end"] - timer["start"]
    return {"tokens": tokens, "seconds": seconds, "steps": trainer.global_step,
            "tokens_per_s": tokens / seconds, "padding_fraction": dm.padding_tokens / (tokens + dm.padding_tokens)}


def run_plain(student, tok, rows, steps, args) -> dict:
    examples = [encode_example(tok, r["prompt"], r["answer"], r["capability"], args.max_length) for r in rows]
    examples = [e for e in examples if e is not None]
    batch_size = max(1, round(len(examples) / steps))
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, betas=(0.9, 0.95))
    student.train()
    tokens = padded = 0
    start = time.perf_counter()
    for i in range(0, len(examples), batch_size):
        batch = collate(examples[i : i + batch_size], tok.pad_token_id)
        out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
        padded += batch["input_ids"].numel()
    seconds = time.perf_counter() - start
    return {"tokens": tokens, "seconds": seconds, "steps": -(-len(examples) // batch_size), "batch_size": batch_size,
            "tokens_per_s": tokens / seconds, "padding_fraction": (padded - tokens) / padded}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=192)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--max-tokens-per-batch", type=int, default=2048)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    L.seed_everything(args.seed, verbose=False)
    rows = teacher_answers(args.examples, args.max_new_tokens, args.max_length, args.seed)
    tok = load_tokenizer(EMBEDDED)
    base = compress_layers(load_model(EMBEDDED, shared=True), "::3")
    ours = run_ours(copy.deepcopy(base), tok, rows, args)
    plain = run_plain(copy.deepcopy(base), tok, rows, ours["steps"], args)
    print(json.dumps({
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
        "examples": len(rows),
        "ours": ours,
        "plain": plain,
        "ratio": ours["tokens_per_s"] / plain["tokens_per_s"],
    }, indent=2))


if __name__ == "__main__":
    main()
