"""Verifiers: lenient about formatting, strict about the computed content.

:func:`verify_answer` reads a prompt's check (``Prompt.meta["check"]``) and says whether an answer
satisfies it. Code runs in the sandbox of :mod:`read_lightning.evaluation.sandbox`.
"""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from read_lightning.evaluation.answers import ANSWER_MARKER, extract_code, final_number, read_numbers
from read_lightning.evaluation.sandbox import run_python

__all__ = ["verify_answer"]


# --------------------------------------------------------------------------------------------
# Verifiers: lenient about formatting, strict about the computed content
# --------------------------------------------------------------------------------------------


def _fold(text: str) -> str:
    """Casefold and drop accents, so 'Bogotá' matches 'bogota' and 'MÜNCHEN' matches 'munchen'."""
    text = unicodedata.normalize("NFKD", str(text))
    return "".join(ch for ch in text if not unicodedata.combining(ch)).casefold().replace("ß", "ss")


def _has(haystack_folded: str, needle: str, exact: bool = False) -> bool:
    """Whole-word (or whole-phrase) containment; ``needle`` may list alternatives as 'a|b'.

    ``exact``: case-sensitive on the raw text, and ``'`` and ``-`` do not end a word, so a
    chemical symbol ("He", "I", "S") is not found in "he", "I believe" or "sulfur's".
    """
    for alt in str(needle).split("|"):
        alt = alt.strip() if exact else _fold(alt).strip()
        edge = r"[\w'-]" if exact else r"\w"
        if alt and re.search(rf"(?<!{edge}){re.escape(alt)}(?!{edge})", haystack_folded):
            return True
    return False


def _close(a: float, b: float, rel: float = 1e-6, abs_: float = 1e-6) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _pick_option(answer: str, options: Mapping[str, Sequence[str]], given: Sequence[str] = ()) -> str | None:
    """Which option the answer chooses: the one after an 'answer:' marker, else the only one
    mentioned, else in the last sentence that mentions any: the first it mentions that the prompt
    did not already name (``given``: "Monday plus 3 days is Thursday"), or, when it names only
    given ones, the last it mentions ("False or True evaluates to True")."""

    def found(segment: str) -> list[tuple[int, int, str]]:
        hits = []
        for canon, alts in options.items():
            pos = [m.start() for a in alts for m in re.finditer(rf"(?<!\w){re.escape(_fold(a))}(?!\w)", segment)]
            if pos:
                hits.append((min(pos), max(pos), canon))
        return sorted(hits)

    text = _fold(answer)
    markers = list(ANSWER_MARKER.finditer(text))
    if markers:
        hits = found(text[markers[-1].end() :].split("\n")[0])
        if hits:
            return hits[0][2]
    hits = found(text)
    if len({c for *_, c in hits}) <= 1:
        return hits[0][2] if hits else None
    for sentence in reversed(re.split(r"(?<=[.!?\n])\s+", text)):
        hits = found(sentence)
        if hits:
            fresh = [h for h in hits if h[2] not in given]
            return fresh[0][2] if fresh else max(hits, key=lambda h: h[1])[2]
    return None


def _json_values(answer: str) -> list[Any]:
    """Every JSON object or array embedded in the answer (code fences and prose around it allowed)."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while i < len(answer):
        if answer[i] in "{[":
            try:
                value, end = decoder.raw_decode(answer, i)
            except json.JSONDecodeError:
                i += 1
                continue
            out.append(value)
            i = end
        else:
            i += 1
    return out


def _same(got: Any, want: Any) -> bool:
    """Lenient equality for JSON values: numbers by value, strings by folded text."""
    if isinstance(want, bool) or isinstance(got, bool):
        if isinstance(got, str):
            return _fold(got) == str(want).lower()
        return got == want
    if isinstance(want, (int, float)):
        try:
            return _close(float(got), float(want), 1e-6, 1e-6)
        except (TypeError, ValueError):
            return False
    if isinstance(want, str):
        return isinstance(got, (str, int, float)) and _fold(str(got)).strip() == _fold(want).strip()
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want))
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _same(got[k], v) for k, v in want.items())
    return got == want


_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def _conforms(value: Any, schema: Mapping[str, Any]) -> bool:
    """A small JSON-schema subset: type, properties, required, items, enum."""
    kind = schema.get("type")
    if kind and not _JSON_TYPES[kind](value):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if kind == "object":
        props = schema.get("properties", {})
        if any(k not in value for k in schema.get("required", [])):
            return False
        return all(_conforms(value[k], s) for k, s in props.items() if k in value)
    if kind == "array" and "items" in schema:
        return all(_conforms(v, schema["items"]) for v in value)
    return True


def _tool_calls(answer: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of every tool call in the answer, in the common JSON shapes."""
    calls = []
    stack = _json_values(answer)
    while stack:
        v = stack.pop(0)
        if isinstance(v, list):
            stack.extend(v)
            continue
        if not isinstance(v, dict):
            continue
        if isinstance(v.get("function"), dict):
            v = v["function"]
        if isinstance(v.get("tool_calls"), list):
            stack.extend(v["tool_calls"])
        name = v.get("name") or v.get("tool") or v.get("tool_name")
        args = v.get("arguments", v.get("parameters", v.get("args", {})))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                continue
        if isinstance(name, str) and isinstance(args, dict):
            calls.append((name, args))
    return calls


