"""Built-in general-knowledge templates: capitals, continents, elements, categories, definitions."""

from __future__ import annotations

import random
from collections.abc import Sequence

from read_lightning.prompts.banks.vocabulary import (
    _AUDIENCES,
    _CATEGORIES,
    _CONCEPTS,
    _COUNTRIES,
    _ELEMENTS,
    _PLANETS,
    _PLANETS_BY_SIZE,
    _TONES,
    _WORD_FMT,
    _choice,
    _fmt_list,
)
from read_lightning.prompts.slots import Fill, _ri, _template

# -- general knowledge ------------------------------------------------------------------------

_GK = "general_knowledge"
_ASK = ("What is", "Name", "Tell me", "Do you know", "Please state", "Quick question: what is")


def _gk_lookup(rng: random.Random, hint: float, rows: Sequence[tuple[str, str]], lo: int, hi: int):
    k = _ri(rng, hint, lo, hi)
    return rng.sample(list(rows), k), k


@_template("gk_capitals", _GK, "{ask} the capital of {what}? {fmt}", "contains")
def _gk_capitals(rng: random.Random, h: float) -> Fill:
    picked, k = _gk_lookup(rng, h, [(c[0], c[1]) for c in _COUNTRIES], 1, 5)
    fmt = rng.choice(("Answer briefly.", "List them one per line.", "Reply as 'country: capital' pairs.",
                      "Add one fact about each city.", "Use a bulleted list.", "Keep it under 40 words."))
    what = _fmt_list([c for c, _ in picked]) + ("" if k == 1 else " (each)")
    return {"ask": rng.choice(_ASK), "what": what, "fmt": fmt}, {"kind": "contains", "values": [v for _, v in picked]}, {"items": k}


@_template("gk_continents", _GK, "On which continent is {what}? {fmt}", "contains")
def _gk_continents(rng: random.Random, h: float) -> Fill:
    picked, k = _gk_lookup(rng, h, [(c[0], c[2]) for c in _COUNTRIES if c[2]], 1, 5)
    fmt = rng.choice(("Answer with the continent name(s) only.", "Reply as 'country - continent'.",
                      "Give one line per country.", "Be brief.", "Explain how you know."))
    return {"what": _fmt_list([c for c, _ in picked]), "fmt": fmt}, {"kind": "contains", "values": [v for _, v in picked]}, {"items": k}


@_template("gk_languages", _GK, "{ask} the main language spoken in {what}? {fmt}", "contains")
def _gk_languages(rng: random.Random, h: float) -> Fill:
    picked, k = _gk_lookup(rng, h, [(c[0], c[3]) for c in _COUNTRIES if c[3]], 1, 4)
    fmt = rng.choice(("One word per country.", "Answer as a list.", "Add a greeting in each language.", "Be concise."))
    return {"ask": rng.choice(_ASK), "what": _fmt_list([c for c, _ in picked]), "fmt": fmt}, {"kind": "contains", "values": [v for _, v in picked]}, {"items": k}


@_template("gk_elements", _GK, "{ask} the chemical symbol of {what}? {fmt}", "contains")
def _gk_elements(rng: random.Random, h: float) -> Fill:
    picked, k = _gk_lookup(rng, h, _ELEMENTS, 1, 6)
    fmt = rng.choice(("Symbols only.", "Reply as 'element: symbol'.", "Also give the atomic number.",
                      "One per line.", "Mention which are metals."))
    return {"ask": rng.choice(_ASK), "what": _fmt_list([e for e, _ in picked]), "fmt": fmt}, {"kind": "contains", "values": [s for _, s in picked], "case_sensitive": True}, {"items": k}


@_template("gk_planet_order", _GK, "Order these planets by their {by}: {planets}. {fmt}", "sequence")
def _gk_planet_order(rng: random.Random, h: float) -> Fill:
    k = _ri(rng, h, 3, 8)
    by, ref = rng.choice((("distance from the Sun, nearest first", _PLANETS), ("size, largest first", _PLANETS_BY_SIZE)))
    chosen = rng.sample(_PLANETS, k)
    want = [p for p in ref if p in chosen]
    while chosen == want:
        rng.shuffle(chosen)
    fmt = rng.choice(("Give the ordered list only.", "Answer as a comma-separated list.", "Explain briefly, then list them."))
    return {"by": by, "planets": ", ".join(chosen), "fmt": fmt}, {"kind": "sequence", "values": want}, {"items": k}


@_template("gk_true_false", _GK, "True or false: {claims} {fmt}", "sequence")
def _gk_true_false(rng: random.Random, h: float) -> Fill:
    k = _ri(rng, h, 1, 6)
    rows = rng.sample(_COUNTRIES, k)
    claims, truth = [], []
    for i, (country, capital, _, _) in enumerate(rows):
        ok = rng.random() < 0.5
        shown = capital.split("|")[0] if ok else rng.choice([c[1] for c in _COUNTRIES if c[1] != capital]).split("|")[0]
        claims.append(f"({i + 1}) The capital of {country} is {shown}.")
        truth.append("true" if ok else "false")
    fmt = rng.choice(("Answer each with true or false, in order.", "Reply 'true' or 'false' for each statement, one per line."))
    return {"claims": " ".join(claims), "fmt": fmt}, {"kind": "sequence", "values": truth, "vocab": ["true", "false"]}, {"items": k}


