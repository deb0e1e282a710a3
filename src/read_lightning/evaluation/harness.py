"""Probes from any lm-eval task: a capability scored by registry tasks (``gsm8k``, ``ifeval``,
``mmlu``, ...) or by a user's own task YAMLs.

A capability's entry is a list of lm-eval task, group or tag names, each optionally with

* ``limit``: score a fixed subset of that many documents, drawn once from the evaluation split
  with ``seed`` and the task's name (the same subset at every probe of a run, after a resume and
  in another process);
* ``num_fewshot`` and ``generation_kwargs`` (e.g. ``max_gen_toks``), set on the task as
  ``lm_eval.simple_evaluate`` sets them;
* ``metric``: the lm-eval result key that becomes the 0-100 score, ``"exact_match"`` or with its
  filter ``"exact_match,flexible-extract"``; default by output type (:func:`default_metric`);
* ``dataset_path`` / ``dataset_name`` / ``dataset_kwargs``: where the data is read from, in place
  of the task's Hub dataset (a local copy for an air-gapped machine; docs/evaluation.md).

Everything that can be checked without a model is checked at construction, which loads the
tasks and their datasets: names (with close matches), include paths, data files, limits and
metrics. :meth:`HarnessProbe.evaluate` then runs ``lm_eval.evaluator.evaluate`` on the
in-memory model, wrapped by lm-eval's own ``HFLM``, and hands the model back as it came: train
modes, RNG states, device and dtype of every tensor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import glob
import logging
import math
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from read_lightning.core.checks import check_number
from read_lightning.evaluation.scoring import preserved_state

__all__ = [
    "HarnessProbe",
    "TaskProbe",
    "build_task",
    "check_task_name",
    "default_metric",
    "load_task",
    "measure_profile",
    "metric_score",
    "parse_task_probes",
    "preserved_placement",
    "seeded_subset",
]
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class TaskProbe:
    """One lm-eval task (or group, or tag) probing a capability, with its settings."""

    task: str
    limit: int | None = None
    num_fewshot: int | None = None
    metric: str | None = None
    dataset_path: str | None = None
    dataset_name: str | None = None
    dataset_kwargs: Mapping[str, Any] | None = None
    generation_kwargs: Mapping[str, Any] | None = None

    def overrides(self) -> dict[str, Any]:
        """Config keys replaced in the task's YAML (the data source only)."""
        keys = ("dataset_path", "dataset_name", "dataset_kwargs")
        return {k: dict(v) if isinstance(v, Mapping) else v for k in keys if (v := getattr(self, k)) is not None}


_KEYS = tuple(f.name for f in dataclasses.fields(TaskProbe))


def parse_task_probes(tasks: Mapping[str, Sequence[str | Mapping[str, Any]]]) -> dict[str, list[TaskProbe]]:
    """``{capability: [name or {task: name, limit: ..., ...}, ...]}`` -> ``{capability: [TaskProbe]}``.

    Raises ``ValueError`` naming the capability and the bad entry or key.
    """
    if not isinstance(tasks, Mapping):
        raise ValueError(f"probe tasks must map capability -> list of lm-eval tasks, got {tasks!r}")
    out: dict[str, list[TaskProbe]] = {}
    for cap, entries in tasks.items():
        if isinstance(entries, (str, Mapping)):
            entries = [entries]
        if not isinstance(entries, Sequence) or not entries:
            raise ValueError(f"probe tasks for {cap!r}: expected a non-empty list of lm-eval tasks, got {entries!r}")
        specs = []
        for entry in entries:
            if isinstance(entry, str):
                entry = {"task": entry}
            if not isinstance(entry, Mapping) or not isinstance(entry.get("task"), str) or not entry["task"]:
                raise ValueError(f"probe tasks for {cap!r}: each entry is a task name or has a 'task' name, got {entry!r}")
            unknown = sorted(set(entry) - set(_KEYS))
            if unknown:
                raise ValueError(f"probe task {entry['task']!r} ({cap}): unknown key(s) {unknown}; accepted: {list(_KEYS)}")
            if entry.get("limit") is not None:
                check_number(f"probe task {entry['task']!r} limit", entry["limit"], low=1, integer=True)
            if entry.get("num_fewshot") is not None:
                check_number(f"probe task {entry['task']!r} num_fewshot", entry["num_fewshot"], low=0, integer=True)
            for key in ("dataset_kwargs", "generation_kwargs"):
                if entry.get(key) is not None and not isinstance(entry[key], Mapping):
                    raise ValueError(f"probe task {entry['task']!r} {key} must be a mapping, got {entry[key]!r}")
            specs.append(TaskProbe(**entry))
        out[cap] = specs
    return out


