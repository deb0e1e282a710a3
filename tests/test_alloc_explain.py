"""Why ``read`` moved: each decision's tests and predicted gains, in allocations.jsonl and the report."""

import json
import time

import numpy as np
import pytest

from read_lightning.allocation.bandit import make_allocator
from read_lightning.allocation.families import make_family_environment
from read_lightning.reporting.report import write_report


def _run(family="saturation", seed=1000, decisions=12, env=None):
    """Play ``read`` on one environment (``env``, or the family's); the rows as BanditAllocationCallback
    writes them, and select times."""
    env = make_family_environment(family, seed, decisions=decisions) if env is None else env
    alloc = make_allocator("read", env.capabilities, env.requirement)
    s, rows, seconds = env.reset(), [], []
    for number in range(1, decisions + 1):
        start = time.perf_counter()
        w = alloc.select(s, 1.0 - (number - 1) / decisions)
        seconds.append(time.perf_counter() - start)
        mixture = dict(zip(env.capabilities, w))
        rows.append({"event": "select", "decision": number, "epoch": number - 1, "profile": s, "mixture": mixture,
                     "info": json.loads(json.dumps(alloc.last_info))})  # what the JSONL holds
        s, cost = env.step(w)
        reward = alloc.observe(s, cost)
        rows.append({"event": "observe", "decision": number, "epoch": number - 1, "cost": int(cost),
                     "reward": reward, "profile": s, "info": json.loads(json.dumps(alloc.last_info))})
    return env, rows, seconds


def test_each_decision_says_which_rule_set_it_and_the_tests_agree_with_the_mixture():
    env, rows, seconds = _run()
    r = np.array([env.requirement[c] for c in env.capabilities])
    selects = [row for row in rows if row["event"] == "select"]
    assert selects[0]["info"]["explain"] == {"rule": "warm-up: w = r", "capabilities": {
        c: {"futile": False, "tilt": None} for c in env.capabilities}}
    tilted = capped = 0
    for row in selects[2:]:
        ex = row["info"]["explain"]
        caps = ex["capabilities"]
        for c, v in caps.items():
            assert v["eligible"] == (v["early"] > 2.0 * v["early_se"]), c  # the eligibility test
            assert v["harmed"] == (v["harm"] + 0.75 * v["harm_se"] < 0.0), c
            if not v["eligible"]:
                assert v["retained"] == 1.0 and v["retained_se"] == 0.0
        w = np.array([row["mixture"][c] for c in env.capabilities])
        recent = np.array([caps[c]["recent"] for c in env.capabilities])
        for name, mix in (("w = r", r), ("chosen", w)):
            assert ex["candidates"][name]["predicted_gain"] == pytest.approx(r @ (recent * np.sqrt(mix)), rel=1e-12)
        if ex["rule"].endswith(": tilted"):  # the mixture is r times the tilt the row reports
            tilt = np.array([caps[c]["tilt"] for c in env.capabilities])
            assert np.allclose(w, r * tilt / (r * tilt).sum()) and (r * tilt).sum() >= 1.0 - 1e-12
            tilted += 1
        elif ": tilted; freed mass to the largest marginal returns" in ex["rule"]:  # plus the freed mass
            tilt = np.array([caps[c]["tilt"] for c in env.capabilities])
            share = np.array([caps[c]["share_of_r"] for c in env.capabilities])
            marginal = np.array([caps[c]["marginal"] for c in env.capabilities])
            assert np.allclose(share, w / r)
            kept = marginal == 0.0  # not receivers: r * tilt, scaled by the normalisation alone
            scale = share[kept] / tilt[kept]
            assert np.allclose(scale, scale[0])  # above 1 where the receivers reached their caps
            assert np.all(share[~kept] >= scale[0] * tilt[~kept] - 1e-12)  # receivers: their tilt, plus freed mass
            assert np.all(share[~kept] <= 1.5 * scale[0] + 1e-12)  # up to max_boost before normalising
            tilted += 1
        assert ("w = r" in ex["rule"]) == bool(np.allclose(w, r, rtol=0.0, atol=1e-12)), ex["rule"]
        if "capped at the share it can use" in ex["rule"]:  # the cap test, and a capped capability receives nothing
            for k, c in enumerate(env.capabilities):
                v = caps[c]
                if v["capped"]:
                    before = r[k] * (1.0 if v["tilt"] is None else v["tilt"])
                    assert v["ceiling_share"] is not None and max(v["ceiling_share"], 0.1 * r[k]) < before
                    assert v["closing_rate"] > 1.0 * v["closing_rate_se"]  # the evidence test, ceiling_z = 1
                    assert v.get("marginal", 0.0) == 0.0
            capped += 1
    assert capped >= 1  # this environment's most required capability saturates: the cap fires
    assert tilted >= 3  # the saturation family moves the mixture, and the rows say why
    assert np.median(seconds) < 0.05


