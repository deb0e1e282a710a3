"""Teacher backends: in-process HF on a tiny Llama, HTTP against a local fake server, vLLM stubs."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import time
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from read_lightning.teachers.generation import (
    Generation,
    HFTeacher,
    HTTPTeacher,
    Teacher,
    TeacherError,
    VLLMTeacher,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# -- HFTeacher -------------------------------------------------------------------------------

PROMPTS = ["What is 12 plus 7?", "Write a Python function.", "The capital of France is", "Translate good morning"]


def test_hf_teacher_one_answer_per_prompt_in_order(tiny_model, tiny_tokenizer):
    teacher = HFTeacher(tiny_model, tiny_tokenizer, batch_size=3, max_new_tokens=6, temperature=0.0)
    assert isinstance(teacher, Teacher)
    gens = teacher.generate(PROMPTS)
    assert len(gens) == len(PROMPTS) and all(isinstance(g, Generation) for g in gens)
    assert all(1 <= g.num_tokens <= 6 for g in gens)
    # Each answer belongs to its own prompt: asking again one by one gives the same greedy text,
    # so batching (left padding, length sorting) neither reorders nor changes answers.
    singles = [teacher.generate([p])[0] for p in PROMPTS]
    assert [g.text for g in gens] == [g.text for g in singles]
    assert [g.num_tokens for g in gens] == [g.num_tokens for g in singles]


def test_an_answer_that_ends_its_turn_on_the_last_allowed_token_is_complete(tiny_tokenizer, tmp_path):
    # the end-of-turn token is counted in num_tokens, so "fewer tokens than the budget" called such
    # an answer cut, and its reference lost the end-of-turn the teacher did produce
    import torch

    from read_lightning.evaluation.probes import cached_teacher_answers

    answer = tiny_tokenizer("The answer is 19.", add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]

    class Scripted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.generation_config = types.SimpleNamespace(eos_token_id=tiny_tokenizer.eos_token_id)

        def generate(self, input_ids, attention_mask, max_new_tokens, **kw):
            return torch.cat([input_ids, torch.tensor([answer[:max_new_tokens]] * len(input_ids))], 1)

    model, budget = Scripted(), len(answer)
    gen = HFTeacher(model, tiny_tokenizer, max_new_tokens=budget, temperature=0.0).generate(["q"])[0]
    assert (gen.text, gen.num_tokens, gen.finished) == ("The answer is 19.", budget, True)
    assert HFTeacher(model, tiny_tokenizer, max_new_tokens=budget - 1, temperature=0.0).generate(["q"])[0].finished is False
    rows = cached_teacher_answers(model, tiny_tokenizer, {("math", "1"): "q"}, tmp_path / "refs.jsonl", max_new_tokens=budget)
    assert rows[("math", "1")]["complete"] is True


def test_hf_teacher_sampling_is_reproducible_per_seed(tiny_model, tiny_tokenizer):
    a = HFTeacher(tiny_model, tiny_tokenizer, max_new_tokens=8, temperature=1.0, top_p=1.0, seed=3)
    b = HFTeacher(tiny_model, tiny_tokenizer, max_new_tokens=8, temperature=1.0, top_p=1.0, seed=3)
    assert [g.text for g in a.generate(PROMPTS)] == [g.text for g in b.generate(PROMPTS)]
    assert a.generate(PROMPTS[:1], max_new_tokens=2)[0].num_tokens <= 2


# -- HTTPTeacher against a local OpenAI-compatible fake ----------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
            n = len(server.requests)
        mode = server.mode
        if mode == "flaky" and n <= 2:
            return self._send(503, b'{"error": "warming up"}')
        if mode == "hang":
            server.release.wait(5.0)
            return self._send(200, b"{}")
        if mode == "garbage":
            return self._send(200, b"<html>definitely not json</html>")
        if mode == "bad_request":
            return self._send(400, b'{"error": "model not found"}')
        if mode == "dropped" and n <= 1:  # promises 500 bytes, sends 19, closes: IncompleteRead
            self.send_response(200)
            self.send_header("Content-Length", "500")
            self.end_headers()
            self.wfile.write(b'{"choices": [{"mes')
            self.close_connection = True
            return
        prompt = body["messages"][-1]["content"]
        reply = {"choices": [{"message": {"role": "assistant", "content": f" echo: {prompt} "}}]}
        if mode == "cut":
            reply["choices"][0]["finish_reason"] = "length"
        if mode != "no_usage":
            reply["usage"] = {"completion_tokens": 7, "prompt_tokens": 3}
        if mode == "slow":
            time.sleep(0.2)
        self._send(200, json.dumps(reply).encode())

    def _send(self, code: int, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.mode, srv.requests, srv.lock, srv.release = "ok", [], threading.Lock(), threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def test_http_teacher_answers_with_usage_counts_and_api_key(server, monkeypatch):
    monkeypatch.setenv("READ_TEST_KEY", "sk-test")
    teacher = HTTPTeacher(server.url, "tiny", api_key_env="READ_TEST_KEY", concurrency=3, max_new_tokens=9)
    assert isinstance(teacher, Teacher)
    gens = teacher.generate(PROMPTS)
    assert [g.text for g in gens] == [f"echo: {p}" for p in PROMPTS]  # order kept across threads
    assert all(g.num_tokens == 7 for g in gens)
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer sk-test"
    assert req["body"]["model"] == "tiny" and req["body"]["max_tokens"] == 9
    assert req["body"]["messages"] == [{"role": "user", "content": req["body"]["messages"][0]["content"]}]


def test_http_teacher_counts_tokens_without_usage(server, tiny_tokenizer):
    server.mode = "no_usage"
    gen = HTTPTeacher(server.url + "/v1/", "tiny", tokenizer=tiny_tokenizer).generate(["hi"])[0]
    assert gen.num_tokens == len(tiny_tokenizer(" echo: hi ", add_special_tokens=False)["input_ids"]) or gen.num_tokens == len(
        tiny_tokenizer("echo: hi", add_special_tokens=False)["input_ids"]
    )
    assert HTTPTeacher(server.url, "tiny").generate(["hi"])[0].num_tokens == 3  # ceil(len(" echo: hi ") / 4)


def test_http_teacher_retries_transient_errors(server):
    server.mode = "flaky"
    teacher = HTTPTeacher(server.url, "tiny", max_retries=3, backoff=0.01)
    assert teacher.generate(["again"])[0].text == "echo: again"
    assert len(server.requests) == 3  # two 503s, then the answer


def test_http_teacher_gives_up_after_retries_naming_the_url(server):
    server.mode = "flaky"
    with pytest.raises(TeacherError, match=r"127\.0\.0\.1.*/v1/chat/completions.*2 attempt.*503"):
        HTTPTeacher(server.url, "tiny", max_retries=1, backoff=0.01).generate(["x"])


def test_http_teacher_times_out_on_a_hanging_server(server):
    server.mode = "hang"
    teacher = HTTPTeacher(server.url, "tiny", timeout=0.3, max_retries=1, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(TeacherError, match=r"127\.0\.0\.1.*timed out"):
        teacher.generate(["x"])
    assert time.monotonic() - start < 3.0
    assert len(server.requests) == 2


def test_http_teacher_rejects_garbage_and_client_errors(server):
    server.mode = "garbage"
    with pytest.raises(TeacherError, match="not JSON"):
        HTTPTeacher(server.url, "tiny", max_retries=2, backoff=0.01).generate(["x"])
    assert len(server.requests) == 1  # a malformed 200 is not retried
    server.mode = "bad_request"
    with pytest.raises(TeacherError, match="HTTP 400.*model not found"):
        HTTPTeacher(server.url, "tiny", max_retries=2, backoff=0.01).generate(["x"])
    assert len(server.requests) == 2


def test_http_teacher_unreachable_endpoint():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TeacherError, match=rf"127\.0\.0\.1:{port}.*unreachable"):
        HTTPTeacher(f"http://127.0.0.1:{port}", "tiny", max_retries=1, backoff=0.01, timeout=1).generate(["x"])


def test_http_teacher_concurrency_overlaps_requests(server):
    server.mode = "slow"
    start = time.monotonic()
    HTTPTeacher(server.url, "tiny", concurrency=4).generate(["a", "b", "c", "d"])
    assert time.monotonic() - start < 0.6  # four 0.2 s requests in parallel, not 0.8 s in a row


def test_http_teacher_retries_a_reply_cut_off_mid_body(server):
    server.mode = "dropped"
    gen = HTTPTeacher(server.url, "tiny", max_retries=2, backoff=0.01).generate(["again"])[0]
    assert gen.text == "echo: again" and len(server.requests) == 2


def test_http_teacher_reports_a_cut_answer_and_seeds_each_request(server):
    server.mode = "cut"
    teacher = HTTPTeacher(server.url, "tiny", seed=5, temperature=0.7, concurrency=1)
    assert [g.finished for g in teacher.generate(["a", "b"])] == [False, False]
    server.mode = "ok"
    assert teacher.generate(["c"])[0].finished is None  # no finish_reason: the backend cannot tell
    seeds = [r["body"]["seed"] for r in server.requests]
    assert len(set(seeds)) == 3 and teacher.calls == 3  # the same prompt twice would not repeat a sample


def test_http_teacher_validates_arguments():
    with pytest.raises(ValueError, match="http"):
        HTTPTeacher("localhost:8000", "m")
    with pytest.raises(ValueError, match="concurrency"):
        HTTPTeacher("http://x", "m", concurrency=0)


# -- VLLMTeacher -----------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_vllm_teacher_missing_extra_says_how_to_install():
    with pytest.raises(ImportError, match=r"pip install read-lightning\[vllm\]"):
        VLLMTeacher("some/model")


def test_vllm_teacher_applies_chat_template_and_counts_tokens(monkeypatch, tiny_tokenizer):
    seen = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, model, seed, **kw):
            seen["init"] = (model, seed, kw)

        def get_tokenizer(self):
            return tiny_tokenizer

        def generate(self, inputs, params, use_tqdm=False):
            seen["inputs"], seen["params"] = inputs, [p.kw for p in params]
            out = types.SimpleNamespace
            return [out(outputs=[out(text=f" a{i} ", token_ids=list(range(i + 1)), finish_reason=("stop", "length")[i])])
                    for i in range(len(inputs))]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    teacher = VLLMTeacher("m", temperature=0.0, max_new_tokens=5, seed=2, gpu_memory_utilization=0.5)
    gens = teacher.generate(["hello", "world"], max_new_tokens=3)
    assert [(g.text, g.num_tokens, g.finished) for g in gens] == [("a0", 1, True), ("a1", 2, False)]
    assert seen["init"] == ("m", 2, {"gpu_memory_utilization": 0.5})
    assert all(p["max_tokens"] == 3 and p["top_p"] == 1.0 for p in seen["params"])
    # one seed per prompt (vLLM seeds each request from its own params), and new ones every call
    first = [p["seed"] for p in seen["params"]]
    teacher.generate(["hello", "world"])
    assert len(set(first)) == 2 and not set(first) & {p["seed"] for p in seen["params"]}
    chat = tiny_tokenizer.decode(seen["inputs"][0]["prompt_token_ids"])
    assert "<|im_start|>user\nhello<|im_end|>" in chat and chat.endswith("<|im_start|>assistant\n")


# -- the "auto" backend ----------------------------------------------------------------------

@pytest.mark.parametrize(("has_vllm", "has_cuda", "expected"), [
    (True, True, "vllm"), (True, False, "hf"), (False, True, "hf"), (False, False, "hf")])
def test_auto_backend_is_vllm_only_with_vllm_and_a_gpu(monkeypatch, has_vllm, has_cuda, expected):
    import torch

    from read_lightning.teachers.generation import resolve_teacher_backend

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (object() if has_vllm else None) if name == "vllm" else real_find_spec(name, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: has_cuda)
    assert resolve_teacher_backend("auto") == expected
    for fixed in ("hf", "vllm", "http"):  # explicit choices are never second-guessed
        assert resolve_teacher_backend(fixed) == fixed
    with pytest.raises(ValueError, match="unknown teacher_backend 'tgi'"):
        resolve_teacher_backend("tgi")


@pytest.mark.parametrize("backend", ["vllm", "hf"])
def test_data_module_builds_the_teacher_auto_resolves_to(monkeypatch, tmp_path, tiny_model, tiny_tokenizer, backend):
    import read_lightning.teachers.generation as generation
    from read_lightning.training.data import CapabilityDataModule

    tiny_model.save_pretrained(tmp_path / "teacher")
    tiny_tokenizer.save_pretrained(tmp_path / "teacher")
    built = {}

    class FakeVLLM:
        def __init__(self, model, **kw):
            built["vllm"] = (model, kw)

    monkeypatch.setattr(generation, "VLLMTeacher", FakeVLLM)
    monkeypatch.setattr("read_lightning.training.data.resolve_teacher_backend",
                        lambda name: backend if name == "auto" else name)
    dm = CapabilityDataModule(teacher=str(tmp_path / "teacher"), student=str(tmp_path / "teacher"),
                              teacher_backend="auto", teacher_dtype="bfloat16", budget_tokens=10_000, seed=4)
    teacher = dm._build_teacher()
    if backend == "vllm":
        assert isinstance(teacher, FakeVLLM)
        assert built["vllm"][0] == str(tmp_path / "teacher") and built["vllm"][1]["dtype"] == "bfloat16"
        assert built["vllm"][1]["seed"] == 4
        # the student trains on the same GPU: vLLM must not claim its default 90% of it
        assert built["vllm"][1]["gpu_memory_utilization"] == 0.3
        dm = CapabilityDataModule(teacher=str(tmp_path / "teacher"), student=str(tmp_path / "teacher"),
                                  teacher_backend="auto", budget_tokens=10_000,
                                  teacher_engine_kwargs={"gpu_memory_utilization": 0.5, "tensor_parallel_size": 2})
        dm._build_teacher()
        assert built["vllm"][1]["gpu_memory_utilization"] == 0.5 and built["vllm"][1]["tensor_parallel_size"] == 2
    else:
        assert isinstance(teacher, HFTeacher) and teacher.seed == 4


@pytest.mark.parametrize(("engine", "message"), [
    ({"seed": 3}, r"teacher_engine_kwargs sets 'seed'=3; use data.seed instead"),
    ({"dtype": "half"}, r"sets 'dtype'='half'; use data.teacher_dtype instead"),
    ({"temperature": 0.0}, r"sets 'temperature'=0.0; use data.temperature instead"),
    ({"gpu_memory_utilization": 1.5}, r"teacher_engine_kwargs.gpu_memory_utilization must be .*1.5"),
    (["gpu_memory_utilization", 0.5], r"teacher_engine_kwargs must map vllm.LLM argument names .*gpu_memory"),
])
def test_bad_vllm_engine_arguments_are_named(engine, message):
    from read_lightning.training.data import CapabilityDataModule

    with pytest.raises(ValueError, match=message):
        CapabilityDataModule(budget_tokens=10_000, teacher_backend="vllm", teacher_engine_kwargs=engine)
