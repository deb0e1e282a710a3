"""``read-train compare``: every allocator under the same budget, over several seeds, in one table.

    read-train compare --config recipes/smollm2-135m.yaml         --allocators read,uniform,task_static,single,greedy --seeds 3 [--data.budget_tokens 20000]
    read-train compare --config recipes/smollm2-135m.yaml --allocators read,task_static,paper --seeds 3

``--allocators`` names methods: allocators, run with the recipe as it is, and the paper's six
one-hot teacher-signal baselines (``resp_sft``, ``resp_kd``, ``cot_sft``, ``cot_kd``,
``logit_sft``, ``logit_kd``, or ``paper`` for all six; ``reporting.methods`` defines them), which
spend the whole budget on the target capability (``--target-capability``, by default the top of
the requirement vector) and set the student's loss and the teacher's prompt.

For each (method, seed) the recipe is copied with the ``BanditAllocationCallback``'s
``allocator`` and ``seed``, the method's overrides, ``seed_everything`` and ``data.seed`` set, and trained by
``read-train fit`` in its own run directory ``<out>/<recipe>/<allocator>/seed_<n>/`` (a child
process by default, so every run starts from a clean interpreter and frees its memory). Options
``compare`` does not know (``--data.budget_tokens 20000``) go to every run unchanged.

``--jobs N`` trains up to N runs at once, each in its own child process with ``--num-threads``
threads (by default the machine's CPUs over N), then scores them in order; the runs are
independent, so the table is the same but for float rounding (a run's thread count moves its probe
scores in the sixth digit). Where one run does not keep every core busy (a CPU run of the embedded
default) this finishes sooner: ``benchmarks/compare_jobs.py`` measured two runs of the recipe in
0.76 of the time at ``--jobs 2`` (docs/results.md). The first run that fails stops the others,
each left to resume.

Re-running the command resumes: a finished run (``summary.json`` and ``student/`` present) is
not trained again, an interrupted one continues from its ``checkpoints/last.ckpt``, and a run
directory made with a different recipe or overrides is refused rather than mixed in.

Every final student is then scored on the task card's held-out **test** split (never the dev
split the run may have used), and the table reports, per allocator, the mean and standard
deviation over seeds (sample std, ``n - 1``) of:

* ``task_utility``: the card's metric, or, where the recipe's probes score fidelity to the teacher
  (the embedded default, docs/method.md "Measuring on the embedded default"), fidelity to the
  teacher's greedy test answers (0-100, linear in mean per-token log-likelihood, like the probes);
  ``task_agreement`` is then the rate of exact greedy agreement with the teacher;
* ``probe/<capability>``: the final capability profile s_T (the probe callback's last entry);
* ``on_target_gain``: ``sum_c r_c * (s_T[c] - s_0[c])``, the requirement-weighted profile change
  from the undistilled student s_0 to the final one;
* ``off_target_change``: the mean of ``s_T[c] - s_0[c]`` over the capabilities outside C_ess (the
  top-k of r, k of the allocator, 3 by default); negative means spillover harm;
* ``spent_tokens`` (and its ``generation``/``training`` parts) from ``ledger.json``, and
  ``wall_seconds`` from ``summary.json`` (for a resumed run, summed over its processes).

First of all, and first in the table, the student's greedy answers to the test split, scored by
the card's rule (:func:`~read_lightning.evaluation.task_answers.answer_outcomes`):
``answer_agreement`` (its final answer is the teacher's, where the teacher's test references
exist: the ``teacher_fidelity`` metric), ``answer_accuracy`` (against gold, where the card has
gold) and ``answer_degenerate``, in percent. The per-item outcomes are kept in the run's
``task_eval.json`` (``items``), and the comparison reports the **paired difference** of every
allocator against the best baseline (the allocator other than ``read`` with the highest mean
agreement), paired over test items and seeds, with a 95% interval: the mean over seeds of the
per-seed item-paired differences, with Student's t across seeds (widened where needed to the
normal interval over items) for 2 or more seeds and the item-paired normal interval for 1 seed
(:data:`~read_lightning.reporting.tables.PAIRED_METHOD`). The closing sentence follows that
interval: one that contains 0 is "not distinguishable from the best baseline".

The Markdown ends with the paper's Table 1: one row per method, its signal, loss, teacher prompt
and data mixture, then every capability's final probe score, their mean and the task utility
(also alone in ``table1.md``).

Outputs: ``compare.md``, ``table1.md`` and ``compare.csv`` (one row per run, then ``mean`` and
``std`` rows per method) in ``<out>/<recipe>/``; the Markdown is printed too.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import gc
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from read_lightning.core.jsonl import read_json, write_json_atomic, write_text_atomic
from read_lightning.core.provenance import describe_commits, git_commit
from read_lightning.core.run_summary import ALLOCATION, summary_part
from read_lightning.prompts.teacher_prompts import CHAIN_OF_THOUGHT
from read_lightning.reporting.methods import METHOD_KEYS, PAPER, PAPER_BASELINES, Method, describe_loss, resolve_methods
from read_lightning.reporting.recipes import (
    RunSpec,
    check_overrides,
    derive_recipe,
    differences,
    fingerprint,
    load_recipe,
    what_it_measures,
)
from read_lightning.reporting.records import TASK_EVAL_FILE
from read_lightning.reporting.report import report_after_fit
from read_lightning.reporting.tables import (
    BANDIT,
    PROBE,
    aggregate,
    markdown,
    paired_against_baselines,
    paired_against_best,
    run_metrics,
    start_profile,
    table1,
    write_csv,
)

if TYPE_CHECKING:
    from read_lightning.evaluation.tasks import TaskCard

__all__ = ["DEFAULT_ALLOCATORS", "compare_main", "task_eval_key"]


DEFAULT_ALLOCATORS: tuple[str, ...] = ("read", "uniform", "task_static", "single", "greedy")
TASK_EVAL = "TaskEvaluationCallback"
METRICS = ("auto", "card", "teacher_fidelity")
# Part of task_eval.json's cache key: a file written before the answers were scored (or scored by
# another rule) lacks it and is computed again. Bump it when answer_outcomes changes what it stores.
ANSWERS_VERSION = 1


def task_eval_key(card: TaskCard, metric: str, split: str = "test") -> dict[str, Any]:
    """The cache key of a run's ``task_eval.json``: what its scores depend on.

    The card by name and by content (its YAML and the scored split's file), not by path: a
    checkout moved or installed elsewhere reuses its scores, and a card edited in place has its
    runs scored again.
    """
    digest = hashlib.sha256()
    for path in (card.path, getattr(card, split, None)):
        if path is not None:
            digest.update(Path(path).read_bytes())
    return {"card": card.name, "card_sha256": digest.hexdigest()[:16], "metric": metric, "split": split,
            "answers": ANSWERS_VERSION}


# --------------------------------------------------------------------------- running


def _finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").is_file() and (run_dir / "student" / "config.json").is_file()


def _remove_checkpoints(run_dir: Path) -> int:
    """Delete a finished run's ``checkpoints/`` (resume state only: its student is exported) and
    return the bytes freed. A 135M student with AdamW state is ~0.75 GB a checkpoint, and a
    recipe keeps two, so a 15-run comparison would otherwise hold over 20 GB of them."""
    folder = run_dir / "checkpoints"
    if not _finished(run_dir) or not folder.is_dir():
        return 0
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    shutil.rmtree(folder)
    return size


def _prepare(spec: RunSpec, derived: dict[str, Any], overrides: Sequence[str]) -> list[str] | None:
    """Write the run's recipe; the ``read-train fit`` arguments, or None if already finished.

    Refuses a run directory made by a different recipe or overrides: its results would
    silently stand in for the ones asked for.
    """
    stamp_path = spec.run_dir / "compare.json"
    stamp = {"allocator": spec.allocator, "seed": spec.seed, "overrides": list(overrides),
             "fingerprint": fingerprint(derived, overrides)}
    if stamp_path.is_file():
        old = read_json(stamp_path)
        if old.get("fingerprint") != stamp["fingerprint"]:
            if old.get("overrides") != list(overrides):
                what = f"other overrides (then {old.get('overrides')}, now {list(overrides)})"
            else:
                before = spec.run_dir / "recipe.yaml"
                keys = differences(what_it_measures(load_recipe(str(before))),
                                    what_it_measures(derived)) if before.is_file() else []
                what = f"a different recipe (it differs at {', '.join(keys[:8])})" if keys else "a different recipe"
            raise SystemExit(
                f"read-train compare: {spec.run_dir} was made with {what}; use another --out or remove that directory"
            )
    if _finished(spec.run_dir):
        return None
    ckpt = spec.run_dir / "checkpoints" / "last.ckpt"
    if spec.run_dir.exists() and not ckpt.is_file():
        # Interrupted before its first interval checkpoint: nothing worth resuming, and the
        # decision log would be appended to twice.
        shutil.rmtree(spec.run_dir)
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    config = spec.run_dir / "recipe.yaml"
    # Atomic, like every file a resume reads back.
    write_text_atomic(config, yaml.safe_dump(derived, sort_keys=False))
    write_json_atomic(stamp_path, stamp)
    args = ["fit", "--config", str(config), *overrides]
    if ckpt.is_file():
        args += ["--ckpt_path", str(ckpt)]
    return args


def _intervals_done(run_dir: Path) -> int:
    """Finished intervals of a run in progress: its 'observe' rows in allocations.jsonl."""
    try:
        lines = (run_dir / "allocations.jsonl").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    return sum('"event": "observe"' in line for line in lines)


def _num_intervals(run_dir: Path) -> int | None:
    try:  # Lightning writes the resolved configuration when the run starts
        return int(yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))["data"]["num_intervals"])
    except (FileNotFoundError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def _run_subprocess(spec: RunSpec, args: list[str], env: dict[str, str], say: Callable[[str], None],
                    stop: threading.Event | None = None) -> None:
    stop = threading.Event() if stop is None else stop  # one run alone: never set, a 2 s wait
    log_path = spec.run_dir / "fit.log"
    start = time.perf_counter()
    with log_path.open("a", encoding="utf-8") as log:
        proc = subprocess.Popen([sys.executable, "-m", "read_lightning.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        done = -1
        try:
            while True:
                running = proc.poll() is None
                now = _intervals_done(spec.run_dir)
                if now != done:  # checked once more after the child exits, so the last step shows
                    done = now
                    total = _num_intervals(spec.run_dir)
                    say(f"  {spec.label}: {done}/{total or '?'} intervals ({time.perf_counter() - start:.0f}s)")
                if not running:
                    break
                if stop.wait(2.0):  # another run failed, or Ctrl-C: stop this one too
                    raise SystemExit(f"read-train compare: {spec.label} stopped; run the command again to resume it")
        except BaseException:
            proc.terminate()  # Ctrl-C: leave a resumable run, not an orphan process
            proc.wait()
            raise
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise SystemExit(
            f"read-train compare: {spec.label} failed (exit code {proc.returncode}); log {log_path}:\n" + "\n".join(tail)
        )


@contextlib.contextmanager
def _quiet_cli_args() -> Iterator[None]:
    """LightningCLI warns when given ``args`` while ``sys.argv`` holds other arguments (here:
    compare's own); passing args in-process is exactly what compare means to do."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        yield


def _run_inprocess(spec: RunSpec, args: list[str]) -> None:
    from read_lightning.cli import main as cli_main

    try:
        with _quiet_cli_args():
            cli_main(args)
    except SystemExit as err:  # the parser exits on a bad override
        if err.code not in (0, None):
            raise SystemExit(f"read-train compare: {spec.label} failed: {err.code}") from None
    finally:
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


# --------------------------------------------------------------------------- the task


@dataclass
class _Setup:
    """What the comparison needs from the recipe, resolved by the real CLI parser."""

    card: Any  # TaskCard
    card_reason: str
    metric: str  # "teacher_fidelity" or the card's evaluation type
    teacher: str
    teacher_dtype: str
    cache_dir: str | None
    k: int
    capabilities: list[str]


def _resolve_setup(config: Path, overrides: Sequence[str], task_card: str | None, metric: str) -> _Setup:
    """Build (not run) the first run's objects to read its task card, teacher and probe settings."""
    from read_lightning.cli import ConfigurationError, lightning_main
    from read_lightning.requirement.cards import load_card

    try:
        with _quiet_cli_args():
            cli = lightning_main(["--config", str(config), *overrides], run=False)
    except ConfigurationError as err:
        raise SystemExit(f"read-train compare: the configuration was refused: {err}") from None
    callbacks = {type(cb).__name__: cb for cb in cli.trainer.callbacks}
    probe, bandit = callbacks.get(PROBE), callbacks.get(BANDIT)
    if probe is None:
        raise SystemExit(f"read-train compare: the recipe has no {PROBE}; the table needs capability profiles")
    dm = cli.datamodule
    if task_card is not None:
        card, reason = load_card(task_card, dm.capabilities, check_data=True), "--task-card"
    elif bandit.task_card:
        card, reason = load_card(bandit.task_card, dm.capabilities, check_data=True), f"{BANDIT}.task_card"
    elif TASK_EVAL in callbacks:
        card, reason = callbacks[TASK_EVAL].card, f"{TASK_EVAL}.task_card"
    else:
        card, reason = _card_for_requirement(bandit.requirement, dm.capabilities)
    if metric == "auto":
        # The same rule as the probes: where they score fidelity to the teacher, so does the task.
        fidelity = probe.references == "teacher" and dm.teacher_backend != "http"
        metric = "teacher_fidelity" if fidelity else "card"
    if metric == "teacher_fidelity" and dm.teacher_backend == "http":
        raise SystemExit("read-train compare: --task-metric teacher_fidelity needs an in-process teacher, "
                         "but the recipe's teacher_backend is 'http'; use --task-metric card")
    resolved = "teacher_fidelity" if metric == "teacher_fidelity" else card.evaluation
    k = int(bandit.allocator_kwargs.get("k", 3))
    out = _Setup(card, reason, resolved, dm.teacher_name, dm.teacher_dtype, dm.cache_dir, k, list(dm.capabilities))
    del cli
    gc.collect()
    return out


def _card_for_requirement(requirement: Mapping[str, float] | None, capabilities: Sequence[str]) -> tuple[Any, str]:
    """The packaged example card whose requirement vector is the recipe's (the default recipe
    writes arith_word's vector out instead of naming the card)."""
    from read_lightning.core.capabilities import Requirement
    from read_lightning.evaluation.tasks import TaskCard, list_example_tasks

    hint = "name the task with --task-card PATH_OR_NAME (or task_card on the BanditAllocationCallback)"
    if not requirement:
        raise SystemExit(f"read-train compare: the recipe names no task card and no requirement vector; {hint}")
    want = Requirement.of(requirement).over(list(requirement))  # checked as the bandit checks it
    matches = []
    for path in list_example_tasks():
        card = TaskCard.load(path, check_data=False)
        got = card.requirement or {}
        if set(got) | set(want) and all(abs(got.get(c, 0.0) - want.get(c, 0.0)) < 1e-6 for c in set(got) | set(want)):
            matches.append(card)
    if len(matches) != 1:
        found = [c.name for c in matches] or "none"
        raise SystemExit(f"read-train compare: the recipe names no task card and its requirement vector matches "
                         f"{found} of the packaged cards; {hint}")
    return TaskCard.load(matches[0].path, list(capabilities)), "the packaged card with the recipe's requirement vector"


class _TaskScorer:
    """Scores final students on the test split; the teacher's references are made once, cached."""

    def __init__(self, setup: _Setup, reference_cache: Path, batch_size: int) -> None:
        self.setup, self.batch_size = setup, batch_size
        self.reference_cache = reference_cache
        self.references: list[dict[str, Any]] | None = None

    def prepare(self) -> None:
        """Teacher answers to the test split (before any run, so the teacher is not held in memory
        while a run trains)."""
        if self.setup.metric != "teacher_fidelity":
            return
        import torch

        from read_lightning.evaluation.tasks import task_references
        from read_lightning.teachers.models import load_model, load_tokenizer

        teacher = load_model(self.setup.teacher, dtype=self.setup.teacher_dtype, cache_dir=self.setup.cache_dir)
        if torch.cuda.is_available():
            teacher.to("cuda")
        tok = load_tokenizer(self.setup.teacher, self.setup.cache_dir)
        self.references = task_references(self.setup.card, teacher, tok, self.reference_cache, split="test",
                                          batch_size=self.batch_size)
        del teacher
        gc.collect()

    def __call__(self, run_dir: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """``({"task_utility": ..., "task_agreement"?: ..., "answer_agreement"?: ...,
        "answer_accuracy"?: ..., "answer_degenerate": ...}, per-item outcomes)`` of the student in
        ``run_dir``, cached in ``task_eval.json`` next to it (``result`` and ``items``)."""
        import torch

        from read_lightning.evaluation.task_answers import answer_outcomes, answer_report
        from read_lightning.evaluation.tasks import evaluate_task
        from read_lightning.teachers.models import load_model, load_tokenizer

        key = task_eval_key(self.setup.card, self.setup.metric)
        cache = run_dir / TASK_EVAL_FILE
        if cache.is_file():
            saved = read_json(cache)
            if saved.get("key") == key:
                return saved["result"], saved["items"]
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        student = load_model(str(run_dir / "student"), dtype=str(config["model"].get("dtype") or "float32"))
        if torch.cuda.is_available():
            student.to("cuda")
        tok = load_tokenizer(str(run_dir / "student"))
        got = evaluate_task(self.setup.card, student, tok, split="test", batch_size=self.batch_size,
                            references=self.references)
        result = {"task_utility": float(got["utility"])}
        if "agreement" in got:
            result["task_agreement"] = float(got["agreement"])
        outcomes = answer_outcomes(self.setup.card, student, tok, split="test", teacher_answers=self.references,
                                   batch_size=self.batch_size)
        answers = answer_report(outcomes)
        for name in ("agreement", "accuracy", "degenerate"):
            if name in answers:
                result[f"answer_{name}"] = float(answers[name])
        items = [{"index": i, "agree": o["agree"], "correct": o["correct"], "degenerate": o["degenerate"],
                  "final": o["final"], "answer": o["answer"]} for i, o in enumerate(outcomes)]
        # Atomic: a comparison stopped here must not leave a half file that its resume cannot parse.
        write_json_atomic(cache, {"key": key, "result": result, "details": got, "answers": answers, "items": items})
        report_after_fit(run_dir)  # fit wrote the run's report before this score existed
        del student
        gc.collect()
        return result, items


# --------------------------------------------------------------------------- the command


def compare_main(argv: list[str] | None = None) -> int:
    """``read-train compare --config RECIPE [--allocators ...] [--seeds N] [fit overrides ...]``."""
    from read_lightning.allocation.bandit import ALLOCATORS

    parser = argparse.ArgumentParser(
        prog="read-train compare",
        description="Train the recipe with each allocator and seed under the same budget; tabulate the results. "
        "Options not listed here are passed to every `read-train fit` run unchanged, e.g. "
        "--data.budget_tokens 20000 --data.num_intervals 4 to compare at a smaller budget.",
    )
    parser.add_argument("--config", "-c", required=True, help="the recipe YAML")
    parser.add_argument("--allocators", default=",".join(DEFAULT_ALLOCATORS),
                        help=f"comma-separated methods: allocators ({', '.join(ALLOCATORS)}), the paper's one-hot "
                             f"baselines ({', '.join(PAPER_BASELINES)}), or {PAPER} for those six "
                             f"(default: {','.join(DEFAULT_ALLOCATORS)})")
    parser.add_argument("--reference", default=None,
                        help="the method the others are paired against and the verdict is about (default: read where "
                             "it is compared, else the first of --allocators), e.g. read_study")
    parser.add_argument("--target-capability", default=None,
                        help="the capability the one-hot methods (single and the paper baselines) spend the budget "
                             "on; default: the top capability of the task's requirement vector")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per allocator (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed .. first-seed + seeds - 1")
    parser.add_argument("--out", default="runs/compare", help="root of the run directories (default runs/compare)")
    parser.add_argument("--task-card", default=None,
                        help="task card path or example-task name; default: the recipe's card")
    parser.add_argument("--task-metric", default="auto", choices=METRICS,
                        help="auto: fidelity to the teacher where the probes score it, else the card's metric")
    parser.add_argument("--launcher", default="subprocess", choices=["subprocess", "inprocess"],
                        help="subprocess (default): one clean process per run; inprocess: faster start, shared memory")
    parser.add_argument("--num-threads", type=int, default=None,
                        help="torch/OpenMP threads per run (default: the library's; with --jobs N, the CPUs over N)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, each in its own child process (with --launcher subprocess); "
                             "--num-threads then defaults to the CPUs over this (default 1)")
    parser.add_argument("--eval-batch-size", type=int, default=8, help="batch size of the test-split scoring")
    parser.add_argument("--no-train", action="store_true",
                        help="train nothing: tabulate the runs already finished (e.g. while the comparison runs)")
    parser.add_argument("--keep-checkpoints", action="store_true",
                        help="keep the checkpoints of each run trained (by default they are removed once its student "
                             "and summary are written: they only serve a resume, and weigh about three students each)")
    args, overrides = parser.parse_known_args(argv)

    try:
        methods = resolve_methods([a.strip() for a in args.allocators.split(",") if a.strip()], list(ALLOCATORS),
                                  args.target_capability)
    except ValueError as err:
        parser.error(f"--allocators {args.allocators!r}: {err}")
    allocators = [m.name for m in methods]
    reference = args.reference if args.reference is not None else "read" if "read" in allocators else allocators[0]
    if reference not in allocators:
        parser.error(f"--reference {reference!r} is not one of the methods compared ({', '.join(allocators)})")
    if args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if not 0 <= args.first_seed <= 2**32 - args.seeds:
        parser.error(f"--first-seed must be in [0, {2**32 - args.seeds}] (seeds are 32-bit), got {args.first_seed}")
    if args.num_threads is not None and args.num_threads < 1:
        parser.error(f"--num-threads must be >= 1, got {args.num_threads}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.jobs > 1 and args.launcher != "subprocess":
        parser.error(f"--jobs {args.jobs} trains runs side by side in child processes: it needs --launcher subprocess, "
                     f"not {args.launcher}")
    check_overrides(overrides)
    _check_method_overrides(overrides, methods)
    recipe = load_recipe(args.config)
    root = Path(args.out) / Path(args.config).stem
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    # Seed-major order: a comparison stopped part-way has every allocator on its first seeds.
    specs = [RunSpec(m.name, s, root / m.name / f"seed_{s}", m) for s in seeds for m in methods]
    try:
        derived = {(sp.allocator, sp.seed): derive_recipe(recipe, sp, root, args.config) for sp in specs}
    except ValueError as err:
        raise SystemExit(f"read-train compare: the recipe was refused: {err}") from None

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    env = dict(os.environ)
    if args.jobs > 1 and args.num_threads is None:  # the runs share the CPUs
        args.num_threads = max(1, (os.cpu_count() or 1) // args.jobs)
    if args.num_threads is not None:
        env.update(OMP_NUM_THREADS=str(args.num_threads), MKL_NUM_THREADS=str(args.num_threads))
        import torch

        torch.set_num_threads(args.num_threads)

    # The first run's recipe, resolved by the real parser: task card, teacher, probe settings.
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="read_compare_") as tmp:
        first = Path(tmp) / "recipe.yaml"
        first.write_text(yaml.safe_dump(derived[(specs[0].allocator, specs[0].seed)], sort_keys=False))
        setup = _resolve_setup(first, overrides, args.task_card, args.task_metric)
    if args.target_capability is not None and args.target_capability not in setup.capabilities:
        close = difflib.get_close_matches(args.target_capability, setup.capabilities, n=3)
        raise SystemExit(f"read-train compare: --target-capability {args.target_capability!r} is not one of the "
                         f"recipe's capabilities {setup.capabilities}"
                         + (f" (did you mean {' or '.join(close)}?)" if close else ""))
    say(f"compare: {len(specs)} runs ({', '.join(allocators)} x seeds {seeds}) under {root}; task {setup.card.name} "
        f"({setup.card_reason}), test split, metric {setup.metric}")
    safe_teacher = "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in setup.teacher)
    scorer = _TaskScorer(setup, root / f"task_references_{safe_teacher}.jsonl", args.eval_batch_size)
    scorer.prepare()

    commit = git_commit()  # now, before other work can land in the checkout during the runs
    rows: list[dict[str, Any]] = []
    outcomes: dict[str, dict[int, list[dict[str, Any]]]] = {}  # allocator -> seed -> per-item outcomes
    started = time.perf_counter()

    def train(position: str, spec: RunSpec, fit_args: list[str], stop: threading.Event | None = None) -> None:
        resumed = " (resuming from last.ckpt)" if "--ckpt_path" in fit_args else ""
        say(f"{position} {spec.label}: training in {spec.run_dir}{resumed}")
        t0 = time.perf_counter()
        if args.launcher == "subprocess":
            _run_subprocess(spec, fit_args, env, say, stop)
        else:
            _run_inprocess(spec, fit_args)
        if not _finished(spec.run_dir):
            raise SystemExit(f"read-train compare: {spec.label} ended without summary.json and student/ in "
                             f"{spec.run_dir}; remove that directory to train the run again from scratch")
        say(f"{position} {spec.label}: trained in {time.perf_counter() - t0:.0f}s "
            f"(total {time.perf_counter() - started:.0f}s)")
        if not args.keep_checkpoints:
            freed = _remove_checkpoints(spec.run_dir)
            if freed:
                say(f"{position} {spec.label}: removed its checkpoints ({freed / 2**30:.1f} GiB; "
                    "--keep-checkpoints keeps them)")

    trained_at_once: set[str] = set()
    if args.jobs > 1 and not args.no_train:  # train first, N at a time; the loop below then scores them in order
        todo = [(f"[{i}/{len(specs)}]", spec, fit_args) for i, spec in enumerate(specs, start=1)
                if (fit_args := _prepare(spec, derived[(spec.allocator, spec.seed)], overrides)) is not None]
        say(f"compare: training {len(todo)} runs, {args.jobs} at a time")
        _train_at_once(todo, args.jobs, train)
        trained_at_once = {spec.label for _, spec, _ in todo}
    for i, spec in enumerate(specs, start=1):
        if args.no_train and not _finished(spec.run_dir):
            say(f"[{i}/{len(specs)}] {spec.label}: not finished, left out of the table (--no-train)")
            continue
        fit_args = _prepare(spec, derived[(spec.allocator, spec.seed)], overrides)
        if fit_args is None:
            if spec.label not in trained_at_once:
                say(f"[{i}/{len(specs)}] {spec.label}: finished earlier, reused ({spec.run_dir})")
        else:
            train(f"[{i}/{len(specs)}]", spec, fit_args)
        row: dict[str, Any] = {"allocator": spec.allocator, "seed": spec.seed}
        result, items = scorer(spec.run_dir)
        row.update(result)
        row.update(run_metrics(spec.run_dir, setup.k))
        outcomes.setdefault(spec.allocator, {})[spec.seed] = items
        answers = "".join(f"{name} {row[f'answer_{name}']:.1f}%, " for name in ("agreement", "accuracy", "degenerate")
                          if f"answer_{name}" in row)
        say(f"[{i}/{len(specs)}] {spec.label}: {answers}task utility {row['task_utility']:.2f}, "
            f"spent {int(row['spent_tokens'])} tokens")
        rows.append(row)

    if not rows:
        raise SystemExit(f"read-train compare: no finished run under {root} to tabulate")
    rows.sort(key=lambda r: (allocators.index(r["allocator"]), r["seed"]))
    stats = aggregate(rows)
    paired = paired_against_best(outcomes, stats, ours=reference)
    counts = {a: sum(r["allocator"] == a for r in rows) for a in stats}
    command = "read-train compare " + " ".join(argv if argv is not None else sys.argv[2:])
    budget = _budget(root / rows[0]["allocator"] / f"seed_{rows[0]['seed']}")
    missing = [sp.label for sp in specs if not _finished(sp.run_dir)]
    header = [
        f"## Allocator comparison: {Path(args.config).name}",
        "",
        f"- command: `{command.strip()}`",
        f"- task: {setup.card.name}, test split, metric: {setup.metric} (0-100); answers: greedy, scored by the "
        f"card's rule ({_answer_scope(setup)})",
        f"- budget: {budget} tokens per run; "
        f"seeds: {', '.join(map(str, seeds))}; mean ± sample std over seeds",
        f"- off-target change: mean profile change outside the top-{setup.k} required capabilities",
    ]
    header.append(f"- code: {_trained_at([sp.run_dir for sp in specs if _finished(sp.run_dir)], commit)}")
    if missing:
        header.append(f"- not finished, left out: {', '.join(missing)}")
    described = {m.name: _describe(m, derived[(m.name, seeds[0])], [root / m.name / f"seed_{s}" for s in seeds])
                 for m in methods if m.name in stats}
    # The undistilled student, over every run's first probe (the same student before any method trains it).
    before = aggregate([{"allocator": "s_0", "seed": r["seed"], **start_profile(root / r["allocator"] /
                                                                                f"seed_{r['seed']}")} for r in rows])
    text = markdown(stats, counts, header, paired, described, before["s_0"],
                    paired_against_baselines(outcomes, rows, ours=reference), ours=reference)
    (root / "compare.md").write_text(text, encoding="utf-8")
    (root / "table1.md").write_text("\n".join([*header, "", *table1(stats, counts, described, before["s_0"])]) + "\n",
                                    encoding="utf-8")
    write_csv(root / "compare.csv", rows, stats)
    print(text, end="")
    say(f"compare: wrote {root / 'compare.md'}, {root / 'table1.md'} and {root / 'compare.csv'}")
    return 0


def _train_at_once(todo: Sequence[tuple[str, RunSpec, list[str]]], jobs: int,
                   train: Callable[[str, RunSpec, list[str], threading.Event], None]) -> None:
    """Train ``todo``'s runs, ``jobs`` at a time, in the order given. The first failure (or Ctrl-C)
    stops the others, each left resumable, and is raised once they have stopped."""
    stop, failures = threading.Event(), []

    def work(item: tuple[str, RunSpec, list[str]]) -> None:
        if stop.is_set():
            return
        try:
            train(*item, stop)
        except BaseException as err:
            if not stop.is_set():
                failures.append(err)
                stop.set()

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="compare-run") as pool:
        futures = [pool.submit(work, item) for item in todo]
        try:
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C in the main thread: the workers stop their children
            stop.set()
            raise
    if failures:
        raise failures[0]


def _check_method_overrides(overrides: Sequence[str], methods: Sequence[Method]) -> None:
    """A paper baseline is defined by its loss and teacher prompt: an override of one of those keys
    would give every such run one value and leave the table's rows named for what they are not."""
    if not any(m.paper for m in methods):
        return
    for arg in overrides:
        key = arg.split("=", 1)[0].rstrip("+")
        if any(key == f"--{k}" or f"--{k}".startswith(key + ".") for k in METHOD_KEYS):
            raise SystemExit(f"read-train compare: {key} cannot be passed through with the paper baselines, which each "
                             f"set it (they set {', '.join(METHOD_KEYS)}; docs/guide.md, "
                             "\"The paper's baseline table\")")


def _describe(method: Method, derived: Mapping[str, Any], run_dirs: Sequence[Path]) -> dict[str, str]:
    """The words of a method's Table 1 columns, from the configuration its first finished run
    resolved (``config.yaml``: the recipe with the fit overrides), else the recipe compare wrote."""
    for run_dir in run_dirs:
        try:
            resolved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        except (FileNotFoundError, yaml.YAMLError):
            continue
        if isinstance(resolved, dict):
            derived = resolved
            break
    model, data = derived.get("model") or {}, derived.get("data") or {}
    bandit = next((cb.get("init_args") or {} for cb in (derived.get("trainer") or {}).get("callbacks") or []
                   if isinstance(cb, dict) and str(cb.get("class_path", "")).endswith(BANDIT)), {})
    allocator = bandit.get("allocator", method.allocator)
    if allocator == "single":
        target = (bandit.get("allocator_kwargs") or {}).get("capability") or _top_capability(run_dirs)
        mixture = f"one-hot: {target}"
    else:
        mixture = allocator
    prompt = data.get("teacher_prompt")
    words = "plain" if not prompt else "CoT" if prompt in ("cot", CHAIN_OF_THOUGHT) else "custom"
    signal = method.signal or ("recipe" if method.allocator == method.name else "")
    loss = describe_loss(model)
    if method.objective:
        loss = f"{method.objective}: {loss}"
    return {"signal": signal, "loss": loss, "teacher prompt": words, "data mixture": mixture}


def _top_capability(run_dirs: Sequence[Path]) -> str:
    """The requirement vector's top capability as the method's finished runs recorded it: where
    the one-hot mixture went when no target was named (the same rule as the ``single`` allocator)."""
    from read_lightning.core.capabilities import top_k

    for run_dir in run_dirs:
        try:
            requirement = summary_part(read_json(run_dir / "summary.json"), ALLOCATION).get("requirement")
        except (FileNotFoundError, ValueError):
            continue
        if requirement:
            return top_k(requirement, 1)[0]
    return "the top required capability"


def _answer_scope(setup: _Setup) -> str:
    """What the answer columns can say for this task and metric, in words."""
    from read_lightning.evaluation.task_answers import has_gold

    parts = ["agreement with the teacher's greedy test answers" if setup.metric == "teacher_fidelity" else
             "no agreement: the teacher's test answers are made only for --task-metric teacher_fidelity",
             "accuracy against gold" if has_gold(setup.card) else "no accuracy: the card has no gold answers",
             "degenerate share"]
    return "; ".join(parts)


def _trained_at(run_dirs: Sequence[Path], tabulated: str | None) -> str:
    """Which code trained the runs (``summary.json``'s ``code``), and which tabulated them: a
    comparison reuses finished runs, which may come from older commits."""
    counts: dict[str, int] = {}
    for run_dir in run_dirs:
        try:
            code = read_json(run_dir / "summary.json").get("code")
        except (FileNotFoundError, ValueError):
            code = None
        commits = code.get("commits") if isinstance(code, dict) else None
        if not commits:
            name = "not recorded (runs from before the code was recorded)"
        else:
            name = describe_commits(commits)
        counts[name] = counts.get(name, 0) + 1
    runs = "; ".join(f"{name} ({n} run{'s' * (n != 1)})" for name, n in counts.items())
    # the commit is read once, when this command starts; runs it trains later in child processes
    # record the commit of their own start, so the two can differ within one command
    return f"trained at {runs or 'no run'}; tabulated at {tabulated or 'not a git checkout'} (the commit when this command started)"


def _budget(run_dir: Path) -> str:
    try:
        return f"{read_json(run_dir / 'ledger.json', required=['budget'])['budget']:,}"
    except (FileNotFoundError, KeyError, ValueError):
        return "?"
