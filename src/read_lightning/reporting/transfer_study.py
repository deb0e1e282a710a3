"""The transfer study: what distilling one capability does to every capability, at a few budgets.

``read-train transfer --config RECIPE [--budgets B1 B2 [B3]] [--seeds N] [--out DIR]`` takes the recipe's
teacher, student, probe and data settings and, for every capability ``i`` (a row) and every budget
``B``, distils a fresh copy of the compressed base student on the one-hot mixture ``w = e_i`` for
``B`` tokens (``interventions.run_intervention``: teacher generation plus student training, the
same short distillation ``read-train interventions`` runs), probes it, and records the change of
every capability's probe score against the undistilled student. It writes, in ``--out``:

=========================  ====================================================================
``transfer_rows.jsonl``    one row per (distilled capability, budget, seed), appended and flushed as
                           it is measured; a rerun skips the rows already there (resumable)
``transfer.json``          the measured transfer matrices ``T(B)`` (rows: the capability
                           distilled, columns: the change of each capability's score, points;
                           the mean over the seeds, and each seed's), the base profile, each
                           capability's returns-versus-budget curve and, with two or more
                           seeds, the spread of a cell between seeds
``transfer_matrix.csv``    the matrices, one line per (budget, distilled capability)
``transfer_curves.csv``    per capability and budget: its own change, the mean change of the others
``transfer_heatmap.png``   one heatmap of ``T(B)`` per budget
``transfer_curves.png``    the returns-versus-budget curves
``transfer.md``            the tables and figures, with what they can and cannot say
TensorBoard events         ``transfer/heatmap``, ``transfer/curves`` (figures) and
                           ``transfer/own_change`` (scalars, step = budget in tokens)
=========================  ====================================================================

Each (capability, budget, seed) is one distillation from the same base weights, so two rows of a
seed differ in what was distilled and for how long, not in where they started. A seed sets the
prompts drawn, the teacher's sampling and the training order; ``--seeds N`` measures every cell with
N seeds, which is what tells a cell's transfer from the spread of distillation itself (the probes
score the same items every time, so repeating a probe would measure nothing). A budget counts
teacher generation and student training tokens, as a run's ledger does. The diagonal of ``T(B)`` is
a capability's own return at ``B``; an off-diagonal entry is transfer (or forgetting) and, with one
seed, also noise of the size of the seed spread.
``allocation.families.calibrated_environment`` turns ``transfer.json`` into an environment of the
allocation benchmark, probed with the seed spread where the study measured one.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
from read_lightning.core.jsonl import write_json_atomic, write_text_atomic
from read_lightning.reporting.recipes import _callback, load_recipe
from read_lightning.requirement.interventions import InterventionSetup, append_row, read_rows, run_intervention
from read_lightning.teachers.specs import spec_from_config

__all__ = ["STUDY_ROW_FIELDS", "run_transfer_study", "summarize_study", "transfer_main", "write_study_outputs"]

log = logging.getLogger(__name__)

STUDY_ROW_FIELDS: tuple[str, ...] = ("capability", "budget", "seed", "s_before", "s_after", "delta_s", "settings")
ROWS_FILE, SUMMARY_FILE = "transfer_rows.jsonl", "transfer.json"
_TB_SUFFIX = ".transfer"


# --------------------------------------------------------------------------- the recipe


def _fail(message: str) -> SystemExit:
    return SystemExit(f"read-train transfer: {message}")


def load_study_recipe(path: str) -> dict[str, Any]:
    """The recipe at ``path`` as a mapping; a missing or malformed file is refused by name."""
    return load_recipe(path, command="transfer")


def recipe_settings(recipe: Mapping[str, Any], path: str) -> dict[str, Any]:
    """What the study takes from a recipe: models, learning rate, data and probe settings.

    Keys the recipe leaves out take the defaults a ``read-train fit`` of it would use.
    """
    model, data = recipe.get("model") or {}, recipe.get("data") or {}
    if not isinstance(model, dict) or not isinstance(data, dict):
        raise _fail(f"{path}: 'model' and 'data' must be mappings")
    source = data.get("prompt_source", "templates")
    if source != "templates":
        raise _fail(f"{path}: data.prompt_source {source!r}: the study distils from the template library only")
    probe = (_callback(recipe, "CapabilityProbeCallback", path) or {}).get("init_args") or {}
    capabilities = data.get("capabilities") or list(DEFAULT_CAPABILITIES)
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        raise _fail(f"{path}: data.capabilities must be a list of names, got {capabilities!r}")
    budget, intervals = data.get("budget_tokens", 200_000), data.get("num_intervals", 10)
    # data.teacher as a spec names the teacher (read-train fit's link_teacher): a server's is asked
    # there, never run in this process
    spec = None
    if isinstance(data.get("teacher"), dict):
        try:
            spec = spec_from_config(data["teacher"])
        except ValueError as err:
            raise _fail(f"{path}: {err}") from None
    return {
        "teacher": spec.model if spec is not None else str(model.get("teacher", "embedded:smollm2-135m-instruct")),
        "teacher_spec": spec,
        "student": str(model.get("student", "embedded:smollm2-135m-instruct")),
        "student_layers": model.get("student_layers", "::3"),
        "lr": float(model.get("lr", 2e-5)),
        "max_length": int(data.get("max_length", 384)),
        "max_new_tokens": int(data.get("max_new_tokens", 128)),
        "max_tokens_per_batch": int(data.get("max_tokens_per_batch", 4096)),
        "generation_batch_size": int(data.get("generation_batch_size", 16)),
        "temperature": float(data.get("temperature", 0.2)),
        "probe_limit": probe.get("limit"),
        "probe_batch_size": int(probe.get("batch_size", 8)),
        "reference_max_new_tokens": int(probe.get("reference_max_new_tokens", 48)),
        "capabilities": capabilities,
        # the recipe's interval, the unit of the default budgets
        "interval_tokens": int(budget) // max(int(intervals), 1),
        "seed": int(recipe.get("seed_everything") or 0),
        "accelerator": str((recipe.get("trainer") or {}).get("accelerator", "auto")),
    }


def check_budgets(budgets: Sequence[int]) -> list[int]:
    """Two or three distinct positive token budgets, ascending."""
    if not 2 <= len(budgets) <= 3:
        raise _fail(f"--budgets takes two or three budgets (a curve needs two points), got {list(budgets)!r}")
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, int) or b <= 0:
            raise _fail(f"a budget must be a positive number of tokens, got {b!r}")
    if len(set(budgets)) != len(budgets):
        raise _fail(f"budgets must differ, got {list(budgets)!r}")
    return sorted(budgets)


def check_seeds(seeds: Sequence[int]) -> list[int]:
    """One or more distinct seeds, each a 32-bit integer >= 0, in the order given."""
    seeds = list(seeds)
    if not seeds:
        raise _fail("a study needs at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2**32:
            raise _fail(f"a seed must be an integer in [0, 2**32), got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise _fail(f"seeds must differ, got {seeds!r}")
    return seeds


def _settings(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's settings without its seed: rows written before studies had several seeds carry it there."""
    return {k: v for k, v in row["settings"].items() if k != "seed"}