# --------------------------------------------------------------------------- metrics


_LOWER_IS_BETTER = {"perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "ter"}


def default_metric(task: Any) -> str:
    """The result key scored when none is given, by the task's output type.

    ``generate_until``: the task's first metric under its first filter (``exact_match,strict-match``
    for gsm8k, ``prompt_level_strict_acc,none`` for ifeval). ``multiple_choice``: ``acc_norm`` if
    the task computes it, else ``acc``. ``loglikelihood``: ``acc`` (the target is the greedy
    continuation). ``loglikelihood_rolling``: ``bits_per_byte``.
    """
    metrics, first_filter = list(task._metric_fn_list), task._filters[0].name
    preferred = {
        "multiple_choice": ["acc_norm", "acc"],
        "loglikelihood": ["acc"],
        "loglikelihood_rolling": ["bits_per_byte", "byte_perplexity", "word_perplexity"],
    }.get(task.config.output_type, [])
    for name in preferred + metrics:
        if name in metrics:
            return f"{name},{first_filter}"
    raise ValueError(f"lm-eval task {task.config.task!r} computes no metric")


def metric_score(metric: str, value: float, stderr: float | None) -> tuple[float, float | None]:
    """An lm-eval metric value (and its stderr) on the 0-100 capability scale, higher is better.

    Accuracies and other [0, 1] means: ``100 * value``. ``bits_per_byte``: ``100 * 2**-value``, the
    geometric-mean probability of a byte. Perplexities: ``100 / value``. ``bleu``/``chrf`` are
    already 0-100. The stderr follows by the delta method. A value outside the scale raises,
    naming the metric: it needs a ``metric`` chosen for that task.
    """
    name = metric.split(",")[0]
    if name == "bits_per_byte":
        score = 100.0 * 2.0 ** (-value)
        return score, None if stderr is None else score * math.log(2.0) * stderr
    if name.endswith("perplexity"):
        score = 100.0 / value
        return score, None if stderr is None else score * stderr / value
    if name in _LOWER_IS_BETTER:
        raise ValueError(f"metric {metric!r} is lower-is-better with no 0-100 scale; choose another metric")
    if name in ("bleu", "chrf", "chrf++"):
        return float(value), stderr
    if not -1e-9 <= value <= 1.0 + 1e-9:
        raise ValueError(f"metric {metric!r} = {value} is not in [0, 1]; choose a metric on that scale")
    return 100.0 * value, None if stderr is None else 100.0 * stderr


# --------------------------------------------------------------------------- the model


@contextlib.contextmanager
def preserved_placement(model: torch.nn.Module) -> Iterator[None]:
    """Put every parameter and buffer back on the device and dtype it had, if the block moved it."""
    saved = [(t, t.device, t.dtype) for t in [*model.parameters(), *model.buffers()]]
    try:
        yield
    finally:
        for tensor, device, dtype in saved:
            if tensor.device != device or tensor.dtype != dtype:
                tensor.data = tensor.data.to(device=device, dtype=dtype)


def _harness_lm(model: torch.nn.Module, tokenizer: Any, batch_size: int) -> Any:
    """lm-eval's ``HFLM`` around the in-memory model: its requests, batching and generation."""
    from lm_eval.models.huggingface import HFLM

    if tokenizer.pad_token_id is None:  # HFLM would otherwise add a pad token to the vocabulary
        tokenizer.pad_token = tokenizer.eos_token
    return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)


# --------------------------------------------------------------------------- the probe


