"""HTTPTeacher against a real OpenAI-compatible server process (``read_lightning.teachers.serve``)
running a tiny Llama from a temporary directory: answers, usage charged to the ledger through a
data-module interval, stop reasons, a timeout, a server killed mid-request, an endpoint that is down.

Three server processes in all (each start imports torch and transformers): 17 s on the 2-core
CPU at load average 3."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from read_lightning.teachers.generation import HFTeacher, HTTPTeacher, StaticPromptSource, TeacherError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["What is 12 plus 7?", "Capital of France?", "Write a haiku about rain.", "2+2", "Name three colours."]
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny Llama whose greedy answers vary, one of whose frequent tokens ends a turn, so some
    answers stop ('stop') and some are cut ('length')."""
    from conftest import build_tiny_model, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer)
    torch.manual_seed(0)
    for p in model.parameters():
        if p.dim() == 2:
            torch.nn.init.normal_(p, std=0.3)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 73]  # 73: said early by some answers
    path = tmp_path_factory.mktemp("served")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _start(model_dir, port=0, *extra):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "read_lightning.teachers.serve", "--model", str(model_dir), "--name", "tiny",
         "--port", str(port), "--temperature", "0", "--threads", "1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    line = proc.stdout.readline()  # blocks until the model is loaded and the socket bound
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r} {proc.stderr.read()[-2000:]}")
    return proc, line.split()[-1]


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "requests.jsonl"
    proc, url = _start(model_dir, 0, "--log", str(log))
    yield url, log
    _stop(proc)


def _in_process(model_dir, **kw):
    from transformers import AutoTokenizer, LlamaForCausalLM

    return HFTeacher(LlamaForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir),
                     temperature=0.0, **kw)


def test_answers_usage_and_stop_reasons_match_the_in_process_teacher(server, model_dir):
    url, log = server
    client = HTTPTeacher(url, "tiny", temperature=0.0, max_new_tokens=12, timeout=30, concurrency=2, seed=0)
    remote = client.generate(PROMPTS)
    local = _in_process(model_dir, max_new_tokens=12).generate(PROMPTS)
    assert [(g.text, g.num_tokens, g.finished) for g in remote] == [(g.text, g.num_tokens, g.finished) for g in local]
    assert {g.finished for g in remote} == {True, False}  # both 'stop' and 'length' came back
    cut = client.generate(PROMPTS[:1], max_new_tokens=2)[0]
    assert cut.num_tokens <= 2


def test_a_run_charges_the_ledger_what_the_server_reported(server, tiny_tokenizer):
    from read_lightning.training.data import CapabilityDataModule

    url, log = server
    before = len(log.read_text().splitlines()) if log.exists() else 0
    pools = {"math": ["What is 3 times 4?", "Add 19 and 23."], "code": ["Reverse a list in Python."]}
    dm = CapabilityDataModule(capabilities=list(pools), budget_tokens=1500, num_intervals=2, max_tokens_per_batch=256,
                              max_length=64, max_new_tokens=12, generation_batch_size=4)
    teacher = HTTPTeacher(url, "tiny", temperature=0.0, max_new_tokens=12, timeout=30, seed=1)
    dm.attach(teacher=teacher, tokenizer=tiny_tokenizer, prompt_source=StaticPromptSource(pools))
    dm.interval = 0
    list(dm.train_dataloader())
    served = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    assert served and sum(dm.ledger.generation.values()) == sum(r["completion_tokens"] for r in served)


def test_an_http_spec_builds_a_teacher_that_answers_as_the_client_does(server, tiny_tokenizer):
    from read_lightning.teachers import HTTPTeacherSpec
    from read_lightning.training.data import CapabilityDataModule

    url, _ = server
    dm = CapabilityDataModule(teacher=HTTPTeacherSpec(url, "tiny", timeout=30, concurrency=2), budget_tokens=10_000,
                              temperature=0.0, max_new_tokens=12, seed=0)
    built = dm.attach(tokenizer=tiny_tokenizer)._build_teacher()
    direct = HTTPTeacher(url, "tiny", temperature=0.0, max_new_tokens=12, timeout=30, seed=0)
    assert [(g.text, g.num_tokens) for g in built.generate(PROMPTS[:3])] == \
        [(g.text, g.num_tokens) for g in direct.generate(PROMPTS[:3])]


def test_a_slow_server_times_out_and_one_killed_mid_request_is_retried_on_its_replacement(model_dir):
    with socket.socket() as s:  # a free port both servers will bind
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, url = _start(model_dir, port, "--delay", "4")  # holds every answer 4 s
    impatient = HTTPTeacher(url, "tiny", timeout=0.5, max_retries=1, backoff=0.0, max_new_tokens=4)
    with pytest.raises(TeacherError, match=r"/v1/chat/completions failed after 2 attempt\(s\): timed out after 0.5s"):
        impatient.generate(PROMPTS[:1])
    client = HTTPTeacher(url, "tiny", temperature=0.0, timeout=30, max_retries=6, backoff=0.5, max_new_tokens=12)
    result = {}
    worker = threading.Thread(target=lambda: result.update(gen=client.generate(PROMPTS[:1])[0]))
    worker.start()
    time.sleep(1.0)  # the request is in, waiting behind the timed-out ones
    proc.send_signal(signal.SIGKILL)
    _stop(proc)
    replacement, _ = _start(model_dir, port)
    try:
        worker.join(timeout=60)
        assert not worker.is_alive()
        expected = _in_process(model_dir, max_new_tokens=12).generate(PROMPTS[:1])[0]
        assert (result["gen"].text, result["gen"].num_tokens) == (expected.text, expected.num_tokens)
    finally:
        _stop(replacement)


def test_an_endpoint_down_at_start_fails_fast_and_says_so():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens here
    client = HTTPTeacher(f"http://127.0.0.1:{port}", "tiny", max_retries=2, backoff=0.1, timeout=5)
    start = time.perf_counter()
    with pytest.raises(TeacherError, match=rf"127.0.0.1:{port}/v1/chat/completions failed after 3 attempt\(s\): "
                                           r"unreachable \(\[Errno 111\] Connection refused\)"):
        client.generate(PROMPTS[:1])
    assert time.perf_counter() - start < 5


def test_the_server_rejects_bad_requests_with_the_reason(server):
    import urllib.error
    import urllib.request

    url, _ = server
    for body, reason in [({"messages": []}, "'messages' must be one"),
                         ({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, "'max_tokens' must be in"),
                         ({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, "'temperature' must be a number")]:
        request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=10)
        assert err.value.code == 400 and reason in json.loads(err.value.read())["error"]["message"]
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as reply:
        assert json.loads(reply.read())["data"][0]["id"] == "tiny"