def check_rows(rows: Sequence[str] | None, capabilities: Sequence[str]) -> list[str]:
    """The capabilities to distil (default: every capability), each one a capability the probe scores."""
    if rows is None:
        return list(capabilities)
    unknown = [c for c in rows if c not in capabilities]
    if unknown:
        raise _fail(f"unknown capabilities {unknown!r}; the recipe's are {list(capabilities)!r}")
    if len(set(rows)) != len(rows):
        raise _fail(f"capabilities are named twice: {sorted({c for c in rows if list(rows).count(c) > 1})!r}")
    return list(rows)


# --------------------------------------------------------------------------- the study


def run_transfer_study(
    setup: InterventionSetup,
    out_dir: str | Path,
    budgets: Sequence[int],
    *,
    distilled: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    lr: float = 1e-4,
    max_new_tokens: int = 64,
    max_length: int = 192,
    max_tokens_per_batch: int = 2048,
    generation_batch_size: int = 16,
    accelerator: str = "auto",
    extra_settings: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Measure the (capability, budget, seed) cells missing from ``out_dir/transfer_rows.jsonl``; returns
    every row.

    Rows written under other settings (models, lr, capabilities, ...) are an error rather than mixed
    into one matrix; rows of other seeds are repeats of the same study and are kept. Seeds run in
    order, so a study stopped part-way has its first seeds complete.
    """
    budgets = check_budgets(list(budgets))
    distilled = check_rows(distilled, setup.capabilities)
    seeds = check_seeds(seeds)
    out = Path(out_dir)
    path = out / ROWS_FILE
    settings = {
        "lr": lr,
        "max_new_tokens": max_new_tokens,
        "max_length": max_length,
        "max_tokens_per_batch": max_tokens_per_batch,
        "capabilities": list(setup.capabilities),
        **setup.description,
        **(extra_settings or {}),
    }
    rows = read_rows(path, STUDY_ROW_FIELDS)
    for row in rows:
        theirs = _settings(row)
        if theirs != settings:
            changed = sorted(k for k in {*settings, *theirs} if settings.get(k) != theirs.get(k))
            raise ValueError(f"{path}: row ({row['capability']!r}, {row['budget']}, seed {row['seed']}) was measured "
                             f"with other settings (differ in {changed!r}); write to a new --out directory")
    done = {(r["capability"], int(r["budget"]), int(r["seed"])) for r in rows}
    todo = [(c, b, s) for s in seeds for c in distilled for b in budgets if (c, b, s) not in done]
    log.info("%d distillations to run, %d already in %s", len(todo), len(done), path)
    if not todo:
        return rows
    out.mkdir(parents=True, exist_ok=True)
    s_before = setup.probe.evaluate(setup.student, setup.tokenizer)
    missing = [c for c in setup.capabilities if c not in s_before]
    if missing:
        raise ValueError(f"the probe returned no score for capabilities {missing!r}")
    teacher_seed = getattr(setup.teacher, "seed", None)
    for n, (cap, budget, seed) in enumerate(todo, start=1):
        if teacher_seed is not None:  # the teacher samples with the distillation's seed (restored below)
            setup.teacher.seed = seed
        try:
            student, stats = run_intervention(
                setup, {c: float(c == cap) for c in setup.capabilities}, budget_tokens=budget, seed=seed, lr=lr,
                max_new_tokens=max_new_tokens, max_length=max_length, max_tokens_per_batch=max_tokens_per_batch,
                generation_batch_size=generation_batch_size, accelerator=accelerator)
        finally:
            if teacher_seed is not None:
                setup.teacher.seed = teacher_seed
        s_after = setup.probe.evaluate(student, setup.tokenizer)
        del student
        row = {
            "capability": cap,
            "budget": budget,
            "seed": seed,
            "s_before": {c: float(s_before[c]) for c in setup.capabilities},
            "s_after": {c: float(s_after[c]) for c in setup.capabilities},
            "delta_s": {c: float(s_after[c] - s_before[c]) for c in setup.capabilities},
            **stats,
            "settings": settings,
        }
        append_row(path, row)
        rows.append(row)
        others = [v for c, v in row["delta_s"].items() if c != cap]
        print(f"[{n}/{len(todo)}] {cap} for {budget} tokens, seed {seed}: own {row['delta_s'][cap]:+.2f}, others mean "
              f"{np.mean(others) if others else 0.0:+.2f} points, {stats['training_tokens']} tokens trained, "
              f"{stats['seconds']:.0f}s", file=sys.stderr, flush=True)
    return rows


def summarize_study(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The study's matrices and curves from its rows (the content of ``transfer.json``).

    ``matrices[str(B)][i][j]`` is the change of ``capabilities[j]``'s score, in points, after
    distilling ``distilled[i]`` for ``B`` tokens, the mean over the seeds that measured it (None where
    none did); ``matrices_by_seed[str(seed)][str(B)]`` is each seed's. ``curves[c]`` is ``c``'s own
    change at each budget, starting from 0 tokens (the base student). ``seed_spread``, where some cell
    has two or more seeds: the sd of one seed's change about its cell's mean, pooled over those cells
    (``sd`` in points, ``cells``, ``df``); None otherwise.
    """
    if not rows:
        raise ValueError("the study has no rows yet: nothing to summarize")
    capabilities = list(rows[0]["settings"]["capabilities"])
    budgets = sorted({int(r["budget"]) for r in rows})
    seeds = sorted({int(r["seed"]) for r in rows})
    distilled = [c for c in capabilities if any(r["capability"] == c for r in rows)]
    by_seed = {(r["capability"], int(r["budget"]), int(r["seed"])): r for r in rows}
    cells: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for (i, b, _), r in sorted(by_seed.items(), key=lambda kv: kv[0][2]):
        cells.setdefault((i, b), []).append(r)
    mean = {key: [float(np.mean([r["delta_s"][j] for r in rs])) for j in capabilities] for key, rs in cells.items()}
    matrices, training = {}, {}
    for b in budgets:
        matrices[str(b)] = [mean.get((i, b)) or [None] * len(capabilities) for i in distilled]
        training[str(b)] = {i: int(round(float(np.mean([r.get("training_tokens") or 0 for r in cells[(i, b)]]))))
                            for i in distilled if (i, b) in cells}
    matrices_by_seed = {str(s): {str(b): [[by_seed[(i, b, s)]["delta_s"][j] if (i, b, s) in by_seed else None
                                           for j in capabilities] for i in distilled] for b in budgets}
                        for s in seeds}
    repeated = [(np.array([[r["delta_s"][j] for j in capabilities] for r in rs]), len(rs))
                for rs in cells.values() if len(rs) >= 2]
    seed_spread = None
    if repeated:
        ss = sum(float(((d - d.mean(0)) ** 2).sum()) for d, _ in repeated)
        df = sum((n - 1) * len(capabilities) for _, n in repeated)
        seed_spread = {"sd": math.sqrt(ss / df), "cells": len(repeated) * len(capabilities), "df": df}
    curves = {}
    for c in distilled:
        points = [(b, dict(zip(capabilities, mean[(c, b)]))) for b in budgets if (c, b) in mean]
        curves[c] = {
            "budgets": [0] + [b for b, _ in points],
            "own_change": [0.0] + [d[c] for _, d in points],
            "others_mean_change": [0.0] + [float(np.mean([d[j] for j in capabilities if j != c] or [0.0]))
                                           for _, d in points],
        }
    # teacher generation + training tokens per token trained, the cost of a capability's data
    per_token = {i: float(np.mean(ratios)) for i in distilled
                 if (ratios := [r["tokens_spent"] / r["training_tokens"] for b in budgets for r in cells.get((i, b), [])
                                if r.get("training_tokens")])}
    # a row trained on nothing measures only noise, whatever the other seeds of its cell did
    untrained = sorted({f"{r['capability']} at {r['budget']}" + (f" (seed {r['seed']})" if len(seeds) > 1 else "")
                        for r in rows if r.get("training_tokens") == 0})
    return {
        "capabilities": capabilities,
        "distilled": distilled,
        "budgets": budgets,
        "seeds": seeds,
        "base_profile": dict(rows[0]["s_before"]),
        "matrices": matrices,
        "matrices_by_seed": matrices_by_seed,
        "seed_spread": seed_spread,
        "curves": curves,
        "training_tokens": training,
        "tokens_per_trained_token": per_token,
        "untrained": untrained,
        "complete": all((i, b, s) in by_seed for i in distilled for b in budgets for s in seeds),
        "settings": _settings(rows[0]),
    }


# --------------------------------------------------------------------------- outputs


def _matrix_csv(study: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["budget", "distilled", *study["capabilities"]])
    for b in study["budgets"]:
        for i, name in enumerate(study["distilled"]):
            writer.writerow([b, name, *("" if v is None else f"{v:.6g}" for v in study["matrices"][str(b)][i])])
    return buf.getvalue()


def _curves_csv(study: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["capability", "budget", "own_change", "others_mean_change"])
    for cap, curve in study["curves"].items():
        for b, own, rest in zip(curve["budgets"], curve["own_change"], curve["others_mean_change"]):
            writer.writerow([cap, b, f"{own:.6g}", f"{rest:.6g}"])
    return buf.getvalue()


def _seeds_text(study: Mapping[str, Any]) -> str:
    seeds = study["seeds"]
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"


def _spread_text(study: Mapping[str, Any]) -> str:
    spread = study["seed_spread"]
    if spread is None:
        return ("Each cell is measured with one seed, so an entry the size of the spread between seeds is noise; "
                "--seeds 2 or more measures that spread.")
    return (f"Between seeds, one seed's change of a cell is {spread['sd']:.2f} points (sd about the cell's mean, "
            f"pooled over {spread['cells']} changes, {spread['df']} degrees of freedom), so a mean over "
            f"{len(study['seeds'])} seeds is known to about {spread['sd'] / math.sqrt(len(study['seeds'])):.2f}.")


def _markdown(study: Mapping[str, Any], figures: Sequence[str]) -> str:
    caps = study["capabilities"]
    s = study["settings"]
    lines = ["# Transfer study", "",
             f"Student `{s.get('student', '?')}` (layers `{s.get('student_layers', '?')}`), teacher "
             f"`{s.get('teacher', '?')}`, lr {s.get('lr')}, {_seeds_text(study)}. Each cell: the change of a "
             "capability's probe score (points, 0-100) after distilling the base student on one capability "
             "alone for the budget (teacher generation + training tokens), against the base student"
             f"{', the mean over the seeds' if len(study['seeds']) > 1 else ''}. {_spread_text(study)}", ""]
    if not study["complete"]:
        lines += ["**The study is not complete: missing cells are shown as `-`. Rerun the same command to "
                  "measure them.**", ""]
    if study["untrained"]:
        lines += [f"**Trained on no tokens (every prompt longer than max_length): {', '.join(study['untrained'])}; "
                  "those rows measure only noise.**", ""]
    lines += ["Base profile: " + ", ".join(f"{c} {study['base_profile'][c]:.1f}" for c in caps), ""]
    for b in study["budgets"]:
        lines += [f"## T(B) at {b} tokens", "", "| distilled \\ change in | " + " | ".join(caps) + " |",
                  "| --- | " + " | ".join("---" for _ in caps) + " |"]
        for i, name in enumerate(study["distilled"]):
            cells = ["-" if v is None else f"{v:+.1f}" for v in study["matrices"][str(b)][i]]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Returns versus budget", "", "| capability | " + " | ".join(f"{b} tokens" for b in study["budgets"])
              + " |", "| --- | " + " | ".join("---" for _ in study["budgets"]) + " |"]
    for cap, curve in study["curves"].items():
        own = dict(zip(curve["budgets"], curve["own_change"]))
        lines.append(f"| {cap} | " + " | ".join("-" if b not in own else f"{own[b]:+.1f}" for b in study["budgets"])
                     + " |")
    lines += ["", "Own change of the capability distilled; 0 tokens is the base student."]
    lines += [""] + [f"![{name}]({name})\n" for name in figures]
    return "\n".join(lines)


