"""The package layout of docs/architecture.md: imports point down, the core imports no framework."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "src" / "read_lightning"
# docs/architecture.md, "Import direction": a part imports only parts of a lower rank.
RANK = {"core": 0, "allocation": 1, "teachers": 1, "evaluation": 2, "prompts": 3, "requirement": 4,
        "training": 5, "reporting": 6, "cli": 7}
# The two drivers that run whole training jobs (docs/architecture.md says why).
DRIVERS = {"read_lightning.requirement.interventions": {"training"}, "read_lightning.reporting.compare": {"cli"}}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "resources" in path.relative_to(PACKAGE).parts:
            continue  # packaged data, with the scripts that write it: not part of the package's code
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _imports(tree: ast.Module) -> set[str]:
    """Every module imported anywhere in ``tree`` (lazy imports inside functions included)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "read_lightning" and len(parts) > 1 and parts[1] in RANK else None


MODULES = _modules()


def test_every_module_belongs_to_a_part():
    assert {name for name in MODULES if _part(name) is None} == {"read_lightning"}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_point_down(name):
    own = _part(name)
    if own is None:
        return  # the package's lazy re-exports
    upward = {
        _part(target) for target in _imports(MODULES[name])
        if _part(target) not in (None, own) and RANK[_part(target)] >= RANK[own]
    }
    assert upward <= DRIVERS.get(name, set()), f"{name} imports {sorted(upward)}, which are not below {own}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _part(n) in ("core", "allocation")))
def test_the_pure_core_imports_no_framework(name):
    heavy = {m.split(".")[0] for m in _imports(MODULES[name])} & {"torch", "lightning", "transformers"}
    assert not heavy, f"{name} imports {sorted(heavy)}"
    if _part(name) == "core":
        assert not {m.split(".")[0] for m in _imports(MODULES[name])} & {"numpy"}, name


def test_the_public_names_resolve():
    import read_lightning

    for name in read_lightning.__all__:
        assert getattr(read_lightning, name) is not None, name
