"""benchmarks/compare_jobs.py: what it runs, how it reads the two tables, what it refuses."""

from __future__ import annotations

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("compare_jobs.py")


def test_both_sides_run_the_same_comparison_but_for_the_jobs(bench, tmp_path):
    one = bench.compare_command("r.yaml", "read", 2, 1, 10_000, tmp_path / "a")
    two = bench.compare_command("r.yaml", "read", 2, 2, 10_000, tmp_path / "b")
    differ = [(x, y) for x, y in zip(one, two) if x != y]
    assert differ == [("1", "2"), (str(tmp_path / "a"), str(tmp_path / "b"))]
    assert one[one.index("--data.budget_tokens") + 1] == "10000" and one[one.index("--seeds") + 1] == "2"
    assert "--data.budget_tokens" not in bench.compare_command("r.yaml", "read", 2, 1, None, tmp_path)  # the recipe's


def write_table(path, walls, utilities):
    """A comparison's compare.csv as ``read-train compare`` writes it: per-run rows, then mean and std."""
    from read_lightning.reporting.tables import write_csv

    rows = [{"allocator": "read", "seed": s, "task_utility": u, "wall_seconds": w}
            for s, (w, u) in enumerate(zip(walls, utilities))]
    path.parent.mkdir(parents=True)
    write_csv(path, rows, {"read": {"task_utility": (sum(utilities) / 2, 0.1), "wall_seconds": (sum(walls) / 2, 5.0)}})


def test_tables_are_compared_on_every_run_and_column_but_the_wall_clock(bench, tmp_path):
    write_table(tmp_path / "a" / "recipe" / "compare.csv", [100.0, 110.0], [67.5, 70.0])
    write_table(tmp_path / "b" / "recipe" / "compare.csv", [70.0, 80.0], [67.5, 70.0])
    write_table(tmp_path / "c" / "recipe" / "compare.csv", [70.0, 80.0], [67.5, 70.5])
    a, b, c = (bench.table_rows(tmp_path / s) for s in "abc")
    assert [r["seed"] for r in a] == ["0", "1"]  # the mean and std rows are not runs
    assert bench.run_walls(a) == [100.0, 110.0] and bench.run_walls(b) == [70.0, 80.0]
    assert bench.differing_columns(a, b) == ([], 0.0)
    assert bench.differing_columns(a, c) == (["task_utility"], pytest.approx(0.5))
    assert bench.differing_columns(a, a[:1])[0] == ["<rows>"]
    d = [dict(row, task_utility=str(float(row["task_utility"]) + 5e-6)) for row in a]  # float rounding of threads
    assert bench.differing_columns(a, d) == ([], pytest.approx(5e-6))
    words = [dict(row, allocator="greedy") for row in a]
    assert bench.differing_columns(a, words)[0] == ["allocator"]
    lost = [dict(row, task_utility="nan") for row in a]  # a score one side could not compute
    assert bench.differing_columns(a, lost) == (["task_utility"], 0.0) and bench.differing_columns(lost, lost) == ([], 0.0)


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--jobs", "1"], "--jobs must be >= 2 (it is compared with 1), got 1"),
    (["--budget-tokens", "0"], "--budget-tokens must be >= 1, got 0"),
    (["--config", "no/such.yaml"], "--config 'no/such.yaml': no such recipe"),
])
def test_bad_arguments_are_refused_before_anything_runs(bench, capsys, argv, message):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err
