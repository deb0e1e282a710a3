"""Malformed input fails with a clear error naming the file, never a traceback from deep inside."""

import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_data import consume_interval, make_dm

from read_lightning.core.jsonl import read_json, read_jsonl
from read_lightning.evaluation.tasks import TaskCard
from read_lightning.training.interval_store import load_interval_rows

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=8))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@SETTINGS
@given(lines=st.lists(st.one_of(st.text(max_size=30).map(str.encode), values.map(lambda v: json.dumps(v).encode()),
                                st.binary(max_size=12)), max_size=6))
def test_jsonl_reader_errors_name_file_and_line(tmp_path, lines):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        rows = read_jsonl(path, required=("prompt",))
    except ValueError as err:
        assert str(err).startswith(f"{path}:")
    else:
        assert all(isinstance(r, dict) and "prompt" in r for r in rows)


@SETTINGS
@given(data=st.one_of(st.binary(max_size=40), values.map(lambda v: json.dumps(v).encode())))
def test_json_reader_errors_name_the_file(tmp_path, data):
    path = tmp_path / "summary.json"
    path.write_bytes(data)
    try:
        doc = read_json(path, required=("spent",))
    except ValueError as err:
        assert str(err).startswith(f"{path}:")
    else:
        assert isinstance(doc, dict) and "spent" in doc


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


def _recipe_error(tmp_path, section: str, key: str, value) -> str | None:
    """Set ``key`` of the default recipe's ``section`` (``data``, ``model`` or a callback class
    name) to ``value`` and parse it; return the ValueError/FileNotFoundError message, or None
    when the value was accepted or jsonargparse rejected its type (it names the key on stderr)."""
    return _parse_recipe(tmp_path, section, key, value)[1]


def _parse_recipe(tmp_path, section: str, key: str, value) -> tuple[Any, str | None]:
    """``(cli, None)`` when the recipe with ``section.key = value`` was built, ``(None, message)``
    when a ValueError/FileNotFoundError refused it, ``(None, None)`` when jsonargparse refused its
    type (it names the key on stderr)."""
    from pathlib import Path

    from read_lightning.cli import lightning_main

    recipe = yaml.safe_load((Path(__file__).parent.parent / "recipes" / "smollm2-135m.yaml").read_text())
    if section in ("data", "model"):
        recipe[section][key] = value
    else:
        next(cb for cb in recipe["trainer"]["callbacks"] if cb["class_path"].endswith(section))["init_args"][key] = value
    config = tmp_path / "fuzzed.yaml"
    config.write_text(yaml.safe_dump(recipe))
    try:
        cli = lightning_main(["--config", str(config), "--trainer.default_root_dir", str(tmp_path)], run=False)
    except SystemExit as err:
        assert err.code != 0
        return None, None
    except (ValueError, FileNotFoundError) as err:
        return None, str(err)
    return cli, None


DATA_INTS = ["budget_tokens", "num_intervals", "max_tokens_per_batch", "max_length", "max_new_tokens",
             "generation_batch_size"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(DATA_INTS), value=st.one_of(st.integers(-10**6, 10**6), st.text(max_size=5), st.none()))
def test_recipe_values_are_validated_with_the_key_named(tmp_path, key, value):
    cli, message = _parse_recipe(tmp_path, "data", key, value)
    assert message is None or key in message or "budget_tokens" in message, message
    if cli is not None:  # accepted: the data module got a positive integer (the parser reads "5" as 5)
        used = cli.config["data"][key]
        assert type(used) is int and used >= 1, f"data.{key}={value!r} was accepted as {used!r}"


ROW_FIELDS = {"prompt": st.one_of(st.text(max_size=8), values), "answer": st.one_of(st.text(max_size=8), values),
              "capability": st.one_of(st.sampled_from(["math", "code", "poetry"]), values),
              "gen_tokens": st.one_of(st.integers(-3, 40), values), "used": st.one_of(st.booleans(), values)}


