"""Built-in long-context templates: look-ups, counts and hops over generated documents."""

from __future__ import annotations

import json
import random

from read_lightning.prompts.banks.reasoning import _people
from read_lightning.prompts.banks.tool_use import _CITIES, _date
from read_lightning.prompts.banks.vocabulary import (
    _ADJ,
    _NAMES,
    _NOUN,
    _NUM_FMT,
    _WORD_FMT,
    _choice,
    _document,
    _nonce,
    _num,
)
from read_lightning.prompts.slots import Fill, _ri, _template

# -- long context: look-ups, counts and hops over generated documents -------------------------

_LC = "long_context"
_LC_WORDS = (80, 1800)  # document length range in words; the hint picks within it


def _doc_words(rng: random.Random, h: float) -> int:
    return _ri(rng, h, *_LC_WORDS)


def _code_word(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(6))


def _lc(name: str, verifier: str | None):
    return _template(name, _LC, "Read the document and answer the question.\n\n<document>\n{doc}\n</document>\n\n{question} {fmt}", verifier)


@_lc("lc_needle", "contains")
def _lc_needle(rng: random.Random, h: float) -> Fill:
    n, code = _doc_words(rng, h), _code_word(rng)
    thing = rng.choice(("secret code", "vault password", "access key", "passphrase", "ticket number"))
    doc, _ = _document(rng, n, [f"The {thing} is {code}."])
    fmt = rng.choice(("Reply with the value only.", "Quote it exactly.", "Answer in one sentence."))
    return {"doc": doc, "question": f"What is the {thing}?", "fmt": fmt}, {"kind": "contains", "values": [code]}, {"words": n}


@_lc("lc_labelled_needles", "contains")
def _lc_labelled_needles(rng: random.Random, h: float) -> Fill:
    n, k = _doc_words(rng, h), _ri(rng, h, 2, 8)
    labels = rng.sample(("red", "blue", "green", "amber", "violet", "silver", "black", "white", "orange", "teal"), k)
    codes = [_code_word(rng) for _ in labels]
    doc, _ = _document(rng, n, [f"The code for the {lab} door is {c}." for lab, c in zip(labels, codes)])
    i = rng.randrange(k)
    return {"doc": doc, "question": f"What is the code for the {labels[i]} door?", "fmt": "Reply with the code only."}, {"kind": "contains", "values": [codes[i]]}, {"words": n, "needles": k}


@_lc("lc_key_value", "contains")
def _lc_key_value(rng: random.Random, h: float) -> Fill:
    pairs = _ri(rng, h, 5, 140)
    keys = [f"{_nonce(rng, 2)}-{rng.randint(100, 999)}" for _ in range(pairs)]
    store = {k: _code_word(rng) for k in keys}
    key = rng.choice(list(store))
    doc = json.dumps(store, indent=rng.choice((None, 1)))
    return {"doc": doc, "question": f"In this JSON object, what is the value for the key \"{key}\"?", "fmt": "Reply with the value only."}, {"kind": "contains", "values": [store[key]]}, {"pairs": pairs}


@_lc("lc_records", "number")
def _lc_records(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 4, 120)
    people = [f"{rng.choice(_NAMES)} {_nonce(rng, 2).title()}" for _ in range(n)]
    people = list(dict.fromkeys(people))
    ages = {p: rng.randint(18, 95) for p in people}
    doc = "\n".join(f"Record {i + 1}: {p}, from {rng.choice(_CITIES)}, age {ages[p]}." for i, p in enumerate(people))
    who = rng.choice(people)
    return {"doc": doc, "question": f"How old is {who}?", "fmt": rng.choice(_NUM_FMT)}, _num(ages[who]), {"records": len(people)}


@_lc("lc_count_mentions", "number")
def _lc_count_mentions(rng: random.Random, h: float) -> Fill:
    n = _doc_words(rng, h)
    cities = rng.sample(_CITIES, 4)
    target = cities[0]
    times = _ri(rng, h, 0, 9)
    inserts = [f"A courier arrived in {target}."] * times + [f"A courier arrived in {rng.choice(cities[1:])}." for _ in range(rng.randint(1, 6))]
    rng.shuffle(inserts)
    doc, _ = _document(rng, n, inserts)
    return {"doc": doc, "question": f"How many times did a courier arrive in {target}?", "fmt": rng.choice(_NUM_FMT)}, _num(times), {"words": n, "mentions": times}


@_lc("lc_ledger_sum", "number")
def _lc_ledger_sum(rng: random.Random, h: float) -> Fill:
    lines = _ri(rng, h, 4, 80)
    cats = rng.sample(("rent", "food", "travel", "books", "energy", "repairs", "gifts", "software"), 4)
    rows, total = [], 0
    target = cats[0]
    for _ in range(lines):
        c, amount = rng.choice(cats), rng.randint(5, 500)
        total += amount if c == target else 0
        rows.append(f"{_date(rng)} | {c} | {amount}")
    return {"doc": "date | category | amount\n" + "\n".join(rows), "question": f"What is the total amount spent on {target}?", "fmt": rng.choice(_NUM_FMT)}, _num(total), {"lines": lines}


