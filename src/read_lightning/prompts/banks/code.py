"""Built-in code templates: function tasks verified by running hidden tests in the sandbox."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from read_lightning.prompts.banks.steerability import _KEYWORDS
from read_lightning.prompts.banks.vocabulary import _ADJ, _NOUN, _NUM_FMT, _fmt_list, _nonce, _num
from read_lightning.prompts.slots import _BUILTIN, Fill, Template, _ri, _template

# -- code: function tasks verified by running hidden tests in a subprocess --------------------

_CODE_FMT = (
    "Return only the code in a ```python block.",
    "Include type hints and a docstring; put the code in a ```python block.",
    "Do not import any modules. Answer with a ```python code block.",
    "Explain your approach in one sentence, then give the code in a ```python block.",
    "Keep the function under 15 lines and return it in a ```python block.",
    "Add a short comment on any tricky line. Use a ```python block.",
)


def _code_task(name: str, names: Sequence[str], params: str, desc: Callable[[dict[str, Any]], str],
               settings: Callable[[random.Random, float], dict[str, Any]],
               inputs: Callable[[random.Random, float, dict[str, Any]], list[Any]],
               solve: Callable[[dict[str, Any], list[Any]], Any]) -> None:
    """Register a code template. ``settings`` draws the task's parameters (fixed in the prompt),
    ``inputs`` draws one test's arguments, ``solve`` is the trusted reference that computes the
    expected value (run here, on inputs we generated, never on model output)."""

    def fill(rng: random.Random, h: float) -> Fill:
        entry = rng.choice(names)
        cfg = settings(rng, h)
        shown, hidden = _ri(rng, h, 0, 4), _ri(rng, h, 3, 10)
        tests = []
        for _ in range(shown + hidden):
            args = inputs(rng, h, cfg)
            tests.append([args, solve(cfg, args)])
        examples = "".join(f"\n    {entry}({', '.join(repr(a) for a in args)}) == {want!r}" for args, want in tests[:shown])
        examples = f" For example:{examples}\n" if shown else ""
        slots = {"sig": f"{entry}({params})", "desc": desc(cfg), "examples": examples, "fmt": rng.choice(_CODE_FMT)}
        check = {"kind": "code", "entry": entry, "tests": tests, "timeout": 5.0}
        factors = {"tests": shown + hidden}
        if "size" in cfg:  # tasks whose parameters make them harder (more divisors, more rules)
            factors["size"] = cfg["size"]
        return slots, check, factors

    _BUILTIN.append(Template(name, "code", "Write a Python function `{sig}` that {desc}.{examples} {fmt}", fill, "code"))


def _sum_multiples(limit: int, divisors: Sequence[int]) -> int:
    """Sum of 1 <= x < limit divisible by any divisor, by inclusion-exclusion (no loop to limit)."""
    from itertools import combinations

    total = 0
    for r in range(1, len(divisors) + 1):
        for combo in combinations(divisors, r):
            step = math.lcm(*combo)
            m = (limit - 1) // step
            total += (-1) ** (r + 1) * step * m * (m + 1) // 2
    return total


def _to_base(n: int, base: int) -> str:
    digits = []
    while n:
        n, r = divmod(n, base)
        digits.append(str(r))
    return "".join(reversed(digits)) or "0"


def _rand_ints(rng: random.Random, h: float, lo: int = -50, hi: int = 100) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(_ri(rng, h, 0, 12))]


_TEXT_WORDS = tuple(_NOUN + _ADJ) + _KEYWORDS


def _rand_text(rng: random.Random, h: float) -> str:
    return " ".join(rng.choice(_TEXT_WORDS) for _ in range(_ri(rng, h, 1, 10)))


_code_task(
    "code_sum_multiples", ("sum_multiples", "multiples_total", "sum_of_multiples"), "limit: int",
    lambda c: f"returns the sum of all positive integers below `limit` divisible by {_fmt_list(c['divs'])} (any of them)",
    lambda rng, h: (lambda d: {"divs": d, "size": len(d)})(sorted(rng.sample(range(2, 12), _ri(rng, h, 1, 3)))),
    lambda rng, h, c: [rng.randint(0, 10 ** _ri(rng, h, 1, 3))],
    lambda c, a: _sum_multiples(a[0], c["divs"]),
)
_code_task(
    "code_reverse_words", ("reverse_words", "flip_word_order", "words_backwards"), "text: str",
    lambda c: "returns the words of `text` in reverse order, joined by " + repr(c["sep"]) + " (words are separated by whitespace)",
    lambda rng, h: {"sep": rng.choice((" ", "-", ", ", "|", "_"))},
    lambda rng, h, c: [_rand_text(rng, h)],
    lambda c, a: c["sep"].join(a[0].split()[::-1]),
)
_code_task(
    "code_count_char", ("count_char", "char_frequency", "occurrences"), "text: str",
    lambda c: f"returns how many times the character {c['ch']!r} occurs in `text`{', ignoring case' if c['fold'] else ''}",
    lambda rng, h: {"ch": rng.choice("aeiorstln"), "fold": rng.random() < 0.5},
    lambda rng, h, c: [(lambda t: t.upper() if rng.random() < 0.3 else t)(_rand_text(rng, h))],
    lambda c, a: (a[0].lower() if c["fold"] else a[0]).count(c["ch"]),
)
_code_task(
    "code_fizz", ("fizz_words", "custom_fizzbuzz", "number_words"), "n: int",
    lambda c: "returns a list of strings for the numbers 1 to `n`: " + "; ".join(f"multiples of {d} become {w!r}" for d, w in c["rules"])
    + " (a number matching several rules joins the words in this order); other numbers become their decimal string",
    lambda rng, h: (lambda r: {"rules": r, "size": len(r)})(
        [[d, w] for d, w in zip(sorted(rng.sample(range(2, 10), _ri(rng, h, 1, 3))), rng.sample(("Fizz", "Buzz", "Bang", "Pop", "Zap", "Boom"), 3))]),
    lambda rng, h, c: [rng.randint(0, 30)],
    lambda c, a: ["".join(w for d, w in c["rules"] if i % d == 0) or str(i) for i in range(1, a[0] + 1)],
)
_code_task(
    "code_palindrome", ("is_palindrome", "reads_same_backwards", "palindromic"), "text: str",
    lambda c: "returns True when `text` reads the same forwards and backwards" + (", ignoring case and any character that is not a letter or digit" if c["loose"] else " exactly (case and spaces count)"),
    lambda rng, h: {"loose": rng.random() < 0.6},
    lambda rng, h, c: [(lambda w: w + rng.choice(("", " ", "!", "x")) + w[::-1].upper() if rng.random() < 0.5 else w)(_nonce(rng, _ri(rng, h, 1, 4)))],
    lambda c, a: (lambda s: s == s[::-1])("".join(ch.lower() for ch in a[0] if ch.isalnum()) if c["loose"] else a[0]),
)
_code_task(
    "code_running", ("running_totals", "prefix_stat", "cumulative"), "values: list[int]",
    lambda c: f"returns the running {c['stat']} of `values` (element i is the {c['stat']} of values[0..i]; empty input gives an empty list)",
    lambda rng, h: {"stat": rng.choice(("sum", "maximum", "minimum"))},
    lambda rng, h, c: [_rand_ints(rng, h)],
    lambda c, a: [{"sum": sum, "maximum": max, "minimum": min}[c["stat"]](a[0][: i + 1]) for i in range(len(a[0]))],
)
_code_task(
    "code_filter_range", ("keep_in_range", "clip_filter", "between"), "values: list[int]",
    lambda c: f"returns the elements of `values` that are between {c['lo']} and {c['hi']} inclusive{', sorted ascending' if c['sort'] else ', in their original order'}",
    lambda rng, h: (lambda lo: {"lo": lo, "hi": lo + rng.randint(5, 80), "sort": rng.random() < 0.5})(rng.randint(-40, 40)),
    lambda rng, h, c: [_rand_ints(rng, h)],
    lambda c, a: (sorted if c["sort"] else list)([x for x in a[0] if c["lo"] <= x <= c["hi"]]),
)
_code_task(
    "code_caesar", ("caesar_shift", "rotate_letters", "encode_shift"), "text: str",
    lambda c: f"shifts every ASCII letter of `text` {c['k']} places forward in the alphabet, wrapping from z to a and keeping case; other characters stay as they are",
    lambda rng, h: {"k": rng.randint(1, 25)},
    lambda rng, h, c: [_rand_text(rng, h).title() + rng.choice(("", "!", " 42", "?"))],
    lambda c, a: "".join(chr((ord(ch) - base + c["k"]) % 26 + base) if ch.isascii() and ch.isalpha() else ch
                         for ch in a[0] for base in [ord("A") if ch.isupper() else ord("a")]),
)
_code_task(
    "code_dedupe", ("dedupe", "unique_in_order", "drop_repeats"), "values: list[int]",
    lambda c: "returns `values` without " + ("repeated elements, keeping each first occurrence in order" if c["all"] else "consecutive duplicates (runs of equal elements collapse to one)"),
    lambda rng, h: {"all": rng.random() < 0.5},
    lambda rng, h, c: [_rand_ints(rng, h, 0, 6)],
    lambda c, a: list(dict.fromkeys(a[0])) if c["all"] else [x for i, x in enumerate(a[0]) if i == 0 or a[0][i - 1] != x],
)
_code_task(
    "code_most_common", ("most_common_word", "top_word", "frequent_word"), "text: str",
    lambda c: "returns the most frequent word of `text` (words are separated by whitespace and compared in lowercase); ties go to the alphabetically " + c["tie"] + " word; empty text gives ''",
    lambda rng, h: {"tie": rng.choice(("first", "last"))},
    lambda rng, h, c: [" ".join(rng.choice(_KEYWORDS[:6]) for _ in range(_ri(rng, h, 0, 14)))],
    lambda c, a: (lambda cnt: "" if not cnt else (min if c["tie"] == "first" else max)(w for w in cnt if cnt[w] == max(cnt.values())))(Counter(a[0].lower().split())),
)
_code_task(
    "code_transpose", ("transpose", "flip_matrix", "columns_as_rows"), "matrix: list[list[int]]",
    lambda c: "returns the transpose of a rectangular `matrix` (a list of rows); an empty matrix gives []" + (", then reverses each row" if c["rev"] else ""),
    lambda rng, h: {"rev": rng.random() < 0.4},
    lambda rng, h, c: (lambda r, k: [[[rng.randint(0, 9) for _ in range(k)] for _ in range(r)]])(_ri(rng, h, 1, 5), rng.randint(1, 5)),
    lambda c, a: [list(col)[::-1] if c["rev"] else list(col) for col in zip(*a[0])],
)
_code_task(
    "code_to_base", ("to_base", "format_in_base", "digits_in_base"), "n: int",
    lambda c: f"returns the base-{c['b']} representation of the non-negative integer `n` as a string of digits" + (f", left-padded with zeros to at least {c['w']} characters" if c["w"] else ""),
    lambda rng, h: {"b": rng.randint(2, 9), "w": rng.choice((0, 0, rng.randint(4, 12)))},
    lambda rng, h, c: [rng.randint(0, 10 ** _ri(rng, h, 1, 6))],
    lambda c, a: _to_base(a[0], c["b"]).zfill(c["w"]),
)
_code_task(
    "code_chunks", ("chunk", "batched", "split_every"), "values: list[int]",
    lambda c: f"splits `values` into consecutive lists of {c['k']} elements (the last one may be shorter)" + (" and returns the sum of each list" if c["sum"] else ""),
    lambda rng, h: {"k": rng.randint(2, 6), "sum": rng.random() < 0.4},
    lambda rng, h, c: [_rand_ints(rng, h)],
    lambda c, a: [(sum if c["sum"] else list)(a[0][i : i + c["k"]]) for i in range(0, len(a[0]), c["k"])],
)
_code_task(
    "code_second_largest", ("second_largest", "runner_up", "next_biggest"), "values: list[int]",
    lambda c: f"returns the {c['k']}{'nd' if c['k'] == 2 else 'rd'} largest distinct value in `values`, or {c['none']} when there are fewer distinct values",
    lambda rng, h: {"k": rng.choice((2, 3)), "none": rng.choice((-1, 0))},
    lambda rng, h, c: [_rand_ints(rng, h, -20, 20)],
    lambda c, a: (lambda d: d[c["k"] - 1] if len(d) >= c["k"] else c["none"])(sorted(set(a[0]), reverse=True)),
)


@_template("code_output", "code", "What does this Python program print?\n\n```python\n{program}\n```\n{fmt}", "number")
def _code_output(rng: random.Random, h: float) -> Fill:
    n = _ri(rng, h, 2, 25)
    a, b, c, m = rng.randint(-10, 10), rng.randint(1, 9), rng.randint(1, 9), rng.randint(2, 5)
    var, it = rng.choice(("total", "acc", "result", "value", "s")), rng.choice("ijk")
    shape = rng.randrange(3)
    total = a
    if shape == 0:
        body = f"for {it} in range({n}):\n    if {it} % {m} == 0:\n        {var} += {it} * {b}\n    else:\n        {var} -= {c}"
        for i in range(n):
            total = total + i * b if i % m == 0 else total - c
    elif shape == 1:
        body = f"{it} = 0\nwhile {it} < {n}:\n    {var} += {it} % {m} + {b}\n    {it} += {c}"
        i = 0
        while i < n:
            total += i % m + b
            i += c
    else:
        body = f"for {it} in range(1, {n} + 1):\n    {var} = {var} * {m} % {b + 10} + {it}"
        for i in range(1, n + 1):
            total = total * m % (b + 10) + i
    program = f"{var} = {a}\n{body}\nprint({var})"
    return {"program": program, "fmt": rng.choice(_NUM_FMT)}, _num(total), {"iterations": n}
