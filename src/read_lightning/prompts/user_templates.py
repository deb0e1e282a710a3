"""User-defined templates from YAML or JSONL files (:func:`load_templates`)."""

from __future__ import annotations

import os
import random
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from read_lightning.core.jsonl import iter_jsonl
from read_lightning.prompts.slots import ChoiceSlot, Fill, FloatSlot, IntSlot, Slot, Template, WordsSlot

__all__ = ["load_templates"]


# --------------------------------------------------------------------------------------------
# User-defined templates from YAML or JSONL
# --------------------------------------------------------------------------------------------

_TEMPLATE_KEYS = {"name", "capability", "scaffold", "slots", "formats", "verifier", "difficulty"}
_SLOT_KEYS = {
    "int": {"type", "min", "max"},
    "float": {"type", "min", "max", "digits"},
    "choice": {"type", "values"},
    "words": {"type", "values", "k", "sep"},
}
_USER_VERIFIERS = {"contains", "regex", "number", "choice"}


class _UserFiller:
    """Fills a user template's typed slots; picklable and deterministic given the rng."""

    def __init__(self, slots: dict[str, Slot], formats: list[str], verifier: dict[str, Any] | None,
                 difficulty: list[str]) -> None:
        self.slots, self.formats, self.verifier, self.difficulty = slots, formats, verifier, difficulty

    def __call__(self, rng: random.Random, hint: float) -> Fill:
        values: dict[str, Any] = {}
        factors: dict[str, float] = {}
        for name, slot in self.slots.items():
            values[name], factor = slot.draw(rng, hint)
            if factor is not None and name in self.difficulty:
                factors[name] = factor
        if self.formats:
            values["format"] = rng.choice(self.formats)
        check = None
        if self.verifier:
            kind = self.verifier["type"]
            value = str(self.verifier["value"]).format(**values)
            if kind == "number":
                check = {"kind": "number", "value": float(value), "rel_tol": float(self.verifier.get("tolerance", 1e-6))}
            elif kind == "contains":
                check = {"kind": "contains", "values": [value]}
            elif kind == "regex":
                # slot values are literal text inside the user's pattern
                pattern = str(self.verifier["value"]).format(**{k: re.escape(str(v)) for k, v in values.items()})
                check = {"kind": "regex", "pattern": pattern}
            else:
                opts = [str(o).format(**values) for o in self.verifier.get("options", [])] or [value]
                check = {"kind": "choice", "value": value, "options": {o: [o] for o in opts}}
        return values, check, factors


def _parse_slot(spec: Any, where: str) -> Slot:
    if not isinstance(spec, Mapping) or spec.get("type") not in _SLOT_KEYS:
        raise ValueError(f"{where}: a slot needs 'type' in {sorted(_SLOT_KEYS)!r}, got {spec!r}")
    kind = spec["type"]
    extra = set(spec) - _SLOT_KEYS[kind]
    if extra:
        raise ValueError(f"{where}: unknown keys {sorted(extra)!r} for a {kind} slot (allowed {sorted(_SLOT_KEYS[kind])!r})")
    try:
        if kind in ("int", "float"):
            lo, hi = spec["min"], spec["max"]
            cast = int if kind == "int" else float
            if isinstance(lo, bool) or isinstance(hi, bool) or cast(lo) != lo or cast(hi) != hi:
                raise ValueError(f"'min'/'max' must be {kind}s")
            if lo > hi:
                raise ValueError(f"'min' ({lo}) is larger than 'max' ({hi})")
            if kind == "int":
                return IntSlot(int(lo), int(hi))
            return FloatSlot(float(lo), float(hi), int(spec.get("digits", 2)))
        values = spec["values"]
        if not isinstance(values, list) or not values:
            raise ValueError("'values' must be a non-empty list")
        if kind == "choice":
            return ChoiceSlot(tuple(values))
        k = spec.get("k", [1, min(3, len(values))])
        k_min, k_max = (k, k) if isinstance(k, int) else tuple(k)
        if not 1 <= k_min <= k_max <= len(values):
            raise ValueError(f"'k' must satisfy 1 <= k_min <= k_max <= {len(values)}, got {k!r}")
        return WordsSlot(tuple(str(v) for v in values), int(k_min), int(k_max), str(spec.get("sep", ", ")))
    except KeyError as err:
        raise ValueError(f"{where}: missing field {err.args[0]!r} for a {kind} slot") from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


_USER_VERIFIER_KEYS = {"type", "value", "options", "tolerance"}


