"""Task cards and task utility: validation, answer extraction, MC scoring, sandboxed pass@1."""

from __future__ import annotations

import json
import random
import time
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import build_tiny_model

import read_lightning.evaluation.tasks as tasks_mod
from read_lightning.evaluation.answers import answers_match, extract_answer, extract_code
from read_lightning.evaluation.sandbox import run_python
from read_lightning.evaluation.tasks import TaskCard, build_program, evaluate_task, list_example_tasks
from read_lightning.teachers.generation import Generation

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write_card(tmp_path: Path, evaluation: str, dev_rows: list[dict], **extra) -> Path:
    (tmp_path / "dev.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev_rows))
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dev_rows))
    card = {"name": "t", "description": "a test task", "evaluation": evaluation}
    card.update(dev="dev.jsonl", test="test.jsonl")
    card.update(extra)
    path = tmp_path / "card.yaml"
    path.write_text(json.dumps(card))  # JSON is YAML
    return path


class _CannedTeacher:
    """Stands in for greedy generation: answers every prompt with a fixed text."""

    answer = ""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def generate(self, prompts, *, max_new_tokens=None):
        return [Generation(text=self.answer, num_tokens=3) for _ in prompts]


# --------------------------------------------------------------------------- cards


def test_example_tasks_load_with_all_evaluation_types():
    cards = [TaskCard.load(p) for p in list_example_tasks()]
    assert {c.evaluation for c in cards} >= {"exact_match", "multiple_choice", "pass_at_1"}
    for c in cards:
        assert c.rows("dev") and c.rows("test")  # sizes and disjointness: test_task_splits.py
        assert c.requirement is not None and sum(c.requirement.values()) == pytest.approx(1.0)
        assert c.exemplars and c.description


