"""Built-in math templates: arithmetic, units, percentages, equations, fractions, word problems."""

from __future__ import annotations

import math
import random

from read_lightning.prompts.banks.vocabulary import _NAMES, _NUM_FMT, _fmt_list, _num
from read_lightning.prompts.slots import Fill, _ri, _template

# -- math ---------------------------------------------------------------------------------------

_MA = "math"


def _digits(rng: random.Random, d: int) -> int:
    return rng.randint(10 ** (d - 1) if d > 1 else 0, 10**d - 1)


@_template("math_add", _MA, "{verb} {nums}. {fmt}", "number")
def _math_add(rng: random.Random, h: float) -> Fill:
    d, k = _ri(rng, h, 1, 7), _ri(rng, h, 2, 6)
    nums = [_digits(rng, d) for _ in range(k)]
    verb = rng.choice(("Add", "Compute the sum of", "What is the total of", "Sum up"))
    return {"verb": verb, "nums": _fmt_list(nums), "fmt": rng.choice(_NUM_FMT)}, _num(sum(nums)), {"digits": d, "terms": k}


@_template("math_subtract", _MA, "What is {a} minus {b}? {fmt}", "number")
def _math_subtract(rng: random.Random, h: float) -> Fill:
    d = _ri(rng, h, 1, 8)
    a, b = _digits(rng, d), _digits(rng, _ri(rng, h, 1, d))
    return {"a": a, "b": b, "fmt": rng.choice(_NUM_FMT)}, _num(a - b), {"digits": d}


@_template("math_multiply", _MA, "{verb} {a} by {b}. {fmt}", "number")
def _math_multiply(rng: random.Random, h: float) -> Fill:
    da, db = _ri(rng, h, 1, 5), _ri(rng, h, 1, 4)
    a, b = _digits(rng, da), _digits(rng, db)
    return {"verb": rng.choice(("Multiply", "Compute the product of", "Calculate")), "a": a, "b": b, "fmt": rng.choice(_NUM_FMT)}, _num(a * b), {"digits": da + db}


@_template("math_expression", _MA, "Evaluate {expr}. {fmt}", "number")
def _math_expression(rng: random.Random, h: float) -> Fill:
    ops = _ri(rng, h, 1, 6)

    def build(k: int) -> tuple[str, int]:
        if k == 0:
            v = rng.randint(1, 30)
            return str(v), v
        left = rng.randint(0, k - 1)
        (ls, lv), (rs, rv) = build(left), build(k - 1 - left)
        op = rng.choice("+-*")
        value = {"+": lv + rv, "-": lv - rv, "*": lv * rv}[op]
        return f"({ls} {op} {rs})", value

    expr, value = build(ops)
    return {"expr": expr[1:-1] if ops else expr, "fmt": rng.choice(_NUM_FMT)}, _num(value), {"operators": ops}


_UNITS = (  # from, to, factor (to = from * factor), offset
    ("kilometres", "metres", 1000.0, 0.0), ("metres", "centimetres", 100.0, 0.0), ("miles", "kilometres", 1.609344, 0.0),
    ("inches", "centimetres", 2.54, 0.0), ("feet", "metres", 0.3048, 0.0), ("kilograms", "grams", 1000.0, 0.0),
    ("pounds", "kilograms", 0.45359237, 0.0), ("hours", "minutes", 60.0, 0.0), ("days", "hours", 24.0, 0.0),
    ("litres", "millilitres", 1000.0, 0.0), ("degrees Celsius", "degrees Fahrenheit", 1.8, 32.0),
    ("minutes", "seconds", 60.0, 0.0), ("tonnes", "kilograms", 1000.0, 0.0), ("gigabytes", "megabytes", 1000.0, 0.0),
)


