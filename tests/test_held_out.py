"""Probe items and evaluation prompts never reach the training data."""

import random

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
from read_lightning.evaluation.probes import probe_items
from read_lightning.prompts.leakage import normalize_prompt, prompt_hash
from read_lightning.training.data import CapabilityDataModule


def test_generated_prompts_never_equal_a_probe_prompt():
    dm = CapabilityDataModule()
    library = dm._build_prompt_source()
    rng = random.Random(0)
    for cap in DEFAULT_CAPABILITIES:
        probes = {normalize_prompt(item["prompt"]) for item in probe_items(cap)}
        generated = {normalize_prompt(library.sample(cap, rng, progress=i / 400).text) for i in range(400)}
        assert not probes & generated, cap


def test_probe_hashes_are_in_the_training_leakage_set(tmp_path):
    extra = tmp_path / "eval_hashes.txt"
    extra.write_text(prompt_hash("What is the capital of Norway?") + "\n")
    dm = CapabilityDataModule(leakage_hashes=str(extra))
    held_out = dm._held_out_hashes()
    for cap in DEFAULT_CAPABILITIES:
        assert {prompt_hash(item["prompt"]) for item in probe_items(cap)} <= held_out
    assert prompt_hash("what is the capital of norway") in held_out


def test_user_probe_prompts_are_held_out_and_the_probe_callback_follows_the_data_module(tmp_path):
    from types import SimpleNamespace

    import pytest

    from read_lightning.training.callbacks import CapabilityProbeCallback

    user = tmp_path / "probes"
    user.mkdir()
    (user / "units.jsonl").write_text('{"id": "u1", "prompt": "Convert 3 km to m.", "answer": "3000 m"}\n')
    dm = CapabilityDataModule(capabilities=["math", "units"], probe_data_dir=str(user))
    held_out = dm._held_out_hashes()
    assert prompt_hash("Convert 3 km to m.") in held_out
    assert {prompt_hash(item["prompt"]) for item in probe_items("math")} <= held_out

    trainer = SimpleNamespace(datamodule=dm)
    assert CapabilityProbeCallback()._data_dir(trainer) == str(user)
    assert CapabilityProbeCallback(data_dir=str(user))._data_dir(trainer) == str(user)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(ValueError, match="differs from the data module's probe_data_dir"):
        CapabilityProbeCallback(data_dir=str(other))._data_dir(trainer)
    with pytest.raises(FileNotFoundError, match="probe_data_dir"):
        CapabilityDataModule(probe_data_dir=str(tmp_path / "missing"))
