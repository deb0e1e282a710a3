"""Teachers: who answers the capability prompts, behind one small interface.

A teacher takes user messages (plain text, no chat markup) and returns answers with the number
of tokens it generated, which the ledger charges. Teachers are loaded once and reused across
intervals; nothing here reloads a model.

Backends: ``HFTeacher`` (an in-process Hugging Face model, decoded by ``decoding.decode``), ``VLLMTeacher`` (vLLM, the ``vllm``
extra, imported only when constructed) and ``HTTPTeacher`` (any OpenAI-compatible
``/v1/chat/completions`` endpoint, stdlib only); :func:`resolve_teacher_backend` turns the
``auto`` choice into vLLM where it can run and the in-process model elsewhere. All three answer ``generate(prompts,
max_new_tokens=...)`` with one ``Generation`` per prompt, in order.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from read_lightning.core import progress as phases

__all__ = [
    "Prompt",
    "Generation",
    "TeacherStates",
    "Teacher",
    "PromptSource",
    "HFTeacher",
    "VLLMTeacher",
    "HTTPTeacher",
    "TeacherError",
    "StaticPromptSource",
    "TEACHER_BACKENDS",
    "chat_prompt_ids",
    "prompt_seeds",
    "resolve_teacher_backend",
    "HF_ENGINES",
]

TEACHER_BACKENDS: tuple[str, ...] = ("auto", "hf", "vllm", "http")


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
    """A teacher answer and how many tokens producing it cost.

    ``finished``: whether the teacher ended its turn itself (end-of-turn token, or the server's
    ``finish_reason`` was not ``"length"``) rather than being cut at ``max_new_tokens``; ``None``
    when the backend cannot tell.
    """

    text: str
    num_tokens: int
    finished: bool | None = None
    states: TeacherStates | None = field(default=None, compare=False, repr=False)


@dataclass
class TeacherStates:
    """What an in-process teacher computed while answering: ``ids``, the chat-formatted prompt and
    the generated tokens, and ``hidden`` ``[n, d]``, its last hidden states at the first ``n``
    positions of ``ids`` (``n >= len(ids) - 1``). A distillation loss on a training row whose
    tokens start with ``ids[:m]`` can take its teacher targets at positions ``< m`` from here
    instead of running the teacher again (:func:`~read_lightning.training.batches.attach_teacher_states`).
    """

    ids: list[int]
    hidden: torch.Tensor


@runtime_checkable
class Teacher(Protocol):
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int | None = None) -> list[Generation]:
        """Answer each user message; one ``Generation`` per prompt, in order."""
        ...


@runtime_checkable
class PromptSource(Protocol):
    def sample(self, capability: str, rng: random.Random, progress: float) -> Prompt:
        """Draw one prompt for ``capability``; ``progress`` in [0, 1] is the budget spent so far.

        A source may also take ``fits``, a length test on the prompt text, and return only
        prompts passing it (None when it has none): the data module then never spends a draw
        on a prompt its ``max_length`` would drop. Sources without it are redrawn instead.
        """
        ...


class StaticPromptSource:
    """Prompts drawn from fixed per-capability pools (user data, or tests)."""

    def __init__(self, pools: dict[str, Sequence[str]]) -> None:
        empty = [c for c, p in pools.items() if not p]
        if empty:
            raise ValueError(f"prompt pool is empty for capabilities {empty!r}")
        self.pools = {c: list(p) for c, p in pools.items()}
        self._fitting: dict[str, tuple[Callable[[str], bool], list[int]]] = {}  # per capability: (fits, indices)

    @property
    def capabilities(self) -> list[str]:
        return list(self.pools)

    def sample(
        self, capability: str, rng: random.Random, progress: float, fits: Callable[[str], bool] | None = None
    ) -> Prompt | None:
        """A uniform draw from the capability's pool; with ``fits``, from the prompts passing it
        (None when none does)."""
        if capability not in self.pools:
            raise ValueError(f"unknown capability {capability!r}; this source has {list(self.pools)!r}")
        pool = self.pools[capability]
        if fits is None:
            i = rng.randrange(len(pool))
        else:
            # ``==``, not ``is``: a bound method (the generation planner's ``fits``) is a new object at
            # every attribute access, and the pool would be re-tested on every draw.
            if self._fitting.get(capability, (None,))[0] != fits:
                self._fitting[capability] = (fits, [j for j, text in enumerate(pool) if fits(text)])
            fitting = self._fitting[capability][1]
            if not fitting:
                return None
            i = fitting[rng.randrange(len(fitting))]
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


def resolve_teacher_backend(backend: str) -> str:
    """The backend a run uses: ``auto`` is ``vllm`` when vLLM is installed and a CUDA device is
    visible (vLLM needs one), else ``hf``; the others are returned as given.

    Only looks vLLM up (``importlib.util.find_spec``), so ``auto`` costs no import on CPU.
    """
    if backend not in TEACHER_BACKENDS:
        raise ValueError(f"unknown teacher_backend {backend!r}; choose one of {list(TEACHER_BACKENDS)}")
    if backend != "auto":
        return backend
    import importlib.util

    return "vllm" if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available() else "hf"


HF_ENGINES: tuple[str, ...] = ("auto", "loop", "generate")


def prompt_seeds(seed: int, call: int, n: int) -> list[int]:
    """One sampling seed per prompt of a teacher call: a function of the teacher's seed, the call
    counter (restored on resume) and the prompt's index in the call, never of the batch it
    shares, so a resumed run draws the same answers."""
    base = (seed * 1_000_003 + call) * 10_007
    return [base + i for i in range(n)]


class HFTeacher:
    """An in-process Hugging Face causal LM answering in batches.

    Args:
        engine: ``loop`` decodes with :func:`~read_lightning.teachers.decoding.decode` (each
            prompt prefilled alone, finished rows refilled, each prompt sampled from its own
            seed); ``generate`` calls ``model.generate`` on left-padded batches sorted by length
            (the reference, several times slower on CPU); ``auto`` is ``loop`` where the model
            supports it (a transformers >= 5 causal LM) and ``generate`` otherwise.

    Sampling is reproducible and leaves the global RNG state of the training run untouched: the
    loop gives prompt ``i`` of call ``c`` its own generator seeded by :func:`prompt_seeds`; the
    reference seeds a forked RNG from ``seed`` and a per-batch counter.
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
        strip: bool = True,
        engine: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"teacher batch_size must be >= 1, got {batch_size}")
        if engine not in HF_ENGINES:
            raise ValueError(f"unknown HFTeacher engine {engine!r}; choose one of {list(HF_ENGINES)}")
        if not 0 < top_p <= 1:
            raise ValueError(f"teacher top_p must be in (0, 1], got {top_p}")
        _check_sampling(max_new_tokens, temperature)
        from read_lightning.teachers.decoding import supports_decode_loop

        if engine == "loop" and not supports_decode_loop(model):
            raise ValueError(
                f"HFTeacher engine 'loop' needs a transformers >= 5 causal LM, got {type(model).__name__}; "
                "use engine 'generate' or 'auto'"
            )
        self.engine = engine if engine != "auto" else ("loop" if supports_decode_loop(model) else "generate")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.strip = strip  # False keeps leading indentation (a code completion continuing a prompt)
        self.calls = 0
        # Attach TeacherStates to the loop's answers (set by the data module when the training
        # module distils from this very model, so the states are the targets it would compute).
        self.keep_states = False
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], *, max_new_tokens: int | None = None) -> list[Generation]:
        max_new = max_new_tokens or self.max_new_tokens
        encoded = [chat_prompt_ids(self.tokenizer, p) for p in prompts]
        if self.engine == "generate":
            return self._generate_reference(encoded, max_new)
        from read_lightning.teachers.decoding import decode

        seeds = prompt_seeds(self.seed, self.calls, len(prompts))
        self.calls += 1
        out = decode(self.model, encoded, max_new_tokens=max_new, eos_ids=self.eos_ids, batch_size=self.batch_size,
                     temperature=self.temperature, top_p=self.top_p, seeds=seeds, keep_states=self.keep_states)
        if not self.keep_states:
            return [self.answer(row) for row in out]
        answers = []
        for prompt, row, hidden in zip(encoded, *out):
            answer = self.answer(row)
            answer.states = TeacherStates(ids=prompt + list(row), hidden=hidden.cpu())
            answers.append(answer)
        return answers

    def _generate_reference(self, encoded: list[list[int]], max_new: int) -> list[Generation]:
        """``model.generate`` on left-padded batches, sorted by prompt length so each batch wastes
        little compute: the engine the loop is measured against, and the one for models it cannot drive."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: dict[int, Generation] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            for i, gen in zip(idx, self._generate_batch([encoded[i] for i in idx], max_new)):
                results[i] = gen
            phases.advance(len(idx), tokens=sum(results[i].num_tokens for i in idx))
        return [results[i] for i in range(len(encoded))]

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
        return [self.answer(row) for row in generated[:, width:].cpu().tolist()]

    @property
    def eos_ids(self) -> set[int]:
        """Token ids that end a turn: the model's generation config's and the tokenizer's."""
        return _eos_ids(self.tokenizer, self.model)

    def answer(self, row: Sequence[int]) -> Generation:
        """A ``Generation`` from generated ids: cut after the first end-of-turn token, which was
        generated and so is paid for; ``finished`` when there is one."""
        eos_ids = self.eos_ids
        n, finished = len(row), False
        for j, tok in enumerate(row):
            if tok in eos_ids:
                n, finished = j + 1, True
                break
        text = self.tokenizer.decode(list(row[:n]), skip_special_tokens=True)
        return Generation(text=text.strip() if self.strip else text, num_tokens=n, finished=finished)


