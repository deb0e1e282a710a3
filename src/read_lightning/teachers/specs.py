"""Teacher specs: what a config says about a teacher, built into one only when it is needed.

A spec is a small picklable object that a YAML ``class_path``/``init_args`` entry names, as
Lightning users configure loggers and callbacks::

    data:
      teacher:
        class_path: read_lightning.teachers.HTTPTeacherSpec
        init_args: {url: http://127.0.0.1:8000, model: my-served-model, timeout: 60}

Parsing the config makes the spec and checks its values (a bad one is named before any model
loads); :meth:`TeacherSpec.build` makes the teacher (loads the model, starts vLLM) on the one
process that generates. What the run owns is not a spec's: the seed and the sampling options
(``temperature``, ``top_p``, ``max_new_tokens``) are the data module's and are passed to
``build``, so they are set in one place.

Imports nothing heavy: the teachers and their models are imported in ``build``.
"""

from __future__ import annotations

from typing import Any

from read_lightning.core.checks import check_number

__all__ = ["TeacherSpec", "HFTeacherSpec", "VLLMTeacherSpec", "HTTPTeacherSpec", "check_engine_kwargs",
           "known_specs", "spec_class", "spec_from_config", "SAMPLING_KEYS", "VLLM_MEMORY_SHARE"]

# vLLM claims 90% of the GPU by default, but here the student trains on the same device in the
# same process; the teacher is built first (in setup), so without a limit training would be left
# with a tenth. A 135M teacher needs well under 1% of an 80 GB card, a 7B one about 25%.
VLLM_MEMORY_SHARE = 0.3
# What the run owns and passes to build: never a spec's argument, never an engine keyword.
SAMPLING_KEYS = ("seed", "temperature", "top_p", "max_new_tokens")


