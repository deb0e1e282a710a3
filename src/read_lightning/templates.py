"""Capability prompt templates: scaffolds with typed slots, verifiers, difficulty and curriculum.

A ``Template`` is an instruction scaffold with ``{slot}`` placeholders and a filler that draws the
slot values from a ``random.Random``. A filler also returns the *control factors* of what it drew
(number of constraints, hops, digits, tests, schema fields, document length, ...) and, where the
answer can be computed, a *check*: a small JSON-serialisable dict that ``verify_answer`` reads.
The check lives in ``Prompt.meta["check"]`` so prompts written to JSONL and read back on resume
still verify.

``TemplateLibrary`` is the ``PromptSource`` the data module samples from. For one prompt it

1. picks a difficulty tier from the ``Curriculum`` at the current budget progress,
2. picks a template among those holding at most ``max_template_share`` of the last ``window``
   prompts of the capability (the template-share cap),
3. fills it with control factors steered towards the tier (a *hint* in the tier's third of
   [0, 1]) and keeps the fill when its measured difficulty falls in the tier (bounded retries),
4. rejects prompts whose normalised hash is in the leakage set (evaluation prompts) and redraws.

Everything depends only on the ``rng`` passed in and the library's own state (recent template
names, counters), which ``state_dict``/``load_state_dict`` save and restore, so a resumed run
draws the same prompts. Pure Python: no torch, no Lightning.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import string
import subprocess
import sys
import tempfile
import unicodedata
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from read_lightning.capabilities import DEFAULT_CAPABILITIES, check_capabilities
from read_lightning.generation import Prompt
from read_lightning.jsonl import iter_jsonl
from read_lightning.leakage import load_hash_set, prompt_hash

__all__ = [
    "TIERS",
    "Curriculum",
    "Slot",
    "IntSlot",
    "FloatSlot",
    "ChoiceSlot",
    "WordsSlot",
    "Template",
    "TemplateLibrary",
    "load_templates",
    "verify_answer",
    "final_number",
]

TIERS: tuple[str, str, str] = ("easy", "medium", "hard")

# A fill is (slot values, check or None, control factors).
Fill = tuple[dict[str, Any], "dict[str, Any] | None", dict[str, float]]


# --------------------------------------------------------------------------------------------
# Curriculum
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Curriculum:
    """Tier probabilities (easy, medium, hard) as a step function of budget progress.

    ``probs[i]`` applies while ``progress < boundaries[i]``; the last row applies after the last
    boundary. Defaults are the method's: 0.1/0.8/0.1 until 30% of the budget, 0.1/0.5/0.4 until
    70%, then 0.05/0.2/0.75.
    """

    boundaries: tuple[float, ...] = (0.3, 0.7)
    probs: tuple[tuple[float, float, float], ...] = ((0.1, 0.8, 0.1), (0.1, 0.5, 0.4), (0.05, 0.2, 0.75))

    def __post_init__(self) -> None:
        bounds = tuple(float(b) for b in self.boundaries)
        probs = tuple(tuple(float(p) for p in row) for row in self.probs)
        object.__setattr__(self, "boundaries", bounds)
        object.__setattr__(self, "probs", probs)
        if len(probs) != len(bounds) + 1:
            raise ValueError(
                f"curriculum needs len(boundaries) + 1 probability rows, got {len(bounds)} boundaries "
                f"and {len(probs)} rows"
            )
        if any(not 0.0 < b < 1.0 for b in bounds) or list(bounds) != sorted(set(bounds)):
            raise ValueError(f"curriculum boundaries must be increasing and inside (0, 1), got {bounds!r}")
        for row in probs:
            if len(row) != 3 or any(p < 0 or not math.isfinite(p) for p in row) or abs(sum(row) - 1) > 1e-6:
                raise ValueError(f"curriculum row {row!r} must be 3 non-negative probabilities summing to 1")

    @classmethod
    def from_config(cls, value: "Curriculum | Mapping[str, Any] | None") -> "Curriculum":
        """Accept a ``Curriculum``, a mapping with ``boundaries``/``probs`` (YAML), or None (defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Curriculum):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"boundaries", "probs"}
            if unknown:
                raise ValueError(f"unknown curriculum keys {sorted(unknown)!r}; expected 'boundaries' and 'probs'")
            kwargs = {k: tuple(tuple(r) if k == "probs" else r for r in v) for k, v in value.items()}
            return cls(**kwargs)
        raise TypeError(f"curriculum must be a Curriculum, a mapping or None, got {type(value).__name__}")

    def probabilities(self, progress: float) -> tuple[float, float, float]:
        for bound, row in zip(self.boundaries, self.probs):
            if progress < bound:
                return row  # type: ignore[return-value]
        return self.probs[-1]  # type: ignore[return-value]

    def tier(self, progress: float, rng: random.Random) -> str:
        return rng.choices(TIERS, weights=self.probabilities(progress))[0]


# --------------------------------------------------------------------------------------------
# Slots (the typed, user-visible part; built-in templates use the same hint-steered draws)
# --------------------------------------------------------------------------------------------


def _steer(rng: random.Random, hint: float, lo: float, hi: float) -> float:
    """A value in [lo, hi] near ``lo + hint * (hi - lo)``.

    The hint steers control factors towards a difficulty tier; the jitter keeps neighbouring
    tiers overlapping a little so every value stays reachable from every tier.
    """
    span = hi - lo
    return min(hi, max(lo, lo + hint * span + rng.uniform(-0.12, 0.12) * span))


def _ri(rng: random.Random, hint: float, lo: int, hi: int) -> int:
    """Integer version of ``_steer`` (inclusive bounds, ``lo <= hi``)."""
    if lo > hi:
        raise ValueError(f"_ri needs lo <= hi, got {lo} > {hi}")
    return int(min(hi, max(lo, round(_steer(rng, hint, lo - 0.49, hi + 0.49)))))


@dataclass(frozen=True)
class Slot:
    """Base class of typed slots for user-defined templates."""

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        """Return (value, control factor or None)."""
        raise NotImplementedError


@dataclass(frozen=True)
class IntSlot(Slot):
    min: int
    max: int

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        v = _ri(rng, hint, self.min, self.max)
        return v, float(v)


@dataclass(frozen=True)
class FloatSlot(Slot):
    min: float
    max: float
    digits: int = 2

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        v = round(_steer(rng, hint, self.min, self.max), self.digits)
        return f"{v:.{self.digits}f}", v


@dataclass(frozen=True)
class ChoiceSlot(Slot):
    values: tuple[Any, ...]

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        return rng.choice(self.values), None


@dataclass(frozen=True)
class WordsSlot(Slot):
    """``k`` distinct words from ``values`` joined by ``sep``; the control factor is ``k``."""

    values: tuple[str, ...]
    k_min: int = 1
    k_max: int = 3
    sep: str = ", "

    def draw(self, rng: random.Random, hint: float) -> tuple[Any, float | None]:
        k = _ri(rng, hint, self.k_min, min(self.k_max, len(self.values)))
        return self.sep.join(rng.sample(self.values, k)), float(k)


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """An instruction scaffold with ``{slot}`` placeholders and a filler for its slots.

    ``filler(rng, hint)`` returns ``(slots, check, factors)``: the slot values formatted into
    ``scaffold``, the verifier check (or None when the answer cannot be computed) and the
    control factors from which difficulty is scored. ``verifier`` names the check kind, for
    listing; the check itself travels with each prompt.
    """

    name: str
    capability: str
    scaffold: str
    filler: Callable[[random.Random, float], Fill] = field(repr=False, compare=False)
    verifier: str | None = None

    def fill(self, rng: random.Random, hint: float) -> tuple[str, dict[str, Any] | None, dict[str, float]]:
        slots, check, factors = self.filler(rng, hint)
        return self.scaffold.format(**slots).strip(), check, factors


_BUILTIN: list[Template] = []


def _template(name: str, capability: str, scaffold: str, verifier: str | None = None):
    """Register a built-in template whose filler is the decorated function."""

    def deco(fn: Callable[[random.Random, float], Fill]) -> Callable[[random.Random, float], Fill]:
        _BUILTIN.append(Template(name, capability, scaffold, fn, verifier))
        return fn

    return deco


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


_NUMBER = re.compile(
    r"(?:(?<![\w)\]])(?P<sign>[-\u2212\u2013]))?\$?"
    r"(?<![A-Za-z\d])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"  # not the digits of a word (K7PQ2M)
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d.]))?"
)
_MARKER = re.compile(r"(?:final answer|answer|result)\s*(?:is|=|:)\s*", re.IGNORECASE)


def _numbers(text: str) -> list[float]:
    out = []
    for m in _NUMBER.finditer(text):
        value = float(m.group("num").replace(",", ""))
        if m.group("den"):
            den = float(m.group("den"))
            if den == 0:
                continue
            value /= den
        out.append(-value if m.group("sign") else value)
    return out


def _boxed(answer: str) -> list[str]:
    """The contents of every ``\\boxed{...}`` (nested braces matched), LaTeX numbers made plain."""
    out = []
    for start in (m.end() for m in re.finditer(r"\\boxed\{", answer)):
        depth, end = 1, start
        while end < len(answer) and depth:
            depth += {"{": 1, "}": -1}.get(answer[end], 0)
            end += 1
        if depth == 0:
            inner = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2", answer[start : end - 1])
            out.append(inner.replace("{,}", ",").replace("\\,", "").replace("\\!", ""))
    return out


def final_number(answer: str) -> float | None:
    """The answer's final number: inside ``\\boxed{}``, else after the last 'answer:'/'answer is'
    (after the '=' when the line works a sum out first, "Answer: 23 + 19 = 42"), else the last number in the
    text. Thousands separators, '$', unicode minus, 'p/q' and LaTeX ``\\frac{p}{q}``, ``1{,}234``
    are read."""
    boxed = _boxed(answer)
    if boxed and _numbers(boxed[-1]):
        return _numbers(boxed[-1])[0]
    markers = list(_MARKER.finditer(answer))
    if markers:
        tail = answer[markers[-1].end() :]
        line = tail.split("\n")[0]
        worked = re.match(r"[\d.,\s+\-*/\u00d7\u00f7()^$]+=", line)  # "Answer: 23 + 19 = 42": the result
        nums = (_numbers(line[worked.end():]) if worked else []) or _numbers(line) or _numbers(tail)
        if nums:
            return nums[0]
    nums = _numbers(answer)
    return nums[-1] if nums else None


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
    markers = list(_MARKER.finditer(text))
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


