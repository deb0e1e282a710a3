"""Budget-limited capability batches: the LightningDataModule side of ReAD.

One training epoch is one allocation interval. At the start of each interval the data module
draws capabilities from the current mixture, fills capability prompts, has the teacher answer
them, and packs the (prompt, answer) pairs into length-grouped batches until the interval's share
of the budget is committed. The ledger is charged generation tokens when the teacher answers and
training tokens when a batch is handed to the training step, and it never lets B be exceeded.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from read_lightning.capabilities import (
    DEFAULT_CAPABILITIES,
    check_capabilities,
    validate_distribution,
)
from read_lightning.generation import (
    Prompt,
    PromptSource,
    StaticPromptSource,
    Teacher,
    chat_prompt_ids,
)
from read_lightning.jsonl import iter_jsonl, read_jsonl, write_jsonl_atomic
from read_lightning.ledger import TokenLedger
from read_lightning.models import EMBEDDED

log = logging.getLogger(__name__)

IGNORE_INDEX = -100

__all__ = [
    "CapabilityDataModule",
    "Example",
    "encode_example",
    "length_grouped_batches",
    "collate",
]


@dataclass
class Example:
    """A tokenised training pair. ``labels`` is ``IGNORE_INDEX`` on prompt tokens."""

    input_ids: list[int]
    labels: list[int]
    capability: str

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_example(tokenizer: Any, prompt: str, answer: str, capability: str, max_length: int) -> Example | None:
    """Chat-format ``prompt`` and ``answer``; only answer tokens (and end-of-turn) are labelled.

    Returns None when the prompt alone leaves no room for a single answer token.
    """
    prompt_ids = chat_prompt_ids(tokenizer, prompt)
    answer_ids = list(tokenizer(answer, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
    if len(prompt_ids) >= max_length:
        return None
    answer_ids = answer_ids[: max_length - len(prompt_ids)]
    return Example(
        input_ids=prompt_ids + answer_ids,
        labels=[IGNORE_INDEX] * len(prompt_ids) + answer_ids,
        capability=capability,
    )


def length_grouped_batches(
    lengths: Sequence[int], max_tokens: int, rng: random.Random
) -> list[list[int]]:
    """Indices grouped into batches of similar length whose padded size fits ``max_tokens``.

    Sorting by length keeps padding small; the order of batches is then shuffled so an epoch
    does not run from short to long sequences.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # Sorted ascending, so lengths[i] is the padded width if i joins the batch.
        if current and lengths[i] * (len(current) + 1) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, Any]:
    """Right-pad to the longest example.

    Returns ``input_ids``/``attention_mask``/``labels`` of shape ``(B, T)`` and
    ``capability_tokens``: trained tokens (prompt + label, padding excluded) per capability.
    """
    width = max(len(e) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    tokens: Counter[str] = Counter()
    for row, e in enumerate(examples):
        input_ids[row, : len(e)] = torch.tensor(e.input_ids)
        labels[row, : len(e)] = torch.tensor(e.labels)
        mask[row, : len(e)] = 1
        tokens[e.capability] += len(e)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels, "capability_tokens": dict(tokens)}


def _jsonl_prompt_source(path: str, capabilities: Sequence[str]) -> StaticPromptSource:
    pools: dict[str, list[str]] = {c: [] for c in capabilities}
    for lineno, row in iter_jsonl(path):
        cap, text = row.get("capability"), row.get("prompt")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{lineno}: row has no 'prompt' string")
        if cap not in pools:
            raise ValueError(f"{path}:{lineno}: unknown capability {cap!r}; expected one of {list(pools)}")
        pools[cap].append(text)
    return StaticPromptSource({c: p for c, p in pools.items() if p})


class _BatchStream(IterableDataset):
    """Yields pre-planned batches; a fresh one is built for every interval."""

    def __init__(self, examples: list[Example], batches: list[list[int]], pad_id: int) -> None:
        self.examples, self.batches, self.pad_id = examples, batches, pad_id

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for idx in self.batches:
            yield collate([self.examples[i] for i in idx], self.pad_id)


