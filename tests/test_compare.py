"""``read-train compare``: the table, its arithmetic, resuming, and refusing mixed-up run directories."""

from __future__ import annotations

import csv
import gc
import json
import math
import re
import shutil
import time
from pathlib import Path

import lightning
import pytest
import yaml
from conftest import build_tiny_model

from read_lightning.reporting.compare import _finished, compare_main, task_eval_key
from read_lightning.reporting.tables import (
    aggregate,
    departure_from_r,
    paired_against_baselines,
    paired_against_best,
    paired_difference_over_seeds,
    run_metrics,
    start_profile,
    t_quantile,
    verdict,
)
from read_lightning.requirement.cards import load_card
from read_lightning.training.module import DistillationModule

ROOT = Path(__file__).parent.parent
BUDGET = 1200
TEST_ROWS = 8


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_recipe(tmp_path_factory, tiny_tokenizer) -> Path:
    """The default recipe on a tiny Llama (teacher = student) saved to disk, two capabilities."""
    tmp = tmp_path_factory.mktemp("compare")
    model_dir = tmp / "tiny"
    build_tiny_model(tiny_tokenizer).save_pretrained(model_dir)
    tiny_tokenizer.save_pretrained(model_dir)
    recipe = yaml.safe_load((ROOT / "recipes" / "smollm2-135m.yaml").read_text())
    for cb in recipe["trainer"]["callbacks"]:
        if cb["class_path"].endswith("CapabilityProbeCallback"):
            cb["init_args"].update(limit=1, reference_max_new_tokens=4, cache_dir=str(tmp / "cache"), batch_size=4)
        if cb["class_path"].endswith("ModelCheckpoint"):
            cb["init_args"]["save_top_k"] = -1  # keep every interval's checkpoint: the test interrupts a run
    recipe["task"]["requirement"] = {"math": 0.7, "reasoning": 0.3}
    recipe["trainer"]["enable_progress_bar"] = False
    recipe["trainer"]["enable_model_summary"] = False
    recipe["model"].update(student=str(model_dir), teacher=str(model_dir), student_layers=None, lr=1e-2)
    recipe["data"].update(capabilities=["math", "reasoning"], budget_tokens=BUDGET, num_intervals=2,
                          max_new_tokens=12, max_length=96, max_tokens_per_batch=512, generation_batch_size=8)
    path = tmp / "tiny-recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture(scope="module")
def arith_card(tmp_path_factory) -> str:
    """The packaged arith_word card with only the first ``TEST_ROWS`` of its 200 test rows, as a
    path for ``--task-card``. Compare answers the whole test split with every student it scores
    (up to 64 greedy tokens an item): on all 200 that was most of these tests' time, and two
    batches of ``--eval-batch-size 4`` run the same code."""
    packaged = load_card("arith_word").path.parent
    card = tmp_path_factory.mktemp("arith_word_card") / "arith_word"
    shutil.copytree(packaged, card, ignore=shutil.ignore_patterns("*.py", "test.jsonl"))
    rows = (packaged / "test.jsonl").read_text().splitlines(keepends=True)
    (card / "test.jsonl").write_text("".join(rows[:TEST_ROWS]))
    return str(card / "card.yaml")


