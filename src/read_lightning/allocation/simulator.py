"""Synthetic capability-transfer environments for testing and benchmarking allocators.

Pure numpy: no torch, no Lightning. An environment stands in for "distil the student for one
interval on mixture ``w`` and probe it again". Its hidden dynamics have the three properties the
method is built around, so that an allocator has something real to learn:

* **Saturation.** Direct training on capability ``j`` closes a fraction of the headroom
  ``ceiling_j - s_j`` (the teacher's level is the ceiling), so returns shrink as ``s_j`` rises.
  Within one interval returns are also concave in the share ``w_j`` (``g(x) = a(1 - e^{-x/a})``),
  so spreading a step over several capabilities beats pouring it into one.
* **Budget-dependent transfer.** Training on ``i`` moves ``j`` through two sparse matrices
  weighted by how much budget has already gone to ``i``: early exposure helps (``pos``), late
  over-exposure makes the student forget (``neg``). Each is drawn on its own (35% of pairs each),
  so a pair may have help that fades, forgetting that grows, or both, where the sign turns.
* **Noisy probes.** ``step`` returns the true profile plus Gaussian probe noise (constant sd, or
  per capability and shaped like an item-sampling error: ``EnvParams.noise_scale``,
  ``heteroscedastic``).

This module's ``make_environment`` is one family of the benchmark suite; ``families`` draws
the others (other transfer, saturation and noise structures) on the same ``EnvParams``.

How hard this is (``python benchmarks/allocation.py``, 25 decisions, seeds 0-9 / 140-149): the
task-static mixture ``w = r`` reaches 0.974 / 0.976 of the best fixed mixture found with the true
dynamics; ``myopic_oracle`` (each interval the best TRUE one-step gain over a 1/8 simplex grid)
reaches 0.994 / 0.996. Where the 2.6% between ``w = r`` and the best fixed mixture comes from
(seeds 100-115, oracle searches with the true dynamics, ratios to ``w = r``): not from ``r != h``
(the best fixed mixture for ``r . s``, scored on ``h``, is 1.0238 vs 1.0251; ``w = h`` is 1.0036),
and mostly not from the per-capability rates and ceilings (the best fixed mixture for the
dynamics with ``pos = neg = 0``, found for ``r . s`` and scored on the true dynamics and ``h``, is
1.0047; found for ``h . s``, 1.0081): it is mostly transfer. Reading it
off the data is the hard part (seeds 100-129): a linearised one-step chooser given the TRUE
per-source value ``V_i`` of ``g(w_i)`` (utility gain per unit of effective exposure to ``i``,
transfer included) reaches 1.021, but only 1.0045 when ``V_i`` carries N(0, 0.3) error, less
error than ~25 noisy intervals leave. So there is room to adapt, but not much, and probe noise is of the size of
the differences between good actions late in a run.

The task utility is ``h . s`` for a hidden requirement ``h``; the allocator is given ``r``, a
noisy estimate of ``h`` (as a learned identifier would produce). Units: profiles and utility on a
0-100 scale; exposure ``x`` is the share of one interval's tokens (a full interval on one
capability is ``x = 1``); costs are in tokens (teacher-generated plus student-trained).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from read_lightning.core.capabilities import (
    DEFAULT_CAPABILITIES,
    check_capabilities,
    validate_distribution,
)

__all__ = [
    "EnvParams",
    "advance",
    "CapabilityTransferEnv",
    "EpisodeResult",
    "make_environment",
    "run_episode",
    "simulate_fixed",
    "myopic_oracle",
    "grid_search_best_fixed",
    "simplex_grid",
]


@dataclass
class EnvParams:
    """Hidden parameters of one environment; arrays are ``(K,)`` or ``(K, K)`` (source i, target j)."""

    capabilities: tuple[str, ...]
    hidden_requirement: np.ndarray  # (K,) h, sums to 1; defines the true utility
    requirement: np.ndarray  # (K,) r given to the allocator (noisy estimate of h)
    start: np.ndarray  # (K,) initial true profile, 0-100
    ceiling: np.ndarray  # (K,) teacher level, the profile's upper bound
    rate: np.ndarray  # (K,) fraction of headroom closed per unit of effective exposure
    concavity: np.ndarray  # (K,) a in g(x) = a (1 - exp(-x / a)), exposure units
    pos: np.ndarray  # (K, K) early positive transfer i -> j, relative to direct training
    neg: np.ndarray  # (K, K) late forgetting i -> j, fraction of s_j per unit exposure
    flip: np.ndarray  # (K,) cumulative exposure of i at which the weight on pos has fallen to 1/e (on neg: 1 - 1/e)
    token_cost: np.ndarray  # (K,) tokens counted per student token (teacher answer + training)
    probe_noise: float  # sd of probe noise, profile points
    dev_noise: float  # sd of the development-set utility estimate, utility points
    tokens_per_decision: int
    decisions: int
    # per-capability probe-noise sd (K,), replacing ``probe_noise``; with ``heteroscedastic`` the sd
    # is scaled by ``sqrt(s (100 - s)) / 50`` (1 at mid-scale), the shape of an item-sampling error
    noise_scale: np.ndarray | None = None
    heteroscedastic: bool = False
    # (K,) a fixed distortion of what the probe reads of a change: it reads ``start + probe_gain (s -
    # start)``, as a fixed subset of items that learns faster (> 1) or slower (< 1) than the capability
    probe_gain: np.ndarray | None = None


def advance(params: EnvParams, s: np.ndarray, exposure: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One interval of noise-free dynamics, vectorised over a batch of mixtures.

    Args:
        s: ``(B, K)`` true profiles. exposure: ``(B, K)`` cumulative exposure per capability
            before this interval. w: ``(B, K)`` mixtures on the simplex (exposure this interval).
    Returns:
        ``(s_next, exposure_next)``, both ``(B, K)``.
    """
    a = params.concavity
    g = a * (1.0 - np.exp(-w / a))  # (B, K) concave effective exposure this interval
    # phase = 1 early (transfer helps), -> 0 as i has been over-trained (transfer hurts);
    # evaluated mid-interval so a large step feels part of its own over-exposure.
    phase = np.exp(-(exposure + 0.5 * w) / params.flip)  # (B, K) indexed by source i
    headroom = params.ceiling - s
    off_diag = 1.0 - np.eye(len(a))
    helped = g + (g * phase) @ (params.pos * off_diag)  # (B, K) effective training reaching j
    forgot = (g * (1.0 - phase)) @ (params.neg * off_diag)  # (B, K)
    gain = params.rate * helped * headroom - forgot * s
    s_next = np.clip(s + gain, 0.0, params.ceiling)
    return s_next, exposure + w


