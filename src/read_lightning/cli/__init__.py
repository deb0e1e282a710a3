"""``read-train``: the command line.

``read-train fit --config recipes/X.yaml`` is a LightningCLI over
:class:`DistillationModule` and :class:`CapabilityDataModule`, so every constructor argument is a
YAML key and ``--print_config`` shows the resolved configuration. Other subcommands are tools
around a run and dispatch to their own ``main`` functions.
"""

from __future__ import annotations

import difflib
import functools
import gc
import importlib
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from read_lightning.cli.checks import (
    _PACKAGE,
    ConfigurationError,
    UsageError,
    _config_docs,
    _override_keys,
    _short_parse_error,
    _signature_parameters,
    check_bandit_profile,
    check_capability_names,
    check_ckpt_path,
    check_config_files,
    check_config_keys,
    check_moved_paths,
    check_student,
    check_task_prompts,
    check_teacher_class_path,
)
from read_lightning.cli.task import apply_task, link_teacher
from read_lightning.core.config_keys import check_keys, source_parameters

if TYPE_CHECKING:
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

# Nothing above imports Lightning, torch or transformers: ``read-train`` checks the command line
# and the config files first, and refuses a typo in well under a second instead of after the
# 5 s import of Lightning (2 CPU cores). ``ReadCLI`` is made on first use (``__getattr__``).

__all__ = ["ConfigurationError", "ReadCLI", "UsageError", "main"]

_CLI = Path(__file__).resolve().parent  # read_lightning/cli/
log = logging.getLogger(__name__)


def _ours(filename: str) -> bool:
    """Whether code in ``filename`` is read_lightning's own, outside the command line."""
    path = Path(filename).resolve()
    return path.is_relative_to(_PACKAGE) and not path.is_relative_to(_CLI)


def _refusals(building: bool = False) -> tuple[type[BaseException], ...]:
    """What read_lightning raises for bad input or an unusable teacher while a run is being built
    (``building``: also a TypeError) or while it runs; other exceptions keep their traceback."""
    from read_lightning.teachers.generation import TeacherError  # torch: only once a run has failed

    return (ValueError, FileNotFoundError, TeacherError, *((TypeError,) if building else ()))


def _refusal(err: BaseException, kinds: tuple[type[BaseException], ...] | None = None) -> str | None:
    """``"<Class>: <message> (<file>:<line>)"`` for an exception of one of ``kinds`` (default:
    :func:`_refusals`) that read_lightning itself raised (outside this module) somewhere in
    ``err``'s chain; ``Class`` is that of the outermost read_lightning method on its way. None
    when there is none: then the error is not a refusal of bad input, and its traceback is the
    useful part."""
    kinds = _refusals() if kinds is None else kinds
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


def __getattr__(name: str) -> Any:
    if name == "ReadCLI":
        return _read_cli()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _read_cli() -> type[LightningCLI]:
    """``ReadCLI``, the LightningCLI of ``read-train fit``; made on first use, because subclassing
    LightningCLI imports Lightning, which must wait until the command line has been checked."""
    from jsonargparse import ArgumentError
    from lightning.pytorch.cli import LightningCLI

    class ReadCLI(LightningCLI):
        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            # Only fit: the module has no validation, test or predict step, so those would fail later
            # with a traceback; check_fit_command refuses them, naming the commands there are.
            return {"fit": LightningCLI.subcommands()["fit"]}

        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            # The models are named once, on the module; the data module needs the same names to
            # load the student's tokenizer and the teacher. (The teacher is not a link: data.teacher
            # may be a spec that names it instead; link_teacher makes the two agree.)
            parser.link_arguments("model.student", "data.student")
            parser.link_arguments("model.cache_dir", "data.cache_dir")
            # One epoch is one allocation interval.
            parser.link_arguments("data.num_intervals", "trainer.max_epochs")
            # The task, named once; apply_task fills it into the data module and the callbacks.
            parser.add_argument("--task.card", type=str | None, default=None,
                                help="the task card (a packaged name or a card.yaml path): fills "
                                     "data.task_prompts and the callbacks' task_card where unset")
            parser.add_argument("--task.requirement", type=dict[str, float] | None, default=None,
                                help="the task's requirement vector over capabilities: fills "
                                     "BanditAllocationCallback.requirement where unset")

        def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
            if args is None or isinstance(args, list):
                argv = list(sys.argv[1:] if args is None else args)
                subparsers = getattr(self, "_subcommand_parsers", None)
                if subparsers is None:  # run=False: the parser is fit's, with no subcommand word
                    check_config_keys(parser, argv)
                    check_teacher_class_path(argv)
                elif argv and argv[0] in subparsers:
                    check_config_keys(subparsers[argv[0]], argv[1:])
                    check_teacher_class_path(argv[1:])
            try:
                super().parse_arguments(parser, args)
            except ArgumentError as err:
                raise UsageError(_short_parse_error(str(err))) from None

        def before_instantiate_classes(self) -> None:
            link_teacher(self.config[self.subcommand] if self.subcommand else self.config)
            apply_task(self.config[self.subcommand] if self.subcommand else self.config)
            if self.subcommand == "fit":
                check_ckpt_path(self.config["fit"].get("ckpt_path"))
                check_student(self.config["fit"].get("model"))
                cpu_precision(self.config["fit"].get("trainer"))
                resume_latest_version(self.config["fit"])

        def instantiate_classes(self) -> None:
            try:
                super().instantiate_classes()
            except Exception as err:
                refusal = _refusal(err, _refusals(building=True))
                if refusal is None:
                    raise
                raise ConfigurationError(refusal) from err

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
            from read_lightning.training.progress import quiet_default_callbacks

            given = config.get("callbacks") or []
            given = [*(given if isinstance(given, list) else [given]), *callbacks]
            return super()._instantiate_trainer(config, [*callbacks, *quiet_default_callbacks(config, given)])

        def before_fit(self) -> None:
            # Everything checkable without a model, before configure_model loads one and before
            # the run directory exists.
            check_capability_names(self.trainer, self.datamodule)
            check_task_prompts(self.trainer, self.datamodule)
            if not self.config["fit"].get("ckpt_path"):  # a resumed bandit restores its last decision
                check_bandit_profile(self.trainer)

        def fit(self, **kwargs: Any) -> None:
            """``trainer.fit``; a start that fails leaves no run directory it created but left no
            checkpoint in (a config.yaml and an events file would pass for a run)."""
            created = _new_directory(self.trainer.log_dir) if self.trainer.is_global_zero else None
            try:
                self.trainer.fit(**kwargs)
            except BaseException:
                if created is not None:
                    remove_failed_start(created)
                raise

    ReadCLI.__qualname__ = "ReadCLI"
    return ReadCLI