# Runs after the answer's module is imported: the entry function against each test. The sandbox
# passes a program only when it prints its own token after this loop, so an answer that prints
# "PASS" and exits 0 while being imported fails.
_HARNESS = """\
import json, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from solution import {entry} as _fn
def _norm(v):
    if isinstance(v, tuple):
        v = list(v)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v
for _args, _want in json.loads({tests!r}):
    _got = _norm(_fn(*_args))
    if _got != _want:
        print("FAIL", _args, repr(_got), repr(_want))
        sys.exit(1)
"""


def _run_code(answer: str, check: Mapping[str, Any]) -> bool:
    """Run the answer's function against the tests in the sandbox (:func:`run_python`).

    The answer is imported as a module (its ``__main__`` block does not run), so the harness
    calls the same code a user of the function would.
    """
    entry = check["entry"]
    code = extract_code(answer, entry)
    if f"def {entry}" not in code:
        return False
    harness = _HARNESS.format(entry=entry, tests=json.dumps(check["tests"]))
    status = run_python(harness, timeout_s=float(check.get("timeout", 5.0)), modules={"solution": code})
    return status == "passed"


_STOPWORDS: dict[str, set[str]] = {
    "english": set("the and is of to in it that with for you are this was have not be".split()),
    "spanish": set("el la los las que y en es un una por con para del se no lo al muy".split()),
    "french": set("le la les des et est un une que en dans pour avec du pas il elle sont au".split()),
    "german": set("der die das und ist ein eine nicht mit zu den von auf sich ich sind auch dem".split()),
    "italian": set("il la di che e un una per con non del gli sono della questo molto".split()),
    "portuguese": set("o a os as de que e um uma do da em para com nao sao muito isso".split()),
}


