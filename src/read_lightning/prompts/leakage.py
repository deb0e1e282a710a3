"""Keep evaluation prompts out of the training data: normalised prompt hashes.

A prompt is normalised before hashing so trivial formatting differences do not hide a leak:

1. Unicode NFKC (full-width letters, ligatures and compatibility forms fold to plain ones),
2. casefold (a stronger lowercase: 'STRASSE' and 'straße' agree),
3. every run of whitespace (spaces, tabs, newlines) becomes one space,
4. whitespace and punctuation are stripped from both ends (so "What is 2+2?" and
   "what is 2+2" agree, while punctuation inside the text is kept).

The hash is the SHA-256 hex digest of the UTF-8 normalised text. Only exact matches after
normalisation are caught; paraphrases are not. ``build_hash_set`` reads evaluation JSONL files
and writes one hash per line; ``TemplateLibrary(leakage_hashes=...)`` never returns a prompt
whose hash is in that set. ``leakage_main`` is the ``read-train leakage`` subcommand.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from read_lightning.core.jsonl import iter_jsonl, write_text_atomic

__all__ = [
    "PROMPT_FIELDS",
    "normalize_prompt",
    "prompt_hash",
    "iter_prompts",
    "build_hash_set",
    "load_hash_set",
    "LeakageFilter",
    "leakage_main",
]

# Looked up in this order when no field is named: the common names in evaluation sets.
PROMPT_FIELDS: tuple[str, ...] = ("prompt", "question", "input", "instruction", "query", "problem", "text", "messages")

_WS = re.compile(r"\s+")


def _is_edge(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch).startswith(("P", "S"))


def normalize_prompt(text: str) -> str:
    """NFKC, casefold, collapse whitespace, strip punctuation/symbols and spaces at both ends."""
    text = _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def prompt_hash(text: str) -> str:
    """SHA-256 hex digest of ``normalize_prompt(text)``."""
    return hashlib.sha256(normalize_prompt(text).encode("utf-8")).hexdigest()


def _field_text(value: Any) -> str | None:
    """The prompt text of a field value; chat ``messages`` give their user turns."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        users = [m.get("content") for m in value if m.get("role") == "user" and isinstance(m.get("content"), str)]
        return "\n".join(users) if users else None
    return None


def iter_prompts(path: str | os.PathLike[str], field: str | None = None) -> Iterable[str]:
    """Prompt texts of a JSONL file; ``field=None`` picks the first of ``PROMPT_FIELDS`` present.

    Raises ``ValueError`` naming the file and line for invalid JSON, a row that is not an
    object, or a row without a usable prompt field.
    """
    for lineno, row in iter_jsonl(path):
        names = [field] if field else [f for f in PROMPT_FIELDS if f in row]
        # an empty field is no prompt: Alpaca-style rows carry an empty "input" beside the instruction
        text = next((t for t in (_field_text(row.get(n)) for n in names) if t is not None and t.strip()), None)
        if text is None:
            wanted = repr(field) if field else f"one of {list(PROMPT_FIELDS)!r}"
            raise ValueError(f"{path}:{lineno}: no text field {wanted}; the row has keys {sorted(row)!r}")
        yield text


def build_hash_set(
    jsonl_paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    field: str | None = None,
    out_path: str | os.PathLike[str] | None = None,
) -> set[str]:
    """Hash every prompt of the evaluation files; write them sorted, one per line, to ``out_path``."""
    if isinstance(jsonl_paths, (str, os.PathLike)):
        jsonl_paths = [jsonl_paths]
    hashes = {prompt_hash(text) for p in jsonl_paths for text in iter_prompts(p, field)}
    if out_path is not None:
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, "".join(h + "\n" for h in sorted(hashes)))  # never a half-written hash file
    return hashes


def load_hash_set(path: str | os.PathLike[str]) -> set[str]:
    """Read a hash file written by ``build_hash_set`` (blank lines and '#' comments ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"leakage hash file {str(path)!r} does not exist")
    hashes = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not re.fullmatch(r"[0-9a-f]{64}", line):
            raise ValueError(f"{path}:{lineno}: not a SHA-256 hex digest: {line[:80]!r}")
        hashes.add(line)
    return hashes


class LeakageFilter:
    """Membership test and filter over a set of prompt hashes; counts what it rejected."""

    def __init__(self, hashes: Iterable[str] | str | os.PathLike[str]) -> None:
        self.hashes = frozenset(load_hash_set(hashes) if isinstance(hashes, (str, os.PathLike)) else hashes)
        self.rejected = 0

    def __contains__(self, text: str) -> bool:
        return prompt_hash(text) in self.hashes

    def filter(self, texts: Iterable[str]) -> list[str]:
        """The texts whose hash is not in the set, in order."""
        kept = []
        for t in texts:
            if t in self:
                self.rejected += 1
            else:
                kept.append(t)
        return kept


def leakage_main(argv: list[str] | None = None) -> int:
    """``read-train leakage EVAL.jsonl [...] --out hashes.txt [--field prompt]``; returns an exit code."""
    parser = argparse.ArgumentParser(
        prog="read-train leakage",
        description="Hash evaluation prompts so generated training prompts never repeat them "
        "(see read_lightning.prompts.leakage for the normalisation).",
    )
    parser.add_argument("files", nargs="+", help="evaluation JSONL files")
    parser.add_argument("--out", required=True, help="where to write the hash file (one SHA-256 per line)")
    parser.add_argument(
        "--field", default=None, help=f"JSON field holding the prompt (default: first of {', '.join(PROMPT_FIELDS)})"
    )
    args = parser.parse_args(argv)
    try:
        hashes = build_hash_set(args.files, field=args.field, out_path=args.out)
    except (OSError, ValueError) as err:
        print(f"read-train leakage: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(hashes)} prompt hashes from {len(args.files)} file(s) to {args.out}")
    return 0
