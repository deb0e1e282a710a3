"""Intervention data for the requirement identifier: what a short distillation does to a task.

For each task card and each of ``num_allocations`` sparse random allocations ``w`` (Dirichlet
weights on a random support of 1-3 capabilities), run a short distillation with the data
mixture fixed to ``w`` (``CapabilityDataModule`` + ``DistillationModule`` + a Lightning
``Trainer``, 1-2 intervals, no bandit), then record

* ``delta_s``: the change of the capability profile (``CapabilityProbe``), and
* ``delta_u``: the change of the task's utility (``evaluate_task``),

both relative to the undistilled student. Every intervention starts from the same weights (a
deep copy of the compressed base student); the teacher is loaded once. Each result is one JSONL
row, appended and flushed as soon as it exists, so an interrupted collection resumes: rows
already in the file are skipped by their ``(card_name, index)`` key. Allocation ``index`` of a
card is drawn from an RNG seeded by ``(seed, card name, index)`` alone, so a resumed run draws
exactly the allocations a complete run would have.

``identifier.fit_identifier`` (``read-train identifier fit``) fits ``g_phi`` on these rows.

Utility on the embedded default is fidelity to the teacher's greedy answers on the card's dev
split (``--utility reference``, docs/method.md "Measuring on the embedded default"): the small
student solves almost nothing exactly, so native exact-match/pass@1 would be 0 before and after
and ``delta_u`` pure zeros. ``--utility native`` uses the card's own evaluation type.

Everything heavy comes in through an :class:`InterventionSetup`, so tests (and other model
families) inject a tiny student, a scripted teacher and cheap probe/utility functions.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import lightning as L
import numpy as np
import torch

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, check_capabilities
from read_lightning.core.jsonl import read_jsonl
from read_lightning.evaluation.tasks import TaskCard
from read_lightning.requirement.cards import card_text, load_card
from read_lightning.teachers.generation import PromptSource, Teacher
from read_lightning.teachers.models import EMBEDDED
from read_lightning.teachers.specs import TeacherSpec
from read_lightning.training.data import CapabilityDataModule
from read_lightning.training.module import DistillationModule

log = logging.getLogger(__name__)

__all__ = [
    "ROW_FIELDS",
    "InterventionSetup",
    "ProfileProbe",
    "collect_interventions",
    "embedded_setup",
    "interventions_main",
    "append_row",
    "read_interventions",
    "read_rows",
    "run_intervention",
    "sample_allocation",
]

# Fields every intervention row has; a resumed file is checked against them.
ROW_FIELDS: tuple[str, ...] = (
    "card",
    "card_name",
    "index",
    "seed",
    "allocation",
    "budget",
    "delta_s",
    "delta_u",
    "settings",
)


class ProfileProbe(Protocol):
    def evaluate(self, model: torch.nn.Module, tokenizer: Any) -> dict[str, float]:
        """The capability profile of ``model``: one 0-100 score per capability."""
        ...


UtilityFn = Callable[[TaskCard, torch.nn.Module, Any], float]


@dataclass
class InterventionSetup:
    """The components an intervention needs; built by :func:`embedded_setup` or by hand.

    Attributes:
        student: the base student; every intervention trains a deep copy, the base stays put.
        tokenizer: the student's tokenizer (encodes training data, probes and tasks).
        teacher: answers the capability prompts (``generation.Teacher``).
        probe: measures the profile, ``probe.evaluate(model, tokenizer) -> {capability: 0-100}``.
        utility: task utility 0-100, ``utility(card, model, tokenizer) -> float``.
        capabilities: the capabilities allocations and profiles range over.
        prompt_source: prompts per capability; ``None`` uses the built-in template library.
        description: what the components are (model names, ...), recorded in every row's settings.
    """

    student: torch.nn.Module
    tokenizer: Any
    teacher: Teacher
    probe: ProfileProbe
    utility: UtilityFn
    capabilities: list[str] = field(default_factory=lambda: list(DEFAULT_CAPABILITIES))
    prompt_source: PromptSource | None = None
    description: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Every intervention starts the prompt source from this state (see run_intervention).
        state = getattr(self.prompt_source, "state_dict", None)
        self._source_state = copy.deepcopy(state()) if callable(state) else None

    def reset(self) -> None:
        """Put the shared teacher and prompt source back to their starting state, so that an
        intervention's data depends on its own seed alone, not on how many ran before it in
        this process (a resumed collection must reproduce the rows an uninterrupted one wrote)."""
        if hasattr(self.teacher, "calls"):
            self.teacher.calls = 0  # the teacher's sampling seed is its seed and this counter
        if self._source_state is not None:
            self.prompt_source.load_state_dict(copy.deepcopy(self._source_state))  # type: ignore[union-attr]


# --------------------------------------------------------------------------- allocations


def sample_allocation(
    capabilities: Sequence[str], rng: np.random.Generator, max_support: int = 3, alpha: float = 1.0
) -> dict[str, float]:
    """A sparse random mixture: a support of 1..``max_support`` capabilities, Dirichlet(``alpha``) on it.

    Returns a distribution over ``capabilities`` with zeros outside the support. Sparse supports
    make ``delta_s`` move few capabilities at a time, which is what identifies r.
    """
    if max_support < 1:
        raise ValueError(f"max_support must be >= 1, got {max_support}")
    if alpha <= 0:
        raise ValueError(f"dirichlet alpha must be > 0, got {alpha}")
    size = int(rng.integers(1, min(max_support, len(capabilities)) + 1))
    support = rng.choice(len(capabilities), size=size, replace=False)
    weights = rng.dirichlet(np.full(size, alpha))
    alloc = {c: 0.0 for c in capabilities}
    for i, w in zip(support, weights):
        alloc[capabilities[int(i)]] = float(w)
    return alloc


def _allocation_rng(seed: int, card_name: str, index: int) -> np.random.Generator:
    # Keyed by the row key alone (crc32: stable across processes, unlike hash()), so a resumed
    # collection draws the same allocation for a given (card, index) as an uninterrupted one.
    return np.random.default_rng([seed, zlib.crc32(card_name.encode("utf-8")), index])


# --------------------------------------------------------------------------- one intervention


class _InterventionModule(DistillationModule):
    """``DistillationModule`` that keeps no student on disk: an intervention only needs its scores."""

    def _write_outputs(self) -> None:
        self._outputs_written = True  # neither at train end nor at fit end: no student, ledger or summary


@contextlib.contextmanager
def _run_dir(path: str | os.PathLike | None) -> Iterator[Path]:
    """A fresh directory for one intervention: ``path`` (emptied, then kept) or a temporary one (removed)."""
    if path is None:
        with tempfile.TemporaryDirectory(prefix="read_intervention_") as tmp:
            yield Path(tmp)
        return
    path = Path(path)
    # Stale interval files would be reused by the data module as a "resumed" interval.
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Silence Lightning's per-fit info lines ("GPU available ...") for a block, then restore them."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def run_intervention(
    setup: InterventionSetup,
    allocation: Mapping[str, float],
    *,
    budget_tokens: int,
    num_intervals: int = 1,
    seed: int = 0,
    lr: float = 1e-4,
    max_new_tokens: int = 64,
    max_length: int = 192,
    max_tokens_per_batch: int = 2048,
    generation_batch_size: int = 16,
    accelerator: str = "auto",
    run_dir: str | os.PathLike | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Distil a fresh copy of ``setup.student`` on the fixed mixture ``allocation``.

    Returns the trained student and stats (``tokens_spent``, ``generation_tokens``,
    ``training_tokens``, ``steps``, ``seconds``). Generated data goes to ``run_dir`` (default: a
    temporary directory, removed). The caller's RNG state is left as it was.
    """
    start = time.perf_counter()
    # The trainer, module and data module of the distillation before this one are reference cycles
    # that hold a student's weights and its optimizer state; few Python objects are made between two
    # distillations, so the collector rarely reaches them on its own. Uncollected, a read-train transfer
    # study of the embedded default grew by about 2 GB a distillation, to 24 GB at its 13th, and was
    # killed for memory.
    gc.collect()
    setup.reset()
    student = copy.deepcopy(setup.student).train().requires_grad_(True)
    # Quiet: one short fit per row, so Lightning's device banner and its "few batches / no
    # validation loop" hints would only bury the progress lines.
    with _run_dir(run_dir) as where, _quiet_lightning(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="lightning")
        dm = CapabilityDataModule(
            capabilities=setup.capabilities,
            mixture=dict(allocation),
            budget_tokens=budget_tokens,
            num_intervals=num_intervals,
            max_tokens_per_batch=max_tokens_per_batch,
            max_length=max_length,
            max_new_tokens=max_new_tokens,
            generation_batch_size=generation_batch_size,
            run_dir=str(where),
            seed=seed,
        ).attach(teacher=setup.teacher, tokenizer=setup.tokenizer, prompt_source=setup.prompt_source)
        module = _InterventionModule(lr=lr, warmup_fraction=0.0).attach(student=student, tokenizer=setup.tokenizer)
        trainer = L.Trainer(
            max_epochs=num_intervals,
            reload_dataloaders_every_n_epochs=1,  # one interval per epoch, as in a real run
            accelerator=accelerator,
            devices=1,
            default_root_dir=str(where),
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        # manual_seed seeds every CUDA device too, so their states are forked with the CPU's
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
            torch.manual_seed(seed)
            trainer.fit(module, datamodule=dm)
        summary = dm.ledger.summary()
    stats = {
        "tokens_spent": int(summary["spent"]),
        "generation_tokens": int(summary.get("generation", 0)),
        "training_tokens": int(summary.get("training", 0)),
        "steps": int(trainer.global_step),
        "seconds": time.perf_counter() - start,
    }
    return module.student, stats


# --------------------------------------------------------------------------- the JSONL file


def _repair_torn_tail(path: Path) -> None:
    """Drop a last line cut off by a crash mid-write (no newline and not JSON), with a warning.

    Rows are written whole and flushed, so only the very last line can be torn; anything else
    that does not parse is corruption and is left for ``read_jsonl`` to report.
    """
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:])
    except ValueError:
        warnings.warn(f"{path}: dropping a torn last row (interrupted write): {data[cut:][:60]!r}", stacklevel=3)
        with path.open("r+b") as fh:
            fh.truncate(cut)
        return
    with path.open("ab") as fh:  # a whole row that only lacks its newline
        fh.write(b"\n")


