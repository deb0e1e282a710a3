"""A measured transfer prior (``study.TransferStudy``) and ``read_study``: the prior read from a study, its
budget index, ``read-train transfer`` outputs, and what it does to the mixture."""

from __future__ import annotations

import json

import numpy as np
import pytest

from read_lightning.allocation.bandit import ALLOCATORS, allocator_options, make_allocator
from read_lightning.allocation.families import MEASURED_STUDY, make_family_environment
from read_lightning.allocation.simulator import run_episode
from read_lightning.allocation.study import PACKAGED_STUDY, STUDY_NOISE, TransferStudy, seed_noise
from read_lightning.allocation.transfer import StudyAllocator, TransferAllocator, fit_transfer

CAPS = ("math", "code", "reasoning")


def _study(noise: float = 0.01) -> TransferStudy:
    # Each capability trained alone to budgets 1 and 2 (cumulative changes from the start, [b, i, j]):
    # math's own change is 4 then 6; it helps reasoning steadily (1 per segment against reasoning's own
    # 4) and helps code in the first segment only (2 against code's own 4, then -1: the help turns).
    changes = np.array([
        [[4.0, 2.0, 1.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]],
        [[6.0, 1.0, 2.0], [0.0, 8.0, 0.0], [0.0, 0.0, 8.0]],
    ])
    return TransferStudy(CAPS, np.array([1.0, 2.0]), changes, np.full(changes.shape, noise))


def test_the_prior_is_the_relative_transfer_of_the_segment_ahead():
    study = _study()
    rel, se = study.prior(np.zeros(3))
    assert rel.shape == se.shape == (3, 3)
    assert rel[0, 2] == pytest.approx(0.25, abs=1e-3)  # 1 per 4 of reasoning's own change, in both segments
    assert rel[0, 1] == 0.0  # 0.5 now, but the next segment turns it to -0.25: the smaller, clipped at 0
    assert np.all(np.diag(rel) == 0.0) and rel[1].sum() == rel[2].sum() == 0.0  # no transfer measured from them
    assert 0.0 < se[0, 2] < 0.01
    later, _ = study.prior(np.array([1.5, 0.0, 0.0]))  # math in the last segment studied
    assert later[0, 2] == pytest.approx(0.25, abs=1e-3) and later[0, 1] == 0.0
    past, _ = study.prior(np.array([2.0, 0.0, 0.0]))  # past the largest budget: no prior
    assert not past.any()


def test_a_segment_with_no_ratio_does_not_override_a_measured_one():
    # reasoning's own change stops in the second segment (it saturated in its own study): math's help
    # to it there cannot be read as a ratio, and the first segment's 0.25 stands
    study = _study()
    changes = study.changes.copy()
    changes[1, 2, 2] = changes[0, 2, 2]
    saturated = TransferStudy(CAPS, study.budgets, changes, study.noise)
    assert saturated.prior(np.zeros(3))[0][0, 2] == pytest.approx(0.25, abs=1e-3)
    assert saturated.prior(np.array([1.5, 0.0, 0.0]))[0][0, 2] == 0.0  # only the segment with no ratio: no prior


def test_a_noisy_ratio_is_shrunk_and_a_change_within_the_noise_gives_none():
    loud = _study(noise=1.0)  # noise 1 per 4 of own change: the 0.25 ratio is shrunk to half of itself
    rel, se = loud.prior(np.zeros(3))
    assert se[0, 2] == pytest.approx(np.hypot(1.0, 0.25) / 4)
    assert rel[0, 2] == pytest.approx(0.25 * 0.25**2 / (0.25**2 + se[0, 2] ** 2)) and rel[0, 2] < 0.13
    drowned = _study(noise=2.5)  # every own change of 4 is within twice its noise: nothing to divide by
    assert not drowned.prior(np.zeros(3))[0].any()


