"""A finished (or interrupted) run read back from its directory, and the transfer estimate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from read_lightning.core.jsonl import iter_jsonl, read_json
from read_lightning.core.run_summary import ALLOCATION, TASK, summary_part

__all__ = ["FIGURES", "TASK_EVAL_FILE", "Decision", "RunRecord", "estimate_transfer", "load_run"]


FIGURES = ("mixture", "profile", "reward", "ledger", "transfer")
# The test-split task score read-train compare writes next to a run once it has trained.
TASK_EVAL_FILE = "task_eval.json"
DEFAULT_RIDGE = 0.1
_TB_SUFFIX = ".report"


# --------------------------------------------------------------------------- reading a run


@dataclass
class Decision:
    """One bandit decision: the mixture chosen, and (once its interval ran) what it did."""

    number: int
    spent_before: int  # tokens spent when the mixture was chosen
    profile_before: dict[str, float]
    mixture: dict[str, float]
    cost: int | None = None  # tokens the interval spent; None while not observed
    reward: float | None = None
    parts: dict[str, float] = field(default_factory=dict)  # gain, spill_term, cost_penalty
    profile_after: dict[str, float] | None = None
    dev_utility: float | None = None
    explain: dict[str, Any] | None = None  # why the allocator chose the mixture (``read``: its tests)

    @property
    def observed(self) -> bool:
        return self.cost is not None

    def record_outcome(
        self, row: dict[str, Any], profile: dict[str, float], info: dict[str, Any], where: str
    ) -> None:
        """Take in the ``observe`` row of this decision (``where`` = file:line for errors)."""
        self.cost = int(_number(row["cost"], where, "cost"))
        self.reward = None if row["reward"] is None else _number(row["reward"], where, "reward")
        self.profile_after = profile
        self.parts, self.dev_utility = {}, None  # a later observation replaces the earlier one whole
        if self.reward is not None and all(isinstance(info.get(k), (int, float)) for k in ("gain", "spill", "cost_penalty")):
            # beta is not logged, but R = gain - beta * spill - cost_penalty fixes beta * spill
            # (exactly 0 without spill, rather than rounding noise).
            gain, penalty = float(info["gain"]), float(info["cost_penalty"])
            spill_term = gain - penalty - self.reward if info["spill"] else 0.0
            self.parts = {"gain": gain, "cost_penalty": penalty, "spill_term": spill_term}
        if isinstance(info.get("dev_utility"), (int, float)):
            self.dev_utility = float(info["dev_utility"])


@dataclass
class RunRecord:
    """What a run directory says, in decision order."""

    run_dir: Path
    capabilities: list[str]
    decisions: list[Decision]
    ledger: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    budget: int | None = None
    requirement: dict[str, float] | None = None
    allocator: str | None = None
    baseline_utility: float | None = None
    test_result: dict[str, Any] | None = None  # task_eval.json: the test-split score read-train compare wrote
    notes: list[str] = field(default_factory=list)

    @property
    def observed(self) -> list[Decision]:
        return [d for d in self.decisions if d.observed]

    def profile_series(self) -> tuple[np.ndarray, np.ndarray]:
        """``(x, S)``: tokens spent ``(M,)`` at each probe measurement and the profiles ``(M, K)``,
        starting with the baseline measured before the first decision."""
        first = self.decisions[0]
        xs, rows = [first.spent_before], [[first.profile_before[c] for c in self.capabilities]]
        for d in self.observed:
            xs.append(d.spent_before + d.cost)
            rows.append([d.profile_after[c] for c in self.capabilities])
        return np.asarray(xs, dtype=float), np.asarray(rows, dtype=float)

    def utility_series(self) -> list[tuple[float, float]]:
        """``(tokens spent, task utility)`` at each development checkpoint the run logged."""
        points = []
        if self.baseline_utility is not None:
            points.append((float(self.decisions[0].spent_before), self.baseline_utility))
        points += [(float(d.spent_before + d.cost), d.dev_utility) for d in self.observed if d.dev_utility is not None]
        return points


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def _scores(row: dict[str, Any], key: str, where: str, capabilities: list[str] | None) -> dict[str, float]:
    value = row[key]
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{where}: field {key!r} must be a non-empty object of capability -> number, got {value!r}")
    out = {str(c): _number(v, where, f"{key}[{c!r}]") for c, v in value.items()}
    if capabilities is not None and sorted(out) != sorted(capabilities):
        raise ValueError(
            f"{where}: field {key!r} names capabilities {sorted(out)}, but the run's are {sorted(capabilities)}"
        )
    return out


def _read_json(path: Path, notes: list[str], why_missing: str) -> dict[str, Any] | None:
    if not path.is_file():
        notes.append(f"`{path.name}` not found ({why_missing}).")
        return None
    return read_json(path)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML:\n{err}") from None
    return doc if isinstance(doc, dict) else {}


def _bandit_config(config: dict[str, Any]) -> dict[str, Any]:
    """init_args of the BanditAllocationCallback in a resolved LightningCLI config, or {}."""
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    for cb in callbacks if isinstance(callbacks, list) else []:
        if isinstance(cb, dict) and str(cb.get("class_path", "")).endswith("BanditAllocationCallback"):
            return cb.get("init_args") or {}
    return {}


def _allocation_rows(path: Path, notes: list[str]) -> list[tuple[int, dict[str, Any]]]:
    """The rows of ``allocations.jsonl``. A process killed while appending leaves its last line
    without a newline; that one line is dropped with a note, any other corrupt row is an error."""
    text = path.read_text(encoding="utf-8")
    last = len(text.splitlines())
    truncated = bool(text) and not text.endswith("\n")
    rows: list[tuple[int, dict[str, Any]]] = []
    try:
        for lineno, row in iter_jsonl(path, required=("event", "decision", "profile")):
            rows.append((lineno, row))
    except ValueError as err:
        if not (truncated and str(err).startswith(f"{path}:{last}:")):
            raise
        notes.append(f"`{path.name}` line {last} was cut off (the run was stopped while writing it) and is ignored.")
    return rows


def load_run(run_dir: str | Path) -> RunRecord:
    """Read a run directory into a :class:`RunRecord`.

    Raises ``FileNotFoundError`` for a missing directory or ``allocations.jsonl``, and
    ``ValueError`` naming the file and line for a row that does not fit the format.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    path = run_dir / "allocations.jsonl"
    if not path.is_file():
        versions = sorted(p.name for p in run_dir.glob("version_*") if (p / "allocations.jsonl").is_file())
        hint = f"; it has run directories {versions}" if versions else ""
        raise FileNotFoundError(f"{path} not found: not a run directory of read-train fit{hint}")
    notes: list[str] = []
    capabilities: list[str] | None = None
    by_number: dict[int, Decision] = {}
    for lineno, row in _allocation_rows(path, notes):
        where = f"{path}:{lineno}"
        number = row["decision"]
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(f"{where}: field 'decision' must be an integer >= 1, got {number!r}")
        profile = _scores(row, "profile", where, capabilities)
        capabilities = capabilities or list(profile)
        info = row.get("info") if isinstance(row.get("info"), dict) else {}
        later = [n for n in by_number if n > number]
        if later and row["event"] in ("select", "observe"):
            # A run resumed from an earlier checkpoint (or started again into the same log) logs
            # from this decision on again: what the earlier rows said after it is superseded.
            notes.append(f"decisions {later[0]}-{later[-1]} were logged again from decision {number} on "
                         "(a resumed or repeated run); the later rows are used.")
            for n in later:
                del by_number[n]
        if row["event"] == "select":
            if "mixture" not in row:
                raise ValueError(f"{where}: select row lacks required field 'mixture'")
            if number in by_number:
                notes.append(f"decision {number} was logged twice (a resumed run); the later row is used.")
            by_number[number] = Decision(number, 0, profile, _scores(row, "mixture", where, capabilities),
                                         explain=info.get("explain") if isinstance(info.get("explain"), dict) else None)
        elif row["event"] == "observe":
            decision = by_number.get(number)
            if decision is None:
                raise ValueError(f"{where}: observe row for decision {number}, which was never selected")
            if "cost" not in row or "reward" not in row:
                raise ValueError(f"{where}: observe row lacks required field(s) 'cost' and/or 'reward'")
            if decision.observed:
                notes.append(f"decision {number} was observed twice (a resumed run); the later row is used.")
            decision.record_outcome(row, profile, info, where)
        else:
            raise ValueError(f"{where}: unknown event {row['event']!r} (expected 'select' or 'observe')")
    if not by_number:
        raise ValueError(f"{path}: no decisions logged yet, nothing to report")
    decisions = [by_number[n] for n in sorted(by_number)]
    spent = 0  # cumulative interval costs of the decisions kept: the ledger's spend at each decision
    for decision in decisions:
        decision.spent_before = spent
        spent += decision.cost or 0
    if not decisions[-1].observed:
        notes.append(f"decision {decisions[-1].number} was chosen but its interval never finished "
                     "(the run stopped, or is still running); it is shown but not scored.")

    ledger = _read_json(run_dir / "ledger.json", notes, "it is written when a run finishes")
    summary = _read_json(run_dir / "summary.json", notes, "it is written when a run finishes")
    config = _read_config(run_dir / "config.yaml")
    bandit_summary = summary_part(summary, ALLOCATION)
    bandit_config = _bandit_config(config)
    budget = (ledger or {}).get("budget") or (config.get("data") or {}).get("budget_tokens")
    requirement = bandit_summary.get("requirement") or bandit_config.get("requirement")
    task_history = summary_part(summary, TASK).get("history") or []
    baseline = task_history[0].get("utility") if task_history and isinstance(task_history[0], dict) else None
    test_result, test_path = None, run_dir / TASK_EVAL_FILE
    if test_path.is_file():
        test_result = read_json(test_path, required=["result"])["result"]
        if not isinstance(test_result, dict) or not isinstance(test_result.get("task_utility"), (int, float)):
            raise ValueError(f"{test_path}: field 'result' must hold a number 'task_utility', got {test_result!r}")
    return RunRecord(
        run_dir=run_dir,
        capabilities=list(capabilities),
        decisions=decisions,
        ledger=ledger,
        summary=summary,
        budget=int(budget) if isinstance(budget, (int, float)) and not isinstance(budget, bool) else None,
        requirement={str(k): float(v) for k, v in requirement.items()} if isinstance(requirement, dict) else None,
        allocator=bandit_summary.get("allocator") or bandit_config.get("allocator"),
        baseline_utility=float(baseline) if isinstance(baseline, (int, float)) else None,
        test_result=test_result,
        notes=notes,
    )


