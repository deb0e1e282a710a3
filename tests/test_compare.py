"""``read-train compare``: the table, its arithmetic, resuming, and refusing mixed-up run directories."""

from __future__ import annotations

import csv
import gc
import json
import math
import shutil
from pathlib import Path

import lightning
import pytest
import yaml
from conftest import build_tiny_model

from read_lightning.reporting.compare import _finished, compare_main
from read_lightning.reporting.tables import aggregate, run_metrics, verdict
from read_lightning.training.module import DistillationModule

ROOT = Path(__file__).parent.parent
BUDGET = 1200


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
        if cb["class_path"].endswith("BanditAllocationCallback"):
            cb["init_args"]["requirement"] = {"math": 0.7, "reasoning": 0.3}
        if cb["class_path"].endswith("ModelCheckpoint"):
            cb["init_args"]["save_top_k"] = -1  # keep every interval's checkpoint: the test interrupts a run
    recipe["trainer"]["enable_progress_bar"] = False
    recipe["trainer"]["enable_model_summary"] = False
    recipe["model"].update(student=str(model_dir), teacher=str(model_dir), student_layers=None, lr=1e-2)
    recipe["data"].update(capabilities=["math", "reasoning"], budget_tokens=BUDGET, num_intervals=2,
                          max_new_tokens=12, max_length=96, max_tokens_per_batch=512, generation_batch_size=8)
    path = tmp / "tiny-recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _args(recipe: Path, out: Path, *extra: str) -> list[str]:
    return ["--config", str(recipe), "--allocators", "read,uniform", "--seeds", "2", "--out", str(out),
            "--task-card", "arith_word", "--launcher", "inprocess", "--eval-batch-size", "4", *extra]


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_compare_tables_every_allocator_and_seed_and_resumes(tiny_recipe, tmp_path, capsys, monkeypatch):
    out = tmp_path / "cmp"
    # The checkpoints are kept here only because the test fakes interruptions from them below.
    assert compare_main(_args(tiny_recipe, out, "--keep-checkpoints")) == 0
    captured = capsys.readouterr()
    # In-process runs give their student, optimizer and data back when they end: jsonargparse's
    # context variable would otherwise keep the last run's CLI and everything it built alive.
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, (DistillationModule, lightning.Trainer))]
    root = out / "tiny-recipe"
    rows = _csv(root / "compare.csv")
    runs = [r for r in rows if r["seed"] in ("0", "1")]
    assert [(r["allocator"], r["seed"]) for r in runs] == [("read", "0"), ("read", "1"), ("uniform", "0"), ("uniform", "1")]
    assert [(r["allocator"], r["seed"]) for r in rows[4:]] == [
        ("read", "mean"), ("read", "std"), ("uniform", "mean"), ("uniform", "std")]
    for r in runs:
        assert 0 < float(r["spent_tokens"]) <= BUDGET
        assert 0 <= float(r["task_utility"]) <= 100 and 0 <= float(r["task_agreement"]) <= 100
        assert {"probe/math", "probe/reasoning"} <= set(r)
        # The table's numbers are the run's own: ledger and final probe profile.
        run_dir = root / r["allocator"] / f"seed_{r['seed']}"
        assert float(r["spent_tokens"]) == json.loads((run_dir / "ledger.json").read_text())["spent"]
        final = json.loads((run_dir / "summary.json").read_text())["CapabilityProbeCallback"]["history"][-1]
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
        assert summary["BanditAllocationCallback"]["allocator"] == alloc
    md = (root / "compare.md").read_text()
    assert md in captured.out and "| read | 2 |" in md and "| uniform | 2 |" in md
    assert "best baseline (uniform)" in md
    assert "[4/4] uniform seed 1: training" in captured.err

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
    assert compare_main(_args(tiny_recipe, out, "--no-train")) == 0
    partial = _csv(root / "compare.csv")
    assert [(r["allocator"], r["seed"]) for r in partial if r["seed"] == "0"] == [("read", "0"), ("uniform", "0")]
    assert len(partial) == 2 + 4 and not (interrupted / "summary.json").exists()
    assert "not finished, left out: read seed 1, uniform seed 1" in (root / "compare.md").read_text()
    capsys.readouterr()
    assert compare_main(_args(tiny_recipe, out)) == 0
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
        compare_main(_args(tiny_recipe, out, "--data.budget_tokens", "1500"))
    edited = tmp_path / "edited" / tiny_recipe.name  # same name, so the same comparison directory
    edited.parent.mkdir()
    recipe = yaml.safe_load(tiny_recipe.read_text())
    recipe["model"]["lr"] = 0.5
    edited.write_text(yaml.safe_dump(recipe))
    with pytest.raises(SystemExit, match=r"a different recipe \(it differs at model.lr\)"):
        compare_main(_args(edited, out))
    # Where the comparison lives is not what it measures: the same --out spelled relative to
    # another working directory reuses every finished run.
    monkeypatch.chdir(out.parent)
    capsys.readouterr()
    assert compare_main(_args(tiny_recipe, Path(out.name))) == 0
    assert capsys.readouterr().err.count("finished earlier, reused") == 4


