"""``read_transfer`` (TransferAllocator): the transfer fit, the credit objective, the probes, exact resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from read_lightning.allocation.transfer import TransferAllocator, credit_mixture, fit_transfer
from read_lightning.allocation.bandit import ALLOCATORS, make_allocator
from read_lightning.allocation.families import make_family_environment
from read_lightning.allocation.simulator import run_episode
from read_lightning.allocation.study import TransferStudy


def _planted(k: int = 4) -> np.ndarray:
    t = np.diag([2.0, 1.5, 1.0, 3.0])[:k, :k]
    t[3, 0] = 2.5  # capability 3 is a helper of capability 0
    t[1, 2] = -0.8  # capability 1 makes capability 2 forget
    return t


def test_the_fit_recovers_planted_transfer_from_perturbed_mixtures():
    t = _planted()
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(4), size=40)  # (T, K): varied mixtures identify T
    delta = np.sqrt(w) @ t  # noise-free, the model's own form
    mean, cov, scale = fit_transfer(w, delta, memory=1.0, prior_sd=1.0)
    assert mean.shape == (4, 4) and cov.shape == (4, 4, 4) and scale.shape == (4,)
    assert np.allclose(mean, t, atol=0.1)  # shrunk a little towards no transfer, as the prior says


def test_identical_mixtures_leave_transfer_at_the_prior():
    t = _planted()
    w = np.tile([0.4, 0.3, 0.2, 0.1], (12, 1))  # a run that never moved: only each target's total is seen
    delta = np.sqrt(w) @ t
    mean, _, _ = fit_transfer(w, delta, memory=1.0, prior_sd=0.5)
    off = ~np.eye(4, dtype=bool)
    assert np.abs(mean[off]).max() < 0.05  # no transfer claimed...
    assert np.allclose(np.sqrt(w[0]) @ mean, delta[0], rtol=1e-3)  # ...the diagonal carries the total


def test_credit_without_transfer_is_the_anchor_and_a_helper_earns_mass():
    v = np.array([0.5, 0.3, 0.15, 0.05])
    floor = np.full(4, 1e-6)
    assert np.allclose(credit_mixture(np.diag([2.0, 1.5, 1.0, 3.0]), v, v, floor), v, atol=1e-6)
    helped = credit_mixture(_planted().clip(min=0), v, v, floor)
    assert helped[3] > 3 * v[3]  # the helper of the most required capability gains mass
    assert helped[0] < v[0]  # which it takes from the capability it helps


def test_every_interval_probes_one_capability_in_turn():
    caps, r = ["math", "code", "reasoning"], [0.5, 0.3, 0.2]
    alloc = TransferAllocator(caps, r, probe=0.1, warmup=2)
    profile = [30.0, 30.0, 30.0]
    raised = []
    for t in range(3):
        w = np.array(alloc.select(profile=profile, remaining=1 - t / 3))
        raised.append(int(np.argmax(w - 0.9 * np.array(r))))
        profile = [p + 1.0 for p in profile]
        alloc.observe(profile=profile, cost=1.0)
    assert raised == [0, 1, 2]
    assert np.allclose(w, 0.9 * np.array(r) + 0.1 * np.eye(3)[2])


@pytest.mark.parametrize("name", ["read_transfer", "read_study"])
def test_state_round_trip_continues_exactly(name):
    env = make_family_environment("additive", 2)
    # read_study's study is configuration, given again to the allocator that resumes
    options = {"study": TransferStudy.simulate(env, [1, 2, 4], seed=1)} if name == "read_study" else {}
    a = make_allocator(name, env.capabilities, env.requirement, seed=3, **options)
    profile = env.reset()
    for t in range(9):
        w = a.select(profile=profile, remaining=1 - t / 25)
        profile, cost = env.step(w)
        a.observe(profile=profile, cost=cost)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = make_allocator(name, env.capabilities, env.requirement, seed=11, **options)  # the state carries the seed of the draws
    b.load_state_dict(torch.load(buf, weights_only=True))
    for t in range(9, 14):
        wa, wb = a.select(profile=profile, remaining=1 - t / 25), b.select(profile=profile, remaining=1 - t / 25)
        assert wa == wb
        profile, cost = env.step(wa)
        assert a.observe(profile=profile, cost=cost) == b.observe(profile=profile, cost=cost)


def test_registry_and_speed():
    assert ALLOCATORS["read_transfer"] is TransferAllocator
    assert ALLOCATORS["read"] is not TransferAllocator  # not the default (docs/allocator.md)
    env = make_family_environment("noisy", 4)
    result = run_episode(make_allocator("read_transfer", env.capabilities, env.requirement), env)
    assert result.ms_per_decision < 50.0


def test_validation_names_the_bad_value():
    for kwargs, match in (({"probe": 1.0}, "probe"), ({"transfer_memory": 0.0}, "transfer_memory"),
                          ({"prior_sd": -1.0}, "prior_sd"), ({"draws": 1}, "draws"), ({"min_history": 0}, "min_history")):
        with pytest.raises(ValueError, match=match):
            TransferAllocator(["math", "code"], [0.5, 0.5], **kwargs)
