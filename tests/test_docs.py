"""The documentation stays in sync with the CLI: every ``read-train ...`` command in a code block of
README.md or docs/*.md must run.

A command is checked without training anything:

- ``fit``: the documented command plus ``--print_config``, which makes LightningCLI
  parse every flag and config file and resolve the configuration, then exit (an unknown key,
  a bad value or a missing recipe fails);
- a tool (``report``, ``leakage``, ...): the documented command plus ``--help``, which reaches the
  documented (sub)command's parser; every ``--flag`` the documentation uses must appear in that
  help, since argparse prints help before it would complain about an unknown flag.

Every subcommand must have at least one documented example, Python examples must compile and
import only names the package has, and YAML examples must parse (template files must load).
"""

from __future__ import annotations

import io
import re
import shlex
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from read_lightning.cli import _tools, main

ROOT = Path(__file__).parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LIGHTNING_SUBCOMMANDS = ("fit",)


SHELL = ("", "bash", "sh", "shell", "console")


def code_blocks(path: Path, languages: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """``(line number of the first line, lines)`` of each fenced block of a Markdown file whose
    language is one of ``languages`` (``""``: a fence with no language)."""
    blocks: list[tuple[int, list[str]]] = []
    lines: list[str] | None = None
    keep = False
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = line.strip()
        if fence.startswith("```"):
            if lines is None:
                lines, keep = [], fence[3:].strip() in languages
                first = lineno + 1
            else:
                if keep:
                    blocks.append((first, lines))
                lines = None
        elif lines is not None:
            lines.append(line)
    return blocks


def documented_commands(path: Path) -> list[tuple[int, list[str]]]:
    """``(line, argv after read-train)`` for each ``read-train`` command in the shell code blocks
    of a Markdown file; backslash continuations are joined and ``#`` comments dropped."""
    commands: list[tuple[int, list[str]]] = []
    for first, lines in code_blocks(path, SHELL):
        pending, start = "", first
        for lineno, line in enumerate(lines, start=first):
            stripped = line.strip()
            if not pending:
                start, stripped = lineno, stripped.removeprefix("$ ")
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            text, pending = pending + stripped, ""
            try:
                words = shlex.split(text, comments=True)
            except ValueError as err:
                raise ValueError(f"{path}:{start}: cannot split the shell command {text!r}: {err}") from None
            if words and Path(words[0]).name == "read-train":
                commands.append((start, words[1:]))
    return commands


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Run ``read-train argv`` in-process; ``(exit code, stdout + stderr)``."""
    out = io.StringIO()
    with redirect_stdout(out), redirect_stderr(out):
        try:
            code = main(list(argv))
        except SystemExit as exit_info:
            # SystemExit("message") is a failure with a message, SystemExit(None) a success.
            code = exit_info.code if isinstance(exit_info.code, int) else (0 if exit_info.code is None else 1)
            if not isinstance(exit_info.code, int) and exit_info.code is not None:
                out.write(str(exit_info.code))
    return int(code or 0), out.getvalue()


def check_command(argv: list[str]) -> None:
    """Fail (with the CLI's own output) unless the documented ``read-train argv`` is valid."""
    if argv and argv[0] in LIGHTNING_SUBCOMMANDS:
        probe = argv if "--print_config" in argv else [*argv, "--print_config"]
        code, output = run_cli(probe)
        assert code == 0, f"`read-train {shlex.join(probe)}` exited {code}:\n{output[-3000:]}"
        return
    probe = [*argv, "--help"]
    code, output = run_cli(probe)
    assert code == 0, f"`read-train {shlex.join(probe)}` exited {code}:\n{output[-3000:]}"
    for word in argv:
        flag = word.split("=", 1)[0]
        if flag.startswith("-") and flag not in ("-h", "--help"):
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", output), (
                f"`read-train {shlex.join(argv)}`: {flag} is not an option of that command; its help says:\n{output}"
            )


DOCUMENTED = [(path, lineno, argv) for path in DOCS for lineno, argv in documented_commands(path)]


def test_the_docs_document_commands_for_every_subcommand():
    assert DOCUMENTED, "no read-train command found in README.md or docs/*.md"
    documented = {argv[0] for _, _, argv in DOCUMENTED if argv}
    missing = sorted((set(_tools()) | {"fit"}) - documented)
    assert not missing, f"read-train subcommands with no documented example in README.md or docs/*.md: {missing}"


@pytest.mark.parametrize(
    "argv", [argv for _, _, argv in DOCUMENTED],
    ids=[f"{path.relative_to(ROOT)}:{lineno}" for path, lineno, _ in DOCUMENTED],
)
def test_documented_command_runs(argv, monkeypatch):
    monkeypatch.chdir(ROOT)  # documented paths (recipes/..., runs/...) are relative to the repository
    check_command(argv)


def test_the_extractor_reads_only_code_blocks(tmp_path):
    md = tmp_path / "doc.md"
    md.write_text(
        "Inline `read-train fit --nope` is prose.\n"
        "```bash\n"
        "make train   # not read-train\n"
        "read-train report runs/x/version_0 --out r   # trailing comment\n"
        "$ .venv/bin/read-train fit --config recipes/smollm2-135m.yaml \\\n"
        "    --data.num_intervals 3\n"
        "```\n"
        "```yaml\nkey: read-train is a word here\n```\n"
        "```python\nread-train fit --nope; print(\"it's\")\n```\n"
    )
    assert documented_commands(md) == [
        (4, ["report", "runs/x/version_0", "--out", "r"]),
        (5, ["fit", "--config", "recipes/smollm2-135m.yaml", "--data.num_intervals", "3"]),
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "--config", "recipes/smollm2-135m.yaml", "--data.no_such_key", "3"],  # unknown config key
        ["fit", "--config", "recipes/no-such-recipe.yaml"],  # missing recipe
        ["report", "runs/x/version_0", "--no-such-flag"],  # unknown tool flag
        ["identifier", "no-such-subcommand"],  # unknown nested subcommand
        ["no-such-tool", "--out", "x"],  # unknown subcommand
    ],
    ids=["fit-key", "fit-recipe", "tool-flag", "tool-subcommand", "subcommand"],
)
def test_a_wrong_documented_command_fails_the_check(argv, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(AssertionError):
        check_command(argv)


def blocks_of(language: str) -> list[tuple[Path, int, str]]:
    return [(path, n, textwrap.dedent("\n".join(lines))) for path in DOCS for n, lines in code_blocks(path, (language,))]


PYTHON_BLOCKS, YAML_BLOCKS = blocks_of("python"), blocks_of("yaml")


@pytest.mark.parametrize("path, lineno, code", PYTHON_BLOCKS,
                         ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in PYTHON_BLOCKS])
