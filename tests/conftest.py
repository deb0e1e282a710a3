"""Shared test doubles: a tiny byte-level tokenizer with a chat template and tiny Llama models.

Everything is built offline from configs in well under a second, so unit tests never touch a
model hub or the real embedded teacher (that one is reserved for tests marked ``e2e``).
"""

from __future__ import annotations

import os

import lightning.pytorch  # noqa: F401  (see below)
import pytest
import torch

# Lightning's log handler writes to the sys.stderr of Lightning's first import. read_lightning.cli
# imports Lightning only once a run starts, which in a test may be under capsys, whose stream is
# closed after that test ("--- Logging error ---" in every later one): imported here, it is not.

@pytest.fixture(autouse=True, scope="session")
def _own_model_cache(tmp_path_factory):
    """The tests' models, references and cached answers go to a cache of their own
    (``READ_LIGHTNING_CACHE``, inherited by the ``read-train`` processes tests start), never the
    user's: runs on temporary models used to leave their reference files there."""
    before = os.environ.get("READ_LIGHTNING_CACHE")
    os.environ["READ_LIGHTNING_CACHE"] = str(tmp_path_factory.mktemp("read_lightning_cache"))
    yield
    if before is None:
        os.environ.pop("READ_LIGHTNING_CACHE", None)
    else:
        os.environ["READ_LIGHTNING_CACHE"] = before


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_TRAIN_TEXT = [
    "What is 12 plus 7? The answer is 19.",
    "Write a Python function that returns the sum of a list.",
    "def add(a, b):\n    return a + b",
    "Reply with only a JSON object with keys name and age.",
    "The capital of France is Paris. Translate 'good morning' into Spanish: buenos dias.",
    "Summarise the document in one sentence. Call the tool get_weather with city=Oslo.",
] * 4


def load_benchmark(filename: str):
    """A script of ``benchmarks/`` as a module, for its tests (the scripts are not a package).

    It is registered in ``sys.modules`` (a dataclass looks its module up there) and may import
    its neighbours (``throughput.py`` imports ``generation.py``) while it loads."""
    import importlib.util
    import sys
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    spec = importlib.util.spec_from_file_location(f"{Path(filename).stem}_benchmark", folder / filename)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def build_tiny_tokenizer(vocab_size: int = 320):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TRAIN_TEXT, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(tokenizer, num_layers: int = 2, seed: int = 0, vocab_size: int | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


@pytest.fixture()
def one_torch_thread():
    """One intra-op thread for the test: tiny models gain nothing from more, and on a busy 2-core
    box OpenMP threads waiting on each other made them up to 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    return build_tiny_model(tiny_tokenizer)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def default_run(tmp_path_factory):
    """The run directory of the default recipe, run once per session end to end with the real
    embedded teacher at a very small budget (``e2e`` tests only): test_e2e checks what it did,
    test_docs that the README's run-directory table names every file it wrote."""
    from pathlib import Path

    import yaml

    from read_lightning.cli import main

    tmp_path = tmp_path_factory.mktemp("default_run")
    recipe = yaml.safe_load((Path(__file__).parent.parent / "recipes" / "smollm2-135m.yaml").read_text())
    recipe["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "runs")
    recipe["trainer"]["default_root_dir"] = str(tmp_path / "runs")
    for cb in recipe["trainer"]["callbacks"]:
        if cb["class_path"].endswith("CapabilityProbeCallback"):
            cb["init_args"].update(limit=2, reference_max_new_tokens=12, cache_dir=str(tmp_path / "cache"))
        if cb["class_path"].endswith("TaskEvaluationCallback"):
            cb["init_args"].update(limit=4, test_limit=6, cache_dir=str(tmp_path / "cache"))
    recipe["data"].update(budget_tokens=2400, num_intervals=2, max_new_tokens=24, max_length=128,
                          max_tokens_per_batch=1024, generation_batch_size=8)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(recipe))
    assert main(["fit", "--config", str(config)]) == 0
    return tmp_path / "runs" / "smollm2-135m" / "version_0"
