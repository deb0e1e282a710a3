"""Run reports: figures, the Markdown summary, TensorBoard images, the transfer estimate, bad input."""

import json
import logging

import numpy as np
import pytest

from read_lightning.allocation.bandit import compute_reward
from read_lightning.reporting.records import FIGURES, estimate_transfer, load_run
from read_lightning.reporting.report import report_after_fit, write_report

CAPS = ["math", "reasoning", "code"]
REQ = {"math": 0.6, "reasoning": 0.3, "code": 0.1}
# Known transfer: math training helps reasoning a little and hurts code; code hurts math.
TRUE_T = np.array([[6.0, 1.0, -2.0],
                   [1.5, 4.0, 0.0],
                   [-1.0, 0.5, 5.0]])
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_run(run_dir, n=12, seed=0, cost=1000, noise=0.0, finished=True, utility=False, beta=0.5, lam=1e-5):
    """A run directory in the format BanditAllocationCallback and DistillationModule write, with
    profile changes drawn from TRUE_T: delta = TRUE_T @ w (+ noise)."""
    rng = np.random.default_rng(seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    r = np.array([REQ[c] for c in CAPS])
    s = np.full(len(CAPS), 20.0)
    rows, spent, budget = [], 0, n * cost
    for number in range(1, n + 1):
        w = rng.dirichlet(np.ones(len(CAPS)))
        rows.append({"event": "select", "decision": number, "epoch": number - 1, "remaining": 1 - spent / budget,
                     "profile": dict(zip(CAPS, s.tolist())), "mixture": dict(zip(CAPS, w.tolist())),
                     "info": {"step": number - 1, "allocation": w.tolist(), "mu": 0.0, "sigma": 1.0, "kappa": 1.0}})
        delta = TRUE_T @ w + noise * rng.standard_normal(len(CAPS))
        s = s + delta
        reward, parts = compute_reward(r, delta, cost, [0, 1, 2], beta=beta, lam=lam)
        info = {"reward": reward, **parts}
        if utility:
            info["dev_utility"] = 30.0 + number
        rows.append({"event": "observe", "decision": number, "epoch": number - 1, "cost": cost, "reward": reward,
                     "profile": dict(zip(CAPS, s.tolist())), "info": info})
        spent += cost
    with open(run_dir / "allocations.jsonl", "w") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)
    if finished:
        by_cap = {c: {"generation": 100 * (i + 1), "training": 900 * (i + 1)} for i, c in enumerate(CAPS)}
        ledger = {"budget": budget, "spent": spent, "remaining": budget - spent, "generation": 600,
                  "training": 5400, "by_capability": by_cap}
        (run_dir / "ledger.json").write_text(json.dumps(ledger))
        summary = {"wall_clock_seconds": 12.5, "ledger": ledger,
                   "probes": {"seconds": 1.0, "fraction_of_wall_clock": 0.08, "history": []},
                   "allocation": {"allocator": "read", "decisions": n, "requirement": REQ,
                                  "requirement_explanation": "given in the configuration"},
                   "time": {"seconds": {"generation": 5.0, "probes": 1.0, "training_and_other": 6.5},
                            "share": {"generation": 0.4, "probes": 0.08, "training_and_other": 0.52}},
                   "code": {"package": "read-lightning 0.1.0", "commits": ["aaa", None]}}
        if utility:
            summary["task"] = {"history": [{"epoch": 0, "utility": 30.0}]}
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return s


def test_report_writes_valid_pngs_and_a_markdown_that_names_them(tmp_path):
    from matplotlib.image import imread

    run = tmp_path / "run"
    end = write_run(run, utility=True)
    md = write_report(run, tensorboard=False)
    assert md == run / "report" / "report.md"
    text = md.read_text()
    for name in FIGURES:
        png = run / "report" / f"{name}.png"
        assert png.read_bytes()[:8] == PNG_MAGIC
        pixels = imread(png)
        assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
        # A blank canvas would be a single colour.
        assert pixels.reshape(-1, pixels.shape[-1]).std(axis=0).max() > 0.05
        assert f"![{name}]({name}.png)" in text
    # Key numbers: the start and end profile, tokens, utility, the decisions the estimate rests on.
    assert f"| math | 0.60 | 20.0 | {end[0]:.1f} |" in text
    assert "tokens spent: **12000** of 12000" in text
    assert "wall clock: 12.5 s (generation 40%, probes 8%, training and other 52%)" in text
    assert "code: read-lightning 0.1.0, commit aaa then not a git checkout" in text
    assert "Task utility (dev split, 0-100): 30.0 at 0 tokens, 42.0 at 12000 tokens (13 checkpoints)" in text
    assert "**12 decision(s)**" in text and "ridge 0.1" in text
    assert text.count("\n| 12 | 11000 |") == 1