@_template("math_units", _MA, "Convert {x} {src} to {dst}. {fmt}", "number")
def _math_units(rng: random.Random, h: float) -> Fill:
    src, dst, factor, offset = rng.choice(_UNITS)
    decimals = _ri(rng, h, 0, 3)
    x = round(rng.uniform(0.5, 10 ** _ri(rng, h, 1, 4)), decimals)
    if rng.random() < 0.5 and offset == 0.0:  # the reverse direction divides
        src, dst, value = dst, src, x / factor
    else:
        value = x * factor + offset
    return {"x": x, "src": src, "dst": dst, "fmt": rng.choice(_NUM_FMT)}, _num(value, rel_tol=0.01, abs_tol=0.01), {"decimals": decimals}


@_template("math_percent", _MA, "What is {p}% of {n}? {fmt}", "number")
def _math_percent(rng: random.Random, h: float) -> Fill:
    d = _ri(rng, h, 1, 3)
    p = round(rng.uniform(1, 100), d - 1) if d > 1 else rng.randrange(5, 100, 5)
    n = rng.randint(10, 10 ** (d + 2))
    return {"p": p, "n": n, "fmt": rng.choice(_NUM_FMT)}, _num(p * n / 100, rel_tol=1e-4, abs_tol=0.01), {"difficulty": d}


@_template("math_linear", _MA, "Solve for {v}: {lhs} = {rhs}. {fmt}", "number")
def _math_linear(rng: random.Random, h: float) -> Fill:
    mag = _ri(rng, h, 1, 4)
    x = rng.randint(-(3**mag) * 3, 3**mag * 3)
    a = rng.choice([i for i in range(-(3 * mag), 3 * mag + 1) if i not in (0,)])
    b = rng.randint(-(10**mag), 10**mag)
    v = rng.choice("xyzntk")
    c = a * x + b
    lhs = f"{a}{v} {'+' if b >= 0 else '-'} {abs(b)}"
    return {"v": v, "lhs": lhs, "rhs": c, "fmt": rng.choice(_NUM_FMT)}, _num(x), {"magnitude": mag}


@_template("math_gcd_lcm", _MA, "Find the {what} of {nums}. {fmt}", "number")
def _math_gcd_lcm(rng: random.Random, h: float) -> Fill:
    k, d = _ri(rng, h, 2, 4), _ri(rng, h, 1, 3)
    base = rng.randint(2, 12)
    nums = [base * rng.randint(1, 10**d) for _ in range(k)]
    if rng.random() < 0.5:
        what, value = "greatest common divisor", math.gcd(*nums)
    else:
        nums = [rng.randint(2, 4 + 6 * d) for _ in range(k)]  # small, so the LCM stays readable
        what, value = "least common multiple", math.lcm(*nums)
    return {"what": what, "nums": _fmt_list(nums), "fmt": rng.choice(_NUM_FMT)}, _num(value), {"terms": k, "digits": d}


@_template("math_fractions", _MA, "Compute {a}/{b} {op} {c}/{d} as a simplified fraction. {fmt}", "number")
def _math_fractions(rng: random.Random, h: float) -> Fill:
    from fractions import Fraction

    top = _ri(rng, h, 3, 30)
    a, b, c, d = (rng.randint(1, top) for _ in range(4))
    op = rng.choice("+-*")
    value = {"+": Fraction(a, b) + Fraction(c, d), "-": Fraction(a, b) - Fraction(c, d), "*": Fraction(a, b) * Fraction(c, d)}[op]
    fmt = rng.choice(("Give only the fraction.", "Show the steps and end with 'Answer: p/q'.", "Reply with the simplified fraction."))
    return {"a": a, "b": b, "op": op, "c": c, "d": d, "fmt": fmt}, _num(float(value), rel_tol=1e-6), {"size": top}


