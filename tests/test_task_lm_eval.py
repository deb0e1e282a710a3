"""Task cards whose rows come from an lm-eval task: GSM8K over a local copy in its Hub schema.

The fixture writes ``openai/gsm8k``'s layout (config ``main``, splits ``train``/``test``, fields
``question``/``answer``) as tests/test_harness_probes.py does, and the card points the stock
``gsm8k`` task at it; the rows are the task's own ``doc_to_text``/``doc_to_target``.
"""

from __future__ import annotations

import json
import re

import pytest
from conftest import build_tiny_model

from read_lightning.evaluation.task_answers import answer_outcomes, answer_report
from read_lightning.evaluation.tasks import TaskCard, evaluate_task, task_references
from read_lightning.teachers.generation import Generation, HFTeacher

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TRAIN = [{"question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} is {2 * i}.\n#### {2 * i}"}
         for i in range(1, 9)]
TEST = [{"question": f"What is {i} times 3?", "answer": f"{i} times 3 is {3 * i}.\n#### {3 * i}"}
        for i in range(20, 25)]


@pytest.fixture(scope="module")
def gsm8k_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("gsm8k")
    (d / "main").mkdir()
    for split, rows in (("train", TRAIN), ("test", TEST)):
        (d / "main" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "README.md").write_text("---\nconfigs:\n- config_name: main\n  data_files:\n"
                                 "  - split: train\n    path: main/train.jsonl\n"
                                 "  - split: test\n    path: main/test.jsonl\n---\n")
    return d


def _card(tmp_path, gsm8k_dir, evaluation="exact_match", **lm_eval):
    source = {"task": "gsm8k", "dev_split": "train", "test_split": "test", "dataset_path": str(gsm8k_dir), **lm_eval}
    tmp_path.mkdir(parents=True, exist_ok=True)
    card = {"name": "gsm8k", "description": "grade-school math word problems", "evaluation": evaluation,
            "max_new_tokens": 8, "lm_eval": source}
    path = tmp_path / "card.yaml"
    path.write_text(json.dumps(card))  # JSON is YAML
    return path


def test_rows_are_the_tasks_own_prompts_and_targets(tmp_path, gsm8k_dir):
    card = TaskCard.load(_card(tmp_path, gsm8k_dir))
    assert card.dev is None and card.test is None and card.lm_eval.task == "gsm8k"
    assert card.rows("dev") == [{"question": f"Question: {r['question']}\nAnswer:", "answer": r["answer"],
                                 "source": f"gsm8k/train/{i}"} for i, r in enumerate(TRAIN)]
    assert [r["answer"] for r in card.rows("test")] == [r["answer"] for r in TEST]
    card.rows("test")[0]["answer"] = "changed"  # callers get copies
    assert card.rows("test")[0]["answer"] == TEST[0]["answer"]


def test_limits_draw_a_fixed_seeded_subset_per_split(tmp_path, gsm8k_dir):
    path = _card(tmp_path, gsm8k_dir, dev_limit=3, test_limit=2)
    a, b = TaskCard.load(path), TaskCard.load(path)
    assert a.rows("dev") == b.rows("dev") and len(a.rows("dev")) == 3 and len(a.rows("test")) == 2
    indices = [int(r["source"].split("/")[-1]) for r in a.rows("dev")]
    assert indices == sorted(set(indices)) and a.rows("dev")[0]["answer"] == TRAIN[indices[0]]["answer"]
    other = TaskCard.load(_card(tmp_path, gsm8k_dir, dev_limit=3, seed=7))
    assert [r["source"] for r in other.rows("dev")] != [r["source"] for r in a.rows("dev")]


def test_cards_rule_scores_the_rows(tmp_path, gsm8k_dir, tiny_tokenizer, monkeypatch):
    card = TaskCard.load(_card(tmp_path, gsm8k_dir))
    model = build_tiny_model(tiny_tokenizer)

    def answer(self, prompts, max_new_tokens=None):
        # the final-answer rule: right ("Answer: 3i") on even i, a wrong last number on odd i
        out = []
        for p in prompts:
            i = int(re.search(r"What is (\d+) times", p).group(1))
            out.append(Generation(f"{i} threes.\nAnswer: {3 * i if i % 2 == 0 else 1}", 4, True))
        return out

    monkeypatch.setattr(HFTeacher, "generate", answer)
    teacher = [{"answer": r["answer"]} for r in TEST]
    outcomes = answer_outcomes(card, model, tiny_tokenizer, "test", teacher_answers=teacher)
    assert [o["correct"] for o in outcomes] == [i % 2 == 0 for i in range(20, 25)]
    assert [o["agree"] for o in outcomes] == [i % 2 == 0 for i in range(20, 25)]
    assert answer_report(outcomes)["accuracy"] == pytest.approx(60.0)
    assert evaluate_task(card, model, tiny_tokenizer, "test")["exact_match"] == pytest.approx(60.0)


