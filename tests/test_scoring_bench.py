"""benchmarks/scoring.py: the pairs it scores and the two paths it times."""

from __future__ import annotations

import pytest
import torch

from conftest import build_tiny_model, load_benchmark
from read_lightning.core.capabilities import DEFAULT_CAPABILITIES


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("scoring.py")


def test_both_paths_score_the_runs_pairs_alike(bench, tiny_tokenizer):
    sets = bench.pairs(tiny_tokenizer, dev_rows=4, probe_items=1)
    contexts, continuations = sets["probes"]
    assert len(contexts) == len(DEFAULT_CAPABILITIES) and all(c[-1] == tiny_tokenizer.eos_token_id for c in continuations)
    model = build_tiny_model(tiny_tokenizer, seed=5).eval()
    got = bench.measure(model, *sets["task_dev"], batch_size=2, repeats=1)
    assert got["pairs"] == 4 and got["shared_prefix_tokens"] > 0
    assert got["greedy_flags_equal"] == 4 and got["max_abs_logprob_difference"] < 1e-3
    assert len(got["seconds"]["plain"]) == len(got["seconds"]["shared_prefix"]) == 1 and got["speedup"] > 0


def test_answers_are_timed_per_batch_size_and_compared_with_the_first(bench, tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, seed=5).eval()
    got = bench.answer_batches(model, tiny_tokenizer, rows=3, batches=[1, 3], repeats=1)
    assert got["rows"] == 3 and set(got["seconds"]) == {"1", "3"}
    assert got["same_answers_as_first"] == {"1": 3, "3": 3}  # the decode loop is exact across batch sizes
    assert got["speedup_vs_first"]["1"] == 1.0


def test_bad_counts_are_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "0"])
    assert "--repeats must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--model", "no/such/dir"])
    assert "--model 'no/such/dir' is not a saved model directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--answer-batches", "16,x"])
    assert "--answer-batches must be positive integers separated by commas, got '16,x'" in capsys.readouterr().err
