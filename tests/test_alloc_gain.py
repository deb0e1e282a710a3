"""The default allocator ``read`` (GainTrackingAllocator): exact resume, speed, and what it reacts to."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch

from read_lightning.allocation.gain import GainTrackingAllocator
from read_lightning.allocation.bandit import ALLOCATORS, make_allocator
from read_lightning.allocation.families import make_family_environment
from read_lightning.allocation.simulator import run_episode


def test_read_is_the_gain_tracking_allocator_and_the_published_one_keeps_a_name():
    from read_lightning.training.callbacks import BanditAllocationCallback
    from read_lightning.allocation.ucb import UCBEnsembleAllocator

    assert ALLOCATORS["read"] is GainTrackingAllocator and ALLOCATORS["read_ucb"] is UCBEnsembleAllocator
    assert BanditAllocationCallback(requirement={"math": 1.0}).allocator_name == "read"


def _drive(alloc, env, steps: int, profile=None):
    """``steps`` select/step/observe rounds on ``env`` from ``profile`` (default: its reset); returns mixtures and the last profile."""
    profile = env.reset() if profile is None else profile
    out = []
    for t in range(steps):
        w = alloc.select(profile=profile, remaining=1.0 - t / 25)
        out.append(w)
        profile, cost = env.step(w)
        alloc.observe(profile=profile, cost=cost)
    return out, profile


def test_state_round_trip_continues_exactly_while_it_tilts():
    env = make_family_environment("saturation", 3)
    a = GainTrackingAllocator(env.capabilities, env.requirement, seed=1)
    _, profile = _drive(a, env, 8)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = GainTrackingAllocator(env.capabilities, env.requirement, seed=7)
    b.load_state_dict(torch.load(buf, weights_only=True))  # plain python: safe-loading works
    twin = make_family_environment("saturation", 3)
    _drive(GainTrackingAllocator(env.capabilities, env.requirement), twin, 8)  # the same environment state
    seq_a, _ = _drive(a, env, 6, profile)
    seq_b, _ = _drive(b, twin, 6, profile)
    assert seq_a == seq_b
    assert any(not np.allclose(w, env.params.requirement) for w in seq_a)  # it did tilt: not vacuous


def test_round_trip_mid_decision_keeps_the_pending_choice():
    env = make_family_environment("saturation", 4)
    a = GainTrackingAllocator(env.capabilities, env.requirement)
    _, profile = _drive(a, env, 5)
    a.select(profile=profile, remaining=0.5)
    b = GainTrackingAllocator(env.capabilities, env.requirement)
    b.load_state_dict(a.state_dict())
    nxt, cost = env.step([1 / 8] * 8)
    assert a.observe(profile=nxt, cost=cost) == b.observe(profile=nxt, cost=cost)
    assert a.state_dict() == b.state_dict()


def test_a_decision_takes_well_under_50_ms():
    env = make_family_environment("noisy", 2, decisions=100)
    alloc = GainTrackingAllocator(env.capabilities, env.requirement)
    t0 = time.perf_counter()
    result = run_episode(alloc, env)
    assert (time.perf_counter() - t0) / 100 < 0.05
    assert result.ms_per_decision < 50.0


def test_it_moves_mass_off_a_saturated_capability():
    # family-B-like: the most required capability saturates within a few intervals
    # (measured: second-half share / r_top 0.29, 0.27, 0.39, 1.04 on seeds 0-3; 0.56, 0.42, 0.69, 1.03
    # before the harm test got its own, longer window; on seed 3 the rule never finds the fall)
    late, lowest = [], []
    for seed in range(4):
        env = make_family_environment("saturation", seed)
        r = env.params.requirement
        top = int(np.argmax(r))
        result = run_episode(GainTrackingAllocator(env.capabilities, env.requirement), env)
        share = result.allocations[:, top] / r[top]
        late.append(share[12:].mean())
        lowest.append(share.min())
        assert np.allclose(result.allocations[0], r)  # warm-up: w = r
        assert share.min() >= 0.1 - 1e-9  # never below the exploration floor
    assert np.mean(late) < 0.6, late  # on average well below its r share in the second half
    assert sum(m < 0.3 for m in lowest) >= 3, lowest


def test_noise_alone_leaves_it_at_r():
    # no capability changes at all: every difference between returns is probe noise
    caps = ["math", "code", "reasoning", "general_knowledge"]
    r = [0.4, 0.3, 0.2, 0.1]
    alloc = GainTrackingAllocator(caps, r)
    rng = np.random.default_rng(0)
    level = np.array([40.0, 50.0, 30.0, 60.0])
    profile = level + rng.normal(0, 1.5, 4)
    for t in range(20):
        w = alloc.select(profile=profile.tolist(), remaining=1 - t / 20)
        profile = level + 0.5 * t + rng.normal(0, 1.5, 4)  # all rise alike, plus noise
        alloc.observe(profile=profile.tolist(), cost=1.0)
    assert np.allclose(w, r)


def test_a_required_capability_hurt_while_holding_its_share_sends_it_back_to_r():
    caps = ["math", "code", "reasoning"]
    r = np.array([0.5, 0.3, 0.2])
    alloc = GainTrackingAllocator(caps, r.tolist(), warmup=2)
    s = np.array([30.0, 30.0, 30.0])
    # the harm window (harm_memory 0.85) weighs code's early gains for a while: it is seen at t = 12
    # here (at t = 6 with the short window of 0.5, which the noise of a saturated capability trips)
    for t in range(14):
        w = np.array(alloc.select(profile=s.tolist(), remaining=1 - t / 14))
        # math saturates after the warm-up; code keeps falling (spillover) whatever it gets
        gain = np.array([3.0 if t < 2 else 0.0, -0.3 if t >= 2 else 1.0, 1.0]) * np.sqrt(w / r)
        s = s + gain
        alloc.observe(profile=s.tolist(), cost=1.0)
    assert alloc.last_info["harmed"] >= 1
    assert np.allclose(alloc.select(profile=s.tolist(), remaining=0.1), r)
    unguarded = GainTrackingAllocator(caps, r.tolist(), warmup=2, harm_guard=False)
    unguarded.load_state_dict({**alloc.state_dict(), "pending": None})
    assert not np.allclose(unguarded.select(profile=s.tolist(), remaining=0.1), r)  # the guard is what held it


def _harm_alarms(harm_memory: float, seeds=range(6)) -> float:
    """Share of decisions on which the harm rule fires when one capability only saturates (no harm at all)."""
    caps, r = ["math", "code", "reasoning", "general_knowledge"], np.array([0.4, 0.3, 0.2, 0.1])
    fired = []
    for seed in seeds:
        alloc = GainTrackingAllocator(caps, r.tolist(), harm_memory=harm_memory)
        rng = np.random.default_rng(seed)
        true = np.full(4, 30.0)
        s = true + rng.normal(0, 0.5, 4)
        for t in range(20):
            w = np.array(alloc.select(profile=s.tolist(), remaining=1 - t / 20))
            if t >= 2:
                fired.append(alloc.last_info["harmed"] > 0)
            true = true + np.array([3.0 if t < 3 else 0.0, 1.0, 1.0, 1.0]) * np.sqrt(w / r)  # math saturates at t = 3
            s = true + rng.normal(0, 0.5, 4)
            alloc.observe(profile=s.tolist(), cost=1.0)
    return float(np.mean(fired))


def test_a_saturated_capability_noise_does_not_trip_the_harm_rule():
    # its return is 0 plus noise: over the short trend window (the old rule) the noise crossed the
    # threshold on 9% of decisions, each sending the mixture back to r; over the harm window, never
    assert _harm_alarms(0.5) > 0.05
    assert _harm_alarms(0.85) == 0.0


def _forgotten_run(futile_z):
    """Math saturates (flat, not falling) at t = 3; code is forgotten whatever mass it gets; (K,) shares / r at the end."""
    caps, r = ["math", "code", "reasoning", "general_knowledge"], np.array([0.4, 0.3, 0.2, 0.1])
    alloc = GainTrackingAllocator(caps, r.tolist(), futile_z=futile_z)
    rng = np.random.default_rng(0)
    true = np.full(4, 40.0)
    s = true + rng.normal(0, 0.5, 4)
    for t in range(12):
        w = np.array(alloc.select(profile=s.tolist(), remaining=1 - t / 12))
        true = true + np.array([3.0 if t < 3 else 0.0, -1.0, 1.0, 1.0]) * np.sqrt(w / r) - np.array([0.0, 0.5, 0.0, 0.0])
        s = true + rng.normal(0, 0.5, 4)
        alloc.observe(profile=s.tolist(), cost=1.0)
    return w / r, alloc.last_info


def test_a_capability_that_loses_ground_whatever_it_gets_keeps_only_the_floor():
    share, info = _forgotten_run(0.5)
    assert info["futile"] == 1 and info["harmed"] >= 1
    assert share[1] < 0.2  # code keeps about the floor (0.1 of r) after renormalising
    assert share[0] > 1.0 and share[2] > 1.0  # its mass went to the others (the saturated math is not futile)
    unruled, _ = _forgotten_run(None)
    assert np.allclose(unruled, 1.0)  # without the rule, the harm guard holds w = r


def test_pure_noise_seldom_makes_a_capability_futile():
    # all capabilities flat, probes noisy: the level test fires in a few runs in a hundred (measured
    # 6% at 8 and 25 decisions for 6 capabilities); a slope test at 0.5 standard errors fired in 95-98%
    caps = ["math", "code", "reasoning", "general_knowledge", "tool_use", "multilingual"]
    r = [0.3, 0.25, 0.2, 0.1, 0.1, 0.05]
    fired = 0
    for seed in range(40):
        alloc = GainTrackingAllocator(caps, r)
        rng = np.random.default_rng(seed)
        profile = (40.0 + rng.normal(0, 1.0, 6)).tolist()
        hit = False
        for t in range(12):
            alloc.select(profile=profile, remaining=1 - t / 12)
            hit |= bool(alloc.last_info.get("futile"))
            profile = (40.0 + rng.normal(0, 1.0, 6)).tolist()
            alloc.observe(profile=profile, cost=1.0)
        fired += hit
    assert fired <= 6, fired


def test_give_freed_fills_by_marginal_return_up_to_the_cap():
    alloc = GainTrackingAllocator(["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1], max_boost=1.5)
    r = alloc.requirement
    w = np.array([0.04, 0.3, 0.2, 0.1])  # a deflated to its floor: 0.36 freed
    recent = np.array([1.0, 4.0, 1.0, -1.0])
    out, marginal = alloc.give_freed(w, recent, futile=np.zeros(4, dtype=bool))
    assert marginal[0] == 0.0 and marginal[3] == 0.0  # deflated, and no longer gaining: not receivers
    assert marginal[1] == pytest.approx(np.sqrt(0.3) * 4.0) and marginal[2] == pytest.approx(np.sqrt(0.2) * 1.0)
    assert out[0] == w[0] and out[3] == w[3]
    assert out[1] == pytest.approx(1.5 * r[1]) and out[2] == pytest.approx(1.5 * r[2])  # both filled to the cap
    assert out.sum() == pytest.approx(1.0 - 0.36 + 0.25)  # what the caps leave is spread pro rata later
    out, _ = alloc.give_freed(np.array([0.04, 0.3, 0.2, 0.1]), np.array([1.0, 4.0, 1.0, 1.0]),
                              futile=np.array([False, False, False, True]))
    assert out[3] == 0.1  # a futile capability receives nothing
    gain_b, gain_c = out[1] - 0.3, out[2] - 0.2
    assert gain_b == pytest.approx(0.15) and gain_c == pytest.approx(0.1)  # b capped at 1.5 r; c then filled too


def _saturation_gain_over(**previous) -> list[float]:
    """Per saturation seed 0-5: the default's final utility / that of ``read`` with ``previous`` options, - 1."""
    diff = []
    for seed in range(6):
        env = make_family_environment("saturation", seed)
        new = run_episode(GainTrackingAllocator(env.capabilities, env.requirement), env).utility
        env = make_family_environment("saturation", seed)
        old = run_episode(GainTrackingAllocator(env.capabilities, env.requirement, **previous), env).utility
        diff.append(new / old - 1.0)
    return diff