@pytest.mark.parametrize("flag", ["--seed_everything", "--trainer.logger.init_args.save_dir", "--ckpt_path",
                                  "--data.run_dir", "--trainer.callbacks+", "--data"])
def test_overrides_that_compare_owns_are_refused(tiny_recipe, tmp_path, flag):
    # "--data={seed: 5}" set one data seed for every run: the "seeds" trained on the same data
    with pytest.raises(SystemExit, match=rf"{flag.rstrip('+')} cannot be passed through"):
        compare_main(_args(tiny_recipe, tmp_path, f"{flag}={{seed: 5}}" if flag == "--data" else flag, "1"))


def test_a_negative_first_seed_is_refused(tiny_recipe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare_main(_args(tiny_recipe, tmp_path, "--first-seed", "-1"))
    assert "--first-seed must be in [0," in capsys.readouterr().err


def test_a_refused_recipe_value_is_named_before_any_run(tiny_recipe, tmp_path):
    with pytest.raises(SystemExit, match=r"refused: CapabilityDataModule: budget_tokens=10 is too small"):
        compare_main(_args(tiny_recipe, tmp_path, "--data.budget_tokens", "10"))
    assert not list(tmp_path.rglob("summary.json"))


def test_unknown_allocator_is_named(tiny_recipe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare_main(["--config", str(tiny_recipe), "--allocators", "read,bogus", "--out", str(tmp_path)])
    assert "bogus" in capsys.readouterr().err


def test_run_metrics_on_and_off_target(tmp_path):
    s0 = {"general_knowledge": 50.0, "steerability": 40.0, "reasoning": 30.0, "math": 20.0, "code": 60.0}
    s1 = {"general_knowledge": 52.0, "steerability": 40.0, "reasoning": 36.0, "math": 30.0, "code": 55.0}
    r = {"general_knowledge": 0.1, "steerability": 0.1, "reasoning": 0.3, "math": 0.5, "code": 0.0}
    (tmp_path / "summary.json").write_text(json.dumps({
        "wall_clock_seconds": 12.5,
        "CapabilityProbeCallback": {"history": [{"epoch": 0, "profile": s0}, {"epoch": 1, "profile": s1}]},
        "BanditAllocationCallback": {"requirement": r},
    }))
    (tmp_path / "ledger.json").write_text(json.dumps({"spent": 900, "generation": 300, "training": 600}))
    m = run_metrics(tmp_path, k=3)
    assert m["on_target_gain"] == pytest.approx(0.1 * 2 + 0.3 * 6 + 0.5 * 10)
    # C_ess = top-3 of r = math, reasoning, general_knowledge (tie broken by order): off = steerability, code.
    assert m["off_target_change"] == pytest.approx((0.0 - 5.0) / 2)
    assert (m["spent_tokens"], m["wall_seconds"], m["probe/math"]) == (900, 12.5, 30.0)


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


def test_the_default_launcher_trains_in_a_child_process(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["--config", str(tiny_recipe), "--allocators", "uniform", "--seeds", "1", "--out", str(out),
            "--task-card", "arith_word", "--num-threads", "1"]
    assert compare_main(args) == 0
    run_dir = out / "tiny-recipe" / "uniform" / "seed_0"
    assert _finished(run_dir) and "Trainer.fit" in (run_dir / "fit.log").read_text()  # the child's own output
    err = capsys.readouterr().err
    assert "uniform seed 0: 2/2 intervals" in err  # progress read from the child's decision log
    assert len(_csv(out / "tiny-recipe" / "compare.csv")) == 3  # the run, its mean and its std


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
