"""The comparison's table: per-run metrics from a run directory, mean and spread over seeds, the
verdict against the seed spread, Markdown and CSV."""

from __future__ import annotations

import csv
import io
import math
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from read_lightning.core.jsonl import read_json

__all__ = ["BANDIT", "PROBE", "aggregate", "git_commit", "markdown", "run_metrics", "verdict", "write_csv"]


BANDIT = "BanditAllocationCallback"
PROBE = "CapabilityProbeCallback"

# --------------------------------------------------------------------------- the table


def run_metrics(run_dir: Path, k: int = 3) -> dict[str, float]:
    """Profile, gains, tokens and wall time of one finished run, from its summary and ledger."""
    from read_lightning.core.capabilities import top_k

    summary = read_json(run_dir / "summary.json", required=["wall_clock_seconds"])
    ledger = read_json(run_dir / "ledger.json", required=["spent", "generation", "training"])
    history = (summary.get(PROBE) or {}).get("history") or []
    requirement = (summary.get(BANDIT) or {}).get("requirement")
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
    row.update({f"probe/{c}": float(s) for c, s in last.items()})
    return row


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
    columns = [c for c in rows[0] if c not in ("allocator", "seed")] if rows else []
    return {a: {c: _mean_std([float(r[c]) for r in rs]) for c in columns} for a, rs in groups.items()}


def verdict(stats: Mapping[str, Mapping[str, tuple[float, float]]], ours: str = "read") -> str | None:
    """One sentence: ReAD's task utility against the best baseline's, and whether the difference
    is larger than the seed spread (docs/method.md: a smaller difference is not a result)."""
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
             header: Sequence[str]) -> str:
    """The comparison as Markdown: a summary table, then the final capability profiles."""
    main_cols = [("task_utility", "task utility", 2), ("task_agreement", "agreement %", 1),
                 ("on_target_gain", "on-target gain", 2), ("off_target_change", "off-target change", 2),
                 ("spent_tokens", "spent tokens", 0), ("wall_seconds", "wall time (s)", 0)]
    any_stats = next(iter(stats.values()))
    main_cols = [c for c in main_cols if c[0] in any_stats]
    caps = [c for c in any_stats if c.startswith("probe/")]
    lines = [*header, ""]
    lines.append("| allocator | seeds | " + " | ".join(t for _, t, _ in main_cols) + " |")
    lines.append("| --- | ---: | " + " | ".join("---:" for _ in main_cols) + " |")
    for alloc, s in stats.items():
        lines.append(f"| {alloc} | {counts[alloc]} | " + " | ".join(_fmt(*s[c], d) for c, _, d in main_cols) + " |")
    lines += ["", "Final capability profile (probe score, 0-100):", ""]
    lines.append("| allocator | " + " | ".join(c.removeprefix("probe/") for c in caps) + " |")
    lines.append("| --- | " + " | ".join("---:" for _ in caps) + " |")
    for alloc, s in stats.items():
        lines.append(f"| {alloc} | " + " | ".join(_fmt(*s[c], 1) for c in caps) + " |")
    sentence = verdict(stats)
    if sentence:
        lines += ["", sentence]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]],
              stats: Mapping[str, Mapping[str, tuple[float, float]]]) -> None:
    """Per-run rows, then a ``mean`` and a ``std`` row per allocator."""
    columns = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    for alloc, s in stats.items():
        for i, name in enumerate(("mean", "std")):
            writer.writerow({"allocator": alloc, "seed": name, **{c: v[i] for c, v in s.items()}})
    path.write_text(buf.getvalue(), encoding="utf-8")


def git_commit() -> str | None:
    """The checkout's commit, marked when tracked files differ from it; None outside git."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, cwd=here)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], capture_output=True, timeout=30, cwd=here)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.returncode == 1 else "")
