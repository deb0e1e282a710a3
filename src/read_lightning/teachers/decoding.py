"""A decode loop over a causal LM's forward: KV cache, refilled rows, per-prompt seeded sampling.

``model.generate`` on a left-padded batch pays for three things an answer does not need: the
prefill of every pad position up to the longest prompt, the decode of every row until the
longest answer ends, and a per-step logits pipeline that sorts the whole vocabulary for top-p.
This loop prefills prompts in groups of similar length (little padding; the prefix all prompts of
a call share, such as the chat template's system turn, once), keeps a batch of at most ``batch_size`` rows
in one KV cache, drops a row the step it ends and starts the next waiting prompt in its place
(continuous batching), and samples each row with its own ``torch.Generator``, so an answer does
not depend on which prompts shared its batch.

Works with any Hugging Face causal LM whose forward takes a ``DynamicCache`` (transformers >= 5,
where the cache holds one layer object per decoder layer); :func:`supports_decode_loop` says
whether a model qualifies, and :class:`~read_lightning.teachers.generation.HFTeacher` falls back
to ``model.generate`` for the rest.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from read_lightning.core import progress

__all__ = ["supports_decode_loop", "decode", "sample_next", "prefill_prefix", "prefix_cache", "NUCLEUS_PROBE"]

# A prefix shared by a call's prompts (the chat template's system turn and user header, a few-shot
# preamble) is prefilled once and its KV cache reused when it is at least this long.
MIN_SHARED_PREFIX = 4

# Prompts prefilled together are right-padded to the longest; a group grows while the pads cost at
# most this share of its real tokens.
PAD_SLACK = 0.25

# Tokens looked at first for top-p: at the teacher's temperature the nucleus is a handful of
# tokens, so a top-k of this size almost always holds it and the full-vocabulary sort is skipped.
NUCLEUS_PROBE = 64


def _cache_argument(model: torch.nn.Module) -> str | None:
    """The forward keyword that takes the KV cache (``cache`` in transformers 5, else
    ``past_key_values``), or None when the forward takes neither."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return None
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


def _new_cache(model: torch.nn.Module) -> object:
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def supports_decode_loop(model: torch.nn.Module) -> bool:
    """Whether :func:`decode` can drive ``model``: a transformers causal LM with a KV-cache
    argument whose ``DynamicCache`` holds one full-attention ``DynamicLayer`` per decoder layer
    (transformers >= 5; sliding-window, hybrid and state-space caches are left to ``generate``)."""
    try:
        from transformers import PreTrainedModel
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return False
    if not isinstance(model, PreTrainedModel) or _cache_argument(model) is None:
        return False
    try:
        layers = _new_cache(model).layers
    except (TypeError, ValueError, AttributeError):
        return False
    return all(type(layer) is DynamicLayer for layer in layers)


def _shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the prefix every prompt starts with, leaving each at least one token of its own."""
    if len(prompts) < 2:
        return 0
    first, n = prompts[0], min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        n = next((j for j in range(n) if p[j] != first[j]), n)
    return max(n, 0)


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generators: Sequence[torch.Generator] | None
) -> torch.Tensor:
    """Next token per row: argmax when ``temperature == 0``, else a top-p sample at ``temperature``.

    Args:
        logits: ``[B, V]`` scores of the last position.
        generators: one CPU generator per row (sampling only); row ``b`` draws from ``generators[b]``
            alone, so its token does not depend on the other rows.

    Returns:
        ``[B]`` token ids (long, on ``logits.device``).

    The nucleus is the smallest set of most likely tokens whose probability reaches ``top_p``
    (a token is kept when the mass of the tokens above it is below ``top_p``), renormalised. It is
    found among the ``NUCLEUS_PROBE`` most likely tokens when they hold ``top_p`` of the mass, and
    by a full sort of that row otherwise: the same set either way.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    assert generators is not None and len(generators) == logits.shape[0]
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    k = min(NUCLEUS_PROBE, probs.shape[-1])
    top, top_ids = probs.topk(k, dim=-1)  # sorted, most likely first
    top, top_ids = top.cpu(), top_ids.cpu()
    out = []
    for row in range(probs.shape[0]):
        p, ids = top[row], top_ids[row]
        if top_p < 1.0 and float(p.sum()) < top_p or top_p >= 1.0 and k < probs.shape[-1]:
            p, ids = probs[row].sort(descending=True)  # the nucleus reaches past the probe
            p, ids = p.cpu(), ids.cpu()
        before = p.cumsum(0) - p  # mass of the tokens ranked above each token
        keep = before < top_p
        keep[0] = True
        choice = torch.multinomial(p[keep], 1, generator=generators[row])
        out.append(ids[keep][choice])
    return torch.cat(out).to(logits.device)


