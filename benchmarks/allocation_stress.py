"""Stress families: structures the suite of ``benchmarks/allocation.py`` does not draw, for checking an
allocator where it was not tuned ("never lose where the task's needs are r", issue #19).

Each is drawn on the simulator's dynamics (``simulator.advance``) with ``families._params``' base draws
(starts, ceilings, learning rates, concavity, probe sd 0.5 unless said), plus one structure:

* ``independent``: no transfer at all. Capabilities differ only in how fast they learn and how far
  their ceilings are; what an allocator can win is the comparison of their returns, and what it can
  lose is reading a fast learner's falling return as a reason to starve it;
* ``harmful_helper``: a little-required capability whose training makes the two most required forget
  from the first interval (``w = r`` feeds it; the best mixtures give it nothing);
* ``all_saturate``: every capability 5-20 points below its ceiling and fast (saturation everywhere,
  so there is little to move);
* ``late_saturation``: the most required capability saturates late in the run (15-30 points from its
  ceiling, rate 0.3-0.6), where the suite's ``saturation`` family saturates in a few intervals;
* ``two_shortcuts``: two chained shortcuts (the second and third most required capabilities learn fast,
  help the one above them and make it forget once their own exposure passes a point), probe sd 0.3;
* ``helper_hurts``: a little-required helper of the most required capability that makes the second
  most required forget once its exposure passes a point.

``--required N`` keeps ``r`` (and the hidden requirement) on each environment's N most required
capabilities only, renormalised, as the embedded default's recipe requires 4 of its 8; with it,
``--families`` may also name the suite's families (``families.FAMILIES``), which are then drawn as the
suite draws them before ``r`` is cut. The cut keeps ``sign_flip``'s shortcut and target and ``spillover``'s
group (all among the four most required), but ``additive``'s helper and ``harmful_helper``'s harmful
capability are drawn among the less required: with ``--required 4`` they get ``r = 0`` and no mass, and
those rows measure something else.

Per family the JSON has the same figures as ``benchmarks/allocation.py``'s (``summarise``: ratio to
``w = r`` and to the best fixed mixture with 95% intervals, headroom, capture, issue #19's target and
whether it is met, the worst environment) and ``paired_vs_first``. Seeds 8000 on by default; seeds
7000-7023 are where the ``independent`` and ``harmful_helper`` losses of
``read:model_floor=false:fall_sticks=false`` were found and the bound on the tilt chosen, so they are
not a check of it; seeds 9000-9023 with ``--required 4`` are where ``sign_flip``'s loss that
``fall_sticks`` answers was found. Usage::

    python benchmarks/allocation_stress.py          # read, without fall_sticks, without both (the rule before 2026-12-08), ~2 min
    python benchmarks/allocation_stress.py --allocators read,read_ucb --decisions 8
    python benchmarks/allocation_stress.py --families independent --envs 96
    python benchmarks/allocation_stress.py --required 4 --families sign_flip,simulator,independent --first-seed 9000 --envs 24

The measured table is in ``docs/allocator.md`` ("Two readings `read`'s rules got wrong").
"""

from __future__ import annotations

import argparse
import json
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import allocation  # noqa: E402

import numpy as np  # noqa: E402

from read_lightning.allocation.bandit import allocator_options  # noqa: E402
from read_lightning.allocation.families import FAMILIES, _params, _sparse, keep_most_required, make_family_environment  # noqa: E402
from read_lightning.allocation.simulator import CapabilityTransferEnv, EnvParams  # noqa: E402
from read_lightning.core.capabilities import DEFAULT_CAPABILITIES  # noqa: E402

FIRST_SEED = 8000
NEVER = 1e9  # a flip point no run reaches: transfer keeps its sign


def _independent(rng: np.random.Generator, caps: tuple[str, ...], decisions: int) -> EnvParams:
    return _params(rng, caps, decisions)


