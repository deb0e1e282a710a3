"""The one sandbox that runs model-written code: task pass@1 and the code verifier use it."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = ["run_python"]

# Runs before the candidate program: resource limits and no sockets. A best-effort guard for
# model-written code, not a security boundary (use a container for untrusted models).
_SANDBOX_PREAMBLE = """\
import socket as _socket
def _no_network(*_a, **_k):
    raise OSError("network access is disabled while running generated code")
_socket.socket = _no_network
_socket.create_connection = _no_network
_socket.getaddrinfo = _no_network
try:
    import resource as _resource
    _resource.setrlimit(_resource.RLIMIT_AS, ({mem}, {mem}))
    _resource.setrlimit(_resource.RLIMIT_FSIZE, (1 << 24, 1 << 24))
except (ImportError, ValueError, OSError):
    pass
del _socket, _no_network
"""


def run_python(
    program: str, timeout_s: float = 5.0, memory_mb: int = 2048, modules: Mapping[str, str] | None = None
) -> str:
    """Run ``program`` in a fresh ``python -I`` process; returns "passed", "failed" or "timeout".

    The child runs in a temporary directory with an environment holding only ``PATH`` and a
    private ``HOME``/``TMPDIR``, sockets disabled and address space capped at ``memory_mb``;
    it gets its own session so a timeout kills everything it started. A pass needs exit code 0
    *and* a random token printed after the program's last line, so code that calls
    ``sys.exit(0)``/``os._exit(0)`` before the tests does not pass. Nothing raised by the
    program, a hang or a crash, escapes: they are "failed" or "timeout". ``modules`` (name ->
    source) are written next to the program, which can import them once it puts its own folder
    on ``sys.path`` (``-I`` leaves it off).
    """
    nonce = secrets.token_hex(8)  # os.urandom: leaves the global RNGs alone
    with tempfile.TemporaryDirectory(prefix="read_exec_") as tmp:
        script = Path(tmp) / "program.py"
        out_file = Path(tmp) / "stdout.txt"
        for name, source in (modules or {}).items():
            (Path(tmp) / f"{name}.py").write_text(source, encoding="utf-8")
        script.write_text(
            _SANDBOX_PREAMBLE.format(mem=memory_mb << 20) + program + f"\nprint({nonce!r}, flush=True)\n",
            encoding="utf-8",
        )
        env = {"PATH": os.defpath, "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8", "no_proxy": "*"}
        # Output goes to a file, not a pipe: a chatty program cannot block on a full pipe.
        with out_file.open("wb") as out:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-I", str(script)],
                    cwd=tmp,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:
                return "failed"
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _kill_session(proc)
                return "timeout"
        with out_file.open("rb") as fh:
            fh.seek(max(0, out_file.stat().st_size - 256))
            tail = fh.read().decode("utf-8", "replace")
        return "passed" if code == 0 and nonce in tail else "failed"


def _kill_session(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)  # the program's whole process group, children included
    except (ProcessLookupError, PermissionError, AttributeError):
        proc.kill()
    proc.wait()
