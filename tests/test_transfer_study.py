"""read-train transfer: single-capability distillations at a few budgets, the measured T(B), resumable."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import build_tiny_model
from test_data import POOLS, CountingTeacher
from test_interventions import WeightProbe, head_utility

from read_lightning.reporting import transfer_study
from read_lightning.reporting.transfer_study import ROWS_FILE, transfer_main
from read_lightning.requirement.interventions import InterventionSetup, read_rows
from read_lightning.teachers.generation import StaticPromptSource

CAPS = list(POOLS)
RECIPE = """
seed_everything: 3
model: {lr: 1.0e-2, student_layers: "::2"}
data: {budget_tokens: 800, num_intervals: 4, max_new_tokens: 16, max_length: 64, max_tokens_per_batch: 256}
"""

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def recipe(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(RECIPE)
    return str(path)


@pytest.fixture()
def setup(tiny_tokenizer):
    return InterventionSetup(student=build_tiny_model(tiny_tokenizer), tokenizer=tiny_tokenizer,
                             teacher=CountingTeacher(), probe=WeightProbe(), utility=head_utility, capabilities=CAPS,
                             prompt_source=StaticPromptSource(POOLS), description={"student": "tiny"})


def test_the_study_writes_the_measured_matrices_and_curves(setup, recipe, tmp_path, capsys):
    out = tmp_path / "study"
    before = [p.detach().clone() for p in setup.student.parameters()]
    asked = {}
    real = transfer_study.run_intervention

    def spy(s, allocation, **kw):  # which prompts each one-hot distillation asked the teacher
        start = len(s.teacher.prompts)
        result = real(s, allocation, **kw)
        asked[(max(allocation, key=allocation.get), kw["budget_tokens"])] = s.teacher.prompts[start:]
        return result

    transfer_study.run_intervention = spy
    try:
        assert transfer_main(["--config", recipe, "--budgets", "400", "200", "--capabilities", "math", "code",
                              "--out", str(out)], setup=setup) == 0
    finally:
        transfer_study.run_intervention = real
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == {"output": str(out), "rows": 4,
                                                                           "complete": True}
    # one-hot: a capability's distillation trains on its own prompts only
    for (cap, _), prompts in asked.items():
        assert prompts and set(prompts) <= set(POOLS[cap]), cap
    assert sorted(asked) == [("code", 200), ("code", 400), ("math", 200), ("math", 400)]
    assert all(torch.equal(a, b) for a, b in zip(before, setup.student.parameters()))  # the base stays put

    rows = read_rows(out / ROWS_FILE, transfer_study.STUDY_ROW_FIELDS)
    study = json.loads((out / "transfer.json").read_text())
    assert study["capabilities"] == CAPS and study["distilled"] == ["math", "code"] and study["budgets"] == [200, 400]
    cell = {(r["capability"], r["budget"]): r for r in rows}
    for b in (200, 400):
        T = study["matrices"][str(b)]
        assert len(T) == 2 and all(len(row) == len(CAPS) for row in T)  # rows distilled, columns measured
        for i, name in enumerate(["math", "code"]):
            r = cell[(name, b)]
            assert T[i] == pytest.approx([r["s_after"][c] - r["s_before"][c] for c in CAPS])
            assert r["s_before"] == rows[0]["s_before"] and r["seed"] == 3 and 0 < r["tokens_spent"] <= b
    assert study["matrices"]["200"][0] != study["matrices"]["200"][1]  # two capabilities, two different rows
    assert any(abs(v) > 1e-4 for v in study["matrices"]["400"][0])  # training moved the student
    curve = study["curves"]["math"]
    assert curve["budgets"] == [0, 200, 400] and curve["own_change"][0] == 0.0
    assert curve["own_change"][1:] == pytest.approx([cell[("math", b)]["delta_s"]["math"] for b in (200, 400)])

    with (out / "transfer_matrix.csv").open() as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["budget", "distilled", *CAPS] and len(lines) == 1 + 4
    assert [float(v) for v in lines[1][2:]] == pytest.approx(study["matrices"]["200"][0], abs=1e-4)
    assert len((out / "transfer_curves.csv").read_text().splitlines()) == 1 + 2 * 3
    for name in ("transfer_heatmap.png", "transfer_curves.png", "transfer.md"):
        assert (out / name).stat().st_size > 0, name
    assert len(list(out.glob("events.out.tfevents.*.transfer"))) == 1
    assert len(list(out.glob("transfer_own_change_*/events.out.tfevents.*.transfer"))) == 2  # one per row
    transfer_study.write_study_outputs(out, rows)  # a rerun replaces its events, it does not add to them
    assert len(list(out.glob("**/events.out.tfevents.*.transfer"))) == 3
    assert "| math |" in (out / "transfer.md").read_text()
    from read_lightning.allocation.families import make_family_environment  # the study calibrates a family

    assert make_family_environment("measured", 0, study=out / "transfer.json").capabilities == ("math", "code")


def test_the_study_resumes_and_a_cell_depends_on_its_key_alone(setup, recipe, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["--config", recipe, "--budgets", "200", "400", "--out", str(out), "--capabilities", "math", "code",
            "--no-tensorboard"]
    transfer_main(args, setup=setup)
    first = read_rows(out / ROWS_FILE, transfer_study.STUDY_ROW_FIELDS)
    asked = len(setup.teacher.prompts)

    transfer_main(args, setup=setup)  # complete: nothing runs again
    assert len(setup.teacher.prompts) == asked
    # a process killed after three rows: the fourth is measured again, with the same result
    lines = (out / ROWS_FILE).read_text().splitlines(keepends=True)
    (out / ROWS_FILE).write_text("".join(lines[:3]) + lines[3][:20])  # and a torn last line
    with pytest.warns(UserWarning, match="torn last row"):
        transfer_main(args, setup=setup)
    again = read_rows(out / ROWS_FILE, transfer_study.STUDY_ROW_FIELDS)
    keys = ("capability", "budget", "delta_s", "training_tokens")
    assert [{k: r[k] for k in keys} for r in again] == [{k: r[k] for k in keys} for r in first]
    # one more capability adds its rows only; other settings are refused, and nothing written is lost
    transfer_main([*args[:-4], "--no-tensorboard"], setup=setup)
    assert len(read_rows(out / ROWS_FILE, transfer_study.STUDY_ROW_FIELDS)) == 6
    other = tmp_path / "other.yaml"
    other.write_text(RECIPE.replace("lr: 1.0e-2", "lr: 2.0e-2"))
    kept = (out / ROWS_FILE).read_bytes()
    with pytest.raises(SystemExit, match=r"seed 3\) was measured with other settings \(differ in \['lr'\]\)"):
        transfer_main(["--config", str(other), *args[2:]], setup=setup)
    assert (out / ROWS_FILE).read_bytes() == kept
    assert json.loads((out / "transfer.json").read_text())["distilled"] == CAPS


def test_seeds_repeat_every_cell_and_the_summary_gives_their_mean_and_spread(setup, recipe, tmp_path, capsys):
    out = tmp_path / "study"
    args = ["--config", recipe, "--budgets", "200", "400", "--out", str(out), "--capabilities", "math", "code",
            "--no-tensorboard"]
    transfer_main(args, setup=setup)  # seed 3, the recipe's
    one = json.loads((out / "transfer.json").read_text())
    assert one["seeds"] == [3] and one["seed_spread"] is None and "--seeds 2" in (out / "transfer.md").read_text()
    asked = len(setup.teacher.prompts)
    transfer_main([*args, "--seeds", "2"], setup=setup)  # seed 3 is there: only seed 4's four cells run
    rows = read_rows(out / ROWS_FILE, transfer_study.STUDY_ROW_FIELDS)
    assert [r["seed"] for r in rows] == [3] * 4 + [4] * 4 and len(setup.teacher.prompts) > asked
    study = json.loads((out / "transfer.json").read_text())
    assert study["seeds"] == [3, 4] and study["complete"] and "seed" not in study["settings"]
    cell = {(r["capability"], r["budget"], r["seed"]): r for r in rows}
    for b in (200, 400):
        for i, name in enumerate(["math", "code"]):
            per_seed = [[cell[(name, b, s)]["delta_s"][c] for c in CAPS] for s in (3, 4)]
            assert study["matrices_by_seed"]["3"][str(b)][i] == pytest.approx(per_seed[0])
            assert study["matrices"][str(b)][i] == pytest.approx(np.mean(per_seed, axis=0))
    assert study["matrices_by_seed"]["3"] == one["matrices"]  # the first seed's cells are unchanged
    assert study["matrices_by_seed"]["4"] != study["matrices_by_seed"]["3"]  # another seed, other data
    d = np.array([[[cell[(n, b, s)]["delta_s"][c] for c in CAPS] for s in (3, 4)] for n in ("math", "code")
                  for b in (200, 400)])  # (cells, seeds, K)
    pooled = np.sqrt(((d - d.mean(1, keepdims=True)) ** 2).sum() / (4 * len(CAPS)))
    assert study["seed_spread"] == {"sd": pytest.approx(pooled), "cells": 4 * len(CAPS), "df": 4 * len(CAPS)}
    assert "seeds 3, 4" in (out / "transfer.md").read_text() and "pooled over" in (out / "transfer.md").read_text()
    # a study stopped part-way: seed 5's missing cells are "not complete", its first seeds are whole
    transfer_main([*args, "--seeds", "3"], setup=setup)
    lines = (out / ROWS_FILE).read_text().splitlines(keepends=True)
    (out / ROWS_FILE).write_text("".join(lines[:-1]))
    transfer_study.write_study_outputs(out, read_rows(out / ROWS_FILE, transfer_study.STUDY_ROW_FIELDS), False)
    assert not json.loads((out / "transfer.json").read_text())["complete"]


def test_a_seed_that_trained_on_nothing_is_named_even_where_others_trained():
    def row(seed, tokens, change):
        return {"capability": "math", "budget": 200, "seed": seed, "s_before": dict.fromkeys(CAPS, 50.0),
                "s_after": {c: 50.0 + change for c in CAPS}, "delta_s": dict.fromkeys(CAPS, change),
                "training_tokens": tokens, "tokens_spent": 180, "settings": {"capabilities": CAPS}}

    study = transfer_study.summarize_study([row(0, 150, 1.0), row(1, 0, 0.0), row(2, 160, 2.0)])
    assert study["untrained"] == ["math at 200 (seed 1)"]
    assert study["matrices"]["200"][0] == pytest.approx([1.0] * len(CAPS))
    assert study["seed_spread"]["sd"] == pytest.approx(1.0) and study["seed_spread"]["df"] == 2 * len(CAPS)
    assert transfer_study.summarize_study([row(1, 0, 0.0)])["untrained"] == ["math at 200"]


def test_rows_written_before_seeds_were_keys_still_resume(setup, recipe, tmp_path, capsys):
    """Rows of a study written when the seed was a setting (the packaged study's) are read as that seed's."""
    out = tmp_path / "study"
    args = ["--config", recipe, "--budgets", "200", "400", "--out", str(out), "--capabilities", "math",
            "--no-tensorboard"]
    transfer_main(args, setup=setup)
    rows = read_rows(out / ROWS_FILE, transfer_study.STUDY_ROW_FIELDS)
    old = [{**r, "settings": {"seed": r["seed"], **r["settings"]}} for r in rows]
    (out / ROWS_FILE).write_text("".join(json.dumps(r) + "\n" for r in old))
    asked = len(setup.teacher.prompts)
    transfer_main(args, setup=setup)
    assert len(setup.teacher.prompts) == asked  # nothing measured again
    assert json.loads((out / "transfer.json").read_text())["seeds"] == [3]


@pytest.mark.parametrize("argv, message", [
    (["--budgets", "200"], "two or three budgets"),
    (["--budgets", "200", "0"], "positive number of tokens, got 0"),
    (["--budgets", "200", "200"], "budgets must differ"),
    (["--budgets", "1", "2", "3", "4"], "two or three budgets"),
    (["--capabilities", "math", "juggling"], "unknown capabilities \\['juggling'\\]"),
    (["--capabilities", "math", "math"], "named twice"),
    (["--seeds", "0"], "--seeds must be >= 1, got 0"),
    (["--seed", "-1"], "a seed must be an integer in \\[0, 2\\*\\*32\\), got -1"),
])
def test_bad_input_is_refused_before_any_model_loads(recipe, monkeypatch, argv, message):
    def no_models(*a, **kw):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("read_lightning.requirement.interventions.embedded_setup", no_models)
    with pytest.raises(SystemExit, match=message):
        transfer_main(["--config", recipe, *argv])


def test_a_bad_recipe_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr("read_lightning.requirement.interventions.embedded_setup", None)
    with pytest.raises(SystemExit, match="config file .*missing.yaml.* does not exist"):
        transfer_main(["--config", str(tmp_path / "missing.yaml")])
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(SystemExit, match="must hold a mapping"):
        transfer_main(["--config", str(bad)])
    bad.write_text("data: {prompt_source: prompts.jsonl}\n")
    with pytest.raises(SystemExit, match="prompt_source 'prompts.jsonl'"):
        transfer_main(["--config", str(bad)])


def test_every_packaged_recipe_gives_the_study_its_settings():
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.glob("recipes/*.yaml")):
        settings = transfer_study.recipe_settings(transfer_study.load_study_recipe(str(path)), str(path))
        assert settings["interval_tokens"] > 0 and settings["capabilities"], path


def test_a_recipe_whose_teacher_is_a_server_asks_the_server_and_runs_no_teacher_here(tmp_path, monkeypatch,
                                                                                      tiny_tokenizer):
    from pathlib import Path

    from read_lightning.evaluation.probes import CapabilityProbe
    from read_lightning.requirement import interventions
    from read_lightning.teachers.generation import HTTPTeacher
    from read_lightning.teachers.specs import HTTPTeacherSpec

    recipe = str(Path(__file__).parent.parent / "recipes" / "smollm2-135m-http.yaml")
    spec = transfer_study.recipe_settings(transfer_study.load_study_recipe(recipe), recipe)["teacher_spec"]
    assert spec == HTTPTeacherSpec("http://127.0.0.1:8000", "HuggingFaceTB/SmolLM2-135M-Instruct", timeout=60,
                                   concurrency=8)
    # read-train transfer hands the recipe's spec to the setup it builds
    built = {}

    def setup_stub(*args, **kwargs):
        built.update(kwargs)
        raise SystemExit("stub")

    monkeypatch.setattr(interventions, "embedded_setup", setup_stub)
    with pytest.raises(SystemExit, match="stub"):
        transfer_main(["--config", recipe, "--out", str(tmp_path / "study")])
    assert built["teacher_spec"] == spec
    monkeypatch.undo()
    # and the setup builds that teacher, loads the student alone and asks the server for the references
    loaded, asked = [], []
    monkeypatch.setattr("read_lightning.teachers.models.load_model",
                        lambda name, **kw: loaded.append((name, kw.get("shared", False))) or build_tiny_model(tiny_tokenizer))
    monkeypatch.setattr("read_lightning.teachers.models.load_tokenizer", lambda name, cache_dir=None: tiny_tokenizer)
    monkeypatch.setattr(CapabilityProbe, "build_references", lambda self, teacher, *a, **kw: asked.append(teacher))
    setup = interventions.embedded_setup(spec.model, "some/student", None, CAPS, probe_limit=1,
                                         reference_dir=tmp_path / "refs", teacher_spec=spec)
    assert isinstance(setup.teacher, HTTPTeacher) and setup.teacher.url.startswith("http://127.0.0.1:8000")
    assert loaded == [("some/student", False)]  # no teacher model in this process
    assert asked == [setup.teacher]


# --------------------------------------------------------------------------- the calibrated family


def _synthetic_study(budgets=(1000, 2000, 3000)):
    """A study written as read-train transfer writes it, its cells from known simulator dynamics."""
    from read_lightning.allocation.simulator import EnvParams, advance

    k = 3
    truth = EnvParams(capabilities=tuple(CAPS), hidden_requirement=np.full(k, 1 / 3), requirement=np.full(k, 1 / 3),
                      start=np.array([30.0, 50.0, 20.0]), ceiling=np.full(k, 100.0), rate=np.array([0.3, 0.05, 0.15]),
                      concavity=np.array([0.5, 2.0, 1.0]), pos=np.array([[0, 0.8, 0], [0, 0, 0], [0.2, 0, 0]]),
                      neg=np.array([[0, 0, 0.05], [0.02, 0, 0], [0, 0, 0]]), flip=np.array([1.5, 1e9, 4.0]),
                      token_cost=np.ones(k), probe_noise=0.0, dev_noise=0.0, tokens_per_decision=budgets[0],
                      decisions=8)
    rows = []
    for i, cap in enumerate(CAPS):
        for b in budgets:
            s, _ = advance(truth, truth.start[None], np.zeros((1, k)), (b / budgets[0]) * np.eye(k)[i][None])
            rows.append({"capability": cap, "budget": b, "seed": 0, "s_before": dict(zip(CAPS, truth.start)),
                         "s_after": dict(zip(CAPS, s[0])), "delta_s": dict(zip(CAPS, s[0] - truth.start)),
                         "tokens_spent": b, "training_tokens": b // (2 + i), "settings": {"capabilities": CAPS}})
    return truth, rows


def test_the_measured_family_reproduces_the_study_it_is_calibrated_on(tmp_path):
    from read_lightning.allocation.families import calibrated_params, make_family_environment
    from read_lightning.allocation.simulator import advance

    truth, rows = _synthetic_study()
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(transfer_study.summarize_study(rows)))
    p = calibrated_params(path)
    assert p.capabilities == tuple(CAPS) and p.tokens_per_decision == 1000
    assert p.start == pytest.approx(truth.start) and p.token_cost == pytest.approx([2.0, 3.0, 4.0], rel=1e-2)
    assert p.rate == pytest.approx(truth.rate, rel=0.1) and p.concavity == pytest.approx(truth.concavity, rel=0.2)
    study = json.loads(path.read_text())
    for b in study["budgets"]:  # every cell of every T(B), within 0.05 points
        s, _ = advance(p, p.start[None].repeat(3, 0), np.zeros((3, 3)), (b / 1000) * np.eye(3))
        assert s - p.start == pytest.approx(np.array(study["matrices"][str(b)]), abs=0.05), b
    assert p.pos[0, 1] > 0.5 and p.neg[0, 2] > 0.0 and p.pos[1].sum() < 1e-9  # the help and forgetting found

    env = make_family_environment("measured", 7, study=path, decisions=8)
    again = make_family_environment("measured", 7, study=path, decisions=8)
    assert env.params.requirement == pytest.approx(again.params.requirement)  # deterministic in the seed
    assert env.params.requirement != pytest.approx(make_family_environment("measured", 8, study=path).params.requirement)
    assert env.reset().keys() == set(CAPS)


def test_the_measured_family_draws_from_a_stream_of_its_own_that_adding_a_family_does_not_move():
    # Its draws were keyed on len(FAMILIES): adding real_noise gave every seed another environment.
    from read_lightning.allocation import families

    assert families.MEASURED_STREAM not in range(len(families.FAMILIES))  # no drawn family shares it
    env = families.make_family_environment("measured", 1000)  # the draw the documented figures used
    assert env.params.requirement[:2] == pytest.approx([0.01782, 0.53072], abs=5e-5)


def test_the_measured_family_refuses_an_unfinished_or_missing_study(tmp_path):
    from read_lightning.allocation.families import make_family_environment

    _, rows = _synthetic_study()
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(transfer_study.summarize_study(rows[:-1])))
    with pytest.raises(ValueError, match="T\\(B\\) at 3000 tokens is incomplete"):
        make_family_environment("measured", 0, study=path)
    packaged = make_family_environment("measured", 0)  # the packaged study of the embedded default
    assert packaged.capabilities == ("general_knowledge", "steerability", "reasoning", "long_context")
    assert packaged.params.tokens_per_decision == 3750
    with pytest.raises(ValueError, match="does not exist"):
        make_family_environment("measured", 0, study=tmp_path / "none.json")


def test_the_measured_family_is_probed_with_the_noise_its_study_measured(tmp_path):
    # A study of two seeds measures the spread of a cell between them; the family's probes take it
    # (a change is two probes: sd / sqrt 2 each). A study of one seed keeps the assumed noisy scale.
    from read_lightning.allocation.families import NOISY_SIGMA, make_family_environment, study_probe_sd

    _, rows = _synthetic_study()
    one = tmp_path / "one.json"
    one.write_text(json.dumps(transfer_study.summarize_study(rows)))
    shifted = [{**r, "seed": 1, "delta_s": {c: v + (0.3 if c == "math" else -0.3) for c, v in r["delta_s"].items()}}
               for r in rows]
    two = tmp_path / "two.json"
    two.write_text(json.dumps(transfer_study.summarize_study(rows + shifted)))
    sd = json.loads(two.read_text())["seed_spread"]["sd"]
    assert sd == pytest.approx(0.3 / np.sqrt(2)) and study_probe_sd(two) == pytest.approx(0.15)  # seeds 0.3 apart
    measured = make_family_environment("measured", 5, study=two)
    assert measured.params.noise_scale == pytest.approx(np.full(3, 0.15)) and not measured.params.heteroscedastic
    assumed = make_family_environment("measured", 5, study=one)
    assert study_probe_sd(one) is None and assumed.params.heteroscedastic
    assert np.all((assumed.params.noise_scale >= NOISY_SIGMA[0]) & (assumed.params.noise_scale <= NOISY_SIGMA[1]))
    assert measured.params.requirement == pytest.approx(assumed.params.requirement)  # the same draw of r
    bad = json.loads(two.read_text())
    bad["seed_spread"]["sd"] = float("nan")
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"bad\.json'?: seed_spread sd must be finite and > 0, got nan"):
        make_family_environment("measured", 5, study=tmp_path / "bad.json")


def test_the_measured_family_fits_a_study_file_once_and_again_when_it_changes(tmp_path, monkeypatch):
    from read_lightning.allocation import families

    truth, rows = _synthetic_study()
    path = tmp_path / "transfer.json"
    path.write_text(json.dumps(transfer_study.summarize_study(rows)))
    fits = []
    fit = families.calibrated_params
    monkeypatch.setattr(families, "calibrated_params", lambda *a, **k: fits.append(1) or fit(*a, **k))
    first = families.make_family_environment("measured", 1, study=path)
    first.params.start[:] = 0.0  # an environment's params are its own: the next one starts from the fit
    second = families.make_family_environment("measured", 2, study=path)
    assert len(fits) == 1 and second.params.start == pytest.approx(truth.start)
    assert families.make_family_environment("measured", 2, study=path, decisions=8).decisions == 8 and len(fits) == 2
    study = json.loads(path.read_text())
    study["base_profile"]["math"] += 10.0
    path.write_text(json.dumps(study, indent=1))  # rewritten: another size, so another key
    assert families.make_family_environment("measured", 1, study=path).params.start[0] == pytest.approx(truth.start[0] + 10.0)
    assert len(fits) == 3