def test_the_default_beats_the_previous_rule_where_the_best_mixtures_concentrate():
    # measured on saturation seeds 0-5: +0.30% on average, never below it by more than 0.1% (+0.50%
    # before the ceiling cap, which both sides now have)
    diff = _saturation_gain_over(freed_to="pro_rata")
    assert np.mean(diff) > 0.002 and min(diff) > -0.002, diff


def _saturating_run(ceiling_z, seed, sd=0.3, steps=25, **options):
    """Math closes 0.8 x its share of the way to 60 each interval; the others rise 3 points per unit of
    share without a ceiling. Returns (decision of the first cap or None, math's share / r per decision, allocator)."""
    caps, r = ["math", "code", "reasoning", "general_knowledge"], np.array([0.4, 0.3, 0.2, 0.1])
    alloc = GainTrackingAllocator(caps, r.tolist(), ceiling_z=ceiling_z, **options)
    rng = np.random.default_rng(seed)
    true = np.array([40.0, 30.0, 30.0, 30.0])
    s = true + rng.normal(0, sd, 4)
    first, shares = None, []
    for t in range(steps):
        w = np.array(alloc.select(profile=s.tolist(), remaining=1 - t / steps))
        if first is None and alloc.last_info.get("capped"):
            first = t
        shares.append(w[0] / r[0])
        true = true + np.array([0.8 * w[0] * (60.0 - true[0]), 3 * w[1], 3 * w[2], 3 * w[3]])
        s = true + rng.normal(0, sd, 4)
        alloc.observe(profile=s.tolist(), cost=1.0)
    return first, np.array(shares), alloc


