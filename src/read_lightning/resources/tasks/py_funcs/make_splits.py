"""Writes the py_funcs splits: small Python functions (a def line and a docstring) with unit tests.

Deterministic (seeded): ``python make_splits.py`` rewrites dev.jsonl and test.jsonl beside this
file, 200 rows each, and no prompt appears in both. Each split opens with its 10 hand-written
rows; the rest come from the parameterised families below (add k, divisible by k, count a
letter, first k elements, ...). Every family carries a reference solution, used here only: the
expected values in each test are computed by running it, and before anything is written every
row's reference is run against the row's own test in the sandbox that scores pass@1, so no
row's test is unpassable. The references are not written to the rows.
"""

from __future__ import annotations

import random
import string
from pathlib import Path
from typing import Any

from read_lightning.core.jsonl import write_jsonl_atomic

ROWS_PER_SPLIT = 200
WORDS = ["banana", "apple", "kiwi", "", "mississippi", "hello world", "python", "queue", "zebra", "aardvark"]
LISTS = [[], [3], [1, 2, 3, 4, 5], [7, -2, 9, 0, 4, 12], [5, 5, 1, 5, 8], [20, 15, 10, 5, 0, -5, 30, 11]]
INTS = [0, 1, 7, -4, 12, 25, 100]
# (entry point, parameters, docstring, reference body, inputs, values of the parameter k)
# ``{k}`` in a template is the family's parameter; inputs are tuples of arguments.
FAMILIES: list[tuple[str, str, str, str, list[tuple[Any, ...]], list[Any]]] = [
    ("add_{k}", "x", "Return x plus {k}.", "return x + {k}", [(i,) for i in INTS], list(range(1, 51))),
    ("times_{k}", "x", "Return x multiplied by {k}.", "return x * {k}", [(i,) for i in INTS], list(range(2, 31))),
    ("minus_{k}", "x", "Return x minus {k}.", "return x - {k}", [(i,) for i in INTS], list(range(1, 41))),
    ("power_{k}", "x", "Return x raised to the power {k}.", "return x ** {k}", [(i,) for i in INTS[:5]],
     list(range(2, 7))),
    ("is_divisible_by_{k}", "n", "Return True if the integer n is divisible by {k}, else False.",
     "return n % {k} == 0", [(0,), (1,), (36,), (60,), (77,), (120,), (-21,)], list(range(2, 31))),
    ("remainder_by_{k}", "n", "Return the remainder when the non-negative integer n is divided by {k}.",
     "return n % {k}", [(0,), (5,), (36,), (77,), (1001,)], list(range(2, 31))),
    ("count_letter_{k}", "s", "Return how many times the letter '{k}' occurs in the string s.",
     "return s.count('{k}')", [(w,) for w in WORDS[:4]] + [("{k}x{k}{k}y",)], list(string.ascii_lowercase)),
    ("remove_letter_{k}", "s", "Return s with every occurrence of the letter '{k}' removed.",
     "return s.replace('{k}', '')", [(w,) for w in WORDS[:4]] + [("{k}b{k}c",)], list(string.ascii_lowercase)),
    ("starts_with_{k}", "s", "Return True if the string s starts with the letter '{k}', else False.",
     "return s.startswith('{k}')", [(w,) for w in WORDS[:5]] + [("{k}top",)], list(string.ascii_lowercase)),
    ("repeat_{k}_times", "s", "Return the string s repeated {k} times.", "return s * {k}", [("ab",), ("",), ("x",)],
     list(range(2, 13))),
    ("longer_than_{k}", "s", "Return True if the string s has more than {k} characters, else False.",
     "return len(s) > {k}", [(w,) for w in WORDS], list(range(1, 13))),
    ("first_{k}", "xs", "Return a list of the first {k} elements of the list xs (all of xs if it is shorter).",
     "return list(xs[:{k}])", [(x,) for x in LISTS], list(range(1, 11))),
    ("last_{k}", "xs", "Return a list of the last {k} elements of the list xs (all of xs if it is shorter).",
     "return list(xs[-{k}:])", [(x,) for x in LISTS], list(range(1, 11))),
    ("keep_above_{k}", "xs", "Return a list of the elements of xs that are greater than {k}, in their order.",
     "return [x for x in xs if x > {k}]", [(x,) for x in LISTS], list(range(0, 21))),
    ("keep_below_{k}", "xs", "Return a list of the elements of xs that are less than {k}, in their order.",
     "return [x for x in xs if x < {k}]", [(x,) for x in LISTS], list(range(0, 21))),
    ("count_equal_to_{k}", "xs", "Return how many elements of the list xs are equal to {k}.",
     "return sum(1 for x in xs if x == {k})", [(x,) for x in LISTS] + [(["{k}", 1, "{k}"],)], list(range(0, 16))),
    ("add_{k}_to_all", "xs", "Return a new list with {k} added to every element of xs.",
     "return [x + {k} for x in xs]", [(x,) for x in LISTS], list(range(1, 21))),
    ("scale_all_by_{k}", "xs", "Return a new list with every element of xs multiplied by {k}.",
     "return [x * {k} for x in xs]", [(x,) for x in LISTS], list(range(2, 13))),
    ("sum_of_multiples_of_{k}", "n", "Return the sum of the whole numbers from 1 to n that are multiples of {k}.",
     "return sum(i for i in range(1, n + 1) if i % {k} == 0)", [(0,), (10,), (25,), (60,)], list(range(2, 11))),
]
# The hand-written rows each split opens with (kept from the first version of this card), with
# the reference solution each is checked against.
HAND = {
    "dev": [
        ("add", "a, b", "Return the sum of a and b.", "return a + b", ["(2, 3) == 5", "(-1, 1) == 0"]),
        ("is_even", "n", "Return True if n is even, else False.", "return n % 2 == 0", ["(4) is True", "(7) is False"]),
        ("reverse_string", "s", "Return s reversed.", "return s[::-1]", ["('abc') == 'cba'", "('') == ''"]),
        ("max_of_list", "xs", "Return the largest element of the non-empty list xs.", "return max(xs)",
         ["([1, 5, 3]) == 5", "([-2, -7]) == -2"]),
        ("count_vowels", "s", "Return how many vowels (a, e, i, o, u) are in the lowercase string s.",
         "return sum(c in 'aeiou' for c in s)", ["('hello') == 2", "('xyz') == 0"]),
        ("square", "x", "Return x squared.", "return x * x", ["(3) == 9", "(-4) == 16"]),
        ("first_char", "s", "Return the first character of the non-empty string s.", "return s[0]", ["('dog') == 'd'"]),
        ("sum_list", "xs", "Return the sum of the numbers in xs.", "return sum(xs)", ["([1, 2, 3]) == 6", "([]) == 0"]),
        ("is_palindrome", "s", "Return True if s reads the same backwards.", "return s == s[::-1]",
         ["('racecar') is True", "('ab') is False"]),
        ("celsius_to_fahrenheit", "c", "Convert degrees Celsius to Fahrenheit.", "return c * 9 / 5 + 32",
         ["(0) == 32", "(100) == 212"]),
    ],
    "test": [
        ("factorial", "n", "Return n! for n >= 0.", "import math\n    return math.factorial(n)",
         ["(0) == 1", "(5) == 120"]),
        ("min_of_two", "a, b", "Return the smaller of a and b.", "return min(a, b)", ["(3, 8) == 3", "(5, -1) == -1"]),
        ("double_all", "xs", "Return a new list with every element of xs doubled.", "return [2 * x for x in xs]",
         ["([1, 2]) == [2, 4]", "([]) == []"]),
        ("word_count", "s", "Return the number of space-separated words in s.", "return len(s.split())",
         ["('a b c') == 3", "('one') == 1"]),
        ("last_element", "xs", "Return the last element of the non-empty list xs.", "return xs[-1]",
         ["([4, 5, 6]) == 6"]),
        ("to_upper", "s", "Return s in upper case.", "return s.upper()", ["('abc') == 'ABC'"]),
        ("absolute", "x", "Return the absolute value of x without using abs().", "return x if x >= 0 else -x",
         ["(-3) == 3", "(2) == 2"]),
        ("count_char", "s, c", "Return how many times the character c occurs in s.", "return s.count(c)",
         ["('banana', 'a') == 3", "('kiwi', 'z') == 0"]),
        ("average", "xs", "Return the arithmetic mean of the non-empty list xs.", "return sum(xs) / len(xs)",
         ["([2, 4]) == 3", "([5]) == 5"]),
        ("join_words", "words", "Join the list of words with single spaces.", "return ' '.join(words)",
         ["(['a', 'b']) == 'a b'", "([]) == ''"]),
    ],
}


