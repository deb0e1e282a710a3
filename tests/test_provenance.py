"""Which code produced a result: ``read_lightning.core.provenance``."""

import shutil
import subprocess
from pathlib import Path

import pytest

from read_lightning.core.provenance import code_version, git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_the_commit_of_a_checkout_marked_when_the_packages_tracked_files_changed(tmp_path):
    repo = tmp_path / "repo"
    package = repo / "src" / "read_lightning"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(package) == head
    (repo / "README.md").write_text("edited beside the code\n")  # untracked: not the code
    (package.parent / "notes.txt").write_text("a\n")
    _git(repo, "add", "src/notes.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "notes")
    head = _git(repo, "rev-parse", "HEAD")
    (package.parent / "notes.txt").write_text("b\n")  # tracked, outside the package: not the code
    assert git_commit(package) == head
    (package / "__init__.py").write_text("x = 2\n")
    assert git_commit(package) == f"{head} (with uncommitted changes)"


def test_an_installed_copy_inside_another_repository_is_not_that_repositorys_code(tmp_path):
    repo = tmp_path / "project"
    package = repo / ".venv" / "site-packages" / "read_lightning"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (repo / ".gitignore").write_text(".venv/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "theirs")
    assert git_commit(package) is None
    outside = tmp_path / "no_repo" / "read_lightning"
    outside.mkdir(parents=True)
    assert git_commit(outside) is None


def test_code_version_names_the_package():
    from read_lightning import __version__

    assert code_version()["package"] == f"read-lightning {__version__}"


def test_a_process_is_labelled_with_the_commit_it_started_at(monkeypatch):
    # runs trained one after another in one process run the code it imported, whatever the checkout
    # moved on to since (read-train compare's in-process runs while work landed: each run was labelled
    # with the HEAD of its own start)
    from read_lightning.core import provenance

    heads = iter(["aaa", "bbb"])
    monkeypatch.setattr(provenance, "_PROCESS_CODE", None)
    monkeypatch.setattr(provenance, "git_commit", lambda: next(heads))
    first = provenance.code_version()
    first["commit"] = "changed by the caller"
    assert provenance.code_version()["commit"] == "aaa"
