"""Built-in reasoning templates: syllogisms, orderings, ages, weekdays, sequences, logic puzzles."""

from __future__ import annotations

import math
import random

from read_lightning.prompts.banks.vocabulary import (
    _NAMES,
    _NUM_FMT,
    _WEEKDAYS,
    _WORD_FMT,
    _YES_NO,
    _choice,
    _nonce,
    _num,
)
from read_lightning.prompts.slots import Fill, _ri, _template

# -- reasoning ----------------------------------------------------------------------------------

_RS = "reasoning"


def _people(rng: random.Random, n: int) -> list[str]:
    return rng.sample(_NAMES, n)


@_template("reason_syllogism", _RS, "{premises} Question: {question} {fmt}", "choice")
def _reason_syllogism(rng: random.Random, h: float) -> Fill:
    hops = _ri(rng, h, 1, 6)
    kinds = [_nonce(rng, rng.randint(2, 3)) + "s" for _ in range(hops + 1)]
    premises = [f"All {a} are {b}." for a, b in zip(kinds, kinds[1:])]
    answer = "yes"
    if rng.random() < 0.5:
        extra = _nonce(rng, 3) + "s"
        premises.append(f"No {kinds[-1]} are {extra}.")
        question = f"Can one of the {kinds[0]} be one of the {extra}?"
        answer = "no"
    else:
        question = f"Is every one of the {kinds[0]} one of the {kinds[-1]}?"
    rng.shuffle(premises)
    fmt = rng.choice(("Answer yes or no.", "Answer yes or no, then explain.", "Think step by step, then answer 'Answer: yes' or 'Answer: no'."))
    return {"premises": " ".join(premises), "question": question, "fmt": fmt}, _choice(answer, _YES_NO), {"hops": hops}


@_template("reason_order", _RS, "{facts} Who is the {extreme}? {fmt}", "choice")
def _reason_order(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 3, 8)
    people = _people(rng, n)  # people[0] has the most of the attribute
    adj, most, least = rng.choice((("taller", "tallest", "shortest"), ("older", "oldest", "youngest"),
                                   ("faster", "fastest", "slowest"), ("richer", "richest", "poorest")))
    facts = [f"{a} is {adj} than {b}." for a, b in zip(people, people[1:])]
    rng.shuffle(facts)
    top = rng.random() < 0.5
    return {"facts": " ".join(facts), "extreme": most if top else least, "fmt": rng.choice(_WORD_FMT)}, _choice(people[0] if top else people[-1], people), {"people": n}


@_template("reason_ages", _RS, "{facts} How old is {target}? {fmt}", "number")
def _reason_ages(rng: random.Random, h: float) -> Fill:
    hops = _ri(rng, h, 1, 5)
    people = _people(rng, hops + 1)
    age = rng.randint(3, 30)
    facts = [f"{people[-1]} is {age} years old."]
    for older, younger in zip(reversed(people[:-1]), reversed(people[1:])):
        if rng.random() < 0.3 and age < 40:
            facts.append(f"{older} is twice as old as {younger}.")
            age *= 2
        else:
            d = rng.randint(1, 15)
            facts.append(f"{older} is {d} years older than {younger}.")
            age += d
    rng.shuffle(facts)
    return {"facts": " ".join(facts), "target": people[0], "fmt": rng.choice(_NUM_FMT)}, _num(age), {"hops": hops}


@_template("reason_weekday", _RS, "If today is {day}, what day of the week will it be {when}? {fmt}", "choice")
def _reason_weekday(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 1, 1000)
    start = rng.randrange(7)
    later = rng.random() < 0.7
    when = f"in {n} days" if later else f"{n} days ago (what day was it)"
    want = _WEEKDAYS[(start + (n if later else -n)) % 7]
    return {"day": _WEEKDAYS[start], "when": when, "fmt": rng.choice(_WORD_FMT).replace("name", "day")}, _choice(want, _WEEKDAYS), {"days": math.log1p(n)}