def _new_directory(path: str | None) -> Path | None:
    """The topmost of ``path`` and its parents that does not exist yet (what a start would
    create), or None when ``path`` exists already (a resumed run) or is unset."""
    if not path or os.path.exists(path):
        return None
    top = Path(path).absolute()
    while not top.parent.exists():
        top = top.parent
    return top


def remove_failed_start(created: Path) -> None:
    """Remove ``created``, the directory a failed start made, unless it holds a checkpoint (a run
    that got that far can be resumed: it stays, with everything in it)."""
    if not created.is_dir() or any(created.rglob("*.ckpt")):
        return
    shutil.rmtree(created, ignore_errors=True)
    print(f"read-train: removed {created}, made by this failed start (it held no checkpoint)", file=sys.stderr)


def _native_cpu_bf16() -> bool:
    import torch

    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_precision(trainer: Any) -> None:
    """A bf16 precision on a CPU without native bf16 (AVX512-BF16 or AMX) falls back to
    ``32-true``, with a warning: there bf16 is emulated and slower than fp32. On a CPU that has
    it, ``bf16-mixed`` trains the default student about 1.6x faster (docs/results.md)."""
    if not hasattr(trainer, "get") or not str(trainer.get("precision") or "").startswith("bf16"):
        return
    accelerator = str(trainer.get("accelerator") or "auto")
    if accelerator not in ("cpu", "auto"):
        return
    import torch

    if accelerator == "auto" and (torch.cuda.is_available() or torch.backends.mps.is_available()):
        return
    if not _native_cpu_bf16():
        log.warning("trainer.precision %r: this CPU has no native bf16, where it is slower than fp32; "
                    "training in 32-true", trainer["precision"])
        trainer["precision"] = "32-true"


# What fit's parser holds besides the arguments of its three classes: LightningCLI's own keys,
# and the arguments of Trainer.fit other than those LightningCLI fills itself
# (LightningCLI.subcommands()["fit"]). tests/test_cli_keys.py compares the keys with the parser's.
_FIT_OWN_KEYS = ("config", "print_config", "seed_everything", "optimizer", "lr_scheduler",
                 "task.card", "task.requirement")
_FIT_FILLED = {"model", "train_dataloaders", "val_dataloaders", "datamodule"}
_FIT_SECTIONS = {"trainer": "lightning.pytorch.trainer.trainer.Trainer",
                 "model": "read_lightning.training.module.DistillationModule",
                 "data": "read_lightning.training.data.CapabilityDataModule"}