def test_a_compared_runs_test_score_is_reported(tmp_path):
    # read-train compare scores the student on the test split after fit wrote the report
    write_run(tmp_path, n=3)
    assert "Task utility: not evaluated in this run" in write_report(tmp_path, tensorboard=False).read_text()
    result = {"task_utility": 61.234, "task_agreement": 12.5}
    (tmp_path / "task_eval.json").write_text(json.dumps({"key": {}, "result": result, "details": {}}))
    text = write_report(tmp_path, tensorboard=False).read_text()
    assert "Task utility (test split, scored by `read-train compare`" in text and "61.23" in text
    assert "agreement with the teacher 12.5%" in text and "not evaluated" not in text
    (tmp_path / "task_eval.json").write_text(json.dumps({"result": {"task_utility": "high"}}))
    with pytest.raises(ValueError, match=r"task_eval.json: field 'result' must hold a number 'task_utility'"):
        load_run(tmp_path)


def test_a_summary_keyed_by_class_name_from_an_older_run_reports_the_same(tmp_path):
    # summary.json keyed each part by the callback's class name before it was keyed by role
    write_run(tmp_path, n=3, utility=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["task"]["answers"] = {"split": "test", "before": None,
                                  "after": {"n": 4, "agreement": 50.0, "agreement_ci": [15.0, 85.0]}}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    record, text = load_run(tmp_path), write_report(tmp_path, tensorboard=False).read_text()
    for line in ("probing: 8.0% of wall clock", "requirement vector: given in the configuration",
                 "Task utility (dev split, 0-100): 30.0", "| agrees with the teacher's answer |"):
        assert line in text
    old = {"CapabilityProbeCallback": "probes", "TaskEvaluationCallback": "task", "BanditAllocationCallback": "allocation"}
    (tmp_path / "summary.json").write_text(json.dumps({k: summary.pop(role) for k, role in old.items()} | summary))
    assert not {"probes", "task", "allocation"} & set(json.loads((tmp_path / "summary.json").read_text()))
    old_record = load_run(tmp_path)
    assert write_report(tmp_path, tensorboard=False).read_text() == text
    assert (old_record.requirement, old_record.allocator, old_record.baseline_utility) == \
        (record.requirement, record.allocator, record.baseline_utility)


def test_reward_parts_are_read_back_exactly(tmp_path):
    write_run(tmp_path, n=4, beta=0.5)
    for d in load_run(tmp_path).observed:
        assert d.parts["gain"] - d.parts["spill_term"] - d.parts["cost_penalty"] == pytest.approx(d.reward)
    # Decision spans are contiguous on the token axis.
    assert [d.spent_before for d in load_run(tmp_path).decisions] == [0, 1000, 2000, 3000]


def test_transfer_estimate_recovers_a_known_matrix():
    rng = np.random.default_rng(1)
    W = rng.dirichlet(np.ones(3), size=60)
    costs = rng.uniform(200, 2000, size=60)
    # The profile moves in proportion to the tokens each interval spent.
    D = (W * (costs / costs.mean())[:, None]) @ TRUE_T.T + 0.05 * rng.standard_normal((60, 3))
    T = estimate_transfer(W, D, costs, ridge=1e-3)
    assert np.abs(T - TRUE_T).max() < 0.1
    # Ignoring the costs fits worse: the scaling is doing real work.
    assert np.abs(estimate_transfer(W, D, None, ridge=1e-3) - TRUE_T).max() > 0.3


def test_transfer_estimate_from_a_run_directory(tmp_path):
    write_run(tmp_path, n=40, noise=0.05)
    record = load_run(tmp_path)
    W = np.array([[d.mixture[c] for c in CAPS] for d in record.observed])
    D = np.array([[d.profile_after[c] - d.profile_before[c] for c in CAPS] for d in record.observed])
    assert np.abs(estimate_transfer(W, D, ridge=1e-3) - TRUE_T).max() < 0.3
    text = write_report(tmp_path, tensorboard=False, ridge=1e-3).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| math | +"))
    assert [float(v) for v in row.strip("|").split("|")[1:]] == pytest.approx(TRUE_T[0], abs=0.3)


def test_ridge_pulls_a_never_allocated_capability_to_zero():
    W = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])  # two decisions, code never allocated
    D = np.array([[3.0, 2.0, -1.0], [6.0, 1.0, -2.0]])
    T = estimate_transfer(W, D, ridge=0.1)
    assert np.all(np.isfinite(T)) and np.allclose(T[:, 2], 0.0)
    assert np.isfinite(estimate_transfer(W, D, ridge=0.0)).all()  # minimum-norm solution
    with pytest.raises(ValueError, match="ridge"):
        estimate_transfer(W, D, ridge=-1.0)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        estimate_transfer(W, D[:1])