def test_the_report_shows_why_the_mixture_moved(tmp_path):
    env, rows, _ = _run()
    (tmp_path / "allocations.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    text = write_report(tmp_path, tensorboard=False).read_text()
    assert "## Why the mixture moved" in text
    assert "| 1 | warm-up: w = r |" in text
    assert "retained returns differ beyond the noise: tilted" in text
    last = [row for row in rows if row["event"] == "select"][-1]["info"]["explain"]
    top = max(env.requirement, key=env.requirement.get)
    v = last["capabilities"][top]
    assert f"| {top} | {v['early']:+.2f} +- {v['early_se']:.2f} |" in text
    assert "| # | rule | eligible | harmed | futile | capped |" in text
    capped_rows = [row for row in rows if row["event"] == "select" and "capped at" in row["info"]["explain"]["rule"]]
    assert capped_rows  # and the report names what was capped on those decisions
    first = capped_rows[0]
    names = ", ".join(c for c, v in first["info"]["explain"]["capabilities"].items() if v.get("capped"))
    assert any(line.startswith(f"| {first['decision']} | ") and f"| {names} |" in line for line in text.splitlines())
    # With the requirement known (summary.json), each decision shows its mixture as a multiple of r,
    # which after renormalisation is not the tilt.
    (tmp_path / "summary.json").write_text(json.dumps({"allocation": {"requirement": env.requirement}}))
    text = write_report(tmp_path, tensorboard=False).read_text()
    selects = [row for row in rows if row["event"] == "select"]
    tilted = next(i for i, row in enumerate(selects) if "tilted" in row["info"]["explain"]["rule"])
    w = selects[tilted]["mixture"]
    ratio = ", ".join(f"{c} x{w[c] / r:.2f}" for c, r in env.requirement.items() if r > 0 and abs(w[c] / r - 1) > 0.005)
    why = text.split("## Why the mixture moved", 1)[1].splitlines()
    row = next(line for line in why if line.startswith(f"| {tilted + 1} | "))
    assert ratio and f"| {ratio} |" in row, row


def test_the_callback_writes_the_explanation_into_allocations_jsonl(tiny_tokenizer, tmp_path):
    from test_callbacks import REQ, LedgerProbe, run

    from read_lightning.training.callbacks import BanditAllocationCallback

    bandit = BanditAllocationCallback(requirement=REQ, allocator_kwargs={"warmup": 1})
    run(tiny_tokenizer, tmp_path, 3, [LedgerProbe(), bandit])
    path = tmp_path / "lightning_logs" / "version_0" / "allocations.jsonl"
    selects = [row for row in map(json.loads, path.open()) if row["event"] == "select"]
    assert selects[0]["info"]["explain"]["rule"] == "warm-up: w = r"
    last = selects[-1]["info"]["explain"]
    assert set(last["capabilities"]) == set(REQ) and set(last["candidates"]) == {"w = r", "chosen"}
    assert all(isinstance(v["eligible"], bool) for v in last["capabilities"].values())


def test_a_capability_the_task_does_not_require_does_not_make_the_rule_say_tilted():
    """On the default run every required capability's return fell alike (the learning rate decays),
    so `read` played r; a capability of weight 0, whose return is not judged (retained 1), stood
    above their mean and was 'tilted' to 1.5, and the rule said "tilted" while w = r."""
    caps = ["a", "b", "unused"]
    alloc = make_allocator("read", caps, {"a": 0.5, "b": 0.5, "unused": 0.0})
    s = {"a": 50.0, "b": 50.0, "unused": 50.0}
    for step in range(8):
        w = alloc.select(s, 1.0 - step / 8)
        gain = 2.0 * 0.6 ** step  # the same saturation for both required capabilities
        s = {"a": s["a"] + gain * np.sqrt(w[0]), "b": s["b"] + gain * np.sqrt(w[1]), "unused": s["unused"]}
        alloc.observe(s, 1000)
    w = alloc.select(s, 0.1)
    explain = alloc.last_info["explain"]
    assert np.allclose(w, [0.5, 0.5, 0.0])
    assert explain["capabilities"]["a"]["retained"] < 0.5  # judged, and saturated
    assert explain["rule"] == "retained returns within the noise: w = r"
    assert explain["capabilities"]["unused"]["tilt"] == 1.0


def test_the_report_says_how_much_of_the_gain_the_allocator_could_still_act_on(tmp_path):
    # the r-weighted gain per decision, summed: when half and 90% of it were made, and the share the
    # decisions from the first evidence-based one on made (read's warm-up is 2 decisions)
    env, rows, _ = _run()
    (tmp_path / "allocations.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    text = write_report(tmp_path, tensorboard=False).read_text()
    gains = [row["info"]["gain"] for row in rows if row["event"] == "observe"]
    total, cumulative = sum(gains), np.cumsum(gains)
    half, ninety = (int(np.argmax(cumulative >= level * total)) + 1 for level in (0.5, 0.9))
    assert (f"The r-weighted gain (the gain column) sums to {total:.2f} points over {len(gains)} scored decisions: "
            f"half of it by decision {half}, 90% by decision {ninety}.") in text
    share = sum(gains[2:]) / total
    assert (f"The first mixture chosen from evidence was decision 3's (decisions 1-2 were the warm-up); the "
            f"decisions from it on made {100 * share:.0f}% of the gain") in text
    # an allocator that logs no explanation gets the timing without the warm-up sentence
    for row in rows:
        row["info"].pop("explain", None)
    (tmp_path / "allocations.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    text = write_report(tmp_path, tensorboard=False).read_text()
    assert f"half of it by decision {half}" in text and "chosen from evidence" not in text


def test_the_rule_says_w_equals_r_only_when_that_is_the_mixture_played():
    # The first clause decides the tilt; a later step (futility, the cap, the freed mass) may still move
    # the mixture, and the rule then read "...: w = r; futile capabilities kept at the floor".
    moved_after = 0
    for family in ("spillover", "saturation"):
        env, rows, _ = _run(family, seed=0, decisions=25)
        r = np.array([env.requirement[c] for c in env.capabilities])
        for row in rows:
            if row["event"] == "select":
                rule, w = row["info"]["explain"]["rule"], np.array([row["mixture"][c] for c in env.capabilities])
                assert ("w = r" in rule) == bool(np.allclose(w, r, rtol=0.0, atol=1e-12)), rule
                moved_after += ": no tilt;" in rule
    assert moved_after >= 5  # measured 21: the harm rule held the tilt and the futility rule moved the mixture


def test_the_report_shows_the_optimum_share_and_a_fall_that_sticks(tmp_path):
    # sign_flip seed 9008 with four required capabilities: general_knowledge falls below its best at
    # decision 13 and is kept from the tilt's deflation and the cap from then on
    from test_alloc_gain import _four_required

    env = _four_required("sign_flip", 9008)
    _, rows, _ = _run(env=env, decisions=25)
    (tmp_path / "allocations.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    text = write_report(tmp_path, tensorboard=False).read_text()
    last = [row for row in rows if row["event"] == "select"][-1]["info"]["explain"]
    assert "neither deflated nor capped" in last["rule"] and last["capabilities"]["general_knowledge"]["fell_before"]
    assert "| optimum share | tilt | predicted change |" in text
    table = text.split("Decision 25, per capability", 1)[1].splitlines()
    row = next(line for line in table if line.startswith("| general_knowledge | "))
    share = last["capabilities"]["general_knowledge"]["model_share"]
    cells = [cell.strip() for cell in row.split("|")]
    assert cells[8] == "earlier" and cells[12].startswith(f"{share:.3f}"), row
