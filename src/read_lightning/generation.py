"""Teachers: who answers the capability prompts, behind one small interface.

A teacher takes user messages (plain text, no chat markup) and returns answers with the number
of tokens it generated, which the ledger charges. Teachers are loaded once and reused across
intervals; nothing here reloads a model.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

__all__ = [
    "Prompt",
    "Generation",
    "Teacher",
    "PromptSource",
    "HFTeacher",
    "StaticPromptSource",
    "chat_prompt_ids",
]


@dataclass
class Prompt:
    """One capability-targeted user message."""

    text: str
    capability: str
    template: str = "static"
    difficulty: str = "medium"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Generation:
    """A teacher answer and how many tokens producing it cost."""

    text: str
    num_tokens: int


@runtime_checkable
class Teacher(Protocol):
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int | None = None) -> list[Generation]:
        """Answer each user message; one ``Generation`` per prompt, in order."""
        ...


@runtime_checkable
class PromptSource(Protocol):
    def sample(self, capability: str, rng: random.Random, progress: float) -> Prompt:
        """Draw one prompt for ``capability``; ``progress`` in [0, 1] is the budget spent so far."""
        ...


class StaticPromptSource:
    """Prompts drawn from fixed per-capability pools (user data, or tests)."""

    def __init__(self, pools: dict[str, Sequence[str]]) -> None:
        empty = [c for c, p in pools.items() if not p]
        if empty:
            raise ValueError(f"prompt pool is empty for capabilities {empty!r}")
        self.pools = {c: list(p) for c, p in pools.items()}

    @property
    def capabilities(self) -> list[str]:
        return list(self.pools)

    def sample(self, capability: str, rng: random.Random, progress: float) -> Prompt:
        if capability not in self.pools:
            raise ValueError(f"unknown capability {capability!r}; this source has {list(self.pools)!r}")
        pool = self.pools[capability]
        i = rng.randrange(len(pool))
        return Prompt(text=pool[i], capability=capability, template=f"static:{i}")


def chat_prompt_ids(tokenizer: Any, user_text: str) -> list[int]:
    """Token ids of ``user_text`` as a chat turn followed by the assistant header.

    Falls back to the raw text when the tokenizer has no chat template (tiny test tokenizers).
    """
    if getattr(tokenizer, "chat_template", None):
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], add_generation_prompt=True, tokenize=True
        )
        if not isinstance(ids, list):  # transformers >= 5 returns a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)
    return list(tokenizer(user_text, add_special_tokens=True)["input_ids"])


class HFTeacher:
    """An in-process Hugging Face causal LM answering in batches with left padding.

    Sampling is reproducible: each call seeds a forked RNG from ``seed`` and a call counter, so
    the global RNG state of the training run is left untouched.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        batch_size: int = 16,
        max_new_tokens: int = 256,
        temperature: float = 0.2,
        top_p: float = 0.95,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"teacher batch_size must be >= 1, got {batch_size}")
        if max_new_tokens < 1:
            raise ValueError(f"teacher max_new_tokens must be >= 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"teacher temperature must be >= 0, got {temperature}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.calls = 0
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int | None = None) -> list[Generation]:
        max_new = max_new_tokens or self.max_new_tokens
        out: list[Generation] = []
        # Sort by prompt length so each left-padded batch wastes little compute.
        encoded = [chat_prompt_ids(self.tokenizer, p) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        results: dict[int, Generation] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, gen in zip(idx, self._generate_batch([encoded[i] for i in idx], max_new)):
                results[i] = gen
        out = [results[i] for i in range(len(prompts))]
        return out

    def _generate_batch(self, batch: list[list[int]], max_new: int) -> list[Generation]:
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        sample = self.temperature > 0
        kwargs: dict[str, Any] = dict(max_new_tokens=max_new, do_sample=sample, pad_token_id=pad)
        if sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.seed * 1_000_003 + self.calls)
            self.calls += 1
            generated = self.model.generate(
                input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs
            )
        new = generated[:, width:].cpu()
        eos_ids = _eos_ids(self.tokenizer, self.model)
        gens = []
        for row in new.tolist():
            n = len(row)
            for j, tok in enumerate(row):
                if tok in eos_ids:
                    n = j + 1  # the end-of-turn token was generated, so it is paid for
                    break
            text = self.tokenizer.decode(row[:n], skip_special_tokens=True).strip()
            gens.append(Generation(text=text, num_tokens=n))
        return gens


def _eos_ids(tokenizer: Any, model: torch.nn.Module) -> set[int]:
    ids = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(value)
    return ids
