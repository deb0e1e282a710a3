import pytest
import torch
from conftest import build_tiny_model

from read_lightning.models import compress_layers, load_model, parse_layer_spec


def test_layer_specs():
    assert parse_layer_spec("::3", 30) == list(range(0, 30, 3))
    assert parse_layer_spec("0,5,29", 30) == [0, 5, 29]
    assert parse_layer_spec([2, 1], 4) == [1, 2]
    with pytest.raises(ValueError, match="outside 0..3"):
        parse_layer_spec("0,9", 4)
    with pytest.raises(ValueError, match="'a:b'"):
        parse_layer_spec("a:b", 4)
    with pytest.raises(ValueError, match="each once"):
        parse_layer_spec("1,1", 4)


def test_compressed_student_copies_teacher_weights_and_generates(tiny_tokenizer):
    teacher = build_tiny_model(tiny_tokenizer, num_layers=4)
    student = compress_layers(teacher, "1,3")
    assert student.config.num_hidden_layers == 2 and len(student.model.layers) == 2
    assert torch.equal(student.model.layers[1].mlp.up_proj.weight, teacher.model.layers[3].mlp.up_proj.weight)
    assert student.model.layers[1].mlp.up_proj.weight is not teacher.model.layers[3].mlp.up_proj.weight
    assert [layer.self_attn.layer_idx for layer in student.model.layers] == [0, 1]
    assert len(teacher.model.layers) == 4  # the teacher is untouched
    ids = torch.tensor([[1, 5, 9]])
    out = student.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=tiny_tokenizer.pad_token_id)
    assert out.shape == (1, 7)


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        load_model(str(tmp_path))
    with pytest.raises(ValueError, match="unknown embedded model"):
        load_model("embedded:llama-70b")
