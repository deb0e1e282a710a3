"""The comparison's tables: per-run metrics from a run directory, mean and spread over seeds, the
paired difference of each allocator against the best baseline over test items and seeds, the
verdict it drives, the paper's Table 1 (one row per method: every capability, their mean and the
task utility), Markdown and CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from read_lightning.core.jsonl import read_json, read_jsonl
from read_lightning.core.run_summary import ALLOCATION, PROBES, summary_part
from read_lightning.evaluation.answer_metrics import Z95, mean_interval, paired_difference

__all__ = [
    "BANDIT",
    "PAIRED_METHOD",
    "PROBE",
    "aggregate",
    "markdown",
    "paired_against_baselines",
    "paired_against_best",
    "paired_difference_over_seeds",
    "run_metrics",
    "start_profile",
    "t_quantile",
    "table1",
    "verdict",
    "write_csv",
]


# The callbacks as a recipe names them (trainer.callbacks[].class_path); summary.json keys their
# parts by role instead (read_lightning.core.run_summary).
BANDIT = "BanditAllocationCallback"
PROBE = "CapabilityProbeCallback"

# --------------------------------------------------------------------------- the table


def run_metrics(run_dir: Path, k: int = 3) -> dict[str, float]:
    """Profile, gains, tokens and wall time of one finished run, from its summary and ledger."""
    from read_lightning.core.capabilities import top_k

    summary = read_json(run_dir / "summary.json", required=["wall_clock_seconds"])
    ledger = read_json(run_dir / "ledger.json", required=["spent", "generation", "training"])
    history = summary_part(summary, PROBES).get("history") or []
    requirement = summary_part(summary, ALLOCATION).get("requirement")
    if len(history) < 2 or not requirement:
        raise ValueError(f"{run_dir / 'summary.json'}: needs the probe history (baseline and final profile) and "
                         f"the bandit's requirement vector; found {len(history)} profile(s)")
    first, last = history[0]["profile"], history[-1]["profile"]
    delta = {c: float(last[c]) - float(first[c]) for c in last}
    essential = set(top_k(requirement, k))
    off = [delta[c] for c in delta if c not in essential]
    row = {
        "on_target_gain": sum(float(requirement.get(c, 0.0)) * d for c, d in delta.items()),
        "off_target_change": sum(off) / len(off) if off else math.nan,
        "spent_tokens": float(ledger["spent"]),
        "generation_tokens": float(ledger["generation"]),
        "training_tokens": float(ledger["training"]),
        "wall_seconds": float(summary["wall_clock_seconds"]),
    }
    row.update(departure_from_r(run_dir / "allocations.jsonl", requirement))
    # The paper's headline: the mean of the final profile over the capabilities ("avg" in Table 1).
    row["capability_mean"] = sum(float(s) for s in last.values()) / len(last) if last else math.nan
    row.update({f"probe/{c}": float(s) for c, s in last.items()})
    return row


# A decision whose mixture is within this total-variation distance of r played r (rounding).
OFF_R = 0.005


def departure_from_r(allocations: Path, requirement: Mapping[str, float]) -> dict[str, float]:
    """How far the mixtures a run played were from the requirement vector: ``departure_from_r``,
    the mean over decisions of the total-variation distance ``0.5 * sum |w_c - r_c|`` (0: ``w = r``
    throughout, 1: disjoint), and ``decisions_off_r``, the decisions further than :data:`OFF_R`.
    Empty without ``allocations.jsonl``. Tells an allocator that sat on ``r`` from one that moved."""
    if not allocations.is_file():
        return {}
    total = sum(float(v) for v in requirement.values()) or 1.0
    r = {c: float(v) / total for c, v in requirement.items()}
    distances = []
    for row in read_jsonl(allocations, required=["event"]):
        if row["event"] != "select" or not isinstance(row.get("mixture"), Mapping):
            continue
        w = {c: float(v) for c, v in row["mixture"].items()}
        distances.append(0.5 * sum(abs(w.get(c, 0.0) - r.get(c, 0.0)) for c in set(w) | set(r)))
    if not distances:
        return {}
    return {"departure_from_r": sum(distances) / len(distances),
            "decisions_off_r": float(sum(d > OFF_R for d in distances))}


def start_profile(run_dir: Path) -> dict[str, float]:
    """The undistilled student's profile s_0 of a finished run (its first probe), as ``probe/<c>``
    columns and their ``capability_mean``: the reference row of Table 1."""
    history = summary_part(read_json(run_dir / "summary.json"), PROBES).get("history") or []
    if not history:
        raise ValueError(f"{run_dir / 'summary.json'}: has no probe history")
    first = {c: float(s) for c, s in history[0]["profile"].items()}
    return {"capability_mean": sum(first.values()) / len(first), **{f"probe/{c}": s for c, s in first.items()}}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per allocator (in first-seen order): column -> (mean, sample std) over its seeds."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["allocator"], []).append(row)
    columns = [c for c in _columns(rows) if c not in ("allocator", "seed")]
    # A run without a column (no allocations.jsonl, say) is left out of that column's mean.
    return {a: {c: _mean_std([float(r.get(c, math.nan)) for r in rs]) for c in columns} for a, rs in groups.items()}


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every column of ``rows``, in first-seen order."""
    return list(dict.fromkeys(c for r in rows for c in r))