def _languages_of(answer: str) -> set[str]:
    """The languages whose stopwords the answer uses most (at least 2), all of them on a tie: the
    Romance lists share words ("la", "que", "en"), so a short French sentence can count as many
    Spanish ones."""
    words = re.findall(r"\w+", _fold(answer))
    counts = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    top = max(counts.values())
    return {lang for lang, n in counts.items() if n == top} if top >= 2 else set()


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:['\u2019-][^\W_]+)*", text)


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return [p for p in parts if _words(p)]


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+\S")


def _bullets(text: str) -> int:
    return sum(bool(_BULLET.match(line)) for line in text.splitlines())


def _strip_edges(text: str) -> str:
    return text.strip().strip(string.punctuation + "\"'\u201c\u201d\u2018\u2019 \n*_`")


_CONSTRAINTS: dict[str, Callable[[str, Mapping[str, Any]], bool]] = {
    "lowercase": lambda a, c: a == a.lower() and any(ch.isalpha() for ch in a),
    "uppercase": lambda a, c: a == a.upper() and any(ch.isalpha() for ch in a),
    "no_commas": lambda a, c: "," not in a and "\uff0c" not in a,
    "max_words": lambda a, c: len(_words(a)) <= c["n"],
    "min_words": lambda a, c: len(_words(a)) >= c["n"],
    "word_range": lambda a, c: c["min"] <= len(_words(a)) <= c["max"],
    "bullets": lambda a, c: _bullets(a) == c["n"],
    "paragraphs": lambda a, c: len([p for p in re.split(r"\n\s*\n", a.strip()) if p.strip()]) == c["n"],
    "max_sentences": lambda a, c: 0 < len(_sentences(a)) <= c["n"],
    "sentence_range": lambda a, c: c["min"] <= len(_sentences(a)) <= c["max"],
    "starts_with": lambda a, c: _fold(_strip_edges(a)).startswith(_fold(c["text"])),
    "ends_with": lambda a, c: _fold(_strip_edges(a)).endswith(_fold(_strip_edges(c["text"]))),
    "keywords": lambda a, c: all(_has(_fold(a), k) for k in c["words"]),
    "forbidden": lambda a, c: not any(_has(_fold(a), k) for k in c["words"]),
    "keyword_count": lambda a, c: len(re.findall(rf"(?<!\w){re.escape(_fold(c['word']))}(?!\w)", _fold(a))) >= c["n"],
    "title": lambda a, c: re.search(r"<<[^<>\n]+>>", a) is not None,
    "postscript": lambda a, c: re.search(r"(?im)^\s*p\.\s?s\.", a) is not None,
    "quoted": lambda a, c: len(a.strip()) > 1 and a.strip()[0] in "\"\u201c" and a.strip()[-1] in "\"\u201d",
    "placeholders": lambda a, c: len(re.findall(r"\[[^\[\]\n]+\]", a)) >= c["n"],
    "language": lambda a, c: c["lang"] in _languages_of(a),
}


def _check_constraints(answer: str, check: Mapping[str, Any]) -> bool:
    return all(_CONSTRAINTS[item["type"]](answer, item) for item in check["items"])


def _check_sequence(answer: str, check: Mapping[str, Any]) -> bool:
    want = check["values"]
    if check.get("numeric"):
        got: list[Any] = read_numbers(answer)
        same = lambda g, w: _close(g, w)  # noqa: E731
    else:
        text = _fold(answer)
        # every word the answer could give (``vocab``), not only the wanted ones: with all claims
        # true, a "false" among the answers would otherwise be invisible
        alts = sorted({_fold(v) for v in (*want, *check.get("vocab", ()))}, key=len, reverse=True)
        got = [m.group(0) for m in re.finditer("|".join(rf"(?<!\w){re.escape(a)}(?!\w)" for a in alts), text)]
        same = lambda g, w: g == _fold(w)  # noqa: E731
    n = len(want)
    if check.get("vocab") and not check.get("numeric"):
        # a fixed vocabulary (true/false): the answer's first n verdicts, in order, are its answers
        return len(got) >= n and all(same(g, w) for g, w in zip(got[:n], want))
    return any(all(same(g, w) for g, w in zip(got[i : i + n], want)) for i in range(len(got) - n + 1))


def _check_time(answer: str, check: Mapping[str, Any]) -> bool:
    want_h, want_m = (int(x) for x in check["value"].split(":"))
    # ':' or 'h' between hours and minutes ("2.50 hours" is a duration, not a time)
    hits = list(re.finditer(r"(?<![\d.])(\d{1,2})\s*[:h]\s*(\d{2})\s*(a\.?\s?m\.?|p\.?\s?m\.?)?", answer, re.I))
    if not hits:
        return False
    h, m, ampm = int(hits[-1].group(1)), int(hits[-1].group(2)), hits[-1].group(3)
    if m != want_m:
        return False
    if ampm:
        h = h % 12 + (12 if ampm.lower().startswith("p") else 0)
        return h == want_h
    # a 12-hour reading ("3:30" for 15:30) only when the hour is written unpadded: "03:30" is 24-hour
    unpadded = not hits[-1].group(1).startswith("0") or len(hits[-1].group(1)) == 1
    return h == want_h or (unpadded and 1 <= h <= 12 and h % 12 == want_h % 12)


def _check_pairs(answer: str, check: Mapping[str, Any]) -> bool:
    pieces = [_fold(p) for p in re.split(r"[\n;,]", answer)]
    for foreign, english in check["pairs"]:
        lines = [p for p in pieces if _has(p, foreign)]
        if not any(_has(p, english) for p in lines):
            return False
    return True


def _check_number(answer: str, check: Mapping[str, Any]) -> bool:
    got = final_number(answer)
    return got is not None and _close(got, float(check["value"]), check.get("rel_tol", 1e-6), check.get("abs_tol", 1e-6))


def _with_given(check: dict[str, Any], prompt_text: str) -> dict[str, Any]:
    """A choice check with the options its prompt names itself (``given``): an answer that
    restates them before its conclusion still chooses the conclusion (see ``_pick_option``)."""
    options = check.get("options")
    if check.get("kind") != "choice" or not isinstance(options, Mapping) or "given" in check:
        return check
    text = _fold(prompt_text)
    return {**check, "given": [c for c, alts in options.items() if any(_has(text, a) for a in alts)]}


def _check_choice(answer: str, check: Mapping[str, Any]) -> bool:
    options = check.get("options") or {check["value"]: [check["value"]]}
    if isinstance(options, list):
        options = {o: [o] for o in options}
    return _pick_option(answer, options, check.get("given", ())) == check["value"]


def _check_json(answer: str, check: Mapping[str, Any]) -> bool:
    for value in _json_values(answer):
        if _conforms(value, check.get("schema", {})) and _same(value, check.get("values", {})):
            return True
    return False


def _check_tool_call(answer: str, check: Mapping[str, Any]) -> bool:
    return any(n == check["name"] and _same(a, check["arguments"]) for n, a in _tool_calls(answer))


_VERIFIERS: dict[str, Callable[[str, Mapping[str, Any]], bool]] = {
    "number": _check_number,
    "choice": _check_choice,
    "contains": lambda a, c: all(_has(a, v, exact=True) if c.get("case_sensitive") else _has(_fold(a), v)
                                 for v in c["values"]),
    "regex": lambda a, c: re.search(c["pattern"], a, flags=re.I | re.M) is not None,
    "sequence": _check_sequence,
    "time": _check_time,
    "json": _check_json,
    "tool_call": _check_tool_call,
    "code": _run_code,
    "constraints": _check_constraints,
    "pairs": _check_pairs,
}


def verify_answer(check: Mapping[str, Any], answer: str) -> bool:
    """Apply a template check (``Prompt.meta["check"]``) to a teacher or student answer."""
    kind = check.get("kind")
    if kind not in _VERIFIERS:
        raise ValueError(f"unknown verifier kind {kind!r}; known kinds are {sorted(_VERIFIERS)!r}")
    return bool(_VERIFIERS[kind](answer or "", check))
