"""The packaged task splits: large enough to measure, disjoint, and reproduced by their generators."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

import pytest

from read_lightning.evaluation.tasks import TaskCard, list_example_tasks

MIN_ROWS = 200
CARDS = list_example_tasks()


def _generator(card_path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"make_splits_{card_path.parent.name}", card_path.parent / "make_splits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _key(card: TaskCard, row: dict) -> str:
    return row["prompt"] if card.evaluation == "pass_at_1" else row["question"]


@pytest.mark.parametrize("card_path", CARDS, ids=[p.parent.name for p in CARDS])
def test_packaged_splits_are_large_and_disjoint(card_path):
    card = TaskCard.load(card_path)
    dev, test = card.rows("dev"), card.rows("test")
    assert len(dev) >= MIN_ROWS and len(test) >= MIN_ROWS, f"{card.name}: {len(dev)} dev / {len(test)} test rows"
    dev_keys, test_keys = [_key(card, r) for r in dev], [_key(card, r) for r in test]
    assert len(set(dev_keys)) == len(dev) and len(set(test_keys)) == len(test), f"{card.name}: a split repeats a row"
    assert not set(dev_keys) & set(test_keys), f"{card.name}: dev and test share questions"


@pytest.mark.parametrize("card_path", CARDS, ids=[p.parent.name for p in CARDS])
def test_packaged_splits_are_what_their_generator_writes(card_path, tmp_path):
    module = _generator(card_path)
    # py_funcs' generator runs every reference in the sandbox (~30 s); the next test samples that
    kwargs = {"verify": False} if card_path.parent.name == "py_funcs" else {}
    module.main(tmp_path, **kwargs)
    card = TaskCard.load(card_path)
    assert (tmp_path / "dev.jsonl").read_text() == card.dev.read_text()
    assert (tmp_path / "test.jsonl").read_text() == card.test.read_text()


def test_py_funcs_reference_solutions_pass_their_tests_and_a_wrong_one_does_not():
    card_path = next(p for p in CARDS if p.parent.name == "py_funcs")
    module = _generator(card_path)
    splits = module.splits()
    rows = {split: TaskCard.load(card_path).rows(split) for split in ("dev", "test")}
    assert {s: [r for r, _ in pairs] for s, pairs in splits.items()} == rows
    rng = random.Random(0)
    sample = [pair for pairs in splits.values() for pair in rng.sample(pairs, 3)]
    for row, reference in sample:
        assert module.reference_passes(row, reference), row["entry_point"]
    row, _ = sample[0]
    assert not module.reference_passes(row, f"def {row['entry_point']}(*args):\n    return None\n")