@_template("reason_sequence", _RS, "What is the next number in the sequence {seq}? {fmt}", "number")
def _reason_sequence(rng: random.Random, h: float) -> Fill:
    level = _ri(rng, h, 0, 3)
    n = rng.randint(4, 7)
    a = rng.randint(-20, 50)
    if level == 0:
        d = rng.randint(1, 12) * rng.choice((1, -1))
        seq = [a + d * i for i in range(n + 1)]
    elif level == 1:
        r = rng.randint(2, 4)
        a = rng.randint(1, 9)
        seq = [a * r**i for i in range(n + 1)]
    elif level == 2:
        d, dd = rng.randint(1, 6), rng.randint(1, 4)
        seq = [a]
        for i in range(n):
            seq.append(seq[-1] + d + dd * i)
    else:
        seq = [rng.randint(1, 9), rng.randint(1, 9)]
        while len(seq) < n + 1:
            seq.append(seq[-1] + seq[-2])
    return {"seq": ", ".join(map(str, seq[:-1])) + ", ...", "fmt": rng.choice(_NUM_FMT)}, _num(seq[-1]), {"level": level}


@_template("reason_boolean", _RS, "Evaluate this logical expression: {expr}. {fmt}", "choice")
def _reason_boolean(rng: random.Random, h: float) -> Fill:
    ops = _ri(rng, h, 1, 6)

    def build(k: int) -> tuple[str, bool]:
        if k == 0:
            v = rng.random() < 0.5
            return ("True" if v else "False"), v
        left = rng.randint(0, k - 1)
        (ls, lv), (rs, rv) = build(left), build(k - 1 - left)
        op = rng.choice(("and", "or", "and not", "or not"))
        value = {"and": lv and rv, "or": lv or rv, "and not": lv and not rv, "or not": lv or not rv}[op]
        return f"({ls} {op} {rs})", value

    expr, value = build(ops)
    fmt = rng.choice(("Answer True or False.", "Work it out step by step, then give 'Answer: True' or 'Answer: False'."))
    return {"expr": expr[1:-1] if expr.startswith("(") else expr, "fmt": fmt}, _choice("true" if value else "false", {"true": ["true"], "false": ["false"]}), {"operators": ops}


@_template("reason_letters", _RS, "How many times does the letter '{c}' appear in \"{text}\"? {fmt}", "number")
def _reason_letters(rng: random.Random, h: float) -> Fill:
    words = _ri(rng, h, 1, 6)
    text = " ".join(_nonce(rng, rng.randint(2, 4)) for _ in range(words))
    c = rng.choice(sorted(set(text.replace(" ", ""))))
    return {"c": c, "text": text, "fmt": rng.choice(_NUM_FMT)}, _num(text.count(c)), {"length": len(text)}


@_template("reason_queue", _RS, "{n} people stand in a line. {name} is {pos} from the {end}. {question} {fmt}", "number")
def _reason_queue(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 5, 200)
    k = rng.randint(1, n)
    end = rng.choice(("front", "back"))
    name = rng.choice(_NAMES)
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    if rng.random() < 0.5:
        question, want = f"How many people are {'behind' if end == 'front' else 'in front of'} {name}?", n - k
    else:
        question, want = f"What is {name}'s position counted from the {'back' if end == 'front' else 'front'}?", n - k + 1
    return {"n": n, "name": name, "pos": f"{k}{suffix}", "end": end, "question": question, "fmt": rng.choice(_NUM_FMT)}, _num(want), {"people": n}


