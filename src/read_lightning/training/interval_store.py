"""Where an interval's paid-for data lives: its rows and the generation state after them.

An interval's prompts and answers go to ``generated/interval_NNN.jsonl`` and the sampling state
after them to ``generation_state/interval_NNN.json`` under the run directory, both atomically,
the state first: an interval file without its state is refused on resume, a state without its
interval file is simply regenerated. Each state file names the run that wrote it, so a fresh run
never trains on the files another run left in the same directory. Without a run directory the
current interval is kept in memory only, so Lightning can build its loader again.

The teacher's hidden states of the interval's training examples, where it kept them
(``CapabilityDataModule._keep_teacher_states``), go to ``teacher_states/interval_NNN.safetensors``
before the other two: a resumed interval trains on the same targets as an uninterrupted run,
bit for bit, instead of the teacher's forward, which matches them only to float rounding. The
file records a digest of the tokens each example's states were computed on, and a state whose
example reads back as other tokens (a tokenizer that changed between the run and its resume) is
dropped, so the teacher runs in the training step for it instead of giving it another text's
targets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from read_lightning.core.jsonl import iter_jsonl, read_json, temporary_sibling, write_json_atomic, write_jsonl_atomic

__all__ = ["IntervalStore", "load_interval_rows", "tokens_digest"]

log = logging.getLogger(__name__)


def tokens_digest(ids: Sequence[int]) -> str:
    """A short digest of a token sequence: what an example's saved teacher states were computed on."""
    return hashlib.blake2b(b"".join(int(t).to_bytes(8, "little", signed=True) for t in ids), digest_size=8).hexdigest()

ROW_FIELDS = ("prompt", "answer", "capability", "gen_tokens", "used")


def load_interval_rows(path: Path, labels: Sequence[str], max_new_tokens: int) -> list[dict[str, Any]]:
    """Rows of a generated interval file, each field checked; errors name file, line and field."""
    rows = []
    for lineno, row in iter_jsonl(path, required=ROW_FIELDS):
        problem = None
        if not isinstance(row["prompt"], str) or not isinstance(row["answer"], str):
            problem = "fields 'prompt' and 'answer' must be strings"
        elif row["capability"] not in labels:
            problem = f"field 'capability' is {row['capability']!r}, not one of {labels}"
        elif (isinstance(row["gen_tokens"], bool) or not isinstance(row["gen_tokens"], int)
              or not 0 <= row["gen_tokens"] <= max_new_tokens):
            problem = f"field 'gen_tokens' must be an integer in [0, max_new_tokens={max_new_tokens}], " \
                      f"got {row['gen_tokens']!r}"
        elif not isinstance(row["used"], bool):
            problem = f"field 'used' must be true or false, got {row['used']!r}"
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}")
        rows.append(row)
    return rows


