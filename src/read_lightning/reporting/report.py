"""Run reports: the evidence of one run as PNG plots, a Markdown summary and TensorBoard images.

``read-train report RUN_DIR`` reads a run directory written by ``read-train fit``
(``allocations.jsonl``, and where present ``ledger.json``, ``summary.json``, ``config.yaml``) and
writes ``RUN_DIR/report/``:

========================  =====================================================================
``mixture.png``           mixture weights over the budget (stacked area, x = tokens spent)
``profile.png``           capability profile (and task utility, if evaluated) over the budget
``reward.png``            reward per decision and its parts: gain, spillover, token cost
``ledger.png``            tokens per capability, teacher generation vs student training
``transfer.png``          transfer matrix estimated from the run: delta_s against allocation
``report.md``             the key numbers, a decisions table and the figures
========================  =====================================================================

The same figures go to TensorBoard as images under ``report/<figure>`` (an event file with the
suffix ``.report`` in the run directory, replaced on every report). A run that was killed
mid-way still reports what it logged. Nothing here imports Lightning; matplotlib is imported
only when figures are drawn, and never through pyplot, so no global backend is switched.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from read_lightning.core.jsonl import iter_jsonl, read_json

log = logging.getLogger(__name__)

__all__ = ["FIGURES", "TASK_EVAL_FILE", "RunRecord", "estimate_transfer", "load_run", "report_main", "write_report"]

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
            by_number[number] = Decision(number, 0, profile, _scores(row, "mixture", where, capabilities))
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
    bandit_summary = (summary or {}).get("BanditAllocationCallback") or {}
    bandit_config = _bandit_config(config)
    budget = (ledger or {}).get("budget") or (config.get("data") or {}).get("budget_tokens")
    requirement = bandit_summary.get("requirement") or bandit_config.get("requirement")
    task_history = ((summary or {}).get("TaskEvaluationCallback") or {}).get("history") or []
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


# --------------------------------------------------------------------------- figures


def _figure(width: float = 8.0, height: float = 4.5) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colors(capabilities: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(capabilities) <= 10 else "tab20"]
    return {c: cmap(i % cmap.N) for i, c in enumerate(capabilities)}


def _label(record: RunRecord, cap: str) -> str:
    r = (record.requirement or {}).get(cap)
    return cap if r is None else f"{cap} (r={r:.2f})"


def _span(record: RunRecord) -> float:
    """Width on the token axis of a decision whose interval never finished."""
    costs = [d.cost for d in record.observed if d.cost]
    if costs:
        return float(np.mean(costs))
    if record.budget:
        return float(max(record.budget - record.decisions[-1].spent_before, 1))
    return 1.0


def _plot_mixture(record: RunRecord) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    caps, colors = record.capabilities, _colors(record.capabilities)
    groups = [([d for d in record.decisions if d.observed], 0.9, None),
              ([d for d in record.decisions if not d.observed], 0.35, "chosen, not finished")]
    labelled = False
    for decisions, alpha, note in groups:
        if not decisions:
            continue
        # A mixture holds for its whole interval: steps from each decision's spend to the next.
        x = [d.spent_before for d in decisions]
        x.append(decisions[-1].spent_before + (decisions[-1].cost or _span(record)))
        ys = [[d.mixture[c] for d in decisions] + [decisions[-1].mixture[c]] for c in caps]
        ax.stackplot(x, ys, step="post", alpha=alpha, colors=[colors[c] for c in caps],
                     labels=() if labelled else [_label(record, c) for c in caps])
        labelled = True
        if note:
            ax.text(x[0], 1.02, note, fontsize=8, va="bottom")
    if record.budget:
        ax.axvline(record.budget, color="black", linestyle=":", linewidth=1)
        ax.text(record.budget, 0.5, " budget", rotation=90, va="center", fontsize=8)
    ax.set(xlabel="tokens spent (teacher generation + student training)", ylabel="mixture weight",
           ylim=(0, 1.08), title=f"Mixture over the budget ({len(record.decisions)} decisions)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return fig


def _plot_profile(record: RunRecord) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    x, S = record.profile_series()
    colors = _colors(record.capabilities)
    essential = _essential(record)
    for k, cap in enumerate(record.capabilities):
        ax.plot(x, S[:, k], marker="o", markersize=3, color=colors[cap], label=_label(record, cap),
                linewidth=2.2 if cap in essential else 1.0)
    ax.plot(x, S.mean(axis=1), color="gray", linestyle="--", linewidth=1, label="mean")
    utility = record.utility_series()
    if utility:
        ux, uy = zip(*utility)
        ax.plot(ux, uy, color="black", marker="s", markersize=4, linewidth=1.5, label="task utility (dev)")
    ax.set(xlabel="tokens spent", ylabel="score (0-100)", title="Capability profile over the budget")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return fig


def _plot_reward(record: RunRecord) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    obs = [d for d in record.observed if d.reward is not None]
    if not obs:
        ax.text(0.5, 0.5, "no decision has been scored yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    n = np.array([d.number for d in obs])
    if all(d.parts for d in obs):
        # Each part stacks away from zero on its own side, so a negative gain stays readable.
        parts = [("gain", "r . delta_s", "tab:green", 1.0), ("spill_term", "- beta * spill", "tab:red", -1.0),
                 ("cost_penalty", "- lambda * cost", "tab:gray", -1.0)]
        pos, neg = np.zeros(len(obs)), np.zeros(len(obs))
        for key, label, color, sign in parts:
            v = sign * np.array([d.parts[key] for d in obs])
            bottom = np.where(v >= 0, pos, neg)
            ax.bar(n, v, bottom=bottom, color=color, alpha=0.7, label=label, width=0.6)
            pos, neg = pos + np.clip(v, 0, None), neg + np.clip(v, None, 0)
    ax.plot(n, [d.reward for d in obs], color="black", marker="o", label="reward R")
    ax.axhline(0, color="black", linewidth=0.6)
    # Stacked bars make every part's top a sticky edge; without this the tallest one is clipped.
    ax.use_sticky_edges = False
    ax.margins(y=0.08)
    ax.set(xlabel="decision", ylabel="reward (profile points)", title="Reward and its parts")
    ax.set_xticks(n)
    ax.legend(fontsize=8)
    return fig


def _plot_ledger(record: RunRecord) -> Any:
    fig = _figure()
    ax = fig.add_subplot()
    by_cap = (record.ledger or {}).get("by_capability") or {}
    if not by_cap:
        ax.text(0.5, 0.5, "no ledger.json (written when the run finishes)", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    caps = [c for c in record.capabilities if c in by_cap] + sorted(set(by_cap) - set(record.capabilities))
    gen = np.array([by_cap[c].get("generation", 0) for c in caps], dtype=float)
    train = np.array([by_cap[c].get("training", 0) for c in caps], dtype=float)
    y = np.arange(len(caps))
    ax.barh(y, gen, color="tab:orange", label="teacher generation")
    ax.barh(y, train, left=gen, color="tab:blue", label="student training")
    ax.set_yticks(y, [_label(record, c) for c in caps])
    ax.invert_yaxis()
    spent, budget = record.ledger.get("spent"), record.ledger.get("budget")
    ax.set(xlabel="tokens", title=f"Token ledger: {spent} of {budget} spent")
    ax.legend(fontsize=8)
    return fig


def _plot_transfer(record: RunRecord, ridge: float) -> Any:
    fig = _figure(7.0, 6.0)
    ax = fig.add_subplot()
    est = _transfer(record, ridge)
    if est is None:
        ax.text(0.5, 0.5, "no observed decision yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    T, _ = est
    caps = record.capabilities
    vmax = float(np.abs(T).max()) or 1.0
    image = ax.imshow(T, cmap="RdBu", vmin=-vmax, vmax=vmax)
    for i in range(len(caps)):
        for j in range(len(caps)):
            ax.text(j, i, f"{T[i, j]:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(T[i, j]) > 0.6 * vmax else "black")
    ax.set_xticks(range(len(caps)), caps, rotation=45, ha="right")
    ax.set_yticks(range(len(caps)), caps)
    ax.set(xlabel="budget allocated to", ylabel="change in")
    ax.set_title(f"Transfer estimate: points per mean interval\n"
                 f"(ridge {ridge:g}, {len(record.observed)} decisions, {len(caps)} capabilities)", fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8, label="delta_s (points)")
    return fig


def _essential(record: RunRecord, k: int = 3) -> set[str]:
    if not record.requirement:
        return set()
    return set(sorted(record.requirement, key=lambda c: -record.requirement[c])[:k])


# --------------------------------------------------------------------------- Markdown


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _markdown(record: RunRecord, figures: dict[str, str], ridge: float) -> str:
    caps = record.capabilities
    x, S = record.profile_series()
    lines = [f"# Run report: `{record.run_dir}`", ""]
    facts = [f"allocator: **{record.allocator or 'unknown'}**",
             f"decisions: **{len(record.decisions)}** ({len(record.observed)} scored)"]
    if record.ledger:
        led = record.ledger
        facts.append(f"tokens spent: **{led.get('spent')}** of {led.get('budget')} "
                     f"(generation {led.get('generation')}, training {led.get('training')})")
    elif record.budget:
        facts.append(f"tokens spent (from the decision log): **{int(x[-1])}** of {record.budget}")
    summary = record.summary or {}
    if "wall_clock_seconds" in summary:
        facts.append(f"wall clock: {summary['wall_clock_seconds']} s")
    probe = summary.get("CapabilityProbeCallback") or {}
    if "fraction_of_wall_clock" in probe:
        facts.append(f"probing: {100 * float(probe['fraction_of_wall_clock']):.1f}% of wall clock")
    bandit = summary.get("BanditAllocationCallback") or {}
    if bandit.get("requirement_explanation"):
        facts.append(f"requirement vector: {bandit['requirement_explanation']}")
    lines += [f"- {f}" for f in facts] + [""]

    lines += ["## Capability profile", "", "| capability | r | start | end | change |", "| --- | --- | --- | --- | --- |"]
    r = record.requirement or {}
    for k, cap in enumerate(caps):
        lines.append(f"| {cap} | {_fmt(r.get(cap), 2)} | {S[0, k]:.1f} | {S[-1, k]:.1f} | {S[-1, k] - S[0, k]:+.1f} |")
    lines.append(f"| **mean** | | {S[0].mean():.1f} | {S[-1].mean():.1f} | {S[-1].mean() - S[0].mean():+.1f} |")
    if r:
        rv = np.array([r.get(c, 0.0) for c in caps])
        lines.append(f"| **r . s** | | {S[0] @ rv:.1f} | {S[-1] @ rv:.1f} | {(S[-1] - S[0]) @ rv:+.1f} |")
    lines.append("")
    utility = record.utility_series()
    if utility:
        lines += [f"Task utility (dev split, 0-100): {utility[0][1]:.1f} at {int(utility[0][0])} tokens, "
                  f"{utility[-1][1]:.1f} at {int(utility[-1][0])} tokens ({len(utility)} checkpoints).", ""]
    if record.test_result:
        agreement = record.test_result.get("task_agreement")
        extra = f", greedy agreement with the teacher {agreement:.1f}%" if isinstance(agreement, (int, float)) else ""
        lines += [f"Task utility (test split, scored by `read-train compare` after training, `{TASK_EVAL_FILE}`): "
                  f"{float(record.test_result['task_utility']):.2f}{extra}.", ""]
    if not utility and not record.test_result:
        lines += ["Task utility: not evaluated in this run (add a `TaskEvaluationCallback`).", ""]

    lines += ["## Decisions", "",
              "| # | tokens before | mixture (weights >= 0.05) | cost | reward | gain | - beta spill | - lambda cost |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for d in record.decisions:
        mix = ", ".join(f"{c} {w:.2f}" for c, w in sorted(d.mixture.items(), key=lambda kv: -kv[1]) if w >= 0.05)
        p = d.parts
        lines.append(f"| {d.number} | {d.spent_before} | {mix} | {d.cost if d.observed else 'not finished'} | "
                     f"{_fmt(d.reward, 2)} | {_fmt(p.get('gain'), 2)} | {_fmt(-p['spill_term'] if p else None, 2)} | "
                     f"{_fmt(-p['cost_penalty'] if p else None, 4)} |")
    lines.append("")

    lines += ["## Transfer matrix estimated from the run", ""]
    est = _transfer(record, ridge)
    if est is None:
        lines += ["No decision has been scored yet, so there is nothing to estimate.", ""]
    else:
        T, evidence = est
        n = len(record.observed)
        lines += [
            f"Ridge least squares of delta_s against the allocation over the run's **{n} decision(s)** "
            f"(ridge {ridge:g}), each allocation scaled by its interval's cost relative to the mean: entry "
            "(row i, column j) is the change in capability i, in points, from one mean interval's tokens "
            f"spent on j. It is regularised because a run makes few decisions: {n} decision(s) against "
            f"{len(caps)} unknowns per capability, so capabilities that got little allocation (the "
            "evidence row) are pulled towards 0, and the estimate ignores diminishing returns and "
            "noise in the probes. Read it as a hint, not a measurement.",
            "",
            "| change in \\ allocated to | " + " | ".join(caps) + " |",
            "| --- | " + " | ".join("---" for _ in caps) + " |",
        ]
        for i, cap in enumerate(caps):
            lines.append(f"| {cap} | " + " | ".join(f"{T[i, j]:+.2f}" for j in range(len(caps))) + " |")
        lines += ["| *evidence (allocation mass)* | " + " | ".join(f"{e:.2f}" for e in evidence) + " |", ""]

    lines += ["## Figures", ""]
    for name, filename in figures.items():
        lines += [f"![{name}]({filename})", ""]
    if record.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in record.notes] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing


def _image(fig: Any) -> np.ndarray:
    """``(H, W, 3)`` uint8 pixels of a drawn figure."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _write_tensorboard(run_dir: Path, images: dict[str, np.ndarray], step: int) -> None:
    from torch.utils.tensorboard import SummaryWriter

    # One report event file per run directory: an older one is ours to replace, so reporting
    # twice does not show every figure twice.
    for old in run_dir.glob(f"events.out.tfevents.*{_TB_SUFFIX}"):
        old.unlink()
    writer = SummaryWriter(log_dir=str(run_dir), filename_suffix=_TB_SUFFIX)
    try:
        for name, pixels in images.items():
            writer.add_image(f"report/{name}", pixels, global_step=step, dataformats="HWC")
    finally:
        writer.close()


