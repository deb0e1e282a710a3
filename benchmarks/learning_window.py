"""How soon an allocator must know the best mixture: the capture of a run that plays ``w = r`` for ``n``
intervals, then the best fixed mixture (found with the TRUE dynamics) to the end.

Per family of ``benchmarks/allocation.py``, on the same environments, the share of the headroom
(best fixed / ``w = r`` - 1) such a switch at interval ``n`` takes. No allocator can do better than
knowing the answer at ``n``, so where the capture falls below 0.5 is the latest interval by which
an allocator has to have found that mixture to meet issue #19's capture target (and playing it is
not all: exploring to find it costs too). Prints a table and one JSON object. Usage::

    python benchmarks/learning_window.py                   # evaluation seeds 1000-1011, 25 decisions, ~1 min
    python benchmarks/learning_window.py --decisions 8
    python benchmarks/learning_window.py --families additive,spillover --envs 36 --first-seed 0

The measured table is in docs/allocator.md ("This round (2026-12-07, fourth session)").
"""

from __future__ import annotations

import argparse
import json
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from read_lightning.allocation.families import FAMILIES, make_family_environment  # noqa: E402
from read_lightning.allocation.simulator import advance, grid_search_best_fixed, simulate_fixed  # noqa: E402

__all__ = ["main", "switch_capture"]


def switch_capture(family: str, seed: int, decisions: int, switches: list[int]) -> dict[int, float]:
    """``{n: capture}`` of playing ``w = r`` for ``n`` intervals and the best fixed mixture after, on one
    environment (NaN where it has no headroom)."""
    env = make_family_environment(family, seed, decisions=decisions)
    p = env.params
    u_r = float(simulate_fixed(p, p.requirement)[0])
    best, u_best = grid_search_best_fixed(lambda: env)
    best = np.asarray(best, dtype=float)
    head = u_best / u_r - 1.0
    out = {}
    for n in switches:
        s, exposure = p.start[None].copy(), np.zeros((1, len(p.start)))
        for t in range(decisions):
            s, exposure = advance(p, s, exposure, (p.requirement if t < n else best)[None])
        u = float(s[0] @ p.hidden_requirement)
        out[n] = (u / u_r - 1.0) / head if head > 1e-12 else float("nan")
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--envs", type=int, default=12)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=25)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {list(FAMILIES)}")
    if args.envs < 1 or not 1 <= args.decisions <= 10_000:
        parser.error(f"--envs must be >= 1 and --decisions in [1, 10000], got {args.envs} and {args.decisions}")
    d = args.decisions
    switches = sorted({0, *(round(d * f) for f in (0.08, 0.16, 0.32, 0.48, 0.64, 0.8))})
    report: dict = {"decisions": d, "seeds": [args.first_seed, args.first_seed + args.envs - 1],
                    "switch_at": switches, "families": {}}
    for family in families:
        rows = [switch_capture(family, args.first_seed + e, d, switches) for e in range(args.envs)]
        report["families"][family] = {str(n): float(np.nanmean([r[n] for r in rows])) for n in switches}
    if not args.json_only:
        print(f"capture of w = r for n intervals, then the best fixed mixture; {args.envs} environments, {d} decisions")
        print("| family | " + " | ".join(f"n = {n}" for n in switches) + " |")
        print("| --- |" + " ---: |" * len(switches))
        for family, row in report["families"].items():
            print(f"| {family} | " + " | ".join(f"{row[str(n)]:.2f}" for n in switches) + " |")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
