"""The allocator protocol: the reward, the ``Allocator`` base class (validation, calibration, exact state).

Pure numpy (no torch, no Lightning) so the decision core is cheap, exact to resume and testable
without a trainer; the Lightning callback is a thin adapter that calls ``select``/``observe``.

Protocol, shared by every allocator::

    w = alloc.select(profile=s, remaining=b / B)   # list[float] on the simplex, one per capability
    ...train one interval on w, probe the student...
    R = alloc.observe(profile=s_next, cost=tokens)  # reward of the last choice; learns from it
    alloc.development_checkpoint(dev_utility)       # at coarse checkpoints

Units: profiles ``s`` are probe scores on a 0-100 scale, so ``delta_s`` and the reward's
``gain``/``spill`` are in profile points (requirement-weighted); ``cost`` is in tokens and the
cost penalty is ``lam * cost / cost_scale`` (``cost_scale=1``: ``lam`` is per token, the
published convention; pass e.g. the tokens of one interval to make ``lam`` per interval).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from read_lightning.core.capabilities import (
    DEFAULT_CAPABILITIES,
    Requirement,
    check_capabilities,
    top_k,
)

__all__ = ["Vector", "compute_reward", "Allocator"]

Vector = Mapping[str, float] | Sequence[float]  # a Requirement is a Mapping


def compute_reward(
    requirement: np.ndarray,
    delta: np.ndarray,
    cost: float | np.ndarray,
    essential: Sequence[int],
    *,
    beta: float = 0.5,
    lam: float = 1e-5,
    cost_scale: float = 1.0,
) -> tuple[Any, dict[str, Any]]:
    """``R = r . delta - beta * Spill - lam * cost / cost_scale``.

    Args:
        requirement: ``(K,)`` r on the simplex. delta: ``(K,)`` profile change in points (0-100
            scale), or ``(..., K)`` for a batch. cost: tokens spent in the interval (scalar or
            ``(...)``). essential: indices of C_ess (top-k of r).
    Returns:
        ``(R, parts)`` with parts ``gain = r . delta``, ``spill = sum_{c in C_ess} r_c
        max(0, -delta_c)`` (before the factor beta) and ``cost_penalty = lam * cost / cost_scale``;
        python floats for a single delta, arrays of shape ``(...)`` for a batch.
    """
    requirement = np.asarray(requirement, dtype=float)
    delta = np.asarray(delta, dtype=float)
    ess = np.asarray(list(essential), dtype=int)
    gain = delta @ requirement
    spill = np.maximum(0.0, -delta[..., ess]) @ requirement[ess]
    cost_penalty = lam * np.asarray(cost, dtype=float) / cost_scale
    reward = gain - beta * spill - cost_penalty
    if delta.ndim == 1:
        return float(reward), {"gain": float(gain), "spill": float(spill), "cost_penalty": float(cost_penalty)}
    return reward, {"gain": gain, "spill": spill, "cost_penalty": cost_penalty}

class Allocator:
    """Base class: validation, the select/observe protocol, reward, calibration and state.

    Subclasses implement ``_choose(s, remaining) -> (K,) mixture`` and may override ``_learn``.
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
    ) -> None:
        self.capabilities = tuple(capabilities)
        if not self.capabilities:
            raise ValueError("capabilities must name at least one capability")
        check_capabilities(self.capabilities, self.capabilities)
        if requirement is None:
            raise ValueError("requirement is required: a distribution over the capabilities")
        # A Requirement was checked when it was made; a mapping or list is made into one here.
        req = Requirement.of(requirement, self.capabilities).over(self.capabilities)
        self.requirement = np.array([req[c] for c in self.capabilities])
        for name, value in (("beta", beta), ("lam", lam)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if not (math.isfinite(cost_scale) and cost_scale > 0):
            raise ValueError(f"cost_scale must be finite and > 0, got {cost_scale!r}")
        if not (isinstance(k, int) and k >= 1):
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        self.beta, self.lam, self.cost_scale, self.k = float(beta), float(lam), float(cost_scale), k
        self.essential = [self.capabilities.index(c) for c in top_k(req, k)]
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._pending: dict[str, Any] | None = None
        self.steps = 0
        self.cumulative_reward = 0.0
        self.checkpoints: list[tuple[float, float]] = []  # (cumulative proxy reward, dev utility)
        self.calibration: tuple[float, float] = (1.0, 0.0)
        self.last_info: dict[str, Any] = {}

    # ---- protocol -----------------------------------------------------------------------------
    @property
    def awaiting_observation(self) -> bool:
        """True between ``select`` and the ``observe`` that scores its choice."""
        return self._pending is not None

    def select(self, profile: Vector, remaining: float) -> list[float]:
        """Choose the mixture for the next interval.

        Args:
            profile: current probe scores, dict name -> score or a list in capability order (0-100).
            remaining: fraction of the budget left, in [0, 1].
        Returns:
            ``K`` non-negative weights summing to 1, in capability order.
        """
        if self._pending is not None:
            raise RuntimeError("select() called twice without observe(); report the outcome of the last choice first")
        s = self._profile(profile)
        remaining = float(remaining)
        if not (0.0 <= remaining <= 1.0):
            raise ValueError(f"remaining must be a budget fraction in [0, 1], got {remaining!r}")
        w, info = self._choose(s, remaining)
        w = np.clip(np.asarray(w, dtype=float), 0.0, None)
        w = w / w.sum()
        self._pending = {"s": s, "w": w, "remaining": remaining, **info.pop("_pending", {})}
        self.last_info = {"step": self.steps, "allocation": w.tolist(), **info}
        return w.tolist()

    def observe(self, profile: Vector, cost: float) -> float:
        """Report the probe scores after training on the last choice, and its cost in tokens.

        Returns the reward ``R`` (see ``compute_reward``) and learns from it.
        """
        if self._pending is None:
            raise RuntimeError("observe() called before select(); there is no choice to score")
        s_next = self._profile(profile)
        cost = float(cost)
        if not (math.isfinite(cost) and cost >= 0):
            raise ValueError(f"cost must be a finite number of tokens >= 0, got {cost!r}")
        pending, self._pending = self._pending, None
        pending["cost"] = cost
        delta = s_next - pending["s"]
        reward, parts = compute_reward(
            self.requirement, delta, cost, self.essential, beta=self.beta, lam=self.lam, cost_scale=self.cost_scale
        )
        self.cumulative_reward += reward
        self.steps += 1
        info = self._learn(pending, delta, reward)
        a, b = self.calibration
        self.last_info = {
            **self.last_info,
            "reward": reward,
            **parts,
            "cumulative_reward": self.cumulative_reward,
            "predicted_utility": a * self.cumulative_reward + b,
            **info,
        }
        return reward

    def development_checkpoint(self, utility: float) -> None:
        """Record the dev-set task utility and refit the affine calibration proxy -> utility."""
        utility = float(utility)
        if not math.isfinite(utility):
            raise ValueError(f"utility must be finite, got {utility!r}")
        self.checkpoints.append((self.cumulative_reward, utility))
        self.calibration = _fit_affine(self.checkpoints, self.calibration)
        self.last_info = {**self.last_info, "dev_utility": utility, "calibration": self.calibration}

    # ---- hooks ----------------------------------------------------------------------------------
    def _choose(self, s: np.ndarray, remaining: float) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError

    def _learn(self, pending: dict[str, Any], delta: np.ndarray, reward: float) -> dict[str, Any]:
        return {}

    # ---- helpers ----------------------------------------------------------------------------------
    def _profile(self, profile: Vector) -> np.ndarray:
        """Validate a profile and return it as ``(K,)`` in capability order (0-100 points)."""
        if isinstance(profile, Mapping):
            check_capabilities(list(profile), self.capabilities, what="capability in the profile")
            missing = [c for c in self.capabilities if c not in profile]
            if missing:
                raise ValueError(f"profile is missing capabilities {missing!r}")
            values = [profile[c] for c in self.capabilities]
        else:
            values = list(profile)
            if len(values) != len(self.capabilities):
                raise ValueError(
                    f"profile has {len(values)} entries but there are {len(self.capabilities)} capabilities"
                )
        out = np.empty(len(values))
        for i, (c, v) in enumerate(zip(self.capabilities, values)):
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"profile: score for {c!r} is not a number: {v!r}") from None
            if not math.isfinite(out[i]):
                raise ValueError(f"profile: score for {c!r} must be finite, got {v!r}")
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as plain python objects (loadable with
        ``torch.load(weights_only=True)``)."""
        return _to_plain(
            {
                "class": type(self).__name__,
                "capabilities": list(self.capabilities),
                "rng": self.rng.bit_generator.state,
                "pending": self._pending,
                "steps": self.steps,
                "cumulative_reward": self.cumulative_reward,
                "checkpoints": self.checkpoints,
                "calibration": self.calibration,
                "last_info": self.last_info,
                "extra": self._extra_state(),
            }
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``; the capability set and allocator class must match."""
        state = _from_plain(copy.deepcopy(dict(state)))
        if state["class"] != type(self).__name__:
            raise ValueError(f"state is for {state['class']!r}, not {type(self).__name__!r}")
        if list(state["capabilities"]) != list(self.capabilities):
            raise ValueError(f"state is for capabilities {state['capabilities']!r}, not {list(self.capabilities)!r}")
        backup = _from_plain(self.state_dict())
        try:
            self._apply_state(state)
        except (KeyError, TypeError, ValueError):
            self._apply_state(backup)  # all or nothing: a refused state leaves this allocator as it was
            raise

    def _apply_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._pending = state["pending"]
        self.steps = int(state["steps"])
        self.cumulative_reward = float(state["cumulative_reward"])
        self.checkpoints = [tuple(c) for c in state["checkpoints"]]
        self.calibration = tuple(state["calibration"])
        self.last_info = state["last_info"]
        self._load_extra_state(state["extra"])

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, extra: dict[str, Any]) -> None:
        pass


def _to_plain(obj: Any) -> Any:
    """Numpy arrays and scalars -> python lists/floats (tagged), recursively.

    Why: checkpoints are read with ``torch.load(weights_only=True)`` (the default since torch 2.6),
    which refuses numpy objects; python floats hold float32 and float64 values exactly.
    """
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_plain(v) for v in obj)
    return obj


def _from_plain(obj: Any) -> Any:
    """Inverse of ``_to_plain``."""
    if isinstance(obj, Mapping):
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=obj["dtype"]).reshape(obj["shape"])
        return {k: _from_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_from_plain(v) for v in obj)
    return obj


def _fit_affine(points: Sequence[tuple[float, float]], fallback: tuple[float, float]) -> tuple[float, float]:
    """Least-squares ``utility ~ a * proxy + b``; with too few distinct proxies keep ``fallback``'s slope."""
    x = np.array([p for p, _ in points], dtype=float)
    y = np.array([u for _, u in points], dtype=float)
    if len(x) >= 2 and np.ptp(x) > 1e-12:
        a, b = np.polyfit(x, y, 1)
        return float(a), float(b)
    a = fallback[0]
    return float(a), float(np.mean(y - a * x))
