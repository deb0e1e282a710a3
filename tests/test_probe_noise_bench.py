"""benchmarks/probe_noise.py: the seed spread it reads from finished runs, and its refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("probe_noise.py")


def _run(root: Path, name: str, scores: list[list[float]], allocator: str = "task_static") -> Path:
    """A finished run with one probe profile per row of ``scores`` (capabilities a, b)."""
    run = root / name
    run.mkdir()
    history = [{"epoch": t, "profile": {"a": a, "b": b}} for t, (a, b) in enumerate(scores)]
    (run / "summary.json").write_text(json.dumps({"probes": {"history": history}}))
    bandit = {"class_path": "read_lightning.training.callbacks.BanditAllocationCallback",
              "init_args": {"allocator": allocator}}
    (run / "config.yaml").write_text(yaml.safe_dump({"trainer": {"callbacks": [bandit]}}))
    return run


def test_seed_spread_is_the_sd_across_runs_of_each_intervals_change(bench, tmp_path):
    runs = [
        _run(tmp_path, "s0", [[50, 80], [51, 80], [53, 81]]),
        _run(tmp_path, "s1", [[50, 80], [52, 80], [53, 83]]),
        _run(tmp_path, "s2", [[50, 80], [53, 80], [55, 82]]),
    ]
    out = bench.seed_spread(runs)
    # Capability a: interval changes (1, 2), (2, 1), (3, 2): sds 1.0 and sqrt(1/3), pooled by variance.
    assert out["a"]["delta_sd_per_interval"] == [1.0, round(math.sqrt(1 / 3), 3)]
    assert out["a"]["delta_sd_pooled"] == round(math.sqrt((1 + 1 / 3) / 2), 3)
    assert out["a"]["delta_mean"] == round((1 + 2 + 2 + 1 + 3 + 2) / 6, 3)
    assert out["a"]["final_sd"] == 1.155  # finals 53, 53, 55
    assert out["b"]["delta_sd_per_interval"] == [0.0, 1.0]  # (0, 1), (0, 3), (0, 2)


def test_family_range_is_the_noisy_familys_sd_at_the_level(bench):
    assert bench.family_range(50.0) == [0.5, 3.0]
    assert bench.family_range(90.0) == [0.3, 1.8]


def test_runs_of_different_allocators_or_lengths_are_refused(bench, tmp_path, capsys):
    a = _run(tmp_path, "a", [[50, 80], [51, 80]])
    b = _run(tmp_path, "b", [[50, 80], [52, 80]], allocator="read")
    with pytest.raises(SystemExit):
        bench.main(["--runs", str(a), str(b), "--no-items"])
    assert "different allocators" in capsys.readouterr().err
    c = _run(tmp_path, "c", [[50, 80], [52, 80], [53, 80]])
    with pytest.raises(SystemExit, match="different number of times"):
        bench.main(["--runs", str(a), str(c), "--no-items"])
    with pytest.raises(SystemExit):
        bench.main(["--runs", str(tmp_path / "missing"), str(a), "--no-items"])
    assert "not a finished run" in capsys.readouterr().err


def test_no_items_prints_the_seed_part_as_json(bench, tmp_path, capsys):
    a = _run(tmp_path, "a", [[50, 80], [51, 80]])
    b = _run(tmp_path, "b", [[50, 80], [52, 81]])
    assert bench.main(["--runs", str(a), str(b), "--no-items"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["allocator"] == "task_static" and "items" not in out
    # sd per unit of change: a's changes 1, 2 (sd 0.707, mean 1.5), b's 0, 1 (sd 0.707, mean 0.5)
    assert out["real_sd_per_change"] == [0.47, 1.41]
    noisy = out["families"]["8_decisions"]["noisy"]
    assert noisy["sd_per_change"] == round(noisy["median_change_sd"] / noisy["mean_abs_change"], 2) > 1
    assert out["families"]["25_decisions"]["sign_flip"]["median_change_sd"] == round(0.05 * 2 ** 0.5, 3)
    scale = math.sqrt(2) * math.sqrt(80.5 * 19.5) / 50  # b's final score, mean over the runs: 80.5
    assert out["seeds"]["b"]["noisy_family_delta_sd"] == [round(0.5 * scale, 3), round(3.0 * scale, 3)]
