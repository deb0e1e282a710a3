"""Probes from lm-eval tasks: stock registry configs over local copies of their datasets.

Each fixture writes a small dataset in the layout and schema of the task's Hub repository (as
``huggingface-cli download --repo-type dataset`` leaves it), and the task's ``dataset_path`` is
pointed at that directory: the same ``datasets.load_dataset(path, name)`` call a Hub-backed run
makes, with everything else (prompts, filters, metrics) from lm-eval's own YAML.
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
import torch
from conftest import build_tiny_model

from read_lightning.evaluation.harness import HarnessProbe, metric_score
from read_lightning.evaluation.probes import PROBE_DATA_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _readme(configs: dict[str, dict[str, str]]) -> str:
    """A dataset card whose ``configs`` map config names to split files, as on the Hub."""
    lines = ["---", "configs:"]
    for name, splits in configs.items():
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {split}\n    path: {path}" for split, path in splits.items()]
    return "\n".join(lines + ["---", ""])


def _parquet(path, rows) -> None:
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(path))


@pytest.fixture(scope="module")
def gsm8k_dir(tmp_path_factory):
    """openai/gsm8k: config ``main``, parquet splits ``train``/``test``, fields question/answer."""
    d = tmp_path_factory.mktemp("gsm8k")
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"{i} plus {i} is {2 * i}.\n#### {2 * i}"}
            for i in range(1, 13)]
    _parquet(d / "main" / "train-00000-of-00001.parquet", rows[:6])
    _parquet(d / "main" / "test-00000-of-00001.parquet", rows[6:])
    (d / "README.md").write_text(_readme({"main": {"train": "main/train-*", "test": "main/test-*"}}))
    return d


@pytest.fixture(scope="module")
def arc_dir(tmp_path_factory):
    """allenai/ai2_arc: config ``ARC-Challenge``, fields id/question/choices{text,label}/answerKey."""
    d = tmp_path_factory.mktemp("ai2_arc")
    colours = ["red", "green", "blue", "yellow"]
    rows = [{"id": f"q{i}", "question": f"Which colour is number {i}?",
             "choices": {"text": colours, "label": ["A", "B", "C", "D"]}, "answerKey": "ABCD"[i % 4]}
            for i in range(10)]
    splits = {}
    for split, part in (("train", rows[:3]), ("validation", rows[3:5]), ("test", rows[5:])):
        _parquet(d / "ARC-Challenge" / f"{split}-00000-of-00001.parquet", part)
        splits[split] = f"ARC-Challenge/{split}-*"
    (d / "README.md").write_text(_readme({"ARC-Challenge": splits}))
    return d


IFEVAL_ROWS = [
    {"key": 1, "prompt": "Write a haiku about rain. Do not use any commas.",
     "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    {"key": 2, "prompt": "Describe a cat in lowercase letters only.",
     "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
    {"key": 3, "prompt": "Name a fruit and include the keyword banana.",
     "instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": ["banana"]}]},
]


@pytest.fixture(scope="module")
def ifeval_dir(tmp_path_factory):
    """google/IFEval: one ``ifeval_input_data.jsonl`` (default config, split ``train``)."""
    d = tmp_path_factory.mktemp("ifeval")
    (d / "ifeval_input_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in IFEVAL_ROWS))
    return d


def _gsm8k(gsm8k_dir, **kw):
    spec = {"task": "gsm8k", "dataset_path": str(gsm8k_dir), "limit": 4, "num_fewshot": 2,
            "generation_kwargs": {"max_gen_toks": 6}, **kw}
    return HarnessProbe({"math": [spec]}, batch_size=4)


def test_gsm8k_scores_with_its_own_prompt_filters_and_metric(gsm8k_dir, tiny_tokenizer, monkeypatch):
    from lm_eval.models.huggingface import HFLM

    probe = _gsm8k(gsm8k_dir)
    assert probe.metrics == {"gsm8k": "exact_match,strict-match"}  # generate_until: first metric, first filter
    seen = []

    def answer(self, requests, disable_tqdm=False):
        # Right ("#### 2i", which the strict-match regex extracts) on even i, else wrong.
        out = []
        for req in requests:
            context, gen_kwargs = req.args
            seen.append((context, gen_kwargs))
            i = int(re.findall(r"What is (\d+) plus", context)[-1])
            out.append(f" {i} and {i}.\n#### {2 * i if i % 2 == 0 else 0}")
        return out

    monkeypatch.setattr(HFLM, "generate_until", answer)
    profile = probe.evaluate(build_tiny_model(tiny_tokenizer), tiny_tokenizer)
    chosen = [7 + j for j in probe.samples["gsm8k"]]  # the test split holds i = 7..12
    assert len(seen) == 4 and len(chosen) == 4
    assert profile["math"] == pytest.approx(100.0 * sum(i % 2 == 0 for i in chosen) / 4)
    task = probe.last_details["math"]["tasks"]["gsm8k"]
    assert task["n"] == 4 and task["stderr"] is not None and probe.last_details["math"]["stderr"] is not None
    context, gen_kwargs = seen[0]
    # lm-eval's gsm8k prompt with 2 shots from the local train split, and its stop sequences.
    assert context.count("Question:") == 3 and context.endswith("Answer:")
    assert "Question:" in gen_kwargs["until"] and gen_kwargs["max_gen_toks"] == 6


def test_limited_subset_is_fixed_by_seed_and_task(gsm8k_dir):
    a, b = _gsm8k(gsm8k_dir), _gsm8k(gsm8k_dir)
    assert a.samples == b.samples  # a resumed run or another process draws the same documents
    other = HarnessProbe({"math": [{"task": "gsm8k", "dataset_path": str(gsm8k_dir), "limit": 4}]}, seed=5)
    assert other.samples["gsm8k"] != a.samples["gsm8k"] and len(set(other.samples["gsm8k"])) == 4


def test_arc_challenge_multiple_choice_with_the_real_model(arc_dir, tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, seed=2)
    model.train()
    probe = HarnessProbe({"reasoning": [{"task": "arc_challenge", "dataset_path": str(arc_dir), "limit": 4}]})
    assert probe.metrics == {"arc_challenge": "acc_norm,none"}
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    first = probe.evaluate(model, tiny_tokenizer)
    assert model.training and all(m.training for m in model.modules())
    assert random.getstate() == before[0] and np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])
    task = probe.last_details["reasoning"]["tasks"]["arc_challenge"]
    assert task["n"] == 4 and first["reasoning"] == pytest.approx(100.0 * task["value"])
    assert task["value"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert probe.evaluate(model, tiny_tokenizer) == first


def test_ifeval_scores_instruction_following(ifeval_dir, tiny_tokenizer, monkeypatch):
    pytest.importorskip("langdetect", reason="ifeval needs the [ifeval] extra")
    from lm_eval.models.huggingface import HFLM

    spec = {"task": "ifeval", "dataset_path": str(ifeval_dir), "generation_kwargs": {"max_gen_toks": 8}}
    probe = HarnessProbe({"steerability": [spec]})
    assert probe.metrics == {"ifeval": "prompt_level_strict_acc,none"}
    # The real tiny model generates (HFLM's own generation path); its output is noise.
    model = build_tiny_model(tiny_tokenizer)
    noise = probe.evaluate(model, tiny_tokenizer)["steerability"]
    assert 0.0 <= noise <= 100.0 and probe.last_details["steerability"]["tasks"]["ifeval"]["n"] == 3
    replies = {1: "rain falls soft\nquiet puddles grow", 2: "a small grey cat sleeps", 3: "An apple, Sir."}
    monkeypatch.setattr(HFLM, "generate_until", lambda self, reqs, disable_tqdm=False: [
        replies[next(r["key"] for r in IFEVAL_ROWS if r["prompt"] == req.args[0])] for req in reqs])
    # Rows 1 and 2 follow their instruction; row 3 lacks the keyword.
    assert probe.evaluate(model, tiny_tokenizer)["steerability"] == pytest.approx(200.0 / 3)


def test_loglikelihood_task_and_batch_size(tiny_tokenizer):
    """A packaged probe as a stock task (output type loglikelihood): batches of at most batch_size."""
    probe = HarnessProbe({"math": ["read_probe_math"]}, include_path=PROBE_DATA_DIR, batch_size=3)
    assert probe.metrics == {"read_probe_math": "acc,none"}
    model = build_tiny_model(tiny_tokenizer)
    widths = []
    model.register_forward_pre_hook(lambda m, args, kwargs: widths.append(
        (args[0] if args else kwargs["input_ids"]).shape[0]), with_kwargs=True)
    probe.evaluate(model, tiny_tokenizer)
    n = probe.last_details["math"]["tasks"]["read_probe_math"]["n"]
    assert n >= 16 and max(widths) == 3 and sum(widths) == n


@pytest.fixture(scope="module")
def user_tasks(tmp_path_factory):
    """One include_path for the user tasks below: lm-eval's TaskManager indexes its whole registry
    again for each include_path (about 9 s), and is kept per path, so the tests share one."""
    d = tmp_path_factory.mktemp("user_tasks")
    rows = [{"text": f"The {w} sat on the mat."} for w in ("cat", "dog", "bird", "fox", "cow")]
    (d / "prose.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "prose.yaml").write_text(
        "task: my_prose\noutput_type: loglikelihood_rolling\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {d / 'prose.jsonl'}\n"
        "test_split: test\ndoc_to_text: ''\ndoc_to_target: text\n"
        "metric_list:\n  - metric: word_perplexity\n  - metric: byte_perplexity\n  - metric: bits_per_byte\n"
    )
    (d / "mine.yaml").write_text(  # its data file is missing
        f"task: mine\noutput_type: loglikelihood\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {d / 'nowhere.jsonl'}\ntest_split: test\ndoc_to_text: q\ndoc_to_target: a\n")
    return d


def test_loglikelihood_rolling_user_task_scores_bits_per_byte(tiny_tokenizer, user_tasks):
    probe = HarnessProbe({"long_context": [{"task": "my_prose", "limit": 3}]}, include_path=user_tasks)
    assert probe.metrics == {"my_prose": "bits_per_byte,none"}
    score = probe.evaluate(build_tiny_model(tiny_tokenizer), tiny_tokenizer)["long_context"]
    task = probe.last_details["long_context"]["tasks"]["my_prose"]
    assert score == pytest.approx(100.0 * 2.0 ** -task["value"]) and 0.0 < score < 100.0


def test_model_device_and_dtype_are_put_back(tiny_tokenizer, monkeypatch):
    from read_lightning.evaluation import harness

    model = build_tiny_model(tiny_tokenizer)
    real = harness._harness_lm

    def casting(m, tok, bs):  # a wrapper that casts the model it is given, as HFLM(dtype=...) may
        m.to(torch.float64)
        return real(m, tok, bs)

    monkeypatch.setattr(harness, "_harness_lm", casting)
    probe = HarnessProbe({"math": ["read_probe_math"]}, include_path=PROBE_DATA_DIR)
    probe.tasks["read_probe_math"]  # loaded
    probe.samples["read_probe_math"] = [0, 1]
    probe.evaluate(model, tiny_tokenizer)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


# --------------------------------------------------------------------------- bad input, before any model


def test_unknown_task_names_close_matches():
    with pytest.raises(ValueError, match=r"unknown lm-eval task 'gsm8kk'.*did you mean 'gsm8k'"):
        HarnessProbe({"math": ["gsm8kk"]})


def test_metric_the_task_does_not_produce(gsm8k_dir):
    with pytest.raises(ValueError, match=r"'gsm8k' does not produce metric 'bleu'.*exact_match,strict-match"):
        _gsm8k(gsm8k_dir, metric="bleu")
    assert _gsm8k(gsm8k_dir, metric="exact_match,flexible-extract").metrics["gsm8k"] == "exact_match,flexible-extract"


def test_limit_larger_than_the_split(gsm8k_dir):
    with pytest.raises(ValueError, match=r"limit 50 for lm-eval task 'gsm8k' is larger than its 'test' split \(6"):
        _gsm8k(gsm8k_dir, limit=50)


def test_missing_data_file_is_named(user_tasks):
    missing = user_tasks / "nowhere.jsonl"
    assert str(missing) in (user_tasks / "mine.yaml").read_text() and not missing.exists()
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        HarnessProbe({"math": ["mine"]}, include_path=user_tasks)
    with pytest.raises(ValueError, match=r"dataset_path '/no/such/gsm8k' does not exist"):
        HarnessProbe({"math": [{"task": "gsm8k", "dataset_path": "/no/such/gsm8k"}]})


def test_bad_entries_are_named():
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['limt'\]"):
        HarnessProbe({"math": [{"task": "gsm8k", "limt": 3}]})
    with pytest.raises(ValueError, match="limit"):
        HarnessProbe({"math": [{"task": "gsm8k", "limit": 0}]})
    with pytest.raises(ValueError, match="include_path"):
        HarnessProbe({"math": ["gsm8k"]}, include_path="/no/such/dir")


def test_metric_scale():
    assert metric_score("acc,none", 0.25, 0.1) == (25.0, 10.0)
    assert metric_score("bits_per_byte,none", 1.0, None) == (50.0, None)
    assert metric_score("word_perplexity,none", 4.0, None)[0] == 25.0
    with pytest.raises(ValueError, match="not in \\[0, 1\\]"):
        metric_score("exact_match,none", 3.0, None)


# --------------------------------------------------------------------------- in a run


def test_callback_probes_a_capability_with_an_lm_eval_task(gsm8k_dir, tiny_tokenizer, tmp_path):
    from test_callbacks import run

    from read_lightning.training.callbacks import CapabilityProbeCallback

    task = {"task": "gsm8k", "dataset_path": str(gsm8k_dir), "limit": 2, "num_fewshot": 0,
            "generation_kwargs": {"max_gen_toks": 4}}
    callback = CapabilityProbeCallback(references="gold", limit=2, tasks={"math": [task]})
    trainer, dm = run(tiny_tokenizer, tmp_path, 1, [callback])
    assert list(callback.latest_profile) == list(dm.capabilities)
    assert callback.probe is not None and "math" not in callback.probe.capabilities  # packaged: the rest
    assert callback.harness.last_details["math"]["tasks"]["gsm8k"]["n"] == 2
    assert callback.latest_profile["math"] == callback.harness.last_details["math"]["score"]
    assert {"probe/math", "probe_stderr/math"} <= set(trainer.logged_metrics)
    assert callback.history[-1]["stderr"] == callback.latest_stderr
    with pytest.raises(ValueError, match=r"capabilities \['astrology'\] that are not probed"):
        CapabilityProbeCallback(capabilities=["math"], tasks={"astrology": ["gsm8k"]})
    with pytest.raises(ValueError, match="unknown lm-eval task 'gsm9k'"):
        CapabilityProbeCallback(tasks={"math": ["gsm9k"]})  # at construction: before any model loads
