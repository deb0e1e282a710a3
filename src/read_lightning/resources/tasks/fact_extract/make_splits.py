"""Writes the fact_extract splits: a one-sentence passage and a question about one fact in it.

Deterministic (seeded): ``python make_splits.py`` rewrites dev.jsonl and test.jsonl beside this
file, 200 rows each, and no question appears in both; then train.jsonl, 1,000 questions
without answers (the inputs a run distils on, ``data.task_prompts``), none in dev or test. The question kinds are the ones the
embedded teacher answers well (who bought, where to, how many, how old, how much paid); measured
greedily with the card's own rule, it is right on 85% of the test split (docs/results.md).
"""

from __future__ import annotations

import random
from pathlib import Path

from read_lightning.core.jsonl import write_jsonl_atomic

NAMES = ["Maria", "Tom", "Aisha", "Lucas", "Emma", "Omar", "Sofia", "Daniel", "Yuki", "Ravi", "Nina", "Peter",
         "Chen", "Fatima", "Jonas", "Leila", "Marco", "Anna", "Kofi", "Elena"]
CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Tokyo", "Cairo", "Lima", "Oslo", "Dublin", "Vienna", "Seoul",
          "Nairobi", "Lisbon", "Prague", "Toronto", "Sydney"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
OBJECTS = ["bike", "car", "hat", "coat", "bag", "lamp", "chair", "kite", "clock", "guitar"]
FORMAT = "End your reply with a line of the form 'Answer: <word>'."
ROWS_PER_SPLIT = 200
TRAIN_ROWS = 1000  # task inputs to distil on (questions only: the teacher answers them)


def item(rng: random.Random) -> tuple[str, str, str]:
    """(passage, question, gold answer) of one random row."""
    n, _ = rng.sample(NAMES, 2)
    o = rng.choice(OBJECTS)
    c, c2 = rng.sample(CITIES, 2)
    d = rng.choice(DAYS)
    k = rng.randint(2, 60)
    kind = rng.randrange(5)
    if kind == 0:
        s = rng.choice([f"{n} bought a {o} in {c}.", f"In {c}, {n} bought a {o}.", f"On {d}, {n} bought a {o}."])
        return s, f"Who bought the {o}?", n
    if kind == 1:
        s = rng.choice([f"On {d}, {n} travelled from {c} to {c2}.", f"{n} took a train from {c} to {c2}.",
                        f"{n} flew from {c} to {c2} on {d}."])
        return s, f"To which city did {n} travel?", c2
    if kind == 2:
        s = rng.choice([f"{n} owns {k} {o}s.", f"{n} has {k} {o}s at home in {c}.", f"There are {k} {o}s in {n}'s shop."])
        return s, f"How many {o}s does {n} have?", str(k)
    if kind == 3:
        s = rng.choice([f"{n} is {k} years old.", f"{n} turned {k} on {d}.", f"{n}, who lives in {c}, is {k} years old."])
        return s, f"How old is {n}?", str(k)
    s = rng.choice([f"{n} paid {k} dollars for a {o}.", f"In {c}, {n} bought a {o} for {k} dollars."])
    return s, f"How many dollars did {n} pay for the {o}?", str(k)


def build(n: int, seed: int, taken: set[str]) -> list[dict[str, str]]:
    """``n`` rows drawn with ``seed``, none of whose questions is in ``taken`` (which grows)."""
    rng, rows = random.Random(seed), []
    while len(rows) < n:
        passage, question, answer = item(rng)
        text = f"Sentence: {passage}\nQuestion: {question}\n{FORMAT}"
        if text not in taken:
            taken.add(text)
            rows.append({"question": text, "answer": answer})
    return rows


def main(out: Path = Path(__file__).parent) -> None:
    taken: set[str] = set()
    for split, seed in (("dev", 1), ("test", 2)):
        write_jsonl_atomic(out / f"{split}.jsonl", build(ROWS_PER_SPLIT, seed, taken))
    # Drawn after dev and test, so no train question is one of theirs.
    write_jsonl_atomic(out / "train.jsonl", [{"question": r["question"]} for r in build(TRAIN_ROWS, 3, taken)])


if __name__ == "__main__":
    main()
