"""Allocation benchmark: allocators against ``w = r`` and the best fixed mixture, per environment family.

Each family of ``read_lightning.allocation.families`` is run on ``--envs`` seeded environments; every
allocator sees the same environments and probe noise. Per family the JSON reports, with 95%
bootstrap confidence intervals over the environments:

* ``over_task_static``: final true utility / that of ``w = r``;
* ``over_best_fixed``: the same / the best fixed mixture found by grid search with the TRUE
  dynamics (an oracle no allocator can use);
* ``headroom``: best fixed / ``w = r`` - 1, and ``capture``: the share of it the allocator takes,
  ``(over_task_static - 1) / headroom`` (negative: it lost to ``w = r``);
* ``target``: issue #19's, per family: capture >= 0.5 where the headroom is >= 5%, else
  ``over_task_static >= 0.99``; ``met`` is judged on the means;
* ``ms_per_decision``: ``select`` + ``observe``, mean and worst environment.

Seeds: tuning uses ``--tune`` (seeds 0 to envs - 1); the default is the evaluation seeds (1000 on),
used for no choice. Usage::

    python benchmarks/allocation.py                           # evaluation seeds, all families
    python benchmarks/allocation.py --tune --allocators read  # what the defaults were tuned on
    python benchmarks/allocation.py --families saturation --envs 30
    python benchmarks/allocation.py --diagnostics             # simulator.py only (allocation_diagnostics.py)
    python benchmarks/allocation.py --allocators read,read:freed_to=pro_rata   # a variant beside the default
    python benchmarks/allocation.py --tune --noise-free       # the same environments probed without noise
    python benchmarks/allocation.py --families sign_flip --probe-sd 0.01 --first-seed 5000 --envs 40   # a family-A lookalike
    python benchmarks/allocation.py --study 1,2,4,8 --allocators read,read_transfer:z=0.5   # with a transfer study
    python benchmarks/allocation.py --study 1,2,4,8 --study-repeats 4 --allocators read,read_study   # four of them
    python benchmarks/allocation.py --families measured --measured-study runs/transfer/my-recipe/transfer.json   # your model

An allocator is named as in ``make_allocator``, optionally followed by ``:option=value`` pairs (each
value read as JSON where it parses, else as a string); the spec is its label in the report. Every
allocator after the first also gets ``paired_vs_first``: the mean difference of its ratio to ``w = r``
from the first allocator's, environment by environment, with its interval.

``--study B1,B2,...``: before each environment's episodes, a single-capability transfer study is
simulated on it (``study.TransferStudy.simulate``: each capability trained alone from the start and
probed at each budget, with the environment's probe noise) and given as ``study`` to every allocator
that takes one (``read_transfer``). Budgets are in intervals of a 25-decision run, scaled to the
horizon, so the study spends the same tokens at any ``--decisions``. The study is not charged to the
run: its cost, K x the largest budget in such intervals, is in the report (``study``).
``--study-repeats N`` runs it N times with their own probe draws and averages them, as ``read-train
transfer --seeds N`` does on the real model (the noise falls by sqrt(N), the cost rises N-fold).

``--measured-study PATH`` calibrates the ``measured`` family on that ``read-train transfer`` output
instead of the packaged study of the embedded default (``families.MEASURED_STUDY``): the suite's
simulator anchored in a study of your own recipe and model, probed with the noise its seeds measured
where it ran two or more (``families.study_probe_sd``). It is checked before anything runs.

The measured table is in ``docs/allocator.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

# The allocators' matrices are tiny: BLAS threads only add contention on a shared CPU. Must be
# set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from read_lightning.allocation.bandit import allocator_options, make_allocator  # noqa: E402
from read_lightning.allocation.families import CALIBRATED, FAMILIES, MEASURED_STUDY, calibrated_environment, make_family_environment  # noqa: E402
from read_lightning.allocation.simulator import (  # noqa: E402
    CapabilityTransferEnv,
    grid_search_best_fixed,
    run_episode,
    simulate_fixed,
)
from read_lightning.allocation.study import TransferStudy, check_budgets  # noqa: E402

__all__ = ["main", "parse_allocator", "parse_study", "run_suite", "summarise", "EVAL_SEED", "TUNE_SEED"]

TUNE_SEED, EVAL_SEED = 0, 1000
DEFAULT_ALLOCATORS = ("read", "read_ucb")


def parse_allocator(spec: str) -> tuple[str, dict]:
    """``"read:freed_to=pro_rata:kappa=0.5"`` -> ``("read", {"freed_to": "pro_rata", "kappa": 0.5})``."""
    name, *pairs = spec.split(":")
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"allocator option {pair!r} in {spec!r} is not key=value")
        try:
            options[key] = json.loads(text)
        except json.JSONDecodeError:
            options[key] = text
    return name, options


def _bootstrap_ci(values: np.ndarray, stat, rng: np.random.Generator, draws: int = 2000) -> list[float]:
    """95% percentile interval of ``stat`` over resamples of the rows of ``values``."""
    idx = rng.integers(0, len(values), size=(draws, len(values)))
    return [float(v) for v in np.percentile([stat(values[i]) for i in idx], [2.5, 97.5])]


def summarise(over_r: np.ndarray, best_over_r: np.ndarray, ms: np.ndarray, seed: int = 0) -> dict:
    """Per-family figures for one allocator from per-environment ratios to ``w = r`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    pairs = np.column_stack([over_r, best_over_r])

    def capture(rows: np.ndarray) -> float:
        head = rows[:, 1].mean() - 1.0
        return float((rows[:, 0].mean() - 1.0) / head) if head > 1e-12 else float("nan")

    head = float(best_over_r.mean() - 1.0)
    over_best = over_r / best_over_r
    cap = capture(pairs)
    if head >= 0.05:
        target, met = "capture >= 0.5 of the headroom", bool(cap >= 0.5)
    else:
        target, met = "over_task_static >= 0.99", bool(over_r.mean() >= 0.99)
    return {
        "over_task_static": {"mean": float(over_r.mean()), "ci95": _bootstrap_ci(over_r, np.mean, rng)},
        "over_best_fixed": {"mean": float(over_best.mean()), "ci95": _bootstrap_ci(over_best, np.mean, rng)},
        "headroom": {"mean": head, "ci95": [v - 1.0 for v in _bootstrap_ci(best_over_r, np.mean, rng)]},
        "capture": {"mean": cap, "ci95": _bootstrap_ci(pairs, capture, rng)},
        "worst_env_over_task_static": float(over_r.min()),
        "target": target,
        "met": met,
        "ms_per_decision": {"mean": float(ms.mean()), "max_env": float(ms.max())},
    }


def _valid_probe_sd(sd: float | None) -> bool:
    """None (each family's own probes) or a finite sd >= 0."""
    return sd is None or bool(np.isfinite(sd) and sd >= 0)


def parse_study(text: str) -> tuple[float, ...]:
    """``"1,2,4,8"`` -> ``(1.0, 2.0, 4.0, 8.0)``; ValueError naming ``text`` unless increasing budgets > 0."""
    try:
        budgets = tuple(float(b) for b in text.split(","))
        check_budgets(budgets)
    except ValueError:
        raise ValueError(f"--study must be increasing budgets > 0, comma-separated, got {text!r}") from None
    return budgets


def check_study_repeats(repeats: int, study: tuple[float, ...] | None) -> None:
    """ValueError unless ``repeats`` is an integer >= 1, and 1 where there is no ``study`` to repeat."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"--study-repeats must be >= 1, got {repeats}")
    if repeats > 1 and study is None:
        raise ValueError(f"--study-repeats {repeats} repeats a study: give --study too")


def check_measured_study(measured_study: str | None, families: tuple[str, ...]) -> None:
    """ValueError unless ``measured_study`` is None, or a complete ``read-train transfer`` output (its
    seed spread, where it has one, a positive sd) with the ``measured`` family among ``families`` (the
    family it calibrates)."""
    if measured_study is None:
        return
    if CALIBRATED not in families:
        raise ValueError(f"--measured-study calibrates the {CALIBRATED} family: add it to --families")
    try:
        calibrated_environment(measured_study, EVAL_SEED)  # the fit is kept for the run's environments
    except ValueError as err:
        raise ValueError(f"--measured-study: {err}") from None


def run_suite(
    families: tuple[str, ...] = FAMILIES,
    allocators: tuple[str, ...] = DEFAULT_ALLOCATORS,
    envs: int = 12,
    decisions: int = 25,
    first_seed: int = EVAL_SEED,
    progress: bool = True,
    noise_free: bool = False,
    probe_sd: float | None = None,
    study: tuple[float, ...] | None = None,
    study_repeats: int = 1,
    measured_study: str | None = None,
    environment: Callable[[str, int, int], CapabilityTransferEnv] | None = None,
) -> dict:
    """Run every allocator on ``envs`` environments of each family; returns the JSON-ready report.

    ``noise_free``: the probes read the true profile (no probe noise, no item distortion), to
    separate what an allocator's model misses from what the noise hides. ``probe_sd``: every
    environment's probes get that sd instead of the family's (homoscedastic, no item distortion), to
    draw lookalikes of a family probed otherwise (issue #19's held-out family A: ``sign_flip`` at 0.01).
    ``study``: budgets of a simulated transfer study given to the allocators that take one (module
    docstring), in intervals of a 25-decision run, run ``study_repeats`` times and averaged.
    ``measured_study``: the ``read-train transfer`` output the ``measured`` family is calibrated on
    (default: the packaged study, ``families.MEASURED_STUDY``). ``environment(family, seed, decisions)``:
    what builds each environment instead of ``make_family_environment`` (``allocation_stress.py``'s
    families).
    """
    if not _valid_probe_sd(probe_sd):
        raise ValueError(f"probe_sd must be finite and >= 0, got {probe_sd!r}")
    if study is not None:
        check_budgets(study)
    check_study_repeats(study_repeats, study)
    check_measured_study(measured_study, families)  # refused before any episode, not ignored
    takes_study = {name for name in allocators if study is not None
                   and "study" in (allocator_options(parse_allocator(name)[0]) or set())}
    start = time.perf_counter()
    report: dict = {"envs": envs, "decisions": decisions, "seeds": [first_seed, first_seed + envs - 1],
                    "allocators": list(allocators), "noise_free": noise_free, "probe_sd": probe_sd, "families": {}}
    if CALIBRATED in families:
        report["measured_study"] = str(MEASURED_STUDY if measured_study is None else measured_study)
    if study is not None:
        report["study"] = {"budgets": list(study), "repeats": study_repeats, "given_to": sorted(takes_study),
                           "intervals_per_capability": max(study), "cost_x_run_budget": None}
    for family in families:
        best, static, final, ms = [], [], {a: [] for a in allocators}, {a: [] for a in allocators}
        for e in range(envs):
            seed = first_seed + e
            env = environment(family, seed, decisions) if environment is not None else \
                make_family_environment(family, seed, decisions=decisions, study=measured_study if family == CALIBRATED else None)
            p = env.params
            if noise_free or probe_sd is not None:
                p.probe_noise, p.noise_scale, p.probe_gain = (0.0 if noise_free else probe_sd), None, None
                p.heteroscedastic = False
            static.append(float(simulate_fixed(p, p.requirement)[0]))
            best.append(grid_search_best_fixed(lambda: env)[1])
            measured = None
            if study is not None:
                env.reset()
                measured = TransferStudy.simulate(env, [b * decisions / 25.0 for b in study], seed=seed,
                                                  repeats=study_repeats)
                report["study"]["cost_x_run_budget"] = study_repeats * len(p.start) * max(study) / 25.0
            for name in allocators:
                kind, options = parse_allocator(name)
                if name in takes_study:
                    options = {**options, "study": measured}
                alloc = make_allocator(kind, env.capabilities, env.requirement, seed=seed, **options)
                result = run_episode(alloc, env, decisions)
                final[name].append(result.utility)
                ms[name].append(result.ms_per_decision)
        best_over_r = np.array(best) / np.array(static)
        report["families"][family] = {
            name: summarise(np.array(final[name]) / np.array(static), best_over_r, np.array(ms[name]))
            for name in allocators
        }
        first = np.array(final[allocators[0]]) / np.array(static)
        for name in allocators[1:]:
            diff = np.array(final[name]) / np.array(static) - first
            report["families"][family][name]["paired_vs_first"] = {
                "mean": float(diff.mean()), "ci95": _bootstrap_ci(diff, np.mean, np.random.default_rng(0))}
        if progress:
            line = ", ".join(f"{n} {v['over_task_static']['mean']:.4f}" for n, v in report["families"][family].items())
            print(f"{family}: headroom {best_over_r.mean() - 1:.3f}; x (w = r): {line} "
                  f"({time.perf_counter() - start:.0f}s)", file=sys.stderr, flush=True)
    report["wall_s"] = time.perf_counter() - start
    return report


def _table(report: dict) -> str:
    def ci(d: dict, fmt: str = "{:.4f}") -> str:
        low, high = d["ci95"]
        return f"{fmt.format(d['mean'])} [{fmt.format(low)}, {fmt.format(high)}]"

    lines = ["| family | allocator | x (w = r) | x best fixed | headroom | capture | target | met | ms/decision "
             "| - first, paired |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |"]
    for family, rows in report["families"].items():
        for name, s in rows.items():
            paired = ci(s["paired_vs_first"], "{:+.4f}") if "paired_vs_first" in s else ""
            lines.append(f"| {family} | {name} | {ci(s['over_task_static'])} | {ci(s['over_best_fixed'])} | "
                         f"{ci(s['headroom'], '{:.3f}')} | {ci(s['capture'], '{:+.2f}')} | {s['target']} | "
                         f"{'yes' if s['met'] else 'NO'} | {s['ms_per_decision']['mean']:.2f} | {paired} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, of {', '.join(FAMILIES)}, or {CALIBRATED} (the simulator calibrated on the packaged "
                        "read-train transfer study; not in the default list)")
    parser.add_argument("--allocators", default=",".join(DEFAULT_ALLOCATORS))
    parser.add_argument("--envs", type=int, default=12)
    parser.add_argument("--decisions", type=int, default=25)
    parser.add_argument("--tune", action="store_true", help=f"the tuning seeds ({TUNE_SEED} on) instead of the evaluation seeds ({EVAL_SEED} on)")
    parser.add_argument("--noise-free", action="store_true", help="probes read the true profile (what the model misses, apart from the noise)")
    parser.add_argument("--probe-sd", type=float, default=None, help="every environment probed with this sd (points) instead of its family's")
    parser.add_argument("--first-seed", type=int, default=None, help="the first seed (default: the evaluation seeds, or the tuning seeds with --tune)")
    parser.add_argument("--study", default=None, help="budgets of a simulated transfer study given to the allocators "
                        "that take one, in intervals of a 25-decision run, e.g. 1,2,4,8 (module docstring)")
    parser.add_argument("--study-repeats", type=int, default=1, help="with --study: that many studies, averaged "
                        "(the noise falls by its square root, the cost rises by it)")
    parser.add_argument("--measured-study", default=None, help=f"the read-train transfer output (transfer.json) the "
                        f"{CALIBRATED} family is calibrated on (default: the packaged study of the embedded default)")
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--diagnostics", action="store_true", help="run benchmarks/allocation_diagnostics.py --diagnostics instead")
    args, rest = parser.parse_known_args(argv)
    if args.diagnostics:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import allocation_diagnostics

        return allocation_diagnostics.main(["--diagnostics", *rest])
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    families = tuple(f for f in args.families.split(",") if f)
    unknown = [f for f in families if f not in FAMILIES + (CALIBRATED,)]
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {list(FAMILIES + (CALIBRATED,))}")
    if args.noise_free and args.probe_sd is not None:
        parser.error("--noise-free and --probe-sd both set the probes' noise; give one")
    if not _valid_probe_sd(args.probe_sd):
        parser.error(f"--probe-sd must be finite and >= 0, got {args.probe_sd!r}")
    study = None
    if args.study is not None:
        try:
            study = parse_study(args.study)
        except ValueError as err:
            parser.error(str(err))
    try:
        check_study_repeats(args.study_repeats, study)
    except ValueError as err:
        parser.error(str(err))
    try:
        check_measured_study(args.measured_study, families)
    except ValueError as err:
        parser.error(str(err))
    first = args.first_seed if args.first_seed is not None else TUNE_SEED if args.tune else EVAL_SEED
    report = run_suite(families, tuple(a for a in args.allocators.split(",") if a), args.envs, args.decisions,
                       first, progress=not args.json_only, noise_free=args.noise_free, probe_sd=args.probe_sd,
                       study=study, study_repeats=args.study_repeats, measured_study=args.measured_study)
    if not args.json_only:
        print(f"{report['envs']} environments per family (seeds {report['seeds'][0]}-{report['seeds'][1]}), "
              f"{report['decisions']} decisions; 95% bootstrap intervals over environments")
        print(_table(report))
        for family, rows in report["families"].items():
            for name, s in rows.items():
                if not s["met"]:
                    print(f"NOT MET: {name} on {family}: {s['target']} (x w = r {s['over_task_static']['mean']:.4f}, "
                          f"capture {s['capture']['mean']:+.2f} of headroom {s['headroom']['mean']:.3f})")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