def test_the_fit_starts_from_the_prior_where_the_run_says_nothing():
    rel = np.zeros((3, 3))
    rel[0, 2] = 0.5  # the study: math moves reasoning half as much as reasoning's own training
    w = np.tile([0.4, 0.3, 0.3], (10, 1))  # identical mixtures identify only each target's total
    delta = np.sqrt(w) * np.array([2.0, 2.0, 2.0])
    mean, _, scale = fit_transfer(w, delta, 1.0, 0.1, rel, np.zeros((3, 3)))
    assert mean[0, 2] == pytest.approx(0.5 * scale[2], rel=0.1)
    plain, _, _ = fit_transfer(w, delta, 1.0, 0.1)
    assert abs(plain[0, 2]) < 0.05 * scale[2]  # without a study: no transfer claimed


def test_study_validation_names_the_bad_value():
    changes, noise = np.zeros((2, 3, 3)), np.zeros((2, 3, 3))
    with pytest.raises(ValueError, match=r"increasing numbers > 0, got \[2.0, 1.0\]"):
        TransferStudy(CAPS, [2.0, 1.0], changes, noise)
    with pytest.raises(ValueError, match=r"changes must have shape \(2, 3, 3\), got \(1, 3, 3\)"):
        TransferStudy(CAPS, [1.0, 2.0], changes[:1], noise)
    with pytest.raises(ValueError, match="noise must be finite and >= 0"):
        TransferStudy(CAPS, [1.0, 2.0], changes, -noise - 1.0)


def test_a_read_train_transfer_output_in_the_runs_intervals():
    study = TransferStudy.from_report(MEASURED_STUDY, ("general_knowledge", "math", "reasoning"), interval_tokens=5000)
    report = json.loads(MEASURED_STUDY.read_text())
    assert np.allclose(study.budgets, np.array(report["budgets"]) / 5000)
    assert np.isnan(study.changes[:, 1]).all()  # math was not distilled: no row
    assert study.changes[0, 0, 2] == pytest.approx(report["matrices"][str(report["budgets"][0])][0][2])
    own = abs(study.changes[:, 2, 2]).max()
    assert study.noise[0, 0, 2] == pytest.approx(STUDY_NOISE * own)
    rel, _ = study.prior(np.zeros(3))
    assert not rel[1].any() and not rel[:, 1].any()  # nothing from math, and no own change of math to divide by
    for kwargs, match in (({"interval_tokens": 0}, "interval_tokens must be a number of tokens > 0, got 0"),
                          ({"interval_tokens": 5000, "noise": -1}, "study noise must be a number >= 0, got -1")):
        with pytest.raises(ValueError, match=match):
            TransferStudy.from_report(MEASURED_STUDY, CAPS, **kwargs)
    with pytest.raises(ValueError, match="measured no change of \\['cooking'\\]"):
        TransferStudy.from_report(MEASURED_STUDY, ("math", "cooking"), 5000)
    with pytest.raises(ValueError, match="not a read-train transfer study"):
        TransferStudy.from_report({"capabilities": ["math"]}, ("math",), 5000)


def _seeded_report(deviations: list[float]) -> dict:
    """A read-train transfer output of two capabilities, both distilled, at 1000 and 2000 tokens, one seed per
    entry of ``deviations``: seed ``s`` measures every cell's change plus ``deviations[s]`` at the first
    budget and plus twice that at the second, so each segment of seed ``s`` is off by ``deviations[s]``."""
    base = np.array([[[2.0, 1.0], [0.5, 4.0]], [[3.0, 1.5], [1.0, 8.0]]])  # [b, i, j]; own changes 3 and 8
    by_seed = {str(s): {str(b): (base[k] + (k + 1) * d).tolist() for k, b in enumerate((1000, 2000))}
               for s, d in enumerate(deviations)}
    mean = {str(b): np.mean([by_seed[s][str(b)] for s in by_seed], axis=0).tolist() for b in (1000, 2000)}
    return {"capabilities": ["math", "code"], "distilled": ["math", "code"], "budgets": [1000, 2000],
            "matrices": mean, "matrices_by_seed": by_seed}


