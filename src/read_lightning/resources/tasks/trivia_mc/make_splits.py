"""Writes the trivia_mc splits: four-option general-knowledge questions with a gold index.

Deterministic (seeded): ``python make_splits.py`` rewrites dev.jsonl and test.jsonl beside this
file, 200 rows each, and no question appears in both; then train.jsonl, 1,000 questions
without answers (the inputs a run distils on, ``data.task_prompts``), none in dev or test. Each split opens with its 12 hand-written
rows; the rest are built from the word lists below, chosen so that exactly one option is right
(a fruit among tools, a country's capital among other capitals, the opposite of a word among
unrelated words, ...). Words that belong to two lists (orange, kiwi, bat, plum) are left out.
"""

from __future__ import annotations

import random
from pathlib import Path

from read_lightning.core.jsonl import write_jsonl_atomic

ROWS_PER_SPLIT = 200
TRAIN_ROWS = 1000  # task inputs to distil on (questions only: the teacher answers them)
# Categories whose members are never members of another category in this table.
CATEGORIES: dict[str, list[str]] = {
    "a fruit": ["apple", "banana", "pear", "grape", "cherry", "mango", "strawberry", "pineapple", "lemon",
                "watermelon", "apricot", "raspberry"],
    "a vegetable": ["carrot", "potato", "onion", "cabbage", "broccoli", "spinach", "lettuce", "celery"],
    "an animal": ["dog", "cat", "horse", "cow", "lion", "tiger", "elephant", "rabbit", "sheep", "goat", "bear",
                  "wolf", "giraffe", "zebra"],
    "a color": ["red", "blue", "green", "yellow", "purple", "black", "white", "brown", "pink", "grey"],
    "a musical instrument": ["piano", "guitar", "violin", "flute", "drum", "trumpet", "cello", "harp",
                             "clarinet", "saxophone"],
    "a tool": ["hammer", "saw", "wrench", "screwdriver", "shovel", "pliers", "chisel", "axe"],
    "a vehicle": ["car", "bus", "train", "bicycle", "truck", "motorcycle", "tram", "tractor"],
    "a piece of furniture": ["chair", "table", "sofa", "bed", "desk", "wardrobe", "bookshelf", "stool"],
    "a piece of clothing": ["shirt", "sock", "hat", "coat", "scarf", "glove", "jacket", "skirt"],
}
CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo",
    "Egypt": "Cairo", "Russia": "Moscow", "the United Kingdom": "London", "Greece": "Athens",
    "Portugal": "Lisbon", "Ireland": "Dublin", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Austria": "Vienna", "Poland": "Warsaw", "Hungary": "Budapest",
    "the Czech Republic": "Prague", "Belgium": "Brussels", "China": "Beijing", "South Korea": "Seoul",
    "Thailand": "Bangkok", "Kenya": "Nairobi", "Peru": "Lima", "Argentina": "Buenos Aires",
    "Mexico": "Mexico City", "Canada": "Ottawa", "Australia": "Canberra", "India": "New Delhi", "Cuba": "Havana",
    "Chile": "Santiago", "Turkey": "Ankara", "Indonesia": "Jakarta", "Vietnam": "Hanoi",
    "the Philippines": "Manila",
}
OPPOSITES = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("open", "closed"), ("wet", "dry"),
             ("happy", "sad"), ("young", "old"), ("early", "late"), ("full", "empty"), ("hard", "soft"),
             ("loud", "quiet"), ("heavy", "light"), ("rich", "poor"), ("tall", "short"), ("clean", "dirty"),
             ("thick", "thin"), ("strong", "weak"), ("cheap", "expensive"), ("near", "far"), ("high", "low")]
MIXES = {("blue", "yellow"): "green", ("red", "yellow"): "orange", ("red", "blue"): "purple",
         ("red", "white"): "pink", ("black", "white"): "grey"}
MIX_OPTIONS = ["green", "orange", "purple", "pink", "grey", "brown"]
COUNTS = {"days are in a week": "7", "months are in a year": "12", "hours are in a day": "24",
          "minutes are in an hour": "60", "seconds are in a minute": "60", "legs does a spider have": "8",
          "legs does an ant have": "6", "legs does a dog have": "4", "legs does a chicken have": "2",
          "sides does a triangle have": "3", "sides does a square have": "4", "sides does a pentagon have": "5",
          "sides does an octagon have": "8", "days are in a leap year": "366", "weeks are in a year": "52",
          "players are on a football (soccer) team on the field": "11", "letters are in the English alphabet": "26"}
COUNT_OPTIONS = ["2", "3", "4", "5", "6", "7", "8", "10", "11", "12", "24", "26", "30", "52", "60", "100", "365",
                 "366"]