def _code_block(answer: str, entry: str) -> str:
    blocks = re.findall(r"```[ \t]*(?:python|py)?[^\n]*\n(.*?)```", answer, flags=re.S | re.I)
    for block in blocks:
        if f"def {entry}" in block:
            return block
    if blocks:
        return blocks[0]
    return answer


_HARNESS = """\
import json, sys
sys.path.insert(0, {dir!r})
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
print("PASS")
"""


def _run_code(answer: str, check: Mapping[str, Any]) -> bool:
    """Run the answer's function against the tests in a separate interpreter with a timeout.

    The model's code never runs in this process. The subprocess is isolated from the user's
    site-packages and environment variables; it is not a security sandbox.
    """
    entry = check["entry"]
    code = _code_block(answer, entry)
    if f"def {entry}" not in code:
        return False
    with tempfile.TemporaryDirectory(prefix="read_verify_") as tmp:
        Path(tmp, "solution.py").write_text(code, encoding="utf-8")
        harness = _HARNESS.format(dir=tmp, entry=entry, tests=json.dumps(check["tests"]))
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-c", harness],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=float(check.get("timeout", 5.0)),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            return False
    return proc.returncode == 0 and proc.stdout.strip().endswith("PASS")


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
        got: list[Any] = _numbers(answer)
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


# --------------------------------------------------------------------------------------------
# User-defined templates from YAML or JSONL
# --------------------------------------------------------------------------------------------

_TEMPLATE_KEYS = {"name", "capability", "scaffold", "slots", "formats", "verifier", "difficulty"}
_SLOT_KEYS = {
    "int": {"type", "min", "max"},
    "float": {"type", "min", "max", "digits"},
    "choice": {"type", "values"},
    "words": {"type", "values", "k", "sep"},
}
_USER_VERIFIERS = {"contains", "regex", "number", "choice"}


class _UserFiller:
    """Fills a user template's typed slots; picklable and deterministic given the rng."""

    def __init__(self, slots: dict[str, Slot], formats: list[str], verifier: dict[str, Any] | None,
                 difficulty: list[str]) -> None:
        self.slots, self.formats, self.verifier, self.difficulty = slots, formats, verifier, difficulty

    def __call__(self, rng: random.Random, hint: float) -> Fill:
        values: dict[str, Any] = {}
        factors: dict[str, float] = {}
        for name, slot in self.slots.items():
            values[name], factor = slot.draw(rng, hint)
            if factor is not None and name in self.difficulty:
                factors[name] = factor
        if self.formats:
            values["format"] = rng.choice(self.formats)
        check = None
        if self.verifier:
            kind = self.verifier["type"]
            value = str(self.verifier["value"]).format(**values)
            if kind == "number":
                check = {"kind": "number", "value": float(value), "rel_tol": float(self.verifier.get("tolerance", 1e-6))}
            elif kind == "contains":
                check = {"kind": "contains", "values": [value]}
            elif kind == "regex":
                # slot values are literal text inside the user's pattern
                pattern = str(self.verifier["value"]).format(**{k: re.escape(str(v)) for k, v in values.items()})
                check = {"kind": "regex", "pattern": pattern}
            else:
                opts = [str(o).format(**values) for o in self.verifier.get("options", [])] or [value]
                check = {"kind": "choice", "value": value, "options": {o: [o] for o in opts}}
        return values, check, factors


def _parse_slot(spec: Any, where: str) -> Slot:
    if not isinstance(spec, Mapping) or spec.get("type") not in _SLOT_KEYS:
        raise ValueError(f"{where}: a slot needs 'type' in {sorted(_SLOT_KEYS)!r}, got {spec!r}")
    kind = spec["type"]
    extra = set(spec) - _SLOT_KEYS[kind]
    if extra:
        raise ValueError(f"{where}: unknown keys {sorted(extra)!r} for a {kind} slot (allowed {sorted(_SLOT_KEYS[kind])!r})")
    try:
        if kind in ("int", "float"):
            lo, hi = spec["min"], spec["max"]
            cast = int if kind == "int" else float
            if isinstance(lo, bool) or isinstance(hi, bool) or cast(lo) != lo or cast(hi) != hi:
                raise ValueError(f"'min'/'max' must be {kind}s")
            if lo > hi:
                raise ValueError(f"'min' ({lo}) is larger than 'max' ({hi})")
            if kind == "int":
                return IntSlot(int(lo), int(hi))
            return FloatSlot(float(lo), float(hi), int(spec.get("digits", 2)))
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ValueError("'values' must be a non-empty list")
        if kind == "choice":
            return ChoiceSlot(tuple(values))
        k = spec.get("k", [1, min(3, len(values))])
        k_min, k_max = (k, k) if isinstance(k, int) else tuple(k)
        if not 1 <= k_min <= k_max <= len(values):
            raise ValueError(f"'k' must satisfy 1 <= k_min <= k_max <= {len(values)}, got {k!r}")
        return WordsSlot(tuple(str(v) for v in values), int(k_min), int(k_max), str(spec.get("sep", ", ")))
    except KeyError as err:
        raise ValueError(f"{where}: missing field {err.args[0]!r} for a {kind} slot") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


_USER_VERIFIER_KEYS = {"type", "value", "options", "tolerance"}


def _check_user_verifier(verifier: Mapping[str, Any], slots: Mapping[str, Slot], where: str) -> None:
    """Refuse at load time what would fail, or never verify, only once prompts are drawn."""
    extra = set(verifier) - _USER_VERIFIER_KEYS
    if extra:
        raise ValueError(f"{where}: field 'verifier' has unknown key(s) {sorted(extra)!r}; "
                         f"allowed keys are {sorted(_USER_VERIFIER_KEYS)!r}")
    options = verifier.get("options")
    if options is not None and (not isinstance(options, list) or not all(isinstance(o, (str, int, float)) for o in options)):
        raise ValueError(f"{where}: field 'verifier.options' must be a list of strings, got {options!r}")
    tolerance = verifier.get("tolerance")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0):
        raise ValueError(f"{where}: field 'verifier.tolerance' must be a number >= 0, got {tolerance!r}")
    for key, text in [("value", verifier["value"]), *((f"options[{i}]", o) for i, o in enumerate(options or []))]:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(str(text)) if f is not None]
        except ValueError as err:
            raise ValueError(f"{where}: field 'verifier.{key}' is not a valid format string: {err}") from None
        for name in fields:
            if not name or name.isdigit():
                raise ValueError(f"{where}: field 'verifier.{key}' has a positional placeholder {{{name}}}; "
                                 f"write literal braces doubled, e.g. {{{{{name or 3}}}}} in a regex")
            if name.split(".")[0].split("[")[0] not in slots:
                raise ValueError(f"{where}: field 'verifier.{key}' uses placeholder {{{name}}} with no slot defined "
                                 f"(slots: {sorted(slots)!r})")
    value = str(verifier["value"])
    single = re.fullmatch(r"\{(\w+)\}", value)
    if verifier["type"] == "choice" and options and single and isinstance(slots.get(single.group(1)), ChoiceSlot):
        fixed = {str(o) for o in options if "{" not in str(o)}
        outside = [v for v in slots[single.group(1)].values if str(v) not in fixed]
        if len(fixed) == len(options) and outside:
            raise ValueError(f"{where}: field 'verifier.value' {value!r} can be {outside!r}, which 'verifier.options' "
                             f"{options!r} does not list, so such prompts could never verify")


def _parse_template(entry: Any, where: str) -> Template:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: a template must be a mapping, got {type(entry).__name__}")
    extra = set(entry) - _TEMPLATE_KEYS
    if extra:
        raise ValueError(f"{where}: unknown field(s) {sorted(extra)!r}; allowed fields are {sorted(_TEMPLATE_KEYS)!r}")
    for key in ("name", "capability", "scaffold"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {entry.get(key)!r}")
    if not re.fullmatch(r"[A-Za-z_][\w.-]*", entry["capability"]):
        raise ValueError(f"{where}: field 'capability' must be an identifier, got {entry['capability']!r}")
    slots_spec = entry.get("slots") or {}
    if not isinstance(slots_spec, Mapping):
        raise ValueError(f"{where}: field 'slots' must be a mapping of slot name to spec")
    slots = {str(k): _parse_slot(v, f"{where}: field 'slots.{k}'") for k, v in slots_spec.items()}
    formats = entry.get("formats") or []
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise ValueError(f"{where}: field 'formats' must be a list of strings")
    available = set(slots) | ({"format"} if formats else set())
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(entry["scaffold"]) if f is not None}
    except ValueError as err:
        raise ValueError(f"{where}: field 'scaffold' is not a valid format string: {err}") from None
    missing = sorted(u for u in used if u.split(".")[0].split("[")[0] not in available)
    if missing:
        raise ValueError(f"{where}: field 'scaffold' uses placeholders {missing!r} with no slot defined")
    verifier = entry.get("verifier")
    if verifier is not None:
        if not isinstance(verifier, Mapping) or verifier.get("type") not in _USER_VERIFIERS or "value" not in verifier:
            raise ValueError(
                f"{where}: field 'verifier' must be a mapping with 'type' in {sorted(_USER_VERIFIERS)!r} and 'value'"
            )
        _check_user_verifier(verifier, slots, where)
    difficulty = entry.get("difficulty")
    if difficulty is None:
        difficulty = [k for k, s in slots.items() if not isinstance(s, ChoiceSlot)]
    elif not isinstance(difficulty, list) or any(d not in slots for d in difficulty):
        raise ValueError(f"{where}: field 'difficulty' must list slot names from {sorted(slots)!r}, got {difficulty!r}")
    filler = _UserFiller(slots, list(formats), dict(verifier) if verifier else None, list(difficulty))
    return Template(entry["name"], entry["capability"], entry["scaffold"], filler, verifier["type"] if verifier else None)


