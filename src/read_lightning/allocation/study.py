"""A measured transfer prior for ``read_transfer``: what a single-capability study says training ``i`` does to ``j``.

Why. One run's intervals cannot identify transfer (docs/allocator.md: a probe of 0.1 of the mass moves
a helped capability by a few tenths of a point against a change noise of about 0.7), but a study that
trains each capability alone (``read-train transfer``) measures it directly: training only ``i``,
every change of ``j != i`` is ``i``'s doing. ``TransferStudy`` turns such a study into the prior mean
of ``fit_transfer``'s off-diagonal coefficients:

* **Relative, so it follows saturation.** The prior of ``T_ij`` is ``rel_ij`` times target ``j``'s
  own return in the run, where ``rel_ij`` is the change of ``j`` per unit of ``j``'s own change in the
  study (each measured while training one capability alone, over the same budget). As ``j``
  saturates in the run, its own return falls and the transfer it can receive with it.
* **Indexed by budget, so transfer that turns is not extrapolated.** Transfer can change sign as a
  source is trained (a shortcut's help turns into forgetting). The study is read per budget segment:
  ``rel`` from the change between consecutive budgets, the marginal effect of that much more training
  of ``i``. The prior a source gets is the smaller of the segment its run exposure is in and the next
  one (the next decision moves it on), and none once its exposure is past the largest budget studied.
* **Shrunk by its own noise.** Each ``rel`` has a standard error from the study's measurement noise;
  it is shrunk towards 0 by ``rel^2 / (rel^2 + se^2)``, and the se widens the prior's sd. A target
  whose own change in a segment is within twice its noise gives no ratio there: nothing to divide
  by, and no evidence either way (it saturated in its own study), so the minimum skips that segment;
  with no ratio in either segment, no prior. (Read as 0, such a segment zeroed the whole packaged
  study of the embedded default, whose second budget adds little to any capability.)

Only positive transfer is credited by ``read_transfer`` (harm stays with ``read``'s rules), so the
prior is clipped at 0 after the minimum.

Budgets are in the run's units of exposure: intervals of the whole mass (an interval at ``w_i = 1``
is 1). ``from_report`` converts a ``read-train transfer`` study's token budgets with the run's tokens
per interval; ``simulate`` runs the study on a benchmark environment.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PACKAGED_STUDY", "STUDY_NOISE", "TransferStudy", "check_budgets", "seed_noise"]

# The embedded default's study with seeds 0-3 (read-train transfer --seeds 4; seed 0 alone is
# families.MEASURED_STUDY, the measured family's calibration), the one recipes/smollm2-135m-study.yaml
# gives read_study. Its rows are beside it (smollm2-135m-seeds_rows.jsonl).
PACKAGED_STUDY = Path(__file__).resolve().parent.parent / "resources" / "transfer" / "smollm2-135m-seeds.json"

# The seed sd of a change measured on the embedded default, per unit of that change: the upper end of
# benchmarks/probe_noise.py's 0.14-0.28 (families.REAL_SD_PER_CHANGE). ``from_report`` gives it to a
# read-train transfer study of one seed, which cannot measure its own; a study of two or more seeds
# (--seeds) gives its measured spread instead.
STUDY_NOISE = 0.28


def check_budgets(budgets: Any) -> np.ndarray:
    """``budgets`` as a float array, or ValueError naming them unless they are increasing finite numbers > 0."""
    b = np.asarray(budgets, dtype=float)
    if b.ndim != 1 or len(b) == 0 or not np.all(np.isfinite(b)) or b[0] <= 0 or np.any(np.diff(b) <= 0):
        raise ValueError(f"study budgets must be increasing numbers > 0, got {budgets!r}")
    return b


def _segments(changes: np.ndarray) -> np.ndarray:
    """``(B, ...)`` cumulative changes from the start -> the change between consecutive budgets (the first
    against the start); NaN where either end is."""
    return np.diff(np.concatenate([np.zeros_like(changes[:1]), changes]), axis=0)


def seed_noise(per_seed: Sequence[np.ndarray], scale: np.ndarray) -> float | None:
    """The spread of one seed's change between consecutive budgets, per unit of the target's ``scale``
    ``(K,)``: the sd about the seeds' mean, pooled over every (segment, source, target) that two or more
    of ``per_seed`` (``(B, K, K)`` each, NaN where a seed did not measure) measured at both ends. None
    where no segment has two seeds. A segment, not a level, because that is what ``TransferStudy``
    divides (its ``noise``); the seeds of one cell share their base student, so the spread is that of
    distillation itself (prompts, teacher samples, order), the noise a study of one seed cannot see.
    """
    if len(per_seed) < 2:
        return None
    d = np.stack([_segments(m) for m in per_seed]) / np.where(scale > 0, scale, 1.0)  # (S, B, K, K)
    n = np.sum(~np.isnan(d), axis=0)
    mean = np.where(n >= 2, np.nansum(d, axis=0) / np.maximum(n, 1), np.nan)
    dev = np.nansum((d - mean[None]) ** 2, axis=0)  # NaN where n < 2 sums to 0
    df = float(np.sum(np.where(n >= 2, n - 1, 0)))
    return None if df == 0 else math.sqrt(float(dev.sum()) / df)


@dataclass(frozen=True)
class TransferStudy:
    """Changes measured while training one capability alone, at increasing budgets.

    Args:
        capabilities: the ``K`` names, in the allocator's order.
        budgets: ``(B,)`` increasing budgets, > 0, in intervals of the whole mass.
        changes: ``(B, K, K)``: ``[b, i, j]`` the change of ``j`` from the start after training ``i``
            alone for ``budgets[b]``; a row of NaN where ``i`` was not studied.
        noise: ``(B, K, K)``: the sd of the change between two consecutive budgets' measurements
            (the first against the start).
    """

    capabilities: tuple[str, ...]
    budgets: np.ndarray
    changes: np.ndarray
    noise: np.ndarray

    def __post_init__(self) -> None:
        k, budgets = len(self.capabilities), check_budgets(self.budgets)
        for name in ("changes", "noise"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (len(budgets), k, k):
                raise ValueError(f"study {name} must have shape {(len(budgets), k, k)}, got {value.shape}")
            object.__setattr__(self, name, value)
        if np.any(~np.isfinite(self.noise[~np.isnan(self.changes)])) or np.any(self.noise < 0):
            raise ValueError("study noise must be finite and >= 0 wherever a change was measured")
        object.__setattr__(self, "budgets", budgets)
        object.__setattr__(self, "capabilities", tuple(self.capabilities))
        rel, se = self._relative()
        object.__setattr__(self, "_rel", rel)
        object.__setattr__(self, "_se", se)

    def _relative(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rel, se)``, ``(B, K, K)`` each: per segment the shrunk change of ``j`` per unit of ``j``'s own
        change, and its standard error (NaN where there is no ratio, the diagonal included)."""
        seg = _segments(np.nan_to_num(self.changes, nan=0.0))  # (B, K, K) marginal changes
        own = np.einsum("bjj->bj", seg)  # (B, K): each target's own change, training it alone
        own_sd = np.einsum("bjj->bj", self.noise)
        studied = ~np.isnan(self.changes[:, :, 0])  # (B, K) rows measured
        okay = (own > 2.0 * own_sd) & studied  # (B, K): a ratio needs a measurable own change
        denom = np.where(okay, own, 1.0)[:, None, :]
        # NaN where there is no ratio: a target whose own change is within its noise in a segment (it
        # saturated in its own study) says nothing of the transfer it receives there, which is not 0
        rel = np.where(okay[:, None, :] & studied[:, :, None], seg / denom, np.nan)
        se = np.hypot(self.noise, rel * own_sd[:, None, :]) / np.abs(denom)
        idx = np.arange(len(self.capabilities))
        rel[:, idx, idx], se[:, idx, idx] = np.nan, np.nan
        rel = rel * rel**2 / (rel**2 + se**2 + 1e-12)
        return rel, se

    def prior(self, exposure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(rel, se)``, ``(K, K)`` each, for sources at cumulative ``exposure`` ``(K,)`` (intervals of
        the whole mass): the smaller of the segment each source is in and the next, clipped at 0; 0 past
        the largest budget studied (module docstring)."""
        k = len(self.capabilities)
        rel, se = np.zeros((k, k)), np.zeros((k, k))
        cols = np.arange(k)
        for i in range(k):
            b = int(np.searchsorted(self.budgets, exposure[i], side="right"))
            if b >= len(self.budgets):
                continue
            ahead = self._rel[b : b + 2, i]  # (1 or 2, K), NaN where a segment has no ratio
            pick = np.argmin(np.where(np.isnan(ahead), np.inf, ahead), axis=0)
            rel[i], se[i] = ahead[pick, cols], self._se[b : b + 2, i][pick, cols]
        measured = ~np.isnan(rel)
        return np.where(measured, np.maximum(rel, 0.0), 0.0), np.where(measured, se, 0.0)

    @classmethod
    def from_report(cls, study: str | os.PathLike | Mapping[str, Any], capabilities: Sequence[str],
                    interval_tokens: float, noise: float | None = None) -> TransferStudy:
        """A ``read-train transfer`` output (``transfer.json``, or its mapping) for a run whose intervals
        are ``interval_tokens`` tokens each.

        ``noise``: the sd of one seed's change between consecutive budgets, per unit of the target's own
        change (its largest in the study). None: measured on the study where it has two or more seeds
        (:func:`seed_noise`), else ``STUDY_NOISE``. A cell's mean over ``n`` seeds gets ``noise /
        sqrt(n)``. Capabilities the run has and the study did not distil get no prior; the study must
        measure every capability of the run as a target.
        """
        if not (isinstance(interval_tokens, (int, float)) and math.isfinite(interval_tokens) and interval_tokens > 0):
            raise ValueError(f"interval_tokens must be a number of tokens > 0, got {interval_tokens!r}")
        if noise is not None and not (isinstance(noise, (int, float)) and math.isfinite(noise) and noise >= 0):
            raise ValueError(f"study noise must be a number >= 0, got {noise!r}")
        if not isinstance(study, Mapping):
            try:
                with open(study, encoding="utf-8") as fh:
                    study = json.load(fh)
            except OSError as err:
                raise ValueError(f"cannot read the transfer study {str(study)!r}: {err.strerror}") from None
            except json.JSONDecodeError as err:
                raise ValueError(f"the transfer study {str(study)!r} is not JSON: {err}") from None
        try:
            names, distilled = list(study["capabilities"]), list(study["distilled"])
            budgets = [int(b) for b in study["budgets"]]
            matrices = [np.asarray(study["matrices"][str(b)], dtype=float) for b in budgets]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a read-train transfer study (transfer.json): {err!r}") from None
        capabilities = tuple(capabilities)
        missing = [c for c in capabilities if c not in names]
        if missing:
            raise ValueError(f"the transfer study measured no change of {missing!r}; it has {names!r}")
        k, cols = len(capabilities), [names.index(c) for c in capabilities]

        def ours(ms: Sequence[np.ndarray]) -> np.ndarray:  # (B, K, K) in the run's capabilities, NaN where unmeasured
            out = np.full((len(budgets), k, k), np.nan)
            for b, m in enumerate(ms):
                if m.shape != (len(distilled), len(names)):
                    raise ValueError(f"study matrix at budget {budgets[b]} has shape {m.shape}, "
                                     f"expected {(len(distilled), len(names))}")
                for row, cap in enumerate(distilled):
                    if cap in capabilities:
                        out[b, capabilities.index(cap)] = m[row, cols]
            return out

        changes = ours(matrices)
        try:  # one seed's matrices each, where the study has several (read-train transfer --seeds)
            per_seed = [ours([np.asarray(by[str(b)], dtype=float) for b in budgets])
                        for by in (study.get("matrices_by_seed") or {}).values()]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"the transfer study's matrices_by_seed are not readable: {err!r}") from None
        own = np.abs(np.nan_to_num(np.einsum("bjj->bj", changes), nan=0.0))  # (B, K)
        scale = np.where(own.max(0) > 0, own.max(0), np.abs(np.nan_to_num(changes, nan=0.0)).max((0, 1)))
        runs = np.sum([~np.isnan(m[:, :, 0]) for m in per_seed], axis=0) if per_seed else np.ones((len(budgets), k))
        if noise is None:
            noise = seed_noise(per_seed, scale)
            noise = STUDY_NOISE if noise is None else noise
        # every change of j: noise x j's own change, over the root of the seeds that measured it
        sd = noise * scale[None, None, :] / np.sqrt(np.maximum(runs, 1.0))[:, :, None]
        return cls(capabilities, np.asarray(budgets, dtype=float) / float(interval_tokens), changes, sd)

    @classmethod
    def simulate(cls, env: Any, budgets: Sequence[float], seed: int = 0, repeats: int = 1) -> TransferStudy:
        """Run the study on a benchmark environment (``simulator.CapabilityTransferEnv``): from the start,
        each capability trained alone in interval-sized steps, probed at every budget with the
        environment's probe model (its noise at the start profile); the noise of each change is that of
        two probes. ``repeats`` studies with their own probe draws are averaged, and the noise falls by
        ``sqrt(repeats)`` (the environment's training is deterministic, so a repeat differs only there)."""
        from read_lightning.allocation.simulator import advance

        if not (isinstance(repeats, int) and repeats >= 1):
            raise ValueError(f"study repeats must be an integer >= 1, got {repeats!r}")
        p = env.params
        k = len(p.start)
        rng = np.random.default_rng([seed, 31])
        sd = np.asarray(env.probe_sd(), dtype=float) * np.ones(k)  # at the start (env is reset)
        gain = None if p.probe_gain is None else np.asarray(p.probe_gain, dtype=float)
        s, exposure, done = np.repeat(p.start[None], k, 0), np.zeros((k, k)), 0.0
        start_read = p.start[None] + rng.normal(0.0, 1.0, (repeats, k, k)).mean(0) * sd
        changes = np.zeros((len(budgets), k, k))
        for b, budget in enumerate(budgets):
            while done < budget - 1e-9:
                step = min(1.0, budget - done)
                s, exposure = advance(p, s, exposure, step * np.eye(k))
                done += step
            read = s if gain is None else p.start + gain * (s - p.start)
            changes[b] = read + rng.normal(0.0, 1.0, (repeats, k, k)).mean(0) * sd - start_read
        return cls(tuple(p.capabilities), np.asarray(budgets, dtype=float), changes,
                   np.broadcast_to(np.sqrt(2.0 / repeats) * sd, changes.shape).copy())