def test_a_study_of_several_seeds_gives_its_own_noise():
    report = _seeded_report([-0.5, 0.0, 0.5])
    study = TransferStudy.from_report(report, ("math", "code"), interval_tokens=1000)
    # every segment's deviations are -0.5, 0, 0.5 (sd 0.5) in points; per unit of the target's largest
    # own change (3 for math, 8 for code) the pooled variance is the mean of 0.25 / 9 and 0.25 / 64
    measured = np.sqrt((0.25 / 9 + 0.25 / 64) / 2)
    assert study.noise[0, 1, 0] == pytest.approx(measured * 3 / np.sqrt(3))  # the mean of 3 seeds
    assert study.noise[1, 0, 1] == pytest.approx(measured * 8 / np.sqrt(3))
    assert study.changes[1, 1, 1] == pytest.approx(8.0)
    told = TransferStudy.from_report(report, ("math", "code"), 1000, noise=0.1)  # given: still over sqrt(3)
    assert told.noise[0, 0, 1] == pytest.approx(0.1 * 8 / np.sqrt(3))
    one = _seeded_report([0.0])  # one seed cannot measure its spread: STUDY_NOISE
    assert TransferStudy.from_report(one, ("math", "code"), 1000).noise[0, 0, 0] == pytest.approx(STUDY_NOISE * 3)
    same = _seeded_report([0.2, 0.2])  # seeds that agree: no spread, and the prior is not shrunk
    assert TransferStudy.from_report(same, ("math", "code"), 1000).noise.max() == 0.0
    # a seed that did not measure a cell leaves it out of the spread and of that cell's count
    partial = _seeded_report([-0.5, 0.5])
    partial["matrices_by_seed"]["1"]["2000"][1] = [None, None]
    study = TransferStudy.from_report(partial, ("math", "code"), 1000)
    per_unit = np.sqrt((0.5 / 9 + 0.5 / 64 + 0.5 / 9 + 0.5 / 64 + 0.5 / 9 + 0.5 / 64) / 6)
    assert study.noise[1, 1, 0] == pytest.approx(per_unit * 3)  # code at 2000: one seed
    assert study.noise[1, 0, 0] == pytest.approx(per_unit * 3 / np.sqrt(2))
    assert seed_noise([study.changes], np.ones(2)) is None
    with pytest.raises(ValueError, match="matrices_by_seed are not readable"):
        TransferStudy.from_report({**report, "matrices_by_seed": {"0": {"1000": [[1.0]]}}}, ("math", "code"), 1000)


def test_the_packaged_study_is_its_rows_and_gives_its_measured_noise():
    from read_lightning.reporting.transfer_study import STUDY_ROW_FIELDS, summarize_study
    from read_lightning.requirement.interventions import read_rows

    rows = read_rows(PACKAGED_STUDY.with_name("smollm2-135m-seeds_rows.jsonl"), STUDY_ROW_FIELDS)
    report = json.loads(PACKAGED_STUDY.read_text())
    assert json.loads(json.dumps(summarize_study(rows))) == report and report["seeds"] == [0, 1, 2, 3] and report["complete"]
    one = json.loads(MEASURED_STUDY.read_text())  # seed 0 alone: the same rows
    assert report["matrices_by_seed"]["0"] == one["matrices"]
    caps = ("long_context", "steerability", "reasoning", "general_knowledge")
    study = TransferStudy.from_report(PACKAGED_STUDY, caps, interval_tokens=5000)
    own = np.abs(np.einsum("bjj->bj", study.changes)).max(0)
    per_seed = study.noise[0, 0] / own * 2  # a mean over four seeds has half one seed's noise
    assert np.allclose(per_seed, per_seed[0]) and 0.1 < per_seed[0] < STUDY_NOISE  # measured: 0.22


def test_read_study_needs_a_study_that_fits_the_run():
    assert ALLOCATORS["read_study"] is StudyAllocator and {"study", "interval_tokens"} <= allocator_options("read_study")
    with pytest.raises(ValueError, match="read_study needs study"):
        make_allocator("read_study", CAPS, [0.5, 0.3, 0.2])
    with pytest.raises(ValueError, match="needs interval_tokens"):
        make_allocator("read_study", CAPS, [0.5, 0.3, 0.2], study=MEASURED_STUDY)
    with pytest.raises(ValueError, match="study's capabilities \\['math', 'code', 'reasoning'\\]"):
        make_allocator("read_study", ("math", "reasoning", "code"), [0.5, 0.3, 0.2], study=_study())
    alloc = make_allocator("read_study", ("general_knowledge", "math"), [0.5, 0.5], study=str(MEASURED_STUDY),
                           interval_tokens=5000)
    assert alloc.probe == 0.0 and alloc.prior_sd == 0.1 and alloc.z == 0.5  # the settings measured with a study
    assert TransferAllocator(CAPS, [0.5, 0.3, 0.2]).probe == 0.1  # read_transfer's own, unchanged


