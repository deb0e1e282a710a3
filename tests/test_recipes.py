"""Every recipe parses through the real CLI parser, and bad configs fail with a clear message."""

from pathlib import Path

import pytest
import torch
import yaml

from read_lightning.allocation.bandit import allocator_options
from read_lightning.cli import lightning_main, main

RECIPES = sorted((Path(__file__).parent.parent / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    names = {p.name for p in RECIPES}
    assert {"smollm2-135m.yaml", "qwen-1.5b.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_parses(recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(recipe), "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["budget_tokens"] > 0


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_instantiates_with_linked_arguments(recipe, tmp_path):
    # Models load lazily (configure_model / setup), so building the objects is cheap.
    args = ["--config", str(recipe), "--trainer.default_root_dir", str(tmp_path)]
    if not torch.cuda.is_available():  # GPU recipes still build their objects on a CPU machine
        args += ["--trainer.accelerator", "cpu", "--trainer.precision", "32-true"]
    cli = lightning_main(args, run=False)
    # One epoch per allocation interval, and one name for each model.
    assert cli.trainer.max_epochs == cli.datamodule.num_intervals
    assert cli.datamodule.teacher_name == cli.model.hparams.teacher
    assert cli.datamodule.student_name == cli.model.hparams.student


def _strip(doc: dict) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(doc))
    doc["trainer"]["logger"]["init_args"].pop("name")
    for cb in doc["trainer"]["callbacks"]:
        cb["init_args"].pop("allocator", None)
        cb["init_args"].pop("allocator_kwargs", None)
    return doc


def _bandit_args(doc: dict) -> dict:
    return next(cb for cb in doc["trainer"]["callbacks"] if cb["class_path"].endswith("BanditAllocationCallback"))["init_args"]


@pytest.mark.parametrize("allocator", ["uniform", "task_static", "single", "greedy", "random"])
def test_baseline_recipes_differ_from_default_only_in_allocator(allocator):
    root = Path(__file__).parent.parent / "recipes"
    default = yaml.safe_load((root / "smollm2-135m.yaml").read_text())
    baseline = yaml.safe_load((root / f"smollm2-135m-{allocator}.yaml").read_text())
    assert _bandit_args(baseline)["allocator"] == allocator
    assert _strip(baseline) == _strip(default)
    # the default's allocator options that this allocator takes, and no others
    accepted = allocator_options(allocator)
    expected = {k: v for k, v in _bandit_args(default).get("allocator_kwargs", {}).items() if k in accepted}
    assert _bandit_args(baseline).get("allocator_kwargs", {}) == expected


def test_study_recipe_differs_from_default_only_in_allocator_and_its_study():
    from read_lightning.allocation.study import PACKAGED_STUDY

    root = Path(__file__).parent.parent / "recipes"
    default = yaml.safe_load((root / "smollm2-135m.yaml").read_text())
    study = yaml.safe_load((root / "smollm2-135m-study.yaml").read_text())
    assert _strip(study) == _strip(default)
    args = _bandit_args(study)
    assert args["allocator"] == "read_study"
    assert args["allocator_kwargs"] == {**_bandit_args(default)["allocator_kwargs"], "study": args["allocator_kwargs"]["study"]}
    assert (root.parent / args["allocator_kwargs"]["study"]).resolve() == PACKAGED_STUDY  # the packaged study


def test_a_study_that_is_not_a_file_is_refused_when_the_recipe_is_parsed(tmp_path):
    from read_lightning.training.callbacks import BanditAllocationCallback

    missing = str(tmp_path / "transfer.json")
    with pytest.raises(ValueError, match=f"allocator_kwargs study {missing!r} is not a file"):
        BanditAllocationCallback(allocator="read_study", requirement={"math": 1.0}, allocator_kwargs={"study": missing})


def test_allocator_options_a_baseline_does_not_take_are_refused_when_the_recipe_is_parsed():
    from read_lightning.training.callbacks import BanditAllocationCallback

    with pytest.raises(ValueError, match=r"allocator_kwargs \['warmup'\] are not options of allocator 'single'"):
        BanditAllocationCallback(allocator="single", requirement={"math": 1.0}, allocator_kwargs={"warmup": 2})
    BanditAllocationCallback(allocator="greedy", requirement={"math": 1.0}, allocator_kwargs={"warmup": 2})


def test_unknown_recipe_key_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  budget_tokenz: 100\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(bad), "--print_config"])
    assert exit_info.value.code != 0
    assert "budget_tokenz" in capsys.readouterr().err