def _fill(value: Any, k: Any) -> Any:
    """``value`` with ``{k}`` in its strings replaced by ``k`` (a string that is only ``{k}`` becomes ``k``)."""
    if value == "{k}":
        return k
    if isinstance(value, str):
        return value.replace("{k}", str(k))
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(v, k) for v in value)
    return value


def _prompt(name: str, params: str, doc: str) -> str:
    return f'def {name}({params}):\n    """{doc}"""\n'


def _row(name: str, params: str, doc: str, test_lines: list[str]) -> dict[str, str]:
    test = "def check(candidate):\n" + "".join(f"    assert candidate{line}\n" for line in test_lines)
    return {"prompt": _prompt(name, params, doc), "test": test, "entry_point": name}


def problems() -> list[tuple[dict[str, str], str]]:
    """Every generated (row, reference solution) pair, in a fixed order."""
    out = []
    for name_t, params, doc_t, body_t, inputs, ks in FAMILIES:
        for k in ks:
            name, doc, body = name_t.format(k=k), doc_t.format(k=k), body_t.format(k=k)
            reference = f"def {name}({params}):\n    {body}\n"
            scope: dict[str, Any] = {}
            exec(reference, scope)  # our own reference, to compute the expected values
            lines = []
            for args in (_fill(a, k) for a in inputs):
                expected = scope[name](*args)
                lines.append(f"({', '.join(map(repr, args))}) == {expected!r}")
            out.append((_row(name, params, doc, lines), reference))
    return out