def test_closing_rates_recover_the_rate_and_the_way_left_from_noise_free_changes():
    _, _, alloc = _saturating_run(1.0, 0, sd=0.0, steps=10)
    rate, se, head = alloc.closing_rates()
    assert rate[0] == pytest.approx(0.8, rel=1e-4)  # whatever mixtures were played: the model is exact here
    assert abs(rate[1]) < 1e-4 and abs(rate[2]) < 1e-4  # no ceiling in sight: a rate of 0
    level = 40.0 + sum(alloc.history_delta)[0]
    assert head[0] == pytest.approx(60.0 - level, rel=1e-3)
    assert np.isinf(head[1])


def test_a_capability_near_its_ceiling_is_capped_before_its_return_has_fallen_far():
    # measured on seeds 0-3: the cap comes at decision 3 (the first it may), math's share then 0.19-0.28
    # of r; the rule without it (ceiling_z=None) keeps 0.81-1.0 of r at that decision
    for seed in range(4):
        first, shares, alloc = _saturating_run(1.0, seed)
        assert first == 3, first
        _, without, _ = _saturating_run(None, seed)
        assert shares[3] < 0.4 and without[3] > 0.75, (shares[3], without[3])
        assert shares.min() >= 0.1 - 1e-9  # never below the exploration floor
    per_cap = alloc.last_info["explain"]["capabilities"]
    assert per_cap["math"]["closing_rate"] > 0 and per_cap["code"]["ceiling_share"] is None  # null, not inf