def test_malformed_yaml_is_reported(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(bad)])
    assert exit_info.value.code != 0
    assert "broken.yaml" in str(exit_info.value.code)


def test_a_missing_config_file_is_named_and_inline_yaml_is_a_config(capsys):
    with pytest.raises(SystemExit, match=r"config file 'recipes/nope.yaml' does not exist"):
        main(["fit", "--config", "recipes/nope.yaml"])
    recipe = str(Path(__file__).parent.parent / "recipes" / "smollm2-135m.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", recipe, "--config", "{data: {budget_tokens: 12345}}", "--print_config"])
    assert exit_info.value.code in (0, None) and "budget_tokens: 12345" in capsys.readouterr().out


def _default_recipe_with(tmp_path, name: str, edit) -> str:
    doc = yaml.safe_load((Path(__file__).parent.parent / "recipes" / "smollm2-135m.yaml").read_text())
    edit(doc)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_a_value_a_class_refuses_is_one_line_naming_the_class(tmp_path, capsys, monkeypatch):
    # jsonargparse would bury the class's own message in ~80 lines of union-type reasons
    def bad_requirement(doc):
        doc["task"]["requirement"] = {"math": 0.5, "reasoning": 0.3, "steerability": 0.1,
                                            "general_knowledge": 0.3}

    config = _default_recipe_with(tmp_path, "requirement.yaml", bad_requirement)
    args = ["fit", "--config", config, "--trainer.default_root_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    message = str(exit_info.value.code)
    assert message.startswith("read-train: the configuration was refused: BanditAllocationCallback: ")
    assert "must sum to 1 (a distribution), but sums to 1.2" in message and "\n" not in message
    assert "Traceback" not in capsys.readouterr().err

    small = _default_recipe_with(tmp_path, "budget.yaml", lambda doc: doc["data"].update(budget_tokens=100))
    with pytest.raises(SystemExit, match=r"CapabilityDataModule: budget_tokens=100 is too small .*\(data\.py:\d+\)"):
        main(["fit", "--config", small, "--trainer.default_root_dir", str(tmp_path)])

    # the objects' own callers (compare, tests, notebooks) get an exception they can catch and read
    from read_lightning.cli import ConfigurationError

    with pytest.raises(ConfigurationError, match="BanditAllocationCallback: requirement vector must sum to 1"):
        lightning_main(args[1:], run=False)
    monkeypatch.setenv("READ_TRAIN_TRACEBACK", "1")
    with pytest.raises(ConfigurationError):
        main(args)


def test_a_refusal_during_the_run_is_one_line_other_errors_keep_their_traceback(monkeypatch):
    from read_lightning import cli
    from read_lightning.core.capabilities import validate_distribution

    def refused(*args, **kwargs):
        validate_distribution({"math": 2.0}, ["math"], name="mixture")

    def unreachable_teacher(*args, **kwargs):
        from read_lightning.teachers.generation import HTTPTeacher

        HTTPTeacher("http://127.0.0.1:9", "any", timeout=0.5, max_retries=0).generate(["x"])

    def broken(*args, **kwargs):
        raise ValueError("not from read_lightning")

    monkeypatch.setattr(cli, "lightning_main", refused)
    with pytest.raises(SystemExit, match=r"^read-train: mixture must sum to 1 .*\(capabilities\.py:\d+\)$"):
        cli.main(["fit"])
    monkeypatch.setattr(cli, "lightning_main", unreachable_teacher)
    with pytest.raises(SystemExit, match=r"^read-train: HTTPTeacher: teacher endpoint http://127\.0\.0\.1:9/v1/\S+ "
                                         r"failed after 1 attempt\(s\)"):
        cli.main(["fit"])
    monkeypatch.setattr(cli, "lightning_main", broken)
    with pytest.raises(ValueError, match="not from read_lightning"):
        cli.main(["fit"])


def test_top_level_help_lists_tools(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "fit" in out and "leakage" in out and "validate" not in out
    # the module has no validation step: the subcommand is refused, not run into a traceback
    recipe = str(Path(__file__).parent.parent / "recipes" / "smollm2-135m.yaml")
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--config", recipe])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "unknown command 'validate'" in err and "accepts: fit, leakage," in err


@pytest.mark.parametrize("tool", ["leakage", "interventions", "identifier", "compare"])
def test_tool_subcommands_answer_help(tool, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([tool, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_gpu_recipe_is_the_embedded_default_on_a_gpu():
    root = Path(__file__).parent.parent / "recipes"
    default = yaml.safe_load((root / "smollm2-135m.yaml").read_text())
    gpu = yaml.safe_load((root / "smollm2-135m-gpu.yaml").read_text())
    assert gpu["trainer"]["accelerator"] == "gpu" and gpu["trainer"]["precision"] == "bf16-mixed"
    assert gpu["data"]["teacher_backend"] == "auto" and gpu["data"]["teacher_dtype"] == "bfloat16"
    # Same models and task, so its figures can be read against the CPU default's.
    for key in ("student", "student_layers", "teacher", "kd_weight"):
        assert gpu["model"][key] == default["model"][key]

    assert gpu["task"] == default["task"]
    assert gpu["data"]["max_tokens_per_batch"] > default["data"]["max_tokens_per_batch"]
    assert gpu["data"]["budget_tokens"] > default["data"]["budget_tokens"]


@pytest.mark.gpu
@pytest.mark.e2e
def test_gpu_recipe_trains_on_a_gpu(tmp_path):
    """The GPU recipe end to end at a tiny budget (bf16, the teacher backend auto picks)."""
    import json

    recipe = yaml.safe_load((Path(__file__).parent.parent / "recipes" / "smollm2-135m-gpu.yaml").read_text())
    recipe["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "runs")
    recipe["trainer"]["default_root_dir"] = str(tmp_path / "runs")
    for cb in recipe["trainer"]["callbacks"]:
        if cb["class_path"].endswith("CapabilityProbeCallback"):
            cb["init_args"].update(limit=2, cache_dir=str(tmp_path / "cache"))
    recipe["data"].update(budget_tokens=24_000, num_intervals=2)
    config = tmp_path / "gpu.yaml"
    config.write_text(yaml.safe_dump(recipe))
    assert main(["fit", "--config", str(config)]) == 0
    run = tmp_path / "runs" / "smollm2-135m-gpu" / "version_0"
    ledger = json.loads((run / "ledger.json").read_text())
    assert 0 < ledger["spent"] <= 24_000 and ledger["training"] > 0
    assert (run / "student" / "config.json").is_file()


def test_read_train_drops_lightning_noise_and_nothing_else(caplog, recwarn):
    import logging
    import warnings

    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    from read_lightning.cli import quiet_lightning

    with warnings.catch_warnings():
        quiet_lightning()
        with caplog.at_level(logging.INFO):
            rank_zero_info("💡 Tip: For seamless cloud logging and experiment tracking, try installing litlogger")
            rank_zero_info("GPU available: False, used: False")
        warnings.warn("Your `IterableDataset` has `__len__` defined. In combination with ...", UserWarning)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", DeprecationWarning)
        warnings.warn("The number of training batches (4) is smaller than the logging interval", UserWarning)
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]
    assert [str(w.message) for w in recwarn] == ["The number of training batches (4) is smaller than the logging interval"]


def test_a_class_path_of_the_old_flat_layout_names_its_new_path(tmp_path):
    recipe = Path(__file__).parent.parent / "recipes" / "smollm2-135m.yaml"
    old = tmp_path / "old.yaml"
    old.write_text(recipe.read_text().replace("read_lightning.training.callbacks.", "read_lightning.callbacks."))
    with pytest.raises(SystemExit, match=r"^read-train: the configuration was refused: "
                                         r"read_lightning\.callbacks\.CapabilityProbeCallback has moved: "
                                         r"use read_lightning\.training\.\S*CapabilityProbeCallback$"):
        main(["fit", "--config", str(old), "--print_config"])
    with pytest.raises(SystemExit, match=r"read_lightning\.data\.CapabilityDataModule has moved: "
                                         r"use read_lightning\.training\.data\.CapabilityDataModule$"):
        main(["fit", "--config", str(recipe), "--data", "read_lightning.data.CapabilityDataModule"])
    # the current paths, including a subpackage that shares an old module's name, pass
    from read_lightning.cli import check_moved_paths

    check_moved_paths(["--config", str(recipe), "--x", "read_lightning.requirement.cards.load_card"])