@_lc("lc_first_mention", "choice")
def _lc_first_mention(rng: random.Random, h: float) -> Fill:
    n, k = _doc_words(rng, h), _ri(rng, h, 2, 6)
    people = _people(rng, k)
    act = rng.choice(("rang the bell", "opened the gate", "lit the lamp", "signed the book", "fed the cat"))
    doc, _ = _document(rng, n, [f"{p} {act}." for p in people])
    first = rng.random() < 0.5
    question = f"Who {act} {'first' if first else 'last'} in the document?"
    return {"doc": doc, "question": question, "fmt": rng.choice(_WORD_FMT)}, _choice(people[0] if first else people[-1], people), {"words": n, "people": k}


@_lc("lc_sections", "contains")
def _lc_sections(rng: random.Random, h: float) -> Fill:
    k = _ri(rng, h, 2, 12)
    titles: list[str] = []
    while len(titles) < k:  # distinct titles, so the look-up has one answer
        t = f"{rng.choice(_ADJ).title()} {rng.choice(_NOUN).title()}s"
        if t not in titles:
            titles.append(t)
    per = max(20, _doc_words(rng, h) // k)
    doc = "\n\n".join(f"Section {i + 1}: {t}\n{_document(rng, per)[0]}" for i, t in enumerate(titles))
    i = rng.randrange(k)
    return {"doc": doc, "question": f"What is the title of section {i + 1}?", "fmt": "Reply with the title only."}, {"kind": "contains", "values": [titles[i]]}, {"sections": k, "words": per * k}


@_lc("lc_chain", "choice")
def _lc_chain(rng: random.Random, h: float) -> Fill:
    n, hops = _doc_words(rng, h), _ri(rng, h, 1, 5)
    people = _people(rng, hops + 1 + rng.randint(0, 3))
    chain = people[: hops + 1]
    inserts = [f"{a} reports to {b}." for a, b in zip(chain, chain[1:])]
    inserts += [f"{p} reports to {rng.choice(chain)}." for p in people[hops + 1 :]]
    rng.shuffle(inserts)
    doc, _ = _document(rng, n, inserts)
    question = f"Following the reporting lines, who is {hops} level{'s' if hops > 1 else ''} above {chain[0]}?"
    return {"doc": doc, "question": question, "fmt": rng.choice(_WORD_FMT)}, _choice(chain[-1], people), {"words": n, "hops": hops}


@_lc("lc_summary", "constraints")
def _lc_summary(rng: random.Random, h: float) -> Fill:
    n, k = _doc_words(rng, h), _ri(rng, h, 2, 7)
    doc, _ = _document(rng, n)
    return {"doc": doc, "question": f"Summarise the document in exactly {k} bullet points starting with '- '.", "fmt": rng.choice(("", "Be specific.", "Use short bullets."))}, {"kind": "constraints", "items": [{"type": "bullets", "n": k}]}, {"words": n, "bullets": k}


@_lc("lc_timeline", "time")
def _lc_timeline(rng: random.Random, h: float) -> Fill:
    k = _ri(rng, h, 3, 60)
    events = []
    for _ in range(k):
        t = rng.randrange(24 * 60)
        events.append((t, f"{rng.choice(_NAMES)} {rng.choice(('checked in', 'left the lab', 'called support', 'closed ticket', 'restarted server'))} {rng.randint(1, 999)}"))
    events = list({e: t for t, e in events}.items())  # unique event texts
    doc = "\n".join(f"[{t // 60:02d}:{t % 60:02d}] {e}" for e, t in sorted(events, key=lambda x: x[1]))
    e, t = rng.choice(events)
    return {"doc": doc, "question": f"At what time did this happen: '{e}'?", "fmt": "Answer in HH:MM."}, {"kind": "time", "value": f"{t // 60:02d}:{t % 60:02d}"}, {"events": len(events)}


@_lc("lc_missing_number", "number")
def _lc_missing_number(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 5, 400)
    missing = rng.randint(1, n)
    nums = [i for i in range(1, n + 1) if i != missing]
    rng.shuffle(nums)
    sep = rng.choice((", ", " ", "\n", "; "))
    return {"doc": sep.join(map(str, nums)), "question": f"Every whole number from 1 to {n} appears once except one. Which is missing?", "fmt": rng.choice(_NUM_FMT)}, _num(missing), {"numbers": n}


@_lc("lc_paragraph_locate", "number")
def _lc_paragraph_locate(rng: random.Random, h: float) -> Fill:
    n = _doc_words(rng, h)
    code = _code_word(rng)
    doc, where = _document(rng, n, [f"A note with the word {code} was pinned here."])
    paras = doc.split("\n\n")
    doc = "\n\n".join(f"[{i + 1}] {p}" for i, p in enumerate(paras))
    return {"doc": doc, "question": f"Which numbered paragraph mentions the word {code}?", "fmt": rng.choice(_NUM_FMT)}, _num(where[0]), {"words": n}