@dataclass
class _Row:
    index: int  # the prompt's position in the call
    position: int  # position id of the next input token (= tokens seen so far)
    tokens: list[int] = field(default_factory=list)
    states: list[torch.Tensor] = field(default_factory=list)  # last hidden states, in position order
    closing: bool = False  # cut at max_new_tokens; fed its last token once more for that token's state


class _Tap:
    """Keeps the last hidden states ``[B, T, d]`` of each forward of ``model``'s decoder (a forward
    hook on ``get_decoder()``: the states its output projection reads, after the final norm)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.last: torch.Tensor | None = None
        self._handle = model.get_decoder().register_forward_hook(self._keep)

    def _keep(self, module: torch.nn.Module, args: object, output: object) -> None:
        self.last = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]

    def close(self) -> None:
        self._handle.remove()


class _Batch:
    """Rows decoding together: one KV cache, left-padded so every row ends at the same column.

    ``mask`` is ``[B, C]`` (1 where the cache column is one of the row's tokens); rows are removed
    with their cache rows, and columns no row uses any more are cut from the left.
    """

    def __init__(self, cache_arg: str) -> None:
        self.cache_arg = cache_arg
        self.cache: object = None
        self.mask = torch.zeros((0, 0), dtype=torch.long)
        self.rows: list[_Row] = []

    def add(self, rows: list[_Row], cache: object, mask: torch.Tensor) -> None:
        """Append prefilled rows: their cache (``[n, H, L, D]`` per layer) and column mask
        ``[n, L]``, left-padded (or the batch left-padded) to a common width."""
        if not self.rows:
            self.cache, self.mask, self.rows = cache, mask, list(rows)
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.mask = torch.cat([_left_pad(self.mask, width), _left_pad(mask, width)])
        for layer, new in zip(self.cache.layers, cache.layers):
            layer.keys = torch.cat([_left_pad(layer.keys, width), _left_pad(new.keys, width)])
            layer.values = torch.cat([_left_pad(layer.values, width), _left_pad(new.values, width)])
        self.rows.extend(rows)

    def keep(self, indices: list[int]) -> None:
        """Keep only the rows at ``indices``, then cut the left columns none of them uses."""
        idx = torch.tensor(indices, dtype=torch.long, device=self.mask.device)
        self.mask = self.mask.index_select(0, idx)
        self.rows = [self.rows[i] for i in indices]
        used = self.mask.any(dim=0).nonzero()
        cut = int(used[0]) if len(used) else self.mask.shape[1]
        self.mask = self.mask[:, cut:]
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, idx)[:, :, cut:]
            layer.values = layer.values.index_select(0, idx)[:, :, cut:]

    def step(self, model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (``[B]``); returns the next-token logits ``[B, V]``."""
        device = tokens.device
        self.mask = torch.cat([self.mask, torch.ones((len(self.rows), 1), dtype=torch.long, device=device)], 1)
        positions = torch.tensor([[r.position] for r in self.rows], dtype=torch.long, device=device)
        out = model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=positions,
                    use_cache=True, **{self.cache_arg: self.cache})
        for r in self.rows:
            r.position += 1
        return out.logits[:, -1]


