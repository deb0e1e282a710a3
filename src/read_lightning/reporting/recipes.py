"""The recipe of one comparison run: the user's recipe with the method (allocator and its overrides,
``reporting.methods``), seed and run directory set, the keys compare owns refused, and what a run measures (to tell a finished run that still
matches from one that does not)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from read_lightning.reporting.methods import Method
from read_lightning.reporting.tables import BANDIT

__all__ = [
    "RunSpec",
    "check_overrides",
    "derive_recipe",
    "differences",
    "fingerprint",
    "load_recipe",
    "what_it_measures",
]

# compare owns these: each run gets its own seed and run directory, so overriding them would
# put runs on top of each other or make the seeds identical.
_RESERVED = ("--seed_everything", "--data.seed", "--data.run_dir", "--trainer.logger", "--trainer.default_root_dir",
             "--trainer.callbacks", "--ckpt_path", "--print_config")


@dataclass
class RunSpec:
    """One (method, seed) run of the comparison. ``allocator`` is the run's name in the table and
    its directory: an allocator's, or a method's (``method``, whose allocator it uses)."""

    allocator: str
    seed: int
    run_dir: Path
    method: Method | None = None  # None: the allocator ``allocator`` with the recipe as it is

    @property
    def label(self) -> str:
        return f"{self.allocator} seed {self.seed}"


# --------------------------------------------------------------------------- recipes


def _callback(recipe: Mapping[str, Any], name: str, path: str) -> dict[str, Any] | None:
    """The first ``trainer.callbacks`` entry whose class_path ends with ``name``."""
    callbacks = (recipe.get("trainer") or {}).get("callbacks") or []
    if not isinstance(callbacks, list):
        raise ValueError(f"{path}: trainer.callbacks must be a list, got {type(callbacks).__name__}")
    for cb in callbacks:
        if isinstance(cb, dict) and str(cb.get("class_path", "")).endswith(name):
            return cb
    return None


def derive_recipe(recipe: Mapping[str, Any], spec: RunSpec, root: Path, path: str = "recipe") -> dict[str, Any]:
    """A copy of ``recipe`` that trains ``spec``: its method (allocator, loss and teacher-prompt
    overrides), its seed, its run directory.

    The seed goes to ``seed_everything`` (torch), ``data.seed`` (prompt sampling, the teacher's
    sampling, batch order) and the bandit's own RNG, so two seeds really are two different runs.
    """
    derived = json.loads(json.dumps(recipe))  # a deep copy that also rejects non-YAML objects
    bandit = _callback(derived, BANDIT, path)
    if bandit is None:
        raise ValueError(f"{path}: trainer.callbacks has no {BANDIT}; compare needs one to set the allocator")
    init = bandit.setdefault("init_args", {})
    _refuse_pinned_paths(derived, init, path)
    # A recipe tuned for ``read`` carries its options (warmup, kappa, ...); a static baseline
    # takes none of them, and would fail on them, so each run keeps only what its allocator takes.
    # What the recipe's own allocator does not take either is a typo, refused as fit refuses it.
    kwargs = dict(init.get("allocator_kwargs") or {})
    from read_lightning.allocation.bandit import allocator_options

    own = init.get("allocator", "read")
    own_options = allocator_options(own)
    unknown = sorted(set(kwargs) - own_options) if own_options is not None else []
    if unknown:
        raise ValueError(f"{path}: allocator_kwargs {unknown} are not options of the recipe's allocator {own!r}; "
                         f"it takes {sorted(own_options)}")
    method = spec.method or Method(spec.allocator, spec.allocator)
    init.update(allocator=method.allocator, seed=spec.seed)
    accepted = allocator_options(method.allocator)
    if accepted is not None:
        kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    if method.allocator == "greedy":
        kwargs.pop("kappa", None)  # greedy is kappa = 0 by definition; the recipe's kappa is read's
    init["allocator_kwargs"] = {**kwargs, **method.allocator_kwargs}
    for section, values in (("model", method.model), ("data", method.data)):
        if values:
            part = derived.setdefault(section, {})
            for key, value in values.items():
                if value is None:
                    part.pop(key, None)
                else:
                    part[key] = value
    derived["seed_everything"] = spec.seed
    derived.setdefault("data", {})["seed"] = spec.seed
    trainer = derived.setdefault("trainer", {})
    trainer["default_root_dir"] = str(spec.run_dir)
    trainer["logger"] = {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        # log_dir = save_dir/name/version = <root>/<allocator>/seed_<n>
        "init_args": {"save_dir": str(root), "name": spec.allocator, "version": f"seed_{spec.seed}"},
    }
    return derived


def _refuse_pinned_paths(recipe: Mapping[str, Any], bandit_init: Mapping[str, Any], path: str) -> None:
    """Every run writes into its own directory: a path the recipe fixes would be shared by all of
    them (one decision log for every run, checkpoints renamed ``last-v1.ckpt`` and not resumed)."""
    pinned = []
    if bandit_init.get("log_file"):
        pinned.append(f"{BANDIT}.init_args.log_file")
    for cb in (recipe.get("trainer") or {}).get("callbacks") or []:
        if isinstance(cb, dict) and str(cb.get("class_path", "")).endswith("ModelCheckpoint") \
                and (cb.get("init_args") or {}).get("dirpath"):
            pinned.append("ModelCheckpoint.init_args.dirpath")
    if (recipe.get("data") or {}).get("run_dir"):
        pinned.append("data.run_dir")
    if pinned:
        raise ValueError(f"{path}: {', '.join(pinned)} would be shared by every run of the comparison; leave "
                         "them unset so each run uses its own directory")


def check_overrides(overrides: Sequence[str]) -> None:
    for arg in overrides:
        if not arg.startswith("-"):
            continue
        key = arg.split("=", 1)[0].rstrip("+")  # "--trainer.callbacks+=X" appends to a reserved key
        # a reserved key, a key inside one, or a group holding one ("--data={seed: 5}")
        if any(key == r or key.startswith(r + ".") or r.startswith(key + ".") for r in _RESERVED) \
                or key in ("-c", "--config"):
            raise SystemExit(
                f"read-train compare: {key} cannot be passed through; compare sets it for every run "
                f"(reserved: {', '.join(_RESERVED)})"
            )


def load_recipe(path: str, command: str = "compare") -> dict[str, Any]:
    """The recipe at ``path`` as a mapping; a missing, malformed or non-mapping file ends
    ``read-train <command>`` with one line naming it."""

    def fail(message: str) -> SystemExit:
        return SystemExit(f"read-train {command}: config file {path!r} {message}")

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise fail("does not exist") from None
    except IsADirectoryError:
        raise fail("is a directory, not a recipe file") from None
    except yaml.YAMLError as err:
        raise fail(f"is not valid YAML:\n{err}") from None
    if not isinstance(doc, dict):
        raise fail("must hold a mapping")
    return doc


def what_it_measures(derived: Mapping[str, Any]) -> dict[str, Any]:
    """``derived`` without where the run lives (``trainer.default_root_dir`` and the logger, which
    compare sets from ``--out``): ``--out runs/x`` and its absolute spelling are one comparison."""
    out = json.loads(json.dumps(derived))
    trainer = out.get("trainer")
    if isinstance(trainer, dict):
        trainer.pop("default_root_dir", None)
        trainer.pop("logger", None)
    return out


def fingerprint(derived: Mapping[str, Any], overrides: Sequence[str]) -> str:
    blob = json.dumps({"recipe": what_it_measures(derived), "overrides": list(overrides)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys at which two recipes differ (lists compared whole)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new), key=str)
                for d in differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]