# --------------------------------------------------------------------------- transfer estimate


def estimate_transfer(
    allocations: np.ndarray, deltas: np.ndarray, costs: np.ndarray | None = None, ridge: float = DEFAULT_RIDGE
) -> np.ndarray:
    """Ridge least-squares transfer matrix ``T`` with ``delta_n ~ T @ x_n``.

    Args:
        allocations: ``(N, K)`` mixtures chosen at N decisions (rows on the simplex).
        deltas: ``(N, K)`` profile changes ``s_{t+1} - s_t`` they produced, in points.
        costs: ``(N,)`` tokens each interval spent, or None. When given, ``x_n = w_n * cost_n /
            mean(cost)``: an interval that spent more tokens counts as more allocation, so
            ``T[i, j]`` is the change in capability i from one mean interval's tokens on j.
        ridge: L2 strength ``lambda`` in ``min sum ||delta_n - T x_n||^2 + lambda ||T||^2``; with
            fewer decisions than capabilities the problem is underdetermined and the ridge pulls
            unsupported entries to 0 (0 gives the minimum-norm least-squares solution).
    Returns:
        ``(K, K)``: row i = affected capability, column j = allocated capability.
    """
    W = np.asarray(allocations, dtype=float)
    D = np.asarray(deltas, dtype=float)
    if W.ndim != 2 or W.shape != D.shape or W.shape[0] == 0:
        raise ValueError(f"allocations and deltas must both be (N, K) with N >= 1, got {W.shape} and {D.shape}")
    if not (math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be finite and >= 0, got {ridge!r}")
    W = _cost_scaled(W, costs)
    if ridge == 0:
        T_transposed = np.linalg.lstsq(W, D, rcond=None)[0]
    else:
        T_transposed = np.linalg.solve(W.T @ W + ridge * np.eye(W.shape[1]), W.T @ D)
    return T_transposed.T


def _cost_scaled(allocations: np.ndarray, costs: np.ndarray | None) -> np.ndarray:
    """``(N, K)`` allocations, each row scaled by its interval's cost over the mean cost."""
    if costs is None:
        return allocations
    c = np.asarray(costs, dtype=float)
    if c.shape != (allocations.shape[0],) or not np.all(np.isfinite(c)) or np.any(c < 0) or c.sum() <= 0:
        raise ValueError(f"costs must be (N,) = ({allocations.shape[0]},) non-negative tokens, not all 0; got {c!r}")
    return allocations * (c / c.mean())[:, None]


def _transfer(record: RunRecord, ridge: float) -> tuple[np.ndarray, np.ndarray] | None:
    """``(T (K, K), evidence (K,))`` for the run's observed decisions, or None without any.
    ``evidence[j]`` is the summed (cost-scaled) allocation to j the estimate rests on."""
    obs = [d for d in record.observed if d.profile_after is not None]
    if not obs:
        return None
    caps = record.capabilities
    W = np.array([[d.mixture[c] for c in caps] for d in obs])
    D = np.array([[d.profile_after[c] - d.profile_before[c] for c in caps] for d in obs])
    costs = np.array([d.cost for d in obs], dtype=float)
    costs = costs if costs.sum() > 0 else None
    return estimate_transfer(W, D, costs, ridge), _cost_scaled(W, costs).sum(axis=0)