def prefill_prefix(model: torch.nn.Module, prefix: Sequence[int], cache_arg: str,
                   device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The keys and values of each layer for ``prefix`` run once (one row): a prefix many rows
    share, reused by :func:`prefix_cache`."""
    cache = _new_cache(model)
    model(input_ids=torch.tensor([list(prefix)], device=device), use_cache=True, logits_to_keep=1,
          **{cache_arg: cache})
    return [(layer.keys, layer.values) for layer in cache.layers]


def prefix_cache(model: torch.nn.Module, prefix_kv: list[tuple[torch.Tensor, torch.Tensor]], n: int) -> object:
    """A fresh cache holding :func:`prefill_prefix`'s keys and values for ``n`` rows (copied: the
    rows append to it, the prefix stays)."""
    cache = _new_cache(model)
    for layer_idx, (k, v) in enumerate(prefix_kv):
        cache.update(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1), layer_idx)
    return cache


def _length_groups(indices: list[int], prompts: Sequence[Sequence[int]], shared: int) -> list[list[int]]:
    """``indices`` sorted by length and cut into groups whose right padding to the group's
    longest tail costs at most ``PAD_SLACK`` of their own tokens: a few large prefills instead of
    one per prompt, with little compute on pad positions."""
    groups: list[list[int]] = []
    tokens = 0
    for i in sorted(indices, key=lambda i: len(prompts[i])):
        tail = len(prompts[i]) - shared
        if groups and tail * (len(groups[-1]) + 1) <= (1 + PAD_SLACK) * (tokens + tail):
            groups[-1].append(i)
            tokens += tail
        else:
            groups.append([i])
            tokens = tail
    return groups


def _prefill(
    model: torch.nn.Module,
    cache_arg: str,
    prompts: list[Sequence[int]],
    indices: list[int],
    shared: int,
    prefix_kv: list[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
) -> tuple[list[_Row], object, torch.Tensor, torch.Tensor]:
    """Prefill prompts after their shared prefix in one forward, right-padded to the longest:
    causal attention keeps every real token from seeing the pads after it, so no mask is needed.

    Returns the rows, their cache (``[n, H, shared + L, D]`` per layer), its column mask
    ``[n, shared + L]`` (0 on the pads) and the next-token logits ``[n, V]`` of each last real token.
    """
    n, width = len(prompts), max(len(p) for p in prompts) - shared
    ids = torch.tensor([list(p[shared:]) + [p[-1]] * (width - len(p) + shared) for p in prompts],
                       dtype=torch.long, device=device)
    positions = torch.arange(shared, shared + width, device=device).expand(n, width)
    cache = prefix_cache(model, prefix_kv, n)
    last = [len(p) - shared - 1 for p in prompts]
    keep = sorted(set(last))  # only these positions need the output head
    out = model(input_ids=ids, position_ids=positions, use_cache=True,
                logits_to_keep=torch.tensor(keep, device=device), **{cache_arg: cache})
    logits = out.logits[torch.arange(n, device=device), torch.tensor([keep.index(j) for j in last], device=device)]
    mask = torch.zeros((n, shared + width), dtype=torch.long, device=device)
    for b, p in enumerate(prompts):
        mask[b, : len(p)] = 1
    rows = [_Row(index=i, position=len(p)) for i, p in zip(indices, prompts)]
    return rows, cache, mask, logits


def _select(cache: object, rows: list[int]) -> object:
    """``cache`` with only the batch rows ``rows`` (the same object when that is all of them)."""
    n = cache.layers[0].keys.shape[0]
    if rows != list(range(n)):
        cache.batch_select_indices(torch.tensor(rows, dtype=torch.long, device=cache.layers[0].keys.device))
    return cache


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad dimension 2 (a cache's sequence axis) or 1 (a mask's) on the left to ``width``."""
    dim = 2 if t.dim() == 4 else 1
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