class CapabilityTransferEnv:
    """A seeded synthetic environment; see the module docstring for the dynamics.

    ``reset()`` -> noisy profile; ``step(w, tokens)`` -> (noisy profile, cost in tokens);
    ``utility()`` -> true task utility; ``profile()`` -> true profile. Profiles are dicts
    name -> score on a 0-100 scale.
    """

    def __init__(self, params: EnvParams, seed: int = 0) -> None:
        self.params = params
        self.capabilities = params.capabilities
        self.requirement = dict(zip(self.capabilities, params.requirement.tolist()))
        self._seed = seed
        self.reset()

    @property
    def decisions(self) -> int:
        return self.params.decisions

    def reset(self) -> dict[str, float]:
        """Back to the start profile; re-seeds the probe noise so episodes are reproducible."""
        self._rng = np.random.default_rng([self._seed, 7919])
        self._s = self.params.start.copy()
        self._exposure = np.zeros_like(self._s)
        self.tokens_spent = 0
        self.steps = 0
        return self._probe()

    def probe_sd(self) -> np.ndarray:
        """``(K,)`` sd of the probe noise at the current true profile, points."""
        p = self.params
        sd = np.full(self._s.shape, p.probe_noise) if p.noise_scale is None else np.asarray(p.noise_scale, dtype=float)
        if p.heteroscedastic:
            sd = sd * np.sqrt(np.clip(self._s * (100.0 - self._s), 0.0, None)) / 50.0
        return sd

    def _probe(self) -> dict[str, float]:
        p = self.params
        read = self._s if p.probe_gain is None else p.start + p.probe_gain * (self._s - p.start)
        noisy = read + self._rng.normal(0.0, 1.0, size=self._s.shape) * self.probe_sd()
        return dict(zip(self.capabilities, noisy.tolist()))

    def step(self, w: Sequence[float] | Mapping[str, float], tokens: int | None = None) -> tuple[dict[str, float], float]:
        """Train one interval on mixture ``w`` with ``tokens`` student tokens (default: one interval).

        Returns the noisy probed profile (0-100) and the interval's cost in tokens.
        """
        wv = np.array(list(validate_distribution(w, self.capabilities, name="mixture", atol=1e-3).values()))
        tokens = self.params.tokens_per_decision if tokens is None else int(tokens)
        if tokens <= 0:
            raise ValueError(f"tokens must be positive, got {tokens!r}")
        scale = tokens / self.params.tokens_per_decision
        s, e = advance(self.params, self._s[None], self._exposure[None], scale * wv[None])
        self._s, self._exposure = s[0], e[0]
        cost = float(tokens * (wv @ self.params.token_cost))
        self.tokens_spent += tokens
        self.steps += 1
        return self._probe(), cost

    def profile(self) -> dict[str, float]:
        """The true (noise-free) profile, 0-100."""
        return dict(zip(self.capabilities, self._s.tolist()))

    def utility(self) -> float:
        """True task utility ``h . s`` (0-100)."""
        return float(self.params.hidden_requirement @ self._s)

    def dev_utility(self) -> float:
        """A development-set estimate of the utility: the truth plus evaluation noise."""
        return self.utility() + float(self._rng.normal(0.0, self.params.dev_noise))


