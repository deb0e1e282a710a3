"""The default allocator ``read``: ``w = r`` tilted away from capabilities whose returns have run out.

Why this form. A decision yields ``delta_s``, K numbers, not one reward: each capability's own
change says how much a unit of mass on it bought, with no perturbation needed to attribute it.
Comparing those returns *across* capabilities says little (a capability given less mass, or one
that learns slowly, looks different for reasons ``r`` already prices in), so the allocator
compares each capability with *itself*: the share of its early return it still gets. Under the
prior that ``w = r`` is right at the start, and returns within an interval concave like
``log w_c`` (so the best mixture is ``w_c ∝ r_c * value_c``), a capability whose return has fallen
to a fraction ``q_c`` of its start, relative to the others, is worth ``q_c`` of its share:

* **Returns.** Per capability, the weighted least-squares slope of ``delta_s_c`` on ``sqrt(w_c)``
  through the origin: over the warm-up intervals (at ``w = r``: the early return) and over all
  intervals with weights ``memory ** age`` (the recent return, which follows the trend).
  Transfer into ``c`` counts as ``c``'s own return.
* **Foresight.** Saturation continues: a return that fell to ``q`` over the recent window is read
  as ``q ** foresight`` for the intervals the choice affects.
* **Evidence against the measured noise.** Each return carries a standard error from the residuals
  of its own fit (heteroscedastic probes get their own noise); only a capability whose early
  return is 2 standard errors above 0 can be judged, and the departure of its retained share from
  the ``r``-weighted mean is soft-thresholded by ``kappa`` standard errors. Within the noise the
  allocator plays ``w = r`` exactly: that is what keeps it from losing where there is nothing to
  win.
* **No deflation past the returns' own optimum.** The tilt reads a capability's decline against its
  own start, as if ``w = r`` had been right then. A fast learner that closes part of a long way to
  its ceiling loses much of its early return and so much of its tilt, while each unit of its mass
  may still buy more ``r``-weighted score than anywhere else: with no transfer at all that cost
  ``read`` up to 4.7% against ``w = r`` (docs/allocator.md, "Two readings"). Under the same fitted
  returns (``delta_s_c = recent_c sqrt(w_c)``) the mixture with the largest ``r``-weighted gain is
  ``w*_c ∝ (r_c recent_c)^2``; the tilt may lower a capability's share to ``w*_c`` but not below it
  (``model_floor``). It never raises a share above ``r``, so where the returns are noisy it moves the
  mixture toward ``w = r`` only. A saturated capability's recent return is near 0, so its ``w*`` is
  too and the bound does not hold it up.
* **Saturation, not harm.** Saturation brings a return down to 0, not below. A required capability
  whose return over a longer window (weights ``harm_memory ** age``: a saturated capability's return
  is 0 plus noise, and over the short window the noise alone crosses 0 too often) is below 0 (by
  ``harm_z`` standard errors) is being hurt by another capability's training
  (spillover, or transfer that turned negative), not saturated: deflating it as if saturated would
  make the damage worse, and the allocator cannot tell which capability does it. So is one whose
  level has fallen below the best it reached by more than ``fall_z`` noise sds of a level
  difference (``fallen``): saturation approaches a ceiling and gives nothing back, so a fall is harm
  even while the mean change over the long window is still above 0 from the climb before it. While
  any required capability is harmed, it plays ``w = r`` (but for futile capabilities, below).
  A capability that fell stays out of the rules that read a falling return as saturation (the tilt's
  deflation and the ceiling cap) for the rest of the run (``fall_sticks``): its fall showed that what
  lowers its return is not its own ceiling. Before, the decision that found the fall played ``w = r``
  and the next, the fall no longer evident after one interval at ``r``, capped the same capability
  again (a shortcut's victim, whose return falls as the shortcut's help fades: held at 0.35-0.6 of its
  share for most of a run that lost 10% against ``w = r``).
* **Futility.** A required capability that has lost ground over the run while being trained (its
  score below the run's first probe by more than ``futile_z = 4`` noise sds of that difference)
  keeps only the exploration floor, its share going to the others. That is a
  capability others' training makes the student forget faster than its own can teach it (heavy
  spillover): its mass buys it nothing and, in a spillover, hurts the rest; the best fixed mixtures
  of the ``spillover`` family put little or nothing on such capabilities. Saturation does not
  trigger it (a saturated score stays up). This rule applies also while the harm rule holds
  ``w = r`` for the other capabilities. The test is on the level, not on a fitted return, because
  the level's noise does not grow with the run and many looks at a noisy slope fire on noise: a
  slope test at 0.5 standard errors floored some capability in 95-98% of runs on pure noise, this
  one at 4 in 6%.
* **Freed mass goes where a unit of mass still buys the most.** The share that deflated and
  futile capabilities give up (``1 - sum(r * tilt)`` where positive) goes to the capabilities that
  kept at least theirs and still gain, in proportion to the ``r``-weighted gain one more unit of
  mass buys each under the fitted returns (``sqrt(r_c) * recent_c``: the derivative of
  ``r_c recent_c sqrt(w)`` at ``w = r_c``), none past ``max_boost`` of its ``r`` share, so no
  apparent return (a shortcut's early transfer) draws much more than ``r`` gives it. Normalising
  ``r * tilt`` alone (the previous rule, ``freed_to="pro_rata"``) gave part of it back to the
  deflated capabilities and spread the rest as much to a capability whose gains have stalled as to
  one still learning fast, where the best fixed mixtures of the ``saturation`` and ``spillover``
  families concentrate it. Boosts from a retained share above the mean stay: removing them (the
  freed mass as the only boost) gained more on the six families but lost 1.4% on the ``measured``
  family, where they are what moves mass off a capability whose training makes the others forget
  (docs/allocator.md).
* **No more mass than a capability's ceiling can use.** A capability that saturates closes a share
  of the way to its ceiling each interval, so its change falls with its level:
  ``delta_s_c = w_c (A_c - B_c u_c)``, ``u_c`` its level (the sum of its changes so far, so the
  probes' offset cancels) and ``B_c`` the share of the way one interval spent wholly on it closes.
  Fitted per capability over the harm window with a weak prior at ``B_c = 0`` (sd 1). Where ``B_c``
  is ``ceiling_z`` standard errors above 0, a share ``w_c`` held for ``n`` intervals closes
  ``1 - (1 - B_c w_c)^n`` of the remaining way, and each unit of mass buys geometrically less; the
  capability keeps at most the share that would close ``ceiling_keep`` of it over a run's length,
  ``N`` intervals: ``(1 - (1 - ceiling_keep)^(1/N)) / B_c`` (never below the floor), and the rest
  joins the freed mass. The pace is the same at every decision, so the plan does not change as the
  run goes on. Planned over the ``R`` intervals left instead (the rule before), each decision asked
  for ``ceiling_keep`` of what the last one left, and the share grew as ``R`` fell: with one interval
  left a saturated capability kept ``ceiling_keep / B_c``, its ``r`` share again.
  This acts before the retained return has fallen far: the return falls because the level rose,
  and the fit reads the rate from the whole climb (the most required capability of the
  ``saturation`` family is capped from about its fourth interval). The fit is two-stage least
  squares with the level one interval back as the instrument (``closing_rates``: the probe noise is
  in both the level and the change). Not while a required capability is harmed (a fall from another
  capability's training is not saturation).
* **Exploration that does not stop.** Every capability keeps at least ``floor`` of its ``r`` share,
  so the return of one the rule deflates is still measured and it can win its mass back.

Pure numpy; the state is the history of mixtures and changes, so ``state_dict`` resumes exactly
and ``select`` is a deterministic function of it (the Lightning callback decides on rank 0 and
broadcasts). A decision costs well under a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from read_lightning.allocation.protocol import Allocator, Vector
from read_lightning.core.capabilities import DEFAULT_CAPABILITIES

__all__ = ["GainTrackingAllocator"]


def pooled(var: np.ndarray, n: float) -> np.ndarray:
    """Per-capability variances ``(K,)`` estimated from ``n`` intervals, pooled with their median by the
    weight of two intervals, so that one capability whose few intervals happen to agree does not claim
    a tiny noise."""
    return (n * var + 2.0 * np.median(var)) / (n + 2.0)


class GainTrackingAllocator(Allocator):
    """``w ∝ r * tilt``, the tilt from each capability's recent gain per unit of mass (module docstring).

    Args:
        warmup: decisions at ``w = r`` before any tilt; they also measure each capability's early
            return, the reference its decline is read against (at least 1).
        kappa: standard errors of evidence a retained share's departure from the mean must
            exceed before it moves mass (soft threshold).
        memory: weight of an interval in the recent fit, per interval of age (the trend window).
        floor: least share of ``r_c`` any capability keeps (exploration).
        max_boost: most a capability's share may grow relative to ``r_c`` (before the final
            normalisation, which spreads what the caps leave pro rata).
        foresight: exponent on the retained return: a return that fell to ``q`` of its early value
            over the recent window is read as falling to ``q ** foresight`` over the intervals the
            choice affects (saturation continues).
        harm_z: a required capability whose return over the harm window is below 0 by more than
            ``harm_z`` standard errors is being hurt (not saturated); then ``w = r``.
        harm_memory: weight of an interval in that harm test, per interval of age. Longer than
            ``memory``: a saturated capability's return sits at 0, so over a short window its noise
            alone crosses the threshold often and undoes the tilt; harm (a return that stays below 0)
            shows over a longer one.
        harm_guard: apply that rule (off only to measure what it is worth).
        fall_z: a required capability whose level is below the best it reached by more than
            ``fall_z`` noise sds of a level difference is harmed too (``fallen``); None: no such test.
        futile_z: a required capability whose score is below the run's first probe by more than
            ``futile_z`` noise sds (``lost_ground``) keeps only ``floor`` of its share; None: no
            futility rule.
        ceiling_z: standard errors above 0 a capability's fitted closing rate ``B_c`` must be before
            its share is capped at what its ceiling can use; None: no cap (module docstring).
        ceiling_keep: the share of the remaining way to its fitted ceiling a capped capability would
            close over a run's length of intervals at the pace it is held to (``ceiling_caps``).
        ceiling_pace: ``"run"``: that pace, the same at every decision. ``"left"``: the rule before,
            ``ceiling_keep`` of the way over the intervals left, re-planned at each decision (kept to
            measure against; with ``ceiling_keep=0.8`` and ``fall_z=None`` it is the previous default).
        model_floor: the tilt lowers no capability's share below ``w*_c``, the share the fitted recent
            returns make optimal (module docstring); False: the rule before (kept to measure against).
        fall_sticks: a required capability the fall test (``fall_z``) has flagged at any decision is, for
            the rest of the run, neither deflated by the tilt nor capped at its fitted ceiling (module
            docstring); False: only the decision that flags it plays ``w = r`` (the rule before).
        freed_to: where the mass deflated and futile capabilities give up goes. ``"marginal"``:
            to the capabilities that kept their share, by the ``r``-weighted gain one more unit of
            mass buys them (``give_freed``). ``"pro_rata"``: the previous rule, the normalisation of
            ``r * tilt`` alone (kept to measure what the new one is worth).
    Defaults: tuned on the tuning seeds of every family of ``benchmarks/allocation.py`` at once
    (``docs/allocator.md``); none names a family.
    """

    def __init__(
        self,
        capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
        requirement: Vector | None = None,
        seed: int = 0,
        *,
        beta: float = 0.5,
        lam: float = 1e-5,
        cost_scale: float = 1.0,
        k: int = 3,
        warmup: int = 2,
        kappa: float = 1.0,
        memory: float = 0.5,
        floor: float = 0.1,
        max_boost: float = 1.5,
        foresight: float = 2.0,
        harm_z: float = 0.75,
        harm_guard: bool = True,
        harm_memory: float = 0.85,
        fall_z: float | None = 4.0,
        futile_z: float | None = 4.0,
        ceiling_z: float | None = 1.0,
        ceiling_keep: float = 0.9,
        ceiling_pace: str = "run",
        freed_to: str = "marginal",
        model_floor: bool = True,
        fall_sticks: bool = True,
    ) -> None:
        super().__init__(capabilities, requirement, seed, beta=beta, lam=lam, cost_scale=cost_scale, k=k)
        if not (isinstance(warmup, int) and warmup >= 0):
            raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
        if not (math.isfinite(kappa) and kappa >= 0):
            raise ValueError(f"kappa must be finite and >= 0, got {kappa!r}")
        if not 0 < memory <= 1:
            raise ValueError(f"memory must be in (0, 1], got {memory!r}")
        if not 0 <= floor <= 1:
            raise ValueError(f"floor must be in [0, 1], got {floor!r}")
        if not (math.isfinite(max_boost) and max_boost >= 1):
            raise ValueError(f"max_boost must be finite and >= 1, got {max_boost!r}")
        for name, value in (("foresight", foresight), ("harm_z", harm_z)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        self.warmup, self.kappa, self.memory = warmup, float(kappa), float(memory)
        self.floor, self.max_boost, self.harm_guard = float(floor), float(max_boost), bool(harm_guard)
        self.foresight, self.harm_z = float(foresight), float(harm_z)
        if not 0 < harm_memory <= 1:
            raise ValueError(f"harm_memory must be in (0, 1], got {harm_memory!r}")
        self.harm_memory = float(harm_memory)
        if futile_z is not None and not math.isfinite(futile_z):
            raise ValueError(f"futile_z must be finite or None, got {futile_z!r}")
        if fall_z is not None and not (math.isfinite(fall_z) and fall_z >= 0):
            raise ValueError(f"fall_z must be finite and >= 0, or None, got {fall_z!r}")
        self.fall_z = None if fall_z is None else float(fall_z)
        self.futile_z = None if futile_z is None else float(futile_z)
        if ceiling_z is not None and not (math.isfinite(ceiling_z) and ceiling_z >= 0):
            raise ValueError(f"ceiling_z must be finite and >= 0, or None, got {ceiling_z!r}")
        if not 0 < ceiling_keep < 1:
            raise ValueError(f"ceiling_keep must be in (0, 1), got {ceiling_keep!r}")
        self.ceiling_z = None if ceiling_z is None else float(ceiling_z)
        self.ceiling_keep = float(ceiling_keep)
        if ceiling_pace not in ("run", "left"):
            raise ValueError(f"ceiling_pace must be 'run' or 'left', got {ceiling_pace!r}")
        self.ceiling_pace = ceiling_pace
        if freed_to not in ("marginal", "pro_rata"):
            raise ValueError(f"freed_to must be 'marginal' or 'pro_rata', got {freed_to!r}")
        self.freed_to = freed_to
        if not isinstance(model_floor, bool):
            raise ValueError(f"model_floor must be true or false, got {model_floor!r}")
        self.model_floor = model_floor
        if not isinstance(fall_sticks, bool):
            raise ValueError(f"fall_sticks must be true or false, got {fall_sticks!r}")
        self.fall_sticks = fall_sticks
        self.history_w: list[np.ndarray] = []  # (K,) mixture of each interval
        self.history_delta: list[np.ndarray] = []  # (K,) observed delta_s of each interval

    def _fit(self, rows: slice, decay: float, per_mass: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(rho, se)``, each ``(K,)``: gain per unit of effective mass over the intervals ``rows``.

        Weighted least squares of ``delta_s_c`` on ``x_c = sqrt(w_c)`` through the origin, weights
        ``decay ** age``. ``sqrt`` because returns within an interval are concave: with ``x = w``
        a capability given less mass would look more responsive per unit, only for having less.
        The residual variance is pooled with the capabilities' median by the weight of two
        intervals, so one lucky fit does not claim a tiny noise. ``per_mass=False``: the weighted mean
        change per interval (``x = 1``), for harm, which other capabilities' training causes and
        which does not scale with the victim's own mass.
        """
        x, d = np.sqrt(np.array(self.history_w[rows])), np.array(self.history_delta[rows])  # (T, K)
        if not per_mass:
            x = np.ones_like(x)
        lam = decay ** np.arange(len(x))[::-1][:, None]  # (T, 1), newest weight 1
        sxx = (lam * x * x).sum(0)
        rho = (lam * x * d).sum(0) / np.maximum(sxx, 1e-12)
        resid = d - rho * x
        n_eff = lam.sum() ** 2 / (lam**2).sum()
        var = (lam * resid**2).sum(0) / lam.sum() * n_eff / max(n_eff - 1.0, 1.0)
        var = pooled(var, n_eff)
        se = np.sqrt(var * (lam**2 * x * x).sum(0)) / np.maximum(sxx, 1e-12)
        return rho, se

    def returns(self) -> dict[str, np.ndarray]:
        """Early and recent returns per unit of effective mass, with standard errors, ``(K,)`` each."""
        early, early_se = self._fit(slice(0, max(self.warmup, 1)), 1.0)
        recent, recent_se = self._fit(slice(None), self.memory)
        return {"early": early, "early_se": early_se, "recent": recent, "recent_se": recent_se}

    def tilt(self) -> tuple[np.ndarray | None, dict[str, Any]]:
        """``(tilt (K,), info)``: each capability's value relative to ``r`` from its retained share.

        ``tilt`` is None where the rule plays ``w = r`` (warm-up, or a required capability harmed).
        """
        r = self.requirement
        if self.steps < max(self.warmup, 1):
            return None, {"kappa": self.kappa, "warmup": True}
        f = self.returns()
        req = r > 0
        # saturation brings a return down to 0, not below: a fall is harm from another capability
        harm, harm_se = self._fit(slice(None), self.harm_memory, per_mass=False)
        fall, fall_se = self.fallen()
        fell = req & (fall > self.fall_z * fall_se) if self.fall_z is not None else np.zeros_like(req)
        harmed = req & ((harm + self.harm_z * harm_se < 0.0) | fell)
        known = req & (f["early"] > 2.0 * f["early_se"])  # a start we can measure a decline from
        ratio = np.where(known, f["recent"] / np.where(known, f["early"], 1.0), 1.0)
        ratio_se = np.where(known, np.hypot(f["recent_se"], ratio * f["early_se"]) / np.where(known, f["early"], 1.0), 0.0)
        mean = float(r @ ratio)
        info: dict[str, Any] = {"kappa": self.kappa, "warmup": False, "retained": ratio.tolist(),
                                "retained_se": ratio_se.tolist(), "harmed": int(harmed.sum())}
        tests = {"early": f["early"], "early_se": f["early_se"], "recent": f["recent"], "recent_se": f["recent_se"],
                 "eligible": known, "retained": ratio, "retained_se": ratio_se, "harm": harm, "harm_se": harm_se,
                 "fall": fall, "fall_se": fall_se, "harmed": harmed}
        if mean <= 0.0 or (self.harm_guard and harmed.any()):
            rule = "no capability has a measurable return yet" if mean <= 0.0 else \
                "a required capability is harmed (its mean change is below 0, or its level fell below its best)"
            return None, {**info, "_tests": tests, "_rule": rule}
        gap = ratio - mean
        shrunk = np.sign(gap) * np.maximum(np.abs(gap) - self.kappa * ratio_se, 0.0)  # soft threshold
        tilt = np.clip(np.maximum((mean + shrunk) / mean, 0.0) ** self.foresight, self.floor, self.max_boost)
        # A capability the task does not require gets no mass whatever its tilt: 1, so the rule
        # below says "tilted" only where a required capability's share moved.
        tilt = np.where(req, tilt, 1.0)
        rule = "retained returns differ beyond the noise" if np.any(tilt != 1.0) else \
            "retained returns within the noise"
        if self.model_floor:
            share = self.model_share(f["recent"])
            bound = np.where(req, np.minimum(share / np.where(req, r, 1.0), 1.0), 0.0)
            held = req & (tilt < bound)
            tilt = np.where(held, bound, tilt)
            tests = {**tests, "model_share": share, "held": held}
        if self.fall_sticks:
            fell_before = self.fell_before()
            tilt = np.where(fell_before, np.maximum(tilt, 1.0), tilt)
            tests = {**tests, "fell_before": fell_before}
        return tilt, {**info, "_tests": tests, "_rule": rule}

    def model_share(self, recent: np.ndarray) -> np.ndarray:
        """``(K,)``: the mixture with the largest ``r``-weighted gain under the fitted returns,
        ``max sum_c r_c recent_c sqrt(w_c)`` on the simplex: ``w*_c ∝ (r_c recent_c)^2``, a capability
        whose return is not above 0 at 0 (all 0 where none is)."""
        value = self.requirement * np.maximum(recent, 0.0)
        total = float((value**2).sum())
        return value**2 / total if total > 0.0 else np.zeros_like(value)

    # prior sd of the closing rate B_c: weak, at "no saturation" (B_c <= 1 is the physical range: one
    # interval spent wholly on a capability cannot close more than the whole way to its ceiling)
    CEILING_PRIOR_SD = 1.0

    def closing_rates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rate, se, headroom)``, each ``(K,)``: the share of the way to its ceiling one interval spent
        wholly on a capability closes, ``B_c`` of ``delta_s_c = w_c (A_c - B_c u_c)`` (module docstring),
        its standard error, and the way left, ``A_c / B_c - u_c`` now (inf where ``B_c <= 0``).

        Per capability, weighted (``harm_memory ** age``) two-stage least squares with the level one
        interval back as the instrument of the level: the probe that starts an interval ends the one
        before, so its noise is in ``u`` and, with the opposite sign, in ``delta_s``, and least squares
        reads pure noise as saturation (it capped some capability on 59% of the decisions of a run of
        flat, noisy profiles; this fit on 1.2%). The prior ``N(0, CEILING_PRIOR_SD^2)`` on ``B_c`` enters as
        one pseudo-observation; the standard error is the sandwich form's.
        """
        w, d = np.array(self.history_w), np.array(self.history_delta)  # (T, K)
        cum = np.vstack([np.zeros((2, d.shape[1])), np.cumsum(d, 0)])
        level, lagged = cum[1:-1], cum[:-2]  # u before each interval, and before the one before it
        lam = self.harm_memory ** np.arange(len(w))[::-1]
        n_eff = lam.sum() ** 2 / (lam**2).sum()
        rate, se, head = np.zeros(d.shape[1]), np.full(d.shape[1], np.inf), np.full(d.shape[1], np.inf)
        for c in range(d.shape[1]):
            if (lam * w[:, c] ** 2).sum() <= 1e-12:  # never trained: nothing to fit
                continue
            x = np.column_stack([w[:, c], -w[:, c] * level[:, c]])  # (T, 2)
            z = np.column_stack([w[:, c], -w[:, c] * lagged[:, c]]) * lam[:, None]  # the weighted instrument
            zx = z.T @ x
            coef = np.linalg.lstsq(zx + 1e-9 * np.abs(zx).max() * np.eye(2), z.T @ d[:, c], rcond=None)[0]
            resid = d[:, c] - x @ coef
            var = max(float(lam @ resid**2) / lam.sum() * n_eff / max(n_eff - 2.0, 1.0), 1e-12)
            prior = [0.0, np.sqrt(var) / self.CEILING_PRIOR_SD]
            pz, px, py = np.vstack([z, prior]), np.vstack([x, prior]), np.append(d[:, c], 0.0)
            inv = np.linalg.pinv(pz.T @ px)
            a, rate[c] = inv @ (pz.T @ py)
            se[c] = float(np.sqrt(max((var * inv @ (pz.T @ pz) @ inv.T)[1, 1], 0.0)))
            if rate[c] > 1e-9:  # a rate at rounding level is no ceiling (its way would be ~1e14 points)
                head[c] = a / rate[c] - cum[-1, c]
        return rate, se, head

    def ceiling_caps(self, remaining: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(cap, rate, rate_se)``, each ``(K,)``: the most share each capability's fitted ceiling can
        use over the intervals left (inf where its closing rate is not ``ceiling_z`` se above 0; 0 where
        its level is at or past the fitted ceiling).

        The pace is the share of the way left that ``ceiling_keep`` of it closes over a run's length,
        ``N = steps / (1 - remaining)`` intervals (the decisions so far spent ``1 - remaining`` of the
        budget in equal intervals), the same at every decision (module docstring).
        """
        rate, se, head = self.closing_rates()
        done = 0.0 if self.ceiling_pace == "run" else self.steps  # "left": only the intervals left
        rounds = max((self.steps / max(1.0 - remaining, 1e-12)) - done, 1.0)
        evident = (self.requirement > 0) & (rate > 0) & (rate > self.ceiling_z * se)
        need = (1.0 - (1.0 - self.ceiling_keep) ** (1.0 / rounds)) / np.where(evident, rate, 1.0)
        need = np.where(head > 0, need, 0.0)  # at or past its fitted ceiling: more mass buys nothing
        return np.where(evident, need, np.inf), rate, se

    def fallen(self, upto: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(fall, se)``, each ``(K,)``: how far each level is below the best it reached (the levels
        are the sums of the changes, the start included), and the noise sd of a difference of two
        levels, for the ``fall_z`` test; over the first ``upto`` changes (default: all).

        A level difference carries two probes' noise, ``2 sigma^2``. ``sigma^2`` comes from the second
        differences of the levels (the first differences of the changes), whose noise is
        ``6 sigma^2`` and which a smooth trend leaves small; the variance of the changes themselves
        (``lost_ground``'s) holds the trend too, and over a run where a capability climbs steeply and
        then falls it is several times the noise. Pooled with the capabilities' median by the weight of
        two intervals, as the fits are. Comparing with the best level, a maximum over noisy levels,
        adds about two sigma of its own, which ``fall_z`` covers. Fewer than 4 changes: no test (0, inf).
        """
        d = np.array(self.history_delta[:upto])  # (T, K)
        k = len(self.requirement)
        if len(d) < 4:
            return np.zeros(k), np.full(k, np.inf)
        level = np.vstack([np.zeros((1, k)), np.cumsum(d, 0)])
        var = (np.diff(d, axis=0) ** 2).mean(0) / 3.0
        var = pooled(var, len(d))
        return level.max(0) - level[-1], np.sqrt(var)

    def fell_before(self) -> np.ndarray:
        """``(K,)`` bool: the required capabilities the fall test (``fall_z``) has flagged at any decision
        of the run so far, this one included: each decision after the warm-up tests the changes seen by
        then, so this is the test over every such prefix of the history (recomputed, so a resumed run
        gets the same answer from its checkpointed history). None flagged where ``fall_z`` is None."""
        k = len(self.requirement)
        out = np.zeros(k, dtype=bool)
        if self.fall_z is None:
            return out
        for upto in range(max(self.warmup, 1, 4), len(self.history_delta) + 1):
            fall, se = self.fallen(upto)
            out |= fall > self.fall_z * se
        return out & (self.requirement > 0)

    def lost_ground(self, z: float) -> np.ndarray:
        """``(K,)`` bool: the score is below the run's first probe by more than ``z`` noise sds of that difference.

        The change since the start is the sum of the ``delta_s``, and its noise is that of two probes
        only (each probe's noise cancels in consecutive changes), whose variance is estimated by
        the variance of one ``delta_s`` (an overestimate where the returns trend: conservative),
        pooled with the capabilities' median by the weight of two intervals.
        """
        d = np.array(self.history_delta)  # (T, K)
        if len(d) < 2:  # one change carries no estimate of its own noise
            return np.zeros(len(self.requirement), dtype=bool)
        var = d.var(0) * len(d) / (len(d) - 1)
        var = pooled(var, len(d))
        return d.sum(0) < -z * np.sqrt(var)

    def _choose(self, s: np.ndarray, remaining: float) -> tuple[np.ndarray, dict[str, Any]]:
        tilt, info = self.tilt()
        tests, rule = info.pop("_tests", None), info.pop("_rule", "warm-up")
        later: list[str] = []  # the steps after the tilt that moved the mixture
        r = self.requirement
        w = r.copy() if tilt is None else r * tilt
        if tilt is not None and tests is not None and tests.get("held", np.zeros(1, dtype=bool)).any():
            later.append("deflation held at the share the fitted returns make optimal")
        if tilt is not None and tests is not None and tests.get("fell_before", np.zeros(1, dtype=bool)).any():
            later.append("capabilities that fell below their best neither deflated nor capped")
        futile = self.futile()
        if futile is not None:
            if futile.any():
                w = np.where(futile, self.floor * r, w)
                later.append("futile capabilities kept at the floor")
            info = {**info, "futile": int(futile.sum())}
        else:
            futile = np.zeros(len(w), dtype=bool)
        capping = self.capped(w, futile, tests, remaining)
        capped = np.zeros(len(w), dtype=bool)
        if capping is not None:
            limit, capped, cap, rate, rate_se = capping
            if capped.any():
                w = np.where(capped, limit, w)
                later.append("capabilities near their fitted ceiling capped at the share it can use")
            tests = {**tests, "closing_rate": rate, "closing_rate_se": rate_se, "ceiling_share": cap, "capped": capped}
            info = {**info, "capped": int(capped.sum())}
        marginal = None
        if self.freed_to == "marginal" and tests is not None and w.sum() < 1.0 - 1e-12:
            w, marginal = self.give_freed(w, tests["recent"], futile)
            later.append("freed mass to the largest marginal returns")
        w = w / w.sum()
        tilted = bool(not np.allclose(w, r, rtol=0.0, atol=1e-12))
        # The first clause's verdict is the tilt's; "w = r" only where that is the mixture played
        # (a later step may have moved a mixture the tilt left at r).
        verdict = "tilted" if tilt is not None and np.any(tilt != 1.0) else "no tilt" if tilted else "w = r"
        rule = "; ".join([f"{rule}: {verdict}", *later])
        info = {**info, "tilted": tilted}
        return w, {**info, "explain": self._explain(w, tilt, tests, futile, rule, marginal)}

    def futile(self) -> np.ndarray | None:
        """Step 6: ``(K,)`` bool, the required capabilities to keep at the floor (``lost_ground(futile_z)``;
        none where every one would be: there would be nothing left to give their share to). None where
        the rule is off or the warm-up is not over."""
        if self.futile_z is None or self.steps < max(self.warmup, 1):
            return None
        futile = (self.requirement > 0) & self.lost_ground(self.futile_z)
        return futile if not futile.all() else np.zeros_like(futile)

    def capped(self, w: np.ndarray, futile: np.ndarray, tests: dict[str, np.ndarray] | None,
               remaining: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Step 8 on mixture ``w`` ``(K,)``: ``(limit, capped, cap, rate, rate_se)``, each ``(K,)``: the share
        each capability's fitted ceiling can use (never below the floor), which capabilities not ``futile``
        ``w`` gives more than that, and ``ceiling_caps``' figures. None where the rule is off or not yet
        tested: no ``tests`` (``tilt``'s), the first decision after the warm-up, a required capability
        harmed, or ``remaining`` outside (0, 1). Where every required capability not futile would be
        capped, none is: no capability would be left to use the freed mass, and the normalisation would
        hand it back."""
        if (self.ceiling_z is None or tests is None or self.steps < max(self.warmup, 1) + 1
                or tests["harmed"].any() or not 0.0 < remaining < 1.0):
            return None
        r = self.requirement
        cap, rate, rate_se = self.ceiling_caps(remaining)
        limit = np.maximum(cap, self.floor * r)
        capped = ~futile & (limit < w * (1.0 - 1e-9))
        if capped[~futile & (r > 0)].all():
            capped[:] = False
        if "fell_before" in tests:  # a fall is not saturation: its closing rate is not a ceiling's
            capped &= ~tests["fell_before"]
        return limit, capped, cap, rate, rate_se

    def give_freed(self, w: np.ndarray, recent: np.ndarray, futile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(w, marginal)``: the mass ``1 - sum(w)`` that deflated and futile capabilities gave up, placed.

        ``w`` ``(K,)`` sums to less than 1. The receivers are the required capabilities that kept
        at least their ``r`` share, are not futile and still gain (``recent > 0``); each is scored by
        the ``r``-weighted gain of one more unit of mass under the fitted model
        (``d/dw [r_c recent_c sqrt(w)]`` at ``w = r_c``, which is ``∝ sqrt(r_c) recent_c``),
        and the freed mass is shared in proportion to that score, none going past ``max_boost``
        of its ``r`` share; what the caps leave is spread pro rata by the final normalisation.
        Normalising alone (``w ∝ r * tilt``, the previous rule) gave part of it back to the deflated
        capabilities and spread the rest by ``r * tilt`` whatever the capabilities still returned
        (docs/allocator.md).
        ``marginal`` ``(K,)``: the score, 0 where not a receiver.
        """
        r = self.requirement
        receivers = (r > 0) & ~futile & (w >= r * (1.0 - 1e-12)) & (recent > 0)
        marginal = np.where(receivers, np.sqrt(r) * np.maximum(recent, 0.0), 0.0)
        room = np.where(receivers, np.maximum(self.max_boost * r - w, 0.0), 0.0)
        add, left = np.zeros_like(w), 1.0 - float(w.sum())
        for _ in range(len(w)):  # water-filling: each pass fills at least one receiver to its cap, or places all
            open_ = (marginal > 0) & (add < room * (1.0 - 1e-12))
            if left <= 1e-12 or not open_.any():
                break
            share = np.where(open_, marginal, 0.0)
            step = np.minimum(share / share.sum() * left, room - add)
            add, left = add + step, left - float(step.sum())
        return w + add, marginal

    def _explain(self, w: np.ndarray, tilt: np.ndarray | None, tests: dict[str, np.ndarray] | None,
                 futile: np.ndarray, rule: str, marginal: np.ndarray | None = None) -> dict[str, Any]:
        """Why this mixture: the rule that decided, each capability's tests, and the predicted gains.

        The candidates are the two mixtures the rule chooses between, ``w = r`` and the one played;
        each one's predicted change of capability ``c`` is its recent return times ``sqrt(w_c)``
        (the model the returns are fitted with), and its predicted gain is ``r`` dot that. ``read``
        does not maximise that gain (the tilt reads the trend forward, ``foresight``); it is there to
        show what the measured returns say of each mixture. Only reads what ``_choose`` computed.
        """
        caps = self.capabilities
        out: dict[str, Any] = {"rule": rule}
        per_cap = {c: {"futile": bool(futile[k]), "tilt": None if tilt is None else float(tilt[k])}
                   for k, c in enumerate(caps)}
        if marginal is not None:  # freed mass was placed: each capability's score and its share of r played
            for k, c in enumerate(caps):
                per_cap[c]["marginal"] = float(marginal[k])
                per_cap[c]["share_of_r"] = float(w[k] / self.requirement[k]) if self.requirement[k] > 0 else None
        if tests is not None:
            for name, values in tests.items():
                for k, c in enumerate(caps):  # inf (no fit, no cap) is written as null: JSON has no inf
                    per_cap[c][name] = bool(values[k]) if values.dtype == bool else \
                        (float(values[k]) if np.isfinite(values[k]) else None)
            out["candidates"] = {name: self.predicted(tests["recent"], mix)
                                 for name, mix in (("w = r", self.requirement), ("chosen", w))}
        out["capabilities"] = per_cap
        return out

    def predicted(self, recent: np.ndarray, w: np.ndarray) -> dict[str, Any]:
        """What the recent returns ``(K,)`` predict of mixture ``w`` ``(K,)``: each capability's change
        ``recent_c * sqrt(w_c)`` and its ``r``-weighted sum."""
        change = recent * np.sqrt(w)
        return {"predicted_gain": float(self.requirement @ change),
                "predicted_change": dict(zip(self.capabilities, change.tolist()))}

    def _learn(self, pending: dict[str, Any], delta: np.ndarray, reward: float) -> dict[str, Any]:
        self.history_w.append(np.asarray(pending["w"], dtype=float))
        self.history_delta.append(np.asarray(delta, dtype=float))
        return {}

    def _extra_state(self) -> dict[str, Any]:
        return {"history_w": self.history_w, "history_delta": self.history_delta}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        self.history_w = [np.asarray(w, dtype=float) for w in extra["history_w"]]
        self.history_delta = [np.asarray(d, dtype=float) for d in extra["history_delta"]]
