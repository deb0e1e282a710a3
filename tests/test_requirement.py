"""Requirement inference: card vectors, the learned identifier, zero-shot ratings, the entry point."""

import json
import warnings

import numpy as np
import pytest
import torch

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
from read_lightning.evaluation.tasks import TaskCard, list_example_tasks
from read_lightning.requirement.cards import card_requirement, card_text
from read_lightning.requirement.identifier import HashedNgramEncoder, RequirementIdentifier, fit_identifier
from read_lightning.requirement.inference import identifier_main, infer_requirement
from read_lightning.requirement.zero_shot import parse_importance, zero_shot_prompt
from read_lightning.teachers.generation import Generation

CAPS = list(DEFAULT_CAPABILITIES)

# Words a card uses when it needs a capability; synthetic cards mention their dominant ones.
WORDS = {
    "general_knowledge": "facts about history geography and science trivia",
    "steerability": "follow the exact output format and instructions strictly",
    "reasoning": "multi step logical deduction and inference",
    "math": "arithmetic word problems with numbers and sums",
    "code": "write python functions that pass unit tests",
    "tool_use": "call external api tools with json arguments",
    "long_context": "read a very long document and find the relevant passage",
    "multilingual": "translate between french spanish and german",
}
SUPPORTS = [
    ("math", "reasoning"), ("code",), ("code", "steerability"), ("general_knowledge",),
    ("multilingual", "general_knowledge"), ("tool_use", "steerability", "code"), ("long_context", "reasoning"),
    ("math",), ("reasoning", "general_knowledge"), ("multilingual", "steerability"),
]


def make_card(name, text="A task.", requirement=None, tmp_path=None):
    return TaskCard(name=name, description=text, evaluation="fidelity", dev="dev.jsonl", test="test.jsonl",
                    requirement=requirement)


def synthetic_rows(seed=0, per_card=40, noise=0.05):
    """Cards whose text names their dominant capabilities; dU = r_card . ds + noise, ds sparse."""
    rng = np.random.default_rng(seed)
    truth, rows = {}, []
    for k, support in enumerate(SUPPORTS):
        r = np.full(len(CAPS), 0.0)
        r[[CAPS.index(c) for c in support]] = rng.dirichlet(np.full(len(support), 2.0))
        text = f"Task {k}. " + ". ".join(WORDS[c] for c in support) + "."
        truth[text] = r
        for m in range(per_card):
            ds = rng.normal(0.0, 0.2, len(CAPS))  # small side effects everywhere
            idx = rng.choice(len(CAPS), size=rng.integers(1, 4), replace=False)
            ds[idx] += rng.uniform(1.0, 6.0, len(idx))  # the trained capabilities move
            du = float(r @ ds + rng.normal(0.0, noise))
            rows.append({"card_name": f"c{k}", "card_text": text, "index": m,
                         "delta_s": dict(zip(CAPS, ds.tolist())), "delta_u": du})
    return truth, rows