@_template("reason_clock", _RS, "A {event} starts at {start} and lasts {dur}. At what time does it end? {fmt}", "time")
def _reason_clock(rng: random.Random, h: float) -> Fill:
    minutes = _ri(rng, h, 5, 900)
    start = rng.randrange(24 * 60)
    end = (start + minutes) % (24 * 60)
    dur = f"{minutes // 60} hours and {minutes % 60} minutes" if minutes >= 60 else f"{minutes} minutes"
    event = rng.choice(("meeting", "film", "train journey", "exam", "concert", "workshop", "flight", "match"))
    fmt = rng.choice(("Answer in 24-hour HH:MM format.", "Give the time as HH:MM (24-hour clock).", "Explain, then give the end time in 24-hour format."))
    return {"event": event, "start": f"{start // 60:02d}:{start % 60:02d}", "dur": dur, "fmt": fmt}, {"kind": "time", "value": f"{end // 60:02d}:{end % 60:02d}"}, {"minutes": minutes}


@_template("reason_sets", _RS, "In a group of {n} {who}, {a} like {x}, {b} like {y}, and {both} like both. How many like neither? {fmt}", "number")
def _reason_sets(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 10, 500)
    a, b = rng.randint(1, n // 2), rng.randint(1, n // 2)
    both = rng.randint(0, min(a, b))
    x, y = rng.sample(("tea", "coffee", "chess", "football", "jazz", "hiking", "painting", "cooking", "cycling", "poetry"), 2)
    who = rng.choice(("students", "employees", "tourists", "club members", "neighbours", "patients"))
    return {"n": n, "who": who, "a": a, "x": x, "b": b, "y": y, "both": both, "fmt": rng.choice(_NUM_FMT)}, _num(n - a - b + both), {"size": math.log(n)}


@_template("reason_walk", _RS, "{name} starts at a crossing and walks {moves}. {question} {fmt}", "number")
def _reason_walk(rng: random.Random, h: float) -> Fill:
    k = _ri(rng, h, 2, 9)
    x = y = 0
    moves = []
    for _ in range(k):
        d, s = rng.choice("NSEW"), rng.randint(1, 12)
        x += {"E": s, "W": -s}.get(d, 0)
        y += {"N": s, "S": -s}.get(d, 0)
        moves.append(f"{s} blocks {dict(N='north', S='south', E='east', W='west')[d]}")
    if rng.random() < 0.5:
        question, want = "How many blocks is the walk back to the start, moving only along streets (Manhattan distance)?", abs(x) + abs(y)
    else:
        question, want = "How many blocks east of the start does the walk end (negative if west)?", x
    return {"name": rng.choice(_NAMES), "moves": ", then ".join(moves), "question": question, "fmt": rng.choice(_NUM_FMT)}, _num(want), {"moves": k}


@_template("reason_swaps", _RS, "{setup} {swaps} Who has the {obj} now? {fmt}", "choice")
def _reason_swaps(rng: random.Random, h: float) -> Fill:
    n = rng.randint(2, 5)
    k = _ri(rng, h, 1, 8)
    people = _people(rng, n)
    objs = rng.sample(("red ball", "blue hat", "green book", "gold coin", "silver key", "black umbrella"), n)
    holder = dict(zip(people, objs))
    setup = " ".join(f"{p} has the {o}." for p, o in holder.items())
    steps = []
    for _ in range(k):
        a, b = rng.sample(people, 2)
        holder[a], holder[b] = holder[b], holder[a]
        steps.append(f"{a} and {b} swap items.")
    obj = rng.choice(objs)
    owner = next(p for p, o in holder.items() if o == obj)
    return {"setup": setup, "swaps": " Then ".join(steps), "obj": obj, "fmt": rng.choice(_WORD_FMT)}, _choice(owner, people), {"swaps": k}


@_template("reason_race", _RS, "In a race, {facts} Who finished in position {k}? {fmt}", "choice")
def _reason_race(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 3, 8)
    order = _people(rng, n)
    facts = []
    for a, b in zip(order, order[1:]):
        facts.append(rng.choice((f"{a} finished just ahead of {b}.", f"{b} finished right after {a}.")))
    rng.shuffle(facts)
    k = rng.randint(1, n)
    return {"facts": " ".join(facts), "k": k, "fmt": rng.choice(_WORD_FMT)}, _choice(order[k - 1], order), {"runners": n}