@torch.no_grad()
def decode(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    eos_ids: set[int],
    batch_size: int,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seeds: Sequence[int] | None = None,
    keep_states: bool = False,
) -> list[list[int]] | tuple[list[list[int]], list[torch.Tensor]]:
    """Generated token ids per prompt, in order; each ends at its first end-of-turn token
    (included) or after ``max_new_tokens``.

    Args:
        prompts: token ids of each prompt (chat-formatted), any lengths.
        batch_size: rows decoded at once; a finished row is replaced by the next waiting prompt.
        seeds: one sampling seed per prompt (needed when ``temperature > 0``).
        keep_states: also return, per prompt, the model's last hidden states ``[n, d]`` at
            every position of ``prompt + answer`` but an end-of-turn token: the states its output
            projection turned into each next-token distribution, which a distillation loss on
            the same tokens would compute again. An answer cut at ``max_new_tokens`` is fed its
            last token once more (its state, not another token, is kept), so every row's states
            cover all positions a training row ending in end-of-turn predicts from.
    """
    if temperature > 0 and (seeds is None or len(seeds) != len(prompts)):
        raise ValueError(f"sampling needs one seed per prompt, got {None if seeds is None else len(seeds)} "
                         f"for {len(prompts)} prompts")
    cache_arg = _cache_argument(model)
    assert cache_arg is not None
    device = next(model.parameters()).device
    results: list[list[int] | None] = [None] * len(prompts)
    gens = {i: torch.Generator().manual_seed(int(s)) for i, s in enumerate(seeds)} if temperature > 0 else {}
    waiting = list(range(len(prompts)))[::-1]  # popped from the end: prompts start in order
    batch = _Batch(cache_arg)

    def pick(logits: torch.Tensor, rows: list[_Row]) -> list[int]:
        g = [gens[r.index] for r in rows] if temperature > 0 else None
        return sample_next(logits, temperature, top_p, g).tolist()

    def done(row: _Row) -> bool:
        ended = row.closing or row.tokens[-1] in eos_ids
        if not ended and len(row.tokens) >= max_new_tokens:
            ended = not keep_states
            row.closing = keep_states  # one more step for the last token's state
        if ended:
            results[row.index] = row.tokens
            if keep_states:
                states[row.index] = torch.cat(row.states)
                row.states = []
            progress.advance(1, tokens=len(row.tokens))  # the open phase's bar, if any
        return ended

    states: list[torch.Tensor | None] = [None] * len(prompts)
    tap = _Tap(model) if keep_states else None  # the hook comes off however the loop ends
    try:
        # The prefix all prompts share is prefilled once; each prompt then prefills only its own tail.
        shared = _shared_prefix(prompts)
        prefix_kv: list[tuple[torch.Tensor, torch.Tensor]] = []
        prefix_states: list[torch.Tensor] = []
        if shared >= MIN_SHARED_PREFIX:
            prefix_kv = prefill_prefix(model, prompts[0][:shared], cache_arg, device)
            prefix_states = [tap.last[0]] if tap is not None else []
        else:
            shared = 0

        while waiting or batch.rows:
            # Fill free rows with the next waiting prompts, prefilled in groups of similar length.
            free = min(batch_size - len(batch.rows), len(waiting))
            for group in _length_groups([waiting.pop() for _ in range(free)], prompts, shared):
                rows, cache, mask, logits = _prefill(model, cache_arg, [prompts[i] for i in group], group,
                                                     shared, prefix_kv, device)
                if tap is not None:
                    for b, (row, i) in enumerate(zip(rows, group)):
                        row.states = [*prefix_states, tap.last[b, : len(prompts[i]) - shared]]
                for row, tok in zip(rows, pick(logits, rows)):
                    row.tokens.append(tok)
                alive = [b for b, row in enumerate(rows) if not done(row)]
                if alive:
                    batch.add([rows[b] for b in alive], _select(cache, alive), mask[alive])
            if not batch.rows:
                continue
            fed = torch.tensor([r.tokens[-1] for r in batch.rows], dtype=torch.long, device=device)
            logits = batch.step(model, fed)
            if tap is not None:
                for b, row in enumerate(batch.rows):
                    row.states.append(tap.last[b])
            keep = []
            for b, (row, tok) in enumerate(zip(batch.rows, pick(logits, batch.rows))):
                if not row.closing:
                    row.tokens.append(tok)
                if not done(row):
                    keep.append(b)
            if len(keep) < len(batch.rows):
                batch.keep(keep)  # finished rows leave before the next forward; the fill refills them
    finally:
        if tap is not None:
            tap.close()
    ids = [r if r is not None else [] for r in results]
    return (ids, [s if s is not None else torch.zeros(0) for s in states]) if keep_states else ids