def test_a_capped_capability_keeps_one_pace_to_the_end_of_the_run():
    # with the tilt held off (kappa 1e6) only the cap moves math: it holds the share that closes 90% of the
    # way over a run's 25 intervals, (1 - 0.1^(1/25)) / 0.8, from the first cap to the last decision. The rule
    # before planned 80% of what was left over the intervals left, and gave math back its r share as they ran out
    # (measured: 0.22 of r at decision 3, 0.51 at 16, 1.0 from 21 on)
    _, shares, _ = _saturating_run(1.0, 0, sd=0.0, kappa=1e6)
    pace = (1.0 - 0.1 ** (1 / 25)) / 0.8 / 0.4
    assert np.allclose(shares[3:], pace, rtol=1e-3), shares
    _, noisy, _ = _saturating_run(1.0, 0, sd=0.3, kappa=1e6)
    assert noisy[3:].max() < 0.4, noisy  # the rule before: 0.87 of r over the last five decisions


def _falling_run(seed, fall_z=4.0, sd=0.3, steps=16):
    """``a`` climbs 3 points per sqrt of its share for 6 intervals, then falls 1.5 a interval whatever it is
    given (another capability's training makes the student forget it); b and c climb. Returns the first
    decision at which ``a`` is flagged harmed."""
    alloc = GainTrackingAllocator(["a", "b", "c"], [0.5, 0.3, 0.2], fall_z=fall_z)
    rng = np.random.default_rng(seed)
    true = np.array([40.0, 40.0, 40.0])
    profile = (true + rng.normal(0, sd, 3)).tolist()
    for t in range(steps):
        w = np.array(alloc.select(profile=profile, remaining=1 - t / 25))
        if alloc.last_info["explain"]["capabilities"]["a"].get("harmed"):
            assert np.allclose(w, [0.5, 0.3, 0.2])  # the harm rule's w = r
            return t
        true = true + np.array([3.0 * np.sqrt(w[0]) if t < 6 else -1.5, 2.0 * np.sqrt(w[1]), 2.0 * np.sqrt(w[2])])
        profile = (true + rng.normal(0, sd, 3)).tolist()
        alloc.observe(profile=profile, cost=1.0)
    return None


