"""Benchmark environment families: determinism and the structure each one is built around."""

from __future__ import annotations

import numpy as np
import pytest

from read_lightning.allocation.families import FAMILIES, make_family_environment
from read_lightning.allocation.simulator import advance, grid_search_best_fixed, simulate_fixed


def _trajectory(p, w, steps):
    """True profiles ``(steps + 1, K)`` under the fixed mixture ``w``."""
    s, e, out = p.start[None].copy(), np.zeros((1, len(w))), [p.start.copy()]
    for _ in range(steps):
        s, e = advance(p, s, e, np.asarray(w, dtype=float)[None])
        out.append(s[0].copy())
    return np.array(out)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_is_seeded_and_the_oracle_is_at_least_w_equals_r(family):
    a, b, c = (make_family_environment(family, s) for s in (5, 5, 6))
    w = [1 / 8] * 8
    assert [a.step(w) for _ in range(3)] == [b.step(w) for _ in range(3)]
    assert a.params.requirement.tolist() != c.params.requirement.tolist()
    p = b.params
    _, best = grid_search_best_fixed(lambda: b, resolution=4, refine_steps=())
    assert best >= simulate_fixed(p, p.requirement)[0] - 1e-6 or best >= 0.99 * simulate_fixed(p, p.requirement)[0]


def test_additive_transfer_is_constant_and_has_a_strong_helper():
    p = make_family_environment("additive", 1).params
    assert (p.neg == 0).all() and (p.flip > 1e6).all()
    top = int(np.argmax(p.requirement))
    helper = int(np.argmax(p.pos[:, top]))
    assert p.pos[helper, top] >= 0.8 and p.requirement[helper] < p.requirement[top]


def test_sign_flip_shortcut_helps_then_hurts_under_w_equals_r():
    for seed in range(3):
        p = make_family_environment("sign_flip", seed).params
        top = int(np.argmax(p.requirement))
        shortcut = int(np.argmax(p.pos[:, top]))
        assert p.neg[shortcut, top] >= 0.12
        one = np.zeros(8)
        one[shortcut] = 1.0
        s = p.start[None].copy()
        early, _ = advance(p, s, np.zeros_like(s), one[None])
        exposed = np.zeros_like(s)
        exposed[0, shortcut] = p.requirement[shortcut] * p.decisions  # what w = r gives it over the run
        late, _ = advance(p, s, exposed, one[None])
        assert early[0, top] > s[0, top] > late[0, top]


def test_saturation_the_top_capability_stops_gaining_within_a_few_intervals():
    for seed in range(3):
        p = make_family_environment("saturation", seed).params
        top = int(np.argmax(p.requirement))
        traj = _trajectory(p, p.requirement, 25)
        gains = np.diff(traj[:, top])
        assert p.requirement[top] >= 0.3
        assert gains[6:].sum() < 0.2 * gains[:6].sum()  # most of its rise happens in the first 6 intervals


def test_spillover_training_one_required_capability_lowers_another_from_the_start():
    p = make_family_environment("spillover", 2).params
    order = np.argsort(-p.requirement)
    one = np.zeros(8)
    one[order[0]] = 1.0
    s = p.start[None].copy()
    after, _ = advance(p, s, np.zeros_like(s), one[None])
    assert any(after[0, j] < s[0, j] for j in order[1:4])


def test_noisy_probes_are_heteroscedastic_and_on_the_real_scale():
    env = make_family_environment("noisy", 3)
    assert env.params.heteroscedastic and env.params.noise_scale is not None
    env._s = np.full(8, 50.0)
    sd_mid = env.probe_sd()
    assert np.allclose(sd_mid, env.params.noise_scale) and 0.5 <= sd_mid.min() and sd_mid.max() <= 3.0
    env._s = np.full(8, 97.0)  # near the top of the scale the item-sampling error shrinks
    assert np.allclose(env.probe_sd(), sd_mid * np.sqrt(97.0 * 3.0) / 50.0)


def test_real_noise_probes_blur_a_change_as_the_measured_real_probes_do():
    from read_lightning.allocation.families import REAL_ITEM_OFFSET, REAL_SD_PER_CHANGE

    for seed in range(5):  # each of the five dynamics once
        env = make_family_environment("real_noise", seed)
        p = env.params
        assert not p.heteroscedastic and np.all(np.abs(p.probe_gain - 1.0) <= REAL_ITEM_OFFSET)
        changes = np.abs(np.diff(_trajectory(p, p.requirement, p.decisions), axis=0)).mean(0)
        per_change = np.sqrt(2.0) * p.noise_scale / np.maximum(changes, 1e-3)
        low, high = REAL_SD_PER_CHANGE
        assert np.all((low - 1e-9 <= per_change) & (per_change <= high + 1e-9)), per_change
        # The probe reads a change probe_gain times its true size (plus the noise).
        env.reset()
        env.params.noise_scale = np.zeros(8)
        seen, _ = env.step(p.requirement)
        true = env.profile()
        for i, c in enumerate(env.capabilities):
            assert seen[c] - p.start[i] == pytest.approx(p.probe_gain[i] * (true[c] - p.start[i]))


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="'nope'"):
        make_family_environment("nope", 0)
