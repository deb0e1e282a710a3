"""How noisy the real probes are: item sampling and training seeds, on finished runs.

    python benchmarks/probe_noise.py --runs runs/compare5/smollm2-135m/task_static/seed_*   # ~3 min
    python benchmarks/probe_noise.py --runs <run dirs> --no-items      # the seed part only, seconds

A probe scores the first ``limit`` items of each capability (6 in the default recipe), always
the same ones, so probing twice measures nothing. What the allocator reads as noise in a
capability's change ``delta_s`` has two sources, measured here apart:

- **Training seeds.** Runs of one recipe and one fixed mixture (``task_static``: ``w = r`` at
  every interval) that differ only in their seed. Per capability: the standard deviation across
  seeds of each interval's ``delta_s``, pooled over intervals, against the mean ``delta_s`` (the
  signal); and the spread of the final score.
- **Item sampling.** The probe's items are a sample of the capability. Every item of the packaged
  probe set (16-20 per capability) is scored on the undistilled student and on each run's final
  student: per-item fidelity, ``100 * (1 + mean log-prob / 20)``, whose mean over items is the
  probe's score. The standard error of a ``limit``-item mean (``sd / sqrt(limit)``) is reported
  for the level and for the whole run's change. The items scored in a run stay the same, so this
  error is not drawn again at every interval: per interval it is the item spread of the change,
  reported here for the whole run.

It also prints, at each capability's measured level ``s``, the range of the ``noisy`` family's
assumed sd (``sigma sqrt(s (100 - s)) / 50``, ``sigma`` in [0.5, 3]) and, for an interval's
change, that sd times ``sqrt(2)`` (two independent probes); and, to compare noise by the size
of the change it blurs, the real probes' seed sd per unit of change (``real_sd_per_change``,
the smallest and largest over capabilities) beside each environment family's
(``families``: mean true change per interval and the median noise sd on it, under ``w = r`` on
the evaluation seeds, at 8 and 25 decisions).

The undistilled student is rebuilt from the runs' ``config.yaml`` (``model.student``,
``model.student_layers``); the teacher's greedy references for the items a run did not probe are
generated once and added to the same cache file the runs read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np



def _profiles(run: Path) -> list[dict[str, float]]:
    summary = json.loads((run / "summary.json").read_text())
    history = summary["probes"]["history"]
    return [{c: float(s) for c, s in h["profile"].items()} for h in history]


def _config(run: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def _allocator(config: dict[str, Any]) -> str:
    for cb in config.get("trainer", {}).get("callbacks") or []:
        if str(cb.get("class_path", "")).endswith("BanditAllocationCallback"):
            return str((cb.get("init_args") or {}).get("allocator", "read"))
    return "none"


def seed_spread(runs: list[Path]) -> dict[str, Any]:
    """Per capability: the sd across runs of each interval's change, pooled, and of the final score."""
    profiles = [_profiles(r) for r in runs]
    lengths = {len(p) for p in profiles}
    if len(lengths) != 1:
        raise SystemExit(f"the runs probed a different number of times: {sorted(lengths)}")
    caps = list(profiles[0][0])
    out: dict[str, Any] = {}
    for c in caps:
        series = np.array([[p[t][c] for t in range(len(p))] for p in profiles])  # runs x probes
        deltas = np.diff(series, axis=1)  # runs x intervals
        var_t = deltas.var(axis=0, ddof=1)
        out[c] = {
            "start": round(float(series[:, 0].mean()), 2),
            "final": round(float(series[:, -1].mean()), 2),
            "final_sd": round(float(series[:, -1].std(ddof=1)), 3),
            "delta_mean": round(float(deltas.mean()), 3),
            "delta_sd_pooled": round(float(math.sqrt(var_t.mean())), 3),
            "delta_sd_per_interval": [round(float(math.sqrt(v)), 3) for v in var_t],
        }
    return out


def _item_scores(model: Any, tokenizer: Any, probe: Any) -> dict[str, np.ndarray]:
    from read_lightning.evaluation.scoring import preserved_state, score_continuations
    from read_lightning.teachers.generation import chat_prompt_ids

    eos = tokenizer.eos_token or ""
    out = {}
    with preserved_state(model):
        for cap, items in probe.items.items():
            contexts = [chat_prompt_ids(tokenizer, it["prompt"]) for it in items]
            targets = [tokenizer.encode(probe._target(cap, it, eos), add_special_tokens=False) for it in items]
            scores = score_continuations(model, contexts, targets, batch_size=8)
            # Per item, the probe's fidelity before clipping; their mean is the probe's score.
            out[cap] = np.array([100.0 * (1.0 + s.mean_logprob / 20.0) for s in scores])
    return out


