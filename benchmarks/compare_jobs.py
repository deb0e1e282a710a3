"""``read-train compare --jobs``: runs side by side against the same runs one after the other.

    python benchmarks/compare_jobs.py                           # the recipe's own budget: ~50 minutes on an idle 2-core CPU
    python benchmarks/compare_jobs.py --budget-tokens 10000     # quicker: ~30 minutes

Runs the same comparison twice in one process, on the recipe (the embedded default by default)
with one allocator and ``--seeds`` seeds (at ``--budget-tokens`` where given, else the recipe's budget): first ``--jobs 1`` (the runs one
after the other, each with every CPU), then ``--jobs N`` (N runs at once, each with the CPUs over
N), each into a fresh directory. Before either, one untimed single-interval run warms the
converted-model cache, so neither side pays the one-time conversion. Prints one JSON object:

- per side, the wall clock of the whole command (training and the test-split scoring) and each
  run's own fit wall clock (the ``wall_seconds`` column of ``compare.csv``);
- ``speedup``: the ``--jobs 1`` command's wall clock over the ``--jobs N`` command's (both
  include the scoring, which runs in order on either side), and ``parallel_over_serial``, its
  inverse;
- ``same_table``: whether the two ``compare.csv`` tables agree, run by run, in every column but
  the wall clock, to 0.001 (the runs are independent; a run's thread count moves its probe scores
  by float rounding only), the columns that do not, and ``largest_difference``, the largest gap
  of a numeric cell.

The machine's load average is printed beside the figures: the ratio is only what it says on a
machine doing nothing else.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Columns that measure time, not the run's result: they differ between the two sides by design.
TIMING_COLUMNS = ("wall_seconds",)


def compare_command(recipe: str, allocator: str, seeds: int, jobs: int, budget: int | None, out: Path) -> list[str]:
    """``read-train compare`` as a user runs it; ``budget`` None keeps the recipe's."""
    return [sys.executable, "-m", "read_lightning.cli", "compare", "--config", recipe, "--allocators", allocator,
            "--seeds", str(seeds), "--jobs", str(jobs), "--out", str(out),
            *([] if budget is None else ["--data.budget_tokens", str(budget)])]


def run_side(cmd: list[str], log: Path) -> float:
    start = time.perf_counter()
    with log.open("w") as fh:
        done = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"compare_jobs: {' '.join(cmd)} failed with exit status {done.returncode}; see {log}")
    return seconds


def table_rows(out: Path) -> list[dict[str, str]]:
    """The comparison's per-run rows (its ``mean`` and ``std`` rows left out)."""
    (path,) = out.rglob("compare.csv")
    with path.open(newline="") as fh:
        return [row for row in csv.DictReader(fh) if row["seed"] not in ("mean", "std")]


def run_walls(rows: list[dict[str, str]]) -> list[float]:
    """Each run's own wall clock (``compare``'s ``wall_seconds``: its fit, summed over resumes), in row order."""
    return [round(float(row["wall_seconds"]), 1) for row in rows]


def _gap(x: str | None, y: str | None) -> float:
    """How far apart two cells are: 0 for the same text, the numeric difference, else infinite (a word or
    a NaN against anything else)."""
    if x == y:
        return 0.0
    try:
        gap = abs(float(x) - float(y))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.inf
    return gap if math.isfinite(gap) else math.inf


def differing_columns(a: list[dict[str, str]], b: list[dict[str, str]], tolerance: float = 1e-3) -> tuple[list[str], float]:
    """The columns (wall clock aside) where the two tables' runs differ by more than ``tolerance``, and the
    largest difference of a numeric cell. A run's threads change the order of float sums, so its probe
    scores move in the sixth digit: the table prints one or two decimals."""
    if len(a) != len(b):
        return ["<rows>"], math.inf
    cols = sorted({c for row in a + b for c in row} - set(TIMING_COLUMNS))
    gaps = {c: [_gap(ra.get(c), rb.get(c)) for ra, rb in zip(a, b)] for c in cols}
    differ = [c for c in cols if max(gaps[c], default=0.0) > tolerance]
    largest = max((g for g_c in gaps.values() for g in g_c if math.isfinite(g)), default=0.0)
    return differ, largest


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="recipes/smollm2-135m.yaml", help="the recipe (default: the embedded default)")
    parser.add_argument("--allocator", default="read")
    parser.add_argument("--seeds", type=int, default=2, help="runs per side (default 2)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once on the parallel side (default 2)")
    parser.add_argument("--budget-tokens", type=int, default=None, help="each run's token budget (default: the recipe's)")
    parser.add_argument("--keep", default=None, help="a directory to keep both sides' runs in (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 2:
        parser.error(f"--jobs must be >= 2 (it is compared with 1), got {args.jobs}")
    if args.budget_tokens is not None and args.budget_tokens < 1:
        parser.error(f"--budget-tokens must be >= 1, got {args.budget_tokens}")
    if not (ROOT / args.config).is_file() and not Path(args.config).is_file():
        parser.error(f"--config {args.config!r}: no such recipe")

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="compare_jobs_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        # The converted-model cache, built once by the first run that needs it: not part of either side.
        warm = compare_command(args.config, args.allocator, 1, 1, 1000, work / "warm")
        run_side(warm + ["--data.num_intervals", "1"], work / "warm.log")
        sides = {}
        for jobs in (1, args.jobs):
            out = work / f"jobs{jobs}"
            load_before = load_average()
            wall = run_side(compare_command(args.config, args.allocator, args.seeds, jobs, args.budget_tokens, out),
                            work / f"jobs{jobs}.log")
            rows = table_rows(out)
            sides[jobs] = {"command_seconds": round(wall, 1), "run_wall_seconds": run_walls(rows),
                           "load_average_before": load_before, "load_average_after": load_average(), "rows": rows}
        serial, parallel = sides[1], sides[args.jobs]
        diff, largest = differing_columns(serial.pop("rows"), parallel.pop("rows"))
        result = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
            "recipe": args.config, "allocator": args.allocator, "seeds": args.seeds, "budget_tokens": args.budget_tokens,
            "jobs_1": serial, f"jobs_{args.jobs}": parallel,
            "speedup": round(serial["command_seconds"] / parallel["command_seconds"], 3),
            "parallel_over_serial": round(parallel["command_seconds"] / serial["command_seconds"], 3),
            "same_table": not diff, "differing_columns": diff, "largest_difference": largest,
        }
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
