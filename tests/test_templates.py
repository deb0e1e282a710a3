"""Capability templates: coverage, determinism, resume, share cap, curriculum, difficulty,
verifiers (accept right answers, reject wrong ones, code in a subprocess), user files, leakage."""

from __future__ import annotations

import builtins
import json
import random
from collections import Counter, defaultdict

import pytest

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
from read_lightning.evaluation.answers import final_number
from read_lightning.prompts.banks.code import _sum_multiples, _to_base
from read_lightning.prompts.curriculum import TIERS, Curriculum
from read_lightning.prompts.leakage import prompt_hash
from read_lightning.prompts.library import TemplateLibrary
from read_lightning.prompts.user_templates import load_templates
from read_lightning.prompts.verifiers import verify_answer
from read_lightning.teachers.generation import Prompt, PromptSource


@pytest.fixture(scope="module")
def lib() -> TemplateLibrary:
    return TemplateLibrary.default()


def _sample_all(library: TemplateLibrary, rng: random.Random, n: int, progress: float | None = None) -> list[Prompt]:
    caps = library.capabilities
    return [
        library.sample(caps[i % len(caps)], rng, (i / n) if progress is None else progress) for i in range(n)
    ]


# -- coverage and API ------------------------------------------------------------------------


def test_every_default_capability_has_at_least_12_templates(lib):
    assert lib.capabilities == list(DEFAULT_CAPABILITIES)
    names = [t.name for c in lib.capabilities for t in lib.templates(c)]
    assert len(names) == len(set(names))
    for cap in lib.capabilities:
        templates = lib.templates(cap)
        assert len(templates) >= 12, cap
        assert all(t.capability == cap for t in templates)
        # most templates carry a verifier: the data has checkable answers in every capability
        assert sum(t.verifier is not None for t in templates) >= 10, cap
    assert isinstance(lib, PromptSource)


def test_unknown_capability_is_named_with_the_known_ones(lib):
    with pytest.raises(ValueError, match=r"'poetry'.*known capabilities are \['general_knowledge'"):
        lib.sample("poetry", random.Random(0), 0.5)
    with pytest.raises(ValueError, match="poetry"):
        TemplateLibrary(capabilities=["math", "poetry"])
    with pytest.raises(ValueError, match="progress"):
        lib.sample("math", random.Random(0), float("nan"))


def test_sampling_is_deterministic_and_prompts_are_json_ready():
    a, b = TemplateLibrary(seed=1), TemplateLibrary(seed=1)
    pa = _sample_all(a, random.Random(5), 160)
    pb = _sample_all(b, random.Random(5), 160)
    assert [(p.text, p.template, p.difficulty, p.meta) for p in pa] == [(p.text, p.template, p.difficulty, p.meta) for p in pb]
    for p in pa:
        assert p.difficulty in TIERS and 0.0 <= p.meta["difficulty_score"] <= 1.0
        assert json.loads(json.dumps(p.meta)) == p.meta  # survives a JSONL round trip unchanged


def test_state_dict_resumes_identically():
    kwargs = dict(max_template_share=0.1, window=40, seed=2)  # a binding cap makes the state matter
    a = TemplateLibrary(**kwargs)
    rng = random.Random(9)
    _sample_all(a, rng, 200)
    state, rng_state = json.loads(json.dumps(a.state_dict())), rng.getstate()
    rest_a = _sample_all(a, rng, 200)

    b = TemplateLibrary(**kwargs)
    b.load_state_dict(state)
    rng_b = random.Random()
    rng_b.setstate(rng_state)
    rest_b = _sample_all(b, rng_b, 200)
    assert [p.text for p in rest_a] == [p.text for p in rest_b]
    assert a.state_dict() == b.state_dict()

    fresh = TemplateLibrary(**kwargs)  # without the state the draws differ: the test can fail
    rng_c = random.Random()
    rng_c.setstate(rng_state)
    assert [p.text for p in _sample_all(fresh, rng_c, 200)] != [p.text for p in rest_a]
    with pytest.raises(ValueError, match="unknown templates"):
        b.load_state_dict({"recent": {"math": ["no_such_template"]}})


