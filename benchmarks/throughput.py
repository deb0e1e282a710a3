"""Student training throughput against the machine's measured matmul ceiling.

Trains the recipe's student (``recipes/smollm2-135m.yaml`` by default: SmolLM2-135M-Instruct
compressed to 24 of its 30 layers by similarity, logit KD from the 30-layer teacher at every
position) on the same teacher-answered examples, from the same initial weights, in several
configurations one after the other in one process:

- ``plain`` (the baseline): a plain PyTorch loop, fixed-size batches in arrival order,
  ``model(input_ids, labels=...)``: response-only SFT, no teacher, fp32; its batch size gives it
  the same number of optimiser steps as the module;
- ``full_logits``: DistillationModule with ``lean_logits=False``: both models' full ``(B, T, V)``
  logits, then the loss (how the project trained before ``fused_linear_distillation``);
- ``fused``: DistillationModule as the recipe runs it (the vocabulary projection and the loss in
  one chunked pass), ``32-true``;
- ``fused_bf16``: the same under ``bf16-mixed`` (bf16 autocast, fp32 weights);
- ``fused_states``: ``fused`` with the teacher's last hidden states carried by the batches, as a
  run's freshly generated rows carry the states its teacher kept while answering them
  (``HFTeacher.keep_states``): the step runs the teacher's output projection, not its decoder;
  the states are computed before the steps, by the teacher's forward over each example;
- levers, with ``--levers``: ``fused_1thread`` (one intra-op thread), ``fused_adamw_foreach`` and
  ``fused_adamw_fused`` (AdamW's multi-tensor and fused kernels).

Prints one JSON object. The ceiling is the measured throughput of a 2048x2048x2048 matmul in
fp32 and in bf16 (``generation.matmul_gflops``, the generation benchmark's measurement) on all
cores. It is measured before each timed step, with the step clock stopped, so each configuration's
``utilisation`` (its model GFLOP/s over the mean ceiling of its precision between its steps) is
taken under the load its own steps ran in: on a shared machine the load moves by 2x within
minutes. The run's ``ceiling`` (measured before and after all configurations, the higher kept)
gives ``utilisation_vs_run_ceiling``. Per configuration: trained (non-padding) tokens/s after
``--warmup-steps`` untimed steps, the model FLOPs of the timed steps per trained token, the
achieved model GFLOP/s, ``speedup_vs_baseline`` (tokens/s over ``plain``'s) and
``load_corrected_speedup_vs_baseline`` (the same with each side's tokens/s divided by the fp32
ceiling between its own steps), and each step's loss; module configurations also give the same
two ratios against ``fused`` and the largest relative difference of their step losses from
``fused``'s (the same job on the same batches: float rounding only, or bf16's).

Model FLOPs of one step, counted on the real (non-padding) tokens only, so padding and any
recomputation are not work (:func:`forward_flops`):

- a forward is 2 FLOPs per weight of every decoder linear layer per token, plus 2 per weight of
  the output projection at the positions the loss uses (every real token but each row's last
  for KD at all positions, the labelled answer tokens otherwise), plus causal attention: scores
  and weighted values, 4 x heads x head_dim per (query, earlier key) pair, per layer;
- the student costs 3 forwards (forward and backward), the teacher 1 (no gradient), or with
  ``fused_states`` only its output projection at the scored positions;
- embeddings, norms, activations, softmaxes, the loss and the optimiser are not counted.

    python benchmarks/throughput.py --steps 3         # 2 timed steps each: 17 minutes on 2 busy CPU cores
    python benchmarks/throughput.py --levers          # also threads and AdamW kernels
    python benchmarks/throughput.py --configs plain,fused --steps 2 --max-tokens-per-batch 512   # quick
    # on a GPU:
    python benchmarks/throughput.py --examples 2048 --max-tokens-per-batch 16384
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from generation import flops_per_token, matmul_gflops  # benchmarks/generation.py: one measurement for both

from read_lightning.core.jsonl import read_jsonl, write_jsonl_atomic
from read_lightning.prompts.library import TemplateLibrary
from read_lightning.teachers.generation import HFTeacher, chat_prompt_ids
from read_lightning.teachers.models import (
    EMBEDDED,
    compress_layers,
    default_cache_dir,
    load_model,
    load_tokenizer,
    similarity_keep,
)
from read_lightning.training.batches import collate, encode_example, length_grouped_batches
from read_lightning.training.data import CapabilityDataModule
from read_lightning.training.generation_plan import GenerationPlanner
from read_lightning.training.module import DistillationModule, calibration_prompts

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "smollm2-135m.yaml"
PRECISIONS = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}
MACHINE_THREADS = torch.get_num_threads()  # torch's default: every core


@dataclass(frozen=True)
class Config:
    """One way of training the same student on the same examples."""

    loop: str  # "plain" (a hand-written PyTorch loop) or "module" (DistillationModule under a Trainer)
    precision: str = "32-true"
    module: dict[str, Any] = field(default_factory=dict)  # DistillationModule arguments over the recipe's
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    adamw: str | None = None  # "foreach" or "fused": that AdamW implementation
    teacher_states: bool = False  # batches carry the teacher's last hidden states (kept from generation)


CONFIGS: dict[str, Config] = {
    "plain": Config("plain"),
    "full_logits": Config("module", module={"lean_logits": False}),
    "fused": Config("module"),
    "fused_bf16": Config("module", "bf16-mixed"),
    "fused_states": Config("module", teacher_states=True),
}
LEVERS: dict[str, Config] = {
    "fused_1thread": Config("module", threads=1),
    "fused_adamw_foreach": Config("module", adamw="foreach"),
    "fused_adamw_fused": Config("module", adamw="fused"),
}
BASELINE, REFERENCE = "plain", "fused"  # speedups are over BASELINE; loss differences from REFERENCE

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


def forward_flops(model: torch.nn.Module, attention_mask: torch.Tensor, scored: int) -> float:
    """Model FLOPs of one forward over the real tokens of a batch (see the module docstring).

    ``attention_mask`` is ``(B, T)`` with 1 at real tokens; ``scored`` is how many positions the
    loss reads the output projection at. Uses ``generation.flops_per_token`` (2 per linear weight,
    the output projection included, plus attention over a given context): a token at position
    ``i`` of its row attends to ``i + 1`` positions, so a row of ``L`` tokens has ``L (L + 1) / 2``
    (query, key) pairs.
    """
    per_token = flops_per_token(model, 0.0)
    per_pair = flops_per_token(model, 1.0) - per_token
    head = 2 * model.get_output_embeddings().weight.numel()
    lengths = attention_mask.sum(dim=1).long()
    tokens, pairs = int(lengths.sum()), int((lengths * (lengths + 1) // 2).sum())
    return (per_token - head) * tokens + head * scored + per_pair * pairs


def scored_positions(batch: dict[str, torch.Tensor], everywhere: bool) -> int:
    """Positions whose output projection the loss uses, as ``DistillationModule.training_step``
    picks them: every real token followed by a real one (KD at all positions), else the labelled ones."""
    if everywhere:
        real = batch["attention_mask"].bool()
        return int((real[:, 1:] & real[:, :-1]).sum())
    return int((batch["labels"][:, 1:] != -100).sum())


def step_flops(student: torch.nn.Module, teacher: torch.nn.Module | None, batch: dict[str, torch.Tensor],
               everywhere: bool) -> float:
    """Model FLOPs of one training step: the student's forward and backward (3 forwards) and the
    teacher's forward, if there is one; only its output projection where the batch carries its
    hidden states."""
    scored = scored_positions(batch, everywhere)
    flops = 3 * forward_flops(student, batch["attention_mask"], scored)
    if teacher is not None and "teacher_hidden" in batch:
        flops += 2 * teacher.get_output_embeddings().weight.numel() * scored
    elif teacher is not None:
        flops += forward_flops(teacher, batch["attention_mask"], scored)
    return flops


def run_keys(names: list[str]) -> list[str]:
    """The result key of each configuration run: a configuration named again runs again
    (alternating two shows the machine's drift), its repeats reported as ``<name>#2``, ``#3``..."""
    return [name if not names[:i].count(name) else f"{name}#{names[:i].count(name) + 1}"
            for i, name in enumerate(names)]


def ceilings(device: torch.device, seconds: float) -> dict[str, float]:
    """Measured GFLOP/s of a 2048-cube matmul per precision (bf16-mixed runs its matmuls in bf16)."""
    return {precision: matmul_gflops(2048, 2048, 2048, seconds=seconds, device=device, dtype=dtype)
            for precision, dtype in PRECISIONS.items()}


def load_recipe(path: Path) -> dict[str, Any]:
    """The recipe's student, teacher, loss and data settings this benchmark reproduces."""
    recipe = yaml.safe_load(path.read_text())
    model, data = recipe.get("model") or {}, recipe.get("data") or {}
    defaults = DistillationModule.__init__.__kwdefaults__ or {}
    loss_keys = ("kd_weight", "kd_positions", "divergence", "temperature", "lr", "weight_decay", "betas")
    return {
        "student": model.get("student", EMBEDDED),
        "student_layers": model.get("student_layers", "::3"),
        "teacher": model.get("teacher", EMBEDDED),
        "module": {k: model[k] for k in loss_keys if k in model},
        "precision": (recipe.get("trainer") or {}).get("precision", "32-true"),
        "max_tokens_per_batch": data.get("max_tokens_per_batch", 2048),
        "max_length": data.get("max_length", 256),
        "max_new_tokens": data.get("max_new_tokens", 64),
        "kd": float(model.get("kd_weight", defaults.get("kd_weight", 0.0))) > 0,
    }


def build_models(recipe: dict[str, Any]) -> tuple[torch.nn.Module, torch.nn.Module | None, Any]:
    """(student, teacher or None, tokenizer) as ``DistillationModule.configure_model`` builds them."""
    tok = load_tokenizer(recipe["student"])
    base = load_model(recipe["student"], shared=recipe["student"] == recipe["teacher"])
    layers = recipe["student_layers"]
    if layers:
        calibration = calibration_prompts(tok) if similarity_keep(layers) else None
        student = compress_layers(base, layers, calibration).cpu()
    else:
        student = copy.deepcopy(base).requires_grad_(True).train()
    teacher = load_model(recipe["teacher"], shared=True) if recipe["kd"] else None
    return student, teacher, tok


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
        if len(chat_prompt_ids(tok, p.text)) + GenerationPlanner.MIN_ANSWER_TOKENS <= max_length:
            prompts.append(p)
    model = load_model(EMBEDDED, shared=True).to("cuda" if torch.cuda.is_available() else "cpu")
    teacher = HFTeacher(model, tok, batch_size=64 if torch.cuda.is_available() else 16,
                        max_new_tokens=max_new_tokens, temperature=0.0)
    gens = teacher.generate([p.text for p in prompts])
    rows = [{"capability": p.capability, "prompt": p.text, "answer": g.text, "num_tokens": g.num_tokens}
            for p, g in zip(prompts, gens)]
    write_jsonl_atomic(cache, rows)
    return rows


class _StepClock:
    """Times the steps after the first ``warmup`` and counts their trained tokens and model FLOPs;
    records every step's loss. Before each timed step, with the clock stopped, it measures the
    matmul ceiling of the step's precision, so a configuration's utilisation is taken against the
    ceiling under the load its own steps ran in (on a shared machine the load moves by 2x within
    minutes). One clock for both loops."""

    def __init__(self, device: torch.device, warmup: int, student, teacher, everywhere: bool,
                 precision: str, ceiling_seconds: float) -> None:
        self.device, self.warmup, self.precision, self.ceiling_seconds = device, warmup, precision, ceiling_seconds
        self.student, self.teacher, self.everywhere = student, teacher, everywhere
        self.machine_threads = MACHINE_THREADS
        self.started = None
        self.seconds = 0.0
        self.tokens = self.steps = self.padded = 0
        self.flops = 0.0
        self.losses: list[float] = []
        self.ceilings: list[float] = []

    def before(self, step: int) -> None:
        if step >= self.warmup:
            threads = torch.get_num_threads()
            torch.set_num_threads(self.machine_threads)  # the machine's ceiling, whatever this configuration uses
            self.ceilings.append(ceilings(self.device, self.ceiling_seconds))
            torch.set_num_threads(threads)
            _sync(self.device)
            self.started = time.perf_counter()

    def after(self, step: int, batch: dict[str, torch.Tensor], loss: torch.Tensor) -> None:
        self.losses.append(float(loss))
        if step >= self.warmup:
            _sync(self.device)
            self.seconds += time.perf_counter() - self.started
            self.steps += 1
            self.tokens += int(batch["attention_mask"].sum())
            self.padded += batch["attention_mask"].numel()
            self.flops += step_flops(self.student, self.teacher, batch, self.everywhere)

    def stop(self) -> None:
        self.student = self.teacher = None  # a finished configuration's student is not kept alive

    def figures(self, ceiling_gflops: float) -> dict[str, Any]:
        if not self.steps:
            raise SystemExit(f"only {len(self.losses)} steps, not more than --warmup-steps {self.warmup}: "
                             "raise --examples")
        gflops = self.flops / self.seconds / 1e9
        between = {k: sum(c[k] for c in self.ceilings) / len(self.ceilings) for k in PRECISIONS}
        return {"timed_steps": self.steps, "timed_tokens": self.tokens, "seconds": round(self.seconds, 2),
                "tokens_per_s": round(self.tokens / self.seconds, 1),
                "padding_fraction": round(1 - self.tokens / self.padded, 4),
                "model_gflop_per_token": round(self.flops / self.tokens / 1e9, 4),
                "model_gflops": round(gflops, 1),
                "ceiling_gflops_between_steps": {k: round(v, 1) for k, v in between.items()},
                "utilisation": round(gflops / between[self.precision], 4),
                # tokens/s per fp32 ceiling GFLOP/s: a throughput with the machine's load divided out
                "tokens_per_fp32_ceiling_gflop": float(f"{self.tokens / self.seconds / between['32-true']:.4g}"),
                "utilisation_vs_run_ceiling": round(gflops / ceiling_gflops, 4),
                "losses": [round(x, 5) for x in self.losses]}


def _adamw_implementation(optimizer: torch.optim.Optimizer, kind: str | None) -> None:
    """Switch AdamW to its ``foreach`` or ``fused`` kernels (read at every step, so setting them
    on the groups before the first step is the same as passing them to the constructor)."""
    if kind is None:
        return
    for group in optimizer.param_groups:
        group["foreach"], group["fused"] = kind == "foreach", kind == "fused"


def run_module(config: Config, student, teacher, tok, rows, recipe, args, device) -> _StepClock:
    """DistillationModule and CapabilityDataModule under a Lightning Trainer, as a run trains."""
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
        max_tokens_per_batch=recipe["max_tokens_per_batch"], max_length=recipe["max_length"],
        max_new_tokens=recipe["max_new_tokens"], run_dir=str(run_dir), seed=args.seed,
    )
    dm.attach(teacher=NoTeacher(), tokenizer=tok, prompt_source=NoTeacher())
    if config.teacher_states:
        if teacher is None:
            raise SystemExit("fused_states needs the recipe's KD teacher (model.kd_weight > 0)")
        encode = dm._encode

        def encode_with_states(rows_):
            # What generation leaves on a fresh interval's examples, here from the teacher's forward.
            examples = encode(rows_)
            with torch.no_grad():
                for e in examples:
                    ids = torch.tensor([e.input_ids], device=next(teacher.parameters()).device)
                    batch = {"input_ids": ids, "attention_mask": None}
                    e.teacher_hidden = DistillationModule._last_hidden(teacher, batch)[0].cpu()
            return examples

        dm._encode = encode_with_states
    # A constant learning rate: the schedule is not what is measured.
    module = DistillationModule(**{**recipe["module"], **config.module}, warmup_fraction=0.0, min_lr_ratio=1.0)
    module.attach(student=student, tokenizer=tok, teacher=teacher)
    everywhere = teacher is not None and module.hparams.kd_positions == "all"
    clock = _StepClock(device, args.warmup_steps, student, teacher, everywhere, config.precision, args.ceiling_seconds)

    class Clock(L.Callback):
        def on_train_start(self, trainer, pl_module):
            _adamw_implementation(trainer.optimizers[0], config.adamw)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            clock.before(batch_idx)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            clock.after(batch_idx, batch, outputs["loss"])

        def on_train_epoch_end(self, trainer, pl_module):
            clock.stop()

    trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[Clock()], num_sanity_val_steps=0,
                        default_root_dir=str(run_dir), accelerator=device.type, devices=1,
                        precision=config.precision, limit_train_batches=args.steps)
    trainer.fit(module, datamodule=dm)
    shutil.rmtree(run_dir, ignore_errors=True)
    return clock


