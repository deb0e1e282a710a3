"""Errors in one screen, as a user meets them: ``read-train fit`` run as a command.

Everything that can be checked without a model is refused before any model loads, in a few
lines (what is wrong, the bad value, what is accepted), and leaves no run directory behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from read_lightning.cli import main, remove_failed_start

ROOT = Path(__file__).parent.parent
RECIPE = ROOT / "recipes" / "smollm2-135m.yaml"
# An error in the command line or a config key comes before Lightning is imported (#22: < 5 s;
# 0.1 s on an idle 2-core machine).
FAST_SECONDS = 5
HEAVY = ("torch", "lightning", "transformers", "jsonargparse")


def _recipe(tmp_path: Path, edit=None, name: str = "recipe.yaml") -> Path:
    doc = yaml.safe_load(RECIPE.read_text())
    if edit is not None:
        edit(doc)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _read_train(cwd: Path, *args: str, program: str | None = None,
                cache: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """``read-train args`` run in ``cwd`` (or the Python ``program`` given them as its arguments),
    and its wall time in seconds. ``cache``: the model cache it gets (``READ_LIGHTNING_CACHE``):
    loading any model, the embedded one included, writes there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if cache is not None:
        env["READ_LIGHTNING_CACHE"] = str(cache)
    env.pop("READ_TRAIN_TRACEBACK", None)
    command = ["-m", "read_lightning.cli"] if program is None else ["-c", program]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *command, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    return done, time.perf_counter() - start


def _bandit(doc: dict) -> dict:
    return next(c for c in doc["trainer"]["callbacks"] if c["class_path"].endswith("BanditAllocationCallback"))


def test_a_config_key_typo_is_a_few_lines_naming_the_key_and_the_nearest_one(tmp_path):
    recipe = _recipe(tmp_path, lambda d: d["data"].update(budget_tokenz=d["data"].pop("budget_tokens")))
    before = sorted(os.listdir(tmp_path))
    done, seconds = _read_train(tmp_path, "fit", "--config", recipe.name)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) < 15, done.stderr
    assert "'data.budget_tokenz'" in lines[0] and "recipe.yaml" in lines[0]
    assert "did you mean 'data.budget_tokens'?" in done.stderr
    assert "usage:" not in done.stderr and "Traceback" not in done.stderr
    assert sorted(os.listdir(tmp_path)) == before  # no runs/ and no version_N
    assert seconds < FAST_SECONDS


def _without_callback(name: str):
    def edit(doc):
        doc["trainer"]["callbacks"] = [c for c in doc["trainer"]["callbacks"] if not c["class_path"].endswith(name)]

    return edit


@pytest.mark.parametrize(
    "edit, args, code, expected",
    [
        (lambda d: d["trainer"].update(max_epoch=3), [], 2, ["'trainer.max_epoch'", "did you mean 'trainer.max_epochs'?"]),
        (None, ["--data.budget_token", "5"], 2, ["'--data.budget_token'", "did you mean '--data.budget_tokens'?"]),
        (lambda d: d["trainer"]["callbacks"][2]["init_args"].update(alocator="read"), [], 2,
         ["BanditAllocationCallback does not accept 'alocator'", "did you mean 'allocator'?"]),
        (None, ["--config", "no-such-recipe.yaml"], 1, ["config file 'no-such-recipe.yaml' does not exist"]),
    ],
    ids=["yaml-key", "override", "callback-arg", "missing-config"],
)
def test_a_command_line_error_comes_before_lightning_is_imported(tmp_path, edit, args, code, expected):
    # read-train itself, then the heavy packages it had imported by the time it exited
    program = ("import sys\nfrom read_lightning.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
               f"    print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))")
    done, seconds = _read_train(tmp_path, "fit", "--config", _recipe(tmp_path, edit).name, *args, program=program)
    assert done.returncode == code, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) < 15 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == "[]", done.stdout  # no torch, Lightning, transformers or jsonargparse
    assert not (tmp_path / "runs").exists()
    assert seconds < FAST_SECONDS


def test_an_unknown_command_names_the_nearest_one(capsys):
    code, err = _refusal(["fti", "--config", str(RECIPE)], capsys)
    assert code == 2
    assert err.splitlines()[0] == "read-train: unknown command 'fti'", err
    assert "did you mean 'fit'?" in err and "read-train accepts: fit, " in err
    assert len(err.strip().splitlines()) < 5


