"""Reading a model's answer: its final answer (GSM8K style), its final number, its code.

Two number grammars live here on purpose, each pinned by its tests: :func:`extract_answer` reads
GSM8K answers as strings to compare (``"$1,250.00"`` -> ``"1250"``), :func:`final_number` reads a
float for the verifiers (signs, unicode minus, ``p/q``, ``\\boxed{}`` and LaTeX fractions).
"""

from __future__ import annotations

import re

__all__ = ["ANSWER_MARKER", "answers_match", "extract_answer", "extract_code", "final_number", "read_numbers"]

# --------------------------------------------------------------------------- exact match (tasks)

_GSM8K_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
_MARKERS = ("####", "answer:", "answer is")


def _normalise_number(text: str) -> str:
    text = text.replace("$", "").replace(",", "").rstrip(".")
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value == int(value) else repr(value)


def extract_answer(text: str) -> str | None:
    """The final answer in ``text``, GSM8K style, normalised; ``None`` when there is none.

    The first number after the last ``####``, ``Answer:`` or ``answer is`` (case-insensitive)
    wins; otherwise the last number in the text. Numbers lose ``$``, thousands separators and
    a zero fraction (``"$1,250.00"`` -> ``"1250"``). A marker followed by no number yields the
    rest of that line, lowercased and stripped of punctuation (for non-numeric answers).
    """
    for marker in _MARKERS:
        # searched in ``text`` itself: ``lower()`` can change a string's length ("İ" -> "i̇"),
        # so an index found in the lowered copy need not point at the same place in ``text``
        found = list(re.finditer(re.escape(marker), text, re.IGNORECASE))
        if not found:
            continue
        tail = text[found[-1].end() :]
        match = _GSM8K_NUMBER.search(tail)
        if match:
            return _normalise_number(match.group())
        word = _normalise_word(tail.strip().split("\n")[0])
        if word:
            return word
    numbers = _GSM8K_NUMBER.findall(text)
    return _normalise_number(numbers[-1]) if numbers else None


def _normalise_word(text: str) -> str:
    return text.strip().strip(" .*:\"'").lower()


def answers_match(prediction: str, gold: str) -> bool:
    """Whether the final answer of ``prediction`` equals the final answer of ``gold``.

    A non-numeric answer given bare, with no marker ("Paris"), is the prediction's last line.
    """
    want = extract_answer(gold)
    if want is None:
        want = _normalise_word(gold)
    got = extract_answer(prediction)
    if got is None:
        lines = [line for line in prediction.splitlines() if line.strip()]
        got = _normalise_word(lines[-1]) if lines else None
    return got is not None and got == want


# --------------------------------------------------------------------------- final number (verifiers)
_NUMBER = re.compile(
    r"(?:(?<![\w)\]])(?P<sign>[-\u2212\u2013]))?\$?"
    r"(?<![A-Za-z\d])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"  # not the digits of a word (K7PQ2M)
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d.]))?"
)
ANSWER_MARKER = re.compile(r"(?:final answer|answer|result)\s*(?:is|=|:)\s*", re.IGNORECASE)


def read_numbers(text: str) -> list[float]:
    """Every number in ``text`` in order, as floats: signs, '$', thousands separators and 'p/q' read."""
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
    if boxed and read_numbers(boxed[-1]):
        return read_numbers(boxed[-1])[0]
    markers = list(ANSWER_MARKER.finditer(answer))
    if markers:
        tail = answer[markers[-1].end() :]
        line = tail.split("\n")[0]
        worked = re.match(r"[\d.,\s+\-*/\u00d7\u00f7()^$]+=", line)  # "Answer: 23 + 19 = 42": the result
        nums = (read_numbers(line[worked.end():]) if worked else []) or read_numbers(line) or read_numbers(tail)
        if nums:
            return nums[0]
    nums = read_numbers(answer)
    return nums[-1] if nums else None


# --------------------------------------------------------------------------- code
_FENCE = re.compile(r"```[ \t]*[\w+-]*[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(answer: str, entry: str | None = None) -> str:
    """The code in a model answer: the first fenced block that defines ``entry`` (when given),
    else the first fenced block, else the whole text. An unclosed fence runs to the end."""
    blocks = _FENCE.findall(answer)
    if entry is not None:
        for block in blocks:
            if f"def {entry}" in block:
                return block
    return blocks[0] if blocks else answer
