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
``report.md``             the key numbers, a decisions table, why the mixture moved (the
                          allocator's ``explain``, where it logs one) and the figures
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
from pathlib import Path
from typing import Any

import numpy as np

from read_lightning.core.capabilities import TASK_LABEL
from read_lightning.core.provenance import describe_commits
from read_lightning.core.run_summary import ALLOCATION, PROBES, TASK, summary_part
from read_lightning.reporting.figures import (
    _plot_ledger,
    _plot_mixture,
    _plot_profile,
    _plot_reward,
    _plot_transfer,
)
from read_lightning.reporting.records import (
    _TB_SUFFIX,
    DEFAULT_RIDGE,
    FIGURES,
    TASK_EVAL_FILE,
    RunRecord,
    _transfer,
    load_run,
)

__all__ = ["report_after_fit", "report_main", "write_report"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- Markdown


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rate(rates: dict[str, Any] | None, key: str) -> str:
    if not rates or key not in rates:
        return "-"
    lo, hi = rates.get(f"{key}_ci", (math.nan, math.nan))
    return f"{rates[key]:.1f}% [{lo:.1f}, {hi:.1f}]"


def _answer_lines(answers: dict[str, Any] | None) -> list[str]:
    """The headline: does the student answer the task, before and after, with 95% intervals."""
    from read_lightning.evaluation.task_answers import MAX_DEGENERATE, USEFUL_AGREEMENT

    if not answers or not (answers.get("before") or answers.get("after")):
        return ["## Does the student answer the task?", "",
                "Not measured in this run (a `TaskEvaluationCallback` with `test_answers: true` measures it).", ""]
    before, after = answers.get("before"), answers.get("after")
    n = (after or before or {}).get("n", "?")
    lines = ["## Does the student answer the task?", "",
             f"Greedy answers to the {n} items of the task's {answers.get('split', 'test')} split, scored by the "
             "card's rule (final number, named option, pass@1 verdict, or normalised answer line); "
             "95% Wilson intervals in brackets.", "",
             "| metric | before distillation | after distillation |", "| --- | --- | --- |"]
    for key, label in (("agreement", "agrees with the teacher's answer"), ("accuracy", "correct (gold answers)"),
                       ("degenerate", "degenerate (empty, or one token over half the answer)")):
        if key in (before or {}) or key in (after or {}):
            lines.append(f"| {label} | {_rate(before, key)} | {_rate(after, key)} |")
    lines.append("")
    note = (after or before or {}).get("note")
    if note:
        lines += [f"Note: {note}.", ""]
    verdicts = []
    if before and after:
        for key, label in (("agreement", "agreement with the teacher"), ("accuracy", "accuracy")):
            if key in before and key in after and after[key] < before[key]:
                verdicts.append(f"**The student got worse at the task: {label} fell from {before[key]:.1f}% "
                                f"to {after[key]:.1f}%.**")
    if after and after.get("usable") is False:
        verdicts.append(f"**Below the usefulness level: a usable student agrees with its teacher on at least "
                        f"{USEFUL_AGREEMENT:.0f}% of items with at most {MAX_DEGENERATE:.0f}% degenerate answers; "
                        f"this one agrees on {after.get('agreement', 0.0):.1f}% with "
                        f"{after.get('degenerate', 0.0):.1f}% degenerate.**")
    elif after and after.get("usable"):
        verdicts.append("The student meets the usefulness level (see docs/guide.md).")
    return lines + verdicts + ([""] if verdicts else [])


def _names(per_cap: dict[str, dict[str, Any]], key: str) -> str:
    return ", ".join(c for c, v in per_cap.items() if v.get(key)) or "none"


def _gain_timing_lines(record: RunRecord) -> list[str]:
    """When the run gained: the share of its ``r``-weighted gain made by each point, against the first
    decision the allocator made from evidence. A mixture can only act on the gain still to come: on the
    embedded default 88% of it came in the first three intervals (docs/allocator.md)."""
    gains = [(d.number, d.parts["gain"]) for d in record.observed if isinstance(d.parts.get("gain"), (int, float))]
    total = sum(g for _, g in gains)
    if len(gains) < 2 or total <= 0:
        return []
    done, by = 0.0, {}
    for number, g in gains:
        done += g
        for level in (0.5, 0.9):
            if level not in by and done >= level * total:
                by[level] = number
    line = (f"The r-weighted gain (the gain column) sums to {total:.2f} points over {len(gains)} scored decisions: "
            f"half of it by decision {by.get(0.5, gains[-1][0])}, 90% by decision {by.get(0.9, gains[-1][0])}.")
    warm = [d.number for d in record.decisions if d.explain and str(d.explain.get("rule", "")).startswith("warm-up")]
    after = [d.number for d in record.decisions if d.explain and d.number not in warm]
    if warm and after:
        first = min(after)
        share = sum(g for number, g in gains if number >= first) / total
        line += (f" The first mixture chosen from evidence was decision {first}'s (decisions {min(warm)}-{max(warm)} "
                 f"were the warm-up); the decisions from it on made {100 * share:.0f}% of the gain, which is all a "
                 "change of mixture could act on.")
    return [line, ""]


def _explanation_lines(record: RunRecord) -> list[str]:
    """Why the mixture moved: the allocator's tests at each decision (``read`` logs them as ``explain``)."""
    explained = [d for d in record.decisions if d.explain]
    if not explained:
        return []
    lines = ["## Why the mixture moved", "",
             "Per decision: the rule that set the mixture; the capabilities whose early return is 2 standard "
             "errors above 0 (only those can be judged: the eligibility test); those whose mean change is below 0 "
             "or whose level fell below the best it reached (harmed: then w = r) and those that lost ground since the "
             "start (futile: kept at the floor); those held to the pace their fitted ceiling can use (capped); the "
             "tilt the rule put on r; the mixture chosen as a multiple of r (w / r: the tilts after the freed mass "
             "is placed and the mixture renormalised, so it can differ from the tilt); and the r-weighted gain the "
             "measured recent returns predict for w = r and for the mixture chosen (points per interval).", "",
             "| # | rule | eligible | harmed | futile | capped | tilt (not 1) | w / r (not 1) | predicted gain w = r | "
             "predicted gain chosen |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    r = record.requirement or {}
    for d in explained:
        per_cap = d.explain.get("capabilities") or {}
        tilt = ", ".join(f"{c} x{v['tilt']:.2f}" for c, v in per_cap.items()
                         if isinstance(v.get("tilt"), (int, float)) and abs(v["tilt"] - 1.0) > 1e-9) or "-"
        ratio = ", ".join(f"{c} x{d.mixture.get(c, 0.0) / r[c]:.2f}" for c in r
                          if r[c] > 0 and abs(d.mixture.get(c, 0.0) / r[c] - 1.0) > 0.005) or "-"
        cand = d.explain.get("candidates") or {}
        gain = {k: _fmt((cand.get(k) or {}).get("predicted_gain"), 2) for k in ("w = r", "chosen")}
        lines.append(f"| {d.number} | {d.explain.get('rule', '-')} | {_names(per_cap, 'eligible')} | "
                     f"{_names(per_cap, 'harmed')} | {_names(per_cap, 'futile')} | {_names(per_cap, 'capped')} | "
                     f"{tilt} | {ratio} | "
                     f"{gain['w = r']} | {gain['chosen']} |")
    last = explained[-1]
    per_cap = last.explain.get("capabilities") or {}
    if any("early" in v for v in per_cap.values()):
        chosen = ((last.explain.get("candidates") or {}).get("chosen") or {}).get("predicted_change") or {}
        lines += ["", f"Decision {last.number}, per capability (returns are points per sqrt of the share; "
                  "+- one standard error; optimum share: the mixture the recent returns make best, which the tilt "
                  "lowers no capability below, held where it would have; harmed earlier: its level fell below its "
                  "best at an earlier decision, and it is neither deflated nor capped since):", "",
                  "| capability | early return | recent return | eligible | retained share | mean change | "
                  "below best | harmed | futile | closing rate | ceiling share | optimum share | tilt | predicted change |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for c, v in per_cap.items():
            tilt = v.get("tilt")
            rate = "-" if v.get("closing_rate") is None else \
                f"{v['closing_rate']:+.3f}" + ("" if v.get("closing_rate_se") is None else f" +- {v['closing_rate_se']:.3f}")
            fall = "-" if v.get("fall") is None else \
                f"{v['fall']:.2f}" + ("" if v.get("fall_se") is None else f" (sd {v['fall_se']:.2f})")
            lines.append(f"| {c} | {v['early']:+.2f} +- {v['early_se']:.2f} | {v['recent']:+.2f} +- {v['recent_se']:.2f} "
                         f"| {'yes' if v['eligible'] else 'no'} | {v['retained']:.2f} +- {v['retained_se']:.2f} | "
                         f"{v['harm']:+.2f} +- {v['harm_se']:.2f} | {fall} | "
                         f"{'yes' if v['harmed'] else 'earlier' if v.get('fell_before') else 'no'} | "
                         f"{'yes' if v['futile'] else 'no'} | {rate} | {_fmt(v.get('ceiling_share'), 3)} | "
                         f"{_fmt(v.get('model_share'), 3)}{' (held)' if v.get('held') else ''} | "
                         f"{_fmt(tilt, 2)} | {_fmt(chosen.get(c), 2)} |")
    return lines + [""]


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
        task = (led.get("by_capability") or {}).get(TASK_LABEL)
        if task and led.get("spent"):
            spent = task.get("generation", 0) + task.get("training", 0)
            facts.append(f"of which on the task's own inputs (`data.task_prompts`): {spent} "
                         f"({100 * spent / led['spent']:.0f}%); the allocator's mixture covers the rest")
    elif record.budget:
        facts.append(f"tokens spent (from the decision log): **{int(x[-1])}** of {record.budget}")
    summary = record.summary or {}
    if "wall_clock_seconds" in summary:
        shares = (summary.get("time") or {}).get("share") or {}
        where = ", ".join(f"{name.replace('_', ' ')} {100 * float(v):.0f}%" for name, v in shares.items())
        facts.append(f"wall clock: {summary['wall_clock_seconds']} s" + (f" ({where})" if where else ""))
    code = summary.get("code")
    if isinstance(code, dict) and code.get("commits"):
        facts.append(f"code: {code.get('package', 'read-lightning')}, commit {describe_commits(code['commits'])}")
    probe = summary_part(summary, PROBES)
    if "fraction_of_wall_clock" in probe:
        facts.append(f"probing: {100 * float(probe['fraction_of_wall_clock']):.1f}% of wall clock")
    bandit = summary_part(summary, ALLOCATION)
    if bandit.get("requirement_explanation"):
        facts.append(f"requirement vector: {bandit['requirement_explanation']}")
    lines += [f"- {f}" for f in facts] + [""]
    lines += _answer_lines(summary_part(summary, TASK).get("answers"))

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
                  f"{utility[-1][1]:.1f} at {int(utility[-1][0])} tokens ({len(utility)} checkpoints). With teacher "
                  "references this is a log-likelihood fidelity: a diagnostic that can rise while no answer "
                  "agrees; the answers above are the measure to act on.", ""]
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
    lines += _gain_timing_lines(record)

    lines += _explanation_lines(record)
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
