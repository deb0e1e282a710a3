"""Allocation experiments that were measured and not kept: where the headroom is, and models of transfer.

``docs/allocator.md`` ("Models of transfer, measured beside the true one-step model" and the two
sections after it) holds the figures this prints. Each experiment is a small allocator defined here,
not in the package, run on the suite of ``benchmarks/allocation.py`` (same environments, same noise,
same ratios):

* ``myopic`` (a reference, not an allocator): each interval, the mixture with the best TRUE one-step
  gain ``r . s_next`` on the 1/6 simplex grid plus ``r``, knowing the true state and dynamics. What
  a chooser with a perfect one-step model takes of each family's headroom.
* ``linear``: per target capability ``j``, a ridge regression of ``delta_s_j`` on
  ``g(w_i) = a (1 - exp(-w_i / a))`` of every source ``i`` (the transfer matrix, recency-weighted),
  and each interval the mixture that maximises the fitted ``r``-weighted one-step gain (water-filling
  on the simplex), with Dirichlet exploration.
* ``culprit``: ``read`` plus antithetic exploration (a random zero-sum direction played as ``+d``
  then ``-d``), and a source whose ``r``-weighted effect, fitted on the differences within each pair
  (the drift of the returns cancels), is below 0 by ``z`` standard errors is held at the floor, and
  while one is, no victim is judged futile: attribution of harm that ``read``'s harm rule cannot make.
* ``harm_experiment``: ``read``, and while a required capability is harmed, the largest other
  capability is floored for ``length`` intervals; it stays floored if the victims' ``r``-weighted
  change rose by ``ez`` standard errors against the intervals before.
* ``pair_gate``: ``read``'s choice moved toward the myopic optimum of a one-step value model fitted on
  antithetic pairs, as far as a lower confidence bound of its predicted gain allows (``PairGate``);
  ``pair_gate:z=1e9`` is its exploration alone (the model never moves the centre).
* ``value_design`` (2026-12-08): a one-step value model of the ``r``-weighted change on ``g(w_i)``,
  fitted on a random ``+-eps`` design with a ridge toward ``w = r``, and each interval its myopic
  optimum (``ValueDesign``); ``:rules=true`` adds ``read``'s futility floor and ceiling caps, ``:step=0.5``
  moves the centre half way to each new optimum.
* ``saturating`` (2026-12-08): ``linear`` with an own return that falls with the level where ``read``'s
  closing rate is evident (``SaturatingTransfer``).
* ``predictive_switch`` (2026-12-08): ``read``, or ``value_design:rules=true:step=0.5``, whichever has
  predicted the run's ``r``-weighted changes better so far, with an antithetic ``+-0.03`` design
  (``PredictiveSwitch``); ``:dm=0.5`` asks the difference to be 0.5 standard errors, ``:min_preds=1000``
  is its design alone (``read`` always chosen).

Usage::

    python benchmarks/allocation_experiments.py                    # tuning seeds 0-35, 25 decisions, ~3 min
    python benchmarks/allocation_experiments.py --envs 12 --noise-free
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
import allocation  # noqa: E402

from read_lightning.allocation import bandit  # noqa: E402
from read_lightning.allocation.families import FAMILIES, make_family_environment  # noqa: E402
from read_lightning.allocation.gain import GainTrackingAllocator  # noqa: E402
from read_lightning.allocation.protocol import Allocator  # noqa: E402
from read_lightning.allocation.simulator import myopic_oracle, simplex_grid, simulate_fixed  # noqa: E402


def concave(w: np.ndarray, a: float) -> np.ndarray:
    """``g(w) = a (1 - exp(-w / a))``: the effective exposure of a share ``w`` within an interval,
    the concave form ``simulator.advance`` uses, with one ``a`` for every capability."""
    return a * (1.0 - np.exp(-np.asarray(w) / a))


def water_fill(value: np.ndarray, a: float) -> np.ndarray | None:
    """argmax of ``sum_i value_i a (1 - exp(-w_i / a))`` on the simplex (None if no value is positive).

    The optimum has ``value_i exp(-w_i / a) = mu`` where ``w_i > 0``, so ``w_i = a ln(value_i / mu)``;
    ``mu`` is found by bisection on ``sum w = 1``.
    """
    if value.max() <= 0:
        return None
    lo, hi = 1e-12, float(value.max())
    for _ in range(60):
        mu = float(np.sqrt(lo * hi))
        total = np.where(value > mu, a * np.log(np.maximum(value, 1e-300) / mu), 0.0).sum()
        lo, hi = (mu, hi) if total > 1 else (lo, mu)
    w = np.where(value > hi, a * np.log(np.maximum(value, 1e-300) / hi), 0.0)
    return w / w.sum()


class LinearTransfer(Allocator):
    """Myopic chooser on a fitted transfer matrix (see the module docstring)."""

    def __init__(self, capabilities, requirement, seed=0, *, a=0.3, eps=0.2, memory=0.7, off=0.01, diag=0.001, warmup=3, **kw):
        super().__init__(capabilities, requirement, seed, **kw)
        self.a, self.eps, self.memory, self.off, self.diag, self.warmup = a, eps, memory, off, diag, warmup
        self.history_w: list[np.ndarray] = []
        self.history_delta: list[np.ndarray] = []

    def transfer(self) -> np.ndarray:
        """``(K, K)``: rows the source, columns the target; ridge (``off`` off the diagonal, ``diag`` on it)."""
        x, y = concave(np.array(self.history_w), self.a), np.array(self.history_delta)
        lam = self.memory ** np.arange(len(x))[::-1]
        xtx, xty = (x * lam[:, None]).T @ x, (x * lam[:, None]).T @ y
        scale, k = np.trace(xtx) / len(xtx), len(xtx)
        m = np.zeros((k, k))
        for j in range(k):
            pen = np.full(k, self.off * scale)
            pen[j] = self.diag * scale
            m[:, j] = np.linalg.solve(xtx + np.diag(pen), xty[:, j])
        return m

    def _choose(self, s, remaining):
        r = self.requirement
        explore = self.rng.dirichlet(np.ones(len(r)))
        w = None if self.steps < self.warmup else water_fill(self.transfer() @ r, self.a)
        w = r if w is None else w
        return (1.0 - self.eps) * w + self.eps * explore, {}

    def _learn(self, pending, delta, reward):
        self.history_w.append(np.asarray(pending["w"], dtype=float))
        self.history_delta.append(np.asarray(delta, dtype=float))
        return {}


class CulpritAttribution(GainTrackingAllocator):
    """``read`` with antithetic exploration; sources that do net harm are held at the floor."""

    def __init__(self, capabilities, requirement, seed=0, *, eps=0.1, pair_memory=0.85, z=4.0, a=0.3, **kw):
        super().__init__(capabilities, requirement, seed, **kw)
        self.eps, self.pair_memory, self.z, self.a = eps, pair_memory, z, a
        self._direction: np.ndarray | None = None
        self._culprit = np.zeros(len(self.requirement), bool)

    def lost_ground(self, z: float) -> np.ndarray:
        # a victim of an identified culprit is not futile: the culprit is cut instead
        return super().lost_ground(z) & ~self._culprit.any()

    def effect(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Per source: slope of the pair difference of ``r . delta_s`` on that of ``g(w_i)``, and its se."""
        x = concave(np.array(self.history_w), self.a)
        y = np.array(self.history_delta) @ self.requirement
        pairs = [t for t in range(3, len(y), 2)]
        if len(pairs) < 3:
            return None
        dx, dy = np.array([x[t] - x[t - 1] for t in pairs]), np.array([y[t] - y[t - 1] for t in pairs])
        lam = self.pair_memory ** np.arange(len(pairs))[::-1]
        n_eff = lam.sum() ** 2 / (lam**2).sum()
        sxx = (lam[:, None] * dx**2).sum(0)
        b = (lam[:, None] * dx * dy[:, None]).sum(0) / np.maximum(sxx, 1e-12)
        var = (lam[:, None] * (dy[:, None] - dx * b) ** 2).sum(0) / lam.sum() * n_eff / max(n_eff - 1, 1)
        return b, np.sqrt(var * (lam[:, None] ** 2 * dx**2).sum(0)) / np.maximum(sxx, 1e-12)

    def _choose(self, s, remaining):
        r = self.requirement
        fit = self.effect() if self.steps >= 4 else None
        culprit = np.zeros(len(r), bool) if fit is None else (fit[0] + self.z * fit[1] < 0) & (r > 0)
        self._culprit = culprit
        w, info = super()._choose(s, remaining)
        if culprit.any():
            w = np.where(culprit, self.floor * r, w)
            w = w / w.sum()
        if self.steps % 2 == 0:
            self._direction = self.rng.dirichlet(np.ones(len(r))) - 1.0 / len(r)
        d = self._direction if self.steps % 2 == 0 else -self._direction
        w = np.maximum(w + self.eps * d, 0.0)
        return w / w.sum(), {**info, "culprits": int(culprit.sum())}