def test_tensorboard_events_hold_the_report_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    write_run(tmp_path, n=3)
    write_report(tmp_path)
    write_report(tmp_path)  # reporting again replaces its own event file instead of adding one
    files = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(files) == 1 and files[0].name.endswith(".report")
    events = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    events.Reload()
    assert sorted(events.Tags()["images"]) == sorted(f"report/{name}" for name in FIGURES)
    image = events.Images("report/mixture")[-1]
    assert image.step == 3 and image.width > 200 and image.encoded_image_string[:8] == PNG_MAGIC


def test_a_killed_run_reports_what_it_logged(tmp_path):
    write_run(tmp_path, n=3, finished=False)
    with open(tmp_path / "allocations.jsonl", "a") as fh:
        fh.write(json.dumps({"event": "select", "decision": 4, "profile": dict.fromkeys(CAPS, 30.0),
                             "mixture": {"math": 1.0, "reasoning": 0.0, "code": 0.0}}) + "\n")
        fh.write('{"event": "observe", "decision": 4, "cost": 10')  # killed while writing
    text = write_report(tmp_path, tensorboard=False).read_text()
    assert "line 8 was cut off" in text
    assert "decision 4 was chosen but its interval never finished" in text
    assert "`ledger.json` not found" in text and "| 4 | 3000 | math 1.00 | not finished |" in text
    assert all((tmp_path / "report" / f"{name}.png").is_file() for name in FIGURES)


