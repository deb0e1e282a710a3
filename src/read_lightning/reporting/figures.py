"""The report's figures (matplotlib, imported on use): mixture, profile, reward, ledger, transfer."""

from __future__ import annotations

from typing import Any

import numpy as np

from read_lightning.reporting.records import RunRecord, _transfer

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


# --------------------------------------------------------------------------- the transfer study


def _plot_study_heatmaps(study: dict[str, Any]) -> Any:
    """One heatmap of the measured ``T(B)`` per budget (``transfer_study.summarize_study``), one colour scale."""
    caps, rows, budgets = study["capabilities"], study["distilled"], study["budgets"]
    fig = _figure(5.0 * len(budgets) + 1.0, 0.45 * len(rows) + 3.0)
    mats = [np.array([[np.nan if v is None else v for v in row] for row in study["matrices"][str(b)]], dtype=float)
            for b in budgets]
    vmax = max([float(np.nanmax(np.abs(m))) for m in mats if np.isfinite(m).any()] or [1.0]) or 1.0
    axes = fig.subplots(1, len(budgets), squeeze=False)[0]
    for ax, b, T in zip(axes, budgets, mats):
        image = ax.imshow(T, cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
        for i in range(len(rows)):
            for j in range(len(caps)):
                text = "-" if np.isnan(T[i, j]) else f"{T[i, j]:.1f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if abs(np.nan_to_num(T[i, j])) > 0.6 * vmax else "black")
        ax.set_xticks(range(len(caps)), caps, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        ax.set(xlabel="change in", title=f"T(B) at {b} tokens")
    axes[0].set_ylabel("distilled alone")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="score change (points)")
    return fig


def _plot_study_curves(study: dict[str, Any]) -> Any:
    """Each capability's own change against the budget spent distilling it alone (0 = base student)."""
    fig = _figure()
    ax = fig.add_subplot()
    colors = _colors(study["capabilities"])
    for cap, curve in study["curves"].items():
        ax.plot(curve["budgets"], curve["own_change"], marker="o", color=colors[cap], label=cap)
        ax.plot(curve["budgets"], curve["others_mean_change"], linestyle=":", color=colors[cap], linewidth=1)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set(xlabel="tokens spent distilling one capability", ylabel="score change (points)",
           title="Returns versus budget (solid: own score; dotted: mean of the others)")
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    return fig