# --------------------------------------------------------------------------- paired differences

# Per-item outcome key in task_eval.json -> the metric's name (its row column is ``answer_<name>``).
PAIRED_METRICS: tuple[tuple[str, str], ...] = (("agree", "agreement"), ("correct", "accuracy"))

PAIRED_METHOD = (
    "paired over test items and seeds: for each seed run by both allocators and each test item, the "
    "difference of the 0/1 outcomes; the estimate is the mean over seeds of the per-seed item-paired mean "
    "difference, in points. 95% interval: with 2 or more seeds, Student's t across the per-seed differences "
    "(df = seeds - 1), widened where needed to the normal interval over items (each item's difference "
    "averaged over seeds), so that neither seed nor item variation is left out; with 1 seed, the normal "
    "interval of the item-paired differences; clipped to [-100, 100]"
)

# Two-sided 95% Student t quantiles, df 1..30; above 30 the Cornish-Fisher expansion (error < 1e-4).
_T975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, 2.2010, 2.1788,
         2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, 2.0796, 2.0739, 2.0687, 2.0639,
         2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423)


def t_quantile(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = Z95
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _outcome(item: Mapping[str, Any], key: str) -> float | None:
    value = item.get(key)
    return None if value is None else float(bool(value))


def paired_difference_over_seeds(
    ours: Mapping[int, Sequence[Mapping[str, Any]]],
    base: Mapping[int, Sequence[Mapping[str, Any]]],
    key: str,
) -> dict[str, float] | None:
    """The paired difference ``ours - base`` of the per-item outcome ``key`` ("agree", "correct").

    ``ours``/``base``: seed -> per-item outcomes (dicts with ``index`` and ``key``, as in
    ``task_eval.json``'s ``items``). Only seeds run by both and items scored in both count.
    Returns ``{"diff", "lo", "hi"}`` in points (percent of items) and the ``seeds`` and ``items``
    paired, or None when nothing pairs; the interval is :data:`PAIRED_METHOD`.
    """
    per_seed: list[float] = []
    by_item: dict[int, list[float]] = {}
    pairs: list[tuple[float, float]] = []
    for seed in sorted(set(ours) & set(base)):
        theirs = {int(it.get("index", i)): _outcome(it, key) for i, it in enumerate(base[seed])}
        diffs = []
        for i, it in enumerate(ours[seed]):
            index = int(it.get("index", i))
            a, b = _outcome(it, key), theirs.get(index)
            if a is None or b is None:
                continue
            diffs.append(a - b)
            pairs.append((a, b))
            by_item.setdefault(index, []).append(a - b)
        if diffs:
            per_seed.append(sum(diffs) / len(diffs))
    if not per_seed:
        return None
    if len(per_seed) == 1:
        mean, lo, hi = paired_difference([a for a, _ in pairs], [b for _, b in pairs])
    else:
        mean, lo, hi = mean_interval(per_seed, z=t_quantile(len(per_seed) - 1))
        _, item_lo, item_hi = mean_interval([sum(d) / len(d) for d in by_item.values()])
        half = max(hi - mean, (item_hi - item_lo) / 2)
        lo, hi = mean - half, mean + half
    # A difference of two rates lies in [-100, 100] points; t with few seeds reaches far beyond.
    return {"diff": 100.0 * mean, "lo": max(-100.0, 100.0 * lo), "hi": min(100.0, 100.0 * hi),
            "seeds": float(len(per_seed)), "items": float(len(by_item))}


def paired_against_best(
    outcomes: Mapping[str, Mapping[int, Sequence[Mapping[str, Any]]]],
    stats: Mapping[str, Mapping[str, tuple[float, float]]],
    ours: str = "read",
) -> dict[str, Any] | None:
    """Every allocator's paired difference against the best baseline, per answer metric.

    ``outcomes``: allocator -> seed -> per-item outcomes. The best baseline is the allocator other
    than ``ours`` with the highest mean agreement over seeds (accuracy where there is no
    agreement). Returns ``{"best", "by", "rows": {allocator: {metric: difference}}}`` (see
    :func:`paired_difference_over_seeds`), or None with fewer than two allocators or no answers.
    """
    by = next((name for _, name in PAIRED_METRICS if all(f"answer_{name}" in s for s in stats.values())), None)
    baselines = [a for a in stats if a != ours] if ours in stats else list(stats)
    if by is None or len(stats) < 2 or not baselines:
        return None
    best = max(baselines, key=lambda a: stats[a][f"answer_{by}"][0])
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for alloc in stats:
        if alloc == best:
            continue
        got = {name: paired_difference_over_seeds(outcomes.get(alloc, {}), outcomes.get(best, {}), key)
               for key, name in PAIRED_METRICS}
        rows[alloc] = {name: d for name, d in got.items() if d is not None}
    return {"best": best, "by": by, "rows": rows}


# Per-run row columns paired by seed in :func:`paired_against_baselines` (column, title, digits).
SEED_PAIRED_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("task_utility", "task utility", 2), ("on_target_gain", "on-target gain", 2),
)