def make_environment(
    seed: int,
    capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
    *,
    decisions: int = 25,
    probe_noise: float = 0.5,
    dev_noise: float = 0.3,
    requirement_noise: float = 0.15,
    tokens_per_decision: int = 20_000,
) -> CapabilityTransferEnv:
    """Draw a random environment from ``seed`` (same seed, same environment and probe noise).

    ``requirement_noise`` is the sd of the log-normal error between the hidden requirement
    ``h`` and the ``r`` given to the allocator.
    """
    capabilities = tuple(capabilities)
    check_capabilities(capabilities, capabilities)
    if not 1 <= decisions <= 10_000:
        raise ValueError(f"decisions must be in [1, 10000], got {decisions!r}")
    k = len(capabilities)
    rng = np.random.default_rng(seed)
    h = rng.dirichlet(np.full(k, 0.6))
    r = h * np.exp(rng.normal(0.0, requirement_noise, size=k))
    r /= r.sum()
    start = rng.uniform(15.0, 45.0, size=k)
    ceiling = rng.uniform(65.0, 90.0, size=k)
    # log-uniform: some capabilities saturate within a few intervals, others never do, so a
    # mixture that is right early wastes budget late (the case for switching over time)
    rate = np.exp(rng.uniform(np.log(0.05), np.log(0.6), size=k))
    concavity = rng.uniform(0.3, 0.6, size=k)
    pos = np.where(rng.random((k, k)) < 0.35, rng.uniform(0.1, 0.6, size=(k, k)), 0.0)
    neg = np.where(rng.random((k, k)) < 0.35, rng.uniform(0.02, 0.08, size=(k, k)), 0.0)
    flip = rng.uniform(1.5, 5.0, size=k) * decisions / 25.0  # same shape of the story at any horizon
    token_cost = rng.uniform(1.0, 2.0, size=k)
    params = EnvParams(
        capabilities=capabilities,
        hidden_requirement=h,
        requirement=r,
        start=start,
        ceiling=ceiling,
        rate=rate,
        concavity=concavity,
        pos=pos,
        neg=neg,
        flip=flip,
        token_cost=token_cost,
        probe_noise=float(probe_noise),
        dev_noise=float(dev_noise),
        tokens_per_decision=int(tokens_per_decision),
        decisions=int(decisions),
    )
    return CapabilityTransferEnv(params, seed=seed)