def test_documented_python_compiles_and_imports_exist(path, lineno, code):
    import ast
    import importlib

    tree = ast.parse(code, filename=f"{path}:{lineno}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("read_lightning"):
            module = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(module, a.name)]
            assert not missing, f"{path}:{lineno}: {node.module} has no {missing}"


@pytest.mark.parametrize("path, lineno, text", YAML_BLOCKS,
                         ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in YAML_BLOCKS])
def test_documented_yaml_is_valid(path, lineno, text, tmp_path):
    import yaml

    doc = yaml.safe_load(text)
    assert isinstance(doc, dict), f"{path}:{lineno}: a YAML example should be a mapping"
    if "templates" in doc:  # a user template file: it must load as one
        from read_lightning.prompts.user_templates import load_templates

        (tmp_path / "templates.yaml").write_text(text)
        assert load_templates(tmp_path / "templates.yaml")


def test_the_code_block_reader_skips_other_languages(tmp_path):
    md = tmp_path / "doc.md"
    md.write_text("```bash\nx = 1\n```\n```python\nimport os\n```\n  ```python\n  y = 2\n  ```\n")
    assert code_blocks(md, ("python",)) == [(5, ["import os"]), (8, ["  y = 2"])]


def run_directory_table(path: Path = ROOT / "README.md") -> list[str]:
    """The paths in the first column of the README's run-directory table (``| `path` | what |``)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.replace(" ", "") == "|path|what|")
    paths = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        match = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        assert match, f"README.md: a run-directory table row without a `path`: {line!r}"
        paths.append(match.group(1))
    return paths


def _as_glob(documented: str) -> str:
    """``generated/interval_NNN.jsonl`` -> ``generated/interval_[0-9][0-9][0-9].jsonl``."""
    return documented.rstrip("/").replace("NNN", "[0-9]" * 3)


def test_the_run_directory_table_reads_its_rows(tmp_path):
    md = tmp_path / "README.md"
    md.write_text("x\n\n| path | what |\n| --- | --- |\n| `a.json` | one |\n| `dir/` | two |\n\nafter | `no` |\n")
    assert run_directory_table(md) == ["a.json", "dir/"]
    assert _as_glob("generated/interval_NNN.jsonl") == "generated/interval_[0-9][0-9][0-9].jsonl"


@pytest.mark.e2e
def test_the_run_directory_table_names_every_file_a_run_writes(default_run):
    documented = run_directory_table()
    # every documented path is there after a run of the default recipe...
    missing = [p for p in documented if not list(default_run.glob(_as_glob(p)))]
    assert not missing, f"README.md's run-directory table names {missing}, which the default run did not write"
    # ...and every file the run wrote is under a documented path
    covered = {f for p in documented for hit in default_run.glob(_as_glob(p))
               for f in ([hit, *hit.rglob("*")] if hit.is_dir() else [hit])}
    unlisted = sorted(str(f.relative_to(default_run)) for f in default_run.rglob("*") if f.is_file() and f not in covered)
    assert not unlisted, f"the default run wrote files README.md's run-directory table does not name: {unlisted}"