# -- share cap, curriculum, difficulty -------------------------------------------------------


@pytest.mark.parametrize(("share", "window"), [(0.25, 128), (0.1, 60)])
def test_no_template_exceeds_its_share_of_the_window(share, window):
    library = TemplateLibrary(capabilities=["math", "code"], max_template_share=share, window=window)
    rng = random.Random(0)
    limit = int(share * window)
    for cap in library.capabilities:
        names = [library.sample(cap, rng, 0.5).template for _ in range(3 * window)]
        for end in range(1, len(names) + 1):
            counts = Counter(names[max(0, end - window) : end])
            assert max(counts.values()) <= limit, (cap, end, counts.most_common(1))
    assert library.stats["share_cap_fallbacks"] == 0


def test_share_cap_really_binds():
    # A skewed rng would pick template 0 forever; the cap forces variety.
    class First(random.Random):
        def choice(self, seq):
            return seq[0]

    library = TemplateLibrary(capabilities=["math"], max_template_share=0.25, window=128)
    names = [library.sample("math", First(0), 0.5).template for _ in range(128)]
    assert max(Counter(names).values()) == 32


def test_curriculum_defaults_and_validation():
    cur = Curriculum()
    assert cur.probabilities(0.0) == (0.1, 0.8, 0.1)
    assert cur.probabilities(0.3) == (0.1, 0.5, 0.4)
    assert cur.probabilities(0.69) == (0.1, 0.5, 0.4)
    assert cur.probabilities(0.7) == (0.05, 0.2, 0.75)
    assert Curriculum.from_config({"boundaries": [0.5], "probs": [[1, 0, 0], [0, 0, 1]]}).probabilities(0.6) == (0, 0, 1)
    with pytest.raises(ValueError, match="sum"):
        Curriculum(boundaries=(0.5,), probs=((0.5, 0.5, 0.5), (0, 0, 1)))
    with pytest.raises(ValueError, match="rows"):
        Curriculum(boundaries=(0.5,), probs=((1, 0, 0),))
    with pytest.raises(ValueError, match="unknown curriculum keys"):
        Curriculum.from_config({"bounds": [0.5]})


@pytest.mark.parametrize("progress", [0.1, 0.5, 0.9])
def test_tier_frequencies_follow_the_curriculum(lib, progress):
    rng = random.Random(int(progress * 10))
    tiers = Counter(lib.sample("math", rng, progress).difficulty for _ in range(1500))
    want = Curriculum().probabilities(progress)
    for tier, p in zip(TIERS, want):
        assert abs(tiers[tier] / 1500 - p) < 0.07, (progress, tiers)


def test_difficulty_tracks_control_factors(lib):
    rng = random.Random(3)
    for cap in lib.capabilities:
        by_tier = defaultdict(list)
        for i in range(450):
            p = lib.sample(cap, rng, (0.05, 0.5, 0.95)[i % 3])
            by_tier[p.difficulty].append(p.meta["difficulty_score"])
        means = [sum(by_tier[t]) / len(by_tier[t]) for t in TIERS]
        assert means[0] < means[1] < means[2], (cap, means)
    custom = TemplateLibrary(capabilities=["math"], curriculum={"boundaries": [0.5], "probs": [[1, 0, 0], [0, 0, 1]]})
    digits = {}
    for progress in (0.0, 1.0):
        ps = []
        while len(ps) < 40:
            p = custom.sample("math", rng, progress)
            if p.template == "math_add":
                ps.append(p.meta["factors"]["digits"])
        digits[progress] = sum(ps) / len(ps)
    assert digits[1.0] > digits[0.0] + 1.5, digits


# -- distinctness ----------------------------------------------------------------------------