@dataclass
class EpisodeResult:
    """What one episode produced. ``allocations`` is ``(T, K)``; times in milliseconds."""

    utility: float
    start_utility: float
    allocations: np.ndarray
    rewards: list[float]
    utilities: list[float]
    ms_per_decision: float
    infos: list[dict[str, Any]] = field(default_factory=list)


def run_episode(
    allocator: Any,
    env: CapabilityTransferEnv,
    decisions: int | None = None,
    *,
    checkpoint_every: int | None = None,
    keep_info: bool = False,
) -> EpisodeResult:
    """Run one budget: ``decisions`` rounds of select -> step -> observe from a fresh ``env.reset()``.

    Every ``checkpoint_every`` decisions (default: every 10% of the budget, at least 1) the
    allocator gets ``development_checkpoint(env.dev_utility())``. ``ms_per_decision`` times
    ``select`` + ``observe`` only (not the environment).
    """
    decisions = env.decisions if decisions is None else int(decisions)
    checkpoint_every = checkpoint_every or max(1, round(decisions / 10))
    profile = env.reset()
    start_utility = env.utility()
    allocations, rewards, utilities, infos = [], [], [], []
    elapsed = 0.0
    for t in range(decisions):
        remaining = 1.0 - t / decisions
        t0 = time.perf_counter()
        w = allocator.select(profile=profile, remaining=remaining)
        elapsed += time.perf_counter() - t0
        profile, cost = env.step(w)
        t0 = time.perf_counter()
        reward = allocator.observe(profile=profile, cost=cost)
        elapsed += time.perf_counter() - t0
        allocations.append(w)
        rewards.append(float(reward))
        utilities.append(env.utility())
        if keep_info:
            infos.append(dict(allocator.last_info))
        if (t + 1) % checkpoint_every == 0:
            allocator.development_checkpoint(env.dev_utility())
    return EpisodeResult(
        utility=env.utility(),
        start_utility=start_utility,
        allocations=np.array(allocations),
        rewards=rewards,
        utilities=utilities,
        ms_per_decision=1000.0 * elapsed / max(decisions, 1),
        infos=infos,
    )


def _weights(params: EnvParams, requirement: np.ndarray | None) -> np.ndarray:
    """The utility weights to score with: ``requirement`` ``(K,)`` if given (checked), else the hidden ``h``."""
    if requirement is None:
        return params.hidden_requirement
    req = np.asarray(requirement, dtype=float)
    if req.shape != params.hidden_requirement.shape or not np.all(np.isfinite(req)):
        raise ValueError(f"requirement must be {len(params.hidden_requirement)} finite weights, got {requirement!r}")
    return req


def simulate_fixed(
    params: EnvParams, mixtures: np.ndarray, decisions: int | None = None, *, requirement: np.ndarray | None = None
) -> np.ndarray:
    """Final utility of each fixed mixture in ``mixtures`` ``(B, K)`` under the true dynamics; returns ``(B,)``.

    ``requirement`` ``(K,)``: score ``requirement . s`` instead of the true ``h . s`` (e.g. ``r``, to
    find what an oracle of the dynamics that only knew ``r`` would pick).
    """
    decisions = params.decisions if decisions is None else decisions
    weights = _weights(params, requirement)
    mixtures = np.atleast_2d(np.asarray(mixtures, dtype=float))
    s = np.broadcast_to(params.start, mixtures.shape).copy()
    exposure = np.zeros_like(s)
    for _ in range(decisions):
        s, exposure = advance(params, s, exposure, mixtures)
    return s @ weights