def read_interventions(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of an intervention file; a corrupt or incomplete row raises, naming file and line."""
    return read_rows(path, ROW_FIELDS)


def read_rows(path: str | os.PathLike, required: Sequence[str]) -> list[dict[str, Any]]:
    """The rows of an appended, resumable JSONL file (none if it does not exist yet): a torn last
    row is dropped, a corrupt or incomplete one raises, naming file and line."""
    path = Path(path)
    if not path.exists():
        return []
    _repair_torn_tail(path)
    return read_jsonl(path, required=required)


def append_row(path: Path, row: Mapping[str, Any]) -> None:
    """Append one row as one write, flushed and synced: a crash loses at most this row."""
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# --------------------------------------------------------------------------- collection


def collect_interventions(
    setup: InterventionSetup,
    cards: Sequence[TaskCard],
    output: str | os.PathLike,
    *,
    num_allocations: int = 8,
    budget_tokens: int = 20_000,
    num_intervals: int = 1,
    seed: int = 0,
    max_support: int = 3,
    alpha: float = 1.0,
    lr: float = 1e-4,
    max_new_tokens: int = 64,
    max_length: int = 192,
    max_tokens_per_batch: int = 2048,
    generation_batch_size: int = 16,
    accelerator: str = "auto",
    work_dir: str | os.PathLike | None = None,
    extra_settings: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Run the missing interventions of ``cards`` and append them to ``output``; returns the new rows.

    Allocation ``i`` of a card trains with seed ``seed + i``. Rows already in ``output`` (key
    ``(card_name, index)``) are skipped; rows collected under other settings (budget, lr, models,
    ...) are an error rather than silently mixed into one data set.
    """
    if num_allocations < 0:
        raise ValueError(f"num_allocations must be >= 0, got {num_allocations}")
    if num_intervals not in (1, 2):
        raise ValueError(f"an intervention is a short distillation of 1 or 2 intervals, got {num_intervals}")
    names = [c.name for c in cards]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"task card names must be unique (they key the rows), repeated: {dupes!r}")
    output = Path(output)
    settings = {
        "budget_tokens": budget_tokens,
        "num_intervals": num_intervals,
        "seed": seed,
        "max_support": max_support,
        "alpha": alpha,
        "lr": lr,
        "max_new_tokens": max_new_tokens,
        "max_length": max_length,
        "max_tokens_per_batch": max_tokens_per_batch,
        "capabilities": list(setup.capabilities),
        **setup.description,
        **(extra_settings or {}),
    }
    done: set[tuple[str, int]] = set()
    for row in read_interventions(output):
        if row["settings"] != settings:
            changed = sorted(k for k in {*settings, *row["settings"]} if settings.get(k) != row["settings"].get(k))
            raise ValueError(
                f"{output}: row ({row['card_name']!r}, {row['index']}) was collected with other settings "
                f"(differ in {changed!r}); write to a new output file"
            )
        done.add((row["card_name"], int(row["index"])))
    todo = [(card, i) for card in cards for i in range(num_allocations) if (card.name, i) not in done]
    log.info("%d interventions to run, %d already in %s", len(todo), len(done), output)
    if not todo:
        return []
    output.parent.mkdir(parents=True, exist_ok=True)
    s_before = setup.probe.evaluate(setup.student, setup.tokenizer)
    missing = [c for c in setup.capabilities if c not in s_before]
    if missing:
        raise ValueError(f"the probe returned no score for capabilities {missing!r}")
    u_before: dict[str, float] = {}
    new_rows = []
    for n, (card, i) in enumerate(todo, start=1):
        if card.name not in u_before:
            u_before[card.name] = float(setup.utility(card, setup.student, setup.tokenizer))
        allocation = sample_allocation(setup.capabilities, _allocation_rng(seed, card.name, i), max_support, alpha)
        run_dir = Path(work_dir) / f"{card.name}_{i:04d}" if work_dir is not None else None
        student, stats = run_intervention(
            setup,
            allocation,
            budget_tokens=budget_tokens,
            num_intervals=num_intervals,
            seed=seed + i,
            lr=lr,
            max_new_tokens=max_new_tokens,
            max_length=max_length,
            max_tokens_per_batch=max_tokens_per_batch,
            generation_batch_size=generation_batch_size,
            accelerator=accelerator,
            run_dir=run_dir,
        )
        if stats["training_tokens"] == 0:
            # Prompts longer than max_length (long_context, tool_use templates) are answered and
            # paid for but dropped from training: the row then measures nothing but noise.
            warnings.warn(
                f"intervention {card.name} #{i} ({sorted(c for c, w in allocation.items() if w > 0)}) trained on "
                f"no tokens: every example was longer than max_length={max_length}; raise --max-length",
                stacklevel=2,
            )
        s_after = setup.probe.evaluate(student, setup.tokenizer)
        u_after = float(setup.utility(card, student, setup.tokenizer))
        del student
        row = {
            "card": str(card.path) if card.path is not None else card.name,
            "card_name": card.name,
            "card_text": card_text(card),  # the identifier's input, so the file stands alone
            "index": i,
            "seed": seed + i,
            "allocation": {c: w for c, w in allocation.items() if w > 0},
            "budget": budget_tokens,
            "delta_s": {c: float(s_after[c] - s_before[c]) for c in setup.capabilities},
            "delta_u": u_after - u_before[card.name],
            "s_before": {c: float(s_before[c]) for c in setup.capabilities},
            "s_after": {c: float(s_after[c]) for c in setup.capabilities},
            "u_before": u_before[card.name],
            "u_after": u_after,
            **stats,
            "settings": settings,
        }
        append_row(output, row)
        new_rows.append(row)
        top = ", ".join(f"{c} {w:.2f}" for c, w in row["allocation"].items())
        print(
            f"[{n}/{len(todo)}] {card.name} #{i} ({top}): dU {row['delta_u']:+.3f}, "
            f"mean dS {np.mean(list(row['delta_s'].values())):+.3f}, {stats['seconds']:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    return new_rows


# --------------------------------------------------------------------------- the real setup


def embedded_setup(
    teacher: str = EMBEDDED,
    student: str = EMBEDDED,
    student_layers: str | None = "::3",
    capabilities: Sequence[str] | None = None,
    *,
    probe_limit: int | None = 4,
    task_limit: int | None = 8,
    batch_size: int = 8,
    utility: str = "reference",
    reference_dir: str | os.PathLike = "interventions_cache",
    max_new_tokens: int = 64,
    temperature: float = 0.2,
    seed: int = 0,
    cache_dir: str | None = None,
    reference_max_new_tokens: int = 48,
    teacher_spec: TeacherSpec | None = None,
) -> InterventionSetup:
    """The real components: teacher loaded once (shared), student compressed from it, probe and utility.

    The probe scores fidelity to the teacher's greedy answers (cached in ``reference_dir``), the
    way the training callbacks do on the embedded default; ``utility="reference"`` scores the
    task the same way on its dev split, ``"native"`` with the card's own evaluation type.

    ``teacher_spec``: a teacher that does not run in this process (``HTTPTeacherSpec``, a
    recipe's ``data.teacher``) is built from its spec and asked for the references through
    ``generate``, as the training callbacks ask it; the student is then loaded on its own. An
    in-process spec is loaded by its model name (``teacher``), as before.
    """
    from read_lightning.evaluation.probes import CapabilityProbe
    from read_lightning.evaluation.tasks import evaluate_task, task_references
    from read_lightning.teachers.generation import HFTeacher
    from read_lightning.teachers.models import compress_layers, load_model, load_tokenizer, similarity_keep
    from read_lightning.training.module import calibration_prompts

    if utility not in ("reference", "native"):
        raise ValueError(f"utility must be 'reference' or 'native', got {utility!r}")
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    reference_dir = Path(reference_dir)
    tokenizer = load_tokenizer(student, cache_dir)
    remote = teacher_spec is not None and not teacher_spec.in_process
    if remote:
        # The teacher runs elsewhere: asked for its answers (and references) through generate().
        generator = teacher_spec.build(tokenizer, seed=seed, cache_dir=cache_dir,
                                       sampling={"temperature": temperature, "max_new_tokens": max_new_tokens})
        teacher_model, teacher_tok = generator, getattr(generator, "tokenizer", None) or tokenizer
        base = load_model(student, cache_dir=cache_dir)
    else:
        teacher_model = load_model(teacher, cache_dir=cache_dir, shared=True)
        if torch.cuda.is_available():
            teacher_model.to("cuda")
        teacher_tok = load_tokenizer(teacher, cache_dir)
        # compress_layers deep-copies, so the shared teacher is never the student.
        base = teacher_model if student == teacher else load_model(student, cache_dir=cache_dir)
    # "similarity:N" ranks the layers on the same calibration prompts a training run uses
    calibration = calibration_prompts(tokenizer) if student_layers and similarity_keep(student_layers) else None
    student_model = compress_layers(base, student_layers, calibration) if student_layers else copy.deepcopy(base)
    student_model = student_model.cpu().requires_grad_(True)
    probe = CapabilityProbe(capabilities, batch_size=batch_size, limit=probe_limit)
    probe.build_references(teacher_model, teacher_tok, reference_dir / "probe_references.jsonl",
                           max_new_tokens=reference_max_new_tokens)
    refs: dict[str, list[dict[str, Any]]] = {}

    def task_utility(card: TaskCard, model: torch.nn.Module, tok: Any) -> float:
        references = None
        if utility == "reference":
            if card.name not in refs:
                refs[card.name] = task_references(card, teacher_model, teacher_tok, reference_dir / "task_references.jsonl")
            references = refs[card.name]
        return float(evaluate_task(card, model, tok, "dev", task_limit, batch_size, references=references)["utility"])

    return InterventionSetup(
        student=student_model,
        tokenizer=tokenizer,
        teacher=generator if remote else HFTeacher(
            teacher_model, teacher_tok, batch_size=16, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed
        ),
        probe=probe,
        utility=task_utility,
        capabilities=capabilities,
        description={
            "teacher": teacher,
            **({"teacher_spec": repr(teacher_spec)} if remote else {}),
            "student": student,
            "student_layers": student_layers,
            "probe_limit": probe_limit,
            "task_limit": task_limit,
            "utility": utility,
        },
    )


# --------------------------------------------------------------------------- command line


def interventions_main(argv: list[str] | None = None, *, setup: InterventionSetup | None = None) -> int:
    """``read-train interventions CARD [CARD ...] --output rows.jsonl``: collect intervention data.

    ``setup`` replaces the models built from the options (tests, other model families); the
    model options are then ignored.
    """
    parser = argparse.ArgumentParser(prog="read-train interventions", description=__doc__.split("\n\n")[0])
    parser.add_argument("cards", nargs="+", help="task card paths or example task names (arith_word, ...)")
    parser.add_argument("--output", "-o", required=True, help="JSONL file rows are appended to (resumable)")
    parser.add_argument("--num-allocations", type=int, default=8, help="interventions per card")
    parser.add_argument("--budget-tokens", type=int, default=20_000, help="token budget of one intervention")
    parser.add_argument("--num-intervals", type=int, default=1, choices=[1, 2])
    parser.add_argument("--seed", type=int, default=0, help="allocation i of a card trains with seed + i")
    parser.add_argument("--max-support", type=int, default=3, help="largest number of capabilities in an allocation")
    parser.add_argument("--dirichlet-alpha", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="teacher answer length")
    parser.add_argument(
        "--max-length",
        type=int,
        default=192,
        help="longest training row; long_context/tool_use template prompts (~450-2400 tokens) need more",
    )
    parser.add_argument("--max-tokens-per-batch", type=int, default=2048)
    parser.add_argument("--capabilities", nargs="+", default=None)
    parser.add_argument("--teacher", default=EMBEDDED)
    parser.add_argument("--student", default=EMBEDDED)
    parser.add_argument("--student-layers", default="::3", help="decoder layers the student keeps ('' keeps all)")
    parser.add_argument("--probe-limit", type=int, default=4, help="probe items per capability")
    parser.add_argument("--task-limit", type=int, default=8, help="dev rows scored per task")
    parser.add_argument("--batch-size", type=int, default=8, help="evaluation batch size")
    parser.add_argument("--utility", default="reference", choices=["reference", "native"])
    parser.add_argument("--reference-dir", default=None, help="teacher reference caches (default: next to --output)")
    parser.add_argument("--work-dir", default=None, help="keep each intervention's generated data here")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument(
        "--num-threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's); on a busy shared CPU one thread can be "
        "much faster than two (docs/results.md)",
    )
    parser.add_argument("--cache-dir", default=None, help="model cache (embedded model conversion)")
    args = parser.parse_args(argv)

    output = Path(args.output)
    if args.num_threads is not None:
        torch.set_num_threads(args.num_threads)
    if setup is None:
        setup = embedded_setup(
            args.teacher,
            args.student,
            args.student_layers or None,
            args.capabilities,
            probe_limit=args.probe_limit,
            task_limit=args.task_limit,
            batch_size=args.batch_size,
            utility=args.utility,
            reference_dir=args.reference_dir or output.with_name(output.stem + "_cache"),
            max_new_tokens=args.max_new_tokens,
            seed=args.seed,
            cache_dir=args.cache_dir,
        )
    elif args.capabilities is not None:
        check_capabilities(args.capabilities, setup.capabilities)
        setup = copy.copy(setup)
        setup.capabilities = list(args.capabilities)
    cards = [load_card(name, setup.capabilities) for name in args.cards]
    rows = collect_interventions(
        setup,
        cards,
        output,
        num_allocations=args.num_allocations,
        budget_tokens=args.budget_tokens,
        num_intervals=args.num_intervals,
        seed=args.seed,
        max_support=args.max_support,
        alpha=args.dirichlet_alpha,
        lr=args.lr,
        max_new_tokens=args.max_new_tokens,
        max_length=args.max_length,
        max_tokens_per_batch=args.max_tokens_per_batch,
        accelerator=args.accelerator,
        work_dir=args.work_dir,
    )
    print(json.dumps({"output": str(output), "new_rows": len(rows)}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(interventions_main())