def test_a_tiny_model_answers_and_is_scored(tmp_path, gsm8k_dir, tiny_tokenizer):
    card = TaskCard.load(_card(tmp_path, gsm8k_dir, dev_limit=4))
    model = build_tiny_model(tiny_tokenizer)
    model.train()
    dev = evaluate_task(card, model, tiny_tokenizer, "dev")
    assert dev["n"] == 4 and 0.0 <= dev["utility"] <= 100.0
    outcomes = answer_outcomes(card, model, tiny_tokenizer, "test", limit=3)
    assert model.training and len(outcomes) == 3 and all(isinstance(o["correct"], bool) for o in outcomes)
    # utility as fidelity to the teacher's greedy answers, cached like any card's
    refs = task_references(card, model, tiny_tokenizer, tmp_path / "refs.jsonl", split="dev")
    fid = evaluate_task(card, model, tiny_tokenizer, "dev", references=refs)
    assert len(refs) == fid["n"] == 4 and 0.0 <= fid["fidelity"] <= 100.0


@pytest.mark.parametrize("change, error", [
    ({"task": "gsm8kk"}, r"unknown lm-eval task 'gsm8kk' .*did you mean 'gsm8k'"),
    ({"dev_split": "validation"}, r"no split 'validation' \(dev_split\); it has \['train', 'test'\]"),
    ({"test_limit": 6}, r"test_limit 6 is larger than the 'test' split of 'gsm8k' \(5 documents\)"),
    ({"dev_limit": 0}, r"dev_limit"),
    ({"test_split": "train"}, r"dev_split and test_split are both 'train'"),
    ({"splits": "x"}, r"unknown key\(s\) \['splits'\]"),
    ({"dataset_path": "./missing"}, r"dataset_path '/.*/missing' does not exist"),
    ({"evaluation": "multiple_choice"}, r"'gsm8k' is 'generate_until'; evaluation 'multiple_choice'"),
    ({"evaluation": "pass_at_1"}, r"evaluation 'pass_at_1' cannot score"),
])
def test_bad_cards_fail_at_load(tmp_path, gsm8k_dir, change, error):
    evaluation = change.pop("evaluation", "exact_match")
    with pytest.raises(ValueError, match=error):
        TaskCard.load(_card(tmp_path, gsm8k_dir, evaluation, **change))


def test_a_card_gives_rows_one_way(tmp_path, gsm8k_dir):
    path = _card(tmp_path, gsm8k_dir)
    raw = json.loads(path.read_text())
    path.write_text(json.dumps({**raw, "dev": "dev.jsonl"}))
    with pytest.raises(ValueError, match=r"\['dev'\] and 'lm_eval' both give rows"):
        TaskCard.load(path)


def test_a_relative_dataset_path_is_read_from_the_cards_directory(tmp_path, gsm8k_dir, monkeypatch):
    import shutil

    shutil.copytree(gsm8k_dir, tmp_path / "cards" / "data")
    path = _card(tmp_path / "cards", None, dataset_path="./data")
    monkeypatch.chdir(tmp_path)  # not the card's directory
    assert TaskCard.load(path).rows("test")[0]["answer"] == TEST[0]["answer"]


ARC = [{"id": f"q{i}", "question": f"Which colour is number {i}?",
        "choices": {"text": ["red", "green", "blue", "yellow"], "label": ["A", "B", "C", "D"]},
        "answerKey": "ABCD"[i % 4]} for i in range(6)]


def test_a_multiple_choice_task_gives_choices_and_gold(tmp_path, tiny_tokenizer):
    d = tmp_path / "ai2_arc"
    (d / "ARC-Challenge").mkdir(parents=True)
    files = ""
    for split, rows in (("train", ARC[:2]), ("validation", ARC[2:4]), ("test", ARC[4:])):
        (d / "ARC-Challenge" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        files += f"  - split: {split}\n    path: ARC-Challenge/{split}.jsonl\n"
    (d / "README.md").write_text(f"---\nconfigs:\n- config_name: ARC-Challenge\n  data_files:\n{files}---\n")
    (tmp_path / "card.yaml").write_text(json.dumps({
        "name": "arc", "description": "science questions", "evaluation": "multiple_choice",
        "lm_eval": {"task": "arc_challenge", "dev_split": "validation", "test_split": "test", "dataset_path": str(d)}}))
    card = TaskCard.load(tmp_path / "card.yaml")
    assert card.rows("dev") == [{"question": f"Question: {r['question']}\nAnswer:", "choices": r["choices"]["text"],
                                 "gold": "ABCD".index(r["answerKey"]), "source": f"arc_challenge/validation/{i}"}
                                for i, r in enumerate(ARC[2:4])]
    result = evaluate_task(card, build_tiny_model(tiny_tokenizer), tiny_tokenizer, "test")
    assert result["n"] == 2 and result["acc"] in (0.0, 50.0, 100.0)