def paired_against_baselines(
    outcomes: Mapping[str, Mapping[int, Sequence[Mapping[str, Any]]]],
    rows: Sequence[Mapping[str, Any]],
    ours: str = "read",
) -> dict[str, dict[str, Any]]:
    """``ours`` against every other allocator, each paired on the seeds both ran.

    Per baseline: the answer metrics' item-and-seed paired differences (see
    :func:`paired_difference_over_seeds`), and for each of :data:`SEED_PAIRED_COLUMNS` the
    per-seed differences ``ours - base`` (``"<column>_by_seed"``: seed -> difference) with their
    mean and 95% Student t interval across seeds (``"<column>"``: ``{"diff", "lo", "hi", "seeds"}``;
    the interval is the mean itself for one seed). Empty where ``ours`` did not run.
    """
    runs: dict[str, dict[int, Mapping[str, Any]]] = {}
    for r in rows:
        runs.setdefault(str(r["allocator"]), {})[int(r["seed"])] = r
    if ours not in runs:
        return {}
    result: dict[str, dict[str, Any]] = {}
    for base in runs:
        if base == ours:
            continue
        seeds = sorted(set(runs[ours]) & set(runs[base]))
        if not seeds:
            continue
        got: dict[str, Any] = {"seeds": seeds}
        for key, name in PAIRED_METRICS:
            d = paired_difference_over_seeds(outcomes.get(ours, {}), outcomes.get(base, {}), key)
            if d is not None:
                got[name] = d
        for column, _, _ in SEED_PAIRED_COLUMNS:
            by_seed = {s: float(runs[ours][s][column]) - float(runs[base][s][column]) for s in seeds
                       if column in runs[ours][s] and column in runs[base][s]}
            if not by_seed:
                continue
            values = list(by_seed.values())
            z = t_quantile(len(values) - 1) if len(values) > 1 else Z95
            mean, lo, hi = mean_interval(values, z=z)
            got[f"{column}_by_seed"] = by_seed
            got[column] = {"diff": mean, "lo": lo, "hi": hi, "seeds": float(len(values))}
        result[base] = got
    return result


def _baselines_lines(against: Mapping[str, Mapping[str, Any]], ours: str = "read") -> list[str]:
    """The table of :func:`paired_against_baselines`: one row per baseline."""
    metrics = [name for _, name in PAIRED_METRICS if any(name in g for g in against.values())]
    columns = [c for c in SEED_PAIRED_COLUMNS if any(c[0] in g for g in against.values())]
    lines = ["", f"{ours} against each baseline, paired on the seeds both ran: answer metrics in points with a "
                 f"95% interval ({PAIRED_METHOD}); {', '.join(t for _, t, _ in columns)}: the mean of the "
                 "per-seed differences with a Student t interval across seeds, then each seed's difference:", ""]
    lines.append("| baseline | seeds | " + " | ".join(f"{m}: {ours} - baseline" for m in metrics)
                 + "".join(f" | {t}: {ours} - baseline | {t} by seed" for _, t, _ in columns) + " |")
    lines.append("| --- | --- | " + " | ".join("---:" for _ in metrics) + " | ---: | ---" * len(columns) + " |")
    for base, g in against.items():
        cells = [_interval(g[m]) if m in g else "n/a" for m in metrics]
        for column, _, digits in columns:
            if column not in g:
                cells += ["n/a", ""]
                continue
            d = g[column]
            cells.append(f"{d['diff']:+.{digits}f} [{d['lo']:+.{digits}f}, {d['hi']:+.{digits}f}]")
            cells.append(", ".join(f"{s}: {v:+.{digits}f}" for s, v in g[f"{column}_by_seed"].items()))
        lines.append(f"| {base} | {', '.join(map(str, g['seeds']))} | " + " | ".join(cells) + " |")
    return lines


