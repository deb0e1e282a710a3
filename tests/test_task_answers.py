"""Answer-level task metrics: what a user reads first about a distilled student."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import build_tiny_model

from read_lightning.evaluation.answer_metrics import (
    final_answer,
    is_degenerate,
    named_option,
    paired_difference,
    summarise,
    wilson_interval,
)
from read_lightning.evaluation.task_answers import answer_outcomes, answer_report
from read_lightning.evaluation.tasks import TaskCard


def test_wilson_interval_is_honest_at_the_edges():
    lo, hi = wilson_interval(0, 200)
    assert lo == pytest.approx(0.0, abs=1e-9) and 0.5 < hi < 3.0  # 0 of 200 still allows a rate near 2%
    lo, hi = wilson_interval(120, 200)
    assert lo < 60.0 < hi and hi - lo < 15.0
    assert wilson_interval(0, 0) == (0.0, 100.0)


def test_final_answers_follow_the_cards_rule():
    assert final_answer("exact_match", "Tom owns 12 bikes.") == "12"
    assert final_answer("exact_match", "Some working\nAnswer: Oslo.") == "oslo"
    assert final_answer("exact_match", "The answer is: Chen.") == "chen"
    assert final_answer("exact_match", "   \n ") is None
    row = {"choices": ["Toronto", "Ottawa", "Vancouver"]}
    assert final_answer("multiple_choice", "It is Ottawa, not Toronto.", row) == "1"
    assert final_answer("multiple_choice", "I do not know.", row) is None
    assert named_option("ottawa", ["Ott", "Ottawa"]) == 1  # whole words only
    assert final_answer("pass_at_1", "passed") == "passed"
    with pytest.raises(ValueError, match="'essay'"):
        final_answer("essay", "text")


def test_degenerate_answers():
    assert is_degenerate([], "")
    assert is_degenerate([5, 5, 5, 7], "1222")
    assert not is_degenerate([1, 2, 3, 5, 5], "Answer: 12")


def test_two_blank_answers_do_not_agree_and_rates_carry_intervals():
    items = [{"agree": True, "correct": True, "degenerate": False},
             {"agree": False, "correct": False, "degenerate": True}]
    rates = summarise(items)
    assert rates["agreement"] == 50.0 and rates["accuracy"] == 50.0 and rates["degenerate"] == 50.0
    assert rates["agreement_ci"][0] < 50.0 < rates["agreement_ci"][1]
    assert "accuracy" not in summarise([{"agree": True, "correct": None, "degenerate": False}])
    report = answer_report([{"agree": True, "correct": None, "degenerate": False}] * 9
                           + [{"agree": False, "correct": None, "degenerate": True}])
    assert report["usable"] is False  # 10% degenerate is over the 5% allowed
    mean, lo, hi = paired_difference([1, 1, 0, 1], [0, 1, 0, 0])
    assert mean == 0.5 and lo < 0.5 < hi


def _card(tmp_path, rows, evaluation="exact_match"):
    for split in ("dev", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "card.yaml").write_text(
        f"name: t\ndescription: d\nevaluation: {evaluation}\ndev: dev.jsonl\ntest: test.jsonl\nmax_new_tokens: 8\n")
    return TaskCard.load(tmp_path / "card.yaml")


def test_outcomes_score_a_models_own_greedy_answers(tmp_path, tiny_tokenizer, one_torch_thread):
    card = _card(tmp_path, [{"question": f"q {i}", "answer": str(i)} for i in range(4)])
    model = build_tiny_model(tiny_tokenizer)
    model.train()
    mine = answer_outcomes(card, model, tiny_tokenizer, "test")
    assert model.training  # train mode restored
    assert all(o["agree"] is None for o in mine) and len(mine) == 4
    # the model agrees with itself wherever its answer has a readable final answer
    teacher = [{"answer": o["answer"]} for o in mine]
    again = answer_outcomes(card, model, tiny_tokenizer, "test", teacher_answers=teacher)
    assert [o["agree"] for o in again] == [o["final"] is not None for o in mine]
    # a teacher that answers differently everywhere is never agreed with
    other = answer_outcomes(card, model, tiny_tokenizer, "test", teacher_answers=[{"answer": "Answer: zzz"}] * 4)
    assert not any(o["agree"] for o in other)
    with pytest.raises(ValueError, match="3 teacher answers for 4 rows"):
        answer_outcomes(card, model, tiny_tokenizer, "test", teacher_answers=teacher[:3])


def test_cached_answers_are_reused_only_for_the_same_weights_and_prompts(tmp_path, tiny_tokenizer, one_torch_thread,
                                                                        monkeypatch):
    from read_lightning.teachers.generation import HFTeacher

    card = _card(tmp_path, [{"question": f"q {i}", "answer": str(i)} for i in range(4)])
    model = build_tiny_model(tiny_tokenizer)
    cache = tmp_path / "answers"
    first = answer_outcomes(card, model, tiny_tokenizer, "test", cache_dir=cache)
    assert len(list(cache.glob("*.json"))) == 1
    calls = []
    generate = HFTeacher.generate
    monkeypatch.setattr(HFTeacher, "generate", lambda self, prompts: calls.append(len(prompts)) or generate(self, prompts))
    assert answer_outcomes(card, model, tiny_tokenizer, "test", cache_dir=cache) == first
    assert calls == []  # read from the cache
    answer_outcomes(card, model, tiny_tokenizer, "test", limit=3, cache_dir=cache)  # other prompts
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)  # other weights
    answer_outcomes(card, model, tiny_tokenizer, "test", cache_dir=cache)
    assert calls == [3, 4] and len(list(cache.glob("*.json"))) == 3
    for path in cache.glob("*.json"):
        path.write_text("{broken")
    assert answer_outcomes(card, model, tiny_tokenizer, "test", cache_dir=cache)  # regenerated
    assert calls == [3, 4, 4]


def test_the_default_task_has_large_disjoint_splits_the_generator_reproduces(tmp_path):
    from read_lightning.evaluation.tasks import TASK_DATA_DIR
    from read_lightning.requirement.cards import resolve_card
    import importlib.util

    card = TaskCard.load(resolve_card("fact_extract"))
    dev, test = card.rows("dev"), card.rows("test")
    assert len(dev) >= 200 and len(test) >= 200
    assert not {r["question"] for r in dev} & {r["question"] for r in test}
    spec = importlib.util.spec_from_file_location("make_splits", TASK_DATA_DIR / "fact_extract" / "make_splits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    assert (tmp_path / "test.jsonl").read_text() == card.test.read_text()