def _close_matches(name: str, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
    return f"; did you mean {', '.join(map(repr, near))}?" if near else ""


def _data_files(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f for v in value.values() for f in _data_files(v)]
    if isinstance(value, (list, tuple)):
        return [f for v in value for f in _data_files(v)]
    return []


def _looks_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or os.sep in path and Path(path).exists()


def _check_data(name: str, cfg: Mapping[str, Any]) -> None:
    """Refuse a task whose local data is missing, naming the file (HF datasets would say less)."""
    path = cfg.get("dataset_path")
    if isinstance(path, str) and _looks_local(path) and not Path(path).expanduser().exists():
        raise ValueError(f"lm-eval task {name!r}: dataset_path {path!r} does not exist")
    files = _data_files((cfg.get("dataset_kwargs") or {}).get("data_files"))
    base = Path(path).expanduser() if isinstance(path, str) and Path(path).expanduser().is_dir() else Path.cwd()
    for f in files:
        if "://" in f:
            continue
        full = Path(f).expanduser() if Path(f).expanduser().is_absolute() else base / f
        if not (glob.glob(str(full)) if glob.has_magic(str(full)) else full.exists()):
            raise ValueError(f"lm-eval task {name!r}: data file {str(full)!r} does not exist")


@functools.lru_cache(maxsize=4)
def _task_manager(include_path: tuple[str, ...]) -> Any:
    """lm-eval's ``TaskManager`` over its registry and ``include_path``, built once per process:
    indexing some 15k registry YAMLs takes about 9 s on one core."""
    from lm_eval.tasks import TaskManager

    from read_lightning.evaluation.probes import _quiet_lm_eval

    with _quiet_lm_eval():
        return TaskManager(include_path=list(include_path) or None)


def _leaves(built: Any) -> list[Any]:
    from lm_eval.api.group import Group

    if isinstance(built, list):
        return list(built)
    if isinstance(built, Group):
        return list(built.get_all_tasks())
    return [built]


def check_task_name(manager: Any, name: str, where: str = "") -> None:
    """Refuse a name lm-eval's ``manager`` does not index, with the close matches; ``where`` says
    who named it (" (capability math)")."""
    if name not in manager.task_index:
        raise ValueError(f"unknown lm-eval task {name!r}{where}{_close_matches(name, manager.all_tasks)}")


def seeded_subset(n_docs: int, limit: int, key: str) -> list[int]:
    """``limit`` document indices of ``range(n_docs)``, sorted, drawn by ``key`` alone (a seed and
    the task's name): the same documents in every process and after a resume."""
    return sorted(random.Random(key).sample(range(n_docs), limit))


def load_task(spec: TaskProbe, include_path: Sequence[str | os.PathLike] = (), where: str = "") -> list[Any]:
    """The lm-eval tasks ``spec`` names, looked up in lm-eval's registry and ``include_path`` and
    built with their data (no model); the checks and errors of :class:`HarnessProbe`."""
    manager = _task_manager(tuple(str(Path(p).resolve()) for p in include_path))
    check_task_name(manager, spec.task, where)
    built = build_task(manager, spec)
    assert built is not None  # without defer, unreachable data raises
    return built


def build_task(manager: Any, spec: TaskProbe, defer: bool = False) -> list[Any] | None:
    """The lm-eval tasks ``spec`` names (one, or a group's or tag's), built with their data and the
    data source overrides, no model; None when ``defer`` and the data cannot be reached now.

    Raises ``ValueError`` for a missing local file, an uninstalled package or, without ``defer``,
    data that cannot be reached offline. ``spec.task`` must be in ``manager.task_index``.
    """
    from lm_eval.tasks._yaml_loader import load_yaml

    from read_lightning.evaluation.probes import _quiet_lm_eval

    entry = manager.task_index[spec.task]
    if entry.yaml_path is not None and entry.kind.name == "TASK":
        _check_data(spec.task, {**load_yaml(entry.yaml_path, resolve_func=False), **spec.overrides()})
    elif spec.overrides():
        _check_data(spec.task, spec.overrides())
    unreachable: Exception | None = None
    try:
        with _quiet_lm_eval():
            # The factory TaskManager.load uses, with the data source replaced (for a group:
            # in each of its tasks).
            built = manager._factory.build(entry, overrides=spec.overrides() or None, registry=manager.task_index)
    except FileNotFoundError as err:
        if "Hugging Face Hub" not in str(err):  # a missing local file
            raise ValueError(f"lm-eval task {spec.task!r}: {err}") from None
        unreachable = err  # a Hub script (the `evaluate` library's code_eval) out of reach
    except ImportError as err:
        raise ValueError(f"lm-eval task {spec.task!r} needs a package that is not installed ({err}); "
                         "pip install 'read-lightning[benchmarks]'") from None
    except ConnectionError as err:
        unreachable = err
    if unreachable is not None:
        if defer:
            log.warning("lm-eval task %r: its data cannot be reached now (%s); it is loaded again when "
                        "the run sets up", spec.task, unreachable)
            return None
        raise ValueError(
            f"lm-eval task {spec.task!r}: its data is not available offline ({unreachable}); point the task at a "
            "local copy with dataset_path (docs/evaluation.md)"
        ) from None
    return _leaves(built)


class HarnessProbe:
    """Scores capabilities with lm-eval tasks; one 0-100 score per capability.

    Args:
        tasks: ``{capability: [task name or {task: name, limit, num_fewshot, metric,
            dataset_path, dataset_name, dataset_kwargs, generation_kwargs}, ...]}`` (see the
            module docstring). A capability's score is the mean of its entries' scores; a group's
            score is the mean over its tasks weighted by their scored documents.
        include_path: directories (or YAML files) of the user's own lm-eval tasks, indexed after
            lm-eval's registry (a name in both is the user's).
        batch_size: requests per forward pass, handed to ``HFLM``.
        seed: draws the limited subsets and seeds few-shot sampling.
        apply_chat_template: render requests with the tokenizer's chat template (lm-eval's
            ``--apply_chat_template``).
        bootstrap_iters: resamples for the stderr of metrics without a closed form.
        allow_code_execution: run tasks that execute model-written code (``humaneval``, ``mbpp``:
            lm-eval's ``unsafe_code``, executed by the ``evaluate`` library, not this package's
            sandbox); without it such a task is refused at construction.
        defer_unreachable: a task whose dataset cannot be reached now (no network, offline mode)
            is loaded again by :meth:`load_pending` (the probe callback calls it when the run
            sets up) instead of failing here; its limit and metric are checked then.

    Construction loads every task and its data (no model), so bad input fails here.
    """

    def __init__(
        self,
        tasks: Mapping[str, Sequence[str | Mapping[str, Any]]],
        include_path: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
        batch_size: int = 8,
        seed: int = 0,
        apply_chat_template: bool = False,
        bootstrap_iters: int = 200,
        allow_code_execution: bool = False,
        defer_unreachable: bool = False,
    ) -> None:
        check_number("probe batch_size", batch_size, low=1, integer=True)
        check_number("probe seed", seed, integer=True)
        check_number("probe bootstrap_iters", bootstrap_iters, low=0, integer=True)
        self.specs = parse_task_probes(tasks)
        if not self.specs:
            raise ValueError("HarnessProbe needs at least one capability with lm-eval tasks")
        paths = [] if include_path is None else [include_path] if isinstance(include_path, (str, os.PathLike)) else list(include_path)
        for p in paths:
            if not Path(p).exists():
                raise ValueError(f"probe include_path {str(p)!r} does not exist")
        self.include_path = [str(Path(p).resolve()) for p in paths]
        self.capabilities = list(self.specs)
        self.batch_size, self.seed = batch_size, seed
        self.apply_chat_template, self.bootstrap_iters = apply_chat_template, bootstrap_iters
        self.last_details: dict[str, dict[str, Any]] = {}
        self.defer_unreachable, self.allow_code_execution = defer_unreachable, bool(allow_code_execution)
        self._build()

    # ------------------------------------------------------------------ loading and checks

    def _build(self) -> None:
        manager = _task_manager(tuple(self.include_path))
        for cap, specs in self.specs.items():
            for spec in specs:
                check_task_name(manager, spec.task, f" (capability {cap})")
        self.tasks: dict[str, Any] = {}  # leaf task name -> lm-eval Task
        self.samples: dict[str, list[int]] = {}  # leaf task name -> scored document indices
        self.metrics: dict[str, str] = {}  # leaf task name -> result key ("metric,filter")
        self.entries: dict[str, list[tuple[TaskProbe, list[str]]]] = {c: [] for c in self.specs}
        self.pending: list[tuple[str, TaskProbe]] = []  # datasets not reachable at construction
        for cap, specs in self.specs.items():
            for spec in specs:
                self._add(manager, cap, spec, defer=self.defer_unreachable)

    def load_pending(self) -> None:
        """Load the tasks whose datasets could not be reached at construction; raise if they still cannot."""
        pending, self.pending = self.pending, []
        manager = _task_manager(tuple(self.include_path))
        for cap, spec in pending:
            self._add(manager, cap, spec, defer=False)

    def _add(self, manager: Any, cap: str, spec: TaskProbe, defer: bool) -> None:
        leaves = build_task(manager, spec, defer)
        if leaves is None:
            self.pending.append((cap, spec))
            return
        names = [t.config.task for t in leaves]
        for name, task in zip(names, leaves):
            if name in self.tasks:
                raise ValueError(f"lm-eval task {name!r} is probed twice (capability {cap}); name it once")
            self._configure(spec, name, task)
            self.tasks[name] = task
        self.entries[cap].append((spec, names))

    def _configure(self, spec: TaskProbe, name: str, task: Any) -> None:
        if getattr(task, "UNSAFE_CODE", False) and not self.allow_code_execution:
            raise ValueError(f"lm-eval task {name!r} executes model-written code; set allow_code_execution: true "
                             "to run it (lm-eval's unsafe_code)")
        if spec.num_fewshot is not None:
            task.set_config(key="num_fewshot", value=spec.num_fewshot)
        if spec.generation_kwargs:
            task.set_config(key="generation_kwargs", value=dict(spec.generation_kwargs), update=True)
        task.set_fewshot_seed(seed=self.seed)
        produced = [f"{m},{f.name}" for f in task._filters for m in task._metric_fn_list]
        metric = spec.metric or default_metric(task)
        if "," not in metric:
            metric = next((k for k in produced if k.split(",")[0] == metric), metric)
        if metric not in produced:
            raise ValueError(f"lm-eval task {name!r} does not produce metric {spec.metric!r}; it produces {produced}")
        self.metrics[name] = metric
        n_docs = len(task.eval_docs)
        if spec.limit is not None:
            if spec.limit > n_docs:
                split = task.config.test_split or task.config.validation_split
                raise ValueError(f"probe limit {spec.limit} for lm-eval task {name!r} is larger than its "
                                 f"{split!r} split ({n_docs} documents)")
            # Seeded by the run's seed and the task's name only: the same documents at every probe.
            self.samples[name] = seeded_subset(n_docs, spec.limit, f"{self.seed}:{name}")

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, model: torch.nn.Module, tokenizer: Any) -> dict[str, float]:
        """Score (0-100) per capability; per-task metric values, stderrs and counts in ``last_details``.

        ``model`` is a Hugging Face causal LM on any device; it is scored where it is and handed
        back in the train/eval modes, device and dtype it came in, with every RNG state unchanged.
        """
        from lm_eval import evaluator

        from read_lightning.evaluation.probes import _quiet_lm_eval

        self.load_pending()
        if self.allow_code_execution:
            os.environ["HF_ALLOW_CODE_EVAL"] = "1"  # the `evaluate` library's code_eval asks for it
        with preserved_state(model), preserved_placement(model), _quiet_lm_eval():
            lm = _harness_lm(model, tokenizer, self.batch_size)
            results = evaluator.evaluate(
                lm=lm,
                task_dict={"tasks": dict(self.tasks), "groups": {}},
                samples=dict(self.samples) or None,
                bootstrap_iters=self.bootstrap_iters,
                log_samples=False,
                apply_chat_template=self.apply_chat_template,
                confirm_run_unsafe_code=self.allow_code_execution,
            )
        per_task: dict[str, dict[str, Any]] = {}
        for name, metric in self.metrics.items():
            res = results["results"][name]
            key, filt = metric.split(",", 1)
            value = float(res[metric])
            err = res.get(f"{key}_stderr,{filt}")
            err = float(err) if isinstance(err, (int, float)) and math.isfinite(err) else None
            score, score_err = metric_score(metric, value, err)
            per_task[name] = {"metric": metric, "value": value, "stderr": err, "score": score,
                              "score_stderr": score_err, "n": int(results["n-samples"][name]["effective"])}
        profile: dict[str, float] = {}
        details: dict[str, dict[str, Any]] = {}
        for cap, entries in self.entries.items():
            scores, errs = [], []
            for _, names in entries:
                n = [per_task[t]["n"] for t in names]
                w = [x / sum(n) for x in n]
                scores.append(sum(wi * per_task[t]["score"] for wi, t in zip(w, names)))
                parts = [per_task[t]["score_stderr"] for t in names]
                errs.append(None if None in parts else math.sqrt(sum((wi * e) ** 2 for wi, e in zip(w, parts))))
            profile[cap] = sum(scores) / len(scores)
            stderr = None if None in errs else math.sqrt(sum(e * e for e in errs)) / len(errs)
            details[cap] = {"score": profile[cap], "stderr": stderr,
                            "tasks": {t: per_task[t] for _, names in entries for t in names}}
        self.last_details = details
        return profile


def measure_profile(
    packaged: Any | None, harness: HarnessProbe | None, order: Sequence[str], model: torch.nn.Module, tokenizer: Any
) -> tuple[dict[str, float], dict[str, float]]:
    """The capability profile from the packaged probes (a ``CapabilityProbe``) and the lm-eval
    task probes together, in ``order``, and the stderr of each task-probed capability."""
    scores: dict[str, float] = {}
    stderr: dict[str, float] = {}
    if packaged is not None:
        scores.update(packaged.evaluate(model, tokenizer))
    if harness is not None:
        scores.update(harness.evaluate(model, tokenizer))
        stderr = {c: d["stderr"] for c, d in harness.last_details.items() if d["stderr"] is not None}
    return {c: scores[c] for c in order}, stderr
