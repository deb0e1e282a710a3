"""``read-train probe``: the capability profile of any causal LM directory, with a recipe's probes.

    read-train probe MODEL_DIR --config recipes/smollm2-135m.yaml [--output profile.json]
    read-train probe --include-path      # the packaged probes' directory, for lm_eval --include_path

The probes are the recipe's ``CapabilityProbeCallback`` settings (its lm-eval ``tasks``, the
packaged probe sets for the other capabilities, limits, batch size, seed), so a teacher, a
student and any checkpoint are measured as a run measures them, without a run. The paths, the
recipe and every probe (task names, metrics, limits, data files) are checked before the model
loads.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["probe_main", "recipe_probe_settings"]

_CALLBACK = "CapabilityProbeCallback"


def recipe_probe_settings(recipe: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(probe callback init_args, data init_args)`` of a recipe YAML; ``{}`` where it has none."""
    import yaml

    path = Path(recipe)
    if not path.is_file():
        raise ValueError(f"recipe {str(recipe)!r} does not exist")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"recipe {str(recipe)!r} is not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ValueError(f"recipe {str(recipe)!r} is not a mapping of config keys")
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    probe = next((cb.get("init_args") or {} for cb in callbacks
                  if isinstance(cb, dict) and str(cb.get("class_path", "")).endswith(_CALLBACK)), {})
    return dict(probe), dict(config.get("data") or {})


def _model_dir(path: str) -> Path:
    d = Path(path).expanduser()
    if not d.is_dir():
        raise ValueError(f"model directory {path!r} does not exist")
    if not (d / "config.json").is_file():
        raise ValueError(f"model directory {path!r} has no config.json: not a Hugging Face model directory")
    return d


def _build_probes(settings: dict[str, Any], data: dict[str, Any], references: str | None) -> tuple[Any, Any, list[str], str]:
    """The packaged probe, the lm-eval task probe and the capability order, as the callback builds them."""
    from read_lightning.core.capabilities import DEFAULT_CAPABILITIES
    from read_lightning.evaluation.harness import HarnessProbe
    from read_lightning.evaluation.probes import CapabilityProbe

    caps = list(settings.get("capabilities") or data.get("capabilities") or DEFAULT_CAPABILITIES)
    batch_size = int(settings.get("batch_size", 16))
    harness = None
    if settings.get("tasks"):
        harness = HarnessProbe(settings["tasks"], include_path=settings.get("include_path"), batch_size=batch_size,
                               seed=int(settings.get("seed", 0)),
                               apply_chat_template=bool(settings.get("apply_chat_template", False)),
                               allow_code_execution=bool(settings.get("allow_code_execution", False)))
        extra = sorted(set(harness.capabilities) - set(caps))
        if extra:
            raise ValueError(f"probe tasks name capabilities {extra} that are not probed ({caps})")
    rest = [c for c in caps if harness is None or c not in harness.capabilities]
    packaged, source = None, "gold"
    if rest:
        packaged = CapabilityProbe(rest, batch_size=batch_size, limit=settings.get("limit"),
                                   data_dir=settings.get("data_dir") or data.get("probe_data_dir"))
        recipe_refs = settings.get("references", "teacher")
        chosen = references or (recipe_refs if recipe_refs not in ("teacher", "gold") else None)
        if chosen:
            packaged.load_references(chosen)
            source = chosen
        elif recipe_refs == "teacher":
            source = "gold (the recipe scores teacher references; pass --references <cached JSONL> to use them)"
    return packaged, harness, caps, source


def probe_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="read-train probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="?", help="a Hugging Face causal LM directory (config.json, weights, tokenizer)")
    parser.add_argument("--config", help="recipe YAML whose CapabilityProbeCallback settings define the probes")
    parser.add_argument("--output", help="where to save the profile JSON (default: ./<model dir name>.profile.json)")
    parser.add_argument("--references", help="teacher-reference JSONL for the packaged probes (default: the recipe's, else gold)")
    parser.add_argument("--dtype", default="float32", help="dtype to load the model in (default: float32)")
    parser.add_argument("--device", default=None, help="device (default: cuda if available, else cpu)")
    parser.add_argument("--include-path", action="store_true",
                        help="print the packaged probes' directory (for lm_eval --include_path) and exit")
    args = parser.parse_args(argv)
    if args.include_path:
        from read_lightning.evaluation.probes import PROBE_DATA_DIR

        print(PROBE_DATA_DIR)
        return 0
    try:
        if args.model_dir is None:
            raise ValueError("give a MODEL_DIR to probe (or --include-path)")
        if args.config is None:
            raise ValueError("give the recipe whose probes to run: --config RECIPE")
        model_dir = _model_dir(args.model_dir)
        if args.references is not None and not Path(args.references).is_file():
            raise ValueError(f"--references {args.references!r} does not exist")
        from read_lightning.teachers.models import resolve_dtype

        resolve_dtype(args.dtype)
        settings, data = recipe_probe_settings(args.config)
        packaged, harness, caps, source = _build_probes(settings, data, args.references)
    except ValueError as err:
        raise SystemExit(f"read-train probe: {err}") from None
    profile, stderr, details = _measure(model_dir, packaged, harness, caps, args.dtype, args.device)
    out = Path(args.output) if args.output else Path.cwd() / f"{model_dir.resolve().name}.profile.json"
    record = {"model": str(model_dir.resolve()), "recipe": str(Path(args.config).resolve()), "references": source,
              "profile": profile, "stderr": stderr, "mean": sum(profile.values()) / len(profile), "details": details}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(_table(profile, stderr, details))
    print(f"\npackaged probes scored against: {source}")
    print(f"saved: {out}")
    return 0


def _measure(model_dir: Path, packaged: Any, harness: Any, caps: list[str], dtype: str, device: str | None) -> tuple:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from read_lightning.evaluation.harness import measure_profile
    from read_lightning.teachers.models import resolve_dtype

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=resolve_dtype(dtype))
    model.to(device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    profile, stderr = measure_profile(packaged, harness, caps, model, tokenizer)
    details: dict[str, Any] = {}
    if packaged is not None:
        details.update(packaged.last_details)
    if harness is not None:
        details.update(harness.last_details)
    return profile, stderr, details


def _table(profile: dict[str, float], stderr: dict[str, float], details: dict[str, Any]) -> str:
    rows = [f"{'capability':<20} {'score':>7} {'stderr':>7}  measured by"]
    for cap, score in profile.items():
        err = f"{stderr[cap]:7.2f}" if cap in stderr else f"{'-':>7}"
        tasks = details.get(cap, {}).get("tasks")
        how = ", ".join(f"{t} ({d['metric']}, n={d['n']})" for t, d in tasks.items()) if tasks else (
            f"packaged probe (fidelity, n={int(details.get(cap, {}).get('n', 0))})")
        rows.append(f"{cap:<20} {score:7.2f} {err}  {how}")
    rows.append(f"{'mean':<20} {sum(profile.values()) / len(profile):7.2f}")
    return "\n".join(rows)