class CapabilityDataModule(L.LightningDataModule):
    """Streams teacher-answered capability batches under a token budget.

    Args:
        teacher: Hub id, local directory, or ``embedded:smollm2-135m-instruct``.
        student: model whose tokenizer encodes the training data (usually linked to the model's).
        capabilities: capability names; defaults to the eight built-in ones.
        mixture: initial data mixture over capabilities (a distribution); uniform if omitted.
            ``set_mixture_weights`` changes it between intervals.
        budget_tokens: total budget B = teacher-generated + student-trained tokens.
        num_intervals: allocation intervals (= training epochs) the budget is spread over.
        max_tokens_per_batch: padded tokens (batch size x longest sequence) per batch.
        max_length: longest training sequence; longer pairs are truncated in the answer.
        max_new_tokens: teacher answer length limit.
        teacher_backend: ``hf`` (in-process, the default), ``vllm`` (GPU, ``[vllm]`` extra) or
            ``http`` (an OpenAI-compatible server at ``teacher_url``; ``teacher`` is then the
            served model's name).
        teacher_url, teacher_timeout: the HTTP endpoint and its per-request timeout in seconds.
        prompt_source: ``"templates"`` for the built-in capability template library, or a JSONL
            file of ``{"capability": ..., "prompt": ...}`` rows.
        extra_templates: YAML/JSONL file(s) of user templates, e.g. for a user-defined capability.
        leakage_hashes: file of evaluation-prompt hashes (``read-train leakage``) never to train on.
        drop_unverified: drop teacher answers that a template's verifier marks wrong (their
            generation tokens are still charged: they were paid for).
        run_dir: where per-interval generated data is written; defaults to the trainer's log dir.
    """

    def __init__(
        self,
        teacher: str = EMBEDDED,
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
        prompt_source: str = "templates",
        extra_templates: str | None = None,
        leakage_hashes: str | None = None,
        drop_unverified: bool = False,
        teacher_dtype: str = "float32",
        cache_dir: str | None = None,
        run_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.capabilities = list(capabilities or DEFAULT_CAPABILITIES)
        check_capabilities(self.capabilities, self.capabilities)
        for name, value in [
            ("num_intervals", num_intervals),
            ("max_tokens_per_batch", max_tokens_per_batch),
            ("max_length", max_length),
            ("max_new_tokens", max_new_tokens),
            ("generation_batch_size", generation_batch_size),
        ]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if max_length > max_tokens_per_batch:
            raise ValueError(
                f"max_length={max_length} does not fit in one batch of max_tokens_per_batch={max_tokens_per_batch}"
            )
        self.ledger = TokenLedger(budget_tokens)
        # The most one example can cost: a full-length answer plus a full-length training row.
        self.example_worst_case = max_new_tokens + max_length
        per_interval = budget_tokens // num_intervals
        if per_interval < self.example_worst_case:
            raise ValueError(
                f"budget_tokens={budget_tokens} is too small for one training step: split over "
                f"num_intervals={num_intervals} it gives {per_interval} tokens per interval, but one "
                f"example can cost max_new_tokens + max_length = {self.example_worst_case}"
            )
        if teacher_backend not in ("hf", "vllm", "http"):
            raise ValueError(f"unknown teacher_backend {teacher_backend!r}; choose 'hf', 'vllm' or 'http'")
        if teacher_backend == "http" and not teacher_url:
            raise ValueError("teacher_backend 'http' needs teacher_url (an OpenAI-compatible server)")
        for name, path in (("extra_templates", extra_templates), ("leakage_hashes", leakage_hashes)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{name} file {path!r} does not exist")
        self.teacher_name, self.student_name = teacher, student
        self.teacher_backend, self.teacher_url, self.teacher_timeout = teacher_backend, teacher_url, teacher_timeout
        self.extra_templates, self.leakage_hashes = extra_templates, leakage_hashes
        self.num_intervals = num_intervals
        self.max_tokens_per_batch = max_tokens_per_batch
        self.max_length = max_length
        self.max_new_tokens = max_new_tokens
        self.generation_batch_size = generation_batch_size
        self.temperature, self.top_p = temperature, top_p
        self.prompt_source_name = prompt_source
        self.drop_unverified = drop_unverified
        self.teacher_dtype = teacher_dtype
        self.cache_dir = cache_dir
        self.run_dir = run_dir
        self.seed = seed
        self.mixture = validate_distribution(
            mixture or {c: 1.0 / len(self.capabilities) for c in self.capabilities},
            self.capabilities,
            name="mixture",
        )
        self.rng = random.Random(seed)
        self.interval = 0
        # Last interval whose generation tokens are in the ledger, so a resume that reuses an
        # interval's JSONL charges its generation exactly once.
        self.charged_interval = -1
        self.padding_tokens = 0  # padded positions handed to training (a statistic, not budget)
        self.too_long_prompts = 0  # prompts redrawn because they could not fit max_length
        self.interval_stats: dict[str, Any] = {}
        self.teacher: Teacher | None = None
        self.tokenizer: Any = None
        self.prompt_source: PromptSource | None = None

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
            from read_lightning.models import load_tokenizer

            self.tokenizer = load_tokenizer(self.student_name, self.cache_dir)
        if self.prompt_source is None:
            self.prompt_source = self._build_prompt_source()
        if self.teacher is None:
            self.teacher = self._build_teacher()
        if self.run_dir is None and self.trainer is not None and self.trainer.log_dir:
            self.run_dir = self.trainer.log_dir

    def _build_prompt_source(self) -> PromptSource:
        if self.prompt_source_name == "templates":
            from read_lightning.templates import TemplateLibrary

            return TemplateLibrary(
                capabilities=self.capabilities,
                extra=self.extra_templates,
                leakage_hashes=self._held_out_hashes(),
                seed=self.seed,
            )
        if not Path(self.prompt_source_name).is_file():
            raise FileNotFoundError(
                f"prompt_source {self.prompt_source_name!r} is neither 'templates' nor an existing JSONL file"
            )
        return _jsonl_prompt_source(self.prompt_source_name, self.capabilities)

    def _held_out_hashes(self) -> set[str]:
        """Prompts training must never see: the packaged probe items, plus the user's hash file.

        Probes measure the profile the bandit learns from; a probe prompt in the training data
        would reward memorisation instead of capability.
        """
        from read_lightning.leakage import load_hash_set, prompt_hash
        from read_lightning.probes import PROBE_DATA_DIR, probe_items

        hashes = {
            prompt_hash(item["prompt"])
            for cap in self.capabilities
            if (PROBE_DATA_DIR / f"{cap}.jsonl").is_file()
            for item in probe_items(cap)
        }
        if self.leakage_hashes:
            hashes |= set(load_hash_set(self.leakage_hashes))
        return hashes

    def _build_teacher(self) -> Teacher:
        from read_lightning.generation import HFTeacher, HTTPTeacher, VLLMTeacher
        from read_lightning.models import load_model, load_tokenizer, resolve_model_path

        sampling = dict(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p)
        if self.teacher_backend == "http":
            return HTTPTeacher(self.teacher_url, self.teacher_name, timeout=self.teacher_timeout,
                               tokenizer=self.tokenizer, seed=self.seed, **sampling)
        if self.teacher_backend == "vllm":
            path = resolve_model_path(self.teacher_name, self.cache_dir)
            return VLLMTeacher(path, seed=self.seed, dtype=self.teacher_dtype, **sampling)

        model = load_model(self.teacher_name, dtype=self.teacher_dtype, cache_dir=self.cache_dir, shared=True)
        if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
            model.to("cuda")
        return HFTeacher(
            model,
            load_tokenizer(self.teacher_name, self.cache_dir),
            batch_size=self.generation_batch_size,
            seed=self.seed,
            **sampling,
        )

    # ----------------------------------------------------------------- mixture
    def set_mixture_weights(self, weights: dict[str, float]) -> None:
        """Set the data mixture used from the next interval on (a distribution over capabilities)."""
        self.mixture = validate_distribution(weights, self.capabilities, name="mixture")

    @property
    def budget_exhausted(self) -> bool:
        """True once not even one more worst-case example fits in the budget."""
        return self.ledger.remaining < self.example_worst_case

    # ----------------------------------------------------------------- intervals
    def _interval_budget(self) -> int:
        intervals_left = max(1, self.num_intervals - self.interval)
        return self.ledger.remaining // intervals_left

    def _interval_path(self) -> Path | None:
        if not self.run_dir:
            return None
        return Path(self.run_dir) / "generated" / f"interval_{self.interval:03d}.jsonl"

    def _generate_interval(self) -> list[dict[str, Any]]:
        """Prompt the teacher until this interval's budget is committed; returns JSONL rows."""
        assert self.teacher is not None and self.prompt_source is not None
        budget = self._interval_budget()
        committed = 0
        rows: list[dict[str, Any]] = []
        progress = self.ledger.fraction_spent
        caps, weights = list(self.mixture), list(self.mixture.values())
        verify = getattr(self.prompt_source, "verify", None)
        while True:
            # Size each teacher call so that even worst-case answers cannot overdraw the interval.
            n = min(self.generation_batch_size, (budget - committed) // self.example_worst_case)
            if n <= 0:
                break
            prompts = [p for p in (self._draw_fitting(caps, weights, progress) for _ in range(n)) if p is not None]
            if not prompts:
                log.warning(
                    "interval %d: no prompt of the current mixture %s fits max_length=%d; ending the interval "
                    "early (raise data.max_length to train on them)", self.interval, self.mixture, self.max_length,
                )
                break
            answers = self.teacher.generate([p.text for p in prompts], max_new_tokens=self.max_new_tokens)
            for prompt, answer in zip(prompts, answers):
                gen_tokens = min(answer.num_tokens, self.max_new_tokens)
                self.ledger.charge_generation(prompt.capability, gen_tokens)
                committed += gen_tokens
                verified = verify(prompt, answer.text) if verify is not None else None
                example = encode_example(self.tokenizer, prompt.text, answer.text, prompt.capability, self.max_length)
                keep = example is not None and not (self.drop_unverified and verified is False)
                if keep:
                    committed += len(example)
                rows.append(
                    {
                        "prompt": prompt.text,
                        "answer": answer.text,
                        "capability": prompt.capability,
                        "template": prompt.template,
                        "difficulty": prompt.difficulty,
                        "verified": verified,
                        "gen_tokens": gen_tokens,
                        "used": keep,
                        "meta": prompt.meta,
                    }
                )
        return rows

    # A prompt must leave room for at least this many answer tokens to be worth a teacher call.
    MIN_ANSWER_TOKENS = 8
    MAX_DRAWS = 16

    def _draw_fitting(self, caps: list[str], weights: list[float], progress: float) -> Prompt | None:
        """Draw a prompt whose chat-formatted length leaves room for an answer.

        A prompt that cannot fit ``max_length`` would be answered (and paid for) and then
        dropped, so it is redrawn before the teacher sees it; None after ``MAX_DRAWS`` misses.
        """
        assert self.prompt_source is not None
        for _ in range(self.MAX_DRAWS):
            prompt = self.prompt_source.sample(self.rng.choices(caps, weights)[0], self.rng, progress)
            if len(chat_prompt_ids(self.tokenizer, prompt.text)) + self.MIN_ANSWER_TOKENS <= self.max_length:
                return prompt
            self.too_long_prompts += 1
        return None

    def _load_interval(self, path: Path) -> list[dict[str, Any]]:
        rows = read_jsonl(path, required=("prompt", "answer", "capability", "gen_tokens", "used"))
        for row in rows:
            if self.charged_interval != self.interval:
                self.ledger.charge_generation(row["capability"], int(row["gen_tokens"]))
        return rows

    def train_dataloader(self) -> DataLoader:
        if self.teacher is None:
            self.setup("fit")
        if self.trainer is not None:
            self.interval = self.trainer.current_epoch
        start = time.perf_counter()
        path = self._interval_path()
        if path is not None and path.exists():
            # Resumed run: the teacher already answered this interval; reuse, do not pay again.
            rows = self._load_interval(path)
        else:
            rows = self._generate_interval()
            if path is not None:
                write_jsonl_atomic(path, rows)
        self.charged_interval = self.interval
        examples = []
        for row in rows:
            if row["used"]:
                ex = encode_example(self.tokenizer, row["prompt"], row["answer"], row["capability"], self.max_length)
                if ex is not None:
                    examples.append(ex)
        # The batch order has its own RNG per interval: Lightning may build an interval's loader
        # again when it resumes, and that must not move the prompt-sampling RNG.
        order_rng = random.Random(self.seed * 1_000_003 + self.interval)
        batches = length_grouped_batches([len(e) for e in examples], self.max_tokens_per_batch, order_rng)
        self.interval_stats = {
            "interval": self.interval,
            "examples": len(examples),
            "batches": len(batches),
            "generation_seconds": time.perf_counter() - start,
            "verified_false": sum(1 for r in rows if r.get("verified") is False),
            "too_long_prompts": self.too_long_prompts,
            "mixture": dict(self.mixture),
        }
        log.info("interval %d: %d examples in %d batches", self.interval, len(examples), len(batches))
        return DataLoader(_BatchStream(examples, batches, self.tokenizer.pad_token_id), batch_size=None)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Charge training tokens at the moment a batch is used, not when it is prefetched.
        if self.trainer is None or self.trainer.training:
            for cap, tokens in batch.get("capability_tokens", {}).items():
                self.ledger.charge_training(cap, tokens)
            self.padding_tokens += int((batch["attention_mask"] == 0).sum())
        return batch

    # ----------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "ledger": self.ledger.state_dict(),
            "mixture": dict(self.mixture),
            "rng": self.rng.getstate(),
            "interval": self.interval,
            "charged_interval": self.charged_interval,
        }
        source_state = getattr(self.prompt_source, "state_dict", None)
        if callable(source_state):
            state["prompt_source"] = source_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ledger.load_state_dict(state["ledger"])
        self.mixture = validate_distribution(state["mixture"], self.capabilities, name="checkpoint mixture")
        self.rng.setstate(state["rng"])
        self.interval = int(state["interval"])
        self.charged_interval = int(state.get("charged_interval", -1))
        if "prompt_source" in state:
            if self.prompt_source is None:
                self.prompt_source = self._build_prompt_source()
            self.prompt_source.load_state_dict(state["prompt_source"])  # type: ignore[attr-defined]