# The hand-written rows each split opens with (kept from the first version of this card).
HAND = {
    "dev": [
        ("What is the capital of Canada?", ["Toronto", "Ottawa", "Vancouver", "Montreal"], 1),
        ("Which animal is the largest mammal?", ["Elephant", "Giraffe", "Blue whale", "Hippo"], 2),
        ("What color do you get by mixing blue and yellow?", ["Green", "Purple", "Orange", "Brown"], 0),
        ("How many hours are in a day?", ["12", "20", "24", "36"], 2),
        ("Which metal is liquid at room temperature?", ["Iron", "Mercury", "Copper", "Silver"], 1),
        ("Who developed the theory of relativity?", ["Isaac Newton", "Marie Curie", "Albert Einstein", "Galileo"], 2),
        ("What is the main language spoken in Mexico?", ["Spanish", "English", "French", "Portuguese"], 0),
        ("Which planet is closest to the Sun?", ["Venus", "Earth", "Mars", "Mercury"], 3),
        ("What do caterpillars turn into?", ["Beetles", "Butterflies", "Spiders", "Worms"], 1),
        ("Which of these is a prime number?", ["9", "15", "13", "21"], 2),
        ("What is frozen water called?", ["Steam", "Ice", "Fog", "Dew"], 1),
        ("In which continent is Egypt?", ["Asia", "Europe", "Africa", "South America"], 2),
    ],
    "test": [
        ("Which instrument has six strings?", ["Drum", "Guitar", "Flute", "Trumpet"], 1),
        ("What is the opposite of ancient?", ["Old", "Modern", "Broken", "Tall"], 1),
        ("Which gas do humans need to breathe?", ["Oxygen", "Helium", "Neon", "Hydrogen"], 0),
        ("How many sides does a hexagon have?", ["Five", "Six", "Seven", "Eight"], 1),
        ("What is the tallest mountain on Earth?", ["K2", "Mount Everest", "Kilimanjaro", "Mont Blanc"], 1),
        ("Which sense uses the nose?", ["Taste", "Hearing", "Smell", "Touch"], 2),
        ("What is the boiling point of water at sea level in Celsius?", ["50", "90", "100", "120"], 2),
        ("Which of these animals can fly?", ["Penguin", "Ostrich", "Bat", "Kiwi"], 2),
        ("Which season comes after winter?", ["Autumn", "Spring", "Summer", "Monsoon"], 1),
        ("What shape is a stop sign?", ["Circle", "Triangle", "Octagon", "Square"], 2),
        ("Which organ do humans use to think?", ["Liver", "Brain", "Lungs", "Kidney"], 1),
        ("What is the currency of Japan?", ["Yuan", "Won", "Yen", "Rupee"], 2),
    ],
}


def _options(rng: random.Random, right: str, wrong: list[str]) -> tuple[list[str], int]:
    """``right`` and three of ``wrong`` (none equal to it) in a random order; the index of ``right``."""
    choices = rng.sample([w for w in wrong if w != right], 3) + [right]
    rng.shuffle(choices)
    return choices, choices.index(right)


def item(rng: random.Random) -> tuple[str, list[str], int]:
    """(question, choices, gold index) of one random question."""
    kind = rng.choices(["category", "capital", "country", "opposite", "mix", "count"], weights=[8, 3, 3, 2, 1, 1])[0]
    if kind == "category":
        target = rng.choice(sorted(CATEGORIES))
        others = [w for name, words in CATEGORIES.items() if name != target for w in words]
        choices, gold = _options(rng, rng.choice(CATEGORIES[target]), others)
        # the options are named in the question: the card scores them without showing them
        listed = ", ".join(choices[:3]) + f" or {choices[3]}"
        return f"Which of these is {target}: {listed}?", [c.capitalize() for c in choices], gold
    if kind == "capital":
        country = rng.choice(sorted(CAPITALS))
        choices, gold = _options(rng, CAPITALS[country], sorted(CAPITALS.values()))
        return f"What is the capital of {country}?", choices, gold
    if kind == "country":
        country = rng.choice(sorted(CAPITALS))
        choices, gold = _options(rng, country, sorted(CAPITALS))
        return f"{CAPITALS[country]} is the capital of which country?", [c[0].upper() + c[1:] for c in choices], gold
    if kind == "opposite":
        a, b = rng.choice(OPPOSITES)
        word, right = (a, b) if rng.random() < 0.5 else (b, a)
        unrelated = [w for pair in OPPOSITES if pair != (a, b) for w in pair]
        choices, gold = _options(rng, right, unrelated)
        return f"What is the opposite of {word}?", [c.capitalize() for c in choices], gold
    if kind == "mix":
        (x, y), right = rng.choice(sorted(MIXES.items()))
        x, y = (x, y) if rng.random() < 0.5 else (y, x)
        choices, gold = _options(rng, right, MIX_OPTIONS)
        return f"What color do you get by mixing {x} and {y}?", [c.capitalize() for c in choices], gold
    what, right = rng.choice(sorted(COUNTS.items()))
    choices, gold = _options(rng, right, COUNT_OPTIONS)
    return f"How many {what}?", choices, gold


def build(hand: list[tuple[str, list[str], int]], n: int, seed: int, taken: set[str]) -> list[dict]:
    """The ``hand`` rows, then random rows drawn with ``seed`` up to ``n``; no question in ``taken`` (which grows)."""
    rng = random.Random(seed)
    rows = [{"question": q, "choices": c, "gold": g} for q, c, g in hand]
    while len(rows) < n:
        question, choices, gold = item(rng)
        if question not in taken:
            taken.add(question)
            rows.append({"question": question, "choices": choices, "gold": gold})
    return rows


def main(out: Path = Path(__file__).parent) -> None:
    taken = {q for rows in HAND.values() for q, _, _ in rows}
    for split, seed in (("dev", 1), ("test", 2)):
        write_jsonl_atomic(out / f"{split}.jsonl", build(HAND[split], ROWS_PER_SPLIT, seed, taken))
    # Drawn after dev and test, so no train question is one of theirs.
    write_jsonl_atomic(out / "train.jsonl", [{"question": r["question"]} for r in build([], TRAIN_ROWS, 3, taken)])


if __name__ == "__main__":
    main()
