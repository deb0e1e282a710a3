"""Configuration keys, checked before anything is built, and class parameters read from source.

A key that a run does not accept is refused with its name, where it is, the nearest accepted key
("did you mean") and the keys accepted beside it. The accepted keys come from the real parser
(after Lightning is imported) or, before any import, from :func:`source_parameters`, which reads
a constructor's parameters from the class's source file with ``ast``: ``read-train`` refuses a
typo in well under a second instead of after the 5 s import of Lightning on 2 cores.

Imports nothing outside the standard library.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["check_keys", "source_parameters", "unknown_key"]

# The parameters of a class named by a ``class_path``, or None when they cannot be known.
Parameters = Callable[[str], "set[str] | None"]


def check_keys(docs: Iterable[tuple[str, dict[str, Any]]], overrides: Iterable[str], keys: set[str],
               parameters: Parameters | None = None) -> str | None:
    """The message for the first key not accepted, or None when every key is.

    ``docs`` are ``(where, mapping)`` of the config files, ``overrides`` the dotted keys given on
    the command line (``trainer.max_epochs``), ``keys`` the dotted keys accepted. A key below an
    accepted key that has no keys of its own (``trainer.logger.init_args.name``) is that value's
    type to judge, not this check's. With ``parameters``, the ``init_args`` of each
    ``class_path`` entry are checked against what it returns for the class (None: not checked).
    """
    for source, doc in docs:
        message = _check_mapping(doc, "", keys, source, parameters)
        if message:
            return message
    for key in overrides:
        if not _accepted_override(key, keys):
            return unknown_key(key, keys, "on the command line", flag=True)
    return None


def _check_mapping(doc: dict[str, Any], prefix: str, keys: set[str], source: str,
                   parameters: Parameters | None) -> str | None:
    for key, value in doc.items():
        path = f"{prefix}{key}"
        deeper = any(k.startswith(path + ".") for k in keys)
        if isinstance(value, dict) and deeper and "class_path" not in value:
            message = _check_mapping(value, path + ".", keys, source, parameters)
        elif path in keys:
            message = _check_init_args(value, path, source, parameters, keys) if parameters else None
        else:
            message = unknown_key(path, keys, f"in {source}")
        if message:
            return message
    return None


def _accepted_override(key: str, keys: set[str]) -> bool:
    if key in keys:
        return True
    parts = key.split(".")
    for i in range(1, len(parts)):
        prefix = ".".join(parts[:i])
        # a key under a class-typed entry (--trainer.logger.init_args.name) is the class's to check;
        # a section (model, data, trainer) has keys of its own below it
        if prefix in keys and not any(k.startswith(prefix + ".") and k != prefix + ".help" for k in keys):
            return True
    return False


def _check_init_args(value: Any, path: str, source: str, parameters: Parameters,
                     keys: set[str] = frozenset()) -> str | None:
    """The message for the first ``init_args`` key of a ``class_path`` entry in ``value`` (one or
    a list) that its class does not take; a key of ``keys`` with its name is suggested (a
    teacher spec's ``temperature`` is ``data.temperature``)."""
    for item in value if isinstance(value, list) else [value]:
        if not (isinstance(item, dict) and isinstance(item.get("class_path"), str)
                and isinstance(item.get("init_args"), dict)):
            continue
        accepted = parameters(item["class_path"])
        if accepted is None:
            continue  # the class's own parser says what it accepts
        name = item["class_path"].rpartition(".")[2]
        for arg in item["init_args"]:
            if arg not in accepted:
                return unknown_key(arg, accepted, f"in {source}", owner=f"{path}: {name}", elsewhere=keys)
    return None


def unknown_key(key: str, keys: Iterable[str], where: str, *, owner: str | None = None, flag: bool = False,
                elsewhere: Iterable[str] = ()) -> str:
    """A few lines: the unknown key and where it is, the nearest accepted key (or a key of
    ``elsewhere`` of the same name), the keys accepted beside it."""
    keys = set(keys)
    dash = "--" if flag else ""
    parent, _, leaf = key.rpartition(".")
    siblings = sorted(k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent and k != "config")
    guess = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if guess:
        guess = [f"{parent}.{guess[0]}" if parent else guess[0]]
    else:  # the right key in the wrong section (data.lr for model.lr)
        guess = sorted(k for k in {*keys, *elsewhere} if k.rpartition(".")[2] == leaf and k != key)[:1]
    head = f"{owner} does not accept {key!r}" if owner else f"unknown configuration key '{dash}{key}'"
    lines = [f"{head} ({where})"]
    if guess:
        lines.append(f"  did you mean '{dash}{guess[0]}'?")
    scope = owner or (f"{parent!r}" if parent else "the top level")
    lines.append(textwrap.fill(f"{scope} accepts: {', '.join(siblings)}", width=100,
                               initial_indent="  ", subsequent_indent="    "))
    return "\n".join(lines)


# --------------------------------------------------------------------------- signatures from source
def source_parameters(class_path: str, method: str = "__init__", *, decorated: bool = False) -> set[str] | None:
    """The names of the parameters of ``method`` of the class at ``class_path`` (``pkg.mod.Class``),
    read from the source, importing nothing; ``self`` and ``*args`` are left out.

    None when the source cannot say for sure: the module's file is not found, the name is bound
    more than once or otherwise than by a class statement or a ``from ... import``, the class is
    decorated or defines ``__new__`` or a metaclass, ``method`` is inherited, defined more than
    once, takes ``**kwargs``, or is decorated (unless ``decorated``: the caller knows the decorator
    keeps the signature).
    """
    module, _, name = class_path.rpartition(".")
    node = _find_class(module, name, depth=0)
    if node is None or node.decorator_list or any(k.arg == "metaclass" for k in node.keywords):
        return None
    defs = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if any(n.name == "__new__" for n in defs):
        return None
    found = [n for n in defs if n.name == method]
    if len(found) != 1 or (found[0].decorator_list and not decorated) or found[0].args.kwarg is not None:
        return None
    args = found[0].args
    return {a.arg for a in [*args.posonlyargs, *args.args][1:] + args.kwonlyargs}


def _find_class(module: str, name: str, depth: int) -> ast.ClassDef | None:
    """The class statement that binds ``name`` in ``module``, following ``from ... import`` re-exports."""
    path = _module_file(module)
    if path is None or depth > 8:
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    bindings = [node for node in _module_level(tree.body) if _bound_names(node) & {name, "*"}]
    if len(bindings) != 1:  # bound twice, or maybe by a star import: the value is decided at run time
        return None
    node = bindings[0]
    if isinstance(node, ast.ClassDef):
        return node
    if not isinstance(node, ast.ImportFrom):
        return None
    alias = next(a for a in node.names if (a.asname or a.name) == name)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    source = ".".join(p for p in (package if node.level else "", node.module or "") if p)
    return _find_class(source, alias.name, depth + 1)


def _module_level(body: list[Any]) -> Iterable[ast.AST]:
    """The statements run at import: ``body`` and the blocks of its ``if``/``try``/``with``/loops,
    not the bodies of functions and classes."""
    for node in body:
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from _module_level(getattr(node, field, []) or [])


def _bound_names(node: ast.AST) -> set[str]:
    """The names a module-level statement binds itself, not in the blocks below it (``*`` for a
    star import: it may bind any)."""
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {"*" if a.name == "*" else (a.asname or a.name).split(".")[0] for a in node.names}
    names = {node.name} if isinstance(node, ast.ExceptHandler) and node.name else set()
    for field, value in ast.iter_fields(node):
        if field in ("body", "orelse", "finalbody", "handlers"):
            continue
        for child in value if isinstance(value, list) else [value]:
            if isinstance(child, ast.AST):
                names |= {n.id for n in ast.walk(child) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def _module_file(module: str) -> Path | None:
    """The source file of ``module``, found without importing it or its packages (``find_spec``
    of a dotted name would import the packages above it)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for base in spec.submodule_search_locations or []:
        folder = Path(base).joinpath(*rest[:-1])
        for candidate in (folder / rest[-1] / "__init__.py", folder / f"{rest[-1]}.py"):
            if candidate.is_file():
                return candidate
    return None