def _contains_zero(d: Mapping[str, float]) -> bool:
    return d["lo"] <= 0.0 <= d["hi"]


def _interval(d: Mapping[str, float]) -> str:
    return f"{d['diff']:+.1f} [{d['lo']:+.1f}, {d['hi']:+.1f}]"


def verdict(stats: Mapping[str, Mapping[str, tuple[float, float]]], ours: str = "read",
            paired: Mapping[str, Any] | None = None) -> str | None:
    """One sentence per answer metric: ``ours`` against the best baseline, by the paired interval.

    A difference whose 95% interval (see :func:`paired_against_best`) contains 0 is "not
    distinguishable from the best baseline". Without per-item answers (``paired`` None), the
    task utility against the seed spread, as before answers were scored.
    """
    if paired is None or ours not in paired["rows"] or not paired["rows"][ours]:
        return _spread_verdict(stats, ours)
    best, by = paired["best"], paired["by"]
    sentences = []
    for name, d in paired["rows"][ours].items():
        pairs = f"paired over {int(d['items'])} items x {int(d['seeds'])} seed(s)"
        ci = f"{d['diff']:+.1f} points (95% CI {d['lo']:+.1f} to {d['hi']:+.1f}, {pairs})"
        if _contains_zero(d):
            sentences.append(f"On {name}, {ours} is not distinguishable from the best baseline ({best}, the "
                             f"highest mean {by}): {ci}.")
        else:
            side = "above" if d["diff"] > 0 else "below"
            sentences.append(f"On {name}, {ours} is {side} the best baseline ({best}, the highest mean {by}) by "
                             f"{ci}; the interval excludes 0.")
    return " ".join(sentences)


def _spread_verdict(stats: Mapping[str, Mapping[str, tuple[float, float]]], ours: str) -> str | None:
    """ReAD's task utility against the best baseline's, and whether the difference is larger than
    the seed spread (docs/method.md: a smaller difference is not a result)."""
    baselines = {a: s["task_utility"] for a, s in stats.items() if a != ours}
    if ours not in stats or not baselines:
        return None
    best = max(baselines, key=lambda a: baselines[a][0])
    (m_ours, s_ours), (m_best, s_best) = stats[ours]["task_utility"], baselines[best]
    diff = m_ours - m_best
    spread = max((s for s in (s_ours, s_best) if not math.isnan(s)), default=math.nan)
    relation = "matches or beats" if diff >= 0 else "is below"
    noise = ("no seed spread to compare with (one seed)" if math.isnan(spread) else
             f"the larger seed std is {spread:.2f}, so the difference is "
             f"{'within' if abs(diff) <= spread else 'larger than'} the seed spread")
    return f"{ours} {relation} the best baseline ({best}) on task utility by {diff:+.2f} points; {noise}."


