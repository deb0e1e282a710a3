import os
import types

import pytest
import torch
from conftest import build_tiny_model

from read_lightning.teachers import models
from read_lightning.teachers.models import compress_layers, load_model, parse_layer_spec


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


def _convert_slowly(gguf_file, out):
    """A conversion that takes long enough for another process to ask meanwhile."""
    import time

    time.sleep(0.5)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (out / name).write_text(str(os.getpid()))


def _ask_for_the_embedded_model(cache, queue):
    try:
        target = models.embedded_model_dir(cache)
        queue.put(("ok", (target / "tokenizer.json").read_text()))
    except Exception as err:  # reported to the parent, which fails the test with it
        queue.put(("error", repr(err)))


def test_processes_converting_the_embedded_model_at_once_wait_for_one_conversion(tmp_path, monkeypatch):
    # every DDP rank asks on a cold cache: without a lock two converted at once, and one renamed
    # onto the other's finished directory ("Directory not empty") or deleted it under a reader
    import importlib.util
    import multiprocessing

    gguf = tmp_path / "pkg" / models._GGUF_FILE
    gguf.parent.mkdir()
    gguf.touch()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: types.SimpleNamespace(origin=str(gguf)))
    monkeypatch.setattr(models, "_convert_gguf", _convert_slowly)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    ranks = [context.Process(target=_ask_for_the_embedded_model, args=(tmp_path / "cache", queue)) for _ in range(3)]
    for rank in ranks:
        rank.start()
    results = [queue.get(timeout=60) for _ in ranks]
    for rank in ranks:
        rank.join(timeout=60)
    assert all(status == "ok" for status, _ in results), results
    assert len({converter for _, converter in results}) == 1  # one conversion, read by all three
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".smollm2-135m-instruct.lock", "smollm2-135m-instruct"]


def test_similarity_spec_drops_the_layers_that_change_their_input_least(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, num_layers=4).eval()
    # Layer 2 is made an identity: zero output projections leave its input unchanged.
    with torch.no_grad():
        model.model.layers[2].self_attn.o_proj.weight.zero_()
        model.model.layers[2].mlp.down_proj.weight.zero_()
    prompts = [tiny_tokenizer("the cat sat on the mat")["input_ids"], tiny_tokenizer("one two three")["input_ids"]]
    similarity = models.layer_similarity(model, prompts)
    assert len(similarity) == 4 and similarity[2] == pytest.approx(1.0, abs=1e-5)
    assert max(similarity[i] for i in (0, 1, 3)) < 0.9999
    student = compress_layers(model, "similarity:3", prompts)
    kept = [layer for layer in student.model.layers]
    assert len(kept) == 3 and student.config.num_hidden_layers == 3
    # the identity layer is the one left out: the kept layers' weights equal layers 0, 1, 3
    for new, old in zip(kept, (0, 1, 3)):
        assert torch.equal(new.mlp.up_proj.weight, model.model.layers[old].mlp.up_proj.weight)


def test_similarity_spec_errors_name_the_spec(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, num_layers=2)
    with pytest.raises(ValueError, match="similarity:x"):
        parse_layer_spec("similarity:x", 2)
    with pytest.raises(ValueError, match="more layers than the model's 2"):
        parse_layer_spec("similarity:3", 2)
    with pytest.raises(ValueError, match="needs calibration prompts"):
        compress_layers(model, "similarity:1")


def test_the_layer_ranking_is_cached_by_weights_and_prompts(tiny_tokenizer, tmp_path, monkeypatch):
    model = build_tiny_model(tiny_tokenizer, num_layers=4)
    prompts = [[1, 5, 9, 12, 7], [3, 4, 8]]
    calls = []
    measure = models.layer_similarity
    monkeypatch.setattr(models, "layer_similarity", lambda m, p: calls.append(len(p)) or measure(m, p))
    first = compress_layers(model, "similarity:2", prompts, cache_dir=tmp_path)
    again = compress_layers(model, "similarity:2", prompts, cache_dir=tmp_path)
    assert calls == [2] and len(list((tmp_path / "layer_similarity").glob("*.json"))) == 1
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    compress_layers(model, "similarity:2", prompts[:1], cache_dir=tmp_path)  # other prompts
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.add_(0.1)  # other weights
    compress_layers(model, "similarity:2", prompts, cache_dir=tmp_path)
    assert calls == [2, 1, 2]
    for path in (tmp_path / "layer_similarity").glob("*.json"):
        path.write_text("[0.5")  # broken: measured again
    compress_layers(model, "similarity:2", prompts, cache_dir=tmp_path)
    assert calls == [2, 1, 2, 2]