@_template("math_mean_median", _MA, "What is the {stat} of {nums}? {fmt}", "number")
def _math_mean_median(rng: random.Random, h: float) -> Fill:
    k, d = _ri(rng, h, 3, 12), _ri(rng, h, 1, 4)
    nums = [_digits(rng, d) for _ in range(k)]
    s = sorted(nums)
    stat = rng.choice(("mean", "median", "range"))
    value = {"mean": sum(nums) / k, "median": (s[k // 2] + s[(k - 1) // 2]) / 2, "range": s[-1] - s[0]}[stat]
    return {"stat": stat, "nums": ", ".join(map(str, nums)), "fmt": rng.choice(_NUM_FMT)}, _num(value, rel_tol=1e-4, abs_tol=0.01), {"terms": k, "digits": d}


@_template("math_sort", _MA, "Sort these numbers in {order} order: {nums}. {fmt}", "sequence")
def _math_sort(rng: random.Random, h: float) -> Fill:
    k, d = _ri(rng, h, 3, 12), _ri(rng, h, 1, 5)
    nums = rng.sample(range(-(10**d) // 2, 10**d), k)
    asc = rng.random() < 0.5
    want = sorted(nums, reverse=not asc)
    while nums == want:
        rng.shuffle(nums)
    fmt = rng.choice(("Return a comma-separated list.", "Answer with the sorted list only.", "Explain briefly, then give the list."))
    return {"order": "ascending" if asc else "descending", "nums": ", ".join(map(str, nums)), "fmt": fmt}, {"kind": "sequence", "values": want, "numeric": True}, {"terms": k, "digits": d}


@_template("math_shopping", _MA, "{name} buys {items} and pays with a {note}-dollar note. How much change does {name} get, in dollars? {fmt}", "number")
def _math_shopping(rng: random.Random, h: float) -> Fill:
    k = _ri(rng, h, 1, 5)
    goods = rng.sample(("notebook", "pen", "apple", "sandwich", "coffee", "ticket", "candle", "mug", "scarf", "battery", "plant"), k)
    lines, total = [], 0
    for g in goods:
        q, cents = rng.randint(1, 6), rng.randint(50, 1500)
        total += q * cents
        lines.append(f"{q} {g}{'s' if q > 1 else ''} at ${cents / 100:.2f} each")
    note = next(n for n in (5, 10, 20, 50, 100, 200, 500) if n * 100 >= total)
    return {"name": rng.choice(_NAMES), "items": _fmt_list(lines), "note": note, "fmt": rng.choice(_NUM_FMT)}, _num((note * 100 - total) / 100, abs_tol=0.005), {"items": k}


@_template("math_rate", _MA, "{story} {fmt}", "number")
def _math_rate(rng: random.Random, h: float) -> Fill:
    mag = _ri(rng, h, 1, 3)
    kind = rng.randrange(3)
    name = rng.choice(_NAMES)
    if kind == 0:
        speed, hours = rng.randint(3, 30 * mag), rng.randint(1, 4 * mag)
        story, value = f"{name} travels at {speed} km/h for {hours} hours. How many kilometres is that?", speed * hours
    elif kind == 1:
        rate = rng.randint(2, 9 * mag)
        pages = rate * rng.randint(2, 10 * mag)
        story, value = f"{name} reads {rate} pages per hour. How many hours does a {pages}-page book take?", pages // rate
    else:
        a, b = rng.randint(2, 6 * mag), rng.randint(2, 6 * mag)
        story, value = f"One pipe fills a tank in {a} hours and another in {b} hours. Working together, how many hours do they take?", a * b / (a + b)
    return {"story": story, "fmt": rng.choice(_NUM_FMT)}, _num(value, rel_tol=1e-3, abs_tol=0.01), {"magnitude": mag}


@_template("math_modpow", _MA, "What is {a}^{b} mod {m}? {fmt}", "number")
def _math_modpow(rng: random.Random, h: float) -> Fill:
    b = _ri(rng, h, 2, 40)
    a, m = rng.randint(2, 30), rng.randint(3, 10 ** _ri(rng, h, 1, 3) + 3)
    return {"a": a, "b": b, "m": m, "fmt": rng.choice(_NUM_FMT)}, _num(pow(a, b, m)), {"exponent": b}
