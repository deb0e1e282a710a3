"""Allocators: protocol, reward, candidate set, validation, exact resume, baselines."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from read_lightning.allocation.bandit import (
    ALLOCATORS,
    BootstrapEnsemble,
    GreedyAllocator,
    UCBEnsembleAllocator,
    candidate_actions,
    compute_reward,
    make_allocator,
)
from read_lightning.allocation.study import TransferStudy
from read_lightning.core.capabilities import DEFAULT_CAPABILITIES

CAPS = list(DEFAULT_CAPABILITIES)
R = [0.4, 0.05, 0.25, 0.15, 0.05, 0.04, 0.03, 0.03]  # top-3: general_knowledge, reasoning, math
FAST = dict(refit_steps=5, members=3, hidden=8)


def profile(t: int) -> list[float]:
    """A deterministic, varying profile on the 0-100 scale."""
    return [30.0 + 2.0 * t + i + (t * i) % 3 for i in range(len(CAPS))]


def drive(alloc, steps: int, start: int = 0) -> list[list[float]]:
    out = []
    for t in range(start, start + steps):
        w = alloc.select(profile=profile(t), remaining=1.0 - t / 40)
        out.append(w)
        alloc.observe(profile=profile(t + 1), cost=1000.0 + 10 * t)
    return out


def test_select_returns_simplex_for_every_allocator():
    for name in ALLOCATORS:
        kwargs = {"mixture": [1 / 8] * 8} if name == "fixed" else {}
        if name in ("read_ucb", "greedy"):
            kwargs.update(FAST, warmup=2)
        if name == "read":
            kwargs.update(warmup=2)
        if name == "read_study":  # needs a measured transfer prior: one with no transfer in it
            kwargs.update(study=TransferStudy(CAPS, [1.0], 4.0 * np.eye(8)[None], np.full((1, 8, 8), 0.1)))
        alloc = make_allocator(name, CAPS, R, seed=1, **kwargs)
        for w in drive(alloc, 4):
            assert len(w) == len(CAPS)
            assert min(w) >= 0.0
            assert sum(w) == pytest.approx(1.0)


def test_candidate_set_has_one_hots_pairs_and_three_mixes():
    r = np.array(R)
    ess = [0, 2, 3]
    cands = candidate_actions(r, ess, previous=None)
    rows = {tuple(np.round(c, 6)) for c in cands}
    for i in ess:
        one = np.zeros(8)
        one[i] = 1.0
        assert tuple(one) in rows
    three = np.zeros(8)
    three[[0, 2, 3]] = [0.25, 0.25, 0.5]
    assert tuple(three) in rows
    pair = np.zeros(8)
    pair[[0, 3]] = [0.75, 0.25]
    assert tuple(pair) in rows
    assert np.allclose(cands.sum(axis=1), 1.0) and (cands >= 0).all()
    assert len(rows) == len(cands)  # deduplicated
    all_hot = candidate_actions(r, ess, one_hot="all")
    assert sum(np.isclose(c.max(), 1.0) for c in all_hot) == 8


def test_candidate_set_perturbs_previous_allocation():
    prev = np.array([0.5, 0.0, 0.5, 0, 0, 0, 0, 0])
    cands = candidate_actions(np.array(R), [0, 2, 3], previous=prev, step=0.1)
    moved = np.array([0.4, 0.0, 0.5, 0.1, 0, 0, 0, 0])
    assert any(np.allclose(c, moved) for c in cands)
    assert any(np.allclose(c, prev) for c in cands)


def test_reward_formula_and_spillover():
    r = np.array(R)
    delta = np.array([2.0, -1.0, -3.0, 0.5, 1.0, -4.0, 0.0, 0.0])
    reward, parts = compute_reward(r, delta, 20_000, [0, 2, 3], beta=0.5, lam=1e-5)
    gain = 0.4 * 2 - 0.05 * 1 - 0.25 * 3 + 0.15 * 0.5 + 0.05 * 1 - 0.04 * 4
    spill = 0.25 * 3  # only essential capabilities with a drop count: reasoning
    assert parts["gain"] == pytest.approx(gain)
    assert parts["spill"] == pytest.approx(spill)
    assert parts["cost_penalty"] == pytest.approx(0.2)
    assert reward == pytest.approx(gain - 0.5 * spill - 0.2)
    scaled, _ = compute_reward(r, delta, 20_000, [0, 2, 3], lam=1e-5, cost_scale=20_000)
    assert scaled == pytest.approx(gain - 0.5 * spill - 1e-5)


def test_observe_returns_the_reward_and_logs_parts():
    alloc = UCBEnsembleAllocator(CAPS, R, seed=0, **FAST)
    alloc.select(profile=profile(0), remaining=1.0)
    reward = alloc.observe(profile=profile(1), cost=5000.0)
    delta = np.array(profile(1)) - np.array(profile(0))
    expected, parts = compute_reward(np.array(R), delta, 5000.0, alloc.essential)
    assert reward == pytest.approx(expected)
    info = alloc.last_info
    for key in ("reward", "gain", "spill", "cost_penalty", "mu", "sigma", "kappa", "warmup"):
        assert key in info
    assert info["gain"] == pytest.approx(parts["gain"])


def test_validation_messages_name_the_bad_value():
    with pytest.raises(ValueError, match="sums to 0.9"):
        UCBEnsembleAllocator(CAPS, [0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.0, 0.0])
    with pytest.raises(ValueError, match="'math'"):
        UCBEnsembleAllocator(CAPS, {"math": -0.5, "code": 1.5})
    with pytest.raises(ValueError, match="astrology"):
        UCBEnsembleAllocator(CAPS, {"astrology": 1.0})
    alloc = UCBEnsembleAllocator(CAPS, R, **FAST)
    with pytest.raises(ValueError, match="multilingual"):
        alloc.select(profile={c: 50.0 for c in CAPS[:-1]}, remaining=1.0)
    with pytest.raises(RuntimeError, match="before select"):
        alloc.observe(profile=profile(0), cost=1.0)
    alloc.select(profile=profile(0), remaining=1.0)
    with pytest.raises(RuntimeError, match="twice"):
        alloc.select(profile=profile(0), remaining=1.0)
    with pytest.raises(ValueError, match="remaining"):
        UCBEnsembleAllocator(CAPS, R, **FAST).select(profile=profile(0), remaining=1.5)
    with pytest.raises(ValueError, match="'nope'"):
        make_allocator("nope", CAPS, R)
    with pytest.raises(ValueError, match="kappa"):
        UCBEnsembleAllocator(CAPS, R, kappa=-1.0)
    with pytest.raises(ValueError, match="anchor_shrink must be in \\[0, 1\\), got 1.5"):
        UCBEnsembleAllocator(CAPS, R, anchor_shrink=1.5)



def test_a_requirement_is_checked_when_made_and_taken_as_it_is_afterwards():
    from read_lightning.core.capabilities import Requirement

    with pytest.raises(ValueError, match=r"requirement vector must sum to 1 \(a distribution\), but sums to 1.5"):
        Requirement({"math": 1.0, "code": 0.5})
    with pytest.raises(ValueError, match="requirement vector: value for 'math' must be finite and >= 0, got -0.5"):
        Requirement({"math": -0.5, "code": 1.5})
    with pytest.raises(ValueError, match="requirement vector must be a mapping capability -> weight, got"):
        Requirement([0.5, 0.5])
    r = Requirement({"math": 0.75, "code": 0.25})
    assert Requirement.of(r) is r and r == {"math": 0.75, "code": 0.25} and r["math"] == 0.75
    with pytest.raises(TypeError):
        r["math"] = 1.0  # it cannot be changed
    with pytest.raises(AttributeError, match="cannot be changed"):
        r._weights = {}
    assert r.over(CAPS)["math"] == 0.75 and r.over(CAPS)["reasoning"] == 0.0
    with pytest.raises(ValueError, match=r"unknown capability in the requirement vector \['code'\]"):
        r.over(["math", "reasoning"])
    # a name of weight 0 asks for nothing: a run that does not train it takes the rest
    card_like = Requirement({"math": 0.75, "code": 0.25, "tool_use": 0.0})
    assert card_like.over(["code", "math"]) == {"code": 0.25, "math": 0.75}
    # an allocator takes one as it is; a list in capability order is made into one
    alloc = UCBEnsembleAllocator(CAPS, Requirement(dict(zip(CAPS, R))), **FAST)
    assert alloc.requirement.tolist() == UCBEnsembleAllocator(CAPS, R, **FAST).requirement.tolist()

@pytest.mark.parametrize("name", ["read", "read_ucb", "random", "task_static"])
def test_state_dict_round_trip_continues_identically(name):
    kwargs = {"read_ucb": dict(FAST, warmup=3), "read": {"warmup": 2}}.get(name, {})
    a = make_allocator(name, CAPS, R, seed=3, **kwargs)
    drive(a, 5)
    a.development_checkpoint(40.0)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = make_allocator(name, CAPS, R, seed=99, **kwargs)  # different seed: everything must come from the state
    b.load_state_dict(torch.load(buf, weights_only=True))  # plain python: safe-loading works
    seq_a, seq_b = drive(a, 6, start=5), drive(b, 6, start=5)
    assert seq_a == seq_b
    assert a.last_info["reward"] == b.last_info["reward"]


def test_round_trip_mid_decision_keeps_pending_choice():
    a = UCBEnsembleAllocator(CAPS, R, seed=4, warmup=1, **FAST)
    drive(a, 3)
    a.select(profile=profile(3), remaining=0.5)
    b = UCBEnsembleAllocator(CAPS, R, seed=4, warmup=1, **FAST)
    b.load_state_dict(a.state_dict())
    assert a.observe(profile=profile(4), cost=10.0) == b.observe(profile=profile(4), cost=10.0)
    assert drive(a, 3, start=4) == drive(b, 3, start=4)


def test_a_refused_state_leaves_the_allocator_as_it_was():
    other = UCBEnsembleAllocator(CAPS, R, seed=4, warmup=1, **{**FAST, "members": FAST.get("members", 5) + 1})
    drive(other, 3)
    a, twin = (UCBEnsembleAllocator(CAPS, R, seed=4, warmup=1, **FAST) for _ in range(2))
    drive(a, 2)
    drive(twin, 2)
    with pytest.raises(ValueError, match="ensemble shapes"):
        a.load_state_dict(other.state_dict())  # its ensemble has another size: refused after the common fields
    assert a.state_dict() == twin.state_dict()
    assert drive(a, 3, start=2) == drive(twin, 3, start=2)


def test_different_seeds_give_different_sequences():
    a = UCBEnsembleAllocator(CAPS, R, seed=0, **FAST)
    b = UCBEnsembleAllocator(CAPS, R, seed=1, **FAST)
    assert drive(a, 6) != drive(b, 6)


def test_greedy_is_ucb_with_kappa_zero():
    g = GreedyAllocator(CAPS, R, seed=5, warmup=2, trust=0.0, **FAST)
    u = UCBEnsembleAllocator(CAPS, R, seed=5, warmup=2, kappa=0.0, trust=0.0, **FAST)
    k1 = UCBEnsembleAllocator(CAPS, R, seed=5, warmup=2, kappa=5.0, trust=0.0, **FAST)
    seq_g, seq_u, seq_k = drive(g, 8), drive(u, 8), drive(k1, 8)
    assert seq_g == seq_u
    assert seq_g != seq_k  # kappa does change choices here, so the equality above is not vacuous
    with pytest.raises(ValueError, match="kappa"):
        GreedyAllocator(CAPS, R, kappa=1.0)


def test_kappa_decays_only_at_non_improving_checkpoints():
    alloc = UCBEnsembleAllocator(CAPS, R, kappa=1.0, kappa_decay=0.7, **FAST)
    alloc.development_checkpoint(40.0)
    assert alloc.kappa == pytest.approx(1.0)
    alloc.development_checkpoint(45.0)
    assert alloc.kappa == pytest.approx(1.0)
    alloc.development_checkpoint(44.0)
    assert alloc.kappa == pytest.approx(0.7)
    alloc.development_checkpoint(45.0)  # ties the best: not an improvement
    assert alloc.kappa == pytest.approx(0.49)
    alloc.development_checkpoint(50.0)
    assert alloc.kappa == pytest.approx(0.49)


def test_calibration_recovers_affine_map():
    alloc = UCBEnsembleAllocator(CAPS, R, warmup=100, refit_steps=0, members=2, hidden=4)
    for t in range(6):
        alloc.select(profile=profile(t), remaining=1.0 - t / 6)
        alloc.observe(profile=profile(t + 1), cost=0.0)
        alloc.development_checkpoint(2.5 * alloc.cumulative_reward + 31.0)
    a, b = alloc.calibration
    assert a == pytest.approx(2.5)
    assert b == pytest.approx(31.0)
    assert alloc.last_info["calibration"] == (a, b)


def test_warmup_is_random_for_exactly_n_steps():
    alloc = UCBEnsembleAllocator(CAPS, R, seed=0, warmup=4, **FAST)
    flags = []
    for t in range(7):
        alloc.select(profile=profile(t), remaining=1.0 - t / 10)
        flags.append(alloc.last_info["warmup"])
        alloc.observe(profile=profile(t + 1), cost=1.0)
    assert flags == [True] * 4 + [False] * 3
    # warm-up choices are random: other seeds choose differently within the first 4 steps
    first = [drive(UCBEnsembleAllocator(CAPS, R, seed=s, warmup=4, **FAST), 4) for s in range(4)]
    assert len({str(f) for f in first}) > 1


def test_after_warmup_choice_is_the_ucb_argmax_among_eligible():
    alloc = UCBEnsembleAllocator(CAPS, R, seed=2, warmup=2, trust=0.5, **FAST)
    drive(alloc, 3)
    s = np.array(profile(3))
    cands = alloc.candidates()
    assert np.allclose(cands[0], alloc.anchor)  # row 0 is the anchor, r shrunk toward uniform
    assert np.allclose(alloc.anchor, 0.9 * np.array(R) + 0.1 / len(CAPS))  # default anchor_shrink = 0.1
    assert len(cands) >= 4

    def predicted(table):
        """Members' rewards (J=3, A): anchor 0, then ``table``'s columns, the rest -1 (worse than the anchor)."""
        def predict_rewards(s, remaining, cands, inputs=None):
            out = np.full((3, len(cands)), -1.0)
            out[:, 0] = 0.0
            out[:, 1:1 + len(table)] = np.array(table).T
            return out
        return predict_rewards

    def chosen_column(table, trust):
        """The index, among the candidates, of the choice made with these predicted rewards."""
        alloc.trust, alloc.predict_rewards = trust, predicted(table)
        now = alloc.candidates()
        w = alloc.select(profile=list(s), remaining=0.5)
        alloc.observe(profile=profile(4), cost=1.0)
        return next(i for i, c in enumerate(now) if np.allclose(c, w))

    # Column 1 is risky: mean gain 1 over the anchor but members disagree (gains 4, -2, 1), so
    # 1 - 0.5 * std < 0 and it is not eligible, though its optimistic score is the highest.
    # Column 2 is safe: every member predicts +0.5. The safe one is chosen.
    risky, safe = [4.0, -2.0, 1.0], [0.5, 0.5, 0.5]
    assert chosen_column([risky, safe], trust=0.5) == 2
    assert alloc.last_info["eligible"] == 2 and not alloc.last_info["anchor"]
    # With no trust margin the risky one is eligible and wins on mean + kappa * std.
    assert chosen_column([risky, safe], trust=0.0) == 1
    # Nothing predicted to beat the anchor: the anchor is kept.
    assert chosen_column([[-0.5, -0.5, -0.5]], trust=0.5) == 0
    assert alloc.last_info["eligible"] == 1 and alloc.last_info["anchor"]


def test_huge_trust_never_leaves_the_anchor_after_warmup():
    alloc = UCBEnsembleAllocator(CAPS, R, seed=0, warmup=2, trust=1e6, **FAST)
    seq = drive(alloc, 6)
    assert all(np.allclose(w, alloc.anchor) for w in seq[2:])
    plain = UCBEnsembleAllocator(CAPS, R, seed=0, warmup=2, trust=1e6, anchor_shrink=0.0, **FAST)
    assert all(np.allclose(w, R) for w in drive(plain, 6)[2:])  # unshrunk, the anchor is r itself
    loose = drive(UCBEnsembleAllocator(CAPS, R, seed=0, warmup=2, trust=0.0, **FAST), 6)
    assert not all(np.allclose(w, R) for w in loose[2:])  # so the check above is not vacuous


def test_cost_model_recovers_linear_token_costs():
    alloc = UCBEnsembleAllocator(CAPS, R, seed=0, warmup=100, warmup_pool="all", refit_steps=0, members=2, hidden=4)
    per_token = np.linspace(1.0, 2.0, len(CAPS))
    for t in range(30):
        w = alloc.select(profile=profile(t), remaining=1.0)
        alloc.observe(profile=profile(t + 1), cost=float(20_000 * np.dot(w, per_token)))
    cands = alloc.candidates()
    assert np.allclose(alloc._predict_cost(cands), 20_000 * cands @ per_token, rtol=0.1)  # ridge-shrunk fit


def test_features_are_per_capability_rows():
    alloc = UCBEnsembleAllocator(CAPS, R, seed=0, **FAST)
    drive(alloc, 2)
    cands = alloc.candidates()
    x = alloc.features(np.array(profile(2)), 0.5, cands)
    assert x.shape == (len(cands), len(CAPS), alloc.in_dim)
    # the own-share columns of capability c hold w_c and sqrt(w_c)
    ctx = alloc.context(np.array(profile(2)), 0.5).shape[1]
    assert np.allclose(x[:, :, ctx], cands) and np.allclose(x[:, :, ctx + 1], np.sqrt(cands))


def test_static_baselines():
    uni = make_allocator("uniform", CAPS, R)
    assert drive(uni, 2) == [[1 / 8] * 8] * 2
    ts = make_allocator("task_static", CAPS, R)
    assert np.allclose(drive(ts, 1)[0], R)
    single = make_allocator("single", CAPS, R)
    assert drive(single, 1)[0] == [1.0] + [0.0] * 7
    fixed = make_allocator("fixed", CAPS, R, mixture={"code": 0.5, "math": 0.5})
    w = drive(fixed, 2)
    assert w[0] == w[1] and w[0][CAPS.index("code")] == 0.5
    with pytest.raises(ValueError, match="mixture"):
        make_allocator("fixed", CAPS, R)


def test_random_baseline_is_seeded_and_varies():
    a = drive(make_allocator("random", CAPS, R, seed=7), 3)
    b = drive(make_allocator("random", CAPS, R, seed=7), 3)
    c = drive(make_allocator("random", CAPS, R, seed=8), 3)
    assert a == b and a != c and a[0] != a[1]


def test_dict_inputs_equal_list_inputs():
    req = dict(zip(CAPS, R))
    a = UCBEnsembleAllocator(CAPS, req, seed=0, **FAST)
    b = UCBEnsembleAllocator(CAPS, R, seed=0, **FAST)
    wa = a.select(profile=dict(zip(CAPS, profile(0))), remaining=1.0)
    wb = b.select(profile=profile(0), remaining=1.0)
    assert wa == wb


def test_ensemble_learns_and_members_disagree_off_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(40, 3))
    y = np.stack([x @ [1.0, -2.0, 0.5], np.sin(2 * x[:, 0])], axis=1)
    ens = BootstrapEnsemble(5, 3, 64, 2, lr=1e-2, weight_decay=0.0, rng=rng)
    first = ens.fit(x, y, steps=1, batch=64, rng=rng)
    last = ens.fit(x, y, steps=400, batch=64, rng=rng)
    assert last < 0.1 * first
    pred = ens.predict(x)  # (J, n, O)
    assert pred.shape == (5, 40, 2)
    assert np.mean((pred.mean(0) - y) ** 2) < 0.05
    far = ens.predict(np.full((1, 3), 6.0))
    assert far.std(0).mean() > pred.std(0).mean()  # bootstrap spread grows away from the data
