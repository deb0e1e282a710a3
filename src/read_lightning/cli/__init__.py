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
import inspect
import logging
import os
import re
import shutil
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from read_lightning.core.config_keys import check_keys, source_parameters

if TYPE_CHECKING:
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

# Nothing above imports Lightning, torch or transformers: ``read-train`` checks the command line
# and the config files first, and refuses a typo in well under a second instead of after the
# 5 s import of Lightning (2 CPU cores). ``ReadCLI`` is made on first use (``__getattr__``).

__all__ = ["ConfigurationError", "ReadCLI", "UsageError", "main"]

_PACKAGE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)


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


class UsageError(ConfigurationError):
    """The command line or a config file does not parse: an unknown key, a value of the wrong
    type, a missing file. ``read-train`` prints the message (a few lines: what, the bad value,
    what is accepted) and exits with status 2, as argparse does; the usage is left to ``--help``."""


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


def check_capability_names(trainer: Any, datamodule: Any) -> None:
    """Refuse a bandit's requirement vector or task card naming a capability the data module
    does not train, before any model loads (the allocator would refuse it at fit start, after
    the models load and the baseline probes run). The vector itself (weights, sum) was checked
    when the bandit was made (a ``Requirement``); only its names are the data module's to judge."""
    from read_lightning.requirement.cards import load_card
    from read_lightning.training.callbacks import BanditAllocationCallback

    known = list(getattr(datamodule, "capabilities", None) or [])
    if not known:
        return
    for cb in trainer.callbacks:
        if not isinstance(cb, BanditAllocationCallback):
            continue
        owner = type(cb).__name__
        if cb.requirement is not None:
            unknown = [c for c in cb.requirement if c not in known]
            if unknown:
                guess = difflib.get_close_matches(unknown[0], known, n=1, cutoff=0.6)
                lines = [f"{owner}: unknown capability {unknown[0]!r} in the requirement vector"]
                lines += [f"  did you mean {guess[0]!r}?"] if guess else []
                lines.append(f"  the data module's capabilities: {', '.join(known)}")
                raise ConfigurationError("\n".join(lines))
        elif isinstance(cb.task_card, str):
            try:
                load_card(cb.task_card, known)
            except (ValueError, FileNotFoundError) as err:
                raise ConfigurationError(f"{owner}: {err}") from None


def check_task_prompts(trainer: Any, datamodule: Any) -> None:
    """Refuse training on one task card's inputs (``data.task_prompts``) while a callback
    evaluates another: a task changed in one place only would distil for the wrong task."""
    from read_lightning.requirement.cards import resolve_card
    from read_lightning.training.callbacks import BanditAllocationCallback, TaskEvaluationCallback

    trained = getattr(datamodule, "task_card_path", None)  # None: no task prompts, or a JSONL of them
    if trained is None:
        return
    trained, source = trained.resolve(), datamodule.task_prompts
    for cb in trainer.callbacks:
        if isinstance(cb, BanditAllocationCallback) and isinstance(cb.task_card, str):
            path, name = resolve_card(cb.task_card), cb.task_card  # the bandit keeps the name or path
        elif isinstance(cb, TaskEvaluationCallback):
            path, name = cb.card.path, cb.card.name  # the task evaluation keeps the loaded card
        else:
            continue
        if path is not None and Path(path).resolve() != trained:
            raise ConfigurationError(
                f"data.task_prompts trains on the inputs of task card {source!r}, but {type(cb).__name__} "
                f"uses task card {name!r}; give both the same card")


def check_bandit_profile(trainer: Any) -> None:
    """Refuse a BanditAllocationCallback with no capability profile to read at the start of a
    fit: no callback before it keeps a ``latest_profile`` (a CapabilityProbeCallback measures the
    baseline profile in its on_fit_start). The bandit would refuse it in its own on_fit_start,
    after the models load, the run directory is made and a TaskEvaluationCallback has answered
    its test questions (minutes on CPU)."""
    from read_lightning.training.callbacks import BanditAllocationCallback

    callbacks = list(trainer.callbacks)
    for i, cb in enumerate(callbacks):
        if not isinstance(cb, BanditAllocationCallback) or any(hasattr(c, "latest_profile") for c in callbacks[:i]):
            continue
        owner = type(cb).__name__
        later = [type(c).__name__ for c in callbacks[i:] if hasattr(c, "latest_profile")]
        fix = (f"{later[0]} comes after {owner} in trainer.callbacks: put it before" if later else
               f"trainer.callbacks has no CapabilityProbeCallback: add one before {owner}")
        raise ConfigurationError(f"{owner}: no capability profile found at fit start: {fix}")


