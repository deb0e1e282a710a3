"""The learned requirement identifier ``g_phi(card)`` (method ``"identifier"``): a fixed text
encoder, a small MLP and a softmax, fitted on intervention data (see :mod:`read_lightning.requirement.inference`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES, validate_distribution
from read_lightning.evaluation.tasks import TaskCard
from read_lightning.requirement.cards import RequirementResult, card_text, describe_requirement, load_card
from read_lightning.teachers.models import EMBEDDED

__all__ = [
    "Encoder",
    "HashedNgramEncoder",
    "ModelEmbeddingEncoder",
    "RequirementIdentifier",
    "fit_identifier",
    "identifier_requirement",
    "intervention_arrays",
    "make_encoder",
]


_STATE_FILE = "identifier.pt"
_CONFIG_FILE = "config.json"
_FORMAT = 1  # bump when the saved identifier changes meaning
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

    The fit is tiny (``[K, D] x [D, H]`` per step): extra threads only add hand-off cost
    (``docs/results.md``, "Measurements the code relies on").
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
        f"predicted by {where} ({model.encoder.kind} encoder, fitted on {n} interventions): {describe_requirement(vector)}",
    )
