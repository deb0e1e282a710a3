"""benchmarks/throughput.py: the model FLOPs it divides by the measured matmul ceiling."""

from __future__ import annotations

import pytest
import torch

from conftest import build_tiny_model, load_benchmark


@pytest.fixture(scope="module")
def bench():
    """benchmarks/throughput.py as a module (it imports its neighbour generation.py)."""
    return load_benchmark("throughput.py")


def test_forward_flops_counted_by_hand(bench, tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer)  # 2 layers, hidden 32, MLP 64, 2 heads of 16, 1 KV head
    vocab = model.get_output_embeddings().weight.shape[0]
    per_layer = 32 * 32 + 32 * 16 + 32 * 16 + 32 * 32 + 3 * 32 * 64  # q, k, v, o, gate/up/down
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])  # rows of 3 and 5 real tokens
    pairs = 3 * 4 // 2 + 5 * 6 // 2  # causal (query, key) pairs
    expected = 2 * 2 * per_layer * 8 + 2 * vocab * 32 * 4 + 2 * (4 * 32) * pairs
    assert bench.forward_flops(model, mask, scored=4) == expected


def test_step_flops_student_thrice_teacher_once(bench, tiny_tokenizer):
    student, teacher = build_tiny_model(tiny_tokenizer), build_tiny_model(tiny_tokenizer, num_layers=3)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    labels = torch.tensor([[-100, -100, 5, 6, -100], [-100, -100, -100, 7, 8]])
    batch = {"attention_mask": mask, "labels": labels}
    # KD at all positions: every real token followed by a real one (3 + 4); else the labelled ones (2 + 2)
    assert bench.scored_positions(batch, everywhere=True) == 7
    assert bench.scored_positions(batch, everywhere=False) == 4
    assert bench.step_flops(student, teacher, batch, everywhere=True) == (
        3 * bench.forward_flops(student, mask, 7) + bench.forward_flops(teacher, mask, 7))
    assert bench.step_flops(student, None, batch, everywhere=False) == 3 * bench.forward_flops(student, mask, 4)
    # with the teacher's states in the batch, only its output projection runs
    head = 2 * teacher.get_output_embeddings().weight.numel()
    assert bench.step_flops(student, teacher, {**batch, "teacher_hidden": None}, everywhere=True) == (
        3 * bench.forward_flops(student, mask, 7) + head * 7)


def test_recipe_settings_read_from_the_default_recipe(bench):
    recipe = bench.load_recipe(bench.RECIPE)
    assert recipe["student_layers"] == "similarity:24" and recipe["kd"]
    assert recipe["module"]["kd_positions"] == "all"
    assert recipe["precision"] in bench.PRECISIONS


def test_a_configuration_named_again_is_reported_again(bench):
    assert bench.run_keys(["fused", "fused_states", "fused", "fused_states", "fused"]) == [
        "fused", "fused_states", "fused#2", "fused_states#2", "fused#3"]
