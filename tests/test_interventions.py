"""Intervention collection: short fixed-mixture distillations, resumable JSONL rows."""

import gc
import json

import lightning
import numpy as np
import pytest
import torch
from conftest import build_tiny_model
from test_data import POOLS, CountingTeacher

from read_lightning.requirement.identifier import fit_identifier
from read_lightning.requirement.interventions import (
    InterventionSetup,
    _allocation_rng,
    interventions_main,
    read_interventions,
    run_intervention,
    sample_allocation,
)
from read_lightning.teachers.generation import StaticPromptSource

CAPS = list(POOLS)
ARGS = ["arith_word", "--budget-tokens", "400", "--max-new-tokens", "16", "--max-length", "64",
        "--max-tokens-per-batch", "256", "--lr", "1e-2", "--seed", "3"]


class WeightProbe:
    """A probe double: each capability's score reads a different slice of the student's weights."""

    def __init__(self):
        self.calls = 0

    def evaluate(self, model, tokenizer):
        self.calls += 1
        w = model.get_input_embeddings().weight.detach().float()
        return {c: 50.0 + 100.0 * float(w[10 * k : 10 * k + 10].mean()) for k, c in enumerate(CAPS)}


def head_utility(card, model, tokenizer):
    return 50.0 + 100.0 * float(model.model.norm.weight.detach().mean() - 1.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def setup(tiny_tokenizer):
    return InterventionSetup(
        student=build_tiny_model(tiny_tokenizer),
        tokenizer=tiny_tokenizer,
        teacher=CountingTeacher(),
        probe=WeightProbe(),
        utility=head_utility,
        capabilities=CAPS,
        prompt_source=StaticPromptSource(POOLS),
        description={"student": "tiny"},
    )


def test_collection_resumes_and_keeps_the_base_student(setup, tmp_path, capsys):
    out = tmp_path / "rows.jsonl"
    before = [p.detach().clone() for p in setup.student.parameters()]
    assert interventions_main([*ARGS, "--output", str(out), "--num-allocations", "2"], setup=setup) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_rows"] == 2
    first = read_interventions(out)
    assert [(r["card_name"], r["index"]) for r in first] == [("arith_word", 0), ("arith_word", 1)]
    prompts_after_two = len(setup.teacher.prompts)

    assert interventions_main([*ARGS, "--output", str(out), "--num-allocations", "3"], setup=setup) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_rows"] == 1
    rows = read_interventions(out)
    assert rows[:2] == first and [r["index"] for r in rows] == [0, 1, 2]
    assert len(setup.teacher.prompts) < 2 * prompts_after_two  # only one more intervention ran

    # Every intervention starts from the same weights: the base is never trained.
    assert all(torch.equal(a, b) for a, b in zip(before, setup.student.parameters()))
    for r in rows:
        alloc = r["allocation"]
        assert 1 <= len(alloc) <= 3 and set(alloc) <= set(CAPS) and abs(sum(alloc.values()) - 1) < 1e-9
        expected = sample_allocation(CAPS, _allocation_rng(3, "arith_word", r["index"]))
        assert alloc == {c: w for c, w in expected.items() if w > 0}  # keyed by (seed, card, index)
        assert r["seed"] == 3 + r["index"] and r["budget"] == 400 and 0 < r["tokens_spent"] <= 400
        assert r["delta_u"] == pytest.approx(r["u_after"] - r["u_before"])
        assert r["delta_s"] == pytest.approx({c: r["s_after"][c] - r["s_before"][c] for c in CAPS})
        assert any(abs(v) > 1e-4 for v in r["delta_s"].values())  # training moved the student
        assert r["card"].endswith("card.yaml") and "arithmetic" in r["card_text"]
    # The rows are what the identifier trains on.
    assert fit_identifier(rows, CAPS, steps=5).info["rows"] == 3


def test_a_row_depends_on_its_key_alone_and_leaves_no_student_on_disk(tiny_tokenizer, tmp_path):
    # one teacher serves every row of a process: its sampling counter must not carry from row to
    # row, or a resumed collection trains a row on other answers than an uninterrupted one
    from read_lightning.teachers.generation import HFTeacher

    student, teacher = build_tiny_model(tiny_tokenizer), build_tiny_model(tiny_tokenizer, seed=1)

    def fresh():  # what a new process builds
        return InterventionSetup(student=student, tokenizer=tiny_tokenizer, probe=WeightProbe(), utility=head_utility,
                                 teacher=HFTeacher(teacher, tiny_tokenizer, temperature=1.0, max_new_tokens=16, seed=3),
                                 capabilities=CAPS, prompt_source=StaticPromptSource(POOLS))

    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    work = tmp_path / "work"
    interventions_main([*ARGS, "--output", str(full), "--num-allocations", "2", "--work-dir", str(work)], setup=fresh())
    interventions_main([*ARGS, "--output", str(part), "--num-allocations", "1"], setup=fresh())
    interventions_main([*ARGS, "--output", str(part), "--num-allocations", "2"], setup=fresh())  # resumed
    keys = ("allocation", "training_tokens", "tokens_spent", "delta_s", "delta_u")
    assert [{k: r[k] for k in keys} for r in read_interventions(part)] == [
        {k: r[k] for k in keys} for r in read_interventions(full)]
    kept = sorted(p.relative_to(work).as_posix() for p in work.rglob("*") if p.is_file())
    assert kept and all("/generated/" in p or "/generation_state/" in p for p in kept), kept


def test_a_study_holds_one_distillation_in_memory_not_all_of_them(setup):
    # Each distillation's trainer, module and data module form reference cycles holding a student and
    # its optimizer state; a study of many cells grew by one student-sized set of tensors per cell
    # until it was killed for memory. The next distillation collects them.
    def trainers() -> int:
        return sum(isinstance(o, lightning.Trainer) for o in gc.get_objects())

    gc.collect()
    before = trainers()
    for seed in range(4):
        student, _ = run_intervention(setup, {c: float(c == "math") for c in CAPS}, budget_tokens=300, seed=seed,
                                      max_new_tokens=16, max_length=64, max_tokens_per_batch=256)
        del student
    assert trainers() - before <= 2  # the last one, not yet collected (4 without the collection)


def test_corrupt_row_is_an_error_naming_file_and_line(setup, tmp_path):
    out = tmp_path / "rows.jsonl"
    out.write_text('{"card": "x"}\n{not json\n')
    with pytest.raises(ValueError, match=rf"{out}:1: row lacks required field"):
        interventions_main([*ARGS, "--output", str(out)], setup=setup)
    good = {"card": "c", "card_name": "c", "index": 0, "seed": 0, "allocation": {}, "budget": 1,
            "delta_s": {}, "delta_u": 0.0, "settings": {}}
    out.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(ValueError, match=rf"{out}:2: corrupt JSONL row"):
        interventions_main([*ARGS, "--output", str(out)], setup=setup)


def test_torn_last_row_is_dropped_and_other_settings_are_refused(setup, tmp_path):
    out = tmp_path / "rows.jsonl"
    interventions_main([*ARGS, "--output", str(out), "--num-allocations", "1"], setup=setup)
    text = out.read_text()
    out.write_text(text + text[:40])  # a crash in the middle of writing the next row
    with pytest.warns(UserWarning, match="torn last row"):
        assert len(read_interventions(out)) == 1
    assert out.read_text() == text
    with pytest.raises(ValueError, match=r"other settings \(differ in \['lr'\]\); write to a new output file"):
        interventions_main([*ARGS, "--output", str(out), "--lr", "1e-3"], setup=setup)


def test_sample_allocation_is_sparse_and_seeded():
    for i in range(50):
        alloc = sample_allocation(CAPS * 1 + ["code2", "x", "y"], _allocation_rng(0, "card", i))
        support = [c for c, w in alloc.items() if w > 0]
        assert 1 <= len(support) <= 3 and abs(sum(alloc.values()) - 1) < 1e-9
    sizes = {sum(w > 0 for w in sample_allocation(CAPS + ["a", "b"], np.random.default_rng(s)).values()) for s in range(40)}
    assert sizes == {1, 2, 3}
    assert sample_allocation(CAPS, _allocation_rng(0, "a", 1)) == sample_allocation(CAPS, _allocation_rng(0, "a", 1))
    assert sample_allocation(CAPS, _allocation_rng(0, "a", 1)) != sample_allocation(CAPS, _allocation_rng(0, "b", 1))
    with pytest.raises(ValueError, match="max_support must be >= 1, got 0"):
        sample_allocation(CAPS, np.random.default_rng(0), max_support=0)
