"""Where an interval's prompts come from: the capability prompt source and the task's own inputs,
each with the prompts training must never see (probe and evaluation prompts) left out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from read_lightning.core.jsonl import iter_jsonl
from read_lightning.prompts.task_pool import TaskPromptPool
from read_lightning.teachers.generation import PromptSource, StaticPromptSource

__all__ = ["build_prompt_source", "held_out_hashes", "jsonl_prompt_source", "load_task_pool"]

log = logging.getLogger(__name__)


def jsonl_prompt_source(
    path: str, capabilities: Sequence[str], held_out: set[str] | frozenset[str] = frozenset()
) -> StaticPromptSource:
    """Per-capability pools from a JSONL file of ``{"capability", "prompt"}`` rows.

    Rows whose prompt hash is in ``held_out`` (probe and evaluation prompts) are dropped with a
    warning, as the template library drops them. Every capability must keep at least one prompt:
    a mixture may put weight on any of them.
    """
    from read_lightning.prompts.leakage import prompt_hash

    pools: dict[str, list[str]] = {c: [] for c in capabilities}
    dropped: list[int] = []
    for lineno, row in iter_jsonl(path):
        cap, text = row.get("capability"), row.get("prompt")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}:{lineno}: row has no 'prompt' string")
        if not isinstance(cap, str) or cap not in pools:
            raise ValueError(f"{path}:{lineno}: unknown capability {cap!r}; expected one of {list(pools)}")
        if prompt_hash(text) in held_out:
            dropped.append(lineno)
            continue
        pools[cap].append(text)
    if dropped:
        log.warning("%s: dropped %d prompt(s) that are probe or evaluation prompts (lines %s); training never sees them",
                    path, len(dropped), ", ".join(map(str, dropped[:10])) + (", ..." if len(dropped) > 10 else ""))
    empty = [c for c, pool in pools.items() if not pool]
    if empty:
        raise ValueError(
            f"prompt_source {path!r} has no usable prompts for capabilities {empty}"
            + (f" ({len(dropped)} held-out prompt(s) were dropped)" if dropped else "")
            + "; add rows for them or leave them out of `capabilities`"
        )
    return StaticPromptSource(pools)


def build_prompt_source(name: str, capabilities: Sequence[str], extra_templates: str | None,
                        held_out: set[str], seed: int) -> PromptSource:
    """``"templates"``: the built-in template library (with ``extra_templates``); otherwise a
    JSONL file of ``{"capability", "prompt"}`` rows. ``held_out`` prompts are never drawn."""
    if name == "templates":
        from read_lightning.prompts.library import TemplateLibrary

        return TemplateLibrary(capabilities=list(capabilities), extra=extra_templates, leakage_hashes=held_out,
                               seed=seed)
    if not Path(name).is_file():
        raise FileNotFoundError(f"prompt_source {name!r} is neither 'templates' nor an existing JSONL file")
    return jsonl_prompt_source(name, capabilities, held_out)


def load_task_pool(task_prompts: str, card_path: Path | None, capabilities: Sequence[str], held_out: set[str],
                   seed: int) -> TaskPromptPool:
    """The task's own inputs: the train split of the card at ``card_path``, or (None) the JSONL
    file ``task_prompts``."""
    if card_path is None:
        return TaskPromptPool.from_jsonl(task_prompts, held_out, seed)
    from read_lightning.requirement.cards import load_card

    return TaskPromptPool.from_card(load_card(str(card_path), list(capabilities)), held_out, seed)


def held_out_hashes(capabilities: Sequence[str], probe_data_dir: str | None, leakage_hashes: str | None) -> set[str]:
    """Prompts training must never see: the packaged probe items, the dev and test questions
    of every packaged task card, plus the user's hash file.

    Probes measure the profile the bandit learns from, and task splits the student a user
    gets; a held-out prompt in the training data would reward memorisation instead of
    capability. A user's own card is held out with ``read-train leakage``'s hash file.
    """
    from read_lightning.evaluation.probes import probe_file, probe_items
    from read_lightning.evaluation.tasks import TaskCard, list_example_tasks
    from read_lightning.prompts.leakage import load_hash_set, prompt_hash

    hashes = {
        prompt_hash(item["prompt"])
        for cap in capabilities
        if probe_file(cap, ".jsonl", probe_data_dir).is_file()
        for item in probe_items(cap, probe_data_dir)
    }
    for path in list_example_tasks():
        card = TaskCard.load(path, check_data=False)
        hashes |= {prompt_hash(card.user_message(row)) for split in ("dev", "test") for row in card.rows(split)}
    if leakage_hashes:
        hashes |= set(load_hash_set(leakage_hashes))
    return hashes
