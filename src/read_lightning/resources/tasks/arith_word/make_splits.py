"""Writes the arith_word splits: one- or two-operation word problems on small whole numbers.

Deterministic (seeded): ``python make_splits.py`` rewrites dev.jsonl and test.jsonl beside this
file, 200 rows each, and no question appears in both; then train.jsonl, 1,000 questions
without answers (the inputs a run distils on, ``data.task_prompts``), none in dev or test. Each split opens with its 12 hand-written
rows; the rest come from the sentence frames below, with the working and the final number in
the GSM8K form ``"12 + 9 = 21 #### 21"``.
"""

from __future__ import annotations

import random
from pathlib import Path

from read_lightning.core.jsonl import write_jsonl_atomic

ROWS_PER_SPLIT = 200
TRAIN_ROWS = 1000  # task inputs to distil on (questions only: the teacher answers them)
NAMES = ["Lily", "Omar", "Ella", "Max", "Nina", "Sam", "Tara", "Leo", "Kim", "Ben", "Ana", "Raj", "Mia", "Tom",
         "Zoe", "Ivan", "Maya", "Hugo", "Sara", "Yusuf"]
ITEMS = ["apples", "marbles", "stickers", "pencils", "cards", "books", "shells", "coins", "stamps", "buttons",
         "cookies", "balloons", "beads", "toy cars", "flowers"]
CONTAINERS = {"box": "boxes", "bag": "bags", "jar": "jars", "basket": "baskets", "tray": "trays", "pack": "packs"}
# The hand-written rows each split opens with (kept from the first version of this card).
HAND = {
    "dev": [
        ("Lily has 12 marbles and wins 9 more. How many marbles does she have now?", "12 + 9 = 21 #### 21"),
        ("A baker makes 4 trays of 6 rolls. How many rolls is that?", "4 * 6 = 24 #### 24"),
        ("Omar had 30 stickers and gave away 13. How many are left?", "30 - 13 = 17 #### 17"),
        ("Three friends share 27 cherries equally. How many does each get?", "27 / 3 = 9 #### 9"),
        ("A book costs 8 dollars. How much do 5 books cost?", "5 * 8 = 40 #### 40"),
        ("There are 45 chairs and 18 are taken. How many are free?", "45 - 18 = 27 #### 27"),
        ("Ella reads 15 pages a day for 4 days. How many pages does she read?", "15 * 4 = 60 #### 60"),
        ("A bus holds 40 people and 26 are on it. How many more can get on?", "40 - 26 = 14 #### 14"),
        ("Max saves 7 dollars a week. How much has he saved after 6 weeks?", "7 * 6 = 42 #### 42"),
        ("A garden has 5 rows of 9 tulips. How many tulips are there?", "5 * 9 = 45 #### 45"),
        ("Nina buys 3 packs of 10 pencils and loses 4. How many pencils does she have?", "3 * 10 - 4 = 26 #### 26"),
        ("A rope is 50 meters long. 18 meters are cut off. How long is the rest?", "50 - 18 = 32 #### 32"),
    ],
    "test": [
        ("Sam scores 14 points, then 23 points. What is his total?", "14 + 23 = 37 #### 37"),
        ("64 cookies are packed into bags of 8. How many bags are needed?", "64 / 8 = 8 #### 8"),
        ("A shop sells 19 apples in the morning and 25 in the afternoon. How many in total?", "19 + 25 = 44 #### 44"),
        ("Tara has 100 dollars and spends 35. How much is left?", "100 - 35 = 65 #### 65"),
        ("Each car has 4 wheels. How many wheels do 11 cars have?", "11 * 4 = 44 #### 44"),
        ("A class of 28 splits into teams of 4. How many teams are there?", "28 / 4 = 7 #### 7"),
        ("Leo walks 3 km each day. How far does he walk in 9 days?", "3 * 9 = 27 #### 27"),
        ("A jar has 16 red and 21 blue beads. How many beads in all?", "16 + 21 = 37 #### 37"),
        ("Kim picks 48 berries and eats 9. How many remain?", "48 - 9 = 39 #### 39"),
        ("A ticket costs 6 dollars. How much do 7 tickets cost?", "6 * 7 = 42 #### 42"),
        ("There are 90 pages, and Ben has read 55. How many are left?", "90 - 55 = 35 #### 35"),
        ("A farmer plants 8 rows of 12 corn plants. How many plants?", "8 * 12 = 96 #### 96"),
    ],
}


