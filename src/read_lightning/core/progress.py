"""Progress of a run's long phases: teacher generation, reference answers, probes, task evaluation.

A phase is opened where the work is planned (it knows the total and the unit) and advanced
where the work is done, which may be a lower layer that knows nothing of the phase::

    from read_lightning.core import progress

    with progress.phase("teacher references", total=len(prompts), unit="answers", display=display) as p:
        for batch in batches:
            answers = teacher.generate(batch)
            p.advance(len(batch), tokens=sum(a.num_tokens for a in answers))

    # or, deep in a batch loop (a teacher, a scorer), with no phase object at hand:
    progress.advance(len(batch), tokens=new_tokens)  # advances the innermost open phase; else nothing

On a terminal a ``display`` draws the phase as a progress bar (``read_lightning.training.progress``
makes one through the trainer's own progress bar). Without one (no TTY: CI, ``nohup``, a cluster
job) the phase logs a line at least every ``HEARTBEAT_S`` seconds while it runs, and one when it
ends: the phase, the count done, the rate, tokens/s when tokens are counted.

Pure Python: no torch, no Lightning.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = ["HEARTBEAT_S", "Display", "Phase", "advance", "current", "phase"]

HEARTBEAT_S = 30.0

log = logging.getLogger("read_lightning.progress")
# Like Lightning's own logger: at INFO, and on stderr unless the application set up logging.
log.setLevel(logging.INFO)
if not logging.getLogger().hasHandlers() and not log.handlers:
    log.addHandler(logging.StreamHandler())
    log.propagate = False


class Display(Protocol):
    """Draws a phase (a progress bar); called from the thread doing the work."""

    def update(self, phase: Phase) -> None: ...

    def close(self, phase: Phase) -> None: ...


class Phase:
    """One long phase: ``done`` of ``total`` ``unit`` (total None: unknown) and ``tokens`` counted.

    ``explicit``: only :meth:`advance` on this object counts, not the module-level
    :func:`advance` of a lower layer (a phase that counts budget tokens itself must not also
    count a teacher's answers).
    """

    def __init__(self, name: str, total: int | None, unit: str, *, explicit: bool = False) -> None:
        if total is not None and total < 0:
            raise ValueError(f"progress total must be >= 0 or None, got {total!r}")
        self.name, self.total, self.unit, self.explicit = name, total, unit, explicit
        self.done = 0
        self.tokens = 0
        self.info = ""  # free text shown after the counts (e.g. "48 answers")
        self.started = time.perf_counter()
        self.display: Display | None = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        """``unit`` per second so far."""
        return self.done / max(self.elapsed, 1e-9)

    @property
    def token_rate(self) -> float:
        """Tokens per second so far (0 when no token is counted)."""
        return self.tokens / max(self.elapsed, 1e-9)

    def advance(self, n: int = 1, *, tokens: int = 0, info: str | None = None) -> None:
        """Count ``n`` more ``unit`` and ``tokens`` more tokens; redraw the bar if there is one."""
        self.done += int(n)
        if self.total is not None:
            # a lower layer may count finer than the phase (choices of a multiple-choice row)
            self.done = min(self.done, self.total)
        self.tokens += int(tokens)
        if info is not None:
            self.info = info
        if self.display is not None:
            self.display.update(self)

    def rates(self) -> str:
        """``"3.1 answers/s, 412 tok/s"``: the rate, and tokens/s when tokens are counted."""
        parts = [f"{_number(self.rate)} {self.unit}/s"]
        if self.tokens:
            parts.append(f"{self.token_rate:.0f} tok/s")
        return ", ".join(parts)

    def describe(self) -> str:
        """One log line: ``"teacher references: 48/200 answers, 3.1 answers/s, 412 tok/s, 15 s"``."""
        count = f"{self.done}/{self.total}" if self.total is not None else f"{self.done}"
        info = f", {self.info}" if self.info else ""
        return f"{self.name}: {count} {self.unit}{info}, {self.rates()}, {self.elapsed:.0f} s"


def _number(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


_ACTIVE: contextvars.ContextVar[tuple[Phase, ...]] = contextvars.ContextVar("read_lightning_progress", default=())


def current() -> Phase | None:
    """The innermost open phase of this thread, or None."""
    active = _ACTIVE.get()
    return active[-1] if active else None


def advance(n: int = 1, *, tokens: int = 0) -> None:
    """Advance the innermost open phase by ``n`` (and ``tokens``) unless it is explicit; nothing
    outside a phase. For batch loops in lower layers: one call per batch costs nothing."""
    p = current()
    if p is not None and not p.explicit:
        p.advance(n, tokens=tokens)


@contextmanager
def phase(
    name: str,
    total: int | None = None,
    unit: str = "items",
    *,
    display: Display | None = None,
    explicit: bool = False,
    heartbeat_s: float | None = None,
) -> Iterator[Phase]:
    """Open a phase for the ``with`` block (see the module docstring).

    With a ``display`` the phase is drawn by it; without one, a log line names the phase, the
    count and the rate every ``heartbeat_s`` seconds (default ``HEARTBEAT_S``) while it runs
    (from a daemon thread, so a single slow batch still gets its line) and once when it ends.
    """
    heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
    if heartbeat_s <= 0:
        raise ValueError(f"progress heartbeat_s must be > 0, got {heartbeat_s!r}")
    p = Phase(name, total, unit, explicit=explicit)
    p.display = display
    stop = threading.Event()
    beat = None
    if display is None:
        def heartbeat() -> None:
            while not stop.wait(heartbeat_s):
                log.info("%s", p.describe())

        beat = threading.Thread(target=heartbeat, name=f"progress: {name}", daemon=True)
        beat.start()
    else:
        display.update(p)
    token = _ACTIVE.set((*_ACTIVE.get(), p))
    ok = False
    try:
        yield p
        ok = True
        if not explicit and total is not None:
            # the block wrapped the work of ``total`` items and returned: all of it is done, also
            # where a lower layer (a teacher backend) counted none of it
            p.done = total
    finally:
        _ACTIVE.reset(token)
        stop.set()
        if beat is not None:
            beat.join()
            if ok:
                log.info("%s", p.describe().replace(f"{p.name}: ", f"{p.name}: done, ", 1))
        else:
            assert display is not None
            display.close(p)
