"""Is ``read_transfer``'s limit its objective or its estimate? The credit objective fed the TRUE transfer matrix.

For each family (tuning seeds), ``x (w = r)`` of:

* ``true T, fixed``: the fixed mixture that maximises ``read_transfer``'s objective
  ``sum_j r_j log(sum_i T_ij sqrt(w_i))`` (``transfer.credit_mixture``) with ``T`` the TRUE
  one-interval effect per unit of effective exposure at the start of the run (the simulator's
  ``rate * headroom * (I + pos)``, minus the forgetting ``neg * s`` where the phase has turned), played
  for the whole run; ``+harm``: with negative entries in the credit, ``pos only``: without;
* ``in-run, noise-free``: ``read_transfer`` estimating ``T`` from its own intervals with probe noise
  set to 0, against ``read`` on the same noise-free environments;
* ``in-run``: the same with the family's probe noise.

An oracle of the objective, not an allocator: nothing here can be done in a real run. Usage::

    python benchmarks/transfer_credit.py            # tuning seeds 0-11, 25 decisions, ~30 s

The measured table is in ``docs/allocator.md``.
"""

from __future__ import annotations

import argparse
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from read_lightning.allocation.gain import GainTrackingAllocator  # noqa: E402
from read_lightning.allocation.transfer import TransferAllocator, credit_mixture  # noqa: E402
from read_lightning.allocation.families import FAMILIES, make_family_environment  # noqa: E402
from read_lightning.allocation.simulator import run_episode, simulate_fixed  # noqa: E402


def true_start_transfer(params, harm: bool) -> np.ndarray:
    """``(K, K)`` [source, target]: TRUE change of ``j`` per unit of effective exposure to ``i`` in the first interval."""
    k = len(params.start)
    off = 1.0 - np.eye(k)
    t = (np.eye(k) + params.pos * off) * (params.rate * (params.ceiling - params.start))[None]
    if harm:
        t = t - params.neg * off * params.start[None] * (1.0 - np.exp(-0.5 / params.flip))[:, None]
    return t


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=12)
    parser.add_argument("--decisions", type=int, default=25)
    args = parser.parse_args(argv)
    out: dict = {}
    print("| family | true T, fixed, +harm | true T, fixed, pos only | in-run noise-free: read_transfer / read | in-run: read_transfer / read |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for family in FAMILIES:
        rows = []
        for seed in range(args.envs):
            env = make_family_environment(family, seed, decisions=args.decisions)
            p = env.params
            static = float(simulate_fixed(p, p.requirement)[0])
            v = p.requirement
            fixed = []
            for harm in (True, False):
                t = true_start_transfer(p, harm)
                w = credit_mixture(t, v, v, 0.05 * np.abs(np.diag(t)) * np.sqrt(np.maximum(v, 1e-3)), steps=200)
                fixed.append(float(simulate_fixed(p, w)[0]) / static)
            runs = []
            for noise_free in (True, False):
                for cls in (TransferAllocator, GainTrackingAllocator):
                    e = make_family_environment(family, seed, decisions=args.decisions)
                    if noise_free:
                        e.params.probe_noise, e.params.noise_scale = 0.0, None
                    runs.append(run_episode(cls(e.capabilities, e.requirement, seed=seed), e).utility / static)
            rows.append(fixed + runs)
        m = np.mean(rows, axis=0)
        out[family] = m.tolist()
        print(f"| {family} | {m[0]:.4f} | {m[1]:.4f} | {m[2]:.4f} / {m[3]:.4f} | {m[4]:.4f} / {m[5]:.4f} |", flush=True)
    return out


if __name__ == "__main__":
    main()