def test_decisions_logged_again_after_a_rollback_are_counted_once(tmp_path):
    # a log that was not truncated (a fixed log_file, or a run from before truncation): a process
    # resumed from the checkpoint after decision 1 logs decisions 2-4 again, and a run started
    # again into the same log logs from decision 1; the token axis counts each interval once
    caps = ["math", "code"]

    def select(n):
        return {"event": "select", "decision": n, "profile": dict.fromkeys(caps, float(n)), "mixture": {"math": 0.5, "code": 0.5}}

    def observe(n, cost, dev=None):
        info = {} if dev is None else {"dev_utility": dev}
        return {"event": "observe", "decision": n, "cost": cost, "reward": 0.0, "profile": dict.fromkeys(caps, n + 1.0),
                "info": info}

    first = [select(1), observe(1, 100), select(2), observe(2, 100, dev=50.0), select(3), observe(3, 100), select(4)]
    for rows, expected in ((first + [observe(2, 120), select(3), observe(3, 100), select(4), observe(4, 100)],
                            [0, 100, 220, 320]),
                           (first + [select(1), observe(1, 100)], [0])):
        (tmp_path / "allocations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        record = load_run(tmp_path)
        assert [d.spent_before for d in record.decisions] == expected
        assert any("logged again" in note for note in record.notes)
    (tmp_path / "allocations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first[:4] + [observe(2, 100)]))
    assert load_run(tmp_path).decisions[1].dev_utility is None  # the later observation replaces the earlier whole


def test_bad_input_is_named(tmp_path, capsys):
    from read_lightning.cli import main

    with pytest.raises(FileNotFoundError, match="run directory not found: .*nowhere"):
        load_run(tmp_path / "nowhere")
    (tmp_path / "runs" / "version_0").mkdir(parents=True)
    write_run(tmp_path / "runs" / "version_0", n=2)
    with pytest.raises(FileNotFoundError, match=r"runs/allocations.jsonl not found.*\['version_0'\]"):
        load_run(tmp_path / "runs")
    path = tmp_path / "runs" / "version_0" / "allocations.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(ValueError, match=r"allocations.jsonl:2: corrupt JSONL row"):
        load_run(path.parent)
    path.write_text(lines[0].replace('"mixture"', '"mix"') + "\n")
    with pytest.raises(ValueError, match=r"allocations.jsonl:1: select row lacks required field 'mixture'"):
        load_run(path.parent)
    path.write_text(lines[0].replace('"math": 20.0', '"math": "high"') + "\n")
    with pytest.raises(ValueError, match=r"allocations.jsonl:1: profile\['math'\] must be a finite number"):
        load_run(path.parent)
    path.write_text(lines[0] + "\n" + lines[1].replace('"code"', '"tool_use"') + "\n")
    with pytest.raises(ValueError, match=r":2: field 'profile' names capabilities .*tool_use.* but the run's are"):
        load_run(path.parent)
    path.write_text(lines[1] + "\n")
    with pytest.raises(ValueError, match=r":1: observe row for decision 1, which was never selected"):
        load_run(path.parent)
    write_run(path.parent, n=2)
    (path.parent / "ledger.json").write_text("{")
    with pytest.raises(ValueError, match=r"version_0/ledger.json: not valid JSON"):
        load_run(path.parent)
    path.write_text(lines[1] + "\n")
    assert main(["report", str(path.parent)]) == 2
    assert f"{path}:1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="ridge must be finite"):
        write_report(path.parent, ridge=float("nan"))


def test_the_cli_writes_the_report(tmp_path, capsys):
    from read_lightning.cli import main

    write_run(tmp_path / "run", n=3)
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "--no-tensorboard"]) == 0
    assert (tmp_path / "out" / "report.md").is_file() and "wrote" in capsys.readouterr().out
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_report_after_fit_never_raises(tmp_path, caplog):
    assert report_after_fit(None) is None and report_after_fit(tmp_path) is None  # nothing to report
    (tmp_path / "allocations.jsonl").write_text("{broken\n")
    with caplog.at_level(logging.WARNING, logger="read_lightning.reporting.report"):
        assert report_after_fit(tmp_path) is None
    assert "allocations.jsonl:1" in caplog.text and "read-train report" in caplog.text


def test_a_real_tiny_run_reports(tiny_tokenizer, tmp_path):
    # The format the callbacks really write, not just this file's imitation of it.
    from test_callbacks import REQ as RUN_REQ
    from test_callbacks import LedgerProbe, run

    from read_lightning.training.callbacks import BanditAllocationCallback

    bandit = BanditAllocationCallback(requirement=RUN_REQ, allocator_kwargs={"warmup": 1})  # refit_steps was read_ucb's
    run(tiny_tokenizer, tmp_path, 3, [LedgerProbe(), bandit])
    run_dir = tmp_path / "lightning_logs" / "version_0"
    record = load_run(run_dir)
    ledger = json.loads((run_dir / "ledger.json").read_text())
    assert len(record.observed) == 3 and record.allocator == "read" and record.requirement == pytest.approx(RUN_REQ)
    # Tokens read from the decision log agree with the ledger.
    last = record.decisions[-1]
    assert last.spent_before + last.cost == ledger["spent"]
    assert not record.notes
    text = write_report(run_dir).read_text()
    assert f"tokens spent: **{ledger['spent']}** of {ledger['budget']}" in text


def test_fit_through_the_cli_ends_with_a_report_and_survives_a_broken_one(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from read_lightning import cli

    run = tmp_path / "run"
    write_run(run, n=2)
    def fake(args=None, run=True):
        return SimpleNamespace(trainer=SimpleNamespace(is_global_zero=True, log_dir=str(run_dir)))

    run_dir = run
    monkeypatch.setattr(cli, "check_config_files", lambda argv: None)
    monkeypatch.setattr(cli, "lightning_main", fake)
    assert cli.main(["fit", "--config", "any.yaml"]) == 0
    assert (run / "report" / "report.md").is_file()
    (run / "allocations.jsonl").write_text("{broken\n")  # the report fails; the fit still succeeds
    assert cli.main(["fit", "--config", "any.yaml"]) == 0
    write_run(run, n=2)
    (run / "report" / "report.md").unlink()
    assert cli.main(["validate", "--config", "any.yaml"]) == 0 and not (run / "report" / "report.md").exists()
