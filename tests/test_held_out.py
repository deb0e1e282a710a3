"""Probe items and evaluation prompts never reach the training data."""

import random

from read_lightning.capabilities import DEFAULT_CAPABILITIES
from read_lightning.data import CapabilityDataModule
from read_lightning.leakage import normalize_prompt, prompt_hash
from read_lightning.probes import probe_items


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
