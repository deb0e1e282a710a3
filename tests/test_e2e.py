"""The default recipe end to end with the real embedded teacher, at a very small budget."""

import json

import pytest


@pytest.mark.e2e
def test_default_recipe_runs_end_to_end(default_run):
    run = default_run
    assert (run / "config.yaml").exists()
    assert list(run.glob("events.out.tfevents.*"))
    ledger = json.loads((run / "ledger.json").read_text())
    assert 0 < ledger["spent"] <= 2400 and ledger["generation"] > 0 and ledger["training"] > 0
    rows = [json.loads(line) for line in (run / "allocations.jsonl").read_text().splitlines()]
    assert [r["event"] for r in rows] == ["select", "observe", "select", "observe"]
    assert sorted(p.name for p in (run / "generated").iterdir()) == ["interval_000.jsonl", "interval_001.jsonl"]

    summary = json.loads((run / "summary.json").read_text())
    probe = summary["probes"]
    assert 0 < probe["fraction_of_wall_clock"] < 1 and len(probe["history"]) == 3  # baseline + 2 intervals
    assert summary["allocation"]["decisions"] == 2
    task = summary["task"]["history"]  # fidelity to the teacher on the dev split
    assert len(task) == 3 and all(0 <= h["utility"] <= 100 and "agreement" in h for h in task)
    assert [r["info"].get("dev_utility") for r in rows if r["event"] == "observe"] == [h["utility"] for h in task[1:]]
    report = (run / "report" / "report.md").read_text()
    assert "Task utility (dev split" in report
    # the headline: the student's greedy test answers before and after, with intervals
    answers = summary["task"]["answers"]
    assert answers["before"]["n"] == answers["after"]["n"] == 6
    assert "## Does the student answer the task?" in report and "agrees with the teacher's answer" in report

    from transformers import AutoModelForCausalLM, AutoTokenizer

    student = AutoModelForCausalLM.from_pretrained(run / "student")
    assert student.config.num_hidden_layers == 24  # similarity:24 of the teacher's 30
    assert AutoTokenizer.from_pretrained(run / "student").eos_token == "<|im_end|>"