@pytest.mark.parametrize("capability", DEFAULT_CAPABILITIES)
def test_prompts_are_mostly_distinct(lib, capability):
    # 10,000 prompts per capability as the brief asks; long documents are slow to build, so that
    # one capability uses 4,000 here (benchmarks/generation.py reports all eight at 10,000).
    n = 4000 if capability == "long_context" else 10_000
    before = lib.state_dict()
    ratio = lib.distinct_ratio(capability, n=n, seed=0)
    print(f"distinct ratio {capability} n={n}: {ratio:.4f}")
    assert ratio > 0.9
    assert lib.state_dict() == before  # measured on a copy of the state


# -- verifiers -------------------------------------------------------------------------------


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.6f}"


def _example(schema: dict) -> object:
    """A value conforming to a JSON-schema subset (for schema-fill prompts)."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {k: _example(s) for k, s in schema.get("properties", {}).items()}
    return {"string": "x", "integer": 3, "number": 1.5, "boolean": True, "array": [], None: None}[kind]


def _table_solution(check: dict, wrong: bool = False) -> str:
    table = {json.dumps(args): want for args, want in check["tests"]}
    body = "return None" if wrong else "return _T[json.dumps(list(args))]"
    return (
        "Here is the code:\n```python\nimport json\n"
        f"_T = json.loads({json.dumps(json.dumps(table))})\n\ndef {check['entry']}(*args):\n    {body}\n```\n"
    )


def _answers(check: dict) -> tuple[str, str] | None:
    """(a right answer, a wrong answer) written the way a chatty model would."""
    kind = check["kind"]
    first = lambda v: str(v).split("|")[0]  # noqa: E731
    if kind == "number":
        v = float(check["value"])
        return f"Let me work it out.\nAnswer: {_fmt(v)}", f"Answer: {_fmt(v + 1 + abs(v) * 0.5)}"
    if kind == "contains":
        return "Sure:\n" + "\n".join(first(v) for v in check["values"]), "I am not sure about that."
    if kind == "choice":
        others = [o for o in check["options"] if o != check["value"]]
        return f"Answer: {first(check['options'][check['value']][0])}", f"Answer: {first(check['options'][others[0]][0])}"
    if kind == "sequence":
        vals = [_fmt(v) if check.get("numeric") else str(v) for v in check["values"]]
        wrong = vals[::-1] if len(set(vals)) > 1 else vals[:-1] + ["999"]
        if len(set(vals)) == 1 and not check.get("numeric"):
            wrong = ["false" if vals[0] == "true" else "true"]
        return "Result: " + ", ".join(vals), "Result: " + ", ".join(wrong)
    if kind == "time":
        h, m = check["value"].split(":")
        return f"It ends at {h}:{m}.", f"It ends at {h}:{(int(m) + 1) % 60:02d}."
    if kind == "json":
        value = check.get("values") or _example(check["schema"])
        return f"```json\n{json.dumps(value)}\n```", "{}" if check["schema"].get("required") else "no json here"
    if kind == "tool_call":
        call = {"name": check["name"], "arguments": check["arguments"]}
        return json.dumps(call), json.dumps({"name": "not_" + check["name"], "arguments": check["arguments"]})
    if kind == "code":
        return _table_solution(check), _table_solution(check, wrong=True)
    if kind == "pairs":
        pairs = check["pairs"]
        wrong = [(f, pairs[(i + 1) % len(pairs)][1]) for i, (f, _) in enumerate(pairs)]
        return "\n".join(f"{f} = {e}" for f, e in pairs), "\n".join(f"{f} = {e}" for f, e in wrong)
    return None  # constraints: covered by test_constraint_checks


def test_verifiers_accept_right_answers_and_reject_wrong_ones(lib):
    rng = random.Random(11)
    checked = Counter()
    for cap in lib.capabilities:
        for template in lib.templates(cap):
            if template.verifier is None:
                continue
            per_template = 1 if template.verifier == "code" else 4
            for k in range(per_template):
                text, check, _ = template.fill(rng, k / max(1, per_template - 1))
                prompt = Prompt(text, cap, template.name, meta={"check": json.loads(json.dumps(check))})
                answers = _answers(prompt.meta["check"])
                if answers is None:
                    continue
                right, wrong = answers
                assert lib.verify(prompt, right) is True, (template.name, check, right)
                assert lib.verify(prompt, wrong) is False, (template.name, check, wrong)
                checked[check["kind"]] += 1
    assert lib.verify(Prompt("free text", "general_knowledge"), "anything") is None
    assert set(checked) >= {"number", "contains", "choice", "sequence", "time", "json", "tool_call", "code", "pairs"}


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("The total is 1,234.", 1234),
        ("We get \\boxed{42}, since 40 + 2.", 42),
        ("Answer: 7 apples (3 + 4 = 7, check: 10 - 3).", 7),
        ("The difference is \u22125", -5),
        ("So x = -12", -12),
        ("It costs $12.50 in total.", 12.5),
        ("3/4", 0.75),
        ("Final answer is 0.5\nThen 3 more notes.", 0.5),
        ("So \\boxed{\\frac{7}{2}}.", 3.5),  # nested braces in the box
        ("\\boxed{1{,}234}", 1234),
        ("Paragraph 4 mentions the word K7PQ2M.", 4),  # the digits of a code word are no number
        ("Answer: 23 + 19 = 42", 42),
        ("Answer: 12 (because 3 * 4 = 12, and 12 = 2 * 6)", 12),
    ],
)
def test_final_number_is_lenient_about_format(answer, value):
    assert final_number(answer) == pytest.approx(value)


@pytest.mark.parametrize(("want", "answer", "ok"), [
    ("15:30", "3:30 pm", True), ("15:30", "3:30", True), ("15:30", "03:30", False), ("12:30", "00:30", False),
    ("14:30", "14:30, i.e. after 2.50 hours", True), ("09:05", "9h05", True), ("14:30", "2.30", False),
])
def test_time_answers(want, answer, ok):
    assert verify_answer({"kind": "time", "value": want}, answer) is ok


def test_a_romance_answer_counts_in_its_language_on_a_stopword_tie():
    french = "La photosynthèse permet aux plantes de transformer la lumière en énergie."
    def in_(lang):
        return {"kind": "constraints", "items": [{"type": "language", "lang": lang}]}

    assert verify_answer(in_("french"), french) and not verify_answer(in_("german"), french)


def test_choice_and_sequence_leniency():
    yes_no = {"kind": "choice", "value": "yes", "options": {"yes": ["yes", "true"], "no": ["no", "false"]}}
    assert verify_answer(yes_no, "Yes.")
    assert verify_answer(yes_no, "Let me see: no contradiction appears, so the answer is yes.")
    assert not verify_answer(yes_no, "No, it does not follow.")
    names = {"kind": "choice", "value": "Alice", "options": {"Alice": ["Alice"], "Bob": ["Bob"], "Carol": ["Carol"]}}
    assert verify_answer(names, "Bob is taller than Carol, and Alice is taller than Bob. Alice is the tallest.")
    assert not verify_answer(names, "The tallest is Carol.")
    seq = {"kind": "sequence", "values": [-3, 5, 9], "numeric": True}
    assert verify_answer(seq, "Sorting 5, -3, 9 gives [-3, 5, 9].")
    assert not verify_answer(seq, "5, -3, 9")
    assert verify_answer({"kind": "contains", "values": ["Bogota", "Kyiv|Kiev"]}, "Bogotá and Kiev.")


def test_an_answer_that_restates_the_prompt_before_its_conclusion_is_read_by_its_conclusion(lib):
    # "If today is Monday, in 3 days it is Thursday" names the given day first; "False or True
    # evaluates to True" names both options before its verdict
    rng, seen = random.Random(0), set()
    for name in ("reason_weekday", "reason_boolean"):
        template = next(t for t in lib._templates["reasoning"] if t.name == name)
        for _ in range(60):
            prompt = lib._fill_tier(template, "medium", rng)
            check = prompt.meta["check"]
            want, given = check["value"].title(), [g.title() for g in check["given"]]
            other = next(o.title() for o in check["options"] if o.title() != want and o.title() in given + [o.title()])
            if want not in given and given:
                seen.add("given first")
                assert lib.verify(prompt, f"Starting from {given[0]}, the answer comes out as {want}.")
                wrong = next(o.title() for o in check["options"] if o.title() not in (want, *given))
                assert not lib.verify(prompt, f"Starting from {given[0]}, the answer comes out as {wrong}.")
                assert not lib.verify(prompt, f"From {given[0]} it is {given[0]} again.")
            elif want in given and other in given:
                seen.add("all given")
                assert lib.verify(prompt, f"{other} and {want} combine; the result is {want}.")
                assert not lib.verify(prompt, f"{want} and {other} combine; the result is {other}.")
    assert seen == {"given first", "all given"}


def test_true_false_answers_are_read_in_order_and_symbols_by_case():
    claims = {"kind": "sequence", "values": ["true"], "vocab": ["true", "false"]}
    assert not verify_answer(claims, "False. The true capital of Germany is Berlin, not Bonn.")
    assert verify_answer(claims, "True: Berlin is the capital of Germany.")
    two = {"kind": "sequence", "values": ["false", "false"], "vocab": ["true", "false"]}
    assert not verify_answer(two, "(1) True (2) False") and verify_answer(two, "(1) False (2) False, as both are wrong.")
    symbol = {"kind": "contains", "values": ["S"], "case_sensitive": True}
    assert not verify_answer(symbol, "Sulfur's chemical symbol is Su.") and verify_answer(symbol, "Sulfur: S")
    assert not verify_answer({**symbol, "values": ["I"]}, "i believe iodine's symbol is Io.")
    assert not verify_answer({**symbol, "values": ["Co"]}, "Cobalt: Cb (a co-worker told me).")


def test_a_sentence_cap_leaves_room_for_the_bullets_or_paragraphs_asked_for():
    from read_lightning.prompts.banks.steerability import _constraints

    rng = random.Random(0)
    for _ in range(3000):
        _, items = _constraints(rng, 6)
        cap = next((i["n"] for i in items if i["type"] == "max_sentences"), None)
        layout = sum(i["n"] for i in items if i["type"] in ("bullets", "paragraphs"))
        assert cap is None or cap >= layout


def test_constraint_checks():
    c = lambda *items: {"kind": "constraints", "items": list(items)}  # noqa: E731
    assert verify_answer(c({"type": "lowercase"}, {"type": "no_commas"}), "all quiet here")
    assert not verify_answer(c({"type": "lowercase"}), "Not quiet")
    assert verify_answer(c({"type": "bullets", "n": 3}), "Intro\n- a\n- b\n* c")
    assert not verify_answer(c({"type": "bullets", "n": 3}), "- a\n- b")
    assert verify_answer(c({"type": "max_words", "n": 3}, {"type": "starts_with", "text": "Today"}), '"Today, we win."')
    assert verify_answer(c({"type": "ends_with", "text": "See you soon."}), "Bye for now. See you soon")
    assert verify_answer(c({"type": "keywords", "words": ["orbit"]}, {"type": "forbidden", "words": ["very"]}), "An orbit.")
    assert not verify_answer(c({"type": "forbidden", "words": ["very"]}), "Very nice")
    assert verify_answer(c({"type": "title"}, {"type": "postscript"}, {"type": "placeholders", "n": 2}), "<<Hi>>\nAt [place] by [time].\nP.S. bring tea")
    assert verify_answer(c({"type": "paragraphs", "n": 2}, {"type": "quoted"}), '"One.\n\nTwo."')
    assert verify_answer(c({"type": "sentence_range", "min": 2, "max": 3}), "One. Two! Three?")
    assert not verify_answer(c({"type": "sentence_range", "min": 2, "max": 3}), "One.")
    assert verify_answer(c({"type": "language", "lang": "spanish"}), "El gato es muy bonito y la casa es grande.")
    assert not verify_answer(c({"type": "language", "lang": "spanish"}), "The cat is nice and the house is big.")
    with pytest.raises(ValueError, match="unknown verifier kind"):
        verify_answer({"kind": "telepathy"}, "x")


def test_code_verifier_does_not_pass_an_answer_that_prints_pass_and_exits_at_import():
    check = {"kind": "code", "entry": "add", "tests": [[[1, 2], 3]], "timeout": 5.0}
    gaming = "```python\nimport sys\ndef add(a, b):\n    return 0\nprint('PASS')\nsys.exit(0)\n```"
    assert not verify_answer(check, gaming)
    gaming_hard = "```python\nimport os\ndef add(a, b):\n    return 0\nprint('PASS', flush=True)\nos._exit(0)\n```"
    assert not verify_answer(check, gaming_hard)


def test_code_verifier_runs_in_a_subprocess_with_a_timeout():
    check = {"kind": "code", "entry": "add", "tests": [[[1, 2], 3], [[[1], [2]], [1, 2]]], "timeout": 2.0}
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    assert verify_answer(check, good)
    assert not verify_answer(check, "```python\ndef add(a, b):\n    return a - b\n```")
    assert not verify_answer(check, "no code at all")
    assert not verify_answer(check, "```python\ndef add(a, b):\n    raise SystemExit(0)\n```")
    # Side effects stay in the child process.
    sneaky = "```python\nimport builtins\nbuiltins.READ_TEMPLATES_MARK = 1\ndef add(a, b):\n    return a + b\n```"
    assert verify_answer(check, sneaky) and not hasattr(builtins, "READ_TEMPLATES_MARK")
    import time

    start = time.monotonic()
    looping = {**check, "timeout": 1.0}
    assert not verify_answer(looping, "```python\ndef add(a, b):\n    while True:\n        pass\n```")
    assert time.monotonic() - start < 8.0


def test_reference_solvers_against_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        limit, divs = rng.randint(0, 400), sorted(rng.sample(range(2, 12), rng.randint(1, 3)))
        assert _sum_multiples(limit, divs) == sum(x for x in range(1, limit) if any(x % d == 0 for d in divs))
        n, base = rng.randint(0, 10**6), rng.randint(2, 9)
        assert int(_to_base(n, base), base) == n


# -- user-defined templates ------------------------------------------------------------------

YAML_TEMPLATES = """\
templates:
  - name: poem_lines
    capability: poetry
    scaffold: "Write a poem about {topic} with exactly {n} lines. {format}"
    slots:
      topic: {type: choice, values: [rain, cats, trains, tea]}
      n: {type: int, min: 2, max: 12}
    formats: ["No title.", "Rhyme if you can."]
  - name: poem_words
    capability: poetry
    scaffold: "Write a haiku using the words {words}."
    slots:
      words: {type: words, values: [moon, river, stone, wind, leaf, snow], k: [1, 4]}
  - name: poem_meter
    capability: poetry
    scaffold: "Write {n} lines in iambic meter about {topic}; how many lines did you write? Answer with a number last."
    slots:
      n: {type: int, min: 1, max: 8}
      topic: {type: choice, values: [sea, city, dawn]}
    verifier: {type: number, value: "{n}"}
  - name: poem_pick
    capability: poetry
    scaffold: "Which is a colour, {a} or {b}? Reply with the word."
    slots:
      a: {type: choice, values: [red, blue]}
      b: {type: choice, values: [spoon, chair]}
    verifier: {type: choice, value: "{a}", options: ["{a}", "{b}"]}
  - name: math_scale
    capability: math
    scaffold: "Multiply {x} by 10."
    slots:
      x: {type: float, min: 0.5, max: 9.5, digits: 1}