class IntervalStore:
    """The interval files of one run.

    Args:
        run_dir: the run directory; None keeps the current interval in memory only (then a run
            resumed inside an interval cannot get its data back).

    ``run_id`` names this run in the state files it writes; a resumed run takes it from its
    checkpoint (None: a checkpoint saved before runs had ids, whose files are accepted).
    """

    def __init__(self, run_dir: str | None = None) -> None:
        self.run_dir = run_dir
        self.run_id: str | None = uuid.uuid4().hex
        # The current interval's rows, generation state and teacher states when there is no
        # run_dir to keep them.
        self._kept: tuple[int, list[dict[str, Any]], dict[str, Any], list | None] | None = None

    def rows_path(self, interval: int) -> Path | None:
        if not self.run_dir:
            return None
        return Path(self.run_dir) / "generated" / f"interval_{interval:03d}.jsonl"

    def state_path(self, interval: int) -> Path | None:
        if not self.run_dir:
            return None
        return Path(self.run_dir) / "generation_state" / f"interval_{interval:03d}.json"

    def states_path(self, interval: int) -> Path | None:
        if not self.run_dir:
            return None
        return Path(self.run_dir) / "teacher_states" / f"interval_{interval:03d}.safetensors"

    def load(
        self, interval: int, labels: Sequence[str], max_new_tokens: int
    ) -> tuple[list[dict[str, Any]], Any, str] | None:
        """The interval's rows, its generation state and where that state came from, if this run
        wrote the interval's file; None if it has none. A file without its state, or written by
        another run, is refused."""
        path, state_path = self.rows_path(interval), self.state_path(interval)
        if path is None or not path.exists():
            return None
        rows = load_interval_rows(path, labels, max_new_tokens)
        if state_path is None or not state_path.is_file():
            raise ValueError(
                f"{path} exists but its generation state {state_path} does not, so resuming from it would "
                "not continue the same prompt sampling; delete the interval file to generate it again"
            )
        state = read_json(state_path)
        owner = state.get("run_id") if isinstance(state, dict) else None
        if owner is not None and self.run_id is not None and owner != self.run_id:
            raise ValueError(
                f"{path} was generated by another run (run id {owner}; this run is {self.run_id}), so this run "
                "would train on that run's data: resume that run from its checkpoint (--ckpt_path), or give "
                f"this run its own run_dir, or delete {path.parent} and {state_path.parent}"
            )
        return rows, state, str(state_path)

    def load_states(self, interval: int, tokens: Sequence[Sequence[int]] | None = None) -> list[torch.Tensor | None] | None:
        """The teacher states this run saved with the interval, one entry per training example
        (None where it had none); None without a file of this run's. ``tokens``: the tokens each
        example's states must have been computed on (its ids but the last); an entry whose recorded
        digest differs comes back None. A file saved without digests is taken as it is."""
        path = self.states_path(interval)
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                if self.run_id is not None and meta.get("run_id") != self.run_id:
                    return None  # another run's: its targets are not this interval's
                states: list[torch.Tensor | None] = [None] * int(meta["examples"])
                for key in f.keys():
                    states[int(key)] = f.get_tensor(key)
                digests = json.loads(meta["tokens"]) if "tokens" in meta else None
        except Exception as e:  # a torn or foreign file: say which, and how to go on
            raise ValueError(f"{path}: cannot read the interval's teacher states ({e}); delete the file to "
                             "have the teacher run in the training step instead") from e
        if tokens is not None and digests is not None and len(tokens) == len(states) == len(digests):
            stale = [i for i, h in enumerate(states) if h is not None and digests[i] != tokens_digest(tokens[i])]
            for i in stale:
                states[i] = None
            if stale:
                log.warning("%s: the teacher states of %d of %d examples were computed on other tokens than the "
                            "interval's rows give now (did the tokenizer change?); the teacher runs in the "
                            "training step for those", path, len(stale), len(states))
        return states

    def kept(self, interval: int) -> tuple[list[dict[str, Any]], dict[str, Any], list | None] | None:
        """The interval's rows, state and teacher states kept in memory (no run_dir), if it is
        the one kept."""
        if self.rows_path(interval) is None and self._kept is not None and self._kept[0] == interval:
            return self._kept[1], self._kept[2], self._kept[3]
        return None

    def missing(self, interval: int) -> str:
        """Why the data of an interval this run already paid for is not there (for an error)."""
        path = self.rows_path(interval)
        return f"its data {path} is missing" if path is not None else "there is no run_dir that kept its data"

    def save(self, interval: int, rows: list[dict[str, Any]], state: dict[str, Any],
             states: Sequence[torch.Tensor | None] | None = None,
             tokens: Sequence[Sequence[int]] | None = None) -> None:
        """Write the interval (its teacher states, then its state with the run id, then its rows),
        or keep it in memory. ``states``: one entry per training example of ``rows``, or None;
        ``tokens``: the tokens each entry was computed on, recorded as digests (``load_states``)."""
        path, state_path = self.rows_path(interval), self.state_path(interval)
        if path is not None and state_path is not None:
            self._save_states(interval, states, tokens)
            # The state first: an interval file without its state is refused on resume, a state
            # without its interval file is simply regenerated.
            write_json_atomic(state_path, {**state, "run_id": self.run_id})
            write_jsonl_atomic(path, rows)
        else:
            self._kept = (interval, rows, state, None if states is None else list(states))

    def _save_states(self, interval: int, states: Sequence[torch.Tensor | None] | None,
                     tokens: Sequence[Sequence[int]] | None = None) -> None:
        path = self.states_path(interval)
        assert path is not None
        if states is None or all(h is None for h in states):
            path.unlink(missing_ok=True)  # a file an earlier run left is not this interval's
            return
        from safetensors.torch import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_sibling(path)
        save_file({str(i): h.contiguous() for i, h in enumerate(states) if h is not None}, str(tmp),
                  metadata={"run_id": str(self.run_id), "examples": str(len(states)),
                            **({} if tokens is None else {"tokens": json.dumps([tokens_digest(t) for t in tokens])})})
        with open(tmp, "rb") as fh:  # the data on disk before the rename, as write_text_atomic does
            os.fsync(fh.fileno())
        os.replace(tmp, path)