class HarmExperiment(GainTrackingAllocator):
    """``read``; while a required capability is harmed, floor a suspect and watch the victims."""

    def __init__(self, capabilities, requirement, seed=0, *, length=2, ez=2.0, retest=8, min_share=0.05, **kw):
        super().__init__(capabilities, requirement, seed, **kw)
        self.length, self.ez, self.retest, self.min_share = length, ez, retest, min_share
        self.trial: tuple[int, int, np.ndarray] | None = None  # (suspect, first interval, victims)
        self.culprits: dict[int, int] = {}
        self.cleared: dict[int, int] = {}

    def _victims(self) -> np.ndarray:
        harm, harm_se = self._fit(slice(None), self.harm_memory, per_mass=False)
        return (self.requirement > 0) & (harm + self.harm_z * harm_se < 0.0)

    def _verdict(self) -> bool:
        _, start, victims = self.trial
        r, d = self.requirement, np.array(self.history_delta)
        y = d[:, victims] @ r[victims]
        during, before = y[start:start + self.length], y[max(0, start - self.length - 1):start]
        if len(before) < 2:
            return False
        sd = np.sqrt(np.mean(np.diff(y) ** 2) / 2)
        return during.mean() - before.mean() > self.ez * sd * np.sqrt(1 / len(during) + 1 / len(before))

    def _choose(self, s, remaining):
        w, info = super()._choose(s, remaining)
        r, t = self.requirement, self.steps
        if self.trial is not None and t >= self.trial[1] + self.length:
            (self.culprits if self._verdict() else self.cleared)[self.trial[0]] = t
            self.trial = None
        for seen in (self.culprits, self.cleared):
            for i in [i for i, when in seen.items() if t - when >= self.retest]:
                del seen[i]
        if self.trial is None and t > max(self.warmup, 1):
            victims = self._victims()
            if victims.any():
                suspects = [int(i) for i in np.argsort(-w) if w[i] >= self.min_share and not victims[i]
                            and i not in self.culprits and i not in self.cleared]
                if suspects:
                    self.trial = (suspects[0], t, victims)
        cut = list(self.culprits) + ([self.trial[0]] if self.trial is not None else [])
        if cut:
            w = w.copy()
            w[cut] = self.floor * r[cut]
            w = w / w.sum()
        return w, {**info, "cut": len(cut)}


