"""Which code produced a result: the package's version and, from a git checkout, its commit.

A run records it in ``summary.json`` (``code``), and ``read-train compare`` names the commits its
runs were trained at, so a figure can be traced to the code that made it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["code_version", "describe_commits", "git_commit"]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def git_commit(package_dir: Path = _PACKAGE_DIR) -> str | None:
    """The commit of the checkout the package is imported from, marked when the package's own
    tracked files differ from it; None when the package is not a tracked part of a git checkout (an
    installed copy, even one inside another project's repository, or no git).

    Only the package's files count: a run executes them, and records its resolved recipe itself, so
    an edited README or test beside it does not make its code differ from the commit."""

    def git(*args: str, timeout: float = 10) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=timeout, cwd=package_dir)

    try:
        # An installed copy under a repository's ignored .venv is not that repository's code.
        if git("ls-files", "--error-unmatch", "__init__.py").returncode != 0:
            return None
        head = git("rev-parse", "HEAD")
        dirty = git("diff", "--quiet", "HEAD", "--", ".", timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0 or not head.stdout.strip():
        return None
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.returncode == 1 else "")


_PROCESS_CODE: dict[str, Any] | None = None


def code_version() -> dict[str, Any]:
    """``{"package": "read-lightning <version>", "commit": <git_commit()>}``, read once per process.

    A process runs the code it imported, so the checkout's commit is read the first time a process
    asks and kept: several runs trained in one process (``read-train compare --launcher inprocess``)
    while work lands in the checkout would otherwise each be labelled with a later commit than the
    code that trained them."""
    global _PROCESS_CODE
    if _PROCESS_CODE is None:
        from read_lightning import __version__

        _PROCESS_CODE = {"package": f"read-lightning {__version__}", "commit": git_commit()}
    return dict(_PROCESS_CODE)


def describe_commits(commits: Sequence[str | None]) -> str:
    """The commits of a run's processes in words, in order (None: not a git checkout)."""
    return " then ".join(c or "not a git checkout" for c in commits)
