"""The recipe's ``task:`` section: named once, filled into the data module and the callbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from read_lightning.cli import UsageError, lightning_main

ROOT = Path(__file__).parent.parent
RECIPE = ROOT / "recipes" / "smollm2-135m.yaml"


def _recipe(tmp_path: Path, edit=None) -> Path:
    doc = yaml.safe_load(RECIPE.read_text())
    if edit is not None:
        edit(doc)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _callback(doc_or_cli, name: str):
    if isinstance(doc_or_cli, dict):
        return next(cb for cb in doc_or_cli["trainer"]["callbacks"] if cb["class_path"].endswith(name))
    return next(cb for cb in doc_or_cli.trainer.callbacks if type(cb).__name__ == name)


def _build(tmp_path: Path, recipe: Path):
    return lightning_main(["--config", str(recipe), "--trainer.default_root_dir", str(tmp_path)], run=False)


def _without_task_section(doc: dict) -> None:
    task = doc.pop("task")
    _callback(doc, "TaskEvaluationCallback")["init_args"]["task_card"] = task["card"]
    _callback(doc, "BanditAllocationCallback")["init_args"]["requirement"] = task["requirement"]
    doc["data"]["task_prompts"] = task["card"]


def test_the_task_section_fills_the_data_module_and_the_callbacks(tmp_path):
    doc = yaml.safe_load(RECIPE.read_text())
    assert doc["task"]["card"] == "fact_extract"  # the default recipe names its task once, there
    assert "task_prompts" not in doc["data"]
    assert "task_card" not in _callback(doc, "TaskEvaluationCallback")["init_args"]
    assert "requirement" not in _callback(doc, "BanditAllocationCallback")["init_args"]
    cli = _build(tmp_path, RECIPE)
    assert cli.datamodule.task_prompts == "fact_extract"
    assert _callback(cli, "TaskEvaluationCallback").card.name == "fact_extract"
    assert _callback(cli, "BanditAllocationCallback").requirement == doc["task"]["requirement"]
    # The bandit has its vector: it reads no card, so none is filled in.
    assert _callback(cli, "BanditAllocationCallback").task_card is None
    # The run's config.yaml is the filled configuration.
    assert cli.config["data"]["task_prompts"] == "fact_extract"


def test_a_bandit_without_a_requirement_gets_the_task_card(tmp_path):
    recipe = _recipe(tmp_path, lambda doc: doc["task"].pop("requirement"))
    cli = _build(tmp_path, recipe)
    bandit = _callback(cli, "BanditAllocationCallback")
    assert bandit.requirement is None and bandit.task_card == "fact_extract"


def test_a_recipe_without_the_task_section_is_built_as_before(tmp_path):
    cli = _build(tmp_path, _recipe(tmp_path, _without_task_section))
    assert cli.config["task"]["card"] is None and cli.config["task"]["requirement"] is None
    assert cli.datamodule.task_prompts == "fact_extract"
    assert _callback(cli, "TaskEvaluationCallback").card.name == "fact_extract"
    assert _callback(cli, "BanditAllocationCallback").requirement["long_context"] == 0.4


def test_the_same_value_in_both_places_is_accepted_another_is_refused_in_one_line(tmp_path):
    card_path = ROOT / "src/read_lightning/resources/tasks/fact_extract/card.yaml"

    def same(doc):  # a card's path and its packaged name are one card
        _callback(doc, "TaskEvaluationCallback")["init_args"]["task_card"] = "fact_extract"
        doc["data"]["task_prompts"] = str(card_path)

    assert _build(tmp_path, _recipe(tmp_path, same)).datamodule.task_prompts == str(card_path)

    def other(doc):
        _callback(doc, "BanditAllocationCallback")["init_args"]["requirement"] = {"math": 1.0}

    with pytest.raises(UsageError) as refused:
        _build(tmp_path, _recipe(tmp_path, other))
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("task.requirement is {'long_context': 0.4, ")
    assert "but trainer.callbacks[2] BanditAllocationCallback requirement is {'math': 1.0}" in message


def test_a_task_evaluation_without_any_task_card_is_refused_by_name(tmp_path):
    def no_card(doc):
        _without_task_section(doc)
        _callback(doc, "TaskEvaluationCallback")["init_args"].pop("task_card")

    with pytest.raises(ValueError, match="TaskEvaluationCallback needs a task_card"):
        _build(tmp_path, _recipe(tmp_path, no_card))


def test_the_requirement_vector_is_checked_once_from_the_recipe_to_the_allocator(tmp_path, monkeypatch):
    # Made a Requirement where the bandit is built; the name check before the models load and the
    # allocator at fit start take it as it is.
    from read_lightning.allocation.bandit import make_allocator
    from read_lightning.cli import check_capability_names
    from read_lightning.core import capabilities
    from read_lightning.requirement.cards import resolve_card

    checked = []
    real = capabilities._checked_weights

    def counting(values, known, name):
        if "requirement" in name:
            checked.append((name, dict(values)))
        return real(values, known, name)

    monkeypatch.setattr(capabilities, "_checked_weights", counting)
    cli = _build(tmp_path, RECIPE)
    bandit = _callback(cli, "BanditAllocationCallback")
    check_capability_names(cli.trainer, cli.datamodule)
    allocator = make_allocator("uniform", cli.datamodule.capabilities, bandit.requirement)
    vector = yaml.safe_load(RECIPE.read_text())["task"]["requirement"]
    card = resolve_card("fact_extract")
    # the task card's own vector, once when TaskEvaluationCallback loads it; the recipe's, once
    assert checked == [(f"{card}: field 'requirement'", vector), ("requirement vector", vector)]
    assert dict(zip(allocator.capabilities, allocator.requirement))["long_context"] == pytest.approx(0.4)
