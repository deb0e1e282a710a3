"""Student training throughput: read-lightning's module/datamodule against a plain PyTorch loop.

Both sides train the same compressed embedded student (10 of SmolLM2-135M's 30 layers) on the
same teacher-answered examples, from the same initial weights, with AdamW at the same lr:

- ours: CapabilityDataModule (length-grouped batches under a padded-token cap) feeding
  DistillationModule (logits only at answer positions) through a Lightning Trainer;
- plain: fixed-size batches in arrival order, ``model(input_ids, labels=...)``, with the batch
  size set so both sides take the same number of optimiser steps (same tokens per step on average).

Teacher answers are generated once and cached, so neither side pays for generation here.
Prints one JSON object: trained (non-padding) tokens/s for each side, their ratio, and the model
FLOPs utilisation (MFU) of each side: ``6 * N * tokens/s`` against the device's peak, with N the
student's non-embedding parameters (the usual 6N-per-token training estimate; attention scores
and the vocabulary projection are left out, so MFU here understates the hardware's utilisation).
The peak is ``--peak-tflops``, else the dense bf16 peak of a recognised GPU (H100/H200: 989),
else (a CPU, an unknown GPU) the measured throughput of a 2048x2048 matmul in the run's dtype on
the device, which ``measured_matmul_tflops`` always reports (``generation.py`` measures it the same
way). The first ``--warmup-steps`` optimiser steps of
each side are not timed (CUDA start-up, allocator warm-up).

    python benchmarks/throughput.py [--examples 192] [--max-tokens-per-batch 2048]
    # on a GPU:
    python benchmarks/throughput.py --precision bf16-mixed --examples 2048 --max-tokens-per-batch 16384
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
from generation import matmul_gflops  # benchmarks/generation.py: one ceiling measurement for both


from read_lightning.core.jsonl import read_jsonl, write_jsonl_atomic
from read_lightning.prompts.library import TemplateLibrary
from read_lightning.teachers.generation import HFTeacher, chat_prompt_ids
from read_lightning.teachers.models import (
    EMBEDDED,
    compress_layers,
    default_cache_dir,
    load_model,
    load_tokenizer,
)
from read_lightning.training.batches import collate, encode_example
from read_lightning.training.data import CapabilityDataModule
from read_lightning.training.module import DistillationModule

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from the vendors' data sheets; matched
# against torch.cuda.get_device_name() in this order (H100 PCIe/NVL before the SXM default).
# Other GPUs: pass --peak-tflops.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),  # before "L4", which it contains
    ("L4", 121.0),
)


def detected_peak_tflops(device: torch.device) -> tuple[float | None, str]:
    """The bf16 dense peak of ``device`` if it is a GPU we know, and where the number came from."""
    if device.type != "cuda":
        return None, "unknown for a CPU: pass --peak-tflops"
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return peak, f"bf16 dense peak of {key} ({name})"
    return None, f"unknown GPU {name!r}: pass --peak-tflops"


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the token embedding and the output projection (tied or not)."""
    skip = {id(p) for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None
            for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def flops_figures(tokens_per_s: float, n_params: int, peak_tflops: float | None) -> dict:
    """Model FLOP/s of training at ``tokens_per_s`` (6 N per token) and its share of the peak."""
    tflops = 6.0 * n_params * tokens_per_s / 1e12
    return {"model_tflops": tflops, "mfu": tflops / peak_tflops if peak_tflops else None}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
    model = load_model(EMBEDDED, shared=True).to("cuda" if torch.cuda.is_available() else "cpu")
    teacher = HFTeacher(model, tok, batch_size=64 if torch.cuda.is_available() else 16,
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
    # A replayed interval needs the generation state a real one leaves beside it (the RNG after
    # drawing its prompts); nothing is drawn after this single interval, so any state will do.
    version, internal, gauss = random.Random(args.seed).getstate()
    state = run_dir / "generation_state" / "interval_000.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"rng": [version, list(internal), gauss], "teacher_calls": None,
                                 "too_long_prompts": 0}))
    dm = CapabilityDataModule(
        capabilities=sorted({r["capability"] for r in rows}), budget_tokens=10**9, num_intervals=1,
        max_tokens_per_batch=args.max_tokens_per_batch, max_length=args.max_length,
        max_new_tokens=args.max_new_tokens, run_dir=str(run_dir), seed=args.seed,
    )
    dm.attach(teacher=NoTeacher(), tokenizer=tok, prompt_source=NoTeacher())
    module = DistillationModule(lr=args.lr, warmup_fraction=0.0, min_lr_ratio=1.0).attach(student=student, tokenizer=tok)
    timer = {"tokens": 0, "start": None}

    class Timer(L.Callback):
        """Times the steps after the first ``warmup_steps``, and counts their trained tokens."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == args.warmup_steps:
                _sync(pl_module.device)
                timer["start"] = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx >= args.warmup_steps:
                timer["tokens"] += int(batch["attention_mask"].sum())

        def on_train_epoch_end(self, trainer, pl_module):
            _sync(pl_module.device)
            timer["end"] = time.perf_counter()

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Timer()], num_sanity_val_steps=0,
                        default_root_dir=str(run_dir), accelerator=args.accelerator, devices=1,
                        precision=args.precision)
    trainer.fit(module, datamodule=dm)
    shutil.rmtree(run_dir, ignore_errors=True)
    if timer["start"] is None:
        raise SystemExit(f"only {trainer.global_step} steps, not more than --warmup-steps {args.warmup_steps}: "
                         "raise --examples")
    tokens = dm.ledger.summary()["training"]
    seconds = timer["end"] - timer["start"]
    return {"tokens": tokens, "timed_tokens": timer["tokens"], "seconds": seconds, "steps": trainer.global_step,
            "tokens_per_s": timer["tokens"] / seconds,
            "padding_fraction": dm.padding_tokens / (tokens + dm.padding_tokens)}


def run_plain(student, tok, rows, steps, args, device: torch.device) -> dict:
    examples = [encode_example(tok, r["prompt"], r["answer"], r["capability"], args.max_length) for r in rows]
    examples = [e for e in examples if e is not None]
    batch_size = max(1, round(len(examples) / steps))
    student.to(device).train()
    opt = torch.optim.AdamW(student.parameters(), lr=args.lr, betas=(0.9, 0.95))
    # The same numerics as Lightning's "bf16-mixed": fp32 weights, bf16 autocast.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision.startswith("bf16"))
    tokens = padded = timed = 0
    start = None
    for step, i in enumerate(range(0, len(examples), batch_size)):
        if step == args.warmup_steps:
            _sync(device)
            start = time.perf_counter()
        batch = collate(examples[i : i + batch_size], tok.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        with autocast:
            out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        n = int(batch["attention_mask"].sum())
        tokens += n
        timed += n if start is not None else 0
        padded += batch["input_ids"].numel()
    _sync(device)
    if start is None:
        raise SystemExit(f"plain loop: not more than --warmup-steps {args.warmup_steps} steps; raise --examples")
    seconds = time.perf_counter() - start
    return {"tokens": tokens, "timed_tokens": timed, "seconds": seconds, "steps": -(-len(examples) // batch_size),
            "batch_size": batch_size, "tokens_per_s": timed / seconds, "padding_fraction": (padded - tokens) / padded}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=192)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--max-tokens-per-batch", type=int, default=2048)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"],
                   help="Lightning precision; the plain loop matches it (bf16-mixed: bf16 autocast)")
    p.add_argument("--warmup-steps", type=int, default=2, help="untimed optimiser steps at the start of each side")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="device peak for MFU, TFLOP/s (default: the bf16 dense peak of a known GPU)")
    args = p.parse_args()
    if args.warmup_steps < 0:
        p.error(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        p.error(f"--peak-tflops must be > 0, got {args.peak_tflops}")
    use_gpu = args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available())
    if use_gpu and not torch.cuda.is_available():
        p.error("--accelerator gpu, but torch sees no CUDA device")
    device = torch.device("cuda" if use_gpu else "cpu")
    L.seed_everything(args.seed, verbose=False)
    rows = teacher_answers(args.examples, args.max_new_tokens, args.max_length, args.seed)
    tok = load_tokenizer(EMBEDDED)
    base = compress_layers(load_model(EMBEDDED, shared=True), "::3").cpu()
    n_params = non_embedding_params(base)
    peak, peak_source = (args.peak_tflops, "--peak-tflops") if args.peak_tflops else detected_peak_tflops(device)
    dtype = torch.bfloat16 if args.precision == "bf16-mixed" else torch.float32
    measured = matmul_gflops(2048, 2048, 2048, seconds=2.0, device=device, dtype=dtype) / 1e3
    if peak is None:
        peak, peak_source = measured, f"measured {str(dtype).removeprefix('torch.')} matmul 2048x2048x2048 on {device.type}"
    ours = run_ours(copy.deepcopy(base), tok, rows, args)
    plain = run_plain(copy.deepcopy(base), tok, rows, ours["steps"], args, device)
    for side in (ours, plain):
        side.update(flops_figures(side["tokens_per_s"], n_params, peak))
    print(json.dumps({
        "device": torch.cuda.get_device_name(device) if use_gpu else "cpu",
        "precision": args.precision,
        "torch_threads": torch.get_num_threads(),
        "examples": len(rows),
        "max_tokens_per_batch": args.max_tokens_per_batch,
        "student_non_embedding_params": n_params,
        "student_params": sum(p.numel() for p in base.parameters()),
        "flops_per_token": 6 * n_params,
        "peak_tflops": peak,
        "peak_source": peak_source,
        "measured_matmul_tflops": measured,
        "ours": ours,
        "plain": plain,
        "ratio": ours["tokens_per_s"] / plain["tokens_per_s"],
    }, indent=2))


if __name__ == "__main__":
    main()
