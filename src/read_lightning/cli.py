"""``read-train``: the command line.

``read-train fit --config recipes/X.yaml`` is a LightningCLI over
:class:`DistillationModule` and :class:`CapabilityDataModule`, so every constructor argument is a
YAML key and ``--print_config`` shows the resolved configuration. Other subcommands are tools
around a run and dispatch to their own ``main`` functions.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from read_lightning.teachers.generation import TeacherError
from read_lightning.training.data import CapabilityDataModule
from read_lightning.training.module import DistillationModule

__all__ = ["ConfigurationError", "ReadCLI", "main"]

_PACKAGE = Path(__file__).resolve().parent


def _ours(filename: str) -> bool:
    """Whether code in ``filename`` is read_lightning's own, outside this module."""
    path = Path(filename).resolve()
    return path.is_relative_to(_PACKAGE) and path != _PACKAGE / "cli.py"


class ConfigurationError(ValueError):
    """A class named in the configuration refused its arguments while the run was being built.

    The message is ``"<Class>: <its own message, naming the bad value> (<file>:<line>)"``.
    ``read-train`` prints it as one line; raised as it is, jsonargparse would bury it among ~80
    lines of traceback and union-type alternatives.
    """


# What read_lightning raises for bad input or an unusable teacher, while a run is being built
# (_BUILD_REFUSALS) and while it runs (_RUN_REFUSALS); other exceptions keep their traceback.
_RUN_REFUSALS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, TeacherError)
_BUILD_REFUSALS = (*_RUN_REFUSALS, TypeError)


def _refusal(err: BaseException, kinds: tuple[type[BaseException], ...] = _RUN_REFUSALS) -> str | None:
    """``"<Class>: <message> (<file>:<line>)"`` for an exception of one of ``kinds`` that
    read_lightning itself raised (outside this module) somewhere in ``err``'s chain; ``Class`` is
    that of the outermost read_lightning method on its way. None when there is none: then the
    error is not a refusal of bad input, and its traceback is the useful part."""
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo:
        exc = todo.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        tb, last = exc.__traceback__, None
        while tb is not None:
            last, tb = tb, tb.tb_next
        if last is not None and isinstance(exc, kinds) and not isinstance(exc, ConfigurationError):
            filename = last.tb_frame.f_code.co_filename
            if _ours(filename):
                owner = _owner(exc.__traceback__)
                where = f"{Path(filename).name}:{last.tb_lineno}"
                return f"{owner}: {exc} ({where})" if owner else f"{exc} ({where})"
        todo.extend(e for e in (exc.__cause__, exc.__context__) if e is not None)
    return None


def _owner(tb: Any) -> str | None:
    """The class of the outermost read_lightning method in traceback ``tb`` (its ``self``)."""
    while tb is not None:
        frame = tb.tb_frame
        if _ours(frame.f_code.co_filename) and "self" in frame.f_locals:
            return type(frame.f_locals["self"]).__name__
        tb = tb.tb_next
    return None


class ReadCLI(LightningCLI):
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # Only fit: the module has no validation, test or predict step, so those would fail later
        # with a traceback; unknown to the parser they are refused with its list of choices.
        return {"fit": LightningCLI.subcommands()["fit"]}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The models are named once, on the module; the data module needs the same names to
        # load the student's tokenizer and the teacher.
        parser.link_arguments("model.student", "data.student")
        parser.link_arguments("model.teacher", "data.teacher")
        parser.link_arguments("model.cache_dir", "data.cache_dir")
        # One epoch is one allocation interval.
        parser.link_arguments("data.num_intervals", "trainer.max_epochs")

    def before_instantiate_classes(self) -> None:
        if self.subcommand == "fit":
            resume_latest_version(self.config["fit"])

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as err:
            refusal = _refusal(err, _BUILD_REFUSALS)
            if refusal is None:
                raise
            raise ConfigurationError(refusal) from err


