"""JSON and JSONL files: readers with errors that name the file (and line), atomic writers.

Every JSONL the project reads (prompt pools, generated intervals, probe sets and references,
task splits, intervention logs, evaluation files for leakage) goes through here, so a corrupt
row always fails the same clear way; so do the run files read back as one JSON object
(``summary.json``, ``ledger.json``, generation state, comparison stamps).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "iter_jsonl",
    "read_json",
    "read_jsonl",
    "temporary_sibling",
    "write_json_atomic",
    "write_jsonl_atomic",
    "write_text_atomic",
]


def _check_object(doc: Any, where: str, required: Sequence[str], what: str) -> dict[str, Any]:
    """``doc`` if it is a JSON object holding every ``required`` key; else a ``ValueError`` at ``where``."""
    if not isinstance(doc, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in required if k not in doc]
    if missing:
        raise ValueError(f"{where}: {what} lacks required field(s) {missing!r}")
    return doc


def iter_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, row)`` for each non-blank line of ``path``.

    Raises ``FileNotFoundError`` naming a missing file, and ``ValueError`` naming the file and
    line for a row that is not UTF-8 text, not valid JSON, not an object, or lacks a ``required``
    field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSONL file not found: {path}")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not UTF-8 text ({err.reason} at byte {err.start})") from None
            if not line.strip():
                continue
            # Without its line ending: a row that ends early (a missing closing brace) would be
            # reported at "line 2, column 1", past the newline, instead of where the row stops.
            line = line.rstrip("\r\n")
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                early = ", where the row ends: is a closing bracket missing?" if err.pos >= len(line) else ""
                raise ValueError(
                    f"{path}:{lineno}: corrupt JSONL row ({err.msg} at column {err.pos + 1}{early}): "
                    f"{_excerpt(line, err.pos)}"
                ) from None
            yield lineno, _check_object(row, f"{path}:{lineno}", required, "row")


def _excerpt(line: str, pos: int, width: int = 60) -> str:
    """The row around character ``pos``, at most ``width`` characters, ``...`` where cut."""
    start = max(0, min(pos - width // 2, len(line) - width))
    text = line[start : start + width]
    return ("..." if start > 0 else "") + repr(text)[1:-1] + ("..." if start + width < len(line) else "")


def read_jsonl(path: str | os.PathLike, required: Sequence[str] = ()) -> list[dict[str, Any]]:
    """All rows of ``path`` (see :func:`iter_jsonl` for the errors)."""
    return [row for _, row in iter_jsonl(path, required)]


def read_json(path: str | os.PathLike, required: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object in ``path``.

    Raises ``FileNotFoundError`` naming a missing file, and ``ValueError`` naming the file for a
    document that is not valid UTF-8 JSON, not an object, or lacks a ``required`` field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"JSON file not found: {path}")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    return _check_object(doc, str(path), required, "the document")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` through a temporary sibling, so a crash never leaves half a file
    under the real name (a resumed run trusts whatever it finds there)."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write one JSON document to ``path`` atomically (see :func:`write_jsonl_atomic`)."""
    write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def temporary_sibling(path: Path) -> Path:
    """Where to write ``path``'s next version before the rename: a name of this process and thread
    alone, so writers of the same file at once (two runs filling one cache) each rename a whole
    file of their own; one shared name let one writer rename the other's half-written file, or find
    it gone."""
    return path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` atomically: readers see the old file or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        # The rename must not reach the disk before the data does, or a power loss could still
        # leave an empty file under the real name.
        os.fsync(fh.fileno())
    os.replace(tmp, path)