@SETTINGS
@given(rows=st.lists(st.fixed_dictionaries({}, optional=ROW_FIELDS), min_size=1, max_size=4))
def test_generated_interval_reader_names_file_line_and_field(tiny_tokenizer, tmp_path, rows):
    """What a resume reads back from generated/interval_NNN.jsonl is checked field by field."""
    dm = make_dm(tiny_tokenizer, run_dir=str(tmp_path))
    path = tmp_path / "generated" / "interval_000.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        loaded = load_interval_rows(path, dm.labels, dm.max_new_tokens)
    except ValueError as err:
        assert str(err).startswith(f"{path}:"), str(err)
    else:
        assert all(r["capability"] in dm.capabilities and isinstance(r["used"], bool) for r in loaded)


@SETTINGS
@given(state=st.one_of(values, st.fixed_dictionaries({}, optional={"rng": values, "teacher_calls": values,
                                                                      "too_long_prompts": values, "prompt_source": values})))
def test_generation_state_file_errors_name_the_file(tiny_tokenizer, tmp_path, state):
    run = tmp_path / "run"
    if not (run / "generated" / "interval_000.jsonl").exists():
        consume_interval(make_dm(tiny_tokenizer, run_dir=str(run)), 0)
    (run / "generation_state" / "interval_000.json").write_text(json.dumps(state))
    dm = make_dm(tiny_tokenizer, run_dir=str(run))
    with pytest.raises(ValueError) as err:
        dm.train_dataloader()
    assert "interval_000.json" in str(err.value), str(err.value)


@SETTINGS
@given(field=st.sampled_from(["ledger", "mixture", "generation", "interval", "charged_interval"]), value=values)
def test_checkpointed_data_state_is_refused_with_a_named_error(tiny_tokenizer, field, value):
    state = make_dm(tiny_tokenizer).state_dict()
    state[field] = value
    try:
        make_dm(tiny_tokenizer).load_state_dict(state)
    except ValueError:
        pass  # never a TypeError/KeyError/AttributeError from deep inside


MODEL_KEYS = ["kd_weight", "divergence", "temperature", "lr", "weight_decay", "warmup_fraction", "min_lr_ratio",
              "student_layers", "dtype"]
CALLBACK_KEYS = [("CapabilityProbeCallback", k) for k in ("batch_size", "limit", "references", "reference_max_new_tokens")] + [
    ("BanditAllocationCallback", k) for k in ("allocator", "requirement", "seed", "requirement_method")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from([("model", k) for k in MODEL_KEYS] + CALLBACK_KEYS),
       value=st.one_of(st.integers(-10**3, 10**3), st.floats(-10, 10), st.just(float("nan")), st.text(max_size=5), st.none(),
                       st.dictionaries(st.text(max_size=4), st.floats(-1, 2), max_size=2)))
def test_model_and_callback_values_are_validated_with_the_key_named(tmp_path, target, value):
    section, key = target
    message = _recipe_error(tmp_path, section, key, value)
    assert message is None or key in message or repr(value) in message or str(value) in message, message


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["temperature", "top_p", "teacher_timeout", "mixture", "capabilities", "seed",
                            "prompt_source", "teacher_backend"]),
       value=st.one_of(st.floats(-2, 3), st.just(float("nan")), st.none(), st.text(max_size=5), st.integers(-3, 3),
                       st.dictionaries(st.sampled_from(["math", "code", "poetry"]), st.floats(-1, 2), max_size=3),
                       st.lists(st.sampled_from(["math", "code", "math", ""]), max_size=3)))
def test_data_values_are_validated_with_the_key_named(tmp_path, key, value):
    message = _recipe_error(tmp_path, "data", key, value)
    assert message is None or key in message or repr(value) in message or str(value) in message, message


def test_an_integer_too_large_for_a_float_is_refused_by_name():
    from read_lightning.core.checks import check_number

    with pytest.raises(ValueError, match=r"^k must be an integer in \[1, inf\]"):
        check_number("k", 10**400, low=1, integer=True)
