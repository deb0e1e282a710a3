"""The keys ``read-train fit`` checks before it imports Lightning are the parser's own.

They are read from the source of Trainer, DistillationModule and CapabilityDataModule (and of the
classes a ``class_path`` names) with ``ast``; these tests compare them with the real parser and
the real signatures, so a new constructor argument can never be refused by the early check, and
every recipe and every override the tests and docs use passes it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
from pathlib import Path

import pytest
import yaml

from read_lightning import cli
from read_lightning.core.config_keys import source_parameters

ROOT = Path(__file__).parent.parent
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
# Test files that give fit a wrong key on purpose (the errors they check).
WRONG_ON_PURPOSE = {"test_cli_errors.py", "test_cli_keys.py", "test_docs.py"}


class _Parsed(Exception):
    """Raised with fit's parser once LightningCLI has built it."""


def _fit_parser(monkeypatch):
    class Capture(cli._read_cli()):
        def parse_arguments(self, parser, args):
            raise _Parsed(self._subcommand_parsers["fit"])

    monkeypatch.setattr(cli, "_read_cli", lambda: Capture)
    with pytest.raises(_Parsed) as caught:
        cli.lightning_main(["fit"])
    return caught.value.args[0]


def test_the_keys_read_from_source_are_the_parsers(monkeypatch):
    parser = _fit_parser(monkeypatch)
    keys = {a.dest for a in parser._actions if a.dest not in (argparse.SUPPRESS, "help")}
    # The .help of a class-typed key (--trainer.callbacks.help CLASS) is a flag, not a config key.
    assert set(cli.fit_keys()) == {k for k in keys if not k.endswith(".help")}


def _class_paths(node) -> set[str]:
    if isinstance(node, dict):
        own = {node["class_path"]} if isinstance(node.get("class_path"), str) else set()
        return own.union(*(_class_paths(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_class_paths(v) for v in node))
    return set()


CLASS_PATHS = sorted(set().union(*(_class_paths(yaml.safe_load(r.read_text())) for r in RECIPES)) | {
    "torch.optim.AdamW", "lightning.pytorch.callbacks.EarlyStopping", "lightning.pytorch.loggers.CSVLogger"})


@pytest.mark.parametrize("class_path", CLASS_PATHS)
def test_a_class_read_from_source_takes_the_parameters_of_its_signature(class_path):
    from_source = source_parameters(class_path)
    if class_path.startswith("read_lightning."):
        assert from_source is not None, f"the source of {class_path} should say what it takes"
    if from_source is not None:  # None: the parser judges its init_args
        assert from_source == cli._signature_parameters(class_path)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_passes_the_early_check(recipe):
    cli.check_fit_command(["fit", "--config", str(recipe)])


def _fit_overrides() -> list[str]:
    """Every ``--model.*``, ``--data.*``, ``--trainer.*`` (...) string in the tests and the package."""
    heads = ("--model", "--data", "--trainer", "--seed_everything", "--ckpt_path", "--optimizer", "--lr_scheduler",
             "--print_config", "--weights_only")
    files = [p for p in (ROOT / "tests").glob("*.py") if p.name not in WRONG_ON_PURPOSE]
    files += sorted((ROOT / "src" / "read_lightning").rglob("*.py"))
    found = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                word = node.value.split(" ", 1)[0]
                if word.split("=", 1)[0].split(".", 1)[0].rstrip("+") in heads:
                    found.add(word)
    return sorted(found)


@pytest.mark.parametrize("override", _fit_overrides())
def test_every_override_the_tests_and_the_package_give_passes_the_early_check(override):
    cli.check_fit_command(["fit", override, "1"])


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "--trainer.logger.init_args.name", "x"],  # below a class-typed key: the class's to judge
        ["fit", "--trainer.callbacks+=X"],
        ["fit", "--data={seed: 5}"],
        ["fit", "--config", "{model: {lr: 0.1}, trainer: {max_epochs: 2}}"],  # inline YAML
        ["--config", "{trainer: {nonsense: 1}}", "fit"],  # the main parser's options: left to it
    ],
)
def test_what_the_early_check_cannot_judge_is_left_to_the_parser(argv):
    cli.check_fit_command(argv)


def _package(tmp_path: Path, monkeypatch, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = tmp_path / "pkg_src" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path / "pkg_src"))
    importlib.invalidate_caches()


def test_source_parameters_follow_re_exports_and_say_none_when_the_source_cannot_tell(tmp_path, monkeypatch):
    _package(tmp_path, monkeypatch, {
        "srcpkg/__init__.py": "from .impl import Plain, Kwargs\nfrom srcpkg.impl import Decorated as Renamed\n",
        "srcpkg/star.py": "from srcpkg.impl import *\nclass Plain:\n    def __init__(self, a): ...\n",
        "srcpkg/twice.py": "class Plain:\n    def __init__(self, a): ...\n\nif True:\n    Plain = dict\n",
        "srcpkg/impl.py": (
            "import functools\n"
            "class Plain:\n    def __init__(self, a, b=1, *args, c=2): ...\n"
            "class Kwargs:\n    def __init__(self, a, **kwargs): ...\n"
            "@functools.total_ordering\nclass Decorated:\n    def __init__(self, a): ...\n"
            "class Inherits(Plain):\n    pass\n"
            "class Wrapped:\n    @functools.wraps(print)\n    def __init__(self, a): ...\n"
        ),
    })
    assert source_parameters("srcpkg.Plain") == {"a", "b", "c"}  # through a relative re-export
    assert source_parameters("srcpkg.impl.Kwargs") is None  # **kwargs: only the class knows
    assert source_parameters("srcpkg.Renamed") is None  # a class decorator may change anything
    assert source_parameters("srcpkg.impl.Inherits") is None  # inherited: not read
    assert source_parameters("srcpkg.impl.Wrapped") is None
    assert source_parameters("srcpkg.impl.Wrapped", decorated=True) == {"a"}
    assert source_parameters("srcpkg.star.Plain") is None  # a star import may bind it too
    assert source_parameters("srcpkg.twice.Plain") is None  # bound twice
    assert source_parameters("srcpkg.impl.Missing") is None
    assert source_parameters("no_such_package.Thing") is None
    assert source_parameters("Plain") is None  # a short name: jsonargparse resolves it