def cosine(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def fitted():
    truth, rows = synthetic_rows()
    held = [r for r in rows if r["index"] % 5 == 4]
    train = [r for r in rows if r["index"] % 5 != 4]
    return truth, train, held, fit_identifier(train, CAPS, seed=0)


# --------------------------------------------------------------------------- identifier


def test_identifier_recovers_the_true_requirement(fitted):
    truth, _, _, model = fitted
    cos = [cosine([model.predict(text)[c] for c in CAPS], r) for text, r in truth.items()]
    assert np.mean(cos) > 0.9 and min(cos) > 0.75, cos
    # The dominant capability is the top prediction for every card.
    for text, r in truth.items():
        pred = model.predict(text)
        assert max(pred, key=pred.get) == CAPS[int(np.argmax(r))]


def test_identifier_predicts_held_out_interventions(fitted):
    truth, _, held, model = fitted
    du = np.array([r["delta_u"] for r in held])
    ds = np.array([[r["delta_s"][c] for c in CAPS] for r in held])
    g = np.array([[model.predict(r["card_text"])[c] for c in CAPS] for r in held])
    pred = model.info["gain"] * (g * ds).sum(1)
    uniform = ds.mean(1)  # the no-information baseline: r uniform
    r2 = 1 - ((du - pred) ** 2).mean() / du.var()
    r2_uniform = 1 - ((du - uniform) ** 2).mean() / du.var()
    assert r2 > 0.85 and r2 > r2_uniform + 0.3, (r2, r2_uniform)
    assert 0.8 < model.info["gain"] < 1.25  # dU = r . ds exactly: no gain to find


def test_identifier_fits_the_change_not_the_level():
    # Same ds, same dU, but very different absolute utilities: the fit must not care.
    truth, rows = synthetic_rows(seed=1, per_card=25)
    shifted = [dict(r, u_before=1000.0 * i, u_after=1000.0 * i + r["delta_u"]) for i, r in enumerate(rows)]
    a = fit_identifier(rows, CAPS, steps=200)
    b = fit_identifier(shifted, CAPS, steps=200)
    text = next(iter(truth))
    assert a.predict(text) == b.predict(text)


def test_save_load_round_trip_gives_identical_predictions(fitted, tmp_path):
    truth, _, _, model = fitted
    model.save(tmp_path / "ident")
    loaded = RequirementIdentifier.load(tmp_path / "ident")
    texts = list(truth)
    assert torch.equal(model.predict_texts(texts), loaded.predict_texts(texts))
    assert loaded.info == model.info and loaded.capabilities == CAPS
    (tmp_path / "ident" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: corrupt"):
        RequirementIdentifier.load(tmp_path / "ident")
    with pytest.raises(FileNotFoundError, match="not a saved identifier"):
        RequirementIdentifier.load(tmp_path / "nowhere")


def test_hashed_encoder_is_deterministic_and_normalised():
    enc = HashedNgramEncoder(dim=64)
    x = enc.encode(["Write Python code.", "write python code", ""])
    assert x.shape == (3, 64)
    assert torch.equal(x[0], x[1])  # case and punctuation do not matter
    assert torch.allclose(x[0].norm(), torch.tensor(1.0)) and x[2].abs().sum() == 0
    with pytest.raises(ValueError, match="ngram_range"):
        HashedNgramEncoder(ngram_range=(2, 1))


def test_identifier_fits_rows_that_name_their_card_on_a_capability_subset():
    # arith_word's requirement names reasoning and more; fitting math and code reads its text anyway
    from read_lightning.evaluation.tasks import list_example_tasks

    card = next(str(p) for p in list_example_tasks() if p.parent.name == "arith_word")
    rows = [{"card": card, "delta_s": {"math": 1.0, "code": 0.0}, "delta_u": 1.0}]
    assert fit_identifier(rows, ["math", "code"], steps=2).info["rows"] == 1


def test_untrained_identifier_is_uniform():
    model = RequirementIdentifier(HashedNgramEncoder(dim=32), CAPS)
    assert all(abs(v - 1 / len(CAPS)) < 1e-6 for v in model.predict("anything").values())


def test_identifier_cli_fit_and_predict(tmp_path, capsys):
    _, rows = synthetic_rows(per_card=10)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert identifier_main(["fit", "--data", str(data), "--output", str(tmp_path / "id"), "--steps", "50"]) == 0
    assert json.loads(capsys.readouterr().out.strip())["rows"] == len(rows)
    assert identifier_main(["predict", "--identifier", str(tmp_path / "id"), "arith_word"]) == 0
    out = json.loads(capsys.readouterr().out.strip())
    assert out["card"] == "arith_word" and abs(sum(out["vector"].values()) - 1) < 1e-6


# --------------------------------------------------------------------------- card


def test_card_method_validates_and_renormalises():
    res = infer_requirement(make_card("t", requirement={"math": 3.0, "code": 1.0}), "card")
    assert res.method == "card" and res.vector["math"] == 0.75 and res.vector["general_knowledge"] == 0.0
    assert "math 0.75" in res.explanation
    with pytest.raises(ValueError, match=r"value for 'math' must be finite and >= 0, got -1"):
        card_requirement(make_card("t", requirement={"math": -1.0, "code": 1.0}))
    with pytest.raises(ValueError, match=r"unknown capability.*'juggling'"):
        card_requirement(make_card("t", requirement={"juggling": 1.0}))
    with pytest.raises(ValueError, match=r"needs at least one positive entry"):
        card_requirement(make_card("t", requirement={"math": 0.0}))
    with pytest.raises(ValueError, match=r"'t' has no 'requirement' field"):
        card_requirement(make_card("t"))


def test_card_file_with_bad_requirement_names_file_and_value(tmp_path):
    src = list_example_tasks()[0]
    text = src.read_text().replace("math: 0.5", "math: -0.5")
    bad = tmp_path / "card.yaml"
    for split in ("dev", "test", "train"):
        text = text.replace(f"{split}.jsonl", str(src.parent / f"{split}.jsonl"))
    bad.write_text(text)
    with pytest.raises(ValueError, match=r"card.yaml: field 'requirement'.*'math'.*-0.5"):
        TaskCard.load(bad)


# --------------------------------------------------------------------------- zero-shot


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("math: 8\nreasoning: 4\ncode: 0", {"math": 8, "reasoning": 4, "code": 0}),
        ('Here you go: {"Math": 9, "tool-use": "5/10"}', {"math": 9, "tool_use": 5}),
        ("{'general_knowledge': 7}", {"general_knowledge": 7}),
        ("- **Math** - 8/10\n- Tool Use: 2 out of 10\n3. Long-Context = 6", {"math": 8, "tool_use": 2, "long_context": 6}),
        ("* MULTILINGUAL : 10\n*  steerability:3", {"multilingual": 10, "steerability": 3}),
        ("Math (importance: 9), reasoning is 5; code 12", {"math": 9, "reasoning": 5, "code": 10}),
        ("general knowledge: 4/5", {"general_knowledge": 8}),
    ],
)
def test_parse_importance_formats(answer, expected):
    assert parse_importance(answer, CAPS) == pytest.approx({k: float(v) for k, v in expected.items()})