def _args(recipe: Path, card: str, out: Path, *extra: str) -> list[str]:
    return ["--config", str(recipe), "--allocators", "read,uniform", "--seeds", "2", "--out", str(out),
            "--task-card", card, "--launcher", "inprocess", "--eval-batch-size", "4", *extra]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_compare_tables_every_allocator_and_seed_and_resumes(tiny_recipe, arith_card, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    # The checkpoints are kept here only because the test fakes interruptions from them below.
    assert compare_main(_args(tiny_recipe, arith_card, out, "--keep-checkpoints")) == 0
    captured = capsys.readouterr()
    # In-process runs give their student, optimizer and data back when they end: jsonargparse's
    # context variable would otherwise keep the last run's CLI and everything it built alive.
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, (DistillationModule, lightning.Trainer))]
    root = out / "tiny-recipe"
    rows = _csv(root / "compare.csv")
    runs = [r for r in rows if r["seed"] in ("0", "1")]
    n_test = len(load_card(arith_card, ["math", "reasoning"]).rows("test"))
    assert n_test == TEST_ROWS
    assert [(r["allocator"], r["seed"]) for r in runs] == [("read", "0"), ("read", "1"), ("uniform", "0"), ("uniform", "1")]
    assert [(r["allocator"], r["seed"]) for r in rows[4:]] == [
        ("read", "mean"), ("read", "std"), ("uniform", "mean"), ("uniform", "std")]
    for r in runs:
        assert 0 < float(r["spent_tokens"]) <= BUDGET
        assert 0 <= float(r["task_utility"]) <= 100 and 0 <= float(r["task_agreement"]) <= 100
        # The greedy answers are scored too (arith_word has gold), each item's outcome kept for pairing.
        assert all(0 <= float(r[f"answer_{m}"]) <= 100 for m in ("agreement", "accuracy", "degenerate"))
        saved = json.loads((root / r["allocator"] / f"seed_{r['seed']}" / "task_eval.json").read_text())
        assert [it["index"] for it in saved["items"]] == list(range(n_test))
        assert all(isinstance(it["agree"], bool) and isinstance(it["correct"], bool) for it in saved["items"])
        assert float(r["answer_agreement"]) == pytest.approx(100 * sum(it["agree"] for it in saved["items"]) / n_test)
        assert {"probe/math", "probe/reasoning"} <= set(r)
        # The table's numbers are the run's own: ledger and final probe profile.
        run_dir = root / r["allocator"] / f"seed_{r['seed']}"
        assert float(r["spent_tokens"]) == json.loads((run_dir / "ledger.json").read_text())["spent"]
        final = json.loads((run_dir / "summary.json").read_text())["probes"]["history"][-1]
        assert float(r["probe/math"]) == pytest.approx(final["profile"]["math"])
        # The run's report, written by fit before the test score existed, now shows that score.
        report = (run_dir / "report" / "report.md").read_text()
        assert f"(test split, scored by `read-train compare` after training, `task_eval.json`): " \
               f"{float(r['task_utility']):.2f}" in report
    for alloc in ("read", "uniform"):
        seeds = [float(r["task_utility"]) for r in runs if r["allocator"] == alloc]
        mean = next(float(r["task_utility"]) for r in rows if r["allocator"] == alloc and r["seed"] == "mean")
        std = next(float(r["task_utility"]) for r in rows if r["allocator"] == alloc and r["seed"] == "std")
        assert mean == pytest.approx(sum(seeds) / 2)
        assert std == pytest.approx(abs(seeds[0] - seeds[1]) / math.sqrt(2))
    # Seeds are real seeds: the prompts the teacher answered differ.
    gen = [(root / "read" / f"seed_{s}" / "generated" / "interval_000.jsonl").read_text() for s in (0, 1)]
    assert gen[0] != gen[1]
    # Each run used its own allocator.
    for alloc in ("read", "uniform"):
        summary = json.loads((root / alloc / "seed_0" / "summary.json").read_text())
        assert summary["allocation"]["allocator"] == alloc
    md = (root / "compare.md").read_text()
    assert md in captured.out and "| read | 2 |" in md and "| uniform | 2 |" in md
    # Each run records the code it was trained at; the header names it beside the tabulating commit.
    trained = {json.dumps(json.loads((root / a / f"seed_{s}" / "summary.json").read_text())["code"]["commits"])
               for a in ("read", "uniform") for s in (0, 1)}
    assert len(trained) == 1 and re.search(r"- code: trained at .+ \(4 runs\); tabulated at .+ \(the commit when this command started\)", md)
    assert "best baseline (uniform, the highest mean agreement)" in md
    assert "Paired difference against the best baseline, uniform" in md and "| read | " in md.split("Paired")[1]
    assert "[4/4] uniform seed 1: training" in captured.err

    # A task_eval.json written before the answers were scored (its key lacks them) is scored again.
    stale = root / "read" / "seed_0" / "task_eval.json"
    fresh = json.loads(stale.read_text())
    old_key = {k: v for k, v in fresh["key"].items() if k != "answers"}
    stale.write_text(json.dumps({"key": old_key, "result": {"task_utility": -1.0}, "details": {}}))
    assert compare_main(_args(tiny_recipe, arith_card, out, "--no-train")) == 0
    again = json.loads(stale.read_text())
    assert (again["key"], again["result"], again["items"]) == (fresh["key"], fresh["result"], fresh["items"])

    # --reference: another method is the one paired against the rest (read_study against the baselines, say).
    assert compare_main(_args(tiny_recipe, arith_card, out, "--no-train", "--reference", "uniform")) == 0
    md = (root / "compare.md").read_text()
    assert "uniform against each baseline, paired on the seeds both ran" in md and "| read | 0, 1 |" in md
    assert "best baseline (read, the highest mean agreement)" in md and "On agreement, uniform is" in md
    capsys.readouterr()

    # Re-running trains nothing, resumes a run interrupted after its first interval from that
    # interval's checkpoint, and finishes one that died after its last checkpoint but before
    # writing its outputs.
    interrupted, died = root / "uniform" / "seed_1", root / "read" / "seed_1"
    ledger = json.loads((interrupted / "ledger.json").read_text())
    for name in ("summary.json", "ledger.json"):
        (interrupted / name).unlink()
    shutil.rmtree(interrupted / "student")
    first_interval = next((interrupted / "checkpoints").glob("epoch=0-*.ckpt"))
    shutil.copy(first_interval, interrupted / "checkpoints" / "last.ckpt")
    decisions = (interrupted / "allocations.jsonl").read_text().splitlines()
    # What the log held when the first interval's checkpoint was written: select, observe, select.
    (interrupted / "allocations.jsonl").write_text("\n".join(decisions[:3]) + "\n")
    (died / "summary.json").unlink()
    kept = {p: p.stat().st_mtime_ns for p in root.glob("*/seed_0/summary.json")}
    # --no-train tabulates what is finished and touches nothing else.
    assert compare_main(_args(tiny_recipe, arith_card, out, "--no-train")) == 0
    partial = _csv(root / "compare.csv")
    assert [(r["allocator"], r["seed"]) for r in partial if r["seed"] == "0"] == [("read", "0"), ("uniform", "0")]
    assert len(partial) == 2 + 4 and not (interrupted / "summary.json").exists()
    assert "not finished, left out: read seed 1, uniform seed 1" in (root / "compare.md").read_text()
    capsys.readouterr()
    assert compare_main(_args(tiny_recipe, arith_card, out)) == 0
    err = capsys.readouterr().err
    assert err.count("finished earlier, reused") == 2
    assert "uniform seed 1: training" in err and "read seed 1: training" in err
    assert err.count("resuming from last.ckpt") == 2
    # Runs trained now give their checkpoints back once finished; runs reused are left alone.
    assert err.count("removed its checkpoints") == 2
    assert not (interrupted / "checkpoints").exists() and not (died / "checkpoints").exists()
    assert (root / "read" / "seed_0" / "checkpoints" / "last.ckpt").is_file()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert json.loads((interrupted / "ledger.json").read_text()) == ledger  # an exact resume
    assert [json.loads(r)["event"] for r in (interrupted / "allocations.jsonl").read_text().splitlines()] == [
        json.loads(r)["event"] for r in decisions]
    again = _csv(root / "compare.csv")
    assert [r["task_utility"] for r in again[:4]] == [r["task_utility"] for r in runs]
    assert all(_finished(root / a / f"seed_{s}") for a in ("read", "uniform") for s in (0, 1))

    # A run directory made with other overrides, or from another recipe, is refused, not mixed
    # into the table; the refusal says what differs.
    with pytest.raises(SystemExit, match=r"other overrides \(then \[\], now \['--data.budget_tokens', '1500'\]\)"):
        compare_main(_args(tiny_recipe, arith_card, out, "--data.budget_tokens", "1500"))
    edited = tmp_path / "edited" / tiny_recipe.name  # same name, so the same comparison directory
    edited.parent.mkdir()
    recipe = yaml.safe_load(tiny_recipe.read_text())
    recipe["model"]["lr"] = 0.5
    edited.write_text(yaml.safe_dump(recipe))
    with pytest.raises(SystemExit, match=r"a different recipe \(it differs at model.lr\)"):
        compare_main(_args(edited, arith_card, out))
    # Where the comparison lives is not what it measures: the same --out spelled relative to
    # another working directory reuses every finished run.
    monkeypatch.chdir(out.parent)
    capsys.readouterr()
    assert compare_main(_args(tiny_recipe, arith_card, Path(out.name))) == 0
    assert capsys.readouterr().err.count("finished earlier, reused") == 4


