"""Capability probes: the student's capability profile s, one 0-100 score per capability.

The probe suite ships with the package (``resources/probes/``): one lm-eval task per capability, each a
YAML config plus a JSONL file of hand-written items (``id``, ``prompt``, ``answer``). The items
are written apart from the training templates, so the probe never scores a prompt the student
was trained on.

What is scored
--------------
Every item is one lm-eval ``loglikelihood`` request: the chat-formatted prompt as context and a
*target* answer followed by the end-of-turn token as continuation. Targets are either

* ``"gold"``: the reference answers shipped in the JSONL, or
* teacher references: the teacher's greedy answers, produced once by
  :meth:`CapabilityProbe.build_references` and cached as JSONL.

On a weak teacher (the embedded SmolLM2-135M) the teacher is the ceiling, so the profile is
measured as *fidelity to the teacher* (docs/method.md, "Measuring on the embedded default"). Per
capability the probe reports

* ``fidelity`` (primary): ``100 * (1 + mean log-prob / 20)``, clipped to [0, 100]
  (:func:`fidelity_score`): linear in the mean per-token log-probability the student gives each
  target, averaged over items (each item weighs the same, whatever its length). 100 means the
  student puts all its mass on the target, 0 means 20 nats per token or worse; it is smooth in
  the weights, so small training steps move it, and comparable across epochs because the items
  and targets are fixed.
* ``agreement``: the share (0-100) of items whose whole target, end-of-turn included, is the
  student's greedy continuation: exact agreement of greedy answers, read off the same forward
  pass (teacher-forced argmax everywhere on the target equals free-running greedy decoding
  reproducing it and then stopping). With gold targets this is exact-match accuracy.
* ``logprob``: the mean per-token log-probability itself, and ``n``: the number of items.

Teacher answers cut at the token budget get no end-of-turn, so the student is not asked to stop
where the teacher did not. :func:`fidelity_score` says why the map is linear, not
``100 * exp(.)``; where the embedded default's student and teacher sit on it is in
``docs/results.md`` ("Measurements the code relies on"). ``logprob`` in ``last_details`` is the
raw measurement.

Chat formatting
---------------
The student trains on ``generation.chat_prompt_ids(tokenizer, prompt)``. The probe pre-renders
the same conversation to a string with ``tokenizer.apply_chat_template(..., tokenize=False)``
and writes it into the task data as the context, instead of asking lm-eval to apply the chat
template: lm-eval's chat path rebuilds messages (few-shot merging, target delimiters, system
instructions) and its output is not guaranteed to tokenize like the training prompts. Pre-rendered
contexts are checked token by token against ``chat_prompt_ids`` when a tokenizer is first seen;
a mismatch raises, naming the item.

Cost
----
lm-eval's stock HF wrapper projects every position of every sequence onto the vocabulary. With
SmolLM2's 49k-token head that projection costs as much as the ten kept layers of the default
student, and only the target positions are needed, so :class:`_ProbeLM` (an ``HFLM``) replaces
the scoring step with :func:`score_continuations`, which asks the model for the logits of the
target positions only (``logits_to_keep``). It also encodes context and target separately, the
way the student's training pairs are built, where lm-eval would move the newline that ends the
chat prompt into the target. Task loading, requests and metrics stay lm-eval's.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, check_capabilities
from read_lightning.core.checks import check_number
from read_lightning.core.jsonl import read_jsonl, write_jsonl_atomic
from read_lightning.evaluation.scoring import (
    fidelity_score,
    preserved_state,
    render_chat_prompt,
    score_continuations,
)
from read_lightning.teachers.generation import HFTeacher, chat_prompt_ids

__all__ = [
    "CapabilityProbe",
    "cached_teacher_answers",
    "reference_target",
    "PROBE_DATA_DIR",
    "probe_capabilities",
    "probe_file",
    "probe_items",
    "process_probe_results",
]


PROBE_DATA_DIR: Path = Path(str(resources.files("read_lightning") / "resources" / "probes"))
_TASK_PREFIX = "read_probe_"
_REFERENCE_FORMAT = 1  # bump when the cached reference rows change meaning

log = logging.getLogger(__name__)


def process_probe_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, float]:
    """lm-eval ``process_results`` for a probe item: per-token log-prob and greedy agreement.

    ``results[0]`` is the ``(logprob, is_greedy)`` pair of the item's one loglikelihood request;
    ``doc["n_target_tokens"]`` is the continuation length as the evaluating wrapper tokenizes it.
    """
    ll, is_greedy = results[0][:2]
    return {"logprob": float(ll) / max(1, int(doc["n_target_tokens"])), "agreement": float(is_greedy)}


# --------------------------------------------------------------------------- probe items


def probe_file(capability: str, suffix: str, data_dir: str | os.PathLike | None = None) -> Path:
    """``<capability><suffix>`` in ``data_dir`` if it is there, else in the packaged suite.

    Why the fallback: a user who adds one capability writes its files only, not copies of the
    packaged eight.
    """
    if data_dir is not None and (Path(data_dir) / f"{capability}{suffix}").is_file():
        return Path(data_dir) / f"{capability}{suffix}"
    return PROBE_DATA_DIR / f"{capability}{suffix}"


def probe_capabilities(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Capabilities with a probe set: the packaged ones, then those in ``data_dir`` (sorted)."""
    extra = sorted(p.stem for p in Path(data_dir).glob("*.jsonl")) if data_dir is not None else []
    return list(DEFAULT_CAPABILITIES) + [c for c in extra if c not in DEFAULT_CAPABILITIES]