def _helper_environment(seed: int = 4):
    """An ``additive`` environment probed without noise, and its helper: the little-required capability
    whose training moves the most required one most."""
    env = make_family_environment("additive", seed, decisions=12)
    env.params.probe_noise = 0.0
    order = np.argsort(-env.params.requirement)
    low = order[len(order) // 2 :]
    helper = int(low[np.argmax(env.params.pos[low, order[0]])])
    return env, helper


def test_a_repeated_simulated_study_averages_its_probe_draws():
    env = make_family_environment("additive", 3, decisions=8)
    one = TransferStudy.simulate(env, [1, 2], seed=3)
    assert np.array_equal(one.changes, TransferStudy.simulate(env, [1, 2], seed=3, repeats=1).changes)
    assert one.noise.min() > 0
    many = TransferStudy.simulate(env, [1, 2], seed=3, repeats=16)
    assert np.allclose(many.noise, one.noise / 4)
    truth = TransferStudy.simulate(env, [1, 2], seed=3, repeats=10**4).changes  # all but noise-free
    assert np.std(many.changes - truth) < 0.5 * np.std(one.changes - truth)
    with pytest.raises(ValueError, match="study repeats must be an integer >= 1, got 0"):
        TransferStudy.simulate(env, [1, 2], repeats=0)


def test_a_study_that_shows_a_helper_moves_mass_onto_it():
    env, helper = _helper_environment()
    r = env.params.requirement
    study = TransferStudy.simulate(env, [1, 2, 4, 8], seed=0)
    assert study.prior(np.zeros(len(r)))[0][helper].max() > 0.5  # the study sees the helper
    with_study = run_episode(make_allocator("read_study", env.capabilities, r, study=study), env, 12)
    plain = run_episode(make_allocator("read", env.capabilities, r), env, 12)
    assert with_study.allocations[6:, helper].mean() > 3 * r[helper]
    assert with_study.allocations[6:, helper].mean() > 2 * plain.allocations[6:, helper].mean()  # read cannot see it
    assert with_study.utility > plain.utility


def test_the_explanation_names_the_prior():
    env, _ = _helper_environment(5)
    alloc = make_allocator("read_study", env.capabilities, env.requirement, study=TransferStudy.simulate(env, [1, 2]))
    run_episode(alloc, env, 6)
    assert "(prior: a measured study), probe 0" in alloc.last_info["explain"]["rule"]
    plain = make_allocator("read_transfer", env.capabilities, env.requirement)
    run_episode(plain, env, 6)
    assert "(prior: no transfer), probe 0.1" in plain.last_info["explain"]["rule"]


def test_the_callback_reads_a_study_in_the_runs_intervals():
    # the data module's budget over its intervals: the study's token budgets in the run's intervals
    from types import SimpleNamespace

    from read_lightning.training.callbacks import BanditAllocationCallback

    caps = ["general_knowledge", "steerability", "reasoning", "long_context"]
    cb = BanditAllocationCallback(allocator="read_study", requirement=dict.fromkeys(caps, 0.25),
                                  allocator_kwargs={"warmup": 2, "study": str(MEASURED_STUDY)})
    dm = SimpleNamespace(ledger=SimpleNamespace(budget=40_000), num_intervals=8)
    kwargs = cb._kwargs_for(dm)
    assert kwargs["interval_tokens"] == 5000 and cb.allocator_kwargs == {"warmup": 2, "study": str(MEASURED_STUDY)}
    alloc = make_allocator("read_study", caps, dict.fromkeys(caps, 0.25), **kwargs)
    assert np.allclose(alloc.study.budgets, [0.75, 1.5])  # the packaged study: 3750 and 7500 tokens
    given = BanditAllocationCallback(allocator="read_study", requirement=dict.fromkeys(caps, 0.25),
                                     allocator_kwargs={"study": str(MEASURED_STUDY), "interval_tokens": 2500})
    assert given._kwargs_for(dm)["interval_tokens"] == 2500  # a value given is kept