def resume_latest_version(config: Any) -> None:
    """Make ``--ckpt_path last`` resume the latest run directory instead of starting a new one.

    Lightning looks for ``last.ckpt`` in the checkpoint folder of the run being started, and a
    logger without a fixed ``version`` starts a fresh ``version_N`` with none in it. So when the
    logger's version is unset, pick the newest ``version_N`` under its ``save_dir/name`` that has
    a ``checkpoints/last*.ckpt``: the resumed run then continues in the same directory and reuses
    the intervals it already paid for. With no such directory nothing changes (a first run).
    """
    logger = config.get("ckpt_path") == "last" and config.get("trainer", {}).get("logger")
    init_args = logger.get("init_args") if hasattr(logger, "get") else None
    if init_args is None or init_args.get("version") is not None or not init_args.get("save_dir"):
        return
    # An empty or null name is no folder (Lightning uses ``name or ""``); unset is the default name.
    root = Path(init_args["save_dir"]) / (init_args.get("name", "lightning_logs") or "")
    versions = [
        int(d.name.split("_", 1)[1])
        for d in root.glob("version_*")
        if d.name.split("_", 1)[1].isdigit() and any((d / "checkpoints").glob("last*.ckpt"))
    ]
    if versions:
        init_args["version"] = max(versions)


TRAINER_DEFAULTS = {
    # A new data mixture every interval means a new dataloader every epoch.
    "reload_dataloaders_every_n_epochs": 1,
    "num_sanity_val_steps": 0,
    "default_root_dir": "runs",
    "log_every_n_steps": 5,
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs"}},
}


def lightning_main(args: list[str] | None = None, run: bool = True) -> ReadCLI:
    check_moved_paths(sys.argv[1:] if args is None else args)
    return ReadCLI(
        DistillationModule,
        CapabilityDataModule,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"parser_mode": "omegaconf"},
        args=args,
        run=run,
    )


# Where the modules of the old flat layout went (``read_lightning.<old>`` -> ``read_lightning.<new>``).
_MOVED = {
    "capabilities": "core.capabilities", "checks": "core.checks", "jsonl": "core.jsonl", "ledger": "core.ledger",
    "bandit": "allocation.bandit", "simulator": "allocation.simulator", "templates": "prompts",
    "leakage": "prompts.leakage", "generation": "teachers", "models": "teachers.models",
    "probes": "evaluation.probes", "tasks": "evaluation.tasks", "requirement": "requirement.inference",
    "interventions": "requirement.interventions", "module": "training.module", "data": "training.data",
    "callbacks": "training", "losses": "training.losses", "report": "reporting.report",
    "compare": "reporting.compare",
}
_DOTTED = re.compile(r"\bread_lightning\.(\w+)\.(\w+)")


def moved_path(old: str, name: str) -> str | None:
    """The dotted path that ``read_lightning.<old>.<name>`` has now, or None when it is current."""
    if old not in _MOVED or (_PACKAGE / old / f"{name}.py").exists() or (_PACKAGE / old / name).is_dir():
        return None
    from read_lightning import _EXPORTS

    module = _EXPORTS.get(name, _MOVED[old])
    return f"read_lightning.{module}.{name}"


def check_moved_paths(argv: list[str]) -> None:
    """Refuse, naming the new path, a class path of the old flat layout (``read_lightning.callbacks.X``)
    given on the command line or in a ``--config`` file; jsonargparse would report only that the
    import failed, among its union-type alternatives."""
    texts = list(argv) + [Path(p).read_text(encoding="utf-8") for p in _config_args(argv) if os.path.isfile(p)]
    for text in texts:
        for match in _DOTTED.finditer(text):
            new = moved_path(*match.groups())
            if new is not None:
                raise ConfigurationError(f"{match.group(0)} has moved: use {new}")


def check_config_files(argv: list[str]) -> None:
    """Fail early, naming the file, when a --config file is missing or not valid YAML.

    LightningCLI reports YAML errors against "<unicode string>", which hides which file broke.
    """
    import yaml

    for path in _config_args(argv):
        try:
            with open(path, encoding="utf-8") as fh:
                doc = yaml.safe_load(fh)
        except FileNotFoundError:
            if _inline_yaml(path):
                continue  # --config also takes the YAML itself, as LightningCLI does
            raise SystemExit(f"read-train: config file {path!r} does not exist") from None
        except yaml.YAMLError as err:
            raise SystemExit(f"read-train: config file {path!r} is not valid YAML:\n{err}") from None
        if doc is not None and not isinstance(doc, dict):
            raise SystemExit(f"read-train: config file {path!r} must hold a mapping, not {type(doc).__name__}")


def _config_args(argv: list[str]) -> list[str]:
    """The values of ``--config`` / ``-c`` in ``argv``: file paths or inline YAML."""
    values = []
    for i, arg in enumerate(argv):
        if arg in ("-c", "--config") and i + 1 < len(argv):
            values.append(argv[i + 1])
        elif arg.startswith("--config="):
            values.append(arg.split("=", 1)[1])
    return values


