"""Task requirement inference: from a task card to the requirement vector r.

Users rarely know the right requirement vector (METHOD.md, "Requirement vector"), so there are
three ways to get one, behind one entry point, :func:`infer_requirement`:

* ``"card"``: the vector written in the task card, validated (non-negative, renormalised,
  unknown names rejected).
* ``"identifier"``: a learned identifier ``g_phi(card)`` (:class:`RequirementIdentifier`): a
  fixed text encoder, a small MLP and a softmax, fitted offline on intervention data
  (``read_lightning.requirement.interventions``) by :func:`fit_identifier`::

      min_phi  sum_m (dU_m - a * g_phi(card_m) . ds_m)^2  +  lambda_ent * H(g_phi(card_m))

  where ``ds_m`` is the change of the capability profile and ``dU_m`` the change of task
  utility caused by intervention ``m``. It fits the utility *change*: the first-order model is
  ``dU ~ grad_s F(s) . ds``, and fitting absolute utility (the published code's weakness)
  confounds r with how good the student already is. ``a > 0`` is one learned gain shared by
  all cards (``fit_scale=True``): task and probe scores live on different scales, and without
  it the softmax would have to distort r's direction to match dU's magnitude.
* ``"zero_shot"``: the teacher rates each capability 0-10 for the card; its answer is parsed
  robustly (:func:`parse_importance`) and falls back to uniform, with a warning, when it
  cannot be read.

Every method returns a :class:`RequirementResult`: the vector plus a one-line explanation for
the run summary.

Encoders (``encoder=`` of :func:`fit_identifier`, ``--encoder`` of ``read-train identifier``):

* ``"hashed"`` (default): a hashed bag of word 1- and 2-grams of the card text (feature
  hashing, signed, log counts, L2-normalised), ``[N, dim]``. Needs no download and no model,
  is deterministic across processes (blake2b, not Python's salted ``hash``), and with a few
  dozen training cards it does as well as anything: the identifier mostly has to key on words
  such as "Python", "arithmetic" or "translate".
* ``"embeddings"``: the mean-pooled *input* embeddings of a causal LM's tokens
  (``models.load_model``; default the embedded student/teacher), ``[N, hidden]``. Shares
  sub-word knowledge between related words ("sum" and "add"), so it may generalise better to
  unseen cards when there are many; it costs a model load.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, validate_distribution
from read_lightning.teachers.generation import Teacher
from read_lightning.core.jsonl import read_jsonl
from read_lightning.teachers.models import EMBEDDED
from read_lightning.evaluation.tasks import TaskCard

__all__ = [
    "METHODS",
    "HashedNgramEncoder",
    "ModelEmbeddingEncoder",
    "RequirementIdentifier",
    "RequirementResult",
    "card_requirement",
    "card_text",
    "fit_identifier",
    "identifier_main",
    "identifier_requirement",
    "infer_requirement",
    "intervention_arrays",
    "load_card",
    "make_encoder",
    "parse_importance",
    "resolve_card",
    "zero_shot_prompt",
    "zero_shot_requirement",
]

METHODS: tuple[str, ...] = ("card", "identifier", "zero_shot", "auto")
_STATE_FILE = "identifier.pt"
_CONFIG_FILE = "config.json"
_FORMAT = 1  # bump when the saved identifier changes meaning


@dataclass(frozen=True)
class RequirementResult:
    """A requirement vector (a distribution over capabilities), how it was obtained, and why."""

    vector: dict[str, float]
    method: str
    explanation: str


def _describe(vector: Mapping[str, float], k: int = 3) -> str:
    """``"math 0.52, reasoning 0.31, code 0.09"``: the ``k`` largest entries, for explanations."""
    top = sorted(vector.items(), key=lambda kv: -kv[1])[:k]
    return ", ".join(f"{c} {v:.2f}" for c, v in top)


def card_text(card: TaskCard) -> str:
    """The text the identifier and the zero-shot teacher see: what the card says the task is.

    Description, instruction, input/output formats and exemplars; not the name (an arbitrary id)
    nor the hand-set requirement (that would leak the answer into the identifier's input).
    """
    parts = [card.description.strip()]
    if card.instruction.strip():
        parts.append(f"Instruction: {card.instruction.strip()}")
    if card.input_format.strip():
        parts.append(f"Input format: {card.input_format.strip()}")
    if card.output_format.strip():
        parts.append(f"Output format: {card.output_format.strip()}")
    for i, ex in enumerate(card.exemplars, start=1):
        parts.append(f"Example {i}: " + " | ".join(f"{k}: {str(v).strip()}" for k, v in ex.items()))
    return "\n".join(parts)


# --------------------------------------------------------------------------- 1. the card


def card_requirement(card: TaskCard, capabilities: Sequence[str] | None = None) -> RequirementResult:
    """The card's own vector, re-validated against ``capabilities`` and renormalised.

    ``TaskCard.load`` validates against the capabilities it was given; this checks again, so a
    card built in code, or loaded for another capability set, is held to the same rules.
    Raises ``ValueError`` naming the card and the bad entry, or that there is no vector.
    """
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    where = str(card.path or card.name)
    if card.requirement is None:
        raise ValueError(f"task card {where!r} has no 'requirement' field; use method 'identifier' or 'zero_shot'")
    vector = validate_distribution(
        card.requirement, capabilities, name=f"{where}: field 'requirement'", normalise=True
    )
    return RequirementResult(vector, "card", f"given in task card {card.name!r}: {_describe(vector)}")


# --------------------------------------------------------------------------- encoders


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class HashedNgramEncoder:
    """Signed feature hashing of word n-grams: texts ``[N]`` -> features ``[N, dim]`` (fp32).

    Each n-gram (``ngram_range``, words lowercased) goes to bucket ``blake2b(gram) % dim`` with a
    sign from the same digest, so collisions cancel on average instead of piling up. Counts are
    ``log1p``-damped (a long card must not drown the rest in its most frequent words) and each
    row is L2-normalised (features do not scale with card length).
    """

    kind = "hashed"

    def __init__(self, dim: int = 2048, ngram_range: tuple[int, int] = (1, 2)) -> None:
        if dim < 2:
            raise ValueError(f"hashed encoder dim must be >= 2, got {dim}")
        lo, hi = ngram_range
        if not 1 <= lo <= hi:
            raise ValueError(f"ngram_range must satisfy 1 <= low <= high, got {ngram_range!r}")
        self.dim, self.ngram_range = int(dim), (int(lo), int(hi))

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "dim": self.dim, "ngram_range": list(self.ngram_range)}

    def _bucket(self, gram: str) -> tuple[int, float]:
        digest = int.from_bytes(hashlib.blake2b(gram.encode("utf-8"), digest_size=8).digest(), "little")
        return digest % self.dim, 1.0 if (digest >> 63) & 1 else -1.0

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros((len(texts), self.dim), dtype=torch.float32)
        lo, hi = self.ngram_range
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for n in range(lo, hi + 1):
                for i in range(len(words) - n + 1):
                    idx, sign = self._bucket(" ".join(words[i : i + n]))
                    out[row, idx] += sign
        out = out.sign() * torch.log1p(out.abs())
        return torch.nn.functional.normalize(out, dim=-1)


class ModelEmbeddingEncoder:
    """Mean-pooled input embeddings of a causal LM: texts ``[N]`` -> features ``[N, hidden]``.

    Uses only the token-embedding table (no forward pass), so it is cheap once the model is
    loaded; the model is loaded lazily with ``shared=True`` (one copy per process, the same one
    the teacher uses). Rows are L2-normalised.
    """

    kind = "embeddings"

    def __init__(self, model: str = EMBEDDED, cache_dir: str | None = None) -> None:
        self.model_name, self.cache_dir = model, cache_dir
        self._table: torch.Tensor | None = None
        self._tokenizer: Any = None

    @property
    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model_name}

    def _load(self) -> None:
        if self._table is None:
            from read_lightning.teachers.models import load_model, load_tokenizer

            model = load_model(self.model_name, cache_dir=self.cache_dir, shared=True)
            self._table = model.get_input_embeddings().weight.detach().float().cpu()  # [V, H]
            self._tokenizer = load_tokenizer(self.model_name, self.cache_dir)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        self._load()
        assert self._table is not None
        rows = []
        for text in texts:
            ids = list(self._tokenizer(text, add_special_tokens=False)["input_ids"]) or [self._tokenizer.eos_token_id]
            rows.append(self._table[torch.tensor(ids)].mean(0))
        return torch.nn.functional.normalize(torch.stack(rows), dim=-1)


Encoder = HashedNgramEncoder | ModelEmbeddingEncoder


def make_encoder(config: str | Mapping[str, Any], cache_dir: str | None = None) -> Encoder:
    """An encoder from its name (``"hashed"``, ``"embeddings"``) or its saved ``config`` dict."""
    config = {"kind": config} if isinstance(config, str) else dict(config)
    kind = config.pop("kind", None)
    if kind == HashedNgramEncoder.kind:
        if "ngram_range" in config:
            config["ngram_range"] = tuple(config["ngram_range"])
        return HashedNgramEncoder(**config)
    if kind == ModelEmbeddingEncoder.kind:
        return ModelEmbeddingEncoder(**config, cache_dir=cache_dir)
    raise ValueError(f"unknown encoder {kind!r}; choose 'hashed' or 'embeddings'")


# --------------------------------------------------------------------------- 2. the identifier


class RequirementIdentifier(torch.nn.Module):
    """``g_phi``: card text -> requirement vector, an MLP with a softmax on a fixed encoder.

    ``forward(features [N, D]) -> [N, C]`` (rows sum to 1); ``predict(card)`` gives a dict over
    ``capabilities``. The last layer starts at zero, so an untrained identifier says "uniform"
    rather than something arbitrary. ``log_gain`` is the shared gain ``a = exp(log_gain)`` of
    the fit (not used for prediction).
    """

    def __init__(
        self,
        encoder: Encoder,
        capabilities: Sequence[str] = DEFAULT_CAPABILITIES,
        hidden: int = 64,
        input_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.capabilities = list(capabilities)
        self.hidden = int(hidden)
        self.input_dim = int(input_dim or encoder.encode(["probe"]).shape[-1])
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(self.input_dim, self.hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(self.hidden, len(self.capabilities)),
        )
        torch.nn.init.zeros_(self.mlp[-1].weight)
        torch.nn.init.zeros_(self.mlp[-1].bias)
        self.log_gain = torch.nn.Parameter(torch.zeros(()))
        self.info: dict[str, Any] = {}  # training statistics, saved with the config

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.mlp(features), dim=-1)

    @torch.no_grad()
    def predict_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Requirement vectors ``[N, C]`` for card texts ``[N]``."""
        return self(self.encoder.encode(texts))

    def predict(self, card: TaskCard | str) -> dict[str, float]:
        """The requirement vector for one card (or card text), as a distribution over capabilities."""
        text = card if isinstance(card, str) else card_text(card)
        probs = self.predict_texts([text])[0].tolist()
        return validate_distribution(probs, self.capabilities, name="identifier output", normalise=True)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "encoder": self.encoder.config,
            "capabilities": self.capabilities,
            "hidden": self.hidden,
            "input_dim": self.input_dim,
            "info": self.info,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``identifier.pt`` (a plain state dict) into directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), path / _STATE_FILE)
        (path / _CONFIG_FILE).write_text(json.dumps(self.config, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, cache_dir: str | None = None) -> RequirementIdentifier:
        """Read an identifier written by :meth:`save`; errors name the directory."""
        path = Path(path)
        cfg_file, state_file = path / _CONFIG_FILE, path / _STATE_FILE
        if not cfg_file.is_file() or not state_file.is_file():
            raise FileNotFoundError(f"{path}: not a saved identifier (needs {_CONFIG_FILE} and {_STATE_FILE})")
        try:
            cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{cfg_file}: corrupt identifier config ({err.msg})") from None
        if cfg.get("format") != _FORMAT:
            raise ValueError(f"{cfg_file}: identifier format {cfg.get('format')!r}, this version reads {_FORMAT}")
        model = cls(
            make_encoder(cfg["encoder"], cache_dir=cache_dir),
            cfg["capabilities"],
            hidden=cfg["hidden"],
            input_dim=cfg["input_dim"],
        )
        model.load_state_dict(torch.load(state_file, map_location="cpu", weights_only=True))
        model.info = dict(cfg.get("info", {}))
        return model.eval()


def _row_card_text(row: Mapping[str, Any], cache: dict[str, str], capabilities: Sequence[str]) -> str:
    """The card text of an intervention row: stored in the row, else read from its card file."""
    if isinstance(row.get("card_text"), str):
        return row["card_text"]
    path = str(row["card"])
    if path not in cache:
        cache[path] = card_text(load_card(path, capabilities))  # a card may name capabilities outside the subset
    return cache[path]


def intervention_arrays(
    rows: Sequence[Mapping[str, Any]], capabilities: Sequence[str]
) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Intervention rows -> (unique card texts ``[K]``, card index ``[M]``, ``ds`` ``[M, C]``, ``dU`` ``[M]``).

    Each row needs ``delta_s`` (a mapping over every capability), ``delta_u`` and either
    ``card_text`` or a ``card`` path. Errors name the row.
    """
    texts: list[str] = []
    where: dict[str, int] = {}
    cache: dict[str, str] = {}
    index, ds, du = [], [], []
    for m, row in enumerate(rows):
        text = _row_card_text(row, cache, capabilities)
        index.append(where.setdefault(text, len(where)))
        if len(where) > len(texts):
            texts.append(text)
        delta = row["delta_s"]
        missing = [c for c in capabilities if c not in delta]
        if missing:
            raise ValueError(f"intervention row {m} ({row.get('card_name', '?')}): delta_s lacks {missing!r}")
        ds.append([float(delta[c]) for c in capabilities])
        du.append(float(row["delta_u"]))
    return texts, torch.tensor(index), torch.tensor(ds), torch.tensor(du)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run a block on one intra-op thread, then restore the thread count.

    The fit is tiny (``[K, D] x [D, H]`` per step): extra threads only add hand-off cost, which
    on a busy shared CPU made each step ~50x slower than on one thread.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of each row of ``p`` ``[N, C]`` -> ``[N]``."""
    return -(p * torch.log(p.clamp_min(1e-12))).sum(-1)


def fit_identifier(
    rows: Sequence[Mapping[str, Any]],
    capabilities: Sequence[str] | None = None,
    *,
    encoder: str | Encoder = "hashed",
    hidden: int = 64,
    lambda_ent: float = 1e-3,
    fit_scale: bool = True,
    steps: int = 600,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
    cache_dir: str | None = None,
) -> RequirementIdentifier:
    """Fit ``g_phi`` to intervention rows: ``min mean (dU - a g(card).ds)^2 + lambda_ent mean H(g)``.

    ``ds`` and ``dU`` are divided by one common scale (the RMS of ``ds``), which leaves the
    relation ``dU = a r.ds`` and so r unchanged but puts the loss near 1 whatever the probe's
    units; ``lambda_ent`` is on that scale. Full-batch AdamW for ``steps`` steps, under a
    forked RNG seeded with ``seed`` (the caller's RNG state is untouched). Returns the
    identifier in eval mode with ``info`` holding the fit statistics.
    """
    if not rows:
        raise ValueError("fit_identifier needs at least one intervention row")
    if lambda_ent < 0:
        raise ValueError(f"lambda_ent must be >= 0, got {lambda_ent}")
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    enc = make_encoder(encoder, cache_dir=cache_dir) if isinstance(encoder, str) else encoder
    texts, index, ds, du = intervention_arrays(rows, capabilities)
    features = enc.encode(texts)  # [K, D]
    scale = ds.pow(2).mean().sqrt().clamp_min(1e-8)
    ds, du = ds / scale, du / scale
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        model = RequirementIdentifier(enc, capabilities, hidden=hidden, input_dim=features.shape[-1])
        model.log_gain.requires_grad_(fit_scale)
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            g = model(features)  # [K, C]
            pred = model.log_gain.exp() * (g[index] * ds).sum(-1)  # [M]
            mse = (du - pred).pow(2).mean()
            loss = mse + lambda_ent * _entropy(g).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        g = model(features)
        pred = model.log_gain.exp() * (g[index] * ds).sum(-1)
        resid = (du - pred).pow(2).mean().item()
        var = du.var(unbiased=False).item()
    model.info = {
        "rows": len(rows),
        "cards": len(texts),
        "mse": resid * float(scale) ** 2,
        "r2": 1.0 - resid / var if var > 0 else None,  # None, not NaN: config.json stays valid JSON
        "gain": float(model.log_gain.detach().exp()),
        "lambda_ent": lambda_ent,
        "steps": steps,
    }
    return model.eval()


# Loaded identifiers by (directory, modification time): loaded once per process, reloaded if re-fitted.
_IDENTIFIERS: dict[tuple[str, int], RequirementIdentifier] = {}


def identifier_requirement(
    card: TaskCard, identifier: str | os.PathLike | RequirementIdentifier, capabilities: Sequence[str] | None = None
) -> RequirementResult:
    """The learned identifier's vector for ``card`` (loaded once per path and process)."""
    if isinstance(identifier, RequirementIdentifier):
        model, where = identifier, "in-memory identifier"
    else:
        state = Path(identifier) / _STATE_FILE
        key = (str(state.resolve()), state.stat().st_mtime_ns if state.is_file() else -1)
        if key not in _IDENTIFIERS:
            _IDENTIFIERS[key] = RequirementIdentifier.load(identifier)
        model, where = _IDENTIFIERS[key], f"identifier {str(identifier)!r}"
    if capabilities is not None and list(capabilities) != model.capabilities:
        raise ValueError(
            f"{where} was trained for capabilities {model.capabilities!r}, not {list(capabilities)!r}"
        )
    vector = model.predict(card)
    n = model.info.get("rows", "?")
    return RequirementResult(
        vector,
        "identifier",
        f"predicted by {where} ({model.encoder.kind} encoder, fitted on {n} interventions): {_describe(vector)}",
    )


# --------------------------------------------------------------------------- 3. zero-shot


def zero_shot_prompt(card: TaskCard, capabilities: Sequence[str] | None = None) -> str:
    """The user message asking a teacher to rate each capability 0-10 for ``card``."""
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    lines = "\n".join(f"{c}: <0-10>" for c in capabilities)
    return (
        "How important is each capability below for doing this task well? Rate each from 0 "
        "(not needed) to 10 (essential).\n\n"
        f"Task:\n{card_text(card)}\n\n"
        f"Answer with exactly one line per capability, in this form:\n{lines}"
    )


def _norm(name: str) -> str:
    """``"Tool-Use"``, ``"tool_use"``, ``" tool  use"`` -> ``"tool use"``."""
    return re.sub(r"[\s_\-]+", " ", name.lower()).strip()


_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_NUMBER = r"(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+(?:\.\d+)?))?"


def _score(value: Any) -> float | None:
    """A 0-10 rating from ``8``, ``"8"``, ``"8/10"``; ``None`` if it is not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
    else:
        match = re.fullmatch(r"\s*" + _NUMBER + r"\s*", str(value))
        if not match:
            return None
        v = float(match.group(1))
        if match.group(2) and float(match.group(2)) > 0:
            v = 10.0 * v / float(match.group(2))
    return min(max(v, 0.0), 10.0) if math.isfinite(v) else None


def parse_importance(text: str, capabilities: Sequence[str] | None = None) -> dict[str, float] | None:
    """Ratings ``{capability: 0-10}`` read from a model's answer; ``None`` when none can be read.

    Accepts a JSON object (``{"math": 8}``, single quotes too) or lines such as ``math: 8``,
    ``- **Math** - 8/10``, ``1. Tool use = 7``, ``long-context: 3 out of 10``, several per line
    or one per line; names match case-, space-, hyphen- and underscore-insensitively. The first
    rating of a capability wins; ratings are clipped to [0, 10], a ``/N`` denominator rescales to
    10. Unrated capabilities are left out (the caller decides what they mean).
    """
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    alias = {_norm(c): c for c in capabilities}
    scores: dict[str, float] = {}
    for blob in _JSON_OBJECT.findall(text):
        for candidate in (blob, blob.replace("'", '"')):
            try:
                obj = json.loads(candidate)
            except json.JSONDecodeError:
                continue
            for key, value in obj.items() if isinstance(obj, dict) else ():
                cap, v = alias.get(_norm(str(key))), _score(value)
                if cap is not None and v is not None:
                    scores.setdefault(cap, v)
            break
    if scores:
        return scores
    names = "|".join(re.escape(a).replace(r"\ ", r"[\s_\-]+") for a in sorted(alias, key=len, reverse=True))
    # A name, then only punctuation or a few filler words, then the number: "Math - 8/10",
    # "**math**: 8", "tool_use (importance: 7)". Digits in between break the match, so a name
    # next to an unrelated number further on is not read as a rating.
    pattern = re.compile(
        rf"(?<![a-z])({names})(?![a-z])[^\w\n]*(?:(?:importance|score|rating|is|of)[^\w\n]*)*" + _NUMBER,
        re.IGNORECASE,
    )
    for match in pattern.finditer(text):
        cap = alias[_norm(match.group(1))]
        v = _score(match.group(2) + (f"/{match.group(3)}" if match.group(3) else ""))
        if v is not None:
            scores.setdefault(cap, v)
    return scores or None


def zero_shot_requirement(
    card: TaskCard, teacher: Teacher, capabilities: Sequence[str] | None = None, *, max_new_tokens: int = 128
) -> RequirementResult:
    """Ask ``teacher`` to rate every capability 0-10 for ``card`` and normalise the ratings.

    Unrated capabilities count as 0. When nothing can be parsed or every rating is 0, the result
    is uniform, with a ``UserWarning`` and an explanation that says so.
    """
    capabilities = list(capabilities or DEFAULT_CAPABILITIES)
    answer = teacher.generate([zero_shot_prompt(card, capabilities)], max_new_tokens=max_new_tokens)[0].text
    scores = parse_importance(answer, capabilities)
    if not scores or sum(scores.values()) <= 0:
        snippet = " ".join(answer.split())[:80]
        reason = "no capability ratings" if not scores else "all ratings 0"
        msg = f"zero-shot requirement for {card.name!r}: {reason} in the teacher's answer {snippet!r}; using uniform"
        warnings.warn(msg, stacklevel=2)
        uniform = {c: 1.0 / len(capabilities) for c in capabilities}
        return RequirementResult(uniform, "zero_shot", f"{msg} (fallback)")
    vector = validate_distribution(scores, capabilities, name="zero-shot ratings", normalise=True)
    rated = ", ".join(f"{c} {scores[c]:g}" for c in capabilities if c in scores)
    return RequirementResult(
        vector,
        "zero_shot",
        f"rated by the teacher (0-10; unrated = 0): {rated} -> {_describe(vector)}",
    )


# --------------------------------------------------------------------------- entry point


def infer_requirement(
    card: TaskCard,
    method: Literal["card", "identifier", "zero_shot", "auto"] = "auto",
    capabilities: Sequence[str] | None = None,
    identifier_path: str | os.PathLike | None = None,
    teacher: Teacher | None = None,
) -> RequirementResult:
    """The requirement vector of ``card`` by ``method``, with an explanation for the run summary.

    ``"auto"`` takes the card's vector if it has one, else the identifier if ``identifier_path``
    is given, else the zero-shot teacher if ``teacher`` is given, and otherwise raises a
    ``ValueError`` saying what to provide.
    """
    if method not in METHODS:
        raise ValueError(f"unknown requirement method {method!r}; choose one of {list(METHODS)!r}")
    if method == "auto":
        if card.requirement is not None:
            method = "card"
        elif identifier_path is not None:
            method = "identifier"
        elif teacher is not None:
            method = "zero_shot"
        else:
            raise ValueError(
                f"cannot infer the requirement of task {card.name!r}: the card has no 'requirement' field, "
                "and neither an identifier path nor a teacher was given"
            )
    if method == "card":
        return card_requirement(card, capabilities)
    if method == "identifier":
        if identifier_path is None:
            raise ValueError("method 'identifier' needs identifier_path (a directory written by identifier fit)")
        return identifier_requirement(card, identifier_path, capabilities)
    if teacher is None:
        raise ValueError("method 'zero_shot' needs a teacher (an object with generate(prompts, max_new_tokens=...))")
    return zero_shot_requirement(card, teacher, capabilities)


# --------------------------------------------------------------------------- command line


def resolve_card(name_or_path: str) -> Path:
    """A card path, or the name of a shipped example task (``arith_word``)."""
    from read_lightning.evaluation.tasks import list_example_tasks

    path = Path(name_or_path)
    if path.is_file():
        return path
    for example in list_example_tasks():
        if example.parent.name == name_or_path:
            return example
    names = [p.parent.name for p in list_example_tasks()]
    raise FileNotFoundError(f"task card {name_or_path!r} is neither a file nor an example task {names!r}")


def load_card(name_or_path: str, capabilities: Sequence[str] = (), *, check_data: bool = False) -> TaskCard:
    """A task card by path or example-task name, for inference tools.

    Its ``requirement`` is checked against the built-in capabilities plus ``capabilities``, so a
    tool working on a subset of capabilities can still read cards written for all of them.
    """
    known = list(dict.fromkeys([*DEFAULT_CAPABILITIES, *capabilities]))
    return TaskCard.load(resolve_card(name_or_path), known, check_data=check_data)


def identifier_main(argv: list[str] | None = None) -> int:
    """``read-train identifier fit|predict``: fit the requirement identifier, or use it.

    ``fit --data rows.jsonl [--data more.jsonl] --output DIR`` fits on intervention rows and saves;
    ``predict --identifier DIR CARD [CARD ...]`` prints one JSON line per card.
    """
    parser = argparse.ArgumentParser(prog="read-train identifier", description=identifier_main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit g_phi on intervention rows and save it")
    fit.add_argument("--data", action="append", required=True, help="intervention JSONL (repeatable)")
    fit.add_argument("--output", required=True, help="directory to save the identifier into")
    fit.add_argument("--encoder", default="hashed", choices=["hashed", "embeddings"])
    fit.add_argument("--encoder-model", default=EMBEDDED, help="model whose input embeddings 'embeddings' uses")
    fit.add_argument("--hash-dim", type=int, default=2048)
    fit.add_argument("--hidden", type=int, default=64)
    fit.add_argument("--lambda-ent", type=float, default=1e-3)
    fit.add_argument("--no-fit-scale", action="store_true", help="fix the gain a = 1 (dU = g . ds exactly)")
    fit.add_argument("--steps", type=int, default=600)
    fit.add_argument("--lr", type=float, default=1e-2)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--capabilities", nargs="+", default=None)
    fit.add_argument("--cache-dir", default=None)
    pred = sub.add_parser("predict", help="print the predicted requirement vector of task cards")
    pred.add_argument("--identifier", required=True)
    pred.add_argument("cards", nargs="+", help="card paths or example task names")
    pred.add_argument("--cache-dir", default=None, help="model cache, for an 'embeddings' identifier")
    args = parser.parse_args(argv)

    if args.command == "fit":
        rows = [row for path in args.data for row in read_jsonl(path, required=("delta_s", "delta_u"))]
        # Default: the capabilities the rows were collected for, in their order.
        capabilities = args.capabilities or (list(rows[0]["delta_s"]) if rows else None)
        encoder: str | Encoder = (
            HashedNgramEncoder(dim=args.hash_dim)
            if args.encoder == "hashed"
            else ModelEmbeddingEncoder(args.encoder_model, cache_dir=args.cache_dir)
        )
        model = fit_identifier(
            rows,
            capabilities,
            encoder=encoder,
            hidden=args.hidden,
            lambda_ent=args.lambda_ent,
            fit_scale=not args.no_fit_scale,
            steps=args.steps,
            lr=args.lr,
            seed=args.seed,
        )
        model.save(args.output)
        print(json.dumps({"saved": str(args.output), **model.info}))
        return 0
    model = RequirementIdentifier.load(args.identifier, cache_dir=args.cache_dir)
    for name in args.cards:
        card = load_card(name, model.capabilities)
        result = identifier_requirement(card, model)
        print(json.dumps({"card": card.name, "vector": result.vector, "explanation": result.explanation}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(identifier_main())
