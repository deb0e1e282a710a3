"""A small OpenAI-compatible server on the standard library, answering with the package's own decode loop.

    python -m read_lightning.teachers.serve --model embedded:smollm2-135m-instruct --port 8000

Serves ``POST /v1/chat/completions`` (one user message per request, as ``HTTPTeacher`` sends) and
``GET /v1/models``. Requests are answered one at a time; a request's ``seed`` seeds its sampling
(``HFTeacher``'s per-prompt scheme when absent), ``max_tokens``, ``temperature`` and ``top_p`` are
honoured, and the reply carries ``usage`` (prompt and completion tokens, the end-of-turn token
counted) and ``finish_reason`` (``stop`` or ``length``). It exists so the HTTP teacher is tested
against a real server process; a run that wants speed points ``HTTPTeacher`` at vLLM or llama.cpp
(``docs/teachers.md``).

The first stdout line is ``listening on http://HOST:PORT`` (with ``--port 0`` the OS picks the
port). ``--log`` appends one JSON line per answered request; ``--delay`` holds every answer that
many seconds (for testing clients' timeouts).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from read_lightning.teachers.decoding import decode, supports_decode_loop
from read_lightning.teachers.generation import HFTeacher, chat_prompt_ids, prompt_seeds

__all__ = ["ChatServer", "main"]


class _BadRequest(ValueError):
    pass


class ChatServer:
    """Answers chat-completion bodies with an ``HFTeacher``'s model, one request at a time."""

    def __init__(self, teacher: HFTeacher, name: str, *, delay: float = 0.0, log_path: str | None = None) -> None:
        if not supports_decode_loop(teacher.model):
            raise ValueError(f"the server decodes with the loop; {type(teacher.model).__name__} is not supported")
        self.teacher = teacher
        self.name = name
        self.delay = delay
        self.log_path = log_path
        self.lock = threading.Lock()  # one model, one request at a time
        self.requests = 0

    def complete(self, body: Any) -> dict[str, Any]:
        """The reply to one ``/v1/chat/completions`` body; ``_BadRequest`` names what is wrong."""
        if not isinstance(body, dict):
            raise _BadRequest("the body must be a JSON object")
        messages = body.get("messages")
        if (not isinstance(messages, list) or len(messages) != 1 or not isinstance(messages[0], dict)
                or messages[0].get("role") != "user" or not isinstance(messages[0].get("content"), str)):
            raise _BadRequest("'messages' must be one {'role': 'user', 'content': <string>} message")
        t = self.teacher
        max_new = _number(body, "max_tokens", t.max_new_tokens, int, 1, None)
        temperature = _number(body, "temperature", t.temperature, float, 0.0, None)
        top_p = _number(body, "top_p", t.top_p, float, 1e-9, 1.0)
        ids = chat_prompt_ids(t.tokenizer, messages[0]["content"])
        with self.lock:
            seed = body.get("seed")
            if not isinstance(seed, int) or isinstance(seed, bool):
                seed = prompt_seeds(t.seed, self.requests, 1)[0]
            self.requests += 1
            start = time.perf_counter()
            row = decode(t.model, [ids], max_new_tokens=max_new, eos_ids=t.eos_ids, batch_size=1,
                         temperature=temperature, top_p=top_p, seeds=[seed])[0]
            answer = t.answer(row)
            if self.delay:
                time.sleep(self.delay)
            seconds = time.perf_counter() - start
        reason = "stop" if answer.finished else "length"
        usage = {"prompt_tokens": len(ids), "completion_tokens": answer.num_tokens,
                 "total_tokens": len(ids) + answer.num_tokens}
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps({**usage, "finish_reason": reason, "seconds": round(seconds, 3)}) + "\n")
        return {
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.name),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": reason}],
            "usage": usage,
        }


def _number(body: dict[str, Any], key: str, default: Any, kind: type, low: float, high: float | None) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise _BadRequest(f"'{key}' must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise _BadRequest(f"'{key}' must be in [{low}, {high if high is not None else 'inf'}], got {value!r}")
    return kind(value)


def _handler(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error", "code": status}})

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": server.name, "object": "model"}]})
            else:
                self._error(404, f"no route {self.path}; this server serves /v1/chat/completions and /v1/models")

        def do_POST(self) -> None:  # noqa: N802
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._error(404, f"no route {self.path}; this server serves /v1/chat/completions")
                return
            try:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                reply = server.complete(body)
            except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
                # _BadRequest and a malformed Content-Length are the client's fault
                self._error(400, str(err) if isinstance(err, _BadRequest) else f"the body is not JSON: {err}")
                return
            self._send(200, reply)

        def log_message(self, fmt: str, *args: Any) -> None:
            pass  # one JSON line per request goes to --log; the default access log is noise

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a Hub id, a local directory or embedded:smollm2-135m-instruct")
    parser.add_argument("--name", default=None, help="the model name /v1/models reports (default: --model)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 lets the OS pick a free port")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="when a request sets no max_tokens")
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to hold every answer (testing timeouts)")
    parser.add_argument("--log", default=None, help="append one JSON line per answered request to this file")
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error(f"--delay must be >= 0, got {args.delay}")
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    from read_lightning.teachers.models import load_model, load_tokenizer

    model = load_model(args.model)
    teacher = HFTeacher(model, load_tokenizer(args.model), max_new_tokens=args.max_new_tokens,
                        temperature=args.temperature, top_p=args.top_p, seed=args.seed, engine="loop")
    chat = ChatServer(teacher, args.name or args.model, delay=args.delay, log_path=args.log)
    httpd = ThreadingHTTPServer((args.host, args.port), _handler(chat))
    host, port = httpd.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