def load_templates(path: str | os.PathLike[str]) -> list[Template]:
    """Read user templates from YAML (a list, or a mapping with key ``templates``) or JSONL.

    Each template has ``name``, ``capability``, ``scaffold`` (``{slot}`` placeholders), ``slots``
    (``{type: int, min, max}``, ``{type: float, min, max, digits}``, ``{type: choice, values}``,
    ``{type: words, values, k: [lo, hi], sep}``) and optionally ``formats`` (format constraints,
    one drawn into ``{format}``), ``verifier`` (``{type: contains|regex|number|choice, value:
    "{slot}"}``) and ``difficulty`` (slot names used as control factors; default: every
    non-choice slot). Errors name the file, the line (or row) and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"template file {str(path)!r} does not exist")
    entries: list[tuple[Any, str]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        entries = [(row, f"{path}:{lineno}") for lineno, row in iter_jsonl(path)]
    else:
        import yaml  # only user template files need YAML

        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
            node = yaml.compose(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ValueError(f"{path}{line}: invalid YAML: {getattr(err, 'problem', err)}") from None
        if isinstance(data, Mapping) and "templates" in data:
            data = data["templates"]
            node = next(v for k, v in node.value if k.value == "templates")
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of templates (or a mapping with key 'templates')")
        for i, item in enumerate(data):
            line = node.value[i].start_mark.line + 1
            entries.append((item, f"{path}:{line} (template #{i + 1})"))
    if not entries:
        raise ValueError(f"{path}: no templates found")
    templates, seen = [], {}
    for item, where in entries:
        template = _parse_template(item, where)
        if template.name in seen:
            raise ValueError(f"{where}: field 'name': template {template.name!r} is already defined at {seen[template.name]}")
        seen[template.name] = where
        templates.append(template)
    return templates


# --------------------------------------------------------------------------------------------
# The library
# --------------------------------------------------------------------------------------------


class TemplateLibrary:
    """Capability prompt templates with difficulty tiers, a curriculum and a template-share cap.

    Args:
        capabilities: capabilities to serve; default every built-in one plus those defined in
            ``extra``. Unknown names raise ``ValueError`` listing the known ones.
        extra: a YAML/JSONL file (or a list of files) of user templates; they may define new
            capabilities or add templates to built-in ones.
        max_template_share: no template may hold more than this share of the last ``window``
            prompts of its capability.
        window: size of the per-capability window of recent template names.
        curriculum: tier probabilities by progress (``Curriculum``, a mapping, or None for the
            method's defaults).
        leakage_hashes: hashes of evaluation prompts (a set, or a file from
            ``read-train leakage``); such prompts are never returned.
        seed: seeds the calibration pool that normalises difficulty (not the sampling: that
            uses the ``rng`` passed to ``sample``).
        calibration_per_template: fills per template in the calibration pool.
        max_tier_tries: fills tried per prompt to land in the requested tier.
    """

    def __init__(
        self,
        capabilities: Sequence[str] | None = None,
        extra: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
        max_template_share: float = 0.25,
        window: int = 128,
        curriculum: Curriculum | Mapping[str, Any] | None = None,
        leakage_hashes: str | os.PathLike[str] | set[str] | frozenset[str] | None = None,
        seed: int = 0,
        calibration_per_template: int = 48,
        max_tier_tries: int = 8,
        max_leak_tries: int = 64,
    ) -> None:
        if not 0.0 < max_template_share <= 1.0:
            raise ValueError(f"max_template_share must be in (0, 1], got {max_template_share!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        if calibration_per_template < 3:
            raise ValueError(f"calibration_per_template must be >= 3, got {calibration_per_template!r}")
        if max_tier_tries < 1 or max_leak_tries < 1:
            raise ValueError("max_tier_tries and max_leak_tries must be >= 1")
        self.max_template_share = float(max_template_share)
        self.window = int(window)
        self.curriculum = Curriculum.from_config(curriculum)
        self.seed = int(seed)
        self.max_tier_tries = int(max_tier_tries)
        self.max_leak_tries = int(max_leak_tries)
        # Below this many uses in the window a template stays eligible.
        self._cap_count = max(1, math.floor(self.max_template_share * self.window + 1e-9))

        pool = list(_BUILTIN)
        paths = [] if extra is None else [extra] if isinstance(extra, (str, os.PathLike)) else list(extra)
        names = {t.name for t in pool}
        for p in paths:
            for t in load_templates(p):
                if t.name in names:
                    raise ValueError(f"{p}: template name {t.name!r} clashes with an existing template")
                names.add(t.name)
                pool.append(t)
        known = list(DEFAULT_CAPABILITIES) + sorted({t.capability for t in pool} - set(DEFAULT_CAPABILITIES))
        if capabilities is None:
            capabilities = known
        check_capabilities(list(capabilities), known)
        self._templates: dict[str, list[Template]] = {c: [t for t in pool if t.capability == c] for c in capabilities}
        self._by_name = {t.name: t for ts in self._templates.values() for t in ts}
        for cap, ts in self._templates.items():
            if len(ts) * self.max_template_share < 1.0:
                warnings.warn(
                    f"capability {cap!r} has {len(ts)} template(s): with max_template_share="
                    f"{self.max_template_share} the share cap cannot always hold; the least used "
                    "template is drawn when none is eligible",
                    stacklevel=2,
                )

        if leakage_hashes is None:
            self._leak: frozenset[str] = frozenset()
        elif isinstance(leakage_hashes, (set, frozenset)):
            self._leak = frozenset(leakage_hashes)
        else:
            self._leak = frozenset(load_hash_set(leakage_hashes))

        self._calibrate(calibration_per_template)
        self._recent: dict[str, deque[str]] = {c: deque(maxlen=self.window) for c in self._templates}
        self.stats: dict[str, Any] = self._fresh_stats()

    @classmethod
    def default(cls) -> "TemplateLibrary":
        """The built-in library with the method's defaults."""
        return cls()

    # -- introspection ------------------------------------------------------------------------

    @property
    def capabilities(self) -> list[str]:
        return list(self._templates)

    def templates(self, capability: str) -> list[Template]:
        self._check(capability)
        return list(self._templates[capability])

    def _check(self, capability: str) -> None:
        if capability not in self._templates:
            raise ValueError(f"unknown capability {capability!r}; known capabilities are {self.capabilities!r}")

    # -- difficulty ---------------------------------------------------------------------------

    def _calibrate(self, per_template: int) -> None:
        """Draw a seeded pool; per template and factor keep the (min, max) used to rescale factors
        to [0, 1]; per capability keep the tertiles of the pool's scores.

        Factors are rescaled per template (not per capability) so that every template spans the
        three tiers: the curriculum can then ask any template for a hard prompt, and the share
        cap never has to fight the tier choice.
        """
        rng = random.Random(f"calibration:{self.seed}")
        self._ranges: dict[str, dict[str, tuple[float, float]]] = {}
        self._cuts: dict[str, tuple[float, float]] = {}
        for cap, templates in self._templates.items():
            if not templates:
                raise ValueError(f"capability {cap!r} has no templates")
            drawn: list[tuple[Template, dict[str, float]]] = []
            for t in templates:
                factors = [t.fill(rng, rng.random())[2] for _ in range(per_template)]
                keys = sorted({k for f in factors for k in f})
                self._ranges[t.name] = {
                    k: (min(f.get(k, 0.0) for f in factors), max(f.get(k, 0.0) for f in factors)) for k in keys
                }
                drawn.extend((t, f) for f in factors)
            scores = sorted(self._score(t, f) for t, f in drawn)
            n = len(scores)
            self._cuts[cap] = (scores[n // 3], scores[(2 * n) // 3])

    def _score(self, template: Template, factors: Mapping[str, float]) -> float:
        """Mean of the template's control factors rescaled to [0, 1]; 0.5 when it has none."""
        ranges = self._ranges.get(template.name, {})
        parts = []
        for k, (lo, hi) in ranges.items():
            x = float(factors.get(k, lo))
            parts.append(0.5 if hi <= lo else min(1.0, max(0.0, (x - lo) / (hi - lo))))
        return sum(parts) / len(parts) if parts else 0.5

    def tier_of(self, capability: str, score: float) -> str:
        """The tier of a difficulty score: below the first tertile is easy, from the second hard."""
        q1, q2 = self._cuts[capability]
        if score < q1:
            return "easy"
        if score > q2 or (score == q2 and q2 > q1):
            return "hard"
        return "medium"

    # -- sampling -----------------------------------------------------------------------------

    def _fresh_stats(self) -> dict[str, Any]:
        return {
            "sampled": {c: 0 for c in self._templates},
            "tiers": {t: 0 for t in TIERS},
            "leakage_rejects": 0,
            "tier_misses": 0,
            "share_cap_fallbacks": 0,
        }

    def _pick_template(self, capability: str, rng: random.Random) -> Template:
        templates = self._templates[capability]
        counts = Counter(self._recent[capability])
        eligible = [t for t in templates if counts[t.name] < self._cap_count]
        if not eligible:
            # Too few templates for the cap: keep the mix as even as the pool allows.
            self.stats["share_cap_fallbacks"] += 1
            least = min(counts[t.name] for t in templates)
            eligible = [t for t in templates if counts[t.name] == least]
        return rng.choice(eligible)

    def _fill_tier(self, template: Template, tier: str, rng: random.Random) -> Prompt:
        """Fill ``template`` with control factors steered into ``tier``; keep the first fill whose
        measured tier matches, else (after ``max_tier_tries``) the closest one, labelled honestly."""
        lo = TIERS.index(tier) / 3.0
        best = None
        for _ in range(self.max_tier_tries):
            text, check, factors = template.fill(rng, rng.uniform(lo, lo + 1.0 / 3.0))
            score = self._score(template, factors)
            got = self.tier_of(template.capability, score)
            distance = abs(TIERS.index(got) - TIERS.index(tier))
            if best is None or distance < best[0]:
                best = (distance, got, score, text, check, factors)
            if distance == 0:
                break
        assert best is not None
        distance, got, score, text, check, factors = best
        if distance:
            self.stats["tier_misses"] += 1
        meta: dict[str, Any] = {"difficulty_score": round(score, 6), "factors": factors}
        if check is not None:
            meta["check"] = _with_given(check, text)
        return Prompt(text=text, capability=template.capability, template=template.name, difficulty=got, meta=meta)

    def sample(self, capability: str, rng: random.Random, progress: float) -> Prompt:
        """One prompt for ``capability`` at budget ``progress`` in [0, 1] (``PromptSource``).

        Deterministic given ``rng``'s state and the library's state (``state_dict``).
        """
        self._check(capability)
        progress = float(progress)
        if not math.isfinite(progress):
            raise ValueError(f"progress must be a finite number in [0, 1], got {progress!r}")
        progress = min(1.0, max(0.0, progress))
        tier = self.curriculum.tier(progress, rng)
        for _ in range(self.max_leak_tries):
            template = self._pick_template(capability, rng)
            prompt = self._fill_tier(template, tier, rng)
            if self._leak and prompt_hash(prompt.text) in self._leak:
                self.stats["leakage_rejects"] += 1
                continue
            self._recent[capability].append(template.name)
            self.stats["sampled"][capability] += 1
            self.stats["tiers"][prompt.difficulty] += 1
            return prompt
        raise RuntimeError(
            f"{self.max_leak_tries} prompts in a row for {capability!r} were in the leakage hash set; "
            "the evaluation data overlaps the templates too much to sample safely"
        )

    def verify(self, prompt: Prompt, answer: str) -> bool | None:
        """Whether ``answer`` is correct for ``prompt``; None when the template has no verifier."""
        check = (prompt.meta or {}).get("check")
        return None if check is None else verify_answer(check, answer)

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Recent template names per capability and counters (JSON-serialisable)."""
        return {
            "recent": {c: list(d) for c, d in self._recent.items()},
            "stats": json.loads(json.dumps(self.stats)),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        recent = state.get("recent", {})
        check_capabilities(list(recent), self.capabilities, what="capability in the template state")
        for cap, names in recent.items():
            unknown = sorted(set(names) - {t.name for t in self._templates[cap]})
            if unknown:
                raise ValueError(f"template state names unknown templates {unknown!r} for capability {cap!r}")
            self._recent[cap] = deque(names, maxlen=self.window)
        stats = self._fresh_stats()
        for key, value in state.get("stats", {}).items():
            stats[key] = dict(value) if isinstance(value, Mapping) else value
        self.stats = stats

    # -- diagnostics --------------------------------------------------------------------------

    def distinct_ratio(self, capability: str, n: int = 10_000, seed: int = 0) -> float:
        """Share of distinct texts among ``n`` prompts drawn across progress 0..1.

        Runs on a copy of the library state, so the live sampling state is left untouched.
        """
        self._check(capability)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n!r}")
        saved = self.state_dict()
        try:
            rng = random.Random(seed)
            texts = {self.sample(capability, rng, i / max(1, n - 1)).text for i in range(n)}
        finally:
            self.load_state_dict(saved)
        return len(texts) / n


# ============================================================================================
# Built-in templates. Banks first, then at least 12 templates per capability. Fillers draw every
# slot from the rng; the hint in [0, 1] steers the control factors (returned as ``factors``).
# ============================================================================================

_NAMES = (
    "Alice Bob Carol David Erin Frank Grace Hugo Irene Jamal Kenji Laura Mateo Nadia Omar Priya "
    "Quentin Rosa Samir Tara Umar Vera Wen Ximena Yusuf Zoe Amara Bruno Chloe Dmitri Elena Felix "
    "Greta Hassan Ingrid Jonas Keiko Leon Mira Nico"
).split()
_COUNTRIES = (  # country, capital, continent (None when transcontinental), main language (None when ambiguous)
    ("France", "Paris", "Europe", "French"), ("Germany", "Berlin", "Europe", "German"),
    ("Spain", "Madrid", "Europe", "Spanish"), ("Italy", "Rome", "Europe", "Italian"),
    ("Portugal", "Lisbon", "Europe", "Portuguese"), ("the Netherlands", "Amsterdam", "Europe", "Dutch"),
    ("Poland", "Warsaw", "Europe", "Polish"), ("Sweden", "Stockholm", "Europe", "Swedish"),
    ("Norway", "Oslo", "Europe", "Norwegian"), ("Finland", "Helsinki", "Europe", "Finnish"),
    ("Denmark", "Copenhagen", "Europe", "Danish"), ("Greece", "Athens", "Europe", "Greek"),
    ("Austria", "Vienna", "Europe", "German"), ("Hungary", "Budapest", "Europe", "Hungarian"),
    ("the Czech Republic", "Prague", "Europe", "Czech"), ("Romania", "Bucharest", "Europe", "Romanian"),
    ("Ukraine", "Kyiv|Kiev", "Europe", "Ukrainian"), ("Iceland", "Reykjavik", "Europe", "Icelandic"),
    ("Croatia", "Zagreb", "Europe", "Croatian"), ("Serbia", "Belgrade", "Europe", "Serbian"),
    ("Bulgaria", "Sofia", "Europe", "Bulgarian"), ("Ireland", "Dublin", "Europe", None),
    ("Belgium", "Brussels", "Europe", None), ("Switzerland", "Bern", "Europe", None),
    ("Japan", "Tokyo", "Asia", "Japanese"), ("China", "Beijing", "Asia", "Chinese|Mandarin"),
    ("South Korea", "Seoul", "Asia", "Korean"), ("Thailand", "Bangkok", "Asia", "Thai"),
    ("Vietnam", "Hanoi", "Asia", "Vietnamese"), ("Indonesia", "Jakarta", "Asia", "Indonesian"),
    ("Iran", "Tehran", "Asia", "Persian|Farsi"), ("Saudi Arabia", "Riyadh", "Asia", "Arabic"),
    ("Bangladesh", "Dhaka", "Asia", "Bengali|Bangla"), ("Nepal", "Kathmandu", "Asia", "Nepali"),
    ("Malaysia", "Kuala Lumpur", "Asia", "Malay"), ("Mongolia", "Ulaanbaatar|Ulan Bator", "Asia", "Mongolian"),
    ("India", "New Delhi", "Asia", None), ("Pakistan", "Islamabad", "Asia", None),
    ("Egypt", "Cairo", "Africa", "Arabic"), ("Morocco", "Rabat", "Africa", "Arabic"),
    ("Algeria", "Algiers", "Africa", "Arabic"), ("Tunisia", "Tunis", "Africa", "Arabic"),
    ("Senegal", "Dakar", "Africa", "French"), ("Ghana", "Accra", "Africa", "English"),
    ("Nigeria", "Abuja", "Africa", "English"), ("Ethiopia", "Addis Ababa", "Africa", "Amharic"),
    ("Kenya", "Nairobi", "Africa", None), ("Brazil", "Brasilia", "South America", "Portuguese"),
    ("Argentina", "Buenos Aires", "South America", "Spanish"), ("Chile", "Santiago", "South America", "Spanish"),
    ("Peru", "Lima", "South America", "Spanish"), ("Colombia", "Bogota", "South America", "Spanish"),
    ("Venezuela", "Caracas", "South America", "Spanish"), ("Uruguay", "Montevideo", "South America", "Spanish"),
    ("Mexico", "Mexico City", "North America", "Spanish"), ("Cuba", "Havana", "North America", "Spanish"),
    ("Jamaica", "Kingston", "North America", "English"), ("Canada", "Ottawa", "North America", None),
    ("the United States", "Washington", "North America", "English"),
    ("Australia", "Canberra", "Oceania", "English"), ("New Zealand", "Wellington", "Oceania", "English"),
    ("Russia", "Moscow", None, "Russian"), ("Turkey", "Ankara", None, "Turkish"),
)
_ELEMENTS = (
    ("hydrogen", "H"), ("helium", "He"), ("lithium", "Li"), ("beryllium", "Be"), ("boron", "B"),
    ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"), ("fluorine", "F"), ("neon", "Ne"),
    ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"), ("silicon", "Si"), ("phosphorus", "P"),
    ("sulfur", "S"), ("chlorine", "Cl"), ("argon", "Ar"), ("potassium", "K"), ("calcium", "Ca"),
    ("titanium", "Ti"), ("chromium", "Cr"), ("manganese", "Mn"), ("iron", "Fe"), ("cobalt", "Co"),
    ("nickel", "Ni"), ("copper", "Cu"), ("zinc", "Zn"), ("bromine", "Br"), ("krypton", "Kr"),
    ("silver", "Ag"), ("tin", "Sn"), ("iodine", "I"), ("xenon", "Xe"), ("tungsten", "W"),
    ("platinum", "Pt"), ("gold", "Au"), ("mercury", "Hg"), ("lead", "Pb"), ("uranium", "U"),
)
_PLANETS = ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune")
_PLANETS_BY_SIZE = ("Jupiter", "Saturn", "Uranus", "Neptune", "Earth", "Venus", "Mars", "Mercury")
_CATEGORIES = {
    "fruits": "apple banana cherry grape mango pear peach plum lemon kiwi pineapple strawberry apricot melon papaya".split(),
    "animals": "dog cat horse elephant tiger lion rabbit wolf bear zebra giraffe monkey fox deer camel".split(),
    "musical instruments": "piano guitar violin drum flute trumpet cello harp saxophone clarinet banjo trombone".split(),
    "vehicles": "car bus bicycle truck train motorcycle tram scooter van tractor ferry helicopter".split(),
    "sports": "tennis soccer basketball cricket rugby golf hockey volleyball baseball badminton boxing".split(),
    "colours": "red blue green yellow purple pink brown black white gray".split(),
    "tools": "hammer screwdriver wrench saw drill pliers chisel shovel rake ladder".split(),
    "vegetables": "carrot potato onion cabbage spinach broccoli lettuce cucumber celery pea".split(),
}
_CONCEPTS = (
    "photosynthesis", "gravity", "inflation", "the water cycle", "plate tectonics", "vaccines",
    "compound interest", "machine learning", "democracy", "the immune system", "black holes",
    "evolution by natural selection", "supply and demand", "electricity", "magnetism",
    "climate change", "DNA", "the internet", "the greenhouse effect", "encryption", "recycling",
    "the stock market", "tides", "earthquakes", "rainbows", "antibiotics", "solar panels",
    "the printing press", "the Roman Empire", "the Renaissance", "the Industrial Revolution",
    "blood circulation", "sleep", "memory", "the scientific method", "opportunity cost",
    "interest rates", "taxes", "volcanoes", "the seasons", "the moon's phases", "sound waves",
    "friction", "batteries", "nuclear power", "wind turbines", "the human eye", "digestion",
    "bacteria", "viruses", "GPS", "search engines", "open-source software", "copyright",
    "recessions", "biodiversity", "coral reefs", "glaciers", "the ozone layer", "probability",
)
_AUDIENCES = (
    "a five-year-old", "a high-school student", "a busy executive", "a software engineer",
    "a retired teacher", "a tourist", "a nurse", "a farmer", "a journalist", "a university professor",
    "a new employee", "a curious teenager", "a non-native English speaker", "a museum visitor",
)
_TOPICS = (
    "remote work", "urban gardening", "electric cars", "the history of tea", "ocean pollution",
    "learning a second language", "public libraries", "space tourism", "healthy breakfasts",
    "saving money", "city cycling", "board games", "volunteering", "time management", "bees",
    "home composting", "public transport", "online privacy", "street food", "marathon training",
    "houseplants", "night photography", "minimalism", "jazz music", "desert ecosystems",
    "renewable energy", "school uniforms", "video game design", "mountain hiking", "coffee culture",
    "ancient libraries", "smart homes", "bird watching", "small businesses", "rainy days",
    "first jobs", "museum visits", "recycling electronics", "sleep habits", "local markets",
    "train journeys", "community theatre", "learning to code", "fermented food", "lighthouses",
    "winter sports", "family recipes", "podcasts", "open offices", "clean water",
)
_TONES = ("formal", "friendly", "humorous", "neutral", "enthusiastic", "calm", "persuasive", "poetic")
_ADJ = ("quiet old tall narrow bright heavy small ancient green wooden busy empty crowded distant "
        "hidden modern broken golden silent rusty").split()
_NOUN = ("bridge tower garden river market library station harbour village forest lantern clock "
         "bakery museum orchard workshop lighthouse theatre courtyard meadow").split()
_VERB = ("stood", "waited", "glowed", "slept", "changed", "remained", "shone", "stretched", "leaned", "faded")
_PLACE = ("hill", "square", "coast", "valley", "road", "canal", "park", "cliff", "gate", "lake")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SYLL = ("ba be bi bo bu da de di do du fa fe fi fo ka ke ki ko la le li lo lu ma me mi mo mu na ne "
         "ni no nu pa pe pi po ra re ri ro ru sa se si so ta te ti to tu va ve vi vo za ze zi zo").split()

_NUM_FMT = (
    "Give only the final number.",
    "Reply with just the number.",
    "Explain briefly, then give the final answer on the last line as 'Answer: <number>'.",
    "Think step by step and finish with 'Answer: <number>'.",
    "Answer in one short sentence.",
    "Show your working, then state the result.",
    "Be concise.",
    "Put the final answer in \\boxed{}.",
)
_WORD_FMT = (
    "Answer with just the name.",
    "Reply in one short sentence.",
    "Explain your reasoning briefly, then give the answer on the last line as 'Answer: <answer>'.",
    "Think it through step by step and end with 'Answer: <answer>'.",
    "Be concise.",
    "Give the answer first, then a one-line justification.",
)
_YES_NO = {"yes": ["yes", "true", "correct"], "no": ["no", "false", "incorrect"]}


def _num(value: float, **tol: float) -> dict[str, Any]:
    return {"kind": "number", "value": value, **tol}


def _choice(value: str, options: Iterable[str] | Mapping[str, Sequence[str]]) -> dict[str, Any]:
    opts = dict(options) if isinstance(options, Mapping) else {o: [o] for o in options}
    return {"kind": "choice", "value": value, "options": {k: list(v) for k, v in opts.items()}}


def _nonce(rng: random.Random, syllables: int = 2) -> str:
    """A made-up word ('bokimu'): endless fresh entity names that no fact table can answer."""
    return "".join(rng.choice(_SYLL) for _ in range(syllables))


def _fmt_list(items: Sequence[Any]) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _document(rng: random.Random, n_words: int, inserts: Sequence[str] = ()) -> tuple[str, list[int]]:
    """Filler prose of about ``n_words`` words with ``inserts`` placed at random sentence slots,
    in the given order. Returns the text and each insert's paragraph number (1-based).

    The filler never mentions people, numbers or codes, so counts and look-ups over the inserts
    have exactly one right answer.
    """
    n = max(1, -(-n_words // 8))  # every filler sentence has 8 words
    # One rng call per bank instead of five per sentence: documents are the costliest fills.
    a1, a2 = rng.choices(_ADJ, k=n), rng.choices(_ADJ, k=n)
    nouns, verbs, places = rng.choices(_NOUN, k=n), rng.choices(_VERB, k=n), rng.choices(_PLACE, k=n)
    sentences = [f"The {a} {b} {c} near the {d} {e}." for a, b, c, d, e in zip(a1, nouns, verbs, a2, places)]
    slots = sorted(rng.choices(range(len(sentences) + 1), k=len(inserts)))
    merged: list[str] = []
    j = 0
    for i in range(len(sentences) + 1):
        while j < len(inserts) and slots[j] == i:
            merged.append("\x00" + inserts[j])
            j += 1
        if i < len(sentences):
            merged.append(sentences[i])
    paragraphs, where, current = [], [], []
    per = rng.randint(4, 7)
    for s in merged:
        if s.startswith("\x00"):
            where.append(len(paragraphs) + 1)
            s = s[1:]
        current.append(s)
        if len(current) >= per:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs), where


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


# -- steerability: tasks under verifiable format constraints ----------------------------------

_KEYWORDS = ("window", "silver", "promise", "journey", "balance", "garden", "signal", "harvest",
             "compass", "lantern", "thread", "echo", "bridge", "ember", "anchor", "puzzle", "orbit")
_OPENERS = ("Today", "Imagine", "Honestly", "Listen", "Remember", "First", "Dear", "Look", "Picture", "Well")
_CLOSERS = ("Is there anything else I can help with?", "Thanks for reading.", "That is all for now.",
            "Let me know what you think.", "See you soon.", "Stay curious.")


def _constraints(rng: random.Random, k: int) -> tuple[list[str], list[dict[str, Any]]]:
    """``k`` mutually compatible, mechanically checkable constraints (IFEval-style)."""
    groups = {
        "case": ("lowercase", "uppercase"), "length": ("max_words", "min_words", "max_sentences"),
        "layout": ("bullets", "paragraphs"), "start": ("starts_with", "quoted"), "end": ("ends_with", "postscript"),
        "words": ("keywords",), "avoid": ("forbidden",), "repeat": ("keyword_count",), "commas": ("no_commas",),
        "title": ("title",), "holes": ("placeholders",),
    }
    chosen = rng.sample(sorted(groups), min(k, len(groups)))
    texts, items = [], []
    kinds = [rng.choice(groups[g]) for g in chosen]
    if "quoted" in kinds and "end" in chosen:  # a closing quote cannot also be the closing phrase
        kinds = [c for c in kinds if c not in ("ends_with", "postscript")]
    for kind in kinds:
        if kind == "lowercase":
            texts.append("Write your entire reply in lowercase letters, with no capital letters at all.")
            items.append({"type": kind})
        elif kind == "uppercase":
            texts.append("Write your entire reply in capital letters.")
            items.append({"type": kind})
        elif kind == "max_words":
            n = rng.randrange(40, 201, 10)
            texts.append(f"Use at most {n} words.")
            items.append({"type": kind, "n": n})
        elif kind == "min_words":
            n = rng.randrange(50, 301, 10)
            texts.append(f"Use at least {n} words.")
            items.append({"type": kind, "n": n})
        elif kind == "max_sentences":
            n = rng.randint(2, 8)
            texts.append(f"Use no more than {n} sentences.")
            items.append({"type": kind, "n": n})
        elif kind == "bullets":
            n = rng.randint(2, 7)
            texts.append(f"Format the reply as exactly {n} bullet points starting with '- '.")
            items.append({"type": kind, "n": n})
        elif kind == "paragraphs":
            n = rng.randint(2, 5)
            texts.append(f"Write exactly {n} paragraphs separated by blank lines.")
            items.append({"type": kind, "n": n})
        elif kind == "starts_with":
            w = rng.choice(_OPENERS)
            texts.append(f"Begin your reply with the word '{w}'.")
            items.append({"type": kind, "text": w})
        elif kind == "quoted":
            texts.append("Wrap your entire reply in double quotation marks.")
            items.append({"type": kind})
        elif kind == "ends_with":
            w = rng.choice(_CLOSERS)
            texts.append(f"End your reply with the exact sentence '{w}'")
            items.append({"type": kind, "text": w})
        elif kind == "postscript":
            texts.append("Add a postscript at the end starting with 'P.S.'.")
            items.append({"type": kind})
        elif kind == "keywords":
            ws = rng.sample(_KEYWORDS, rng.randint(1, 3))
            texts.append(f"Include the word(s) {', '.join(repr(w) for w in ws)}.")
            items.append({"type": kind, "words": ws})
        elif kind == "forbidden":
            ws = rng.sample(("very", "really", "thing", "good", "nice", "important", "just", "also"), rng.randint(1, 2))
            texts.append(f"Do not use the word(s) {', '.join(repr(w) for w in ws)}.")
            items.append({"type": kind, "words": ws})
        elif kind == "keyword_count":
            w, n = rng.choice(_KEYWORDS), rng.randint(2, 4)
            texts.append(f"Use the word '{w}' at least {n} times.")
            items.append({"type": kind, "word": w, "n": n})
        elif kind == "no_commas":
            texts.append("Do not use any commas.")
            items.append({"type": kind})
        elif kind == "title":
            texts.append("Give it a title wrapped in double angular brackets, such as <<my title>>.")
            items.append({"type": kind})
        elif kind == "placeholders":
            n = rng.randint(1, 4)
            texts.append(f"Include at least {n} placeholder(s) in square brackets, such as [address].")
            items.append({"type": kind, "n": n})
    kinds = [item["type"] for item in items]
    if "max_sentences" in kinds:
        # n bullets or paragraphs take at least n sentences, and a title, a closing sentence or a
        # postscript one more each: raise the cap so the constraints can all be met
        layout = sum(item["n"] for item in items if item["type"] in ("bullets", "paragraphs"))
        floor = layout + sum(kind in kinds for kind in ("title", "ends_with", "postscript")) if layout else 0
        i = kinds.index("max_sentences")
        if items[i]["n"] < floor:
            items[i]["n"] = floor
            texts[i] = f"Use no more than {floor} sentences."
    return texts, items


_STEER_TASKS = {
    "steer_email": "Write an email to {who} about {topic}.",
    "steer_story": "Write a short story for {who} set in a world shaped by {topic}.",
    "steer_product": "Write a product description for a gadget related to {topic}, aimed at {who}.",
    "steer_poem": "Write a poem about {topic} that {who} would enjoy.",
    "steer_summary": "Summarise the main arguments for and against {topic} for {who}.",
    "steer_letter": "Write a letter to the editor about {topic}, signed by {who}.",
    "steer_post": "Write a social media post announcing an event about {topic} for {who}.",
    "steer_advice": "Give advice to {who} who wants to start with {topic}.",
    "steer_dialogue": "Write a dialogue between {who} and a friend discussing {topic}.",
    "steer_speech": "Write a short speech opening a conference on {topic}, addressed to {who}.",
    "steer_review": "Write a review of a book about {topic} for {who}.",
    "steer_plan": "Write a one-week plan for {who} to learn about {topic}.",
    "steer_faq": "Write an FAQ about {topic} for {who}.",
}


def _steer_filler(task: str) -> Callable[[random.Random, float], Fill]:
    def fill(rng: random.Random, h: float) -> Fill:
        k = _ri(rng, h, 1, 6)
        texts, items = _constraints(rng, k)
        base = task.format(who=rng.choice(_AUDIENCES), topic=rng.choice(_TOPICS))
        tone = rng.choice(("", f" Use a {rng.choice(_TONES)} tone."))
        return {"task": base + tone, "constraints": " ".join(texts)}, {"kind": "constraints", "items": items}, {"constraints": len(items)}

    return fill


for _name, _task in _STEER_TASKS.items():
    _BUILTIN.append(Template(_name, "steerability", "{task} {constraints}", _steer_filler(_task), "constraints"))


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


# -- tool use: pick the right tool from generated JSON schemas and fill its arguments ---------

_CITIES = tuple(c[1].split("|")[0] for c in _COUNTRIES)
_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK", "NOK", "INR", "BRL", "MXN")
_TICKERS = ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "IBM", "ORCL", "SAP", "ASML", "SONY")
_LANGS = ("Spanish", "French", "German", "Italian", "Portuguese", "Japanese", "Korean", "Dutch")


def _date(rng: random.Random) -> str:
    return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _hhmm(rng: random.Random) -> str:
    return f"{rng.randint(6, 22):02d}:{rng.choice((0, 15, 30, 45)):02d}"


# name: (description, [(param, json type, description, draw, required, phrase)])
# ``phrase`` renders the argument inside the user's request.
_TOOLS: dict[str, tuple[str, list[tuple[str, str, str, Callable[[random.Random], Any], bool, str]]]] = {
    "get_weather": ("Current weather and forecast for a city.", [
        ("city", "string", "City name", lambda r: r.choice(_CITIES), True, "in {v}"),
        ("unit", "string", "celsius or fahrenheit", lambda r: r.choice(("celsius", "fahrenheit")), False, "in {v}"),
        ("days", "integer", "Forecast length in days", lambda r: r.randint(1, 7), False, "for the next {v} days"),
    ]),
    "convert_currency": ("Convert an amount between currencies.", [
        ("amount", "number", "Amount to convert", lambda r: round(r.uniform(1, 5000), 2), True, "{v}"),
        ("from_currency", "string", "ISO code to convert from", lambda r: r.choice(_CURRENCIES), True, "{v}"),
        ("to_currency", "string", "ISO code to convert to", lambda r: r.choice(_CURRENCIES), True, "into {v}"),
    ]),
    "search_flights": ("Search flights between two cities.", [
        ("origin", "string", "Departure city", lambda r: r.choice(_CITIES), True, "from {v}"),
        ("destination", "string", "Arrival city", lambda r: r.choice(_CITIES), True, "to {v}"),
        ("date", "string", "Departure date YYYY-MM-DD", _date, True, "on {v}"),
        ("passengers", "integer", "Number of passengers", lambda r: r.randint(1, 6), False, "for {v} passengers"),
    ]),
    "set_timer": ("Start a countdown timer.", [
        ("minutes", "integer", "Duration in minutes", lambda r: r.randint(1, 180), True, "for {v} minutes"),
        ("label", "string", "Timer label", lambda r: r.choice(("tea", "pasta", "laundry", "break", "bread", "call")), False, "labelled {v}"),
    ]),
    "send_email": ("Send an email.", [
        ("to", "string", "Recipient address", lambda r: f"{r.choice(_NAMES).lower()}@example.com", True, "to {v}"),
        ("subject", "string", "Subject line", lambda r: r.choice(_TOPICS), True, "about {v}"),
        ("urgent", "boolean", "Mark as urgent", lambda r: r.random() < 0.5, False, "(urgent: {v})"),
    ]),
    "create_event": ("Add an event to the calendar.", [
        ("title", "string", "Event title", lambda r: r.choice(("dentist", "team sync", "yoga", "piano lesson", "budget review")), True, "called {v}"),
        ("date", "string", "Date YYYY-MM-DD", _date, True, "on {v}"),
        ("start_time", "string", "Start time HH:MM", _hhmm, True, "at {v}"),
        ("duration_minutes", "integer", "Length in minutes", lambda r: r.choice((15, 30, 45, 60, 90, 120)), False, "lasting {v} minutes"),
    ]),
    "get_stock_price": ("Latest price of a listed stock.", [
        ("ticker", "string", "Ticker symbol", lambda r: r.choice(_TICKERS), True, "{v}"),
        ("currency", "string", "Quote currency", lambda r: r.choice(_CURRENCIES[:4]), False, "quoted in {v}"),
    ]),
    "translate_text": ("Translate text into another language.", [
        ("text", "string", "Text to translate", lambda r: r.choice(("good morning", "where is the station", "thank you very much", "see you tomorrow", "the bill, please")), True, "'{v}'"),
        ("target_language", "string", "Language to translate into", lambda r: r.choice(_LANGS), True, "into {v}"),
    ]),
    "book_table": ("Reserve a restaurant table.", [
        ("restaurant", "string", "Restaurant name", lambda r: f"{r.choice(('The', 'Chez', 'Casa', 'Little'))} {r.choice(_NOUN).title()}", True, "at {v}"),
        ("party_size", "integer", "Number of guests", lambda r: r.randint(1, 12), True, "for {v} people"),
        ("time", "string", "Time HH:MM", _hhmm, True, "at {v}"),
    ]),
    "get_directions": ("Route between two places.", [
        ("origin", "string", "Start", lambda r: r.choice(_CITIES), True, "from {v}"),
        ("destination", "string", "End", lambda r: r.choice(_CITIES), True, "to {v}"),
        ("mode", "string", "driving, walking, transit or cycling", lambda r: r.choice(("driving", "walking", "transit", "cycling")), False, "by {v}"),
    ]),
    "play_music": ("Play music.", [
        ("genre", "string", "Music genre", lambda r: r.choice(("jazz", "rock", "classical", "hip hop", "folk", "ambient")), True, "some {v}"),
        ("volume", "integer", "Volume 1-10", lambda r: r.randint(1, 10), False, "at volume {v}"),
    ]),
    "find_recipes": ("Find recipes.", [
        ("ingredient", "string", "Main ingredient", lambda r: r.choice(_CATEGORIES["vegetables"] + _CATEGORIES["fruits"]), True, "with {v}"),
        ("max_minutes", "integer", "Maximum cooking time", lambda r: r.choice((10, 20, 30, 45, 60)), False, "that take at most {v} minutes"),
        ("diet", "string", "Diet restriction", lambda r: r.choice(("vegan", "vegetarian", "gluten-free", "none")), False, "({v} diet)"),
    ]),
    "check_inventory": ("Stock level of a product in a warehouse.", [
        ("sku", "string", "Product code", lambda r: f"SKU-{r.randint(1000, 99999)}", True, "of {v}"),
        ("warehouse", "string", "Warehouse city", lambda r: r.choice(_CITIES), False, "in the {v} warehouse"),
    ]),
}
_TOOL_ASKS = {
    "get_weather": "What's the weather {city} {unit} {days}?",
    "convert_currency": "Convert {amount} {from_currency} {to_currency}.",
    "search_flights": "Find me flights {origin} {destination} {date} {passengers}.",
    "set_timer": "Set a timer {minutes} {label}.",
    "send_email": "Email {to} {subject} {urgent}.",
    "create_event": "Put an event {title} in my calendar {date} {start_time} {duration_minutes}.",
    "get_stock_price": "What is the price of {ticker} stock {currency}?",
    "translate_text": "Translate {text} {target_language}.",
    "book_table": "Book a table {restaurant} {party_size} {time}.",
    "get_directions": "How do I get {origin} {destination} {mode}?",
    "play_music": "Play {genre} {volume}.",
    "find_recipes": "Find recipes {ingredient} {max_minutes} {diet}.",
    "check_inventory": "How many units {sku} are left {warehouse}?",
}
_TOOL_FMT = (
    'Respond with only a JSON object of the form {"name": <tool name>, "arguments": {...}}.',
    'Reply with the tool call as JSON: {"name": ..., "arguments": ...}. No other text.',
    'Think about which tool fits, then output the call as a JSON object with keys "name" and "arguments".',
)


def _schema(name: str) -> dict[str, Any]:
    desc, params = _TOOLS[name]
    props = {p: {"type": t, "description": d} for p, t, d, _, _, _ in params}
    return {"name": name, "description": desc, "parameters": {"type": "object", "properties": props, "required": [p for p, _, _, _, req, _ in params if req]}}


_SCHEMA_JSON: dict[tuple[str, int | None], str] = {}


def _schemas_json(tools: Sequence[str], indent: int | None) -> str:
    """``json.dumps([_schema(t) for t in tools], indent=indent)``, from cached per-tool pieces
    (pretty-printing JSON is the slowest part of a tool-use fill)."""
    parts = []
    for t in tools:
        if (t, indent) not in _SCHEMA_JSON:
            text = json.dumps(_schema(t), indent=indent)
            _SCHEMA_JSON[t, indent] = text if indent is None else text.replace("\n", "\n" + " " * indent)
        parts.append(_SCHEMA_JSON[t, indent])
    if indent is None:
        return "[" + ", ".join(parts) + "]"
    pad = " " * indent
    return "[\n" + ",\n".join(pad + p for p in parts) + "\n]"


def _tool_filler(tool: str) -> Callable[[random.Random, float], Fill]:
    def fill(rng: random.Random, h: float) -> Fill:
        distractors = _ri(rng, h, 0, 6)
        offered = [tool] + rng.sample([t for t in _TOOLS if t != tool], distractors)
        rng.shuffle(offered)
        optional_share = _steer(rng, h, 0.0, 1.0)
        args, phrases = {}, {}
        for p, _, _, draw, req, phrase in _TOOLS[tool][1]:
            phrases[p] = ""
            if req or rng.random() < optional_share:
                args[p] = draw(rng)
                shown = str(args[p]).lower() if isinstance(args[p], bool) else args[p]
                phrases[p] = phrase.format(v=shown)
        request = re.sub(r"\s+([?.])", r"\1", re.sub(r" {2,}", " ", _TOOL_ASKS[tool].format(**phrases)))
        schemas = _schemas_json(offered, rng.choice((None, 2)))
        slots = {"tools": schemas, "request": request, "fmt": rng.choice(_TOOL_FMT)}
        return slots, {"kind": "tool_call", "name": tool, "arguments": args}, {"distractors": distractors, "arguments": len(args)}

    return fill


for _tool in _TOOLS:
    _BUILTIN.append(Template(f"tool_{_tool}", "tool_use", "You can call these tools:\n{tools}\n\nUser: {request}\n{fmt}", _tool_filler(_tool), "tool_call"))

_FIELD_POOL = (  # key, json type, value draw
    ("name", "string", lambda r: r.choice(_NAMES)), ("age", "integer", lambda r: r.randint(18, 90)),
    ("city", "string", lambda r: r.choice(_CITIES)), ("email", "string", lambda r: f"{r.choice(_NAMES).lower()}@example.org"),
    ("score", "number", lambda r: round(r.uniform(0, 100), 1)), ("active", "boolean", lambda r: r.random() < 0.5),
    ("order_id", "string", lambda r: f"ORD-{r.randint(10000, 99999)}"), ("quantity", "integer", lambda r: r.randint(1, 50)),
    ("price", "number", lambda r: round(r.uniform(1, 999), 2)), ("country", "string", lambda r: r.choice(_COUNTRIES)[0]),
    ("language", "string", lambda r: r.choice(_LANGS)), ("year", "integer", lambda r: r.randint(1950, 2025)),
)


@_template("tool_json_extract", "tool_use", "Extract {keys} from the text below as a JSON object with exactly those keys.\n\nText: {text}\n{fmt}", "json")
def _tool_json_extract(rng: random.Random, h: float) -> Fill:
    k = _ri(rng, h, 2, len(_FIELD_POOL))
    fields = rng.sample(_FIELD_POOL, k)
    values = {key: draw(rng) for key, _, draw in fields}
    parts = [f"the {key.replace('_', ' ')} is {json.dumps(v) if isinstance(v, bool) else v}" for key, v in values.items()]
    rng.shuffle(parts)
    text = "Record note: " + "; ".join(parts) + "."
    schema = {"type": "object", "properties": {key: {"type": t} for key, t, _ in fields}, "required": list(values)}
    fmt = rng.choice(("Output only the JSON.", "Use the JSON types that fit (numbers as numbers, booleans as true/false).", "Wrap the JSON in a ```json block."))
    return {"keys": ", ".join(f'"{k}"' for k in values), "text": text, "fmt": fmt}, {"kind": "json", "schema": schema, "values": values}, {"fields": k}


def _random_schema(rng: random.Random, fields: int, depth: int) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for _ in range(fields):
        key = _nonce(rng, 2) + "_" + rng.choice(("id", "name", "count", "flag", "items", "info", "value"))
        kind = rng.choice(("string", "integer", "number", "boolean", "array", "object") if depth > 0 else ("string", "integer", "number", "boolean", "array"))
        if kind == "object":
            props[key] = _random_schema(rng, rng.randint(1, 3), depth - 1)
        elif kind == "array":
            props[key] = {"type": "array", "items": {"type": rng.choice(("string", "integer"))}}
        elif kind == "string" and rng.random() < 0.3:
            props[key] = {"type": "string", "enum": rng.sample(_KEYWORDS, 3)}
        else:
            props[key] = {"type": kind}
    return {"type": "object", "properties": props, "required": sorted(props)}


@_template("tool_schema_fill", "tool_use", "Produce an example JSON object that validates against this JSON schema:\n{schema}\n{fmt}", "json")
def _tool_schema_fill(rng: random.Random, h: float) -> Fill:
    fields, depth = _ri(rng, h, 1, 8), _ri(rng, h, 0, 2)
    schema = _random_schema(rng, fields, depth)
    fmt = rng.choice(("Output only the JSON object.", "Use realistic values.", "Put the JSON in a ```json block."))
    return {"schema": json.dumps(schema, indent=rng.choice((None, 2))), "fmt": fmt}, {"kind": "json", "schema": schema}, {"fields": fields, "depth": depth}


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


# -- multilingual: a small verified lexicon in five languages ---------------------------------

_ML = "multilingual"
_ML_LANGS = ("Spanish", "French", "German", "Italian", "Portuguese")
# English: (Spanish, French, German, Italian, Portuguese); 'a|b' lists accepted alternatives.
_LEXICON: dict[str, tuple[str, str, str, str, str]] = {
    "water": ("agua", "eau", "Wasser", "acqua", "água"), "house": ("casa", "maison", "Haus", "casa", "casa"),
    "dog": ("perro", "chien", "Hund", "cane", "cão|cachorro"), "cat": ("gato", "chat", "Katze", "gatto", "gato"),
    "book": ("libro", "livre", "Buch", "libro", "livro"), "bread": ("pan", "pain", "Brot", "pane", "pão"),
    "sun": ("sol", "soleil", "Sonne", "sole", "sol"), "moon": ("luna", "lune", "Mond", "luna", "lua"),
    "tree": ("árbol", "arbre", "Baum", "albero", "árvore"), "school": ("escuela", "école", "Schule", "scuola", "escola"),
    "friend": ("amigo|amiga", "ami|amie", "Freund|Freundin", "amico|amica", "amigo|amiga"),
    "city": ("ciudad", "ville", "Stadt", "città", "cidade"), "apple": ("manzana", "pomme", "Apfel", "mela", "maçã"),
    "milk": ("leche", "lait", "Milch", "latte", "leite"), "door": ("puerta", "porte", "Tür", "porta", "porta"),
    "window": ("ventana", "fenêtre", "Fenster", "finestra", "janela"), "table": ("mesa", "table", "Tisch", "tavolo", "mesa"),
    "chair": ("silla", "chaise", "Stuhl", "sedia", "cadeira"), "flower": ("flor", "fleur", "Blume", "fiore", "flor"),
    "sea": ("mar", "mer", "Meer", "mare", "mar"), "mountain": ("montaña", "montagne", "Berg", "montagna", "montanha"),
    "night": ("noche", "nuit", "Nacht", "notte", "noite"), "day": ("día", "jour", "Tag", "giorno", "dia"),
    "mother": ("madre", "mère", "Mutter", "madre", "mãe"), "father": ("padre", "père", "Vater", "padre", "pai"),
    "brother": ("hermano", "frère", "Bruder", "fratello", "irmão"), "sister": ("hermana", "sœur", "Schwester", "sorella", "irmã"),
    "hand": ("mano", "main", "Hand", "mano", "mão"), "eye": ("ojo", "œil", "Auge", "occhio", "olho"),
    "heart": ("corazón", "cœur", "Herz", "cuore", "coração"), "bird": ("pájaro|ave", "oiseau", "Vogel", "uccello", "pássaro|ave"),
    "horse": ("caballo", "cheval", "Pferd", "cavallo", "cavalo"), "cheese": ("queso", "fromage", "Käse", "formaggio", "queijo"),
    "wine": ("vino", "vin", "Wein", "vino", "vinho"), "key": ("llave", "clé|clef", "Schlüssel", "chiave", "chave"),
    "street": ("calle", "rue", "Straße", "strada|via", "rua"), "rain": ("lluvia", "pluie", "Regen", "pioggia", "chuva"),
    "snow": ("nieve", "neige", "Schnee", "neve", "neve"), "fire": ("fuego", "feu", "Feuer", "fuoco", "fogo"),
    "star": ("estrella", "étoile", "Stern", "stella", "estrela"), "bed": ("cama", "lit", "Bett", "letto", "cama"),
    "shoe": ("zapato", "chaussure", "Schuh", "scarpa", "sapato"), "egg": ("huevo", "œuf", "Ei", "uovo", "ovo"),
    "red": ("rojo", "rouge", "rot", "rosso", "vermelho"), "blue": ("azul", "bleu", "blau", "blu", "azul"),
    "green": ("verde", "vert", "grün", "verde", "verde"), "black": ("negro", "noir", "schwarz", "nero", "preto|negro"),
    "white": ("blanco", "blanc", "weiß", "bianco", "branco"), "yellow": ("amarillo", "jaune", "gelb", "giallo", "amarelo"),
}
_NUMBER_WORDS: dict[str, tuple[str, ...]] = {  # 1..20
    "Spanish": tuple("uno|una dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince dieciséis diecisiete dieciocho diecinueve veinte".split()),
    "French": tuple("un|une deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize dix-sept dix-huit dix-neuf vingt".split()),
    "German": tuple("eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig".split()),
    "Italian": tuple("uno|una due tre quattro cinque sei sette otto nove dieci undici dodici tredici quattordici quindici sedici diciassette diciotto diciannove venti".split()),
    "Portuguese": tuple("um|uma dois|duas três quatro cinco seis sete oito nove dez onze doze treze catorze|quatorze quinze dezesseis|dezasseis dezessete|dezassete dezoito dezenove|dezanove vinte".split()),
}
_DAY_WORDS: dict[str, tuple[str, ...]] = {  # Monday..Sunday
    "Spanish": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "French": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "German": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag|Sonnabend", "Sonntag"),
    "Italian": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
    "Portuguese": ("segunda-feira|segunda", "terça-feira|terça", "quarta-feira|quarta", "quinta-feira|quinta", "sexta-feira|sexta", "sábado", "domingo"),
}
_PHRASES: dict[str, tuple[str, str, str, str, str]] = {
    "good morning": ("buenos días", "bonjour", "guten Morgen", "buongiorno", "bom dia"),
    "thank you": ("gracias", "merci", "danke", "grazie", "obrigado|obrigada"),
    "good night": ("buenas noches", "bonne nuit", "gute Nacht", "buonanotte|buona notte", "boa noite"),
    "please": ("por favor", "s'il vous plaît|s'il te plaît", "bitte", "per favore", "por favor"),
    "goodbye": ("adiós", "au revoir", "auf Wiedersehen|tschüss", "arrivederci|ciao", "adeus|tchau"),
    "yes": ("sí", "oui", "ja", "sì", "sim"),
}
_ML_FMT = ("Answer briefly.", "One item per line.", "Reply as 'source: translation' pairs.", "Add a short example sentence for each.", "No explanations.")


def _lang(rng: random.Random) -> tuple[str, int]:
    i = rng.randrange(len(_ML_LANGS))
    return _ML_LANGS[i], i


def _first(alts: str) -> str:
    return alts.split("|")[0]


def _ml(name: str, scaffold: str, verifier: str | None):
    return _template(name, _ML, scaffold, verifier)


@_ml("ml_translate_words", "Translate into {lang}: {words}. {fmt}", "contains")
def _ml_translate_words(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 1, 8)
    words = rng.sample(sorted(_LEXICON), k)
    return {"lang": lang, "words": ", ".join(words), "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": [_LEXICON[w][i] for w in words]}, {"words": k}


@_ml("ml_words_to_english", "Translate these {lang} words into English: {words}. {fmt}", "contains")
def _ml_words_to_english(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 1, 8)
    words = rng.sample(sorted(_LEXICON), k)
    return {"lang": lang, "words": ", ".join(_first(_LEXICON[w][i]) for w in words), "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": words}, {"words": k}


@_ml("ml_number_words", "Write these numbers as {lang} words: {nums}. {fmt}", "contains")
def _ml_number_words(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    k = _ri(rng, h, 1, 6)
    nums = rng.sample(range(1, 21), k)
    return {"lang": lang, "nums": ", ".join(map(str, nums)), "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": [_NUMBER_WORDS[lang][n - 1] for n in nums]}, {"numbers": k}


@_ml("ml_words_to_numbers", "Which numbers are these {lang} words: {words}? Answer with digits. {fmt}", "sequence")
def _ml_words_to_numbers(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    k = _ri(rng, h, 1, 6)
    nums = rng.sample(range(1, 21), k)
    words = ", ".join(_first(_NUMBER_WORDS[lang][n - 1]) for n in nums)
    return {"lang": lang, "words": words, "fmt": rng.choice(("Keep the order.", "Give them in the same order, comma-separated."))}, {"kind": "sequence", "values": nums, "numeric": True}, {"numbers": k}


@_ml("ml_day_names", "What are the {lang} names of these days of the week: {days}? {fmt}", "contains")
def _ml_day_names(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    k = _ri(rng, h, 1, 7)
    days = rng.sample(range(7), k)
    return {"lang": lang, "days": ", ".join(_WEEKDAYS[d] for d in days), "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": [_DAY_WORDS[lang][d] for d in days]}, {"days": k}


@_ml("ml_day_arithmetic", "In {lang}, which day comes {n} days after {day}? Answer with the {lang} word. {fmt}", "choice")
def _ml_day_arithmetic(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    n, d = _ri(rng, h, 1, 60), rng.randrange(7)
    names = _DAY_WORDS[lang]
    want = names[(d + n) % 7]
    return {"lang": lang, "n": n, "day": _first(names[d]), "fmt": rng.choice(("", "Explain briefly.", "One word only."))}, _choice(want, {w: w.split("|") for w in names}), {"days": n}


def _distinctive_words(i: int) -> list[str]:
    """English words whose form in language ``i`` differs from their form in every other language
    (so 'casa' never has to be attributed to one language)."""
    if i not in _DISTINCTIVE:
        out = []
        for word, translations in sorted(_LEXICON.items()):
            forms = [_fold(_first(f)) for f in translations]
            if forms.count(forms[i]) == 1:
                out.append(word)
        _DISTINCTIVE[i] = out
    return _DISTINCTIVE[i]


_DISTINCTIVE: dict[int, list[str]] = {}


@_ml("ml_identify_language", "Which language is this: \"{phrase}\"? {fmt}", "choice")
def _ml_identify_language(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, 1.0 - h, 1, 4)  # fewer words is harder
    pool = _distinctive_words(i)
    words = [_first(_LEXICON[w][i]) for w in rng.sample(pool, max(1, k))]
    return {"phrase": " ".join(words), "fmt": rng.choice(_WORD_FMT).replace("name", "language name")}, _choice(lang, _ML_LANGS), {"clues": -len(words)}


@_ml("ml_phrases", "How do you say {phrases} in {lang}? {fmt}", "contains")
def _ml_phrases(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 1, 4)
    picked = rng.sample(sorted(_PHRASES), k)
    return {"phrases": _fmt_list([f"'{p}'" for p in picked]), "lang": lang, "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": [_PHRASES[p][i] for p in picked]}, {"phrases": k}


@_ml("ml_respond_in", "Answer only in {lang}, in at most {n} sentences: what is {concept} and why does it matter to {audience}?", "constraints")
def _ml_respond_in(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    n = _ri(rng, 1.0 - h, 1, 6)  # fewer sentences allowed is harder
    check = {"kind": "constraints", "items": [{"type": "language", "lang": lang.lower()}, {"type": "max_sentences", "n": max(1, n)}]}
    return {"lang": lang, "n": max(1, n), "concept": rng.choice(_CONCEPTS), "audience": rng.choice(_AUDIENCES)}, check, {"tightness": -max(1, n)}


@_ml("ml_translate_sentence", "Translate into {lang}: \"My {rel} has a {color} {noun} and {m} {plural}.\" {fmt}", "contains")
def _ml_translate_sentence(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    rel = rng.choice(("mother", "father", "brother", "sister", "friend"))
    noun = rng.choice(("house", "door", "table", "chair", "book", "bed", "cat", "dog", "horse", "key"))
    color = rng.choice(("red", "blue", "green", "black", "white", "yellow"))
    m = _ri(rng, h, 2, 20)
    plural = rng.choice(("books", "apples", "flowers", "chairs", "eggs", "shoes", "trees"))
    fmt = rng.choice(("", "Then translate it back into English.", "Give only the translation.", "Mention any grammar change you had to make."))
    values = [_LEXICON[rel][i], _LEXICON[noun][i]]
    return {"lang": lang, "rel": rel, "color": color, "noun": noun, "m": m, "plural": plural, "fmt": fmt}, {"kind": "contains", "values": values}, {"number": m}


@_ml("ml_count_words", "How many words are in this {lang} sentence: \"{sentence}\"? {fmt}", "number")
def _ml_count_words(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 2, 16)
    words = [_first(_LEXICON[rng.choice(sorted(_LEXICON))][i]) for _ in range(k)]
    sentence = " ".join(words)
    return {"lang": lang, "sentence": sentence[0].upper() + sentence[1:], "fmt": rng.choice(_NUM_FMT)}, _num(len(sentence.split())), {"words": k}


@_ml("ml_match_pairs", "Match each {lang} word with its English meaning. {lang} words: {foreign}. English words: {english}. {fmt}", "pairs")
def _ml_match_pairs(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 2, 8)
    words = rng.sample(_distinctive_words(i), k)
    foreign = [_first(_LEXICON[w][i]) for w in words]
    english = list(words)
    rng.shuffle(english)
    fmt = rng.choice(("Write one pair per line as 'word = meaning'.", "List the pairs one per line."))
    return {"lang": lang, "foreign": ", ".join(foreign), "english": ", ".join(english), "fmt": fmt}, {"kind": "pairs", "pairs": [[f, w] for f, w in zip(foreign, words)]}, {"pairs": k}


@_ml("ml_number_arithmetic", "What is {a} {op} {b}? The numbers are written in {lang}. {fmt}", "number")
def _ml_number_arithmetic(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    top = _ri(rng, h, 5, 20)
    a, b = rng.randint(1, top), rng.randint(1, top)
    op = rng.choice(("plus", "minus", "times"))
    value = {"plus": a + b, "minus": a - b, "times": a * b}[op]
    words = _NUMBER_WORDS[lang]
    return {"a": _first(words[a - 1]), "b": _first(words[b - 1]), "op": op, "lang": lang, "fmt": rng.choice(_NUM_FMT)}, _num(value), {"size": top}