def _fmt(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "n/a"
    text = f"{mean:,.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:,.{digits}f}"


def markdown(stats: Mapping[str, Mapping[str, tuple[float, float]]], counts: Mapping[str, int],
             header: Sequence[str], paired: Mapping[str, Any] | None = None,
             methods: Mapping[str, Mapping[str, str]] | None = None,
             start: Mapping[str, tuple[float, float]] | None = None,
             against: Mapping[str, Mapping[str, Any]] | None = None, ours: str = "read") -> str:
    """The comparison as Markdown: a summary table (answer metrics first), the paired differences
    against the best baseline (``paired``, from :func:`paired_against_best`), ``ours`` against each
    baseline (``against``, from :func:`paired_against_baselines`), then the final capability
    profiles in the shape of the paper's Table 1 (:func:`table1`)."""
    main_cols = [("answer_agreement", "agreement %", 1), ("answer_accuracy", "accuracy %", 1),
                 ("answer_degenerate", "degenerate %", 1),
                 ("task_utility", "task utility", 2), ("task_agreement", "whole-answer match %", 1),
                 ("on_target_gain", "on-target gain", 2), ("off_target_change", "off-target change", 2),
                 ("departure_from_r", "distance from r", 3), ("decisions_off_r", "decisions off r", 1),
                 ("spent_tokens", "spent tokens", 0), ("wall_seconds", "wall time (s)", 0)]
    any_stats = next(iter(stats.values()))
    main_cols = [c for c in main_cols if c[0] in any_stats]
    caps = [c for c in any_stats if c.startswith("probe/")]
    lines = [*header, ""]
    lines.append("| allocator | seeds | " + " | ".join(t for _, t, _ in main_cols) + " |")
    lines.append("| --- | ---: | " + " | ".join("---:" for _ in main_cols) + " |")
    for alloc, s in stats.items():
        lines.append(f"| {alloc} | {counts[alloc]} | " + " | ".join(_fmt(*s[c], d) for c, _, d in main_cols) + " |")
    if paired and paired["rows"]:
        metrics = [name for _, name in PAIRED_METRICS if any(name in r for r in paired["rows"].values())]
        lines += ["", f"Paired difference against the best baseline, {paired['best']} (the highest mean "
                      f"{paired['by']}), in points with a 95% interval; {PAIRED_METHOD}:", ""]
        lines.append("| allocator | " + " | ".join(f"{m} - {paired['best']}" for m in metrics) + " | seeds | items |")
        lines.append("| --- | " + " | ".join("---:" for _ in metrics) + " | ---: | ---: |")
        for alloc, row in paired["rows"].items():
            cells = [_interval(row[m]) if m in row else "n/a" for m in metrics]
            first = next(iter(row.values()), {"seeds": 0, "items": 0})
            lines.append(f"| {alloc} | " + " | ".join(cells) + f" | {int(first['seeds'])} | {int(first['items'])} |")
    if against:
        lines += _baselines_lines(against, ours)
    lines += ["", *table1(stats, counts, methods, start)]
    sentence = verdict(stats, ours, paired=paired)
    if sentence:
        lines += ["", sentence]
    return "\n".join(lines) + "\n"


TABLE1_TITLE = ("Table 1: final capability profile (probe score, 0-100), its mean over the capabilities, and the task "
                "utility")


def table1(stats: Mapping[str, Mapping[str, tuple[float, float]]], counts: Mapping[str, int],
           methods: Mapping[str, Mapping[str, str]] | None = None,
           start: Mapping[str, tuple[float, float]] | None = None) -> list[str]:
    """The paper's Table 1 as Markdown lines: one row per method (mean ± std over its seeds), one
    column per capability, then their mean (``avg``) and the task utility.

    ``methods``: per method, the words of its ``signal``, ``loss``, ``teacher prompt`` and
    ``data mixture`` columns (see ``reporting.methods``); without it those columns are left out.
    ``start``: the undistilled student's profile (mean ± std over the runs' first probes, columns
    as in ``stats``), a first reference row, as the paper's table opens with the student.
    """
    any_stats = next(iter(stats.values()))
    caps = [c for c in any_stats if c.startswith("probe/")]
    described = ("signal", "loss", "teacher prompt", "data mixture") if methods else ()
    tail = [("capability_mean", "avg", 1), ("task_utility", "task utility", 2),
            ("answer_agreement", "agreement %", 1), ("answer_accuracy", "accuracy %", 1)]
    tail = [c for c in tail if c[0] in any_stats]
    lines = [f"{TABLE1_TITLE}; one row per method, mean ± std over seeds:", ""]
    titles = [*described, "seeds", *(c.removeprefix("probe/") for c in caps), *(t for _, t, _ in tail)]
    lines.append("| method | " + " | ".join(titles) + " |")
    lines.append("| --- | " + " | ".join(["---"] * len(described) + ["---:"] * (len(titles) - len(described))) + " |")
    if start:
        cells = [*([""] * len(described)), "", *(_fmt(*start.get(c, (math.nan, math.nan)), 1) for c in caps),
                 *(_fmt(*start.get(c, (math.nan, math.nan)), d) for c, _, d in tail)]
        lines.append("| student before distillation | " + " | ".join(cells) + " |")
    for name, s in stats.items():
        words = [(methods or {}).get(name, {}).get(d, "") for d in described]
        cells = [*words, str(counts[name]), *(_fmt(*s[c], 1) for c in caps), *(_fmt(*s[c], d) for c, _, d in tail)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]],
              stats: Mapping[str, Mapping[str, tuple[float, float]]]) -> None:
    """Per-run rows, then a ``mean`` and a ``std`` row per allocator."""
    columns = _columns(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    for alloc, s in stats.items():
        for i, name in enumerate(("mean", "std")):
            writer.writerow({"allocator": alloc, "seed": name, **{c: v[i] for c, v in s.items()}})
    path.write_text(buf.getvalue(), encoding="utf-8")