def item(rng: random.Random) -> tuple[str, str]:
    """(question, answer) of one random problem; every number and answer is a whole number >= 0."""
    n = rng.choice(NAMES)
    t = rng.choice(ITEMS)
    box = rng.choice(sorted(CONTAINERS))
    boxes = CONTAINERS[box]
    kind = rng.randrange(8)
    if kind == 0:
        a, b = rng.randint(2, 60), rng.randint(2, 40)
        q = rng.choice([f"{n} has {a} {t} and gets {b} more. How many {t} does {n} have now?",
                        f"There are {a} {t} in a {box} and {b} more are added. How many {t} are in the {box}?",
                        f"{n} collects {a} {t} on Monday and {b} on Tuesday. How many {t} is that in total?"])
        return q, f"{a} + {b} = {a + b}"
    if kind == 1:
        a = rng.randint(10, 90)
        b = rng.randint(1, a - 1)
        q = rng.choice([f"{n} had {a} {t} and gave away {b}. How many {t} are left?",
                        f"A {box} holds {a} {t}. {n} takes out {b}. How many {t} are still in the {box}?",
                        f"{n} needs {a} {t} and already has {b}. How many more {t} does {n} need?"])
        return q, f"{a} - {b} = {a - b}"
    if kind == 2:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        q = rng.choice([f"A {box} holds {b} {t}. How many {t} are in {a} {boxes}?",
                        f"{n} buys {a} {boxes} with {b} {t} in each. How many {t} does {n} buy?",
                        f"Each of {a} children has {b} {t}. How many {t} do they have together?"])
        return q, f"{a} * {b} = {a * b}"
    if kind == 3:
        b, c = rng.randint(2, 10), rng.randint(2, 12)
        a = b * c
        q = rng.choice([f"{n} shares {a} {t} equally among {b} friends. How many {t} does each friend get?",
                        f"{a} {t} are packed into {boxes} of {b}. How many {boxes} are filled?",
                        f"{a} {t} are split evenly into {b} {boxes}. How many {t} go in each {box}?"])
        return q, f"{a} / {b} = {c}"
    if kind == 4:
        a, b = rng.randint(2, 9), rng.randint(2, 12)
        c = rng.randint(1, a * b - 1)
        q = f"{n} buys {a} {boxes} of {b} {t} and gives away {c}. How many {t} does {n} have left?"
        return q, f"{a} * {b} - {c} = {a * b - c}"
    if kind == 5:
        a, b = rng.randint(5, 50), rng.randint(2, 30)
        c = rng.randint(1, a + b - 1)
        q = f"{n} has {a} {t}, finds {b} more, then loses {c}. How many {t} does {n} have now?"
        return q, f"{a} + {b} - {c} = {a + b - c}"
    if kind == 6:
        a, b, c = rng.randint(1, 30), rng.randint(2, 6), rng.randint(2, 10)
        q = f"{n} has {a} {t} and buys {b} {boxes} with {c} {t} in each. How many {t} does {n} have now?"
        return q, f"{a} + {b} * {c} = {a + b * c}"
    c, share = rng.randint(2, 5), rng.randint(2, 12)
    a = rng.randint(1, c * share - 1)
    b = c * share - a
    q = f"{n} has {a} {t} and gets {b} more, then shares them equally among {c} people. How many {t} does each get?"
    return q, f"({a} + {b}) / {c} = {share}"

def build(hand: list[tuple[str, str]], n: int, seed: int, taken: set[str]) -> list[dict[str, str]]:
    """The ``hand`` rows, then random rows drawn with ``seed`` up to ``n``; no question in ``taken`` (which grows)."""
    rng, rows = random.Random(seed), [{"question": q, "answer": a} for q, a in hand]
    while len(rows) < n:
        question, working = item(rng)
        if question not in taken:
            taken.add(question)
            rows.append({"question": question, "answer": f"{working} #### {working.rsplit(' = ', 1)[1]}"})
    return rows


def main(out: Path = Path(__file__).parent) -> None:
    taken = {q for rows in HAND.values() for q, _ in rows}
    for split, seed in (("dev", 1), ("test", 2)):
        write_jsonl_atomic(out / f"{split}.jsonl", build(HAND[split], ROWS_PER_SPLIT, seed, taken))
    # Drawn after dev and test, so no train question is one of theirs.
    write_jsonl_atomic(out / "train.jsonl", [{"question": r["question"]} for r in build([], TRAIN_ROWS, 3, taken)])


if __name__ == "__main__":
    main()
