"""Where ``read`` leaves the family-B lookalikes' headroom: parts of its rule played with the TRUE dynamics.

On the two variants of ``benchmarks/saturation_variants.py`` (the ``saturation`` family drawn to look
like issue #19's held-out family B), each row is ``read`` with one part replaced by an oracle that
reads the environment's hidden parameters, so the difference to ``read`` is what a perfect estimate
of that part would be worth:

* ``true_rate``: the ceiling cap (step 8) of the most required capability uses its TRUE rate instead
  of the fitted closing rate ``B_c``, from decision 4 and not while a required capability is harmed,
  as ``read``'s cap (the other capabilities are not capped);
* ``true_rate_early``: the same, and from the first decision (the warm-up intervals capped too);
* ``true_freed``: the freed mass (step 9) goes, with no cap, where it buys the most TRUE one-step
  ``r``-weighted gain, placed in fiftieths.

Not allocators: nothing here can run on a real model. Capture is the mean over environments of
``(x (w = r) - 1) / headroom`` (``benchmarks/allocation.py`` reports the ratio of the means, so its
figures differ in the second decimal). Prints JSON. Usage::

    python benchmarks/saturation_oracles.py              # 40 environments per variant, ~35 s
    python benchmarks/saturation_oracles.py --envs 10 --variants b2
"""

from __future__ import annotations

import argparse
import json
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import saturation_variants  # noqa: E402

from read_lightning.allocation import families  # noqa: E402
from read_lightning.allocation.gain import GainTrackingAllocator  # noqa: E402
from read_lightning.allocation.simulator import advance, grid_search_best_fixed, run_episode, simulate_fixed  # noqa: E402


class _Oracle(GainTrackingAllocator):
    """``read`` with access to the environment it plays (set ``env`` before the episode)."""

    env = None

    def _top(self) -> int:
        return int(np.argmax(self.requirement))

    def _true_cap(self, remaining: float) -> np.ndarray:
        rounds = max(self.steps * remaining / max(1.0 - remaining, 1e-12), 1.0) if self.steps else self.env.decisions
        cap = np.full(len(self.requirement), np.inf)
        cap[self._top()] = (1.0 - (1.0 - self.ceiling_keep) ** (1.0 / rounds)) / self.env.params.rate[self._top()]
        return cap


class TrueRate(_Oracle):
    def ceiling_caps(self, remaining: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, rate, se = super().ceiling_caps(remaining)
        return self._true_cap(remaining), rate, se


class TrueRateEarly(TrueRate):
    def _choose(self, s: np.ndarray, remaining: float) -> tuple[np.ndarray, dict]:
        w, info = super()._choose(s, remaining)
        if self.steps < max(self.warmup, 1) + 1:  # before read's cap may act: the true cap, the rest pro rata by r
            r, cap = self.requirement, self._true_cap(remaining)
            free = ~np.isfinite(cap)
            w = np.minimum(r, cap)
            w = w + (1.0 - w.sum()) * np.where(free, r, 0.0) / r[free].sum()
        return w, info


class TrueFreed(_Oracle):
    STEPS = 50

    def give_freed(self, w: np.ndarray, recent: np.ndarray, futile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, p, env = self.requirement, self.env.params, self.env
        receivers = np.flatnonzero((r > 0) & ~futile & (w >= r * (1.0 - 1e-12)))
        w, unit = w.copy(), (1.0 - float(w.sum())) / self.STEPS
        for _ in range(self.STEPS if len(receivers) else 0):
            trials = np.repeat(w[None], len(receivers), axis=0)
            trials[np.arange(len(receivers)), receivers] += unit
            gains = advance(p, np.repeat(env._s[None], len(receivers), 0), np.repeat(env._exposure[None], len(receivers), 0),
                            trials)[0] @ r
            w = trials[int(np.argmax(gains))]
        return w, np.isin(np.arange(len(w)), receivers).astype(float)


ALLOCATORS = {"read": GainTrackingAllocator, "true_rate": TrueRate, "true_rate_early": TrueRateEarly, "true_freed": TrueFreed}


def run(variant: str, envs: int, decisions: int) -> dict:
    families._saturation = saturation_variants.variant_draw(*saturation_variants.VARIANTS[variant])
    captures: dict[str, list[float]] = {name: [] for name in ALLOCATORS}
    try:
        for seed in range(saturation_variants.FIRST_SEED, saturation_variants.FIRST_SEED + envs):
            env = families.make_family_environment("saturation", seed, decisions=decisions)
            static = float(simulate_fixed(env.params, env.params.requirement)[0])
            headroom = grid_search_best_fixed(lambda: env)[1] / static - 1.0
            for name, cls in ALLOCATORS.items():
                alloc = cls(env.capabilities, env.requirement, seed=seed)
                alloc.env = env
                captures[name].append((run_episode(alloc, env, decisions).utility / static - 1.0) / headroom)
    finally:
        families._saturation = saturation_variants._SATURATION
    return {name: round(float(np.mean(v)), 3) for name, v in captures.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=40)
    parser.add_argument("--decisions", type=int, default=25)
    parser.add_argument("--variants", default=",".join(saturation_variants.VARIANTS))
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in saturation_variants.VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(saturation_variants.VARIANTS)}")
    out = {"capture": {v: run(v, args.envs, args.decisions) for v in args.variants.split(",")},
           "envs": args.envs, "decisions": args.decisions, "first_seed": saturation_variants.FIRST_SEED}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
