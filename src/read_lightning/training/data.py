"""Teacher-answered capability batches: the teacher's generated pool as the budget stream's source.

One training epoch is one allocation interval. The stream (``stream.py``, shared with
``MixtureDataModule``) owns the ledger, the mixture, the batches and the training charges; this
module says where an interval's examples come from. At the start of each interval it has the
interval's rows made (by the ``GenerationPlanner``, ``generation_plan.py``: prompts drawn from
the current mixture and answered by the teacher until the interval's share of the budget is
committed) or read back (from the ``IntervalStore``, ``interval_store.py``), charges their
generation tokens to the ledger once, and gives the stream one example per (prompt, answer) row
to be trained on. The ledger never lets B be exceeded.

Resuming and several processes:

- an interval's prompts and answers go to ``generated/interval_NNN.jsonl`` and the planner's
  sampling state after them (prompt RNG, template window, teacher call counter, answer
  statistics) to ``generation_state/interval_NNN.json``, both atomically (the store), so a run
  killed at any point and resumed from its last checkpoint reuses what was paid for and
  continues the same sampling;
- the training loader is resumable through Lightning's ``state_dict`` interface: a checkpoint
  taken mid-interval records how many steps of the interval were trained (and charged), and the
  resumed loader skips exactly those;
- under DDP, global rank 0 generates (only it loads the teacher) and broadcasts the interval;
  every rank plans the same batches and trains its own share, the same number of steps each, and
  the training tokens of each step are summed over ranks before they are charged, so every rank
  holds the same global ledger.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from read_lightning.core import progress as phases
from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, check_capabilities
from read_lightning.core.checks import check_number
from read_lightning.prompts.task_pool import TASK_LABEL, TaskPromptPool
from read_lightning.prompts.teacher_prompts import resolve_teacher_prompt
from read_lightning.teachers.generation import (
    TEACHER_BACKENDS,
    PromptSource,
    Teacher,
    resolve_teacher_backend,
)
from read_lightning.teachers.models import EMBEDDED
from read_lightning.teachers.specs import (
    HFTeacherSpec,
    HTTPTeacherSpec,
    TeacherSpec,
    VLLMTeacherSpec,
    check_engine_kwargs,
)
from read_lightning.training.batches import Example, encode_example
from read_lightning.training.generation_plan import GenerationPlanner
from read_lightning.training.interval_store import IntervalStore
from read_lightning.training.progress import progress_display
from read_lightning.training.prompt_sources import build_prompt_source, held_out_hashes, load_task_pool
from read_lightning.training.run_state import timed
from read_lightning.training.stream import BudgetStreamDataModule, IntervalExamples

__all__ = ["CapabilityDataModule"]


log = logging.getLogger(__name__)

# The most host memory an interval's teacher states may take (and every rank receives) for the
# training step to reuse them; above it the teacher runs in the step as it would without them.
TEACHER_STATES_MAX_BYTES = 1 << 30

# teacher_engine_kwargs' keys that other options own, and those options.
_OWN_ENGINE_KEYS = {key: f"data.{option}" for key, option in (
    ("model", "teacher"), ("seed", "seed"), ("dtype", "teacher_dtype"), ("temperature", "temperature"),
    ("top_p", "top_p"), ("max_new_tokens", "max_new_tokens"))}
# The options that configure a teacher named by a string: a teacher given as a spec takes its own
# (its init_args), so one of these set to other than its default beside a spec is refused.
_STRING_FORM_OPTIONS = ("teacher_backend", "teacher_url", "teacher_timeout", "teacher_engine_kwargs",
                        "teacher_dtype", "generation_batch_size")

def _delegate(part: str, name: str) -> property:
    """An attribute of the data module that is the attribute ``name`` of its part ``part``."""
    return property(lambda self: getattr(getattr(self, part), name),
                    lambda self, value: setattr(getattr(self, part), name, value),
                    doc=f"``self.{part}.{name}``")


class CapabilityDataModule(BudgetStreamDataModule):
    """Streams teacher-answered capability batches under a token budget.

    Args:
        teacher: the teacher that answers the prompts. A string names its model (Hub id, local
            directory, or ``embedded:smollm2-135m-instruct``, the default), run as
            ``teacher_backend`` says with the ``teacher_*`` options and ``generation_batch_size``;
            ``read-train fit`` fills it from ``model.teacher``. A ``TeacherSpec``
            (``HFTeacherSpec``, ``VLLMTeacherSpec``, ``HTTPTeacherSpec``; a ``class_path`` /
            ``init_args`` entry in YAML) says how the teacher runs in its own arguments; the
            string-form options are then refused. Either way the seed and the sampling options
            (``temperature``, ``top_p``, ``max_new_tokens``) are this module's.
        student: model whose tokenizer encodes the training data (usually linked to the model's).
        capabilities: capability names; defaults to the eight built-in ones.
        mixture: initial data mixture over capabilities (a distribution); uniform if omitted.
            ``set_mixture_weights`` changes it between intervals.
        budget_tokens: total budget B = teacher-generated + student-trained tokens.
        num_intervals: allocation intervals (= training epochs) the budget is spread over.
        max_tokens_per_batch: padded tokens (batch size x longest sequence) per batch.
        max_length: longest training sequence; longer pairs are truncated in the answer.
        max_new_tokens: teacher answer length limit.
        teacher_backend: ``hf`` (in-process, the default), ``vllm`` (GPU, ``[vllm]`` extra),
            ``http`` (an OpenAI-compatible server at ``teacher_url``; ``teacher`` is then the
            served model's name) or ``auto`` (``vllm`` if installed and a GPU is visible, else ``hf``).
        teacher_url, teacher_timeout: the HTTP endpoint and its per-request timeout in seconds.
        teacher_engine_kwargs: extra ``vllm.LLM`` arguments for the ``vllm`` backend
            (``tensor_parallel_size``, ``max_model_len``, ...); ``gpu_memory_utilization``
            defaults to ``VLLM_MEMORY_SHARE`` (0.3), since the student trains on the same GPU.
            Ignored by the other backends.
        prompt_source: ``"templates"`` for the built-in capability template library, or a JSONL
            file of ``{"capability": ..., "prompt": ...}`` rows with at least one prompt for every
            capability; rows that are held out (probe prompts, ``leakage_hashes``) are dropped.
        task_prompts: the task's own inputs for the teacher to answer: a task card (packaged name
            or path) with a train split, or a JSONL file of ``{"prompt": ...}`` rows. Their rows
            are labelled ``task``; held-out prompts (as for ``prompt_source``) and the card's own
            dev and test prompts are dropped. None: capability prompts only.
        task_share: the share of each interval's prompts drawn from ``task_prompts`` (the rest
            follow the mixture the allocator chose); ignored without ``task_prompts``.
        extra_templates: YAML/JSONL file(s) of user templates, e.g. for a user-defined capability.
        leakage_hashes: file of evaluation-prompt hashes (``read-train leakage``) never to train on.
        probe_data_dir: directory of user probe sets (``<capability>.jsonl``, see
            ``CapabilityProbe``); its prompts, like the packaged probes', never reach training, and
            ``CapabilityProbeCallback`` probes from it unless given its own ``data_dir``.
        drop_unverified: drop teacher answers that a template's verifier marks wrong (their
            generation tokens are still charged: they were paid for).
        teacher_prompt: what the teacher is asked instead of the prompt itself: ``"cot"`` (the
            chain-of-thought wrapper of ``prompts.teacher_prompts``) or a template holding
            ``{prompt}`` once. The student still trains on the plain prompt followed by the
            teacher's answer; each generated row keeps the text the teacher saw
            (``teacher_prompt``). None: the teacher answers the prompt as it is.
        run_dir: where per-interval generated data is written; defaults to the trainer's log dir.
            A resumed run reuses its own interval files there; a fresh run refuses files that
            another run wrote. Without one, an interval's data lives in memory only, and resuming
            from a checkpoint taken inside an interval is refused.
    """

    def __init__(
        self,
        teacher: str | TeacherSpec | None = None,
        student: str = EMBEDDED,
        capabilities: list[str] | None = None,
        mixture: dict[str, float] | None = None,
        budget_tokens: int = 200_000,
        num_intervals: int = 10,
        max_tokens_per_batch: int = 4096,
        max_length: int = 384,
        max_new_tokens: int = 128,
        generation_batch_size: int = 16,
        temperature: float = 0.2,
        top_p: float = 0.95,
        teacher_backend: str = "hf",
        teacher_url: str | None = None,
        teacher_timeout: float = 120.0,
        teacher_engine_kwargs: dict[str, Any] | None = None,
        prompt_source: str = "templates",
        task_prompts: str | None = None,
        task_share: float = 0.5,
        extra_templates: str | None = None,
        leakage_hashes: str | None = None,
        probe_data_dir: str | None = None,
        drop_unverified: bool = False,
        teacher_prompt: str | None = None,
        teacher_dtype: str = "float32",
        cache_dir: str | None = None,
        run_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        capabilities = list(capabilities or DEFAULT_CAPABILITIES)
        try:
            check_capabilities(capabilities, capabilities)
        except ValueError as err:
            raise ValueError(f"capabilities {capabilities!r}: {err}") from None
        check_number("temperature", temperature, low=0.0)
        check_number("top_p", top_p, low=0.0, high=1.0, open_low=True)
        check_number("teacher_timeout", teacher_timeout, low=0.0, open_low=True)
        check_number("task_share", task_share, low=0.0, high=1.0)
        # The card that task_prompts names (None for a JSONL file), found before any model loads.
        self.task_card_path: Path | None = None
        if task_prompts is not None:
            if TASK_LABEL in capabilities:
                raise ValueError(f"capability name {TASK_LABEL!r} is reserved for task_prompts' rows; rename it")
            if Path(task_prompts).suffix == ".jsonl":
                if not Path(task_prompts).is_file():
                    raise FileNotFoundError(f"task_prompts file {task_prompts!r} does not exist")
            else:
                from read_lightning.requirement.cards import resolve_card

                self.task_card_path = resolve_card(task_prompts)
        for name, value in [("max_new_tokens", max_new_tokens), ("generation_batch_size", generation_batch_size)]:
            check_number(name, value, low=1, integer=True)
        # The most one example can cost: a full-length answer plus a full-length training row.
        super().__init__(capabilities=capabilities, mixture=mixture, budget_tokens=budget_tokens,
                         num_intervals=num_intervals, max_tokens_per_batch=max_tokens_per_batch,
                         max_length=max_length, generation_worst_case=max_new_tokens, seed=seed)
        per_interval = budget_tokens // num_intervals
        if per_interval < self.example_worst_case:
            raise ValueError(
                f"budget_tokens={budget_tokens} is too small for one training step: split over "
                f"num_intervals={num_intervals} it gives {per_interval} tokens per interval, but one "
                f"example can cost max_new_tokens + max_length = {self.example_worst_case}"
            )
        if teacher_backend not in TEACHER_BACKENDS:
            raise ValueError(f"unknown teacher_backend {teacher_backend!r}; choose one of {list(TEACHER_BACKENDS)}")
        if teacher_backend == "http" and not teacher_url:
            raise ValueError("teacher_backend 'http' needs teacher_url (an OpenAI-compatible server)")
        self.teacher_engine_kwargs = check_engine_kwargs(teacher_engine_kwargs, "teacher_engine_kwargs",
                                                         _OWN_ENGINE_KEYS)
        if teacher is not None and not isinstance(teacher, (str, TeacherSpec)):
            raise ValueError(f"teacher must be a model name or a TeacherSpec, got {teacher!r}")
        # The teacher as a spec, None for one named by a string (built from the options below).
        self.teacher_spec = teacher if isinstance(teacher, TeacherSpec) else None
        if self.teacher_spec is not None:
            given, defaults = locals(), inspect.signature(CapabilityDataModule.__init__).parameters
            for name in _STRING_FORM_OPTIONS:
                value = given[name]
                if value != defaults[name].default:
                    raise ValueError(
                        f"data.{name}={value!r} configures a teacher named by a string, but data.teacher is "
                        f"{type(teacher).__name__}: set it in the spec's init_args (see docs/teachers.md) or drop it")
            teacher_backend, teacher_dtype = self.teacher_spec.backend, self.teacher_spec.dtype
            generation_batch_size = getattr(self.teacher_spec, "batch_size", generation_batch_size)
        for name, path in (("extra_templates", extra_templates), ("leakage_hashes", leakage_hashes)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{name} file {path!r} does not exist")
        self.teacher_name = teacher.model if isinstance(teacher, TeacherSpec) else (teacher or EMBEDDED)
        self.student_name = student
        self.teacher_backend, self.teacher_url, self.teacher_timeout = teacher_backend, teacher_url, teacher_timeout
        if probe_data_dir is not None and not Path(probe_data_dir).is_dir():
            raise FileNotFoundError(f"probe_data_dir {probe_data_dir!r} is not a directory")
        self.extra_templates, self.leakage_hashes = extra_templates, leakage_hashes
        self.probe_data_dir = probe_data_dir
        self.max_new_tokens = max_new_tokens
        self.generation_batch_size = generation_batch_size
        self.temperature, self.top_p = temperature, top_p
        self.prompt_source_name = prompt_source
        self.task_prompts, self.task_share = task_prompts, float(task_share)
        self.drop_unverified = drop_unverified
        self.teacher_prompt = resolve_teacher_prompt(teacher_prompt)
        self.teacher_dtype = teacher_dtype
        self.cache_dir = cache_dir
        # Where the intervals' data lives; it names this run in the files it writes, so that a
        # fresh run never trains on the files another run left in the same run_dir.
        self.store = IntervalStore(run_dir)
        # What the teacher is asked, in which calls, and the sampling state that depends on.
        self.planner = GenerationPlanner(
            max_length=max_length, max_new_tokens=max_new_tokens,
            task_share=self.task_share, teacher_prompt=self.teacher_prompt, drop_unverified=drop_unverified,
            seed=seed, build_prompt_source=self._build_prompt_source, load_task_pool=self._load_task_pool,
        )
        # Last interval whose generation tokens are in the ledger, so a resume that reuses an
        # interval's JSONL charges its generation exactly once.
        self.charged_interval = -1

    # The parts' state, read and set where the data module's users reach it.
    teacher = _delegate("planner", "teacher")
    tokenizer = _delegate("planner", "tokenizer")
    prompt_source = _delegate("planner", "prompt_source")
    task_pool = _delegate("planner", "task_pool")
    too_long_prompts = _delegate("planner", "too_long_prompts")
    run_dir = _delegate("store", "run_dir")
    run_id = _delegate("store", "run_id")

    # ----------------------------------------------------------------- components
    def attach(
        self,
        *,
        teacher: Teacher | None = None,
        tokenizer: Any = None,
        prompt_source: PromptSource | None = None,
    ) -> CapabilityDataModule:
        """Use ready-made components instead of loading them from the configured names."""
        if teacher is not None:
            self.teacher = teacher
        if tokenizer is not None:
            self.tokenizer = tokenizer
        if prompt_source is not None:
            self.prompt_source = prompt_source
        return self

    def setup(self, stage: str) -> None:
        if self.tokenizer is None:
            from read_lightning.teachers.models import load_tokenizer

            self.tokenizer = load_tokenizer(self.student_name, self.cache_dir)
        if self.prompt_source is None:
            self.prompt_source = self._build_prompt_source()
        self._load_task_pool()
        if self.teacher is None and self._is_global_zero():
            # Only global rank 0 generates, so only it holds the teacher.
            self.teacher = self._build_teacher()
        if self.run_dir is None and self.trainer is not None and self.trainer.log_dir:
            self.run_dir = self.trainer.log_dir

    # ----------------------------------------------------------------- parts
    def _build_prompt_source(self) -> PromptSource:
        return build_prompt_source(self.prompt_source_name, self.capabilities, self.extra_templates,
                                   self._held_out_hashes(), self.seed)

    def _load_task_pool(self) -> TaskPromptPool | None:
        """The task prompt pool, read on first use; None without ``task_prompts``."""
        if self.task_pool is None and self.task_prompts is not None:
            self.task_pool = load_task_pool(self.task_prompts, self.task_card_path, self.capabilities,
                                            self._held_out_hashes(), self.seed)
        return self.task_pool

    def _held_out_hashes(self) -> set[str]:
        return held_out_hashes(self.capabilities, self.probe_data_dir, self.leakage_hashes)

    def _build_teacher(self) -> Teacher:
        """The teacher: its spec built, or for a teacher named by a string, the spec its options say."""
        spec = self.teacher_spec
        if spec is None:
            backend = resolve_teacher_backend(self.teacher_backend)
            log.info("teacher backend: %s (configured %r)", backend, self.teacher_backend)
            if backend == "http":
                spec = HTTPTeacherSpec(self.teacher_url, self.teacher_name, timeout=self.teacher_timeout)
            elif backend == "vllm":
                spec = VLLMTeacherSpec(self.teacher_name, dtype=self.teacher_dtype,
                                       engine_kwargs=self.teacher_engine_kwargs)
            else:
                spec = HFTeacherSpec(self.teacher_name, dtype=self.teacher_dtype, batch_size=self.generation_batch_size)
        else:
            log.info("teacher: %r", spec)
        sampling = dict(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p)
        return spec.build(self.tokenizer, seed=self.seed, sampling=sampling, cache_dir=self.cache_dir)

    @property
    def labels(self) -> list[str]:
        """What a generated row can be labelled: the capabilities, and ``task`` with task prompts."""
        return [*self.capabilities, TASK_LABEL] if self.task_prompts is not None else list(self.capabilities)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    # ----------------------------------------------------------------- intervals
    def _generation_state(self) -> dict[str, Any]:
        """Everything prompt sampling and teacher sampling depend on (the planner's state)."""
        return self.planner.state_dict()

    def _load_generation_state(self, state: Any, origin: str) -> None:
        """Restore :meth:`_generation_state`; ``origin`` names the file or checkpoint in errors."""
        self.planner.load_state_dict(state, origin)

    def _generate_interval(self) -> tuple[list[dict[str, Any]], list[Example]]:
        """Prompt the teacher until this interval's budget is committed; returns the JSONL rows
        and the examples of the rows to be trained on (tokenised once, by the planner).

        Nothing is charged here: the rows are charged by :meth:`_charge_generation`, the one
        path for generated and reused intervals, and the plan keeps their cost within budget.
        """
        assert self.teacher is not None and self.prompt_source is not None
        if hasattr(self.teacher, "keep_states"):
            self.teacher.keep_states = self._keep_teacher_states()
        with timed(self.trainer, "generation"):  # the run's generation phase, kept by its RunState
            return self.planner.generate_rows(
                interval=self.interval, mixture=self.mixture, share=self._interval_budget(),
                budget=self.ledger.remaining, progress=self.ledger.fraction_spent,
                last=self.interval >= self.num_intervals - 1,
            )

    def _keep_teacher_states(self) -> bool:
        """Whether the teacher keeps the states it computes while answering for the training step
        (:func:`~read_lightning.training.batches.attach_teacher_states`): where the training module
        distils from this very model, they are the targets it would compute again. Not where an
        interval's states would pass ``TEACHER_STATES_MAX_BYTES`` (a large teacher, a large
        interval): held in host memory and sent to every rank, they would cost more than the
        forward they save."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        takes = getattr(module, "takes_teacher_states", None)
        model = getattr(self.teacher, "model", None)
        if takes is None or not takes(model):
            return False
        head = model.get_output_embeddings().weight
        size = self._interval_budget() * head.shape[1] * head.element_size()
        if size > TEACHER_STATES_MAX_BYTES:
            log.info("teacher states not kept: an interval's (%d tokens) would take %.1f GB", self._interval_budget(),
                     size / 1e9)
            return False
        return True

    def _load_or_generate(self) -> tuple[list[dict[str, Any]], dict[str, Any], list[Example] | None]:
        """This interval's rows, the generation state after them and, when they were just
        generated, their examples: from the store if the interval was already paid for (a resumed
        run; examples None), else from the teacher, stored before use."""
        found = self.store.load(self.interval, self.labels, self.max_new_tokens)
        if found is not None:
            rows, state, origin = found
            # The run continues as if it had just generated these rows.
            self._load_generation_state(state, origin)
            saved = self.store.states_path(self.interval)
            examples = self._encode(rows) if saved is not None and saved.is_file() else None
            states = self.store.load_states(self.interval, None if examples is None else [e.input_ids[:-1] for e in examples])
            return rows, state, self._with_states(rows, states, str(saved), examples)
        kept = self.store.kept(self.interval)
        if kept is not None:
            rows, state, states = kept  # the same interval's loader built again
            return rows, state, self._with_states(rows, states, "the interval kept in memory")
        if self.charged_interval == self.interval:
            raise ValueError(
                f"resuming inside interval {self.interval}, but {self.store.missing(self.interval)}: the checkpoint's "
                "steps were trained on that data, and generating it again would draw different data"
            )
        display = progress_display(self.trainer) if self.trainer is not None else None
        with phases.phase(f"interval {self.interval}: teacher generation", total=self._interval_budget(),
                          unit="budget tokens", display=display, explicit=True):
            rows, examples = self._generate_interval()
        state = self._generation_state()
        self.store.save(self.interval, rows, state, [e.teacher_hidden for e in examples],
                        [e.input_ids[:-1] for e in examples])
        return rows, state, examples

    def _with_states(self, rows: Sequence[dict[str, Any]], states: Sequence[Any] | None,
                     origin: str, examples: list[Example] | None = None) -> list[Example] | None:
        """The examples of ``rows`` (``examples``: already encoded) with the teacher states kept
        when they were generated (one entry per example, None where it had none); None without states."""
        if states is None:
            return None
        examples = self._encode(rows) if examples is None else examples
        if len(states) != len(examples):
            raise ValueError(f"{origin}: teacher states for {len(states)} examples, but the interval's rows give "
                             f"{len(examples)}; delete it to have the teacher run in the training step instead")
        for example, hidden in zip(examples, states):
            if hidden is not None and len(hidden) == len(example) - 1:
                example.teacher_hidden = hidden
        return examples

    def _interval_rows(self) -> tuple[list[dict[str, Any]], list[Example] | None]:
        """Rank 0 loads or generates the interval; every rank receives the same rows and state.
        Also the examples to train on where rank 0 has them from generating the rows (on the other
        ranks: where it sent the teacher states they carry), else None."""
        if self.budget_exhausted and self.charged_interval != self.interval:
            # Only a resume from the checkpoint of a run that had spent its budget asks for one
            # more interval (the stop decision is not checkpointed): it gets none, and no file.
            # (An interval resumed mid-way was paid for already and is rebuilt as usual.)
            return [], []
        rows, state, examples = self._load_or_generate() if self._is_global_zero() else (None, None, None)
        # The teacher states rank 0's examples carry (see _keep_teacher_states) go to every rank:
        # each trains its own share of the batches, and DDP waits for the slowest.
        states = None if examples is None or self._world()[0] == 1 else [e.teacher_hidden for e in examples]
        rows, state, states = self._broadcast((rows, state, states))
        if not self._is_global_zero():
            self._load_generation_state(state, "generation state broadcast by rank 0")
            examples = self._with_states(rows, states, "teacher states broadcast by rank 0")
        return rows, examples

    def _encode(self, rows: Sequence[dict[str, Any]]) -> list[Example]:
        """The examples of the rows to be trained on (rows read back, or received from rank 0):
        the same ``encode_example`` the planner used when it kept them."""
        examples = []
        for row in rows:
            if row["used"]:
                ex = encode_example(self.tokenizer, row["prompt"], row["answer"], row["capability"], self.max_length)
                if ex is not None:
                    examples.append(ex)
        return examples

    def _charge_generation(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            self.ledger.charge_generation(row["capability"], int(row["gen_tokens"]))

    def train_dataloader(self) -> DataLoader:
        if self.tokenizer is None or self.prompt_source is None or (self.teacher is None and self._is_global_zero()):
            self.setup("fit")
        return super().train_dataloader()

    def _interval_examples(self) -> IntervalExamples:
        start = time.perf_counter()
        rows, examples = self._interval_rows()
        # Lightning may build the same interval's loader again (a resume); it is paid for once.
        if self.charged_interval != self.interval:
            self._charge_generation(rows)
            self.charged_interval = self.interval
        if examples is None:
            examples = self._encode(rows)
        stats = {
            "prepare_seconds": time.perf_counter() - start,  # generating, or reading the interval's file
            "verified_false": sum(1 for r in rows if r.get("verified") is False),
            "too_long_prompts": self.too_long_prompts,
            # examples the training step distils from states the teacher kept while answering
            "teacher_states": sum(e.teacher_hidden is not None for e in examples),
        }
        if getattr(self.teacher, "keep_states", False):
            log.info("interval %d: teacher states kept from generation for %d of %d examples",
                     self.interval, stats["teacher_states"], len(examples))
        return IntervalExamples(examples, dict(self.mixture), sum(int(r["gen_tokens"]) for r in rows), stats)

    # ----------------------------------------------------------------- checkpointing
    _source_fields = ("generation", "charged_interval")

    def _source_state(self) -> dict[str, Any]:
        return {"generation": self._generation_state(), "charged_interval": self.charged_interval,
                "run_id": self.run_id}

    def _load_source_state(self, state: dict[str, Any]) -> None:
        check_number("checkpoint data-module state: field 'charged_interval'", state["charged_interval"], low=-1,
                     integer=True)
        run_id = state.get("run_id")  # None: saved before runs had ids; accept the run's files
        if run_id is not None and not isinstance(run_id, str):
            raise ValueError(f"checkpoint data-module state: field 'run_id' must be a string, got {run_id!r}")
        self._load_generation_state(state["generation"], "checkpoint data-module state")
        self.charged_interval = state["charged_interval"]
        # An older checkpoint's "generation_seconds" is read by RunState.on_load_checkpoint.
        self.run_id = run_id
