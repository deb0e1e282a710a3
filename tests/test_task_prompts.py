"""The task's own inputs as training prompts (``data.task_prompts``, ``data.task_share``)."""

import json
import logging

import pytest

from read_lightning.core.jsonl import read_jsonl
from read_lightning.evaluation.tasks import TaskCard
from read_lightning.prompts.leakage import prompt_hash
from read_lightning.prompts.task_pool import TASK_LABEL, TaskPromptPool
from read_lightning.requirement.cards import resolve_card
from read_lightning.training.data import CapabilityDataModule
from test_data import POOLS, SeededTeacher, _run_intervals, consume_interval, make_dm


def _prompts_file(tmp_path, n=200):
    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Sentence: item {i}.\nQuestion: which item?"}) + "\n"
                            for i in range(n)))
    return path


def test_task_share_of_the_prompts_comes_from_the_pool_and_is_charged_as_task(tiny_tokenizer, tmp_path):
    dm = make_dm(tiny_tokenizer, SeededTeacher(), task_prompts=str(_prompts_file(tmp_path)), task_share=0.5,
                 budget_tokens=6000, num_intervals=2, run_dir=str(tmp_path / "run"))
    _run_intervals(dm, [0, 1])
    rows = read_jsonl(tmp_path / "run" / "generated" / "interval_000.jsonl")
    rows += read_jsonl(tmp_path / "run" / "generated" / "interval_001.jsonl")
    task = [r for r in rows if r["capability"] == TASK_LABEL]
    assert 0.3 < len(task) / len(rows) < 0.7, (len(task), len(rows))
    assert all(r["prompt"].startswith("Sentence: item") and r["template"] == "task:inputs" for r in task)
    assert len({r["prompt"] for r in task}) == len(task)  # each used once before any is used again
    assert all(r["capability"] in POOLS for r in rows if r not in task)
    ledger = dm.ledger.by_capability()
    assert ledger[TASK_LABEL]["generation"] > 0 and ledger[TASK_LABEL]["training"] > 0
    assert dm.ledger.spent == sum(v["generation"] + v["training"] for v in ledger.values())


def test_without_task_prompts_the_sampling_is_unchanged(tiny_tokenizer, tmp_path):
    # The task draw is made only when a pool is configured: runs without one stay bit-identical.
    plain = _run_intervals(make_dm(tiny_tokenizer, SeededTeacher(), run_dir=str(tmp_path / "a")), [0])
    shared = _run_intervals(make_dm(tiny_tokenizer, SeededTeacher(), run_dir=str(tmp_path / "b"), task_share=0.9), [0])
    assert plain.teacher.prompts == shared.teacher.prompts
    zero = make_dm(tiny_tokenizer, SeededTeacher(), task_prompts=str(_prompts_file(tmp_path)), task_share=0.0)
    _run_intervals(zero, [0])
    assert all(not p.startswith("Sentence: item") for p in zero.teacher.prompts)


def test_a_resumed_run_draws_the_same_task_prompts(tiny_tokenizer, tmp_path):
    source = str(_prompts_file(tmp_path))
    kw = dict(budget_tokens=4000, num_intervals=4, task_prompts=source, task_share=0.6)
    full = _run_intervals(make_dm(tiny_tokenizer, SeededTeacher(), run_dir=str(tmp_path / "full"), **kw), range(4))
    part = make_dm(tiny_tokenizer, SeededTeacher(), run_dir=str(tmp_path / "part"), **kw)
    consume_interval(part, 0)
    checkpoint = part.state_dict()
    resumed = make_dm(tiny_tokenizer, SeededTeacher(), run_dir=str(tmp_path / "part"), **kw)
    resumed.load_state_dict(checkpoint)
    _run_intervals(resumed, [1, 2, 3])
    for name in ("interval_001.jsonl", "interval_003.jsonl"):
        assert (tmp_path / "part" / "generated" / name).read_text() == (tmp_path / "full" / "generated" / name).read_text()
    assert resumed.ledger.summary() == full.ledger.summary()
    (tmp_path / "other").mkdir()
    other = make_dm(tiny_tokenizer, SeededTeacher(), **{**kw, "task_prompts": str(_prompts_file(tmp_path / "other", 7))})
    with pytest.raises(ValueError, match="field 'task_prompts' does not fit.*200 task prompts, this pool has 7"):
        other.load_state_dict(checkpoint)


def test_packaged_cards_train_splits_never_hold_a_dev_or_test_prompt():
    for name in ("fact_extract", "arith_word", "trivia_mc"):
        card = TaskCard.load(resolve_card(name))
        assert card.has_train
        train = {card.user_message(r) for r in card.rows("train")}
        held = {card.user_message(r) for s in ("dev", "test") for r in card.rows(s)}
        assert len(train) == len(card.rows("train")) >= 1000 and not train & held, name
    pool = TaskPromptPool.from_card(TaskCard.load(resolve_card("fact_extract")))
    assert len(pool) == 1000 and pool.next().capability == TASK_LABEL


def test_the_pool_drops_held_out_and_own_evaluation_prompts(tmp_path, caplog):
    card = TaskCard.load(resolve_card("fact_extract"))
    test_prompt = card.user_message(card.rows("test")[0])
    root = tmp_path / "card"
    root.mkdir()
    for split in ("dev", "test"):
        (root / f"{split}.jsonl").write_text((resolve_card("fact_extract").parent / f"{split}.jsonl").read_text())
    (root / "train.jsonl").write_text(json.dumps({"question": test_prompt}) + "\n" + json.dumps({"question": "Q?"}) + "\n")
    (root / "card.yaml").write_text("name: mine\ndescription: d\nevaluation: exact_match\n"
                                    "dev: dev.jsonl\ntest: test.jsonl\ntrain: train.jsonl\n")
    with caplog.at_level(logging.WARNING):
        pool = TaskPromptPool.from_card(TaskCard.load(root / "card.yaml"))
    assert pool.prompts == ["Q?"] and "dropped 1 of 2" in caplog.text
    with pytest.raises(ValueError, match="no prompt left"):
        TaskPromptPool.from_card(TaskCard.load(root / "card.yaml"), held_out={prompt_hash("Q?")})


def test_bad_task_prompts_fail_before_any_model_loads(tmp_path):
    with pytest.raises(FileNotFoundError, match="task_prompts file 'nope.jsonl' does not exist"):
        CapabilityDataModule(task_prompts="nope.jsonl")
    with pytest.raises(FileNotFoundError, match="task card 'no_such_task'"):
        CapabilityDataModule(task_prompts="no_such_task")
    with pytest.raises(ValueError, match="task_share"):
        CapabilityDataModule(task_prompts="fact_extract", task_share=1.5)
    with pytest.raises(ValueError, match="'task' is reserved"):
        CapabilityDataModule(capabilities=["math", "task"], task_prompts="fact_extract")
    with pytest.raises(ValueError, match="task card 'py_funcs' has no train split"):
        TaskPromptPool.from_card(TaskCard.load(resolve_card("py_funcs")))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: row has no 'prompt'"):
        TaskPromptPool.from_jsonl(str(bad))
