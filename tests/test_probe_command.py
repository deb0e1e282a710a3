"""``read-train probe MODEL_DIR`` and the packaged probes under stock ``lm_eval``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import build_tiny_model

from read_lightning.cli import main
from read_lightning.evaluation.probes import PROBE_DATA_DIR, CapabilityProbe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_tokenizer):
    d = tmp_path_factory.mktemp("tiny_lm")
    build_tiny_model(tiny_tokenizer, seed=5).save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d


def _recipe(tmp_path, probe_args: str) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(textwrap.dedent("""\
        trainer:
          callbacks:
            - class_path: read_lightning.training.callbacks.CapabilityProbeCallback
              init_args:
        """) + textwrap.indent(textwrap.dedent(probe_args), " " * 8) + "data:\n  budget_tokens: 1000\n")
    return str(path)


def test_probe_prints_and_saves_the_profile(model_dir, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    recipe = _recipe(tmp_path, f"""\
        capabilities: [math, code]
        references: gold
        limit: 3
        batch_size: 4
        include_path: [{PROBE_DATA_DIR}]
        tasks:
          code: [{{task: read_probe_code, limit: 4}}]
        """)
    out = tmp_path / "profiles" / "tiny.json"
    assert main(["probe", str(model_dir), "--config", recipe, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "math" in printed and "read_probe_code (acc,none, n=4)" in printed and f"saved: {out}" in printed
    record = json.loads(out.read_text())
    assert list(record["profile"]) == ["math", "code"] and record["references"] == "gold"
    assert "code" in record["stderr"] and record["details"]["math"]["n"] == 3
    # The packaged capability is measured exactly as a run's probe measures it.
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    want = CapabilityProbe(["math"], limit=3, batch_size=4).evaluate(model, AutoTokenizer.from_pretrained(model_dir))
    assert record["profile"]["math"] == pytest.approx(want["math"])


def test_bad_input_is_refused_before_the_model_loads(model_dir, tmp_path, monkeypatch, capsys):
    import transformers

    def boom(*a, **k):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)
    good = _recipe(tmp_path, "references: gold\nlimit: 2\n")
    cases = [
        (["probe", str(tmp_path / "nope"), "--config", good], "model directory .*nope' does not exist"),
        (["probe", str(tmp_path), "--config", good], "has no config.json"),
        (["probe", str(model_dir), "--config", str(tmp_path / "missing.yaml")], "recipe .*missing.yaml' does not exist"),
        (["probe", str(model_dir)], "--config RECIPE"),
        (["probe", str(model_dir), "--config", good, "--dtype", "float7"], "unknown dtype 'float7'"),
        (["probe", str(model_dir), "--config", _recipe(tmp_path, "tasks: {math: [gsm8kk]}\n")],
         "unknown lm-eval task 'gsm8kk'.*did you mean 'gsm8k'"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        text = str(exc.value.code)
        assert text.startswith("read-train probe: ") and len(text.splitlines()) <= 2
        assert __import__("re").search(message, text), (message, text)


def test_stock_lm_eval_runs_a_packaged_probe_from_any_directory(model_dir, tmp_path, capsys):
    """``lm_eval --model hf ... --include_path $(read-train probe --include-path)``, read_lightning blocked."""
    assert main(["probe", "--include-path"]) == 0
    include = capsys.readouterr().out.strip()
    assert include == str(PROBE_DATA_DIR)
    runner = textwrap.dedent("""\
        import sys

        class NoReadLightning:  # the packaged tasks must not need the package
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "read_lightning":
                    raise ImportError("read_lightning was imported")

        sys.meta_path.insert(0, NoReadLightning())
        from lm_eval.__main__ import cli_evaluate

        sys.argv = ["lm_eval", *sys.argv[1:]]
        cli_evaluate()
        """)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["--model", "hf", "--model_args", f"pretrained={model_dir}", "--tasks", "read_probe_math,read_probe_code",
            "--include_path", include, "--device", "cpu", "--batch_size", "4", "--limit", "5",
            "--output_path", str(tmp_path / "out")]
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "hf_cache")}
    done = subprocess.run([sys.executable, "-c", runner, *args], cwd=elsewhere, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    for task in ("read_probe_math", "read_probe_code"):
        assert results["n-samples"][task]["effective"] == 5
        assert 0.0 <= results["results"][task]["acc,none"] <= 1.0
        assert results["results"][task]["perplexity,none"] > 1.0