class PairGate(GainTrackingAllocator):
    """``read``'s choice, moved toward the myopic optimum of a one-step value model fitted on antithetic pairs.

    Every interval adds ``+d`` (even steps) or ``-d`` (odd steps) to the centre: ``+-delta`` on a random
    half of the capabilities, zero-sum, within each one's room. The ``r``-weighted change is regressed
    on ``g(w)`` through two sets of equations per pair: the difference within the pair (the slow drift
    of the returns cancels; it identifies the differences between the sources' values ``V``) and the
    pair's mean (recency ``level_memory``; it pins the level of ``V``, which the concave
    ``g`` makes matter), ridge toward ``read``'s own returns (no transfer). The centre moves from
    ``read``'s choice toward ``water_fill(V)`` by the step in {1/4, ..., 1} with the best lower bound
    (``z`` sandwich standard errors) of the predicted one-step gain over ``read``'s choice.
    """

    def __init__(self, capabilities, requirement, seed=0, *, a=0.3, delta=0.03, pair_memory=0.8, level_memory=0.5,
                 ridge=0.1, z=3.0, min_pairs=3, **kw):
        super().__init__(capabilities, requirement, seed, **kw)
        self.a, self.delta, self.pair_memory, self.level_memory = a, delta, pair_memory, level_memory
        self.ridge, self.z, self.min_pairs = ridge, z, min_pairs
        self._signs: np.ndarray | None = None

    def g(self, w: np.ndarray) -> np.ndarray:
        return concave(w, self.a)

    def value(self, centre: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(V, cov)``: the ``r``-weighted one-step value of a unit of ``g(w_i)``, per source."""
        if len(self.history_w) < 2 * self.min_pairs:
            return None
        x, y = self.g(np.array(self.history_w)), np.array(self.history_delta) @ self.requirement
        pairs = list(range(1, len(y), 2))
        dx, dy = np.array([x[t] - x[t - 1] for t in pairs]), np.array([y[t] - y[t - 1] for t in pairs])
        mx, my = np.array([(x[t] + x[t - 1]) / 2 for t in pairs]), np.array([(y[t] + y[t - 1]) / 2 for t in pairs])
        ld = self.pair_memory ** np.arange(len(pairs))[::-1]
        lm = self.level_memory ** np.arange(len(pairs))[::-1]
        k, r = x.shape[1], self.requirement
        prior = r * self.returns()["recent"] * np.sqrt(np.maximum(centre, 1e-9)) / np.maximum(self.g(centre), 1e-9)
        xa, ya, la = np.vstack([dx, mx]), np.concatenate([dy, my]), np.concatenate([ld, lm])
        gram = (xa * la[:, None]).T @ xa
        pen = self.ridge * np.trace(gram) / k
        inv = np.linalg.inv(gram + pen * np.eye(k))
        v = inv @ ((xa * la[:, None]).T @ ya + pen * prior)
        var = []
        for rows, lam, xs, ys in ((slice(0, len(pairs)), ld, dx, dy), (slice(len(pairs), None), lm, mx, my)):
            n_eff = lam.sum() ** 2 / (lam**2).sum()
            var.append(np.full(len(lam), (lam * (ys - xs @ v) ** 2).sum() / lam.sum() * n_eff / max(n_eff - 1, 1)))
        var = np.concatenate(var)
        return v, inv @ ((xa * (la**2 * var)[:, None]).T @ xa) @ inv

    def _choose(self, s, remaining):
        w, info = super()._choose(s, remaining)
        k, step = len(w), 0.0
        fit = self.value(w)
        if fit is not None:
            v, cov = fit
            target = water_fill(v, self.a)
            if target is not None:
                best = 0.0
                for lam in (0.25, 0.5, 0.75, 1.0):
                    dg = self.g((1 - lam) * w + lam * target) - self.g(w)
                    bound = v @ dg - self.z * np.sqrt(max(dg @ cov @ dg, 0.0))
                    if bound > best:
                        best, step = bound, lam
                w = (1 - step) * w + step * target
        if self.steps % 2 == 0 or self._signs is None:
            self._signs = self.rng.permutation(np.repeat([1.0, -1.0], [k // 2, k - k // 2]))
        d = (self._signs if self.steps % 2 == 0 else -self._signs) * np.minimum(self.delta, np.minimum(w, 1 - w))
        up, down = d[d > 0].sum(), -d[d < 0].sum()
        d = np.where(d > 0, d * min(up, down) / max(up, 1e-12), d * min(up, down) / max(down, 1e-12)) if up > 0 and down > 0 else 0 * d
        w = np.maximum(w + d, 0.0)
        return w / w.sum(), {**info, "model_step": step}


class ValueDesign(GainTrackingAllocator):
    """A one-step value model of the ``r``-weighted change, fitted on a random design; myopic choice.

    Each interval after the warm-up adds ``+-eps`` (a random sign per capability, absolute, so a
    little-required capability is probed too; not in the last ``stop`` of the budget). ``r . delta_s``
    is regressed on ``g(w_i)`` of every capability (recency ``memory``) with a ridge toward the values
    that make ``w = r`` optimal (``V_i = c exp(r_i / a)``, ``c`` fitted; prior sd ``prior`` times the
    mean), and the next centre is ``water_fill(V)``. ``rules=True``: that centre under ``read``'s
    futility floor and ceiling caps (steps 6 and 8 of docs/allocator.md), what they free spread pro
    rata over the capabilities neither futile nor capped.
    """

    def __init__(self, capabilities, requirement, seed=0, *, a=0.45, eps=0.06, memory=0.65, prior=3.0, stop=0.15,
                 rules=False, step=1.0, **kw):
        super().__init__(capabilities, requirement, seed, memory=memory, **kw)
        self.a, self.eps, self.prior, self.stop, self.rules, self.step = a, eps, prior, stop, rules, step
        self.centre = np.asarray(self.requirement, dtype=float).copy()

    def value(self) -> np.ndarray | None:
        r, x = self.requirement, concave(np.array(self.history_w), self.a)
        y = np.array(self.history_delta) @ r
        lam = self.memory ** np.arange(len(y))[::-1]
        base = np.exp(r / self.a)  # the marginal values equal at w = r: V_i g'(r_i) = c
        xb = x @ base
        c = float((lam * y) @ xb) / max(float(lam @ xb**2), 1e-12)
        if c <= 0:
            return None
        var = max(float(lam @ (y - c * xb) ** 2) / lam.sum(), 1e-6)
        pen = np.diag(1.0 / (self.prior * c * base) ** 2)
        return np.linalg.solve((x * lam[:, None]).T @ x / var + pen, (x * lam[:, None]).T @ y / var + pen @ (c * base))

    def _choose(self, s, remaining):
        r, k = self.requirement, len(self.requirement)
        if self.steps < max(self.warmup, 1):
            return r.copy(), {}
        v = self.value()
        w = water_fill(v, self.a) if v is not None else None
        w = r.copy() if w is None else w
        self.centre = w = (1.0 - self.step) * self.centre + self.step * w
        if self.rules:
            w = self.under_rules(w, remaining)
        if remaining > self.stop:
            w = np.maximum(w + self.eps * self.rng.choice([-1.0, 1.0], size=k), 0.0)
        return w / w.sum(), {}

    def under_rules(self, w: np.ndarray, remaining: float) -> np.ndarray:
        futile = self.futile()
        futile = np.zeros(len(w), dtype=bool) if futile is None else futile
        w = np.where(futile, np.minimum(w, self.floor * self.requirement), w)
        capping = self.capped(w, futile, self.tilt()[1].get("_tests"), remaining)
        capped = np.zeros(len(w), dtype=bool) if capping is None else capping[1]
        if capped.any():
            w = np.where(capped, capping[0], w)
        left, keep = 1.0 - w.sum(), np.where(futile | capped, 0.0, w)
        return w + left * keep / keep.sum() if left > 0 and keep.sum() > 0 else w


class SaturatingTransfer(GainTrackingAllocator):
    """``linear`` with saturation: per target, ``delta_s_j`` on ``g(w_j)``, ``-u_j g(w_j)`` (its level: the
    return falls as it rises) where ``read``'s closing rate of ``j`` is ``ceiling_z`` se above 0, and
    ``g(w_i)`` of every other source (ridge ``cross``, recency ``memory``); the next centre is
    ``water_fill`` of the one-step value at the current levels, with ``ValueDesign``'s ``+-eps`` design.
    """

    def __init__(self, capabilities, requirement, seed=0, *, a=0.45, eps=0.06, memory=0.8, cross=0.03, stop=0.15,
                 start=3, **kw):
        super().__init__(capabilities, requirement, seed, memory=memory, **kw)
        self.a, self.eps, self.cross, self.stop, self.start = a, eps, cross, stop, start

    def value(self) -> np.ndarray:
        r, d = self.requirement, np.array(self.history_delta)
        t, k = d.shape
        x = concave(np.array(self.history_w), self.a)
        level = np.vstack([np.zeros((1, k)), np.cumsum(d, 0)])  # before each interval, and now
        lam = self.memory ** np.arange(t)[::-1]
        rate, se, _ = self.closing_rates()
        saturates = (rate > 0) & (rate > self.ceiling_z * se)
        v = np.zeros(k)
        for j in range(k):
            own = [x[:, j]] + ([-level[:-1, j] * x[:, j]] if saturates[j] else [])
            others = [i for i in range(k) if i != j]
            cols = np.column_stack(own + [x[:, i] for i in others])
            scale = max(float((cols**2 * lam[:, None]).sum()) / cols.shape[1], 1e-9)
            pen = np.array([1e-4] * len(own) + [self.cross] * len(others)) * scale
            coef = np.linalg.solve((cols * lam[:, None]).T @ cols + np.diag(pen), (cols * lam[:, None]).T @ d[:, j])
            v[j] += r[j] * (coef[0] - (coef[1] * level[-1, j] if saturates[j] else 0.0))
            v[others] += r[j] * coef[len(own):]
        return v

    def _choose(self, s, remaining):
        r, k = self.requirement, len(self.requirement)
        w = water_fill(self.value(), self.a) if self.steps >= self.start else None
        w = r.copy() if w is None else w
        if remaining > self.stop:
            w = np.maximum(w + self.eps * self.rng.choice([-1.0, 1.0], size=k), 0.0)
        return w / w.sum(), {}


class PredictiveSwitch(ValueDesign):
    """``read``, or ``ValueDesign``'s model under ``read``'s rules, whichever has predicted this run's changes better.

    Each decision both models predict the ``r``-weighted change of the mixture played: ``read``'s
    fitted returns (``r . recent sqrt(w)``) and the value model (``V . g(w)``). After the observation,
    each one's squared error is kept. From ``min_preds`` predictions on, the decision follows the value
    model (its damped optimum under ``read``'s futility floor and ceiling caps) where its
    recency-weighted (``score_memory``) squared error is the smaller, or, with ``dm``, smaller by ``dm``
    standard errors of the mean difference (a Diebold-Mariano test); otherwise ``read``'s choice. The
    design is ``+-eps`` antithetic: a random sign per capability, then the opposite signs the next
    interval, so it cancels in ``read``'s own fits over each pair.
    """

    def __init__(self, capabilities, requirement, seed=0, *, eps=0.03, step=0.5, score_memory=0.8, min_preds=4,
                 dm=None, **kw):
        super().__init__(capabilities, requirement, seed, eps=eps, step=step, rules=True, **kw)
        self.score_memory, self.min_preds, self.dm = score_memory, min_preds, dm
        self.errors: list[tuple[float, float]] = []  # (read's, the value model's) squared error, per decision
        self._predicted: tuple[float, float] | None = None
        self._signs: np.ndarray | None = None

    def trusts_model(self) -> bool:
        if len(self.errors) < self.min_preds:
            return False
        e = np.array(self.errors)
        lam = self.score_memory ** np.arange(len(e))[::-1]
        diff = e[:, 0] - e[:, 1]
        mean = float(lam @ diff) / lam.sum()
        if self.dm is None:
            return mean > 0
        n_eff = lam.sum() ** 2 / (lam**2).sum()
        se = np.sqrt(max(float(lam @ (diff - mean) ** 2) / lam.sum(), 1e-24) / max(n_eff - 1.0, 1.0))
        return mean > self.dm * se

    def _choose(self, s, remaining):
        r, k = self.requirement, len(self.requirement)
        w, info = GainTrackingAllocator._choose(self, s, remaining)
        self._predicted = None
        if self.steps < max(self.warmup, 1):
            return w, info
        v = self.value()
        target = water_fill(v, self.a) if v is not None else None
        self.centre = (1.0 - self.step) * self.centre + self.step * (r if target is None else target)
        model = self.trusts_model()
        if model:
            w = self.under_rules(self.centre.copy(), remaining)
        if remaining > self.stop:
            odd = self.steps % 2 == 1 and self._signs is not None
            self._signs = -self._signs if odd else self.rng.choice([-1.0, 1.0], size=k)
            w = np.maximum(w + self.eps * self._signs, 0.0)
        w = w / w.sum()
        if v is not None:
            self._predicted = (float(r @ (self.returns()["recent"] * np.sqrt(w))), float(v @ concave(w, self.a)))
        return w, {**info, "value_model": model}

    def _learn(self, pending, delta, reward):
        out = super()._learn(pending, delta, reward)
        if self._predicted is not None:
            y = float(self.requirement @ np.asarray(delta, dtype=float))
            self.errors.append(((y - self._predicted[0]) ** 2, (y - self._predicted[1]) ** 2))
        return out


EXPERIMENTS = {"linear": LinearTransfer, "culprit": CulpritAttribution, "harm_experiment": HarmExperiment,
               "pair_gate": PairGate, "value_design": ValueDesign, "saturating": SaturatingTransfer,
               "predictive_switch": PredictiveSwitch}


def myopic_capture(headroom: dict[str, float], envs: int, decisions: int, first_seed: int) -> dict:
    """Per family: the myopic chooser with the TRUE one-step model, x ``w = r`` and its capture of
    ``headroom`` (family -> best fixed / ``w = r`` - 1, as the suite measured it on the same seeds)."""
    grid = simplex_grid(8, 6)
    out = {}
    for family, head in headroom.items():
        ratios = []
        for seed in range(first_seed, first_seed + envs):
            p = make_family_environment(family, seed, decisions=decisions).params
            _, mine = myopic_oracle(p, np.vstack([grid, p.requirement[None]]), requirement=p.requirement)
            ratios.append(mine / float(simulate_fixed(p, p.requirement)[0]))
        mean = float(np.mean(ratios))
        out[family] = {"over_task_static": mean, "headroom": head, "capture": (mean - 1.0) / head}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--allocators", default="read,linear,culprit,harm_experiment,pair_gate,pair_gate:z=1e9")
    parser.add_argument("--envs", type=int, default=36)
    parser.add_argument("--decisions", type=int, default=25)
    parser.add_argument("--first-seed", type=int, default=allocation.TUNE_SEED)
    parser.add_argument("--noise-free", action="store_true")
    args = parser.parse_args(argv)
    families = tuple(f for f in args.families.split(",") if f)
    bandit.ALLOCATORS.update(EXPERIMENTS)
    try:
        report = allocation.run_suite(families, tuple(args.allocators.split(",")), args.envs, args.decisions,
                                      args.first_seed, progress=True, noise_free=args.noise_free)
    finally:
        for name in EXPERIMENTS:
            bandit.ALLOCATORS.pop(name, None)
    headroom = {f: next(iter(rows.values()))["headroom"]["mean"] for f, rows in report["families"].items()}
    report["myopic_true_model"] = myopic_capture(headroom, args.envs, args.decisions, args.first_seed)
    summary = {f: {name: [round(v["over_task_static"]["mean"], 4), round(v["capture"]["mean"], 2)] for name, v in rows.items()}
               for f, rows in report["families"].items()}
    for f, v in report["myopic_true_model"].items():
        summary[f]["myopic_true_model"] = [round(v["over_task_static"], 4), round(v["capture"], 2)]
    print(json.dumps({"x_task_static_and_capture": summary, "noise_free": args.noise_free, "envs": args.envs,
                      "decisions": args.decisions, "first_seed": args.first_seed}))
    return report


if __name__ == "__main__":
    main()
