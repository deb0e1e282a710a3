"""Scoring a causal LM on continuations: chat rendering, batched log-probs, fidelity.

Shared by the probes and the task evaluation (one code path serves both).
"""

from __future__ import annotations

import contextlib
import inspect
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from read_lightning.core import progress
from read_lightning.teachers.decoding import (
    MIN_SHARED_PREFIX,
    _cache_argument,
    _shared_prefix,
    prefill_prefix,
    prefix_cache,
    supports_decode_loop,
)

__all__ = [
    "ContinuationScore",
    "FIDELITY_FLOOR_NATS",
    "fidelity_score",
    "preserved_state",
    "render_chat_prompt",
    "score_continuations",
]


# --------------------------------------------------------------------------- shared helpers


def render_chat_prompt(tokenizer: Any, user_text: str) -> str:
    """``user_text`` as one chat turn plus the assistant header, as a string.

    The string twin of :func:`read_lightning.teachers.generation.chat_prompt_ids`: tokenizing it without
    extra special tokens gives the ids the student is trained on (checked by the probe).
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": user_text}], add_generation_prompt=True, tokenize=False
        )
    return user_text


@contextlib.contextmanager
def preserved_state(model: torch.nn.Module) -> Iterator[None]:
    """Run a block with ``model`` in eval mode, then restore train/eval modes and all RNGs.

    Evaluation must not change training: every submodule gets its own ``training`` flag back
    (a frozen submodule kept in eval mode stays so), and the Python, NumPy and torch (CPU and
    initialised CUDA) generator states are restored, whatever the block consumed or reseeded.
    """
    modes = [(m, m.training) for m in model.modules()]
    py_state = random.getstate()
    np_state = np.random.get_state()
    cpu_state = torch.get_rng_state()
    cuda_states = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    )
    model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


@dataclass(frozen=True)
class ContinuationScore:
    """Log-likelihood of one continuation given its context."""

    logprob: float  # sum over continuation tokens of log p(token | prefix)
    num_tokens: int
    greedy: bool  # every continuation token is the argmax given its prefix

    @property
    def mean_logprob(self) -> float:
        return self.logprob / max(1, self.num_tokens)


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def score_continuations(
    model: torch.nn.Module,
    contexts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    max_length: int | None = None,
    share_prefix: bool = True,
) -> list[ContinuationScore]:
    """Batched log-likelihood of ``continuations[i]`` after ``contexts[i]`` under a causal LM.

    Args:
        model: a Hugging Face causal LM (``model(input_ids, attention_mask).logits``), any device.
        contexts: token ids per pair, each non-empty.
        continuations: token ids per pair, each non-empty.
        batch_size: pairs per forward pass.
        max_length: if set, a pair longer than ``max_length + 1`` tokens loses context tokens
            from the left (as lm-eval does).
        share_prefix: run the prefix that every pair starts with (the chat template's system turn
            and user header, a few-shot preamble) once and reuse its KV cache in every batch,
            where the model can (:func:`~read_lightning.teachers.decoding.supports_decode_loop`)
            and the prefix is at least ``MIN_SHARED_PREFIX`` tokens before every continuation.
            The scores equal the full forward's up to float rounding.

    Each batch is right-padded to ``[B, W]`` (longest first, so batches hold similar lengths);
    the model returns logits ``[B, K, V]`` for the last ``K`` positions only, where ``K`` covers
    the earliest continuation in the batch, which skips the vocabulary projection of the prompt.
    Log-softmax runs in fp32. Returns one :class:`ContinuationScore` per pair, in input order.
    """
    if len(contexts) != len(continuations):
        raise ValueError(f"{len(contexts)} contexts but {len(continuations)} continuations")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    keep_ok = _accepts_logits_to_keep(model)
    seqs: list[list[int]] = []
    for i, (ctx, cont) in enumerate(zip(contexts, continuations)):
        if not ctx or not cont:
            raise ValueError(f"pair {i}: context and continuation must be non-empty token lists")
        full = list(ctx) + list(cont)
        if max_length is not None and len(full) > max_length + 1:
            full = full[-(max_length + 1) :]
        seqs.append(full[:-1])  # position p predicts token p + 1
    prefix = _shared_prefix_kv(model, seqs, continuations, device) if share_prefix and keep_ok else None
    shared = 0 if prefix is None else prefix[0]
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    out: dict[int, ContinuationScore] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        # With a shared prefix, the rows are the tails after it; positions count from 0 either way.
        width = len(seqs[idx[0]]) - shared
        input_ids = torch.zeros((len(idx), width), dtype=torch.long)
        attention = torch.zeros((len(idx), width), dtype=torch.long)
        first = []  # per row: the position (in the tail) whose logits predict the first continuation token
        for row, i in enumerate(idx):
            input_ids[row, : len(seqs[i]) - shared] = torch.tensor(seqs[i][shared:])
            attention[row, : len(seqs[i]) - shared] = 1
            first.append(len(seqs[i]) - len(continuations[i]) - shared)
        keep = width - min(first)
        kwargs: dict[str, Any] = {"logits_to_keep": keep} if keep_ok else {}
        if prefix is None:
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device), **kwargs).logits
        else:
            # Right pads come after every real token: causal attention keeps them out of its view.
            cache_arg, kv = prefix[1], prefix[2]
            cache = prefix_cache(model, kv, len(idx))
            positions = torch.arange(shared, shared + width, device=device).expand(len(idx), width)
            logits = model(input_ids=input_ids.to(device), position_ids=positions, use_cache=True,
                           **{cache_arg: cache}, **kwargs).logits
        offset = width - logits.shape[1]  # logits[:, j] belongs to position offset + j
        logp = torch.log_softmax(logits.float(), dim=-1)  # [B, K, V]
        for row, i in enumerate(idx):
            cont = torch.tensor(list(continuations[i]), device=logp.device)
            pos = torch.arange(first[row], first[row] + len(cont), device=logp.device) - offset
            lp = logp[row, pos]  # [n, V]
            ll = lp.gather(-1, cont[:, None]).sum().item()
            greedy = bool((lp.argmax(-1) == cont).all().item())
            out[i] = ContinuationScore(logprob=ll, num_tokens=len(cont), greedy=greedy)
        progress.advance(len(idx))  # the open progress phase, if any: one per scored continuation
    return [out[i] for i in range(len(seqs))]


def _shared_prefix_kv(
    model: torch.nn.Module, seqs: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]],
    device: torch.device,
) -> tuple[int, str, list[tuple[torch.Tensor, torch.Tensor]]] | None:
    """``(length, cache argument, per-layer keys and values)`` of the prefix all ``seqs`` share,
    cut before the earliest continuation; None when it is too short or the model cannot take a cache."""
    shared = min(_shared_prefix(seqs), *(len(s) - len(c) for s, c in zip(seqs, continuations)))
    if shared < MIN_SHARED_PREFIX or not supports_decode_loop(model):
        return None
    cache_arg = _cache_argument(model)
    return shared, cache_arg, prefill_prefix(model, seqs[0][:shared], cache_arg, device)


FIDELITY_FLOOR_NATS = 20.0


def fidelity_score(mean_logprob: float, floor: float = FIDELITY_FLOOR_NATS) -> float:
    """``100 * (1 + mean_logprob / floor)``, clipped to [0, 100]: linear in log-likelihood.

    ``mean_logprob`` is the average over items of each item's per-token mean log-probability of
    the target. Linear, not ``100 * exp(.)``: a freshly compressed student is many nats per token
    from its targets, where the exponential squashes every score towards 0 and the bandit's
    deltas vanish; on this scale equal log-likelihood gains are equal score gains
    (``docs/results.md``, "Measurements the code relies on"). 0 means ``floor`` nats per token
    or worse.
    """
    return float(100.0 * min(1.0, max(0.0, 1.0 + mean_logprob / floor)))