def check_teacher_class_path(argv: list[str]) -> None:
    """Refuse, before the config is parsed, a ``data.teacher`` whose ``class_path`` names no
    teacher spec: one line naming the value and the specs there are. (jsonargparse says it in a
    seven-line union message, the value in its fifth line.) A ``class_path`` is the full path or
    the name of a ``TeacherSpec`` subclass, as jsonargparse resolves it."""
    from read_lightning.teachers.specs import known_specs, spec_class

    given = []
    for where, doc in _config_docs(argv):
        teacher = (doc.get("data") or {}).get("teacher") if isinstance(doc.get("data"), dict) else None
        if isinstance(teacher, dict) and "class_path" in teacher:
            given.append((where, teacher["class_path"]))
    for i, arg in enumerate(argv):
        if arg.startswith("--data.teacher.class_path"):
            value = arg.partition("=")[2] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else None)
            given.append(("the command line", value))
    for where, class_path in given:
        if spec_class(class_path) is None:
            specs = known_specs()
            guess = difflib.get_close_matches(str(class_path).rpartition(".")[2], list(specs), n=1, cutoff=0.6)
            hint = f" (did you mean {guess[0]!r}?)" if guess else ""
            ours = ", ".join(f"{c.__module__.rpartition('.')[0]}.{n}" for n, c in specs.items()
                             if c.__module__.startswith("read_lightning."))
            raise UsageError(f"data.teacher: class_path {class_path!r} in {where} is not a teacher spec{hint}; "
                             f"accepted: {ours} (or their names alone), a subclass of "
                             "read_lightning.teachers.TeacherSpec, or a model name instead of class_path")