def _inline_yaml(text: str) -> bool:
    import yaml

    try:
        return isinstance(yaml.safe_load(text), dict)
    except yaml.YAMLError:
        return False


def _tools() -> dict[str, tuple[str, Callable[[list[str]], int]]]:
    """Subcommands that are not Trainer methods: name -> (help, main(argv) -> exit code)."""
    tools: dict[str, tuple[str, Callable[[list[str]], int]]] = {}
    # Imported on use: each tool pulls in only what it needs.

    def lazy(module: str, name: str) -> Callable[[list[str]], int]:
        def run(argv: list[str]) -> int:
            import importlib

            return getattr(importlib.import_module(f"read_lightning.{module}"), name)(argv)

        return run

    tools["leakage"] = ("build the hash set of evaluation prompts that generation must avoid",
                        lazy("prompts.leakage", "leakage_main"))
    tools["interventions"] = ("collect intervention data (short distillations on random allocations)",
                              lazy("requirement.interventions", "interventions_main"))
    tools["transfer"] = ("measure the transfer matrix T(B): single-capability distillations at a few budgets",
                         lazy("reporting.transfer_study", "transfer_main"))
    tools["identifier"] = ("fit or apply the learned requirement identifier g_phi(card)",
                           lazy("requirement.inference", "identifier_main"))
    tools["compare"] = ("train a recipe with several allocators and seeds; tabulate task utility and profiles",
                        lazy("reporting.compare", "compare_main"))
    tools["report"] = ("plot a run: PNGs, a Markdown summary and TensorBoard images",
                       lazy("reporting.report", "report_main"))
    return tools


# Messages from Lightning that a read-train user can do nothing about: an advertisement, a
# deprecation inside Lightning itself, and a worker-count caveat that does not apply (the data
# module's loaders run in the main process).
_NOISE_LOGS = ("💡 Tip: For seamless cloud logging",)
_NOISE_WARNINGS = (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"Your `IterableDataset` has `__len__` defined")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_NOISE_LOGS)


def quiet_lightning() -> None:
    """Silence the Lightning messages in ``_NOISE_LOGS`` and ``_NOISE_WARNINGS``; others stay."""
    # rank_zero_info logs to this logger; a filter applies where a record is made, not where it
    # propagates, so this is the one logger to filter.
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropNoise) for f in log.filters):
        log.addFilter(_DropNoise())
    for pattern in _NOISE_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    tools = _tools()
    quiet_lightning()
    if argv and argv[0] in tools:
        return int(tools[argv[0]][1](argv[1:]) or 0)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: read-train {fit," + ",".join(tools) + "} ...\n")
        print("  fit        distil a student under a token budget (LightningCLI; see fit --help)")
        for name, (help_text, _) in tools.items():
            print(f"  {name:<10} {help_text}")
        return 0
    check_config_files(argv)
    try:
        # LightningCLI reads sys.argv itself; passing it again would trigger its "args and argv" warning.
        cli = lightning_main(None if from_command_line else argv)
    except Exception as err:
        # Bad input that read_lightning refused, by name: the message says what and where, a
        # traceback through Lightning and jsonargparse adds nothing (READ_TRAIN_TRACEBACK=1 shows it).
        if os.environ.get("READ_TRAIN_TRACEBACK"):
            raise
        if isinstance(err, ConfigurationError):
            raise SystemExit(f"read-train: the configuration was refused: {err}") from None
        refusal = _refusal(err)
        if refusal is None:
            raise
        raise SystemExit(f"read-train: {refusal}") from None
    # log_dir is broadcast from rank 0: every rank must ask for it, not rank 0 alone.
    log_dir = cli.trainer.log_dir if argv[0] == "fit" else None
    if argv[0] == "fit" and cli.trainer.is_global_zero:
        # The run's outputs are saved by now; the report never raises (see report_after_fit).
        from read_lightning.reporting.report import report_after_fit

        report_after_fit(log_dir)
    _release(cli)
    return 0


def _release(cli: LightningCLI) -> None:
    """Let go of a finished run's student, teacher, optimizer and data. jsonargparse keeps the
    last parser in a context variable, and through it this CLI, so in a process that goes on
    (``read-train compare --launcher inprocess``, a notebook) they would stay alive until the
    next run had been parsed."""
    for name in ("trainer", "model", "datamodule", "config_init"):
        if hasattr(cli, name):
            setattr(cli, name, None)
    gc.collect()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