class TeacherSpec:
    """A teacher's configuration. ``model`` names the teacher's model; ``backend`` is the name the
    string form gives the same teacher (``hf``, ``vllm``, ``http``); ``in_process`` says whether
    the model runs in this process (then it is also the module's logit-KD teacher)."""

    backend: str = ""
    in_process: bool = True
    model: str
    dtype: str = "float32"

    def build(self, tokenizer: Any, *, seed: int, sampling: dict[str, Any], cache_dir: str | None = None) -> Any:
        """The teacher. ``tokenizer`` is the student's (the HTTP teacher counts tokens with it
        when the server reports none), ``sampling`` holds ``temperature``, ``top_p`` and
        ``max_new_tokens``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)


def _check_model(owner: str, model: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise ValueError(f"{owner} model must name a model, got {model!r}")
    return model


def _check_dtype(owner: str, dtype: Any) -> str:
    if not isinstance(dtype, str) or not dtype.strip():
        raise ValueError(f"{owner} dtype must name a dtype, got {dtype!r}")
    return dtype


class HFTeacherSpec(TeacherSpec):
    """An in-process Hugging Face model (``HFTeacher``).

    Args:
        model: Hub id, local directory, or ``embedded:smollm2-135m-instruct``.
        dtype: the weights' dtype.
        batch_size: rows decoded at once (a call's further prompts refill finished rows).
        engine: ``HFTeacher``'s decoding engine (``auto``, ``loop``, ``generate``).
    """

    backend = "hf"

    def __init__(self, model: str, dtype: str = "float32", batch_size: int = 16, engine: str = "auto") -> None:
        from read_lightning.teachers.generation import HF_ENGINES
        from read_lightning.teachers.models import resolve_dtype

        self.model = _check_model("HFTeacherSpec", model)
        try:
            resolve_dtype(dtype)
        except (TypeError, ValueError) as err:
            raise ValueError(f"HFTeacherSpec {err}") from None
        self.dtype = dtype
        check_number("HFTeacherSpec batch_size", batch_size, low=1, integer=True)
        if engine not in HF_ENGINES:
            raise ValueError(f"HFTeacherSpec engine {engine!r} is not one of {list(HF_ENGINES)}")
        self.batch_size, self.engine = batch_size, engine

    def build(self, tokenizer: Any, *, seed: int, sampling: dict[str, Any], cache_dir: str | None = None) -> Any:
        import torch

        from read_lightning.teachers.generation import HFTeacher
        from read_lightning.teachers.models import load_model, load_tokenizer

        model = load_model(self.model, dtype=self.dtype, cache_dir=cache_dir, shared=True)
        if torch.cuda.is_available() and next(model.parameters()).device.type == "cpu":
            model.to("cuda")
        return HFTeacher(model, load_tokenizer(self.model, cache_dir), batch_size=self.batch_size, seed=seed,
                         engine=self.engine, **sampling)


def check_engine_kwargs(engine: Any, name: str, owners: dict[str, str]) -> dict[str, Any]:
    """``vllm.LLM`` keywords, checked: ``owners`` maps the keys set elsewhere to where (a key
    given twice is refused, naming that place); ``gpu_memory_utilization`` defaults to
    ``VLLM_MEMORY_SHARE``. ``name`` names the option in errors."""
    engine = {} if engine is None else engine
    if not isinstance(engine, dict) or not all(isinstance(k, str) for k in engine):
        raise ValueError(f"{name} must map vllm.LLM argument names to values, got {engine!r}")
    for key, option in owners.items():
        if key in engine:
            raise ValueError(f"{name} sets {key!r}={engine[key]!r}; use {option} instead")
    if "gpu_memory_utilization" in engine:
        check_number(f"{name}.gpu_memory_utilization", engine["gpu_memory_utilization"],
                     low=0.0, high=1.0, open_low=True)
    return {"gpu_memory_utilization": VLLM_MEMORY_SHARE, **engine}


class VLLMTeacherSpec(TeacherSpec):
    """A vLLM engine in this process (``VLLMTeacher``, the ``[vllm]`` extra, a GPU).

    Args:
        model: Hub id, local directory, or ``embedded:smollm2-135m-instruct``.
        dtype: the weights' dtype.
        engine_kwargs: further ``vllm.LLM`` arguments (``tensor_parallel_size``,
            ``max_model_len``, ...); ``gpu_memory_utilization`` defaults to 0.3, since the
            student trains on the same GPU.
    """

    backend = "vllm"

    def __init__(self, model: str, dtype: str = "float32", engine_kwargs: dict[str, Any] | None = None) -> None:
        self.model = _check_model("VLLMTeacherSpec", model)
        self.dtype = _check_dtype("VLLMTeacherSpec", dtype)
        owners = {"model": "data.teacher.init_args.model", "dtype": "data.teacher.init_args.dtype",
                  **{k: f"data.{k}" for k in SAMPLING_KEYS}}
        self.engine_kwargs = check_engine_kwargs(engine_kwargs, "VLLMTeacherSpec engine_kwargs", owners)

    def build(self, tokenizer: Any, *, seed: int, sampling: dict[str, Any], cache_dir: str | None = None) -> Any:
        from read_lightning.teachers import generation
        from read_lightning.teachers.models import resolve_model_path

        path = resolve_model_path(self.model, cache_dir)
        return generation.VLLMTeacher(path, seed=seed, dtype=self.dtype, **self.engine_kwargs, **sampling)


class HTTPTeacherSpec(TeacherSpec):
    """A server the user runs (vLLM serve, llama.cpp server, TGI, a hosted API) behind an
    OpenAI-compatible ``/v1/chat/completions`` endpoint (``HTTPTeacher``).

    Args:
        url: server root, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is accepted).
        model: the served model's name, sent in each request.
        timeout: seconds per request attempt.
        api_key_env: the environment variable holding the API key (never the key itself).
        max_retries, backoff: retries after a connection error, a timeout or a busy server,
            waiting ``backoff`` seconds, doubled each time.
        concurrency: requests in flight at once.
    """

    backend = "http"
    in_process = False

    def __init__(self, url: str, model: str, timeout: float = 120.0, api_key_env: str | None = "OPENAI_API_KEY",
                 max_retries: int = 3, backoff: float = 1.0, concurrency: int = 4) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"HTTPTeacherSpec url must start with http:// or https://, got {url!r}")
        self.url, self.model = url, _check_model("HTTPTeacherSpec", model)
        check_number("HTTPTeacherSpec timeout", timeout, low=0.0, open_low=True)
        check_number("HTTPTeacherSpec max_retries", max_retries, low=0, integer=True)
        check_number("HTTPTeacherSpec backoff", backoff, low=0.0)
        check_number("HTTPTeacherSpec concurrency", concurrency, low=1, integer=True)
        self.timeout, self.api_key_env = float(timeout), api_key_env
        self.max_retries, self.backoff, self.concurrency = max_retries, float(backoff), concurrency

    def build(self, tokenizer: Any, *, seed: int, sampling: dict[str, Any], cache_dir: str | None = None) -> Any:
        from read_lightning.teachers.generation import HTTPTeacher

        return HTTPTeacher(self.url, self.model, api_key_env=self.api_key_env, timeout=self.timeout,
                           max_retries=self.max_retries, backoff=self.backoff, concurrency=self.concurrency,
                           tokenizer=tokenizer, seed=seed, **sampling)


# --------------------------------------------------------------------------- naming a spec
def known_specs() -> dict[str, type[TeacherSpec]]:
    """The subclasses of :class:`TeacherSpec` imported so far, by class name (the package's three
    first)."""
    found: dict[str, type[TeacherSpec]] = {}
    todo = list(TeacherSpec.__subclasses__())
    while todo:
        cls = todo.pop(0)
        found.setdefault(cls.__name__, cls)
        todo.extend(cls.__subclasses__())
    return found


def spec_class(class_path: Any) -> type[TeacherSpec] | None:
    """The spec class a config's ``class_path`` names, resolved as jsonargparse resolves it: a
    dotted path to a :class:`TeacherSpec` subclass, or the name of one imported so far. None when
    it names none (not importable, or not a spec)."""
    import importlib

    if not isinstance(class_path, str) or not class_path:
        return None
    if "." not in class_path:
        return known_specs().get(class_path)
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, TeacherSpec) else None


def spec_from_config(entry: Any, where: str = "data.teacher") -> TeacherSpec:
    """The spec of a config's ``{class_path, init_args}`` entry (a recipe read as plain YAML);
    a ``ValueError`` naming ``where`` when the class path names no spec or refuses its arguments."""
    cls = spec_class(entry.get("class_path") if isinstance(entry, dict) else None)
    if cls is None:
        raise ValueError(f"{where}: class_path {entry.get('class_path') if isinstance(entry, dict) else entry!r} "
                         f"is not a teacher spec; accepted: {', '.join(known_specs())}")
    try:
        return cls(**(entry.get("init_args") or {}))
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None