def write_report(
    run_dir: str | Path, out_dir: str | Path | None = None, tensorboard: bool = True, ridge: float = DEFAULT_RIDGE
) -> Path:
    """Write the report of ``run_dir`` (PNG figures and ``report.md``) and return the Markdown path.

    Args:
        run_dir: a run directory of ``read-train fit`` (must hold ``allocations.jsonl``).
        out_dir: where the report goes; default ``run_dir/report``.
        tensorboard: also write the figures as ``report/<figure>`` images into the run
            directory's TensorBoard events.
        ridge: strength of the transfer estimate's regularisation (see :func:`estimate_transfer`).
    """
    if not (isinstance(ridge, (int, float)) and math.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"ridge must be finite and >= 0, got {ridge!r}")
    record = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else record.run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    plots = {"mixture": _plot_mixture, "profile": _plot_profile, "reward": _plot_reward, "ledger": _plot_ledger,
             "transfer": lambda rec: _plot_transfer(rec, ridge)}
    figures, images = {}, {}
    for name in FIGURES:
        fig = plots[name](record)
        fig.savefig(out / f"{name}.png", dpi=110)
        figures[name] = f"{name}.png"
        if tensorboard:
            images[name] = _image(fig)
    if tensorboard:
        _write_tensorboard(record.run_dir, images, step=len(record.decisions))
    md = out / "report.md"
    md.write_text(_markdown(record, figures, ridge), encoding="utf-8")
    return md