"""


def test_user_templates_from_yaml_and_jsonl(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(YAML_TEMPLATES)
    library = TemplateLibrary(extra=path)
    assert library.capabilities[-1] == "poetry" and len(library.templates("poetry")) == 4
    assert "math_scale" in [t.name for t in library.templates("math")]
    rng = random.Random(0)
    prompts = [library.sample("poetry", rng, 0.5) for _ in range(200)]
    assert {p.template for p in prompts} == {"poem_lines", "poem_words", "poem_meter", "poem_pick"}
    meter = next(p for p in prompts if p.template == "poem_meter")
    n = meter.meta["check"]["value"]
    assert library.verify(meter, f"Here they are... I wrote {int(n)}") is True
    assert library.verify(meter, f"I wrote {int(n) + 1}") is False
    pick = next(p for p in prompts if p.template == "poem_pick")
    assert library.verify(pick, pick.meta["check"]["value"].upper()) is True
    hard = [p.meta["factors"]["n"] for p in prompts if p.template == "poem_lines" and p.difficulty == "hard"]
    easy = [p.meta["factors"]["n"] for p in prompts if p.template == "poem_lines" and p.difficulty == "easy"]
    assert not hard or not easy or min(hard) > max(easy) - 4

    only = TemplateLibrary(capabilities=["math", "poetry"], extra=[path])
    assert only.capabilities == ["math", "poetry"]

    jsonl = tmp_path / "mine.jsonl"
    rows = [
        {"name": f"riddle_{i}", "capability": "riddles", "scaffold": "Riddle {i}: what has {k} legs?",
         "slots": {"i": {"type": "int", "min": 1, "max": 99}, "k": {"type": "choice", "values": [2, 4, 6]}}}
        for i in range(4)
    ]
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert [t.name for t in load_templates(jsonl)] == [f"riddle_{i}" for i in range(4)]
    assert TemplateLibrary(capabilities=["riddles"], extra=jsonl).sample("riddles", rng, 1.0).text.startswith("Riddle")


def test_few_templates_warn_and_fall_back(tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text("- {name: solo, capability: tiny, scaffold: 'Count to {n}.', slots: {n: {type: int, min: 1, max: 9}}}\n")
    with pytest.warns(UserWarning, match="'tiny' has 1 template"):
        library = TemplateLibrary(capabilities=["tiny"], extra=path)
    rng = random.Random(0)
    assert {library.sample("tiny", rng, 0.5).template for _ in range(40)} == {"solo"}
    assert library.stats["share_cap_fallbacks"] > 0


_USER_VERIFIER_ROW = ('{"name": "a", "capability": "c", "scaffold": "Pick {c} and {n}", "slots": {"c": {"type": "choice", '
                      '"values": ["red", "blue"]}, "n": {"type": "int", "min": 100, "max": 999}}, "verifier": %s}\n')


@pytest.mark.parametrize(
    ("suffix", "content", "pattern"),
    [
        (".yaml", "- {name: a, capability: c, scaffold: 'x {n}', slots: {n: {type: int, min: 1, max: 2}}}\n- {name: b, capability: c}\n",
         r"bad\.yaml:2 \(template #2\): field 'scaffold'"),
        (".yaml", "- name: a\n  capability: c\n  scaffold: 'x {n}'\n  slots:\n    n: {type: int, min: 5, max: 2}\n",
         r"bad\.yaml:1 .*field 'slots\.n'.*larger than 'max'"),
        (".yaml", "- name: a\n  capability: c\n  scaffold: 'x {m}'\n  slots: {}\n", r"bad\.yaml:1 .*'scaffold'.*\['m'\]"),
        (".yaml", "- name: a\n  capability: c\n  scaffold: [unclosed\n", r"bad\.yaml:\d+: invalid YAML"),
        (".yaml", "- name: a\n  capability: c\n  scaffold: 'x {n}'\n  slots:\n    n: {type: range}\n", r"field 'slots\.n'.*'type'"),
        (".jsonl", '{"name": "a", "capability": "c", "scaffold": "x"}\n{"name": "b", oops}\n', r"bad\.jsonl:2: corrupt JSONL row"),
        (".jsonl", '{"name": "a", "capability": "c", "scafold": "x"}\n', r"bad\.jsonl:1: unknown field\(s\) \['scafold'\]"),
        (".jsonl", '{"name": "a", "capability": "c", "scaffold": "x"}\n{"name": "a", "capability": "c", "scaffold": "y"}\n',
         r"bad\.jsonl:2: field 'name'.*already defined at .*bad\.jsonl:1"),
        # verifiers are checked when loaded, not when the first prompt is drawn mid-run
        (".jsonl", _USER_VERIFIER_ROW % '{"type": "regex", "value": "^\\\\d{3}$"}', r"bad\.jsonl:1: field 'verifier\.value'.*positional.*\{\{3\}\}"),
        (".jsonl", _USER_VERIFIER_ROW % '{"type": "contains", "value": "{answr}"}', r"'verifier\.value' uses placeholder \{answr\}"),
        (".jsonl", _USER_VERIFIER_ROW % '{"type": "choice", "value": "{c}", "options": ["Red", "Blue"]}',
         r"'verifier\.value' '\{c\}' can be \['red', 'blue'\].*never verify"),
        (".jsonl", _USER_VERIFIER_ROW % '{"type": "number", "value": "{n}", "tolerance": "tight"}', r"'verifier\.tolerance'"),
    ],
)
def test_malformed_user_files_name_file_line_and_field(tmp_path, suffix, content, pattern):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    with pytest.raises(ValueError, match=pattern):
        load_templates(path)


# -- leakage ---------------------------------------------------------------------------------


def test_library_never_returns_leaked_prompts(tmp_path):
    first = TemplateLibrary(capabilities=["math"])
    rng = random.Random(0)
    seen = [first.sample("math", rng, 0.5).text for _ in range(30)]
    # Evaluation copies differ in case, spacing and final punctuation: still caught.
    leaked = {prompt_hash("  " + t.upper().replace(" ", "   ") + " !") for t in seen[:15]}
    hash_file = tmp_path / "hashes.txt"
    hash_file.write_text("\n".join(sorted(leaked)) + "\n")
    for source in (leaked, hash_file):
        library = TemplateLibrary(capabilities=["math"], leakage_hashes=source)
        rng = random.Random(0)
        out = [library.sample("math", rng, 0.5).text for _ in range(60)]
        assert not {prompt_hash(t) for t in out} & leaked
        assert library.stats["leakage_rejects"] >= 1


def test_slot_values_are_literal_text_in_a_regex_verifier(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"name": "echo", "capability": "c", "scaffold": "Repeat exactly: {w}",
                                "slots": {"w": {"type": "choice", "values": ["a+b"]}},
                                "verifier": {"type": "regex", "value": "^{w}$"}}) + "\n")
    template = load_templates(path)[0]
    _, check, _ = template.filler(random.Random(0), 0.5)
    assert verify_answer(check, "a+b") and not verify_answer(check, "aab")


def test_the_banks_register_in_capability_order():
    # The registry's order is the library's template order, so it fixes which prompts a seed draws;
    # it must not follow the order in which something happens to import the bank modules.
    from read_lightning.prompts.slots import _BUILTIN

    order = [DEFAULT_CAPABILITIES.index(t.capability) for t in _BUILTIN]
    assert order == sorted(order) and set(order) == set(range(len(DEFAULT_CAPABILITIES)))