def _eos_ids(tokenizer: Any, model: torch.nn.Module) -> set[int]:
    ids = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(value)
    return ids


class TeacherError(RuntimeError):
    """A teacher backend could not produce answers (unreachable, timed out, malformed reply)."""


class VLLMTeacher:
    """A vLLM engine answering all prompts of a call in one batch.

    The prompts get the model's chat template (the same ``chat_prompt_ids`` as ``HFTeacher``)
    and are passed as token ids, so both backends see identical inputs; the cost is the number
    of generated token ids. ``engine_kwargs`` go to ``vllm.LLM`` (``tensor_parallel_size``,
    ``gpu_memory_utilization``, ``dtype``, ...).
    """

    def __init__(
        self,
        model: str,
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.2,
        top_p: float = 0.95,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        try:
            import vllm  # heavy and GPU-only: imported here, never at module import
        except ImportError as err:
            raise ImportError(
                "VLLMTeacher needs vLLM, which is not installed; install the extra with "
                "`pip install read-lightning[vllm]` (or use HFTeacher / HTTPTeacher)"
            ) from err
        _check_sampling(max_new_tokens, temperature)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.calls = 0
        self._sampling_params = vllm.SamplingParams
        self.llm = vllm.LLM(model=model, seed=seed, **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int | None = None) -> list[Generation]:
        if not prompts:
            return []
        # One seed per prompt, reproducible per call like HFTeacher's: vLLM seeds each request's
        # generator with its own params' seed, so one shared seed would give duplicate prompts of
        # a call identical answers.
        params = [
            self._sampling_params(
                max_tokens=max_new_tokens or self.max_new_tokens,
                temperature=self.temperature,
                top_p=self.top_p if self.temperature > 0 else 1.0,
                seed=s,
            )
            for s in prompt_seeds(self.seed, self.calls, len(prompts))
        ]
        self.calls += 1
        inputs = [{"prompt_token_ids": chat_prompt_ids(self.tokenizer, p)} for p in prompts]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return [
            Generation(text=o.outputs[0].text.strip(), num_tokens=len(o.outputs[0].token_ids),
                       finished=getattr(o.outputs[0], "finish_reason", None) == "stop")
            for o in outputs
        ]


# Status codes worth retrying: the server is busy, restarting or behind a flaky proxy.
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class HTTPTeacher:
    """A teacher behind an OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM serve, TGI,
    llama.cpp server, hosted APIs), using only the standard library.

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000`` (a trailing ``/v1`` is accepted).
        model: model name sent in each request.
        api_key_env: name of the environment variable holding the API key (sent as a bearer
            token when set); the key itself never appears in configs or logs.
        timeout: seconds per request attempt (connect and each read).
        max_retries: extra attempts after a connection error, a timeout or a retryable status
            (408, 409, 425, 429, 5xx); the wait doubles from ``backoff`` seconds each time.
        concurrency: requests in flight at once (a small thread pool).
        tokenizer: counts tokens when the server reports no ``usage.completion_tokens``;
            without one the count falls back to ceil(characters / 4).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        concurrency: int = 4,
        max_new_tokens: int = 256,
        temperature: float = 0.2,
        top_p: float = 0.95,
        seed: int | None = None,
        tokenizer: Any = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"HTTPTeacher base_url must start with http:// or https://, got {base_url!r}")
        if timeout <= 0:
            raise ValueError(f"HTTPTeacher timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0 or backoff < 0:
            raise ValueError(f"HTTPTeacher max_retries and backoff must be >= 0, got {max_retries}, {backoff}")
        if concurrency < 1:
            raise ValueError(f"HTTPTeacher concurrency must be >= 1, got {concurrency}")
        _check_sampling(max_new_tokens, temperature)
        root = base_url.rstrip("/")
        self.url = (root if root.endswith("/v1") else root + "/v1") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.concurrency = int(concurrency)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.tokenizer = tokenizer
        self.calls = 0  # requests sent, so each gets its own sampling seed (restored on resume)

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int | None = None) -> list[Generation]:
        max_new = max_new_tokens or self.max_new_tokens
        first, self.calls = self.calls, self.calls + len(prompts)
        seeds = [None if self.seed is None else self.seed * 1_000_003 + first + i for i in range(len(prompts))]
        if len(prompts) <= 1 or self.concurrency == 1:
            return [self._one(p, max_new, s) for p, s in zip(prompts, seeds)]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(prompts))) as pool:
            return list(pool.map(lambda ps: self._one(ps[0], max_new, ps[1]), zip(prompts, seeds)))  # keeps the order

    def _one(self, prompt: str, max_new: int, seed: int | None) -> Generation:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_new,
            "temperature": self.temperature,
            "top_p": self.top_p,
        }
        if seed is not None:
            body["seed"] = seed
        reply = self._post(body)
        try:
            choice = reply["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise TeacherError(
                f"teacher endpoint {self.url} returned JSON without choices[0].message.content: {str(reply)[:200]!r}"
            ) from None
        usage = reply.get("usage") if isinstance(reply, dict) else None
        count = usage.get("completion_tokens") if isinstance(usage, dict) else None
        if not isinstance(count, int) or count < 0:
            count = self._count(text)
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        finished = None if not isinstance(reason, str) else reason != "length"
        return Generation(text=text.strip(), num_tokens=count, finished=finished)

    def _count(self, text: str) -> int:
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return math.ceil(len(text) / 4)  # the usual characters-per-token rule of thumb

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode("utf-8", "replace")
                if err.code not in _RETRY_STATUS:
                    raise TeacherError(f"teacher endpoint {self.url} answered HTTP {err.code}: {detail}") from None
                last = f"HTTP {err.code}: {detail}"
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, http.client.HTTPException) as err:
                # HTTPException: the connection dropped mid-reply (IncompleteRead, BadStatusLine)
                reason = getattr(err, "reason", err)
                last = f"timed out after {self.timeout:g}s" if "timed out" in str(reason) else f"unreachable ({reason})"
                continue
            try:
                reply = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise TeacherError(
                    f"teacher endpoint {self.url} returned a body that is not JSON: {raw[:200]!r}"
                ) from None
            if not isinstance(reply, dict):
                raise TeacherError(f"teacher endpoint {self.url} returned JSON that is not an object: {raw[:200]!r}")
            return reply
        raise TeacherError(f"teacher endpoint {self.url} failed after {self.max_retries + 1} attempt(s): {last}")


def _check_sampling(max_new_tokens: int, temperature: float) -> None:
    if max_new_tokens < 1:
        raise ValueError(f"teacher max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"teacher temperature must be >= 0, got {temperature}")