def test_card_missing_file_names_card_and_field(tmp_path):
    path = _write_card(tmp_path, "exact_match", [{"question": "q", "answer": "1"}])
    (tmp_path / "test.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"card\.yaml.*'test'.*test\.jsonl"):
        TaskCard.load(path)


def test_card_unknown_evaluation_type(tmp_path):
    path = _write_card(tmp_path, "bleu", [{"question": "q", "answer": "1"}])
    with pytest.raises(ValueError, match=r"card\.yaml.*'evaluation'.*'bleu'"):
        TaskCard.load(path)


def test_card_malformed_yaml(tmp_path):
    path = tmp_path / "card.yaml"
    path.write_text("name: t\ndescription: [unclosed\n")
    with pytest.raises(ValueError, match=r"card\.yaml: malformed YAML"):
        TaskCard.load(path)


def test_card_missing_and_unknown_fields(tmp_path):
    path = _write_card(tmp_path, "exact_match", [{"question": "q", "answer": "1"}], descriptoin="typo")
    with pytest.raises(ValueError, match="descriptoin"):
        TaskCard.load(path)
    path.write_text(json.dumps({"name": "t", "evaluation": "exact_match", "dev": "dev.jsonl", "test": "test.jsonl"}))
    with pytest.raises(ValueError, match="description"):
        TaskCard.load(path)


def test_card_requirement_validated(tmp_path):
    path = _write_card(tmp_path, "exact_match", [{"question": "q", "answer": "1"}], requirement={"math": 2, "code": 2})
    assert TaskCard.load(path).requirement["math"] == pytest.approx(0.5)
    path = _write_card(tmp_path, "exact_match", [{"question": "q", "answer": "1"}], requirement={"astrology": 1})
    with pytest.raises(ValueError, match="astrology"):
        TaskCard.load(path)
    path = _write_card(tmp_path, "exact_match", [{"question": "q", "answer": "1"}], requirement={"math": -1})
    with pytest.raises(ValueError, match="math"):
        TaskCard.load(path)


def test_corrupt_jsonl_row_names_file_and_line(tmp_path):
    path = _write_card(tmp_path, "exact_match", [{"question": "q", "answer": "1"}])
    with (tmp_path / "dev.jsonl").open("a") as fh:
        fh.write('{"question": "q2", "answer": \n')
    with pytest.raises(ValueError, match=r"dev\.jsonl:2"):
        TaskCard.load(path)
    _write_card(tmp_path, "exact_match", [{"question": "q"}])
    with pytest.raises(ValueError, match=r"dev\.jsonl:1.*answer"):
        TaskCard.load(path)


def test_bad_multiple_choice_gold(tmp_path):
    path = _write_card(tmp_path, "multiple_choice", [{"question": "q", "choices": ["a", "b"], "gold": 2}])
    with pytest.raises(ValueError, match=r"dev\.jsonl: row 1"):
        TaskCard.load(path)


# --------------------------------------------------------------------------- exact match


@pytest.mark.parametrize(
    "text, expected",
    [
        ("12 + 9 = 21 #### 21", "21"),
        ("First 3 + 4 = 7.\nAnswer: 7", "7"),
        ("The answer is 42.", "42"),
        ("It costs $1,250.00 in total", "1250"),
        ("I counted 5 apples, then 8 pears", "8"),
        ("#### -3", "-3"),
        ("Answer: 2.5 liters", "2.5"),
        ("Answer: 12.0", "12"),
        ("Answer: Paris.", "paris"),
        ("no numbers here", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_answers_match():
    assert answers_match("Paris", "Paris") and answers_match("Reasoning first.\nParis.", "paris")
    assert not answers_match("The capital is Paris.", "Paris")  # a bare answer is the last line, whole
    assert extract_answer("İstanbul İzmir: Answer: 12") == "12"  # lower() lengthens "İ"
    assert answers_match("so the total is 21", "12 + 9 = 21 #### 21")
    assert not answers_match("Answer: 20", "#### 21")
    assert not answers_match("I do not know", "#### 21")


def test_exact_match_utility_with_canned_answers(tiny_tokenizer, tmp_path, monkeypatch):
    rows = [{"question": "1+1?", "answer": "#### 2"}, {"question": "2+2?", "answer": "#### 4"}]
    card = TaskCard.load(_write_card(tmp_path, "exact_match", rows))
    monkeypatch.setattr(tasks_mod, "HFTeacher", _CannedTeacher)
    _CannedTeacher.answer = "Answer: 2"
    res = evaluate_task(card, build_tiny_model(tiny_tokenizer), tiny_tokenizer)
    assert res["utility"] == 50.0 and res["n"] == 2


# --------------------------------------------------------------------------- multiple choice


class _BiasLM(torch.nn.Module):
    """A 'model' whose next-token distribution is fixed: ``favoured`` tokens are likely."""

    def __init__(self, vocab: int, favoured: list[int]) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.zeros(vocab))
        with torch.no_grad():
            self.bias[favoured] = 5.0

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        b, t = input_ids.shape
        k = logits_to_keep or t
        return SimpleNamespace(logits=self.bias.expand(b, k, -1))


def test_multiple_choice_picks_most_likely_choice(tiny_tokenizer, tmp_path):
    ids = lambda s: tiny_tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    choices = ["Paris", "zq"]
    assert not set(ids("Paris")) & set(ids("zq"))
    rows = [{"question": "Capital of France?", "choices": choices, "gold": g} for g in (0, 0, 1)]
    card = TaskCard.load(_write_card(tmp_path, "multiple_choice", rows))
    model = _BiasLM(len(tiny_tokenizer), favoured=ids("Paris"))
    res = evaluate_task(card, model, tiny_tokenizer)
    assert res["acc"] == pytest.approx(200 / 3) and res["utility"] == res["acc"]
    flipped = evaluate_task(card, _BiasLM(len(tiny_tokenizer), favoured=ids("zq")), tiny_tokenizer)
    assert flipped["acc"] == pytest.approx(100 / 3)


def test_example_tasks_run_on_tiny_model(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, seed=2)
    model.train()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    for path in list_example_tasks():
        card = TaskCard.load(path)
        card.max_new_tokens = 8
        res = evaluate_task(card, model, tiny_tokenizer, limit=3, batch_size=4)
        assert 0.0 <= res["utility"] <= 100.0 and res["n"] == 3
        assert res == evaluate_task(card, model, tiny_tokenizer, limit=3, batch_size=4)
    assert model.training
    assert random.getstate() == states[0]
    assert np.array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])


def test_fidelity_task(tiny_tokenizer, tmp_path):
    rows = [{"question": "Say hi", "answer": "hi"}, {"question": "Add 2 and 3", "answer": "5"}]
    card = TaskCard.load(_write_card(tmp_path, "fidelity", rows))
    res = evaluate_task(card, build_tiny_model(tiny_tokenizer), tiny_tokenizer)
    assert 0.0 < res["utility"] <= 100.0
    assert res["utility"] == pytest.approx(100 * max(0.0, 1.0 + res["logprob"] / 20.0))


# --------------------------------------------------------------------------- pass@1

_PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n"


def test_build_program_and_code_extraction():
    assert extract_code("Here:\n```python\nx = 1\n```\nbye") == "x = 1\n"
    restated = build_program(_PROMPT, "```python\ndef add(a, b):\n    return a + b\n```", _TEST, "add")
    # the prompt is code: it stays (its imports and helpers), the restated function replaces its stub
    assert restated.startswith(_PROMPT) and restated.count("def add") == 2 and restated.rstrip().endswith("check(add)")
    assert run_python(restated, timeout_s=10) == "passed"
    prose = "Write a function add(a, b) that returns their sum."
    standalone = build_program(prose, "def add(a, b):\n    return a + b\n", _TEST, "add")
    assert standalone.count("def add") == 1 and prose not in standalone
    continued = build_program(_PROMPT, "    return a + b\n", _TEST, "add")
    assert continued.startswith(_PROMPT)


def test_a_restated_function_keeps_the_prompts_imports():
    prompt = 'from typing import List\n\n\ndef total(xs: List[int]) -> int:\n    """Sum of xs."""\n'
    test = "def check(candidate):\n    assert candidate([1, 2]) == 3\n"
    restated = "```python\ndef total(xs: List[int]) -> int:\n    return sum(xs)\n```"
    assert run_python(build_program(prompt, restated, test, "total"), timeout_s=10) == "passed"


@pytest.mark.parametrize(
    "completion, status",
    [
        ("    return a + b\n", "passed"),
        ("    return a - b\n", "failed"),
        ("    raise RuntimeError('boom')\n", "failed"),
        ("    import os\n    os._exit(0)\n", "failed"),  # exit 0 before the tests is no pass
        ("    import socket\n    socket.create_connection(('example.com', 80))\n", "failed"),
    ],
)
def test_run_python_outcomes(completion, status):
    assert run_python(build_program(_PROMPT, completion, _TEST, "add"), timeout_s=10) == status


def _pass_card(tmp_path, timeout_s=5):
    rows = [{"prompt": _PROMPT, "test": _TEST, "entry_point": "add"}] * 2
    return TaskCard.load(_write_card(tmp_path, "pass_at_1", rows, timeout_s=timeout_s))


def test_pass_at_1_correct_solution_scores_100(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(tasks_mod, "HFTeacher", _CannedTeacher)
    _CannedTeacher.answer = "```python\ndef add(a, b):\n    return a + b\n```"
    res = evaluate_task(_pass_card(tmp_path), build_tiny_model(tiny_tokenizer), tiny_tokenizer)
    assert res["utility"] == 100.0 and res["pass_at_1"] == 100.0


def test_pass_at_1_keeps_the_indentation_of_a_completion_that_continues_the_prompt(tiny_tokenizer, tmp_path):
    # the real greedy path: an answer stripped of its leading spaces lands at module level
    class Continues(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.answer = tiny_tokenizer("    return a + b\n", add_special_tokens=False)["input_ids"]
            self.generation_config = types.SimpleNamespace(eos_token_id=tiny_tokenizer.eos_token_id)

        def generate(self, input_ids, attention_mask, **kw):
            new = torch.tensor([self.answer + [tiny_tokenizer.eos_token_id]] * len(input_ids))
            return torch.cat([input_ids, new], 1)

    assert tiny_tokenizer.decode(Continues().answer) == "    return a + b\n"
    assert evaluate_task(_pass_card(tmp_path), Continues(), tiny_tokenizer)["pass_at_1"] == 100.0


def test_pass_at_1_hang_and_crash_count_as_failures(tiny_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(tasks_mod, "HFTeacher", _CannedTeacher)
    model = build_tiny_model(tiny_tokenizer)
    _CannedTeacher.answer = "def add(a, b):\n    while True:\n        pass\n"
    start = time.monotonic()
    res = evaluate_task(_pass_card(tmp_path, timeout_s=1), model, tiny_tokenizer)
    assert time.monotonic() - start < 8.0  # bounded by the timeout, not by the program
    assert res["utility"] == 0.0 and res["timeouts"] == 2
    _CannedTeacher.answer = "def add(a, b):\n    import ctypes\n    return ctypes.string_at(0)\n"  # segfault
    res = evaluate_task(_pass_card(tmp_path), model, tiny_tokenizer)
    assert res["utility"] == 0.0 and res["failures"] == 2


def test_task_references_cached_and_scored_by_fidelity(tiny_tokenizer, tmp_path, monkeypatch):
    rows = [{"question": "1+1?", "answer": "#### 2"}, {"question": "2+2?", "answer": "#### 4"}]
    card = TaskCard.load(_write_card(tmp_path, "exact_match", rows, max_new_tokens=6))
    teacher = build_tiny_model(tiny_tokenizer, seed=11)
    cache = tmp_path / "task_refs.jsonl"
    refs = tasks_mod.task_references(card, teacher, tiny_tokenizer, cache)
    assert len(refs) == 2 and all({"answer", "complete"} <= set(r) for r in refs)
    monkeypatch.setattr("read_lightning.evaluation.probes.HFTeacher", None)  # any regeneration would crash
    assert tasks_mod.task_references(card, teacher, tiny_tokenizer, cache) == refs
    res = evaluate_task(card, teacher, tiny_tokenizer, references=refs)
    assert {"fidelity", "agreement", "logprob"} <= set(res) and 0.0 < res["utility"] <= 100.0
    with pytest.raises(ValueError, match="references"):
        evaluate_task(card, teacher, tiny_tokenizer, references=refs[:1])