def link_teacher(config: Any) -> None:
    """Make ``model.teacher`` and ``data.teacher`` name one teacher, before anything is built.

    Unset ``data.teacher`` is ``model.teacher`` (a model name, run as ``data.teacher_backend``
    says: every recipe's form). A spec (``class_path``/``init_args``) names its model itself:
    ``model.teacher``, the module's logit-KD teacher, gets that name unless it names another
    model, which is refused; a teacher behind a server cannot give the module its logits, so
    ``model.kd_weight > 0`` is refused beside one.
    """
    model, data = config.get("model"), config.get("data")
    if model is None or data is None:
        return
    chosen, named = data.get("teacher"), model.get("teacher")
    if chosen is None:
        data["teacher"] = named
        return
    if isinstance(chosen, str):
        if chosen != named:
            raise UsageError(f"data.teacher {chosen!r} and model.teacher {named!r} name two teachers; "
                             "name the model once, in model.teacher")
        return
    from jsonargparse import Namespace

    from read_lightning.teachers.models import EMBEDDED

    if not isinstance(chosen, Namespace) or not isinstance(chosen.get("class_path"), str):
        return  # the parser accepted it; the data module names what is wrong with it
    init_args = chosen.get("init_args") or Namespace()
    module, _, spec = chosen["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module), spec)
    try:
        # A spec only holds its arguments: making one here costs nothing and names a bad value in
        # one line (jsonargparse, making it later, would bury it in a union's error).
        cls(**init_args.as_dict())
    except (TypeError, ValueError) as err:
        raise UsageError(f"data.teacher: {err}") from None
    spec_model = init_args.get("model")
    if not isinstance(spec_model, str):
        return
    if named not in (EMBEDDED, spec_model):
        raise UsageError(f"model.teacher {named!r} and data.teacher ({spec}, model {spec_model!r}) name two "
                         "teachers; name the model once, in data.teacher.init_args.model")
    model["teacher"] = spec_model
    if not getattr(cls, "in_process", True) and (model.get("kd_weight") or 0) > 0:
        raise UsageError(f"model.kd_weight={model.get('kd_weight')} needs the teacher's logits in this process, but "
                         f"data.teacher is {spec}, which runs elsewhere (model {spec_model!r}); "
                         "set model.kd_weight: 0")


def apply_task(config: Any) -> None:
    """Fill the ``task:`` section into the places that use the task, before anything is built.

    ``task.card`` fills ``data.task_prompts`` and the ``task_card`` of each callback that takes
    one (``BanditAllocationCallback``'s only where it has no requirement vector, the one thing it
    reads the card for); ``task.requirement`` fills each callback's ``requirement``. A place left
    unset gets the task's value; a place that names another value is refused, naming both.

    Not ``link_arguments``: a link's target is no longer a key of the parser (jsonargparse
    replaces its action with the link's), so ``data.task_prompts: prompts.jsonl`` and a
    callback's own ``task_card`` would stop parsing; and an item of ``trainer.callbacks`` (a list
    of class_path entries) cannot be a link target at all.
    """
    task = config.get("task")
    card = task.get("card") if task is not None else None
    requirement = task.get("requirement") if task is not None else None
    if card is None and requirement is None:
        return  # no task section: every place keeps its own value, as before it existed
    data = config.get("data")
    if card is not None and data is not None:
        _fill(data, "task_prompts", card, "data.task_prompts", "task.card")
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    taken = False
    for i, entry in enumerate(callbacks if isinstance(callbacks, list) else [callbacks]):
        class_path = entry.get("class_path") if hasattr(entry, "get") else None
        params = _signature_parameters(class_path) if isinstance(class_path, str) else None
        if not params:
            continue
        init_args = entry.get("init_args")
        if init_args is None:
            from jsonargparse import Namespace

            entry["init_args"] = init_args = Namespace()
        where = f"trainer.callbacks[{i}] {class_path.rpartition('.')[2]}"
        if requirement is not None and "requirement" in params:
            _fill(init_args, "requirement", dict(requirement), f"{where} requirement", "task.requirement")
            taken = True
        if card is not None and "task_card" in params and not (
                "requirement" in params and init_args.get("requirement") is not None and init_args.get("task_card") is None):
            _fill(init_args, "task_card", card, f"{where} task_card", "task.card")
    if requirement is not None and not taken:
        raise UsageError("task.requirement is given, but no callback in trainer.callbacks takes a requirement "
                         "(add a BanditAllocationCallback, or leave task.requirement out)")


def _fill(node: Any, key: str, value: Any, where: str, source: str) -> None:
    """Set ``node[key]`` to the task section's ``value`` when unset; refuse another value."""
    given = node.get(key)
    if given is None:
        node[key] = value
    elif not _same(given, value):
        raise UsageError(f"{source} is {value!r} but {where} is {given!r}; name the task once, in {source}")


def _same(given: Any, value: Any) -> bool:
    """Whether two values of one task key agree: equal, or two names of one card file."""
    if given == value:
        return True
    if not (isinstance(given, str) and isinstance(value, str)):
        return False
    from read_lightning.requirement.cards import resolve_card

    try:
        return resolve_card(given).resolve() == resolve_card(value).resolve()
    except (FileNotFoundError, ValueError):
        return False


def check_student(model: Any) -> None:
    """Refuse an empty ``model.student``, a path that does not exist and an unknown embedded
    model, before any model loads: the data module would fail when it loads the student's
    tokenizer at fit start, after the run directory is made, and an empty name would read as the
    current directory ("model directory '.' has no config.json")."""
    from read_lightning.teachers.models import EMBEDDED, resolve_model_path

    student = model.get("student") if hasattr(model, "get") else None
    accepted = f"  accepted: a model directory, a Hugging Face Hub id, or {EMBEDDED!r}"
    if not isinstance(student, str) or not student.strip():
        raise UsageError(f"model.student is empty ({student!r})\n{accepted}")
    if student == EMBEDDED:
        return  # resolving it converts the embedded model: the load itself
    try:
        resolve_model_path(student, model.get("cache_dir"))
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(f"model.student {student!r}: {err}\n{accepted}") from None


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


def check_ckpt_path(ckpt_path: str | None) -> None:
    """Refuse a ``--ckpt_path`` that names no file, before any model loads (Lightning would fail
    at fit start, after the models load, with a long traceback). ``last``, ``best``, ``hpc``,
    ``registry`` and remote URLs are Lightning's to resolve."""
    if not ckpt_path or ckpt_path in ("last", "best", "hpc") or str(ckpt_path).startswith("registry"):
        return
    if "://" in str(ckpt_path) or os.path.isfile(ckpt_path):
        return
    what = "is a directory, not a checkpoint file" if os.path.isdir(ckpt_path) else "does not exist"
    raise UsageError(
        f"--ckpt_path {ckpt_path!r} {what}\n"
        "  accepted: a .ckpt file, or 'last' to resume the latest run directory of the logger"
    )


# --------------------------------------------------------------------------- configuration keys
def check_config_keys(parser: LightningArgumentParser, argv: list[str]) -> None:
    """Refuse, before anything is built, a key of a ``--config`` file or a ``--section.key``
    override that the run does not accept: its name, where it is, the nearest accepted key
    ("did you mean") and the keys accepted there. The ``init_args`` of a ``class_path`` entry
    (callbacks, logger, optimizer) are checked against the class's constructor.

    jsonargparse would refuse them too, but only after printing ~85 lines of usage, and under a
    union of class types it names the bad key last, with no suggestion. :func:`check_fit_command`
    has checked the same keys before Lightning was imported, as far as the classes' source says.
    """
    import argparse

    keys = {a.dest for a in parser._actions if a.dest not in (argparse.SUPPRESS, "help")}
    message = check_keys(_config_docs(argv), _override_keys(argv), keys, _signature_parameters)
    if message:
        raise UsageError(message)


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


def _config_docs(argv: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """``(where, mapping)`` of each ``--config`` value: a file's path, or the inline YAML."""
    import yaml

    docs = []
    for value in _config_args(argv):
        try:
            if os.path.isfile(value):
                doc, where = yaml.safe_load(Path(value).read_text(encoding="utf-8")), value
            else:
                doc, where = yaml.safe_load(value), "the inline --config"
        except yaml.YAMLError:
            continue  # check_config_files names the file; jsonargparse reports inline YAML
        if isinstance(doc, dict):
            docs.append((where, doc))
    return docs


def _override_keys(argv: list[str]) -> list[str]:
    """The dotted keys of ``--section.key value`` / ``--section.key=value`` / ``--key+=value``."""
    out = []
    for arg in argv:
        if arg.startswith("--") and arg not in ("--", "--help"):
            key = arg[2:].split("=", 1)[0].rstrip("+")
            if key:
                out.append(key)
    return out


def _signature_parameters(class_path: str) -> set[str] | None:
    """The parameters of the class at ``class_path``, imported; None when it cannot be imported
    (jsonargparse says why) or takes ``**kwargs`` (only the class knows what it accepts)."""
    module, _, name = class_path.rpartition(".")
    try:
        params = inspect.signature(getattr(importlib.import_module(module), name)).parameters
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return None
    return {n for n, p in params.items() if p.kind is not p.VAR_POSITIONAL}


_REFUSED_OPTION = re.compile(r"Problem with given class_path '([\w.]+)':\s+Option '(\w+)' is not accepted")


def _short_parse_error(message: str, max_lines: int = 8) -> str:
    """jsonargparse's message without the value it was given (a whole callbacks list) and the
    type list of a union, cut to ``max_lines``; the full usage is ``read-train fit --help``.
    An option a class refused, buried in a union's alternatives, comes first with the nearest
    parameter of that class."""
    refused = _REFUSED_OPTION.search(message)
    if refused:
        import importlib

        class_path, option = refused.groups()
        module, _, name = class_path.rpartition(".")
        try:
            params = list(inspect.signature(getattr(importlib.import_module(module), name)).parameters)
        except (ImportError, AttributeError, ValueError, TypeError):
            params = []
        key = message.strip().splitlines()[0].rstrip(":")
        lines = [f"{name} does not accept {option!r} ({key})"]
        guess = difflib.get_close_matches(option, params, n=1, cutoff=0.6)
        lines += [f"  did you mean {guess[0]!r}?"] if guess else []
        accepted = [p for p in params if p not in ("args", "kwargs")]
        if accepted:
            lines.append(textwrap.fill(f"{name} accepts: {', '.join(accepted)}", width=100,
                                       initial_indent="  ", subsequent_indent="    "))
        return "\n".join(lines)
    lines = [ln for ln in message.strip().splitlines()
             if not ln.strip().startswith(("Given value:", "Subtypes:"))]
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], "  ..."]
    return "\n".join([*lines, "  (read-train fit --help lists every key)"])


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
    tools["probe"] = ("print and save the capability profile of a model directory with a recipe's probes",
                      lazy("evaluation.probe_command", "probe_main"))
    tools["report"] = ("plot a run: PNGs, a Markdown summary and TensorBoard images",
                       lazy("reporting.report", "report_main"))
    return tools


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