@functools.cache
def fit_keys() -> frozenset[str] | None:
    """The keys ``read-train fit`` accepts (those of its parser but the ``.help`` of class-typed
    keys), read from the source of its classes without importing them. A section whose class the
    source does not fully describe accepts any key below it; None when Trainer.fit's is not known."""
    fit = source_parameters(_FIT_SECTIONS["trainer"], "fit")
    if fit is None:
        return None
    keys = {*_FIT_OWN_KEYS, *(fit - _FIT_FILLED)}
    for section, class_path in _FIT_SECTIONS.items():
        # Trainer.__init__'s decorator (defaults from environment variables) keeps its signature.
        params = source_parameters(class_path, decorated=True)
        keys |= {section, *(f"{section}.{p}" for p in params or ())}
    return frozenset(keys)


def check_fit_command(argv: list[str]) -> None:
    """Refuse, before Lightning is imported, a subcommand other than ``fit`` and a key of a
    ``--config`` file or a ``--section.key`` override that fit does not accept (the message of
    :func:`check_config_keys`). ``argv`` starts with the subcommand. The keys come from the
    classes' source (:func:`fit_keys`); what it cannot say, and the options of the main parser
    before a subcommand, are left to LightningCLI's parser."""
    if not argv or argv[0].startswith("-"):
        return
    if argv[0] != "fit":
        commands = ["fit", *_tools()]
        guess = difflib.get_close_matches(argv[0], commands, n=1, cutoff=0.6)
        lines = [f"unknown command {argv[0]!r}"]
        lines += [f"  did you mean {guess[0]!r}?"] if guess else []
        lines.append(f"  read-train accepts: {', '.join(commands)}")
        raise UsageError("\n".join(lines))
    keys = fit_keys()
    if keys is not None:
        message = check_keys(_config_docs(argv[1:]), _override_keys(argv[1:]), set(keys), source_parameters)
        if message:
            raise UsageError(message)


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
    "logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
               # no hp_metric: a placeholder -1 scalar in every run's TensorBoard
               "init_args": {"save_dir": "runs", "default_hp_metric": False}},
}


def lightning_main(args: list[str] | None = None, run: bool = True) -> Any:
    """The ``ReadCLI`` of ``args`` (default ``sys.argv[1:]``): with ``run``, a subcommand and its
    arguments, run; else fit's arguments, parsed and instantiated."""
    argv = list(sys.argv[1:] if args is None else args)
    check_moved_paths(argv)
    check_fit_command(argv if run else ["fit", *argv])
    from read_lightning.training.data import CapabilityDataModule
    from read_lightning.training.module import DistillationModule

    return _read_cli()(
        DistillationModule,
        CapabilityDataModule,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        # A parse error is raised (UsageError: a few lines) instead of printing ~85 lines of usage.
        parser_kwargs={"parser_mode": "omegaconf", "exit_on_error": False},
        args=args,
        run=run,
    )


# Subcommands that are not Trainer methods: name, help, and where their main(argv) -> exit code lives.
_TOOLS: tuple[tuple[str, str, str, str], ...] = (
    ("leakage", "build the hash set of evaluation prompts that generation must avoid",
     "prompts.leakage", "leakage_main"),
    ("interventions", "collect intervention data (short distillations on random allocations)",
     "requirement.interventions", "interventions_main"),
    ("transfer", "measure the transfer matrix T(B): single-capability distillations at a few budgets",
     "reporting.transfer_study", "transfer_main"),
    ("identifier", "fit or apply the learned requirement identifier g_phi(card)",
     "requirement.inference", "identifier_main"),
    ("compare", "train a recipe with several allocators and seeds; tabulate task utility and profiles",
     "reporting.compare", "compare_main"),
    ("probe", "print and save the capability profile of a model directory with a recipe's probes",
     "evaluation.probe_command", "probe_main"),
    ("report", "plot a run: PNGs, a Markdown summary and TensorBoard images", "reporting.report", "report_main"),
)


def _tools() -> dict[str, tuple[str, Callable[[list[str]], int]]]:
    """Subcommands that are not Trainer methods: name -> (help, main(argv) -> exit code)."""

    # Imported on use: each tool pulls in only what it needs.
    def lazy(module: str, name: str) -> Callable[[list[str]], int]:
        def run(argv: list[str]) -> int:
            import importlib

            return getattr(importlib.import_module(f"read_lightning.{module}"), name)(argv)

        return run

    return {name: (text, lazy(module, fn)) for name, text, module, fn in _TOOLS}


# Messages from Lightning that a read-train user can do nothing about: an advertisement, a
# deprecation inside Lightning itself, a worker-count caveat that does not apply (the data
# module's loaders run in the main process), and a note about the summary read-train chose.
_NOISE_LOGS = ("💡 Tip: For seamless cloud logging",
               # read-train's own summary (no FLOPs line) replaces the default one
               "Trainer already configured with model summary callbacks")
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
        if isinstance(err, UsageError):
            print(f"read-train: {err}", file=sys.stderr)
            raise SystemExit(2) from None
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
