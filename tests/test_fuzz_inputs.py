"""Malformed input fails with a clear error naming the file, never a traceback from deep inside."""

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from read_lightning.jsonl import read_jsonl
from read_lightning.tasks import TaskCard

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@SETTINGS
@given(lines=st.lists(st.one_of(st.text(max_size=30), values.map(json.dumps)), max_size=6))
def test_jsonl_reader_errors_name_file_and_line(tmp_path, lines):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        rows = read_jsonl(path, required=("prompt",))
    except ValueError as err:
        assert str(err).startswith(f"{path}:")
    else:
        assert all(isinstance(r, dict) and "prompt" in r for r in rows)


CARD_KEYS = ["name", "description", "input_format", "output_format", "evaluation", "exemplars",
             "requirement", "dev", "test", "instruction", "max_new_tokens"]


@SETTINGS
@given(card=st.dictionaries(st.sampled_from(CARD_KEYS), values, max_size=8))
def test_task_card_loader_errors_name_the_card(tmp_path, card):
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(card), encoding="utf-8")
    try:
        TaskCard.load(path)
    except (ValueError, FileNotFoundError) as err:
        assert "card.yaml" in str(err), str(err)


@SETTINGS
@given(text=st.text(max_size=60))
def test_task_card_loader_survives_arbitrary_text(tmp_path, text):
    path = tmp_path / "card.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        TaskCard.load(path)
    assert "card.yaml" in str(err.value), str(err.value)


DATA_INTS = ["budget_tokens", "num_intervals", "max_tokens_per_batch", "max_length", "max_new_tokens",
             "generation_batch_size"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(DATA_INTS), value=st.one_of(st.integers(-10**6, 10**6), st.text(max_size=5), st.none()))
def test_recipe_values_are_validated_with_the_key_named(tmp_path, key, value):
    from pathlib import Path

    from read_lightning.cli import lightning_main

    recipe = yaml.safe_load((Path(__file__).parent.parent / "recipes" / "smollm2-135m.yaml").read_text())
    recipe["data"][key] = value
    config = tmp_path / "fuzzed.yaml"
    config.write_text(yaml.safe_dump(recipe))
    try:
        lightning_main(["--config", str(config), "--trainer.default_root_dir", str(tmp_path)], run=False)
    except SystemExit as err:  # jsonargparse rejected the type; it prints which key to stderr
        assert err.code != 0
    except ValueError as err:
        message = str(err)
        assert key in message or "budget_tokens" in message, message