def report_after_fit(log_dir: str | Path | None) -> Path | None:
    """The report at the end of ``read-train fit``: written when the run logged decisions, and
    never raising, since the run's own outputs are already saved and matter more than plots."""
    if not log_dir or not (Path(log_dir) / "allocations.jsonl").is_file():
        return None
    try:
        path = write_report(log_dir)
    except Exception as err:  # noqa: BLE001 - any plotting failure must leave the run intact
        log.warning("could not write the run report for %s: %s (run `read-train report %s` to retry)",
                    log_dir, err, log_dir)
        return None
    log.info("run report written to %s", path)
    return path


def report_main(argv: list[str] | None = None) -> int:
    """``read-train report RUN_DIR [--out DIR] [--ridge X] [--no-tensorboard]``; returns an exit code."""
    parser = argparse.ArgumentParser(
        prog="read-train report",
        description="Plot a run (mixture over the budget, capability profile, reward parts, token ledger, "
        "estimated transfer matrix) into PNGs, a Markdown summary and TensorBoard images.",
    )
    parser.add_argument("run_dir", help="a run directory of read-train fit, e.g. runs/smollm2-135m/version_0")
    parser.add_argument("--out", default=None, help="output directory (default: RUN_DIR/report)")
    parser.add_argument("--ridge", type=float, default=DEFAULT_RIDGE,
                        help=f"ridge strength of the transfer-matrix estimate (default {DEFAULT_RIDGE})")
    parser.add_argument("--no-tensorboard", action="store_true",
                        help="do not write the figures into the run's TensorBoard events")
    args = parser.parse_args(argv)
    try:
        path = write_report(args.run_dir, out_dir=args.out, tensorboard=not args.no_tensorboard, ridge=args.ridge)
    except (OSError, ValueError) as err:
        print(f"read-train report: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} and {len(FIGURES)} figures to {path.parent}")
    return 0