def write_study_outputs(out_dir: str | Path, rows: Sequence[Mapping[str, Any]], tensorboard: bool = True) -> dict[str, Any]:
    """Write the summary, CSVs, figures, Markdown and TensorBoard events of a study; returns the summary."""
    from read_lightning.reporting.figures import _plot_study_curves, _plot_study_heatmaps

    out = Path(out_dir)
    study = summarize_study(rows)
    write_json_atomic(out / SUMMARY_FILE, study)
    write_text_atomic(out / "transfer_matrix.csv", _matrix_csv(study))
    write_text_atomic(out / "transfer_curves.csv", _curves_csv(study))
    figs = {"heatmap": _plot_study_heatmaps(study), "curves": _plot_study_curves(study)}
    for name, fig in figs.items():
        fig.savefig(out / f"transfer_{name}.png", dpi=110)
    write_text_atomic(out / "transfer.md", _markdown(study, [f"transfer_{n}.png" for n in figs]))
    if tensorboard:
        _write_tensorboard(out, study, figs)
    return study


def _write_tensorboard(out: Path, study: Mapping[str, Any], figs: Mapping[str, Any]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    # ours to replace: a rerun does not show every figure twice (add_scalars writes one
    # sub-directory per capability, transfer_own_change_<capability>)
    for old in [*out.glob(f"events.out.tfevents.*{_TB_SUFFIX}"), *out.glob(f"transfer_*/events.out.tfevents.*{_TB_SUFFIX}")]:
        old.unlink()
    writer = SummaryWriter(log_dir=str(out), filename_suffix=_TB_SUFFIX)
    try:
        for name, fig in figs.items():
            writer.add_figure(f"transfer/{name}", fig, global_step=len(study["budgets"]), close=False)
        for b in study["budgets"]:
            own = {c: curve["own_change"][curve["budgets"].index(b)]
                   for c, curve in study["curves"].items() if b in curve["budgets"]}
            writer.add_scalars("transfer/own_change", own, global_step=b)
    finally:
        writer.close()


# --------------------------------------------------------------------------- command line


def transfer_main(argv: list[str] | None = None, *, setup: InterventionSetup | None = None) -> int:
    """``read-train transfer --config RECIPE [--budgets B1 B2 [B3]] [--capabilities ...] [--out DIR]``.

    ``setup`` replaces the models the recipe names (tests, other model families); the recipe still
    gives the training settings. Every input is checked before a model loads.
    """
    parser = argparse.ArgumentParser(prog="read-train transfer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="a recipe (recipes/*.yaml): models, data and probe settings")
    parser.add_argument("--budgets", type=int, nargs="+", default=None,
                        help="two or three token budgets per distillation (default: one and two of the recipe's intervals)")
    parser.add_argument("--capabilities", nargs="+", default=None, help="capabilities to distil (default: all)")
    parser.add_argument("--out", default=None, help="output directory (default: runs/transfer/<recipe name>)")
    parser.add_argument("--seed", type=int, default=None, help="the first seed (default: the recipe's)")
    parser.add_argument("--seeds", type=int, default=1,
                        help="seeds per cell, from --seed on (default 1); with two or more, transfer.json has the mean "
                             "over seeds and their spread, which read_study uses as the study's noise")
    parser.add_argument("--accelerator", default=None, help="default: the recipe's trainer.accelerator")
    parser.add_argument("--num-threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--cache-dir", default=None, help="model cache (embedded model conversion)")
    parser.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard events")
    args = parser.parse_args(argv)

    settings = recipe_settings(load_study_recipe(args.config), args.config)
    budgets = check_budgets(args.budgets if args.budgets is not None
                            else [settings["interval_tokens"], 2 * settings["interval_tokens"]])
    columns = list(setup.capabilities) if setup is not None else settings["capabilities"]
    distilled = check_rows(args.capabilities, columns)
    out = Path(args.out) if args.out else Path("runs") / "transfer" / Path(args.config).stem
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {str(out)!r} is a file, not a directory")
    seed = settings["seed"] if args.seed is None else args.seed
    if args.seeds < 1:
        raise _fail(f"--seeds must be >= 1, got {args.seeds}")
    seeds = check_seeds(list(range(seed, seed + args.seeds)))
    if args.num_threads is not None:
        if args.num_threads < 1:
            raise _fail(f"--num-threads must be >= 1, got {args.num_threads}")
        import torch

        torch.set_num_threads(args.num_threads)
    if setup is None:
        from read_lightning.requirement.interventions import embedded_setup

        setup = embedded_setup(
            settings["teacher"], settings["student"], settings["student_layers"] or None, columns,
            probe_limit=settings["probe_limit"], batch_size=settings["probe_batch_size"],
            reference_dir=out / "references", max_new_tokens=settings["max_new_tokens"],
            temperature=settings["temperature"], seed=seed, cache_dir=args.cache_dir,
            reference_max_new_tokens=settings["reference_max_new_tokens"], teacher_spec=settings["teacher_spec"])
        setup.description.pop("task_limit", None)  # the study scores no task
        setup.description.pop("utility", None)
    else:
        setup = copy.copy(setup)
        setup.description = dict(setup.description)
    try:
        rows = run_transfer_study(
            setup, out, budgets, distilled=distilled, seeds=seeds, lr=settings["lr"],
            max_new_tokens=settings["max_new_tokens"], max_length=settings["max_length"],
            max_tokens_per_batch=settings["max_tokens_per_batch"],
            generation_batch_size=settings["generation_batch_size"],
            accelerator=args.accelerator or settings["accelerator"],
            extra_settings={"temperature": settings["temperature"], "probe_limit": settings["probe_limit"]})
    except ValueError as err:
        raise _fail(str(err)) from None
    study = write_study_outputs(out, rows, tensorboard=not args.no_tensorboard)
    print(json.dumps({"output": str(out), "rows": len(rows), "complete": study["complete"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(transfer_main())
