"""Two variants of the ``saturation`` family drawn to look like issue #19's held-out family B.

Family B (held out, never seen): "the most required capability saturates after a few intervals, so
mass left on it is wasted"; its best fixed mixture is 1.077 x ``w = r``. These variants are guesses
at it, for checking the allocator against a family it was not tuned on, not for tuning:

* ``b1``: the suite's ``saturation`` draws (the top share of the hidden requirement is at least
  0.35; the most required capability by ``r`` has its ceiling 8-15 points above its start and
  rate 0.8-1.5), on seeds of their own (5000 on);
* ``b2``: faster: a top hidden share of at least 0.5 and the ceiling 5-10 points above the start.

Each is run through ``benchmarks/allocation.py``'s suite (same ratios, headroom and capture), with
the family's draw swapped for the variant's for the duration of the run. Prints JSON. Usage::

    python benchmarks/saturation_variants.py                              # read and read without its ceiling cap, ~1 min
    python benchmarks/saturation_variants.py --allocators read,read:kappa=0.5 --envs 40
    python benchmarks/saturation_variants.py --allocators read,read_study --study 1,2,4,8   # with a transfer study

``--study`` and ``--study-repeats``: as ``benchmarks/allocation.py``'s (a simulated transfer study per
environment, given to the allocators that take one, repeated and averaged).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import allocation  # noqa: E402

from read_lightning.allocation import families  # noqa: E402

VARIANTS = {"b1": (0.35, 8.0, 15.0), "b2": (0.5, 5.0, 10.0)}  # top share at least, ceiling gap low, high
FIRST_SEED = 5000
_SATURATION = families._saturation  # the family's draw, kept before run() swaps it


def variant_draw(top_at_least: float, gap_low: float, gap_high: float):
    """The ``saturation`` family's own draw (``families._saturation``) with the hidden requirement's top
    share at least ``top_at_least`` and the most required capability's ceiling ``gap_low``-``gap_high``
    points above its start (the family's own: 0.35, 8, 15)."""
    return functools.partial(_SATURATION, top_at_least=top_at_least, gap=(gap_low, gap_high))


def run(variant: str, allocators: tuple[str, ...], envs: int, decisions: int,
        study: tuple[float, ...] | None = None, study_repeats: int = 1) -> dict:
    families._saturation = variant_draw(*VARIANTS[variant])
    try:
        report = allocation.run_suite(("saturation",), allocators, envs, decisions, FIRST_SEED, progress=False,
                                      study=study, study_repeats=study_repeats)
    finally:
        families._saturation = _SATURATION
    return report["families"]["saturation"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocators", default="read,read:ceiling_z=null")
    parser.add_argument("--envs", type=int, default=40)
    parser.add_argument("--decisions", type=int, default=25)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--study", default=None, help="budgets of a simulated transfer study, e.g. 1,2,4,8")
    parser.add_argument("--study-repeats", type=int, default=1, help="with --study: that many studies, averaged")
    args = parser.parse_args(argv)
    study = None
    try:
        if args.study is not None:
            study = allocation.parse_study(args.study)
        allocation.check_study_repeats(args.study_repeats, study)
    except ValueError as err:
        parser.error(str(err))
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    out = {v: run(v, tuple(args.allocators.split(",")), args.envs, args.decisions, study, args.study_repeats)
           for v in args.variants.split(",")}
    summary = {v: {name: {"over_task_static": round(row["over_task_static"]["mean"], 4),
                          "capture": round(row["capture"]["mean"], 2), "capture_ci95": [round(x, 2) for x in row["capture"]["ci95"]],
                          "headroom": round(row["headroom"]["mean"], 3)}
                   for name, row in rows.items()} for v, rows in out.items()}
    print(json.dumps({"variants": summary, "envs": args.envs, "decisions": args.decisions, "first_seed": FIRST_SEED}))
    return out


if __name__ == "__main__":
    main()