@pytest.mark.parametrize("answer", ["I think this task is hard.", "Rate each from 0 to 10: math, code", "", "{bad json"])
def test_parse_importance_garbage_is_none(answer):
    assert parse_importance(answer, CAPS) is None


class ScriptedTeacher:
    def __init__(self, answer):
        self.answer, self.prompts = answer, []

    def generate(self, prompts, *, max_new_tokens=None):
        self.prompts.extend(prompts)
        return [Generation(text=self.answer, num_tokens=5) for _ in prompts]


def test_zero_shot_normalises_ratings():
    teacher = ScriptedTeacher("Math: 6\nReasoning - 2/10")
    card = make_card("arith", "Solve arithmetic word problems.")
    res = infer_requirement(card, "zero_shot", teacher=teacher)
    assert res.vector["math"] == pytest.approx(0.75) and res.vector["reasoning"] == pytest.approx(0.25)
    assert res.method == "zero_shot" and "math 6" in res.explanation
    assert "Solve arithmetic word problems." in teacher.prompts[0] and "tool_use: <0-10>" in teacher.prompts[0]


@pytest.mark.parametrize("answer, reason", [("no idea, sorry", "no capability ratings"), ("math: 0, code: 0", "all ratings 0")])
def test_zero_shot_falls_back_to_uniform_with_a_warning(answer, reason):
    with pytest.warns(UserWarning, match=reason):
        res = infer_requirement(make_card("t"), "zero_shot", teacher=ScriptedTeacher(answer))
    assert res.vector == {c: 1 / len(CAPS) for c in CAPS}
    assert "uniform" in res.explanation and reason in res.explanation


# --------------------------------------------------------------------------- entry point


def test_auto_prefers_card_then_identifier_then_zero_shot(fitted, tmp_path):
    truth, _, _, model = fitted
    path = model.save(tmp_path / "ident")
    teacher = ScriptedTeacher("code: 9")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert infer_requirement(make_card("t", requirement={"math": 1}), "auto", identifier_path=path).method == "card"
        text = next(iter(truth))
        res = infer_requirement(make_card("t", text), "auto", identifier_path=path, teacher=teacher)
    assert res.method == "identifier" and res.vector == pytest.approx(model.predict(card_text(make_card("t", text))))
    assert "hashed encoder" in res.explanation
    assert infer_requirement(make_card("t"), "auto", teacher=teacher).vector["code"] == 1.0
    with pytest.raises(ValueError, match="no 'requirement' field, and neither an identifier path nor a teacher"):
        infer_requirement(make_card("t"), "auto")
    with pytest.raises(ValueError, match="unknown requirement method 'magic'"):
        infer_requirement(make_card("t"), "magic")
    with pytest.raises(ValueError, match="trained for capabilities"):
        infer_requirement(make_card("t"), "identifier", capabilities=["math", "code"], identifier_path=path)


def test_zero_shot_prompt_and_card_text_leave_out_the_answer():
    card = TaskCard.load(list_example_tasks()[0])
    text = card_text(card)
    assert card.description.strip() in text and "Example 1:" in text
    assert "requirement" not in text and "0.5" not in zero_shot_prompt(card)


def test_embedding_encoder_fits_and_round_trips(tmp_path, tiny_tokenizer, tiny_model):
    from read_lightning.requirement.identifier import ModelEmbeddingEncoder

    tiny_model.save_pretrained(tmp_path / "lm")
    tiny_tokenizer.save_pretrained(tmp_path / "lm")
    enc = ModelEmbeddingEncoder(str(tmp_path / "lm"))
    x = enc.encode(["write python code", "translate french"])
    assert x.shape == (2, tiny_model.config.hidden_size) and torch.allclose(x.norm(dim=-1), torch.ones(2))
    _, rows = synthetic_rows(per_card=5)
    model = fit_identifier(rows, CAPS, encoder=enc, steps=20)
    model.save(tmp_path / "ident")
    loaded = RequirementIdentifier.load(tmp_path / "ident")
    assert loaded.encoder.config == {"kind": "embeddings", "model": str(tmp_path / "lm")}
    texts = sorted({r["card_text"] for r in rows})
    assert torch.equal(model.predict_texts(texts), loaded.predict_texts(texts))
