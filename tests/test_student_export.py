"""The distilled student in ``<run>/student/`` is usable where students are used: it loads with
``AutoModelForCausalLM``, ``AutoTokenizer`` and ``pipeline("text-generation")``, chats through its
saved chat template, answers greedily unless asked to sample, and says what the module says."""

from __future__ import annotations

import lightning as L
import pytest
from conftest import CHAT_TEMPLATE, build_tiny_model
from test_data import make_dm

from read_lightning.teachers.generation import HFTeacher
from read_lightning.training.module import DistillationModule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["What is 12 plus 7?", "Write a Python function that returns the sum of a list."]
MAX_NEW = 12


def test_the_saved_student_chats_through_a_pipeline_as_the_module_answers(tiny_tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, pipeline

    module = DistillationModule(lr=1e-3).attach(student=build_tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer)
    trainer = L.Trainer(
        max_epochs=1,
        default_root_dir=str(tmp_path),
        logger=L.pytorch.loggers.CSVLogger(str(tmp_path), version=0),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=make_dm(tiny_tokenizer, budget_tokens=1500, num_intervals=1))
    student_dir = tmp_path / "lightning_logs" / "version_0" / "student"

    tokenizer = AutoTokenizer.from_pretrained(student_dir)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    generation = GenerationConfig.from_pretrained(student_dir)
    assert generation.do_sample is False and tokenizer.eos_token_id in _ids(generation.eos_token_id)
    model = AutoModelForCausalLM.from_pretrained(student_dir)
    assert model.generation_config.do_sample is False

    # the module's own greedy answer: the in-process generation path with temperature 0, unstripped
    # (a tiny student's answer is mostly whitespace; stripped, both sides would be empty)
    module.student.eval()
    teacher = HFTeacher(module.student, tiny_tokenizer, temperature=0.0, max_new_tokens=MAX_NEW, strip=False)
    own = [g.text for g in teacher.generate(PROMPTS)]
    assert all(own), "the tiny student said nothing at all: the comparison would be vacuous"
    chat = pipeline("text-generation", model=str(student_dir), device="cpu")
    for prompt, expected in zip(PROMPTS, own):
        reply = chat([{"role": "user", "content": prompt}], max_new_tokens=MAX_NEW)[0]["generated_text"]
        assert reply[-1]["role"] == "assistant"
        assert reply[-1]["content"] == expected, prompt


def _ids(value) -> list[int]:
    return [value] if isinstance(value, int) else list(value or [])