def _check_user_verifier(verifier: Mapping[str, Any], slots: Mapping[str, Slot], where: str) -> None:
    """Refuse at load time what would fail, or never verify, only once prompts are drawn."""
    extra = set(verifier) - _USER_VERIFIER_KEYS
    if extra:
        raise ValueError(f"{where}: field 'verifier' has unknown key(s) {sorted(extra)!r}; "
                         f"allowed keys are {sorted(_USER_VERIFIER_KEYS)!r}")
    options = verifier.get("options")
    if options is not None and (not isinstance(options, list) or not all(isinstance(o, (str, int, float)) for o in options)):
        raise ValueError(f"{where}: field 'verifier.options' must be a list of strings, got {options!r}")
    tolerance = verifier.get("tolerance")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or tolerance < 0):
        raise ValueError(f"{where}: field 'verifier.tolerance' must be a number >= 0, got {tolerance!r}")
    for key, text in [("value", verifier["value"]), *((f"options[{i}]", o) for i, o in enumerate(options or []))]:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(str(text)) if f is not None]
        except ValueError as err:
            raise ValueError(f"{where}: field 'verifier.{key}' is not a valid format string: {err}") from None
        for name in fields:
            if not name or name.isdigit():
                raise ValueError(f"{where}: field 'verifier.{key}' has a positional placeholder {{{name}}}; "
                                 f"write literal braces doubled, e.g. {{{{{name or 3}}}}} in a regex")
            if name.split(".")[0].split("[")[0] not in slots:
                raise ValueError(f"{where}: field 'verifier.{key}' uses placeholder {{{name}}} with no slot defined "
                                 f"(slots: {sorted(slots)!r})")
    value = str(verifier["value"])
    single = re.fullmatch(r"\{(\w+)\}", value)
    if verifier["type"] == "choice" and options and single and isinstance(slots.get(single.group(1)), ChoiceSlot):
        fixed = {str(o) for o in options if "{" not in str(o)}
        outside = [v for v in slots[single.group(1)].values if str(v) not in fixed]
        if len(fixed) == len(options) and outside:
            raise ValueError(f"{where}: field 'verifier.value' {value!r} can be {outside!r}, which 'verifier.options' "
                             f"{options!r} does not list, so such prompts could never verify")


def _parse_template(entry: Any, where: str) -> Template:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: a template must be a mapping, got {type(entry).__name__}")
    extra = set(entry) - _TEMPLATE_KEYS
    if extra:
        raise ValueError(f"{where}: unknown field(s) {sorted(extra)!r}; allowed fields are {sorted(_TEMPLATE_KEYS)!r}")
    for key in ("name", "capability", "scaffold"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {entry.get(key)!r}")
    if not re.fullmatch(r"[A-Za-z_][\w.-]*", entry["capability"]):
        raise ValueError(f"{where}: field 'capability' must be an identifier, got {entry['capability']!r}")
    slots_spec = entry.get("slots") or {}
    if not isinstance(slots_spec, Mapping):
        raise ValueError(f"{where}: field 'slots' must be a mapping of slot name to spec")
    slots = {str(k): _parse_slot(v, f"{where}: field 'slots.{k}'") for k, v in slots_spec.items()}
    formats = entry.get("formats") or []
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise ValueError(f"{where}: field 'formats' must be a list of strings")
    available = set(slots) | ({"format"} if formats else set())
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(entry["scaffold"]) if f is not None}
    except ValueError as err:
        raise ValueError(f"{where}: field 'scaffold' is not a valid format string: {err}") from None
    missing = sorted(u for u in used if u.split(".")[0].split("[")[0] not in available)
    if missing:
        raise ValueError(f"{where}: field 'scaffold' uses placeholders {missing!r} with no slot defined")
    verifier = entry.get("verifier")
    if verifier is not None:
        if not isinstance(verifier, Mapping) or verifier.get("type") not in _USER_VERIFIERS or "value" not in verifier:
            raise ValueError(
                f"{where}: field 'verifier' must be a mapping with 'type' in {sorted(_USER_VERIFIERS)!r} and 'value'"
            )
        _check_user_verifier(verifier, slots, where)
    difficulty = entry.get("difficulty")
    if difficulty is None:
        difficulty = [k for k, s in slots.items() if not isinstance(s, ChoiceSlot)]
    elif not isinstance(difficulty, list) or any(d not in slots for d in difficulty):
        raise ValueError(f"{where}: field 'difficulty' must list slot names from {sorted(slots)!r}, got {difficulty!r}")
    filler = _UserFiller(slots, list(formats), dict(verifier) if verifier else None, list(difficulty))
    return Template(entry["name"], entry["capability"], entry["scaffold"], filler, verifier["type"] if verifier else None)


def load_templates(path: str | os.PathLike[str]) -> list[Template]:
    """Read user templates from YAML (a list, or a mapping with key ``templates``) or JSONL.

    Each template has ``name``, ``capability``, ``scaffold`` (``{slot}`` placeholders), ``slots``
    (``{type: int, min, max}``, ``{type: float, min, max, digits}``, ``{type: choice, values}``,
    ``{type: words, values, k: [lo, hi], sep}``) and optionally ``formats`` (format constraints,
    one drawn into ``{format}``), ``verifier`` (``{type: contains|regex|number|choice, value:
    "{slot}"}``) and ``difficulty`` (slot names used as control factors; default: every
    non-choice slot). Errors name the file, the line (or row) and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"template file {str(path)!r} does not exist")
    entries: list[tuple[Any, str]] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        entries = [(row, f"{path}:{lineno}") for lineno, row in iter_jsonl(path)]
    else:
        import yaml  # only user template files need YAML

        text = path.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text)
            node = yaml.compose(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ValueError(f"{path}{line}: invalid YAML: {getattr(err, 'problem', err)}") from None
        if isinstance(data, Mapping) and "templates" in data:
            data = data["templates"]
            node = next(v for k, v in node.value if k.value == "templates")
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of templates (or a mapping with key 'templates')")
        for i, item in enumerate(data):
            line = node.value[i].start_mark.line + 1
            entries.append((item, f"{path}:{line} (template #{i + 1})"))
    if not entries:
        raise ValueError(f"{path}: no templates found")
    templates, seen = [], {}
    for item, where in entries:
        template = _parse_template(item, where)
        if template.name in seen:
            raise ValueError(f"{where}: field 'name': template {template.name!r} is already defined at {seen[template.name]}")
        seen[template.name] = where
        templates.append(template)
    return templates
