"""The config's ``task:`` section and ``data.teacher``, filled into the parts that use them.

:func:`apply_task` names the task once (``task.card``, ``task.requirement``) for the data module
and the callbacks; :func:`link_teacher` makes ``model.teacher`` follow ``data.teacher``. Both run
on the parsed config before any class is made (``ReadCLI.before_instantiate_classes``).
"""

from __future__ import annotations

import importlib
from typing import Any

from read_lightning.cli.checks import UsageError, _signature_parameters


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