def item_sampling(runs: list[Path], limit: int, threads: int) -> dict[str, Any]:
    import torch

    from read_lightning.evaluation.probes import CapabilityProbe
    from read_lightning.teachers.models import default_cache_dir, load_model, load_tokenizer
    from read_lightning.training.module import DistillationModule

    torch.set_num_threads(threads)
    config = _config(runs[0])
    model_cfg, data_cfg = config["model"], config["data"]
    student, teacher = model_cfg.get("student"), model_cfg.get("teacher")
    probe_cb = next(cb for cb in config["trainer"]["callbacks"] if cb["class_path"].endswith("CapabilityProbeCallback"))
    ref_tokens = int((probe_cb.get("init_args") or {}).get("reference_max_new_tokens", 48))
    probe = CapabilityProbe(capabilities=data_cfg.get("capabilities"))  # every item of each set
    tokenizer = load_tokenizer(teacher)
    teacher_model = load_model(teacher, shared=True)
    cache = Path(default_cache_dir()) / "probe_references" / (teacher.replace("/", "--").replace(":", "-") + ".jsonl")
    probe.build_references(teacher_model, tokenizer, cache, max_new_tokens=ref_tokens)
    base = DistillationModule(student=student, teacher=teacher, student_layers=model_cfg.get("student_layers"))
    base.configure_model()
    start = _item_scores(base.student, tokenizer, probe)
    finals = [_item_scores(load_model(str(r / "student")), tokenizer, probe) for r in runs]
    out: dict[str, Any] = {}
    for cap, s0 in start.items():
        level = np.mean([f[cap] for f in finals], axis=0)
        change = np.array([f[cap] - s0 for f in finals])  # runs x items
        first = {"start": float(s0[:limit].mean()), "final": float(level[:limit].mean())}
        out[cap] = {
            "items": int(len(s0)),
            "first_items_start_final": [round(first["start"], 2), round(first["final"], 2)],
            "all_items_start_final": [round(float(s0.mean()), 2), round(float(level.mean()), 2)],
            "item_sd_final": round(float(level.std(ddof=1)), 3),
            f"se_level_{limit}_items": round(float(level.std(ddof=1) / math.sqrt(limit)), 3),
            "run_change_mean": round(float(change.mean()), 3),
            f"se_run_change_{limit}_items": round(float(change.mean(axis=0).std(ddof=1) / math.sqrt(limit)), 3),
        }
    return out


def family_signal(decisions: int, seeds: range = range(1000, 1012)) -> dict[str, dict[str, float]]:
    """Per family of ``allocation.families``, under ``w = r`` on the evaluation seeds: the mean
    absolute true change of a capability per interval and the median sd of the probe noise on
    that change (two probes), so the families' noise can be set against the real probes' by
    the size of the change it blurs."""
    from read_lightning.allocation.families import FAMILIES, make_family_environment

    out = {}
    for family in FAMILIES:
        changes, sds = [], []
        for seed in seeds:
            env = make_family_environment(family, seed, decisions=decisions)
            env.reset()
            w = dict(zip(env.capabilities, np.asarray(env.params.requirement, dtype=float)))
            before = np.array(list(env.profile().values()))
            for _ in range(decisions):
                sds.append(env.probe_sd() * math.sqrt(2))
                env.step(w)
                after = np.array(list(env.profile().values()))
                changes.append(np.abs(after - before))
                before = after
        change, sd = float(np.mean(changes)), float(np.median(sds))
        out[family] = {"mean_abs_change": round(change, 3), "median_change_sd": round(sd, 3),
                       "sd_per_change": round(sd / change, 2)}
    return out


def family_range(level: float, factor: float = 1.0) -> list[float]:
    """The ``noisy`` family's sd at score ``level`` for its smallest and largest sigma, times ``factor``."""
    from read_lightning.allocation.families import NOISY_SIGMA

    scale = factor * math.sqrt(max(level * (100.0 - level), 0.0)) / 50.0
    return [round(NOISY_SIGMA[0] * scale, 3), round(NOISY_SIGMA[1] * scale, 3)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="finished run directories of one recipe and allocator")
    parser.add_argument("--limit", type=int, default=6, help="items a probe scores per capability (the recipe's limit)")
    parser.add_argument("--no-items", action="store_true", help="skip the item part (no model is loaded)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    runs = [Path(r) for r in args.runs]
    for r in runs:
        if not (r / "summary.json").is_file():
            parser.error(f"{r} is not a finished run (no summary.json)")
    if len(runs) < 2:
        parser.error(f"the seed spread needs at least 2 runs, got {len(runs)}")
    if args.limit < 2:
        parser.error(f"--limit must be >= 2, got {args.limit}")
    allocators = {_allocator(_config(r)) for r in runs}
    if len(allocators) != 1:
        parser.error(f"the runs used different allocators {sorted(allocators)}; give runs of one mixture rule")
    result: dict[str, Any] = {"runs": [str(r) for r in runs], "allocator": allocators.pop()}
    seeds = seed_spread(runs)
    for cap, row in seeds.items():
        # The family draws each probe's noise afresh: an interval's change carries two of them.
        row["noisy_family_delta_sd"] = family_range(row["final"], math.sqrt(2))
    result["seeds"] = seeds
    changes = [row["delta_mean"] for row in seeds.values()]
    sds = [row["delta_sd_pooled"] for row in seeds.values()]
    result["real_sd_per_change"] = [round(min(s / c for s, c in zip(sds, changes) if c > 0), 2),
                                    round(max(s / c for s, c in zip(sds, changes) if c > 0), 2)]
    result["families"] = {f"{d}_decisions": family_signal(d) for d in (8, 25)}
    if not args.no_items:
        result["items"] = item_sampling(runs, args.limit, args.threads)
    json.dump(result, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