def test_an_unknown_capability_is_refused_before_any_model_loads_and_leaves_no_run(tmp_path):
    def typo(doc):
        req = doc["task"]["requirement"]
        req["long_contxt"] = req.pop("long_context")

    recipe = _recipe(tmp_path, typo)
    done, _ = _read_train(tmp_path, "fit", "--config", recipe.name, cache=tmp_path / "cache")
    assert done.returncode == 1, done.stderr
    assert "unknown capability 'long_contxt' in the requirement vector" in done.stderr
    assert "did you mean 'long_context'?" in done.stderr
    assert len(done.stderr.strip().splitlines()) < 15, done.stderr
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "cache").exists()  # no model was loaded (the embedded one would be converted there)


def _without_task_section(doc: dict) -> None:
    """The recipe in its form before the task: section: each place names the task itself."""
    task = doc.pop("task")
    for cb in doc["trainer"]["callbacks"]:
        if cb["class_path"].endswith("TaskEvaluationCallback"):
            cb["init_args"]["task_card"] = task["card"]
    _bandit(doc)["init_args"]["requirement"] = task["requirement"]
    doc["data"]["task_prompts"] = task["card"]


def test_training_on_one_tasks_inputs_while_evaluating_another_is_refused(tmp_path):
    recipe = _recipe(tmp_path, _without_task_section)
    done, _ = _read_train(tmp_path, "fit", "--config", recipe.name, "--data.task_prompts", "arith_word",
                          cache=tmp_path / "cache")
    assert done.returncode == 1, done.stderr
    assert ("data.task_prompts trains on the inputs of task card 'arith_word', but TaskEvaluationCallback "
            "uses task card 'fact_extract'") in done.stderr
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "cache").exists()  # no model was loaded


def test_a_place_that_names_another_task_than_the_task_section_is_one_line(tmp_path):
    recipe = _recipe(tmp_path)
    done, _ = _read_train(tmp_path, "fit", "--config", recipe.name, "--data.task_prompts", "arith_word",
                          cache=tmp_path / "cache")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == ("read-train: task.card is 'fact_extract' but data.task_prompts is 'arith_word'; "
                                   "name the task once, in task.card"), done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2, done.stderr  # "Seed set to 0" and the refusal
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "cache").exists()  # no model was loaded


def test_a_missing_ckpt_path_is_two_lines_and_leaves_no_run(tmp_path):
    recipe = _recipe(tmp_path)
    done, _ = _read_train(tmp_path, "fit", "--config", recipe.name, "--ckpt_path", "runs/nope/last.ckpt")
    assert done.returncode == 2, done.stderr
    assert "--ckpt_path 'runs/nope/last.ckpt' does not exist" in done.stderr
    assert len(done.stderr.strip().splitlines()) < 6 and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def _refusal(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), err + ("" if isinstance(code, int) else str(code))


@pytest.mark.parametrize(
    "edit, override, expected",
    [
        (None, ["--model.lrr", "1e-4"], ["'--model.lrr'", "did you mean '--model.lr'?", "'model' accepts:"]),
        (lambda d: d.update(trainr=d.pop("trainer")), [], ["'trainr'", "did you mean 'trainer'?"]),
        (lambda d: d["model"].update(budget_tokens=100), [], ["'model.budget_tokens'", "'data.budget_tokens'"]),
        (lambda d: d["trainer"]["callbacks"][0]["init_args"].update(limitt=2), [],
         ["CapabilityProbeCallback does not accept 'limitt'", "did you mean 'limit'?"]),
        (lambda d: d["trainer"]["logger"]["init_args"].update(nme="x"), [],
         ["TensorBoardLogger does not accept 'nme'", "did you mean 'name'?"]),
        (lambda d: d["data"].update(budget_tokens="abc"), [], ["data.budget_tokens", "abc"]),
    ],
    ids=["override", "section", "wrong-section", "callback-arg", "logger-arg", "bad-type"],
)
def test_each_parse_error_is_a_few_lines(tmp_path, monkeypatch, capsys, edit, override, expected):
    monkeypatch.chdir(tmp_path)
    recipe = _recipe(tmp_path, edit)
    code, err = _refusal(["fit", "--config", str(recipe), *override], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) < 15, err
    for text in expected:
        assert text in err, err
    assert "usage:" not in err and not (tmp_path / "runs").exists()