def run_plain(config: Config, student, tok, rows, steps: int, recipe, args, device) -> tuple[_StepClock, int]:
    """A hand-written loop: fixed-size batches in arrival order, the model's own loss, AdamW."""
    examples = [encode_example(tok, r["prompt"], r["answer"], r["capability"], recipe["max_length"]) for r in rows]
    examples = [e for e in examples if e is not None]
    batch_size = max(1, round(len(examples) / steps))
    student.to(device).train()
    opt = torch.optim.AdamW(student.parameters(), lr=recipe["module"].get("lr", 3e-4), betas=(0.9, 0.95))
    _adamw_implementation(opt, config.adamw)
    # The same numerics as Lightning's "bf16-mixed": fp32 weights, bf16 autocast.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.precision == "bf16-mixed")
    clock = _StepClock(device, args.warmup_steps, student, None, False, config.precision, args.ceiling_seconds)
    starts = range(0, len(examples), batch_size)
    for step, i in enumerate(starts[: args.steps]):
        batch = collate(examples[i : i + batch_size], tok.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        clock.before(step)  # after collating, as Lightning's hook comes after the loader's batch
        with autocast:
            out = student(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        clock.after(step, batch, out.loss.detach())
    clock.stop()
    return clock, batch_size

def run(name: str, config: Config, models, rows, steps: int, recipe, args, device, ceiling) -> dict[str, Any]:
    """One configuration on a fresh copy of the initial student; its figures."""
    base, teacher, tok = models
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    student = copy.deepcopy(base)
    extra: dict[str, Any] = {}
    try:
        if config.loop == "plain":
            clock, extra["batch_size"] = run_plain(config, student, tok, rows, steps, recipe, args, device)
        else:
            clock = run_module(config, student, teacher, tok, rows, recipe, args, device)
    finally:
        torch.set_num_threads(threads)
        del student
        gc.collect()  # the trainer and module hold each other: free this student and its AdamW state now
    out = {"loop": config.loop, "precision": config.precision, "threads": config.threads or threads,
           **{k: v for k, v in (("module", config.module), ("adamw", config.adamw)) if v},
           **extra, **clock.figures(ceiling[config.precision]), "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(f"{name}: {json.dumps(out)}", file=sys.stderr)  # progress, and what is measured if the run is cut short
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", type=Path, default=RECIPE, help="the run whose student and loss are measured")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"comma-separated, in the order run (a name given twice runs twice); "
                        f"known: {', '.join([*CONFIGS, *LEVERS])}")
    p.add_argument("--levers", action="store_true", help=f"also run {', '.join(LEVERS)}")
    p.add_argument("--examples", type=int, default=64)
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps per configuration, warm-up included (default: one pass over the examples)")
    p.add_argument("--max-tokens-per-batch", type=int, default=None, help="default: the recipe's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--accelerator", default="auto", choices=["auto", "cpu", "gpu"])
    p.add_argument("--warmup-steps", type=int, default=1,
                   help="untimed optimiser steps at the start of each configuration")
    p.add_argument("--ceiling-seconds", type=float, default=1.0,
                   help="per matmul measurement (one before each timed step, two per precision before and after)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="a data-sheet peak to also report MFU against (default: the bf16 dense peak of a known GPU)")
    args = p.parse_args(argv)
    names = [n for n in args.configs.split(",") if n] + (list(LEVERS) if args.levers else [])
    known = {**CONFIGS, **LEVERS}
    unknown = [n for n in names if n not in known]
    if unknown:
        p.error(f"unknown --configs {unknown}; known: {list(known)}")
    if args.steps is not None and args.steps <= args.warmup_steps:
        p.error(f"--steps {args.steps} leaves no timed step after --warmup-steps {args.warmup_steps}")
    if args.warmup_steps < 0:
        p.error(f"--warmup-steps must be >= 0, got {args.warmup_steps}")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        p.error(f"--peak-tflops must be > 0, got {args.peak_tflops}")
    use_gpu = args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available())
    if use_gpu and not torch.cuda.is_available():
        p.error("--accelerator gpu, but torch sees no CUDA device")
    device = torch.device("cuda" if use_gpu else "cpu")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    recipe = load_recipe(args.recipe)
    if args.max_tokens_per_batch:
        recipe["max_tokens_per_batch"] = args.max_tokens_per_batch
    L.seed_everything(args.seed, verbose=False)
    rows = teacher_answers(args.examples, recipe["max_new_tokens"], recipe["max_length"], args.seed)
    models = build_models(recipe)
    student, teacher, tok = models
    # The module's number of steps (length-grouped batches under the cap), which the plain loop matches.
    lengths = [len(e) for r in rows if (e := encode_example(tok, r["prompt"], r["answer"], r["capability"],
                                                            recipe["max_length"])) is not None]
    steps = len(length_grouped_batches(lengths, recipe["max_tokens_per_batch"], random.Random(0)))
    before = ceilings(device, args.ceiling_seconds)
    print(f"ceiling before {before}", file=sys.stderr)
    results = {key: run(key, known[name], models, rows, steps, recipe, args, device, before)
               for key, name in zip(run_keys(names), names)}
    after = ceilings(device, args.ceiling_seconds)
    ceiling = {k: max(before[k], after[k]) for k in before}
    # Against the machine's ceiling over the whole run (the higher of before and after).
    for r in results.values():
        r["utilisation_vs_run_ceiling"] = round(r["model_gflops"] / ceiling[r["precision"]], 4)
    base = results.get(BASELINE)
    ref = results.get(REFERENCE)
    for name, r in results.items():
        if base:
            r["speedup_vs_baseline"] = round(r["tokens_per_s"] / base["tokens_per_s"], 3)
            # Tokens/s ratio corrected for load: each side's throughput over its own in-window ceiling.
            r["load_corrected_speedup_vs_baseline"] = round(
                r["tokens_per_fp32_ceiling_gflop"] / base["tokens_per_fp32_ceiling_gflop"], 3)
        if ref and r["loop"] == "module":
            r["speedup_vs_fused"] = round(r["tokens_per_s"] / ref["tokens_per_s"], 3)
            r["load_corrected_speedup_vs_fused"] = round(
                r["tokens_per_fp32_ceiling_gflop"] / ref["tokens_per_fp32_ceiling_gflop"], 3)
            diff = max(abs(a - b) / abs(b) for a, b in zip(r["losses"], ref["losses"]))
            r["max_loss_rel_diff_vs_fused"] = float(f"{diff:.3g}")
    peak, peak_source = (args.peak_tflops, "--peak-tflops") if args.peak_tflops else detected_peak_tflops(device)
    if peak:
        for r in results.values():
            r["mfu_vs_datasheet_peak"] = round(r["model_gflops"] / (peak * 1e3), 4)
    recipe_config = "fused_bf16" if recipe["precision"] == "bf16-mixed" else "fused"
    print(json.dumps({
        "device": torch.cuda.get_device_name(device) if use_gpu else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "recipe": str(args.recipe),
        "student": f"{recipe['student']} layers {recipe['student_layers']}",
        "teacher": recipe["teacher"] if teacher is not None else None,
        "loss": recipe["module"],
        "student_linear_params": int(flops_per_token(student, 0.0) // 2),
        "teacher_linear_params": int(flops_per_token(teacher, 0.0) // 2) if teacher is not None else None,
        "examples": len(rows),
        "max_tokens_per_batch": recipe["max_tokens_per_batch"],
        "ceiling": {"matmul": "2048x2048x2048",
                    "gflops": {k: round(v, 1) for k, v in ceiling.items()},
                    "gflops_before": {k: round(v, 1) for k, v in before.items()},
                    "gflops_after": {k: round(v, 1) for k, v in after.items()}},
        "datasheet_peak_tflops": peak, "datasheet_peak_source": peak_source,
        "headline": {"config": recipe_config, "recipe_precision": recipe["precision"],
                     "utilisation": (results.get(recipe_config) or {}).get("utilisation"), "goal": 0.5},
        "configs": results,
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