def _harmful_helper(rng: np.random.Generator, caps: tuple[str, ...], decisions: int) -> EnvParams:
    k = len(caps)
    p = _params(rng, caps, decisions, flip=np.full(k, NEVER))
    order = np.argsort(-p.requirement)
    bad = int(rng.choice(order[k // 2:]))
    p.flip[bad] = 0.05  # its help has turned into harm from the first interval
    p.neg[bad, order[0]] = rng.uniform(0.1, 0.3)
    p.neg[bad, order[1]] = rng.uniform(0.05, 0.15)
    return p


def _all_saturate(rng: np.random.Generator, caps: tuple[str, ...], decisions: int) -> EnvParams:
    k = len(caps)
    p = _params(rng, caps, decisions, pos=_sparse(rng, k, 0.2, 0.05, 0.3))
    p.ceiling = p.start + rng.uniform(5.0, 20.0, size=k)
    p.rate = rng.uniform(0.3, 1.5, size=k)
    return p


def _late_saturation(rng: np.random.Generator, caps: tuple[str, ...], decisions: int) -> EnvParams:
    k = len(caps)
    p = _params(rng, caps, decisions, pos=_sparse(rng, k, 0.2, 0.05, 0.3))
    top = int(np.argmax(p.requirement))
    p.ceiling[top] = p.start[top] + rng.uniform(15.0, 30.0)
    p.rate[top] = rng.uniform(0.3, 0.6)
    return p


def _two_shortcuts(rng: np.random.Generator, caps: tuple[str, ...], decisions: int) -> EnvParams:
    k = len(caps)
    p = _params(rng, caps, decisions, pos=_sparse(rng, k, 0.2, 0.1, 0.4), probe_noise=0.3)
    order = np.argsort(-p.requirement)
    for shortcut, target in ((order[1], order[0]), (order[2], order[1])):
        p.rate[shortcut] = rng.uniform(0.4, 0.8)
        p.pos[shortcut, target] = rng.uniform(1.0, 2.0)
        p.neg[shortcut, target] = rng.uniform(0.1, 0.2)
        p.flip[shortcut] = p.requirement[shortcut] * decisions * rng.uniform(0.2, 0.6)
    return p


def _helper_hurts(rng: np.random.Generator, caps: tuple[str, ...], decisions: int) -> EnvParams:
    k = len(caps)
    p = _params(rng, caps, decisions, pos=_sparse(rng, k, 0.3, 0.1, 0.5))
    order = np.argsort(-p.requirement)
    helper = int(rng.choice(order[k // 2:]))
    p.pos[helper, order[0]] = rng.uniform(0.8, 1.5)
    p.neg[helper, order[1]] = rng.uniform(0.05, 0.15)
    p.flip[helper] = rng.uniform(0.5, 2.0)
    return p


STRESS = {"independent": _independent, "harmful_helper": _harmful_helper, "all_saturate": _all_saturate,
          "late_saturation": _late_saturation, "two_shortcuts": _two_shortcuts, "helper_hurts": _helper_hurts}


def make_stress_environment(family: str, seed: int, decisions: int = 25, required: int | None = None) -> CapabilityTransferEnv:
    """One environment of stress ``family`` (or, with ``required``, of a suite family), deterministic in
    ``(family, seed, decisions)``; ``required``: ``r`` kept on that many most required capabilities."""
    if family in STRESS:
        rng = np.random.default_rng([seed, 99, list(STRESS).index(family)])
        params = STRESS[family](rng, DEFAULT_CAPABILITIES, decisions)
    elif family in FAMILIES and required is not None:
        params = make_family_environment(family, seed, decisions=decisions).params
    else:
        raise ValueError(f"unknown stress family {family!r}; choose one of {list(STRESS)!r} "
                         f"(or, with required, of {list(FAMILIES)!r})")
    if required is not None:
        keep_most_required(params, required)
    return CapabilityTransferEnv(params, seed=seed)


def run(families: tuple[str, ...], allocators: tuple[str, ...], envs: int, decisions: int, first_seed: int,
        required: int | None = None) -> dict:
    """``allocation.run_suite`` on these families (``make_stress_environment``); the report says ``required``."""
    report = allocation.run_suite(families, allocators, envs, decisions, first_seed,
                                  environment=lambda family, seed, horizon: make_stress_environment(family, seed, horizon, required))
    return {**report, "required": required}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(STRESS), help=f"comma-separated, of {', '.join(STRESS)}")
    parser.add_argument("--allocators", default="read,read:fall_sticks=false,read:model_floor=false:fall_sticks=false")
    parser.add_argument("--envs", type=int, default=48)
    parser.add_argument("--decisions", type=int, default=25)
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED)
    parser.add_argument("--required", type=int, default=None,
                        help="keep r on this many most required capabilities (the suite's families allowed then)")
    args = parser.parse_args(argv)
    families = tuple(f for f in args.families.split(",") if f)
    known = list(STRESS) + (list(FAMILIES) if args.required is not None else [])
    unknown = [f for f in families if f not in known]
    if unknown or not families:
        parser.error(f"unknown stress families {unknown}; choose from {known}")
    if args.required is not None and not 1 <= args.required <= len(DEFAULT_CAPABILITIES):
        parser.error(f"--required must be in [1, {len(DEFAULT_CAPABILITIES)}], got {args.required}")
    if args.envs < 1:
        parser.error(f"--envs must be >= 1, got {args.envs}")
    if not 1 <= args.decisions <= 10_000:
        parser.error(f"--decisions must be in [1, 10000], got {args.decisions}")
    allocators = tuple(a for a in args.allocators.split(",") if a)
    try:  # refused before any episode: a bad name or option would otherwise stop the run midway
        for name in allocators:
            kind, options = allocation.parse_allocator(name)
            known = allocator_options(kind)
            bad = sorted(set(options) - known) if known is not None else []
            if bad:
                raise ValueError(f"allocator {kind!r} takes no option {bad[0]!r} (in {name!r})")
    except ValueError as err:
        parser.error(str(err))
    report = run(families, allocators, args.envs, args.decisions, args.first_seed, args.required)
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