def test_a_level_that_falls_below_its_best_is_harm_before_the_mean_change_turns():
    # saturation gives nothing back, so a fall from the best level is harm; measured on seeds 0-9: flagged
    # at decision 8 or 9 (the fall starts at 6), where the mean change over the harm window alone waits to 12
    for seed in range(10):
        assert _falling_run(seed) in (8, 9)
        assert _falling_run(seed, fall_z=None) == 12


def test_the_fall_test_seldom_fires_on_noise_or_saturation():
    # a fall is measured against the best level, a maximum over noisy levels; fall_z = 4 covers that.
    # Measured: on flat profiles (sd 1, six capabilities) some capability is flagged on 10 of 500
    # decisions; on the saturating run (sd 1) on none of 500
    caps = ["math", "code", "reasoning", "general_knowledge", "tool_use", "multilingual"]
    flat = decisions = 0
    for seed in range(20):
        alloc = GainTrackingAllocator(caps, [0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
        rng = np.random.default_rng(seed)
        profile = (40.0 + rng.normal(0, 1.0, 6)).tolist()
        for t in range(25):
            alloc.select(profile=profile, remaining=1 - t / 25)
            fall, sd = alloc.fallen()
            flat += bool(np.any(fall > alloc.fall_z * sd))
            decisions += 1
            profile = (40.0 + rng.normal(0, 1.0, 6)).tolist()  # the probe that ends an interval starts the next
            alloc.observe(profile=profile, cost=1.0)
    assert flat / decisions < 0.04, flat
    for seed in range(20):
        _, _, alloc = _saturating_run(1.0, seed, sd=1.0)
        fall, sd = alloc.fallen()
        assert not np.any(fall > alloc.fall_z * sd), (seed, fall / sd)


def test_pure_noise_seldom_caps_a_capability():
    # flat profiles, sd 1: the probe that starts an interval ends the one before, so least squares of the
    # change on the level would cap on 59% of decisions (measured); the instrumented fit caps on about 1%
    caps = ["math", "code", "reasoning", "general_knowledge", "tool_use", "multilingual"]
    r = [0.3, 0.25, 0.2, 0.1, 0.1, 0.05]
    capped = decisions = 0
    for seed in range(20):
        alloc = GainTrackingAllocator(caps, r)
        rng = np.random.default_rng(seed)
        profile = (40.0 + rng.normal(0, 1.0, 6)).tolist()
        for t in range(25):
            alloc.select(profile=profile, remaining=1 - t / 25)
            capped += bool(alloc.last_info.get("capped"))
            decisions += 1
            profile = (40.0 + rng.normal(0, 1.0, 6)).tolist()
            alloc.observe(profile=profile, cost=1.0)
    assert capped / decisions < 0.04, capped


def test_the_ceiling_cap_gains_where_the_most_required_capability_saturates():
    # measured on saturation seeds 0-5: +0.32% on average against the rule without the cap, at worst -0.06%
    diff = _saturation_gain_over(ceiling_z=None)
    assert np.mean(diff) > 0.0015 and min(diff) > -0.002, diff


def test_model_share_is_the_best_mixture_under_the_fitted_returns():
    alloc = GainTrackingAllocator(["a", "b", "c", "d"], [0.4, 0.3, 0.2, 0.1])
    recent = np.array([1.0, 3.0, 2.0, -1.0])
    share = alloc.model_share(recent)
    assert share.sum() == pytest.approx(1.0) and share[3] == 0.0  # no return, no share
    gain = lambda w: float(alloc.requirement @ (np.maximum(recent, 0.0) * np.sqrt(w)))  # noqa: E731
    rng = np.random.default_rng(0)
    assert all(gain(w) <= gain(share) + 1e-12 for w in rng.dirichlet(np.ones(4), size=2000))
    assert np.allclose(alloc.model_share(np.array([-1.0, 0.0, -2.0, 0.0])), 0.0)


def _fast_learner_run(sd: float, seed: int = 0, steps: int = 25, **options):
    """Independent capabilities: math learns fast and closes a share of its long way to 100 each interval
    (its return halves over the run, from 16 to 8 points per sqrt of the share), the others gain 1.5 per
    sqrt of the share throughout. Returns (final r . s, math's share / r per decision, allocator)."""
    caps, r = ["math", "code", "reasoning", "general_knowledge"], np.array([0.25, 0.35, 0.3, 0.1])
    alloc = GainTrackingAllocator(caps, r.tolist(), **options)
    rng = np.random.default_rng(seed)
    s, shares = np.array([20.0, 30.0, 30.0, 30.0]), []
    for t in range(steps):
        w = np.array(alloc.select(profile=(s + rng.normal(0, sd, 4)).tolist(), remaining=1 - t / steps))
        shares.append(w[0] / r[0])
        g = np.sqrt(w)
        s = s + np.array([20.0 * g[0] * (100.0 - s[0]) / 100.0, 1.5 * g[1], 1.5 * g[2], 1.5 * g[3]])
        alloc.observe(profile=(s + rng.normal(0, sd, 4)).tolist(), cost=1.0)
    return float(r @ s), np.array(shares), alloc


def test_the_tilt_does_not_take_a_fast_learner_below_what_its_returns_still_earn():
    # Its return falls to half of its start, and the tilt (which reads that as saturation against
    # its own start) took it to 0.1 of its r share by the end and cost 2.3% against w = r; each unit
    # of its mass still buys 3-5 times what the others' do. Measured: 61.16 against 59.76 (w = r: 61.18).
    at_r = _fast_learner_run(0.0, kappa=1e9, futile_z=None, ceiling_z=None, fall_z=None)[0]
    new, shares, alloc = _fast_learner_run(0.0)
    old, old_shares, _ = _fast_learner_run(0.0, model_floor=False)
    assert old_shares[-5:].max() < 0.2 and old < 0.98 * at_r  # what the rule did without the bound
    assert shares[-5:].min() > 0.6 and new > 0.998 * at_r
    held = [c for c, v in alloc.last_info["explain"]["capabilities"].items() if v.get("held")]
    assert held == ["math"] and "deflation held" in alloc.last_info["explain"]["rule"]
    share = alloc.last_info["explain"]["capabilities"]["math"]["model_share"]
    assert share > 0.25  # the fitted returns put more than its r share on it
    # with probe noise (sd 0.3, seeds 0-3) the bound gains too: 1.3-2.6% on each seed, measured
    for seed in range(4):
        assert _fast_learner_run(0.3, seed)[0] > 1.01 * _fast_learner_run(0.3, seed, model_floor=False)[0]


def _four_required(family: str, seed: int):
    """``family``'s environment with ``r`` (and the hidden requirement) zero outside its 4 most required
    capabilities, as in the embedded default's recipe."""
    from read_lightning.allocation.families import keep_most_required
    from read_lightning.allocation.simulator import CapabilityTransferEnv

    return CapabilityTransferEnv(keep_most_required(make_family_environment(family, seed).params, 4), seed=seed)


def test_a_capability_that_fell_below_its_best_is_not_read_as_saturated_again():
    # A shortcut's victim (sign_flip seed 9008, four required capabilities): its return falls as the
    # shortcut's help fades, and the cap and the tilt read that as saturation. Its level falls below its
    # best at decision 13. Before, that decision played w = r and the next ones capped it again (0.15-0.43
    # of its share; 0.8971 x w = r); now it is neither capped nor deflated to the end (0.83 of its share,
    # the others' boosts normalised; 0.9574). Measured.
    from read_lightning.allocation.simulator import simulate_fixed

    env = _four_required("sign_flip", 9008)
    p = env.params
    top = int(np.argmax(p.requirement))
    static = float(simulate_fixed(p, p.requirement)[0])
    alloc = GainTrackingAllocator(env.capabilities, env.requirement)
    new = run_episode(alloc, env, 25, keep_info=True)
    old = run_episode(GainTrackingAllocator(env.capabilities, env.requirement, fall_sticks=False), env, 25)
    flagged = [t for t, info in enumerate(new.infos)
               if info["explain"]["capabilities"][env.capabilities[top]].get("fell_before")]
    first = flagged[0]
    assert flagged == list(range(first, 25))  # once flagged, for the rest of the run
    assert (new.allocations[first:, top] / p.requirement[top]).min() > 0.8
    assert (old.allocations[first:, top] / p.requirement[top]).min() < 0.5
    assert new.utility / static > 0.95 and new.utility > 1.05 * old.utility
    assert "fell below their best" in new.infos[-1]["explain"]["rule"]
    # recomputed from the history: a resumed allocator flags the same capabilities
    twin = GainTrackingAllocator(env.capabilities, env.requirement)
    twin.load_state_dict(alloc.state_dict())
    assert np.array_equal(twin.fell_before(), alloc.fell_before()) and alloc.fell_before()[top]


def test_validation_names_the_bad_value():
    for kwargs, match in (({"kappa": -1.0}, "kappa"), ({"memory": 0.0}, "memory"), ({"floor": 1.5}, "floor"),
                          ({"max_boost": 0.5}, "max_boost"), ({"warmup": -1}, "warmup"), ({"foresight": -1.0}, "foresight"),
                          ({"harm_memory": 0.0}, "harm_memory"), ({"futile_z": float("nan")}, "futile_z"),
                          ({"freed_to": "r"}, "freed_to"), ({"ceiling_z": -1.0}, "ceiling_z"),
                          ({"ceiling_keep": 1.0}, "ceiling_keep"), ({"ceiling_keep": 0.0}, "ceiling_keep"),
                          ({"fall_z": -1.0}, "fall_z"), ({"fall_z": float("inf")}, "fall_z"),
                          ({"ceiling_pace": "end"}, "ceiling_pace"), ({"model_floor": "yes"}, "model_floor"),
                          ({"fall_sticks": 1}, "fall_sticks")):
        with pytest.raises(ValueError, match=match):
            make_allocator("read", ["math", "code"], [0.5, 0.5], **kwargs)