@_template("gk_odd_one_out", _GK, "Which of these is not one of the {cat}: {items}? {fmt}", "choice")
def _gk_odd_one_out(rng: random.Random, h: float) -> Fill:
    cat, other = rng.sample(sorted(_CATEGORIES), 2)
    k = _ri(rng, h, 3, 8)
    items = rng.sample(_CATEGORIES[cat], min(k, len(_CATEGORIES[cat])))
    odd = rng.choice(_CATEGORIES[other])
    items.insert(rng.randrange(len(items) + 1), odd)
    return {"cat": cat, "items": ", ".join(items), "fmt": rng.choice(_WORD_FMT)}, _choice(odd, items), {"items": k}


@_template("gk_category_members", _GK, "From the list {items}, name every item that belongs to {cat}. {fmt}", "contains")
def _gk_category_members(rng: random.Random, h: float) -> Fill:
    cat, other = rng.sample(sorted(_CATEGORIES), 2)
    n_in, n_out = _ri(rng, h, 1, 5), _ri(rng, h, 1, 5)
    inside = rng.sample(_CATEGORIES[cat], n_in)
    items = inside + rng.sample(_CATEGORIES[other], n_out)
    rng.shuffle(items)
    fmt = rng.choice(("Answer as a comma-separated list.", "One per line.", "Explain each choice briefly."))
    return {"items": "[" + ", ".join(items) + "]", "cat": "the " + cat, "fmt": fmt}, {"kind": "contains", "values": inside}, {"items": n_in + n_out}


@_template("gk_explain", _GK, "Explain {concept} to {audience} in {tone} tone, using {lo} to {hi} sentences.", "constraints")
def _gk_explain(rng: random.Random, h: float) -> Fill:
    lo = _ri(rng, h, 1, 6)
    hi = lo + rng.randint(0, 2)
    check = {"kind": "constraints", "items": [{"type": "sentence_range", "min": lo, "max": hi}]}
    return {"concept": rng.choice(_CONCEPTS), "audience": rng.choice(_AUDIENCES), "tone": "a " + rng.choice(_TONES), "lo": lo, "hi": hi}, check, {"sentences": lo}


@_template("gk_define", _GK, "Define {term} in at most {n} words{extra}.", "constraints")
def _gk_define(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, 1.0 - h, 10, 60)  # fewer words allowed is harder
    extra = rng.choice(("", ", for " + rng.choice(_AUDIENCES), " and give one example", ", without jargon", " in a " + rng.choice(_TONES) + " tone"))
    check = {"kind": "constraints", "items": [{"type": "max_words", "n": n}]}
    return {"term": rng.choice(_CONCEPTS), "n": n, "extra": extra}, check, {"tightness": -n}


@_template("gk_facts_list", _GK, "List exactly {n} facts about {concept}{aud} as a numbered list, one per line.", "constraints")
def _gk_facts_list(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 2, 10)
    aud = rng.choice(("", " that would surprise " + rng.choice(_AUDIENCES), " that " + rng.choice(_AUDIENCES) + " should know"))
    check = {"kind": "constraints", "items": [{"type": "bullets", "n": n}]}
    return {"n": n, "concept": rng.choice(_CONCEPTS), "aud": aud}, check, {"items": n}


@_template("gk_compare", _GK, "Compare {a} and {b} for {audience}: give {n} similarities and {m} differences. {fmt}", None)
def _gk_compare(rng: random.Random, h: float) -> Fill:
    a, b = rng.sample(_CONCEPTS, 2)
    n, m = _ri(rng, h, 1, 4), _ri(rng, h, 1, 4)
    fmt = rng.choice(("Use a markdown table.", "Use two bulleted lists.", "Write prose.", "Keep it short."))
    return {"a": a, "b": b, "audience": rng.choice(_AUDIENCES), "n": n, "m": m, "fmt": fmt}, None, {"items": n + m}


@_template("gk_capital_country", _GK, "{which} country has {cities} as its capital? {fmt}", "contains")
def _gk_capital_country(rng: random.Random, h: float) -> Fill:
    picked, k = _gk_lookup(rng, h, [(c[1].split("|")[0], c[0].removeprefix("the ")) for c in _COUNTRIES], 1, 5)
    which = "Which" if k == 1 else "For each city, which"
    return {"which": which, "cities": _fmt_list([c for c, _ in picked]), "fmt": rng.choice(("Be brief.", "Answer as 'city: country'.", "One per line."))}, {"kind": "contains", "values": [v for _, v in picked]}, {"items": k}