@pytest.mark.parametrize("flag", ["--seed_everything", "--trainer.logger.init_args.save_dir", "--ckpt_path",
                                  "--data.run_dir", "--trainer.callbacks+", "--data"])
def test_overrides_that_compare_owns_are_refused(tiny_recipe, arith_card, tmp_path, flag):
    # "--data={seed: 5}" set one data seed for every run: the "seeds" trained on the same data
    with pytest.raises(SystemExit, match=rf"{flag.rstrip('+')} cannot be passed through"):
        compare_main(_args(tiny_recipe, arith_card, tmp_path, f"{flag}={{seed: 5}}" if flag == "--data" else flag, "1"))


def test_a_negative_first_seed_is_refused(tiny_recipe, arith_card, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare_main(_args(tiny_recipe, arith_card, tmp_path, "--first-seed", "-1"))
    assert "--first-seed must be in [0," in capsys.readouterr().err


def test_a_refused_recipe_value_is_named_before_any_run(tiny_recipe, arith_card, tmp_path):
    with pytest.raises(SystemExit, match=r"refused: CapabilityDataModule: budget_tokens=10 is too small"):
        compare_main(_args(tiny_recipe, arith_card, tmp_path, "--data.budget_tokens", "10"))
    assert not list(tmp_path.rglob("summary.json"))


def test_unknown_allocator_is_named(tiny_recipe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare_main(["--config", str(tiny_recipe), "--allocators", "read,bogus", "--out", str(tmp_path)])
    assert "bogus" in capsys.readouterr().err


def test_a_reference_not_compared_is_refused_before_any_run(tiny_recipe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare_main(["--config", str(tiny_recipe), "--allocators", "read,uniform", "--reference", "read_study",
                      "--out", str(tmp_path)])
    assert "--reference 'read_study' is not one of the methods compared (read, uniform)" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_run_metrics_on_and_off_target(tmp_path):
    s0 = {"general_knowledge": 50.0, "steerability": 40.0, "reasoning": 30.0, "math": 20.0, "code": 60.0}
    s1 = {"general_knowledge": 52.0, "steerability": 40.0, "reasoning": 36.0, "math": 30.0, "code": 55.0}
    r = {"general_knowledge": 0.1, "steerability": 0.1, "reasoning": 0.3, "math": 0.5, "code": 0.0}
    (tmp_path / "summary.json").write_text(json.dumps({
        "wall_clock_seconds": 12.5,
        "probes": {"history": [{"epoch": 0, "profile": s0}, {"epoch": 1, "profile": s1}]},
        "allocation": {"requirement": r},
    }))
    (tmp_path / "ledger.json").write_text(json.dumps({"spent": 900, "generation": 300, "training": 600}))
    m = run_metrics(tmp_path, k=3)
    assert m["on_target_gain"] == pytest.approx(0.1 * 2 + 0.3 * 6 + 0.5 * 10)
    # C_ess = top-3 of r = math, reasoning, general_knowledge (tie broken by order): off = steerability, code.
    assert m["off_target_change"] == pytest.approx((0.0 - 5.0) / 2)
    assert (m["spent_tokens"], m["wall_seconds"], m["probe/math"]) == (900, 12.5, 30.0)


def test_run_metrics_reads_a_summary_keyed_by_class_name_from_an_older_run(tmp_path):
    s0, s1 = {"math": 20.0, "code": 60.0}, {"math": 30.0, "code": 55.0}
    parts = {"history": [{"epoch": 0, "profile": s0}, {"epoch": 1, "profile": s1}]}, {"requirement": {"math": 1.0, "code": 0.0}}
    (tmp_path / "ledger.json").write_text(json.dumps({"spent": 900, "generation": 300, "training": 600}))
    metrics, starts = [], []
    for keys in (("probes", "allocation"), ("CapabilityProbeCallback", "BanditAllocationCallback")):
        (tmp_path / "summary.json").write_text(json.dumps({"wall_clock_seconds": 1.0, **dict(zip(keys, parts))}))
        metrics.append(run_metrics(tmp_path, k=1))
        starts.append(start_profile(tmp_path))
    assert metrics[0] == metrics[1] and metrics[0]["on_target_gain"] == pytest.approx(10.0)
    assert starts[0] == starts[1] == {"capability_mean": 40.0, "probe/math": 20.0, "probe/code": 60.0}


def test_run_metrics_names_the_file_and_the_missing_field(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"wall_clock_seconds": 1.0}))
    with pytest.raises(FileNotFoundError, match="ledger.json"):
        run_metrics(tmp_path)
    (tmp_path / "ledger.json").write_text(json.dumps({"spent": 900}))
    with pytest.raises(ValueError, match=r"ledger\.json: the document lacks required field\(s\) \['generation', 'training'\]"):
        run_metrics(tmp_path)
    (tmp_path / "summary.json").write_text('{"wall_clock_seconds": 1.0')  # cut off mid-write
    with pytest.raises(ValueError, match=r"summary\.json: not valid JSON"):
        run_metrics(tmp_path)


def test_verdict_weighs_the_difference_against_the_seed_spread():
    rows = [{"allocator": "read", "seed": 0, "task_utility": 50.0}, {"allocator": "read", "seed": 1, "task_utility": 52.0},
            {"allocator": "uniform", "seed": 0, "task_utility": 49.0}, {"allocator": "uniform", "seed": 1, "task_utility": 51.0},
            {"allocator": "single", "seed": 0, "task_utility": 10.0}, {"allocator": "single", "seed": 1, "task_utility": 12.0}]
    stats = aggregate(rows)
    assert stats["read"]["task_utility"] == pytest.approx((51.0, math.sqrt(2)))
    text = verdict(stats)
    assert "matches or beats the best baseline (uniform)" in text and "+1.00" in text and "within" in text
    worse = aggregate([{**r, "task_utility": r["task_utility"] - 10} if r["allocator"] == "read" else r for r in rows])
    assert "is below" in verdict(worse) and "larger than" in verdict(worse)


def test_the_default_launcher_trains_in_child_processes_side_by_side_with_jobs(tiny_recipe, arith_card, tmp_path,
                                                                                capsys, monkeypatch):
    from read_lightning.reporting import compare

    spans, real = {}, compare._run_subprocess

    def timed(spec, args, env, say, stop=None):
        start = time.perf_counter()
        real(spec, args, env, say, stop)
        spans[spec.label] = (start, time.perf_counter(), env["OMP_NUM_THREADS"])

    monkeypatch.setattr(compare, "_run_subprocess", timed)
    monkeypatch.setattr(compare.os, "cpu_count", lambda: 2)
    out = tmp_path / "cmp"
    args = ["--config", str(tiny_recipe), "--allocators", "uniform", "--seeds", "2", "--out", str(out),
            "--task-card", arith_card, "--jobs", "2"]
    assert compare_main(args) == 0
    run_dir = out / "tiny-recipe" / "uniform" / "seed_0"
    assert _finished(run_dir) and "Trainer.fit" in (run_dir / "fit.log").read_text()  # the child's own output
    (a0, a1, threads), (b0, b1, _) = spans["uniform seed 0"], spans["uniform seed 1"]
    assert a0 < b1 and b0 < a1 and threads == "1"  # at once, each with the CPUs over the jobs
    err = capsys.readouterr().err
    assert "uniform seed 0: 2/2 intervals" in err  # progress read from the child's decision log
    assert "compare: training 2 runs, 2 at a time" in err and "finished earlier" not in err
    assert len(_csv(out / "tiny-recipe" / "compare.csv")) == 4  # the two runs, their mean and their std
    assert compare_main(args) == 0 and "finished earlier, reused" in capsys.readouterr().err  # resumes as before


def test_the_first_failure_stops_the_runs_at_once_and_is_raised():
    import threading

    from read_lightning.reporting.compare import _train_at_once

    started, stopped = [], []

    def train(position, spec, fit_args, stop):
        started.append(spec)
        if spec == "bad":
            time.sleep(0.2)
            raise SystemExit("read-train compare: bad failed")
        stopped.append(stop.wait(30))  # a long run, stopped by the failure beside it

    with pytest.raises(SystemExit, match="bad failed"):
        _train_at_once([("[1/3]", "bad", []), ("[2/3]", "long", []), ("[3/3]", "queued", [])], 2, train)
    assert started == ["bad", "long"] and stopped == [True]  # the third never started
    assert not any(t.name.startswith("compare-run") for t in threading.enumerate())


@pytest.mark.parametrize("extra, message", [(["--jobs", "0"], "--jobs must be >= 1"),
                                            (["--jobs", "2", "--launcher", "inprocess"], "needs --launcher subprocess")])
def test_bad_jobs_are_refused(tiny_recipe, arith_card, tmp_path, capsys, extra, message):
    args = ["--config", str(tiny_recipe), "--out", str(tmp_path), "--task-card", arith_card, *extra]
    with pytest.raises(SystemExit):
        compare_main(args)
    assert message in capsys.readouterr().err


def test_each_run_keeps_only_the_options_its_allocator_takes(tmp_path):
    from read_lightning.reporting.recipes import RunSpec, derive_recipe

    recipe = yaml.safe_load((ROOT / "recipes" / "smollm2-135m.yaml").read_text())
    bandit = next(cb for cb in recipe["trainer"]["callbacks"] if cb["class_path"].endswith("BanditAllocationCallback"))
    bandit["init_args"]["allocator_kwargs"] = {"warmup": 2, "kappa": 2.0, "beta": 0.7}

    def derived(allocator, seed=3):
        doc = derive_recipe(recipe, RunSpec(allocator, seed, tmp_path / allocator / f"seed_{seed}"), tmp_path)
        cb = next(c for c in doc["trainer"]["callbacks"] if c["class_path"].endswith("BanditAllocationCallback"))
        return doc, cb["init_args"]

    doc, init = derived("read")
    assert init["allocator"] == "read" and init["seed"] == 3 and init["allocator_kwargs"] == {"warmup": 2, "kappa": 2.0, "beta": 0.7}
    assert doc["seed_everything"] == 3 and doc["data"]["seed"] == 3
    assert doc["trainer"]["logger"]["init_args"] == {"save_dir": str(tmp_path), "name": "read", "version": "seed_3"}
    assert derived("uniform")[1]["allocator_kwargs"] == {"beta": 0.7}  # a static mixture has no warm-up
    assert derived("greedy")[1]["allocator_kwargs"] == {"warmup": 2, "beta": 0.7}  # greedy is kappa = 0
    assert bandit["init_args"]["allocator"] == "read"  # the recipe itself is left alone

    # a typo the recipe's own allocator does not take either is refused, as fit refuses it, not dropped
    bandit["init_args"]["allocator_kwargs"] = {"warmup": 2, "kapa": 4.0}
    with pytest.raises(ValueError, match=r"allocator_kwargs \['kapa'\] are not options of the recipe's allocator 'read'"):
        derived("uniform")


@pytest.mark.parametrize("pin", ["log_file", "dirpath", "run_dir"])
def test_a_path_every_run_would_share_is_refused(tmp_path, pin):
    from read_lightning.reporting.recipes import RunSpec, derive_recipe

    recipe = yaml.safe_load((ROOT / "recipes" / "smollm2-135m.yaml").read_text())
    callbacks = recipe["trainer"]["callbacks"]
    if pin == "log_file":
        next(cb for cb in callbacks if cb["class_path"].endswith("BanditAllocationCallback"))["init_args"]["log_file"] = "a.jsonl"
    elif pin == "dirpath":
        callbacks.append({"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"dirpath": "ckpt"}})
    else:
        recipe["data"]["run_dir"] = "runs/shared"
    with pytest.raises(ValueError, match=rf"{pin} would be shared by every run"):
        derive_recipe(recipe, RunSpec("read", 0, tmp_path / "read" / "seed_0"), tmp_path)


def test_the_task_card_is_found_from_the_requirement_vector_or_asked_for():
    from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
    from read_lightning.reporting.compare import _card_for_requirement

    card, reason = _card_for_requirement(
        {"math": 0.5, "reasoning": 0.3, "steerability": 0.1, "general_knowledge": 0.1}, DEFAULT_CAPABILITIES)
    assert card.name == "arith_word" and "requirement vector" in reason
    with pytest.raises(SystemExit, match="--task-card"):
        _card_for_requirement({"math": 0.6, "reasoning": 0.4}, DEFAULT_CAPABILITIES)


# --------------------------------------------------------------------------- paired answers


def _items(agree: list[int], correct: list[int] | None = None) -> list[dict]:
    correct = correct if correct is not None else [None] * len(agree)
    return [{"index": i, "agree": bool(a), "correct": None if c is None else bool(c), "degenerate": False}
            for i, (a, c) in enumerate(zip(agree, correct))]


def _fake_run(run_dir: Path, items: list[dict], key: dict) -> None:
    """A finished run as compare reads it back, its test answers scored already (``task_eval.json``)."""
    (run_dir / "student").mkdir(parents=True)
    (run_dir / "student" / "config.json").write_text("{}")
    profile = {"math": 10.0, "reasoning": 20.0}
    (run_dir / "summary.json").write_text(json.dumps({
        "wall_clock_seconds": 1.0,
        "probes": {"history": [{"epoch": 0, "profile": profile}, {"epoch": 1, "profile": profile}]},
        "allocation": {"requirement": {"math": 0.7, "reasoning": 0.3}},
    }))
    (run_dir / "ledger.json").write_text(json.dumps({"spent": 900, "generation": 300, "training": 600, "budget": BUDGET}))
    rate = {name: 100.0 * sum(bool(it[k]) for it in items) / len(items)
            for k, name in (("agree", "agreement"), ("correct", "accuracy"), ("degenerate", "degenerate"))}
    result = {"task_utility": 50.0, "task_agreement": 0.0, **{f"answer_{n}": v for n, v in rate.items()}}
    (run_dir / "task_eval.json").write_text(json.dumps({"key": key, "result": result, "items": items}))


def test_the_paired_difference_comes_from_the_per_item_outcomes(tiny_recipe, arith_card, tmp_path, capsys):
    root = tmp_path / "cmp" / "tiny-recipe"
    key = task_eval_key(load_card(arith_card, ["math", "reasoning"]), "teacher_fidelity")
    runs = {  # (agree, correct) per item, per allocator and seed
        ("read", 0): ([1, 1, 1, 0], [1, 1, 1, 1]), ("read", 1): ([1, 1, 0, 0], [1, 1, 1, 1]),
        ("uniform", 0): ([1, 0, 0, 0], [0, 0, 0, 0]), ("uniform", 1): ([1, 1, 0, 1], [0, 0, 0, 0]),
        ("single", 0): ([0, 0, 0, 0], [1, 0, 0, 0]), ("single", 1): ([0, 0, 0, 0], [1, 0, 0, 0]),
    }
    for (alloc, seed), (agree, correct) in runs.items():
        _fake_run(root / alloc / f"seed_{seed}", _items(agree, correct), key)
    args = ["--config", str(tiny_recipe), "--allocators", "read,uniform,single", "--seeds", "2",
            "--out", str(tmp_path / "cmp"), "--task-card", arith_card, "--no-train", "--eval-batch-size", "4"]
    assert compare_main(args) == 0
    out = capsys.readouterr().out
    md = (root / "compare.md").read_text()
    assert md in out
    # The per-run rows carry the answer metrics; the table shows them first, mean ± std over seeds.
    rows = _csv(root / "compare.csv")
    assert [float(r["answer_agreement"]) for r in rows[:2]] == [75.0, 50.0]
    assert "| allocator | seeds | agreement % | accuracy % | degenerate % | task utility |" in md
    assert f"| read | 2 | 62.5 ± {12.5 * math.sqrt(2):.1f} | 100.0 ± 0.0 | 0.0 ± 0.0 |" in md
    # uniform has the highest mean agreement among the baselines (50 against 0), so it is the best.
    assert "best baseline, uniform (the highest mean agreement)" in md
    # read - uniform, agreement: per-seed differences +50 (seed 0) and -25 (seed 1) points; their mean,
    # with Student's t (df 1) across the two seeds (+-476), wider than the interval over the 4 items, and
    # clipped to the possible [-100, 100].
    assert "| read | +12.5 [-100.0, +100.0] | +100.0 [+100.0, +100.0] | 2 | 4 |" in md
    # single - uniform, agreement: -25 and -75 points a seed, mean -50. Accuracy: +100 for item 0, 0
    # otherwise, in both seeds: the seeds agree exactly, so the interval is the normal one over the
    # items (+25 +- 1.96 * 0.5 / 2 = 49.0).
    assert "| single | -50.0 [-100.0, +100.0] | +25.0 [-24.0, +74.0] | 2 | 4 |" in md
    # The verdict follows the interval: +12.5 with an interval containing 0 is no result; +100 is.
    assert ("On agreement, read is not distinguishable from the best baseline (uniform, the highest mean "
            "agreement): +12.5 points (95% CI -100.0 to +100.0, paired over 4 items x 2 seed(s)).") in md
    assert "On accuracy, read is above the best baseline (uniform, the highest mean agreement) by +100.0 points" in md
    # read against each baseline, not only the best: against single, agreement +75 and +50 a seed.
    assert "read against each baseline, paired on the seeds both ran" in md
    assert "| uniform | 0, 1 | +12.5 [-100.0, +100.0] | +100.0 [+100.0, +100.0] | +0.00 [+0.00, +0.00] | 0: +0.00, 1: +0.00 |" in md
    assert "| single | 0, 1 | +62.5 [" in md


def test_paired_difference_intervals_for_one_seed_and_for_identical_seeds():
    ours = {0: _items([1] * 15 + [1] * 5)}
    base = {0: _items([0] * 15 + [1] * 5)}
    one = paired_difference_over_seeds(ours, base, "agree")
    # One seed: the normal interval of the 20 item differences (15 ones, 5 zeros).
    sd = math.sqrt(0.75 * 0.25 * 20 / 19)
    assert one["diff"] == pytest.approx(75.0) and (one["seeds"], one["items"]) == (1, 20)
    half = 100 * 1.959964 * sd / math.sqrt(20)
    assert (one["lo"], one["hi"]) == pytest.approx((75 - half, 75 + half))
    # Two seeds with the same outcomes: no spread across seeds, so the interval is the one over items.
    two = paired_difference_over_seeds({**ours, 1: ours[0]}, {**base, 1: base[0]}, "agree")
    assert (two["diff"], two["lo"], two["hi"]) == pytest.approx((one["diff"], one["lo"], one["hi"]))
    # Two seeds that differ a little: Student's t (df 1) across the per-seed differences, 20/40 and 21/40
    # items, is wider here than the normal interval over the items.
    ours40, base40 = {0: _items([1] * 20 + [0] * 20), 1: _items([1] * 21 + [0] * 19)}, {0: _items([0] * 40), 1: _items([0] * 40)}
    t = paired_difference_over_seeds(ours40, base40, "agree")
    half = 100 * t_quantile(1) * (0.025 / math.sqrt(2)) / math.sqrt(2)
    assert (t["diff"], t["lo"], t["hi"]) == pytest.approx((51.25, 51.25 - half, 51.25 + half))
    assert t_quantile(1) == pytest.approx(12.7062) and t_quantile(60) == pytest.approx(2.0003, abs=1e-3)
    # A seed run by one allocator only pairs with nothing; no gold means no accuracy difference.
    assert paired_difference_over_seeds({**ours, 7: ours[0]}, base, "agree") == one
    assert paired_difference_over_seeds(ours, base, "correct") is None


def test_a_paired_interval_containing_zero_is_not_distinguishable():
    rows = [{"allocator": a, "seed": s, "task_utility": 50.0, "answer_agreement": v}
            for a, s, v in (("read", 0, 50.0), ("uniform", 0, 40.0), ("greedy", 0, 45.0))]
    stats = aggregate(rows)
    ours, base = {0: _items([1, 0, 1, 0])}, {0: _items([0, 1, 1, 0])}
    paired = paired_against_best({"read": ours, "uniform": base, "greedy": base}, stats)
    assert paired["best"] == "greedy" and set(paired["rows"]) == {"read", "uniform"}
    text = verdict(stats, paired=paired)
    assert text.startswith("On agreement, read is not distinguishable from the best baseline (greedy, the highest "
                           "mean agreement): +0.0 points")
    clear = paired_against_best({"read": {0: _items([1] * 20)}, "greedy": {0: _items([0] * 20)}}, stats)
    assert "read is below" not in verdict(stats, paired=clear)
    assert "On agreement, read is above the best baseline (greedy" in verdict(stats, paired=clear)


def test_read_is_paired_against_every_baseline_on_the_seeds_both_ran():
    rows = [{"allocator": a, "seed": s, "task_utility": u, "on_target_gain": 1.0}
            for a, s, u in (("read", 0, 52.0), ("read", 1, 49.0), ("read", 2, 51.0),
                            ("task_static", 0, 50.0), ("task_static", 1, 50.0), ("task_static", 2, 50.0),
                            ("greedy", 1, 47.0), ("greedy", 5, 10.0))]
    outcomes = {"read": {0: _items([1, 1]), 1: _items([1, 0])}, "task_static": {0: _items([0, 1]), 1: _items([1, 0])}}
    got = paired_against_baselines(outcomes, rows)
    assert list(got) == ["task_static", "greedy"]
    static = got["task_static"]
    assert static["seeds"] == [0, 1, 2] and static["task_utility_by_seed"] == {0: 2.0, 1: -1.0, 2: 1.0}
    # Mean of +2, -1, +1 with Student's t (df 2) across the three seeds.
    sd = math.sqrt(((2 - 2 / 3) ** 2 + (-1 - 2 / 3) ** 2 + (1 - 2 / 3) ** 2) / 2)
    half = t_quantile(2) * sd / math.sqrt(3)
    u = static["task_utility"]
    assert (u["diff"], u["lo"], u["hi"], u["seeds"]) == pytest.approx((2 / 3, 2 / 3 - half, 2 / 3 + half, 3))
    assert static["on_target_gain"]["diff"] == 0.0
    # Answers pair on the seeds both scored: +50 points on seed 0, 0 on seed 1.
    assert static["agreement"]["diff"] == pytest.approx(25.0) and static["agreement"]["seeds"] == 2
    # greedy ran seed 1 with read (seed 5 pairs with nothing): one difference, its interval is itself.
    assert got["greedy"]["seeds"] == [1] and got["greedy"]["task_utility"]["diff"] == 2.0
    assert "agreement" not in got["greedy"]
    assert paired_against_baselines(outcomes, [r for r in rows if r["allocator"] != "read"]) == {}


def test_task_eval_key_follows_the_card_content_not_its_path(tmp_path):
    packaged = load_card("arith_word", ["math", "reasoning"])
    copies = []
    for where in ("a", "b"):
        shutil.copytree(packaged.path.parent, tmp_path / where)
        copies.append(load_card(str(tmp_path / where / "card.yaml"), ["math", "reasoning"]))
    key = task_eval_key(packaged, "teacher_fidelity")
    # A checkout moved elsewhere reuses its runs' scores.
    assert task_eval_key(copies[0], "teacher_fidelity") == task_eval_key(copies[1], "teacher_fidelity") == key
    assert task_eval_key(packaged, "card") != key
    # A test split edited in place is scored again; an edited dev split changes nothing scored on test.
    dev = copies[0].dev
    dev.write_text(dev.read_text() + dev.read_text().splitlines()[0] + "\n")
    assert task_eval_key(load_card(str(copies[0].path), ["math", "reasoning"]), "teacher_fidelity") == key
    test = copies[1].test
    test.write_text("".join(test.read_text().splitlines(keepends=True)[:-1]))
    assert task_eval_key(load_card(str(copies[1].path), ["math", "reasoning"]), "teacher_fidelity") != key


def test_departure_from_r_says_whether_an_allocator_moved_off_the_requirement(tmp_path):
    path = tmp_path / "allocations.jsonl"
    r = {"math": 3.0, "code": 1.0}  # normalised: 0.75, 0.25
    rows = [{"event": "select", "decision": 1, "mixture": {"math": 0.75, "code": 0.25}},
            {"event": "observe", "decision": 1, "mixture": {"math": 0.0, "code": 1.0}},
            {"event": "select", "decision": 2, "mixture": {"math": 0.55, "code": 0.45}},
            {"event": "select", "decision": 3, "mixture": {"math": 0.748, "code": 0.25, "reasoning": 0.002}}]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    got = departure_from_r(path, r)
    # Total variation 0, 0.2 and 0.002 (within OFF_R: rounding, r played); the observe row is not a choice.
    assert got["departure_from_r"] == pytest.approx(0.202 / 3)
    assert got["decisions_off_r"] == 1.0
    assert departure_from_r(tmp_path / "none.jsonl", r) == {}
    # A run without the column is left out of its mean, not an error.
    stats = aggregate([{"allocator": "read", "seed": 0, "task_utility": 1.0},
                       {"allocator": "read", "seed": 1, "task_utility": 3.0, **got}])
    assert stats["read"]["task_utility"] == (2.0, pytest.approx(math.sqrt(2)))
    assert stats["read"]["decisions_off_r"][0] == 1.0
