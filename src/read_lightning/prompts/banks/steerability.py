"""Built-in steerability templates: tasks under verifiable format constraints."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from read_lightning.prompts.banks.vocabulary import _AUDIENCES, _TONES, _TOPICS
from read_lightning.prompts.slots import _BUILTIN, Fill, Template, _ri

# -- steerability: tasks under verifiable format constraints ----------------------------------

_KEYWORDS = ("window", "silver", "promise", "journey", "balance", "garden", "signal", "harvest",
             "compass", "lantern", "thread", "echo", "bridge", "ember", "anchor", "puzzle", "orbit")
_OPENERS = ("Today", "Imagine", "Honestly", "Listen", "Remember", "First", "Dear", "Look", "Picture", "Well")
_CLOSERS = ("Is there anything else I can help with?", "Thanks for reading.", "That is all for now.",
            "Let me know what you think.", "See you soon.", "Stay curious.")


def _constraints(rng: random.Random, k: int) -> tuple[list[str], list[dict[str, Any]]]:
    """``k`` mutually compatible, mechanically checkable constraints (IFEval-style)."""
    groups = {
        "case": ("lowercase", "uppercase"), "length": ("max_words", "min_words", "max_sentences"),
        "layout": ("bullets", "paragraphs"), "start": ("starts_with", "quoted"), "end": ("ends_with", "postscript"),
        "words": ("keywords",), "avoid": ("forbidden",), "repeat": ("keyword_count",), "commas": ("no_commas",),
        "title": ("title",), "holes": ("placeholders",),
    }
    chosen = rng.sample(sorted(groups), min(k, len(groups)))
    texts, items = [], []
    kinds = [rng.choice(groups[g]) for g in chosen]
    if "quoted" in kinds and "end" in chosen:  # a closing quote cannot also be the closing phrase
        kinds = [c for c in kinds if c not in ("ends_with", "postscript")]
    for kind in kinds:
        if kind == "lowercase":
            texts.append("Write your entire reply in lowercase letters, with no capital letters at all.")
            items.append({"type": kind})
        elif kind == "uppercase":
            texts.append("Write your entire reply in capital letters.")
            items.append({"type": kind})
        elif kind == "max_words":
            n = rng.randrange(40, 201, 10)
            texts.append(f"Use at most {n} words.")
            items.append({"type": kind, "n": n})
        elif kind == "min_words":
            n = rng.randrange(50, 301, 10)
            texts.append(f"Use at least {n} words.")
            items.append({"type": kind, "n": n})
        elif kind == "max_sentences":
            n = rng.randint(2, 8)
            texts.append(f"Use no more than {n} sentences.")
            items.append({"type": kind, "n": n})
        elif kind == "bullets":
            n = rng.randint(2, 7)
            texts.append(f"Format the reply as exactly {n} bullet points starting with '- '.")
            items.append({"type": kind, "n": n})
        elif kind == "paragraphs":
            n = rng.randint(2, 5)
            texts.append(f"Write exactly {n} paragraphs separated by blank lines.")
            items.append({"type": kind, "n": n})
        elif kind == "starts_with":
            w = rng.choice(_OPENERS)
            texts.append(f"Begin your reply with the word '{w}'.")
            items.append({"type": kind, "text": w})
        elif kind == "quoted":
            texts.append("Wrap your entire reply in double quotation marks.")
            items.append({"type": kind})
        elif kind == "ends_with":
            w = rng.choice(_CLOSERS)
            texts.append(f"End your reply with the exact sentence '{w}'")
            items.append({"type": kind, "text": w})
        elif kind == "postscript":
            texts.append("Add a postscript at the end starting with 'P.S.'.")
            items.append({"type": kind})
        elif kind == "keywords":
            ws = rng.sample(_KEYWORDS, rng.randint(1, 3))
            texts.append(f"Include the word(s) {', '.join(repr(w) for w in ws)}.")
            items.append({"type": kind, "words": ws})
        elif kind == "forbidden":
            ws = rng.sample(("very", "really", "thing", "good", "nice", "important", "just", "also"), rng.randint(1, 2))
            texts.append(f"Do not use the word(s) {', '.join(repr(w) for w in ws)}.")
            items.append({"type": kind, "words": ws})
        elif kind == "keyword_count":
            w, n = rng.choice(_KEYWORDS), rng.randint(2, 4)
            texts.append(f"Use the word '{w}' at least {n} times.")
            items.append({"type": kind, "word": w, "n": n})
        elif kind == "no_commas":
            texts.append("Do not use any commas.")
            items.append({"type": kind})
        elif kind == "title":
            texts.append("Give it a title wrapped in double angular brackets, such as <<my title>>.")
            items.append({"type": kind})
        elif kind == "placeholders":
            n = rng.randint(1, 4)
            texts.append(f"Include at least {n} placeholder(s) in square brackets, such as [address].")
            items.append({"type": kind, "n": n})
    kinds = [item["type"] for item in items]
    if "max_sentences" in kinds:
        # n bullets or paragraphs take at least n sentences, and a title, a closing sentence or a
        # postscript one more each: raise the cap so the constraints can all be met
        layout = sum(item["n"] for item in items if item["type"] in ("bullets", "paragraphs"))
        floor = layout + sum(kind in kinds for kind in ("title", "ends_with", "postscript")) if layout else 0
        i = kinds.index("max_sentences")
        if items[i]["n"] < floor:
            items[i]["n"] = floor
            texts[i] = f"Use no more than {floor} sentences."
    return texts, items


_STEER_TASKS = {
    "steer_email": "Write an email to {who} about {topic}.",
    "steer_story": "Write a short story for {who} set in a world shaped by {topic}.",
    "steer_product": "Write a product description for a gadget related to {topic}, aimed at {who}.",
    "steer_poem": "Write a poem about {topic} that {who} would enjoy.",
    "steer_summary": "Summarise the main arguments for and against {topic} for {who}.",
    "steer_letter": "Write a letter to the editor about {topic}, signed by {who}.",
    "steer_post": "Write a social media post announcing an event about {topic} for {who}.",
    "steer_advice": "Give advice to {who} who wants to start with {topic}.",
    "steer_dialogue": "Write a dialogue between {who} and a friend discussing {topic}.",
    "steer_speech": "Write a short speech opening a conference on {topic}, addressed to {who}.",
    "steer_review": "Write a review of a book about {topic} for {who}.",
    "steer_plan": "Write a one-week plan for {who} to learn about {topic}.",
    "steer_faq": "Write an FAQ about {topic} for {who}.",
}


def _steer_filler(task: str) -> Callable[[random.Random, float], Fill]:
    def fill(rng: random.Random, h: float) -> Fill:
        k = _ri(rng, h, 1, 6)
        texts, items = _constraints(rng, k)
        base = task.format(who=rng.choice(_AUDIENCES), topic=rng.choice(_TOPICS))
        tone = rng.choice(("", f" Use a {rng.choice(_TONES)} tone."))
        return {"task": base + tone, "constraints": " ".join(texts)}, {"kind": "constraints", "items": items}, {"constraints": len(items)}

    return fill


for _name, _task in _STEER_TASKS.items():
    _BUILTIN.append(Template(_name, "steerability", "{task} {constraints}", _steer_filler(_task), "constraints"))