# read-train, in a process where loading the student, its tokenizer or the teacher fails loudly
_NO_MODELS = """import sys
from read_lightning.training.data import CapabilityDataModule
from read_lightning.training.module import DistillationModule

def loads(*args, **kwargs):
    raise SystemExit("a model started loading before the configuration was refused")

DistillationModule.configure_model = CapabilityDataModule.setup = loads
from read_lightning.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize(
    "edit, expected",
    [
        (_without_callback("CapabilityProbeCallback"),
         "trainer.callbacks has no CapabilityProbeCallback: add one before BanditAllocationCallback"),
        (lambda d: d["trainer"]["callbacks"].append(d["trainer"]["callbacks"].pop(0)),
         "CapabilityProbeCallback comes after BanditAllocationCallback in trainer.callbacks: put it before"),
    ],
    ids=["no-probe", "probe-after-bandit"],
)
def test_a_bandit_with_no_profile_to_read_is_refused_before_any_model_loads(tmp_path, edit, expected):
    done, _ = _read_train(tmp_path, "fit", "--config", _recipe(tmp_path, edit).name, program=_NO_MODELS)
    assert done.returncode == 1, done.stderr
    assert "BanditAllocationCallback: no capability profile found at fit start" in done.stderr, done.stderr
    assert expected in done.stderr
    assert len(done.stderr.strip().splitlines()) < 15, done.stderr
    assert not list(tmp_path.rglob("version_*"))  # the logger's save_dir is runs/ here


@pytest.mark.parametrize(
    "edit, override, expected",
    [
        (None, ["--model.student="], ["model.student is empty ('')", "accepted: a model directory, a Hugging Face"]),
        (lambda d: d["model"].update(student=None), [], ['"model.student"', "Got value: None"]),  # the parser's
        (None, ["--model.student=null"], ["model.student is 'null', not a model name", "accepted: "]),
        (None, ["--model.student", "./models/no-such-model"],
         ["model.student './models/no-such-model': model path './models/no-such-model' does not exist", "accepted: "]),
        (None, ["--model.student", "embedded:smollm2-1t"], ["unknown embedded model 'embedded:smollm2-1t'"]),
    ],
    ids=["empty", "null", "null-text", "missing-path", "unknown-embedded"],
)
def test_an_empty_or_missing_student_is_refused_before_any_model_loads(tmp_path, edit, override, expected):
    done, _ = _read_train(tmp_path, "fit", "--config", _recipe(tmp_path, edit).name, *override, program=_NO_MODELS)
    assert done.returncode == 2, done.stderr
    for text in expected:
        assert text in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) < 15 and "Traceback" not in done.stderr, done.stderr
    assert not list(tmp_path.rglob("version_*"))


def test_help_still_prints_the_full_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    assert "--data.budget_tokens" in capsys.readouterr().out


def test_a_start_that_fails_after_the_run_directory_is_made_removes_only_that_directory(tmp_path, monkeypatch,
                                                                                       capsys):
    monkeypatch.chdir(tmp_path)
    earlier = tmp_path / "runs" / "smollm2-135m" / "version_0"
    (earlier / "checkpoints").mkdir(parents=True)
    (earlier / "config.yaml").write_text("an earlier run\n")
    # a missing student is refused before the run directory is made; a missing teacher is not
    recipe = _recipe(tmp_path, lambda d: d["model"].update(teacher=str(tmp_path / "no-such-model")))
    code, err = _refusal(["fit", "--config", str(recipe)], capsys)
    assert code == 1 and "no-such-model" in err and "does not exist" in err
    # version_1 was made (config.yaml, events) before the models failed to load, then removed
    assert "removed" in err and "version_1" in err
    assert sorted(p.name for p in (tmp_path / "runs" / "smollm2-135m").iterdir()) == ["version_0"]
    assert (earlier / "config.yaml").read_text() == "an earlier run\n"


def test_a_failed_start_into_a_new_tree_removes_the_tree_and_a_run_with_a_checkpoint_stays(tmp_path):
    created = tmp_path / "runs"
    run = created / "x" / "version_0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("")
    remove_failed_start(created)
    assert not created.exists()

    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"state")
    remove_failed_start(created)
    assert (run / "checkpoints" / "last.ckpt").exists()


def test_bf16_on_a_cpu_without_it_falls_back_to_fp32_with_a_warning(monkeypatch, caplog):
    from read_lightning import cli

    for native, accelerator, precision, expected in [
        (False, "cpu", "bf16-mixed", "32-true"),
        (False, "auto", "bf16-mixed", "32-true"),
        (True, "cpu", "bf16-mixed", "bf16-mixed"),
        (False, "cpu", "32-true", "32-true"),
        (False, "gpu", "bf16-mixed", "bf16-mixed"),
    ]:
        monkeypatch.setattr(cli, "_native_cpu_bf16", lambda native=native: native)
        monkeypatch.setattr("torch.cuda.is_available", lambda: False)
        trainer = {"accelerator": accelerator, "precision": precision}
        caplog.clear()
        cli.cpu_precision(trainer)
        assert trainer["precision"] == expected
        assert ("no native bf16" in caplog.text) == (expected != precision)
