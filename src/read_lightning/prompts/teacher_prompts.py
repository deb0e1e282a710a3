"""What the teacher is asked when it is not shown the student's prompt as it is: prompt wrappers.

A wrapper is a template holding ``{prompt}`` once; the teacher answers the filled template while
the student trains on the plain prompt followed by that answer. The chain-of-thought wrapper
(``cot``) asks the teacher to reason step by step before its final answer, so the student learns to
produce the reasoning without being asked for it: the task and probe prompts it is scored on are
plain.

Pure string functions: the data module (``data.teacher_prompt``) and ``read-train compare``'s
``cot_*`` baselines use them.
"""

from __future__ import annotations

__all__ = ["CHAIN_OF_THOUGHT", "PLACEHOLDER", "TEACHER_PROMPTS", "resolve_teacher_prompt", "wrap_prompt"]

PLACEHOLDER = "{prompt}"

# Kojima et al.'s zero-shot trigger, with the final answer asked for last, so that answer rules that
# read the last line or the last number (the task cards' rules) find it.
CHAIN_OF_THOUGHT = (
    "{prompt}\n\nLet's think step by step. Write your reasoning first, then give the final answer on its own last line."
)

# Packaged wrappers by name; a recipe may name one or give its own template.
TEACHER_PROMPTS: dict[str, str] = {"cot": CHAIN_OF_THOUGHT}


def resolve_teacher_prompt(template: str | None) -> str | None:
    """The template ``template`` stands for: a packaged wrapper's text for its name (``"cot"``), a
    template holding ``{prompt}`` exactly once as it is, None (no wrapper) for None.

    Raises:
        ValueError: naming the value, for a string that is neither.
    """
    if template is None:
        return None
    if not isinstance(template, str):
        raise ValueError(f"teacher_prompt must be a string, got {type(template).__name__}")
    if template in TEACHER_PROMPTS:
        return TEACHER_PROMPTS[template]
    count = template.count(PLACEHOLDER)
    if count != 1:
        raise ValueError(
            f"teacher_prompt {template!r} is neither a packaged wrapper ({', '.join(TEACHER_PROMPTS)}) nor a template "
            f"holding {PLACEHOLDER} exactly once (it holds it {count} times)"
        )
    return template


def wrap_prompt(template: str | None, text: str) -> str:
    """``text`` as the teacher is asked it: ``template`` with ``{prompt}`` replaced by ``text``, or
    ``text`` itself without a template (a resolved template; see :func:`resolve_teacher_prompt`).

    Plain replacement, not ``str.format``: braces in the prompt or the template (JSON, code) stay
    as they are.
    """
    return text if template is None else template.replace(PLACEHOLDER, text, 1)
