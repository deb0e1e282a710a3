"""Task cards and task utility: the downstream task the student is distilled for.

A task card (YAML) describes the task as the requirement identifier sees it (description,
input/output format, exemplars, an optional hand-set requirement vector) and points at dev and
test JSONL splits next to it. :func:`evaluate_task` measures the student's utility on a split,
0-100, with one of four evaluation types:

* ``exact_match`` (GSM8K style): greedy chat-formatted generation, the final answer is the
  number after ``####`` / ``Answer:`` or else the last number, compared with the gold answer.
  Rows: ``question``, ``answer``.
* ``multiple_choice`` (MMLU/ARC style): the choice with the highest log-likelihood after the
  chat-formatted question wins (``acc``; ``acc_norm`` divides by choice length in tokens).
  Rows: ``question``, ``choices`` (list), ``gold`` (index).
* ``pass_at_1`` (HumanEval style): one greedy completion per problem, run with its tests in a
  separate ``python -I`` process in a temporary directory with a stripped environment, a time
  limit, a memory limit and sockets disabled; hangs and crashes count as failures.
  Rows: ``prompt``, ``test``, ``entry_point``.
* ``fidelity`` (the embedded default, docs/method.md): the probes' linear fidelity,
  ``100 * (1 + mean per-token log-prob / 20)`` clipped to [0, 100], of the reference answer
  after the prompt, plus exact greedy agreement. Rows: ``question``,
  ``answer``. Any card can be scored this way against the teacher's cached greedy answers
  (:func:`task_references`, then ``evaluate_task(..., references=...)``).

A card may instead take its rows from an lm-eval task (``lm_eval: {task: gsm8k, dev_split:
train, test_split: test}``, :class:`LmEvalSource`): each document becomes a row through the
task's own ``doc_to_text``/``doc_to_target`` (and ``doc_to_choice``), and the card's evaluation
type scores it as above; lm-eval's few-shot context, filters and metrics are not used.

Generation and scoring are batched in torch (``generation.HFTeacher`` greedy,
``scoring.score_continuations``) rather than through lm-eval: task data is small and
per-card, and one code path serves probes and tasks.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, validate_distribution
from read_lightning.core.checks import check_number
from read_lightning.core.jsonl import read_jsonl
from read_lightning.evaluation.answers import answers_match, extract_code
from read_lightning.evaluation.probes import cached_teacher_answers, reference_target
from read_lightning.evaluation.sandbox import run_python
from read_lightning.evaluation.scoring import fidelity_score, preserved_state, score_continuations
from read_lightning.teachers.generation import HFTeacher, chat_prompt_ids

__all__ = [
    "EVALUATION_TYPES",
    "TASK_DATA_DIR",
    "LmEvalSource",
    "TaskCard",
    "build_program",
    "evaluate_task",
    "list_example_tasks",
    "task_references",
    "verdicts",
]

EVALUATION_TYPES: tuple[str, ...] = ("exact_match", "multiple_choice", "pass_at_1", "fidelity")
TASK_DATA_DIR: Path = Path(str(resources.files("read_lightning") / "resources" / "tasks"))

# Fields every row of a split must have, per evaluation type.
_ROW_FIELDS: dict[str, tuple[str, ...]] = {
    "exact_match": ("question", "answer"),
    "multiple_choice": ("question", "choices", "gold"),
    "pass_at_1": ("prompt", "test", "entry_point"),
    "fidelity": ("question", "answer"),
}


def list_example_tasks() -> list[Path]:
    """Card paths of the example tasks shipped with the package (``resources/tasks/*/card.yaml``)."""
    return sorted(TASK_DATA_DIR.glob("*/card.yaml"))


# The card evaluation types that can score an lm-eval task's documents, by its output type.
_LM_EVAL_TYPES: dict[str, tuple[str, ...]] = {
    "generate_until": ("exact_match", "fidelity"),
    "multiple_choice": ("multiple_choice", "fidelity"),
}


@dataclass(frozen=True)
class LmEvalSource:
    """A card's dev and test rows from an lm-eval task (the card's ``lm_eval`` field).

    ``dev_split``/``test_split`` name splits of the task's dataset (GSM8K: ``train`` to develop,
    ``test`` to report); ``dev_limit``/``test_limit`` keep a subset of that many documents drawn
    with ``seed``, the task's name and the split (the same rows in every process). The data
    source keys are those of a probe entry (docs/evaluation.md); a relative ``dataset_path``
    (``./gsm8k``) and ``include_path`` are read from the card's directory.
    """

    task: str
    dev_split: str
    test_split: str
    dev_limit: int | None = None
    test_limit: int | None = None
    train_split: str | None = None
    train_limit: int | None = None
    seed: int = 0
    dataset_path: str | None = None
    dataset_name: str | None = None
    dataset_kwargs: Mapping[str, Any] | None = None
    include_path: tuple[str, ...] = ()

    @classmethod
    def parse(cls, raw: Any, card_dir: Path, where: str) -> LmEvalSource:
        """Validate the card's ``lm_eval`` mapping; errors start with ``where`` and name the key."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: must be a mapping with task, dev_split and test_split, got {raw!r}")
        accepted = [f.name for f in fields(cls)]
        unknown = sorted(set(raw) - set(accepted))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown!r}; accepted: {accepted!r}")
        for key in ("task", "dev_split", "test_split"):
            if not isinstance(raw.get(key), str) or not raw[key]:
                raise ValueError(f"{where}: {key!r} must be a non-empty string, got {raw.get(key)!r}")
        if raw["dev_split"] == raw["test_split"]:
            raise ValueError(f"{where}: dev_split and test_split are both {raw['dev_split']!r}; the rows developed on "
                             "would be the rows reported")
        if raw.get("train_split") is not None and (not isinstance(raw["train_split"], str) or not raw["train_split"]):
            raise ValueError(f"{where}: 'train_split' must be a non-empty string, got {raw['train_split']!r}")
        for key in ("dev_limit", "test_limit", "train_limit"):
            if raw.get(key) is not None:
                check_number(f"{where}: {key}", raw[key], low=1, integer=True)
        check_number(f"{where}: seed", raw.get("seed", 0), integer=True)
        if raw.get("dataset_kwargs") is not None and not isinstance(raw["dataset_kwargs"], Mapping):
            raise ValueError(f"{where}: 'dataset_kwargs' must be a mapping, got {raw['dataset_kwargs']!r}")
        out = dict(raw)
        path = raw.get("dataset_path")
        if isinstance(path, str) and path.startswith(("./", "../")):
            out["dataset_path"] = str((card_dir / path).resolve())
        paths = raw.get("include_path") or []
        paths = [paths] if isinstance(paths, str) else paths
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise ValueError(f"{where}: 'include_path' must be a path or a list of paths, got {raw['include_path']!r}")
        resolved = tuple(str((card_dir / p).expanduser().resolve()) for p in paths)
        for p in resolved:
            if not Path(p).exists():
                raise ValueError(f"{where}: include_path {p!r} does not exist")
        out["include_path"] = resolved
        return cls(**out)

    def rows(self, evaluation: str, where: str) -> dict[str, list[dict[str, Any]]]:
        """``{"dev": rows, "test": rows}`` in the card's row schema for ``evaluation``.

        Loads the task and its data (no model); refuses an unknown task (with close matches), a
        group, an output type ``evaluation`` cannot score, a missing split and a limit larger
        than its split. ``train_split`` (optional, with ``train_limit``) adds ``"train"`` rows, task
        inputs to distil on; it may be the dev split, since a task prompt pool drops every dev and
        test prompt. Each row also carries ``source``: ``"<task>/<split>/<document index>"``.
        """
        from read_lightning.evaluation.harness import TaskProbe, load_task, seeded_subset

        spec = TaskProbe(task=self.task, dataset_path=self.dataset_path, dataset_name=self.dataset_name,
                         dataset_kwargs=self.dataset_kwargs)
        leaves = load_task(spec, self.include_path, where=f" ({where})")
        if len(leaves) != 1:
            names = [t.config.task for t in leaves]
            raise ValueError(f"{where}: {self.task!r} is a group of {len(names)} tasks {names[:5]!r}; name one task")
        task = leaves[0]
        output = task.config.output_type
        if evaluation not in _LM_EVAL_TYPES.get(output, ()):
            can = [t for t, types in _LM_EVAL_TYPES.items() if evaluation in types]
            raise ValueError(f"{where}: lm-eval task {self.task!r} is {output!r}; evaluation {evaluation!r} scores "
                             f"{can!r} tasks")
        splits = list(task.dataset)
        out = {}
        roles = [("dev", self.dev_split, self.dev_limit), ("test", self.test_split, self.test_limit)]
        if self.train_split is not None:
            roles.append(("train", self.train_split, self.train_limit))
        for role, split, limit in roles:
            if split not in splits:
                raise ValueError(f"{where}: lm-eval task {self.task!r} has no split {split!r} ({role}_split); "
                                 f"it has {splits!r}")
            docs = task.dataset[split]
            if task.config.process_docs is not None:
                docs = task.config.process_docs(docs)
            n = len(docs)
            if limit is not None and limit > n:
                raise ValueError(f"{where}: {role}_limit {limit} is larger than the {split!r} split of "
                                 f"{self.task!r} ({n} documents)")
            chosen = range(n) if limit is None else seeded_subset(n, limit, f"{self.seed}:{self.task}:{split}")
            out[role] = [{**_doc_row(task, docs[i], evaluation, f"{where}: {split} document {i}"),
                          "source": f"{self.task}/{split}/{i}"} for i in chosen]
        return out


def _doc_row(task: Any, doc: Mapping[str, Any], evaluation: str, where: str) -> dict[str, Any]:
    """One lm-eval document as a card row, through the task's own prompt and target functions."""
    text, target = task.doc_to_text(doc), task.doc_to_target(doc)
    if not isinstance(text, str):
        raise ValueError(f"{where}: doc_to_text gives {text!r}, not a prompt; this task cannot be a card")
    if task.config.output_type == "multiple_choice":
        choices = [str(c) for c in task.doc_to_choice(doc)]
        gold = choices.index(target) if isinstance(target, str) and target in choices else target
        if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(choices):
            raise ValueError(f"{where}: doc_to_target gives {target!r}, not one of {len(choices)} choices")
        row: dict[str, Any] = {"question": text, "choices": choices, "gold": gold}
        return {**row, "answer": choices[gold]} if evaluation == "fidelity" else row
    if isinstance(target, (list, tuple)):
        raise ValueError(f"{where}: doc_to_target gives {len(target)} gold answers; a card scores one")
    return {"question": text, "answer": str(target)}


@dataclass
class TaskCard:
    """One downstream task: what it is, how it is scored, where its data lives.

    ``dev``/``test`` are resolved against the card's directory on :meth:`load`; a card with
    ``lm_eval`` (:class:`LmEvalSource`) has neither and reads its rows from that task. ``requirement``
    is normalised to a distribution over ``capabilities``. ``train`` (optional) is a JSONL of task
    inputs to distil on (the input field only; gold is not needed): the data module's
    ``task_prompts`` draws from it, and none of its rows may be a dev or test row. ``instruction`` (optional) is put
    before every input in the user message; ``max_new_tokens`` bounds generation and
    ``timeout_s`` bounds each pass@1 program.
    """

    name: str
    description: str
    evaluation: str
    dev: Path | None = None
    test: Path | None = None
    train: Path | None = None
    input_format: str = ""
    output_format: str = ""
    exemplars: list[dict[str, Any]] = field(default_factory=list)
    requirement: dict[str, float] | None = None
    instruction: str = ""
    max_new_tokens: int = 96
    timeout_s: float = 5.0
    lm_eval: LmEvalSource | None = None
    path: Path | None = None
    # the rows of an lm_eval card, per split, read once
    _lm_eval_rows: dict[str, list[dict[str, Any]]] | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def load(
        cls, path: str | os.PathLike, capabilities: Sequence[str] = DEFAULT_CAPABILITIES, *, check_data: bool = True
    ) -> TaskCard:
        """Read and validate a card; errors name the file and the offending field.

        With ``check_data`` (default) both splits are parsed too, so a corrupt row fails here
        (naming file and line) rather than in the middle of a run; an ``lm_eval`` card loads its
        task and data here.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"task card not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: malformed YAML: {err}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: a task card must be a YAML mapping, got {type(raw).__name__}")
        allowed = {f.name for f in fields(cls) if f.init} - {"path"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {unknown!r}; allowed: {sorted(allowed)!r}")
        from_task = raw.get("lm_eval") is not None
        splits = () if from_task else ("dev", "test")
        missing = [k for k in ("name", "description", "evaluation", *splits) if raw.get(k) in (None, "")]
        if missing:
            raise ValueError(f"{path}: missing required field(s) {missing!r}")
        if raw["evaluation"] not in EVALUATION_TYPES:
            raise ValueError(
                f"{path}: field 'evaluation' must be one of {list(EVALUATION_TYPES)!r}, got {raw['evaluation']!r}"
            )
        if from_task:
            both = [k for k in ("dev", "test") if raw.get(k) is not None]
            if both:
                raise ValueError(f"{path}: field(s) {both!r} and 'lm_eval' both give rows; keep one")
            if raw["evaluation"] == "pass_at_1":
                raise ValueError(f"{path}: evaluation 'pass_at_1' cannot score an lm-eval task's documents; "
                                 f"use one of {sorted({t for ts in _LM_EVAL_TYPES.values() for t in ts})!r}")
            raw["lm_eval"] = LmEvalSource.parse(raw["lm_eval"], path.parent, f"{path}: field 'lm_eval'")
        if not from_task and raw.get("train") not in (None, ""):
            splits = (*splits, "train")
        for split in splits:
            resolved = (path.parent / str(raw[split])).resolve()
            if not resolved.is_file():
                raise FileNotFoundError(f"{path}: field {split!r} points to a missing file: {resolved}")
            raw[split] = resolved
        exemplars = raw.get("exemplars") or []
        if not isinstance(exemplars, list) or not all(isinstance(e, dict) for e in exemplars):
            raise ValueError(f"{path}: field 'exemplars' must be a list of mappings (e.g. input/output)")
        raw["exemplars"] = exemplars
        if raw.get("requirement") is not None:
            if not isinstance(raw["requirement"], Mapping):
                raise ValueError(f"{path}: field 'requirement' must be a mapping capability -> weight")
            raw["requirement"] = validate_distribution(
                raw["requirement"], capabilities, name=f"{path}: field 'requirement'", normalise=True
            )
        for key, kind in (("max_new_tokens", int), ("timeout_s", (int, float))):
            if key in raw and (not isinstance(raw[key], kind) or isinstance(raw[key], bool) or raw[key] <= 0):
                raise ValueError(f"{path}: field {key!r} must be a positive number, got {raw[key]!r}")
        card = cls(**raw, path=path)
        if check_data:
            card.rows("dev")
            card.rows("test")
        return card

    def rows(self, split: str = "dev") -> list[dict[str, Any]]:
        """The validated rows of ``split``: "dev", "test", or "train" (inputs only, where the card has one)."""
        if split not in ("dev", "test", "train"):
            raise ValueError(f"split must be 'dev', 'test' or 'train', got {split!r}")
        if split == "train" and not self.has_train:
            where = "its lm_eval source has no train_split" if self.lm_eval is not None else "it has no 'train' field"
            raise ValueError(f"task card {self.name!r} has no train split: {where}")
        if self.lm_eval is not None:
            if self._lm_eval_rows is None:
                self._lm_eval_rows = self.lm_eval.rows(self.evaluation, f"{self.path or self.name}: field 'lm_eval'")
            split_name = getattr(self.lm_eval, f"{split}_split")
            file = f"lm-eval task {self.lm_eval.task!r}, split {split_name!r}"
            rows = [dict(r) for r in self._lm_eval_rows[split]]  # copies: the cache stays as read
        else:
            file = getattr(self, split)
            # A train split holds inputs only: the teacher answers them, so gold is optional.
            required = _ROW_FIELDS[self.evaluation][:1] if split == "train" else _ROW_FIELDS[self.evaluation]
            rows = read_jsonl(file, required=required)
        if not rows:
            raise ValueError(f"{file}: split {split!r} of task {self.name!r} has no rows")
        if self.evaluation == "multiple_choice" and split != "train":
            for i, row in enumerate(rows):
                ok = isinstance(row["choices"], list) and len(row["choices"]) >= 2
                if not ok or not isinstance(row["gold"], int) or not 0 <= row["gold"] < len(row["choices"]):
                    raise ValueError(f"{file}: row {i + 1}: needs a list of >= 2 'choices' and a valid 'gold' index")
        return rows

    @property
    def has_train(self) -> bool:
        """Whether the card has a train split: task inputs to distil on (``train`` or ``lm_eval.train_split``)."""
        return self.train is not None or (self.lm_eval is not None and self.lm_eval.train_split is not None)

    def user_message(self, row: Mapping[str, Any]) -> str:
        """The user turn for ``row``: the optional instruction, then the input."""
        body = str(row["prompt"] if self.evaluation == "pass_at_1" else row["question"])
        return f"{self.instruction.strip()}\n\n{body}" if self.instruction.strip() else body


# --------------------------------------------------------------------------- pass@1


def build_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """Prompt + completion + tests, HumanEval style.

    Chat models usually restate the whole function; if the completion defines ``entry_point``
    it follows the prompt when the prompt is code (its imports and helpers stay defined, the
    restated function replaces the stub) and stands alone when the prompt is prose; otherwise
    it continues the prompt. ``check(entry_point)`` is called when the tests define ``check``.
    """
    code = extract_code(completion)
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.M):
        body = f"{prompt}\n{code}" if _is_python(prompt) else code
    else:
        body = prompt + code
    call = f"\n\ncheck({entry_point})\n" if re.search(r"^def\s+check\s*\(", test, re.M) else "\n"
    return f"{body}\n\n{test}{call}"


def _is_python(text: str) -> bool:
    try:
        compile(text, "<prompt>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


# --------------------------------------------------------------------------- evaluation


def verdicts(card: TaskCard, rows: Sequence[Mapping[str, Any]], answers: Sequence[str]) -> list[str]:
    """pass@1 verdicts ("passed", "failed", "timeout") of ``answers`` to the code ``rows``."""
    programs = [build_program(r["prompt"], a, r["test"], r["entry_point"]) for a, r in zip(answers, rows)]
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda p: run_python(p, timeout_s=card.timeout_s), programs))


def task_references(
    card: TaskCard,
    teacher: Any,
    tokenizer: Any,
    cache_path: str | os.PathLike,
    split: str = "dev",
    *,
    max_new_tokens: int | None = None,
    batch_size: int = 16,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The teacher's greedy answers to the rows of ``split`` (the first ``limit``, default all),
    generated once and cached.

    ``teacher``: an in-process model with its ``tokenizer``, or any ``Teacher`` backend (see
    :func:`cached_teacher_answers`). For the embedded default, where utility is fidelity to the
    teacher: pass the result to :func:`evaluate_task` as ``references``. Rows carry ``answer``
    and ``complete``.
    """
    rows = card.rows(split)[:limit]
    prompts = {(f"task:{card.name}:{split}", str(i)): card.user_message(r) for i, r in enumerate(rows)}
    got = cached_teacher_answers(
        teacher,
        tokenizer,
        prompts,
        cache_path,
        max_new_tokens=max_new_tokens or card.max_new_tokens,
        batch_size=batch_size,
    )
    return [got[k] for k in prompts]


def evaluate_task(
    card: TaskCard,
    model: torch.nn.Module,
    tokenizer: Any,
    split: str = "dev",
    limit: int | None = None,
    batch_size: int = 8,
    references: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, float]:
    """Task utility of ``model`` on ``split`` of ``card``: ``{"utility": 0-100, "n": ..., ...}``.

    Greedy and deterministic; the model comes back in its train/eval modes with every RNG
    state unchanged. Extra keys per type: ``exact_match``; ``acc``/``acc_norm``;
    ``pass_at_1``/``timeouts``/``failures``; ``fidelity``/``agreement``/``logprob``.
    With ``references`` (one row per split row, or per scored row; e.g. from :func:`task_references`), utility is
    fidelity to those answers whatever the card's evaluation type (the embedded default).
    """
    rows = card.rows(split)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be None or >= 1, got {limit}")
        scored = rows[:limit]
    else:
        scored = rows
    # references for the whole split, or for just the rows scored (task_references with the same limit)
    if references is not None and len(references) not in (len(rows), len(scored)):
        raise ValueError(f"{len(references)} references for {len(rows)} rows of {card.name!r}/{split}")
    rows = scored
    messages = [card.user_message(r) for r in rows]
    with preserved_state(model):
        if references is not None or card.evaluation == "fidelity":
            refs = references[: len(rows)] if references is not None else [{"answer": r["answer"]} for r in rows]
            eos = tokenizer.eos_token or ""
            targets = [reference_target(str(r["answer"]), bool(r.get("complete", True)), eos) for r in refs]
            return _fidelity(model, tokenizer, messages, targets, batch_size)
        if card.evaluation in ("exact_match", "pass_at_1"):
            # pass@1 keeps the answer's leading indentation: a completion that continues the
            # prompt's function body starts with it
            teacher = HFTeacher(model, tokenizer, batch_size=batch_size, max_new_tokens=card.max_new_tokens,
                                temperature=0.0, strip=card.evaluation == "exact_match")
            answers = [g.text for g in teacher.generate(messages)]
            if card.evaluation == "exact_match":
                hits = [answers_match(a, str(r["answer"])) for a, r in zip(answers, rows)]
                em = 100.0 * sum(hits) / len(rows)
                return {"utility": em, "exact_match": em, "n": float(len(rows))}
            status = verdicts(card, rows, answers)
            passed = 100.0 * status.count("passed") / len(rows)
            return {
                "utility": passed,
                "pass_at_1": passed,
                "timeouts": float(status.count("timeout")),
                "failures": float(status.count("failed")),
                "n": float(len(rows)),
            }
        contexts = [chat_prompt_ids(tokenizer, m) for m in messages]
        return _multiple_choice(model, tokenizer, contexts, rows, batch_size)


def _fidelity(
    model: torch.nn.Module, tokenizer: Any, messages: list[str], targets: list[str], batch_size: int
) -> dict[str, float]:
    """Fidelity to reference targets, scored like the probes (prompt and target encoded apart)."""
    contexts = [chat_prompt_ids(tokenizer, m) for m in messages]
    conts = [_encode(tokenizer, t) or [tokenizer.eos_token_id] for t in targets]
    scores = score_continuations(model, contexts, conts, batch_size=batch_size)
    logprob = sum(s.mean_logprob for s in scores) / len(scores)
    fid = fidelity_score(logprob)
    agree = 100.0 * sum(s.greedy for s in scores) / len(scores)
    return {"utility": fid, "fidelity": fid, "agreement": agree, "logprob": logprob, "n": float(len(scores))}


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _multiple_choice(
    model: torch.nn.Module, tokenizer: Any, contexts: list[list[int]], rows: list[dict[str, Any]], batch_size: int
) -> dict[str, float]:
    """Score every (question, choice) pair in one batched pass; pick the most likely choice."""
    pair_ctx, pair_cont, owner = [], [], []
    for i, (ctx, row) in enumerate(zip(contexts, rows)):
        for choice in row["choices"]:
            pair_ctx.append(ctx)
            pair_cont.append(_encode(tokenizer, str(choice)) or [tokenizer.eos_token_id])
            owner.append(i)
    scores = score_continuations(model, pair_ctx, pair_cont, batch_size=batch_size)
    per_row: list[list[Any]] = [[] for _ in rows]
    for i, s in zip(owner, scores):
        per_row[i].append(s)
    acc = acc_norm = 0
    for row, ss in zip(rows, per_row):
        acc += _argmax([s.logprob for s in ss]) == row["gold"]
        acc_norm += _argmax([s.mean_logprob for s in ss]) == row["gold"]
    n = len(rows)
    return {"utility": 100.0 * acc / n, "acc": 100.0 * acc / n, "acc_norm": 100.0 * acc_norm / n, "n": float(n)}


def _argmax(values: Sequence[float]) -> int:
    best = max(range(len(values)), key=lambda i: (values[i], -i))  # ties go to the first choice
    return best if not math.isnan(values[best]) else 0