def probe_items(capability: str, data_dir: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The hand-written items of one capability: dicts with ``id``, ``prompt``, ``answer``.

    Read from ``data_dir`` when it holds ``<capability>.jsonl``, else from the packaged suite.
    """
    path = probe_file(capability, ".jsonl", data_dir)
    if not path.is_file():
        where = f"{data_dir} or the packaged suite" if data_dir is not None else "the packaged suite"
        raise ValueError(f"no probe set for capability {capability!r}: no {capability}.jsonl in {where}")
    rows = read_jsonl(path, required=("id", "prompt", "answer"))
    if not rows:
        raise ValueError(f"empty probe set for capability {capability!r}: {path} has no items")
    ids = [r["id"] for r in rows]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"{path}: duplicate item ids {dupes!r}")
    return rows


def _tokenizer_key(tokenizer: Any) -> str:
    parts = [
        type(tokenizer).__name__,
        str(getattr(tokenizer, "name_or_path", "")),
        str(len(tokenizer)),
        str(getattr(tokenizer, "chat_template", "")),
        str(tokenizer.eos_token),
    ]
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:12]


@contextlib.contextmanager
def _quiet_lm_eval() -> Iterator[None]:
    """Silence lm-eval's per-call warnings and progress bars, and restore them afterwards."""
    import lm_eval.api.task as lm_task
    from datasets.utils import logging as ds_logging

    loggers = [logging.getLogger(n) for n in ("lm_eval", "datasets")]
    levels = [lg.level for lg in loggers]
    bars_were_on = ds_logging.is_progress_bar_enabled()
    task_tqdm = lm_task.tqdm
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    ds_logging.disable_progress_bar()
    # "Building contexts" bars are unconditional in lm-eval; mute them only for this call.
    lm_task.tqdm = functools.partial(task_tqdm, disable=True)
    try:
        yield
    finally:
        lm_task.tqdm = task_tqdm
        if bars_were_on:
            ds_logging.enable_progress_bar()
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _probe_lm_class() -> type:
    """``HFLM`` with the scoring step of :func:`score_continuations` (imported lazily)."""
    from lm_eval.models.huggingface import HFLM

    class _ProbeLM(HFLM):
        def loglikelihood(self, requests: list, disable_tqdm: bool = True) -> list[tuple[float, bool]]:
            return super().loglikelihood(requests, disable_tqdm=True)

        def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
            # lm-eval moves trailing whitespace of the context into the continuation and splits
            # a joint encoding; right for plain-text prompts, wrong for a chat prompt ending in
            # the assistant header's newline. Encode the two parts apart, as training does
            # (prompt ids from the chat template, then answer ids).
            return self.tok_encode(context), self.tok_encode(continuation, add_special_tokens=False)

        def _loglikelihood_tokens(
            self, requests: list, disable_tqdm: bool = False, override_bs: int | None = None
        ) -> list[tuple[float, bool]]:
            # requests: [((context, continuation), context_ids, continuation_ids), ...]
            scores = score_continuations(
                self.model,
                [r[1] for r in requests],
                [r[2] for r in requests],
                batch_size=int(override_bs or self.batch_size),
                max_length=self.max_length,
            )
            return [(s.logprob, s.greedy) for s in scores]

    return _ProbeLM


def cached_teacher_answers(
    teacher: Any,
    tokenizer: Any,
    prompts: Mapping[tuple[str, str], str],
    cache_path: str | os.PathLike,
    *,
    max_new_tokens: int = 32,
    batch_size: int = 16,
) -> dict[tuple[str, str], dict[str, Any]]:
    """The teacher's greedy answers to ``prompts`` (keyed ``(group, id)``), cached in a JSONL file.

    ``teacher`` is an in-process model (``torch.nn.Module``, with its ``tokenizer``) or any
    ``Teacher`` backend (``generate(prompts, max_new_tokens=...)``: vLLM, an HTTP server; its
    ``tokenizer`` may then be None). A cached row is reused when its prompt text and settings
    (``max_new_tokens``, tokenizer) still match; only the rest is generated, in one greedy pass,
    and the file is rewritten atomically (rows for other keys are kept, so one cache serves
    several users). Each row holds ``answer``, ``complete`` (ended before the token budget) and
    ``num_tokens``. The teacher's modes, sampling settings and call counter, and the global RNGs,
    are left as they were.
    """
    cache_path = Path(cache_path)
    in_process = isinstance(teacher, torch.nn.Module)
    if not in_process and not callable(getattr(teacher, "generate", None)):
        raise TypeError(
            f"teacher must be a torch model or have generate(prompts, max_new_tokens=...), got {type(teacher).__name__}"
        )
    if in_process and tokenizer is None:
        raise ValueError("an in-process teacher model needs its tokenizer")
    tok = tokenizer if tokenizer is not None else getattr(teacher, "tokenizer", None)
    key = _tokenizer_key(tok) if tok is not None else f"{type(teacher).__name__}:{getattr(teacher, 'model', '')}"
    settings = {"max_new_tokens": max_new_tokens, "tokenizer": key}
    cached: dict[tuple[str, str], dict[str, Any]] = {}
    if cache_path.is_file():
        for row in read_jsonl(cache_path, required=("capability", "id", "prompt", "answer", "settings")):
            cached[(row["capability"], row["id"])] = row
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    todo: list[tuple[str, str]] = []
    for key, prompt in prompts.items():
        hit = cached.get(key)
        if hit and hit["prompt"] == prompt and hit["settings"] == settings and hit.get("format") == _REFERENCE_FORMAT:
            rows[key] = hit
        else:
            todo.append(key)
    if todo:
        log.info("generating %d teacher references (cache: %s)", len(todo), cache_path)
        if in_process:
            with preserved_state(teacher):
                greedy = HFTeacher(teacher, tokenizer, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                   temperature=0.0)
                gens = greedy.generate([prompts[k] for k in todo])
        else:
            with _greedy(teacher):
                gens = teacher.generate([prompts[k] for k in todo], max_new_tokens=max_new_tokens)
            if len(gens) != len(todo):
                raise ValueError(f"the teacher returned {len(gens)} answers for {len(todo)} reference prompts")
        for key, gen in zip(todo, gens):
            rows[key] = {
                "capability": key[0],
                "id": key[1],
                "prompt": prompts[key],
                "answer": gen.text,
                # ended its turn itself; backends that cannot tell: it stopped short of the budget
                "complete": gen.finished if gen.finished is not None else gen.num_tokens < max_new_tokens,
                "num_tokens": gen.num_tokens,
                "settings": settings,
                "format": _REFERENCE_FORMAT,
            }
        merged = {**cached, **rows}
        write_jsonl_atomic(cache_path, merged.values())  # a crash never leaves half a cache
    return rows


@contextlib.contextmanager
def _greedy(teacher: Any) -> Iterator[None]:
    """Make a ``Teacher`` backend answer greedily, then put back its ``temperature`` and its call
    counter (``calls`` seeds the sampling of the training data: references must not move it)."""
    saved = {name: getattr(teacher, name) for name in ("temperature", "calls") if hasattr(teacher, name)}
    if "temperature" in saved:
        teacher.temperature = 0.0
    else:
        log.warning("%s has no temperature setting; its references are whatever it samples", type(teacher).__name__)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(teacher, name, value)


def reference_target(answer: str, complete: bool, eos: str) -> str:
    """The continuation scored for a reference answer: end-of-turn appended if the answer ended.

    An answer with no visible text (only special tokens were generated) scores stopping.
    """
    return answer + eos if complete or not answer else answer


# --------------------------------------------------------------------------- the probe


class CapabilityProbe:
    """Scores a model on the packaged probe suite; one lm-eval task per capability.

    Args:
        capabilities: which capabilities to probe (default: all of ``DEFAULT_CAPABILITIES``).
        batch_size: sequences per forward pass, handed to the lm-eval HF wrapper.
        limit: score only the first ``limit`` items of each capability (cost control).
        references: path of a teacher-reference JSONL written by :meth:`build_references`; the
            probe then scores fidelity to those answers. ``None`` scores the gold answers until
            :meth:`build_references` is called.
        data_dir: directory of user probe sets: ``<capability>.jsonl`` (items) and optionally
            ``<capability>.yaml`` (an lm-eval task config; default: the packaged shared config).
            A capability without files there is read from the packaged suite.
        work_dir: where the rendered task YAML/JSONL and the datasets cache go (default: a
            temporary directory removed with the probe); point it into the run directory to keep
            them for inspection.

    ``evaluate(model, tokenizer)`` is a pure call on a model: no distributed logic, model modes
    and RNG states restored, nothing downloaded.
    """

    def __init__(
        self,
        capabilities: Sequence[str] | None = None,
        batch_size: int = 8,
        limit: int | None = None,
        references: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None,
        work_dir: str | os.PathLike | None = None,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise ValueError(f"probe data_dir {str(data_dir)!r} is not a directory")
        if capabilities is None:
            capabilities = list(DEFAULT_CAPABILITIES)
        capabilities = list(capabilities)
        if not capabilities:
            raise ValueError("CapabilityProbe needs at least one capability")
        check_capabilities(capabilities, probe_capabilities(self.data_dir))
        check_number("probe batch_size", batch_size, low=1, integer=True)
        if limit is not None:
            check_number("probe limit", limit, low=1, integer=True)
        self.capabilities = capabilities
        self.batch_size = batch_size
        self.limit = limit
        # Load every probe set now so an empty or broken file fails at construction; with a
        # limit, only the first items exist for this probe (references, rendering, scoring).
        self.items = {c: probe_items(c, self.data_dir)[:limit] for c in capabilities}
        self._work_dir = Path(work_dir) if work_dir is not None else None
        # capability -> item id -> (teacher answer, whether it ended with end-of-turn)
        self._refs: dict[str, dict[str, tuple[str, bool]]] | None = None
        self.reference_source = "gold"
        self._prepared: dict[str, Path] = {}  # tokenizer/reference key -> rendered task dir
        self.last_details: dict[str, dict[str, float]] = {}
        if references is not None:
            self.load_references(references)

    # ------------------------------------------------------------------ references

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            # Removed when the probe is garbage-collected or the interpreter exits.
            self._tmp = tempfile.TemporaryDirectory(prefix="read_probes_")
            self._work_dir = Path(self._tmp.name)
        self._work_dir.mkdir(parents=True, exist_ok=True)
        return self._work_dir

    def build_references(
        self,
        teacher: Any,
        tokenizer: Any,
        cache_path: str | os.PathLike,
        *,
        max_new_tokens: int = 32,
        batch_size: int = 16,
    ) -> dict[str, dict[str, str]]:
        """Generate (once) the teacher's greedy answers to every probe prompt and use them as targets.

        ``teacher``: an in-process model with its ``tokenizer``, or any ``Teacher`` backend (vLLM,
        HTTP) asked greedily (see :func:`cached_teacher_answers`). Answers are cached in
        ``cache_path`` (JSONL, one row per item with the prompt it answers and the generation
        settings); a later call, in this run or another, reuses every cached
        row that still matches and generates only what is missing. Answers cut at
        ``max_new_tokens`` are kept without an end-of-turn token, so the probe does not ask the
        student to stop where the teacher did not. ``max_new_tokens`` bounds the probe's cost:
        the weak embedded teacher rambles, and its first 32 tokens carry the answer.
        Returns ``{capability: {item id: answer}}``.
        """
        prompts = {(cap, it["id"]): it["prompt"] for cap, items in self.items.items() for it in items}
        rows = cached_teacher_answers(
            teacher, tokenizer, prompts, cache_path, max_new_tokens=max_new_tokens, batch_size=batch_size
        )
        self._set_references(rows, source=str(cache_path))
        return self.references  # type: ignore[return-value]

    def load_references(self, path: str | os.PathLike) -> dict[str, dict[str, str]]:
        """Use the teacher references cached in ``path`` (every probed item must be there)."""
        rows = {
            (r["capability"], r["id"]): r
            for r in read_jsonl(path, required=("capability", "id", "prompt", "answer"))
        }
        missing = [f"{c}/{it['id']}" for c, items in self.items.items() for it in items if (c, it["id"]) not in rows]
        if missing:
            raise ValueError(f"{path}: no teacher reference for probe items {missing[:5]!r} ({len(missing)} missing)")
        stale = [f"{c}/{it['id']}" for c, items in self.items.items() for it in items
                 if rows[(c, it["id"])]["prompt"] != it["prompt"]]
        if stale:
            raise ValueError(f"{path}: the teacher references for probe items {stale[:5]!r} ({len(stale)} in all) answer "
                             "another prompt than the item's; regenerate them (prepare_references)")
        self._set_references(rows, source=str(path))
        return self.references  # type: ignore[return-value]

    @property
    def references(self) -> dict[str, dict[str, str]] | None:
        """Teacher answers in use, ``{capability: {item id: answer}}``; ``None`` when scoring gold."""
        if self._refs is None:
            return None
        return {c: {i: a for i, (a, _) in refs.items()} for c, refs in self._refs.items()}

    def _set_references(self, rows: Mapping[tuple[str, str], Mapping[str, Any]], source: str) -> None:
        self._refs = {
            cap: {
                it["id"]: (str(rows[(cap, it["id"])]["answer"]), bool(rows[(cap, it["id"])].get("complete", True)))
                for it in items
            }
            for cap, items in self.items.items()
        }
        self.reference_source = source
        self._prepared.clear()

    # ------------------------------------------------------------------ evaluation

    def _target(self, capability: str, item: Mapping[str, Any], eos: str) -> str:
        """The continuation scored for ``item``: the answer, plus end-of-turn if the answer ended."""
        if self._refs is None:
            return str(item["answer"]) + eos
        answer, complete = self._refs[capability][item["id"]]
        return reference_target(answer, complete, eos)

    def _prepare(self, lm: Any, tokenizer: Any) -> Path:
        """Render the suite for this tokenizer into ``work_dir``: YAML + JSONL per capability."""
        key = hashlib.sha1(
            (_tokenizer_key(tokenizer) + self.reference_source + str(self.data_dir)).encode()
        ).hexdigest()[:12]
        if key in self._prepared:
            return self._prepared[key]
        task_dir = self.work_dir / f"tasks_{key}"
        task_dir.mkdir(parents=True, exist_ok=True)
        eos = tokenizer.eos_token or ""
        for cap, items in self.items.items():
            docs = []
            for item in items:
                context = render_chat_prompt(tokenizer, item["prompt"])
                if lm.tok_encode(context) != chat_prompt_ids(tokenizer, item["prompt"]):
                    raise ValueError(
                        f"probe item {cap}/{item['id']}: the rendered chat prompt does not tokenize like "
                        "generation.chat_prompt_ids; the probe would score prompts the student never sees"
                    )
                target = self._target(cap, item, eos)
                _, cont_ids = lm._encode_pair(context, target)
                docs.append(
                    {
                        "id": item["id"],
                        "capability": cap,
                        "prompt": item["prompt"],
                        "context": context,
                        "target": target,
                        "n_target_tokens": len(cont_ids),
                    }
                )
            data_file = task_dir / f"{cap}.jsonl"
            with data_file.open("w", encoding="utf-8") as fh:
                for doc in docs:
                    fh.write(json.dumps(doc, ensure_ascii=False) + "\n")
            base, metadata = probe_file(cap, ".yaml", self.data_dir), []
            if base.parent == PROBE_DATA_DIR:
                # The packaged <capability>.yaml is the stock lm-eval view of the gold answers;
                # the run's probe gets the shared config and the capability's name as metadata.
                base = PROBE_DATA_DIR / "_probe_base.yaml"
                metadata = ["metadata:", "  version: 1", f"  capability: {json.dumps(cap)}"]
            # The runtime task includes the packaged config and only points it at the rendered data.
            (task_dir / f"{cap}.yaml").write_text(
                "\n".join(
                    [
                        f"include: {json.dumps(str(base.resolve()))}",
                        f"task: {_TASK_PREFIX}{cap}",
                        "dataset_path: json",
                        "dataset_kwargs:",
                        f"  data_files: {{test: {json.dumps(str(data_file.resolve()))}}}",
                        f"  cache_dir: {json.dumps(str((task_dir / 'hf_cache').resolve()))}",
                        *metadata,
                        "",
                    ]
                ),
                encoding="utf-8",
            )
        self._prepared[key] = task_dir
        return task_dir

    def evaluate(self, model: torch.nn.Module, tokenizer: Any) -> dict[str, float]:
        """Primary score (``fidelity``, 0-100) per capability; all metrics go to ``last_details``.

        ``model`` is a Hugging Face causal LM on any device; it is scored where it is and handed
        back in the train/eval mode it came in, with every RNG state unchanged.
        """
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local JSON only; never reach a hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from lm_eval import evaluator
        from lm_eval.tasks import TaskManager

        with preserved_state(model), _quiet_lm_eval():
            if tokenizer.pad_token_id is None:  # HFLM would otherwise invent a pad token
                tokenizer.pad_token = tokenizer.eos_token
            lm = _probe_lm_class()(pretrained=model, tokenizer=tokenizer, batch_size=self.batch_size)
            task_dir = self._prepare(lm, tokenizer)
            manager = TaskManager(include_path=str(task_dir), include_defaults=False)
            tasks = manager.load([f"{_TASK_PREFIX}{c}" for c in self.capabilities])
            results = evaluator.evaluate(
                lm=lm,
                task_dict=tasks,
                limit=self.limit,
                bootstrap_iters=0,
                log_samples=False,
                write_out=False,
            )
        details: dict[str, dict[str, float]] = {}
        for cap in self.capabilities:
            name = f"{_TASK_PREFIX}{cap}"
            res = results["results"][name]
            logprob = float(res["logprob,none"])
            details[cap] = {
                "fidelity": fidelity_score(logprob),
                "agreement": 100.0 * float(res["agreement,none"]),
                "logprob": logprob,
                "n": float(results["n-samples"][name]["effective"]),
            }
        self.last_details = details
        return {cap: d["fidelity"] for cap, d in details.items()}