def myopic_oracle(
    params: EnvParams,
    candidates: np.ndarray | None = None,
    decisions: int | None = None,
    *,
    requirement: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """A reference for one-step allocators: each interval, the candidate with the best TRUE one-step gain.

    The chooser knows the noise-free dynamics and the current true state, and maximises
    ``requirement . s_next`` (default: the true ``h``) over ``candidates`` ``(A, K)`` (default: the
    simplex grid at 1/8 plus ``r``). No allocator can do this; it is a reference for a perfect
    one-step model, not a bound (greedy choices are not monotone in the final utility, and the
    bandit's reward is not ``h . s_next``). Returns ``(allocations (T, K), final true utility)``.
    """
    decisions = params.decisions if decisions is None else decisions
    weights = _weights(params, requirement)
    if candidates is None:
        candidates = np.vstack([simplex_grid(len(params.capabilities), 8), params.requirement[None]])
    candidates = np.atleast_2d(np.asarray(candidates, dtype=float))
    s, exposure = params.start[None].copy(), np.zeros((1, len(params.start)))
    chosen = []
    for _ in range(decisions):
        n = len(candidates)
        s_next, _ = advance(params, np.repeat(s, n, axis=0), np.repeat(exposure, n, axis=0), candidates)
        i = int(np.argmax(s_next @ weights))
        chosen.append(candidates[i])
        s, exposure = advance(params, s, exposure, candidates[i : i + 1])
    return np.array(chosen), float(s[0] @ params.hidden_requirement)


def simplex_grid(k: int, resolution: int) -> np.ndarray:
    """All points of the simplex in ``k`` dims with coordinates in multiples of ``1/resolution``.

    Returns ``(C(resolution + k - 1, k - 1), k)`` (stars and bars).
    """
    rows = []
    for bars in itertools.combinations(range(resolution + k - 1), k - 1):
        edges = (-1, *bars, resolution + k - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(k)])
    return np.array(rows, dtype=float) / resolution


def grid_search_best_fixed(
    env_factory: Callable[[], CapabilityTransferEnv],
    resolution: int = 8,
    *,
    refine_steps: Sequence[float] = (1 / 16, 1 / 32, 1 / 64),
    decisions: int | None = None,
    requirement: np.ndarray | None = None,
) -> tuple[list[float], float]:
    """Best fixed mixture under the TRUE (noise-free) dynamics and true utility: an oracle.

    Searches the full simplex grid at ``1/resolution`` (6435 mixtures for 8 capabilities at 8),
    then hill-climbs by moving ``step`` of mass between any two capabilities for each step in
    ``refine_steps``. ``requirement`` ``(K,)``: optimise ``requirement . s`` instead of ``h . s``
    (the search still uses the true dynamics). Returns ``(mixture, final utility)``, the utility
    being the optimised objective.
    """
    params = env_factory().params
    k = len(params.capabilities)
    grid = simplex_grid(k, resolution)
    values = simulate_fixed(params, grid, decisions, requirement=requirement)
    best = grid[int(np.argmax(values))]
    best_value = float(values.max())
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    for step in refine_steps:
        while True:
            moves = np.repeat(best[None], len(pairs), axis=0)
            for n, (i, j) in enumerate(pairs):
                delta = min(step, moves[n, i])
                moves[n, i] -= delta
                moves[n, j] += delta
            vals = simulate_fixed(params, moves, decisions, requirement=requirement)
            if vals.max() <= best_value + 1e-9:
                break
            best, best_value = moves[int(np.argmax(vals))], float(vals.max())
    return best.tolist(), best_value