def hand_problems(split: str) -> list[tuple[dict[str, str], str]]:
    """The hand-written rows of ``split`` with their reference solutions."""
    return [(_row(name, params, doc, lines), f"def {name}({params}):\n    {body}\n")
            for name, params, doc, body, lines in HAND[split]]


def splits(seed: int = 0) -> dict[str, list[tuple[dict[str, str], str]]]:
    """dev and test: each its hand rows, then generated problems shuffled by ``seed``; no prompt in both."""
    generated = problems()
    random.Random(seed).shuffle(generated)
    dev_hand, test_hand = hand_problems("dev"), hand_problems("test")
    n_dev, n_test = ROWS_PER_SPLIT - len(dev_hand), ROWS_PER_SPLIT - len(test_hand)
    if len({r["prompt"] for r, _ in generated}) != len(generated) or len(generated) < n_dev + n_test:
        raise ValueError(f"need {n_dev + n_test} distinct generated problems, have {len(generated)}")
    return {"dev": dev_hand + generated[:n_dev], "test": test_hand + generated[n_dev : n_dev + n_test]}


def reference_passes(row: dict[str, str], reference: str) -> bool:
    """Whether ``reference`` passes the row's test, run as pass@1 runs a model's completion."""
    from read_lightning.evaluation.sandbox import run_python
    from read_lightning.evaluation.tasks import build_program

    return run_python(build_program(row["prompt"], reference, row["test"], row["entry_point"])) == "passed"


def main(out: Path = Path(__file__).parent, verify: bool = True) -> None:
    chosen = splits()
    if verify:
        failed = [r["entry_point"] for rows in chosen.values() for r, ref in rows if not reference_passes(r, ref)]
        if failed:
            raise SystemExit(f"reference solutions fail their own tests: {failed}")
    for split, rows in chosen.items():
        write_jsonl_atomic(out / f"{split}.jsonl", (row for row, _ in rows))


if __name__ == "__main__":
    main()
