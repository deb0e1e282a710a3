"""``read-train``'s checks of the command line and the config, before anything is built.

The config files and keys (a typo refused in well under a second, before Lightning is imported),
paths of the old flat layout, the student and the checkpoint path, and, once the classes are
made but before any model loads, the names the bandit, the task evaluation and the data module
must agree on. Each refusal is one :class:`UsageError` or :class:`ConfigurationError` naming the
bad value. Nothing here imports Lightning, torch or transformers at module level.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from read_lightning.core.config_keys import check_keys

if TYPE_CHECKING:
    from lightning.pytorch.cli import LightningArgumentParser

_PACKAGE = Path(__file__).resolve().parents[1]  # read_lightning/


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
    if student.strip().lower() in ("null", "none", "~"):
        # The command line gives jsonargparse's str the text: it would be asked of the Hub as a model id.
        raise UsageError(f"model.student is {student!r}, not a model name\n{accepted}")
    if student == EMBEDDED:
        return  # resolving it converts the embedded model: the load itself
    try:
        resolve_model_path(student, model.get("cache_dir"))
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(f"model.student {student!r}: {err}\n{accepted}") from None


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
