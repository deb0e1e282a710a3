"""Word lists, facts and small formatting helpers shared by the capability banks."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# ============================================================================================
# Built-in templates. Banks first, then at least 12 templates per capability. Fillers draw every
# slot from the rng; the hint in [0, 1] steers the control factors (returned as ``factors``).
# ============================================================================================

_NAMES = (
    "Alice Bob Carol David Erin Frank Grace Hugo Irene Jamal Kenji Laura Mateo Nadia Omar Priya "
    "Quentin Rosa Samir Tara Umar Vera Wen Ximena Yusuf Zoe Amara Bruno Chloe Dmitri Elena Felix "
    "Greta Hassan Ingrid Jonas Keiko Leon Mira Nico"
).split()
_COUNTRIES = (  # country, capital, continent (None when transcontinental), main language (None when ambiguous)
    ("France", "Paris", "Europe", "French"), ("Germany", "Berlin", "Europe", "German"),
    ("Spain", "Madrid", "Europe", "Spanish"), ("Italy", "Rome", "Europe", "Italian"),
    ("Portugal", "Lisbon", "Europe", "Portuguese"), ("the Netherlands", "Amsterdam", "Europe", "Dutch"),
    ("Poland", "Warsaw", "Europe", "Polish"), ("Sweden", "Stockholm", "Europe", "Swedish"),
    ("Norway", "Oslo", "Europe", "Norwegian"), ("Finland", "Helsinki", "Europe", "Finnish"),
    ("Denmark", "Copenhagen", "Europe", "Danish"), ("Greece", "Athens", "Europe", "Greek"),
    ("Austria", "Vienna", "Europe", "German"), ("Hungary", "Budapest", "Europe", "Hungarian"),
    ("the Czech Republic", "Prague", "Europe", "Czech"), ("Romania", "Bucharest", "Europe", "Romanian"),
    ("Ukraine", "Kyiv|Kiev", "Europe", "Ukrainian"), ("Iceland", "Reykjavik", "Europe", "Icelandic"),
    ("Croatia", "Zagreb", "Europe", "Croatian"), ("Serbia", "Belgrade", "Europe", "Serbian"),
    ("Bulgaria", "Sofia", "Europe", "Bulgarian"), ("Ireland", "Dublin", "Europe", None),
    ("Belgium", "Brussels", "Europe", None), ("Switzerland", "Bern", "Europe", None),
    ("Japan", "Tokyo", "Asia", "Japanese"), ("China", "Beijing", "Asia", "Chinese|Mandarin"),
    ("South Korea", "Seoul", "Asia", "Korean"), ("Thailand", "Bangkok", "Asia", "Thai"),
    ("Vietnam", "Hanoi", "Asia", "Vietnamese"), ("Indonesia", "Jakarta", "Asia", "Indonesian"),
    ("Iran", "Tehran", "Asia", "Persian|Farsi"), ("Saudi Arabia", "Riyadh", "Asia", "Arabic"),
    ("Bangladesh", "Dhaka", "Asia", "Bengali|Bangla"), ("Nepal", "Kathmandu", "Asia", "Nepali"),
    ("Malaysia", "Kuala Lumpur", "Asia", "Malay"), ("Mongolia", "Ulaanbaatar|Ulan Bator", "Asia", "Mongolian"),
    ("India", "New Delhi", "Asia", None), ("Pakistan", "Islamabad", "Asia", None),
    ("Egypt", "Cairo", "Africa", "Arabic"), ("Morocco", "Rabat", "Africa", "Arabic"),
    ("Algeria", "Algiers", "Africa", "Arabic"), ("Tunisia", "Tunis", "Africa", "Arabic"),
    ("Senegal", "Dakar", "Africa", "French"), ("Ghana", "Accra", "Africa", "English"),
    ("Nigeria", "Abuja", "Africa", "English"), ("Ethiopia", "Addis Ababa", "Africa", "Amharic"),
    ("Kenya", "Nairobi", "Africa", None), ("Brazil", "Brasilia", "South America", "Portuguese"),
    ("Argentina", "Buenos Aires", "South America", "Spanish"), ("Chile", "Santiago", "South America", "Spanish"),
    ("Peru", "Lima", "South America", "Spanish"), ("Colombia", "Bogota", "South America", "Spanish"),
    ("Venezuela", "Caracas", "South America", "Spanish"), ("Uruguay", "Montevideo", "South America", "Spanish"),
    ("Mexico", "Mexico City", "North America", "Spanish"), ("Cuba", "Havana", "North America", "Spanish"),
    ("Jamaica", "Kingston", "North America", "English"), ("Canada", "Ottawa", "North America", None),
    ("the United States", "Washington", "North America", "English"),
    ("Australia", "Canberra", "Oceania", "English"), ("New Zealand", "Wellington", "Oceania", "English"),
    ("Russia", "Moscow", None, "Russian"), ("Turkey", "Ankara", None, "Turkish"),
)
_ELEMENTS = (
    ("hydrogen", "H"), ("helium", "He"), ("lithium", "Li"), ("beryllium", "Be"), ("boron", "B"),
    ("carbon", "C"), ("nitrogen", "N"), ("oxygen", "O"), ("fluorine", "F"), ("neon", "Ne"),
    ("sodium", "Na"), ("magnesium", "Mg"), ("aluminium", "Al"), ("silicon", "Si"), ("phosphorus", "P"),
    ("sulfur", "S"), ("chlorine", "Cl"), ("argon", "Ar"), ("potassium", "K"), ("calcium", "Ca"),
    ("titanium", "Ti"), ("chromium", "Cr"), ("manganese", "Mn"), ("iron", "Fe"), ("cobalt", "Co"),
    ("nickel", "Ni"), ("copper", "Cu"), ("zinc", "Zn"), ("bromine", "Br"), ("krypton", "Kr"),
    ("silver", "Ag"), ("tin", "Sn"), ("iodine", "I"), ("xenon", "Xe"), ("tungsten", "W"),
    ("platinum", "Pt"), ("gold", "Au"), ("mercury", "Hg"), ("lead", "Pb"), ("uranium", "U"),
)
_PLANETS = ("Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune")
_PLANETS_BY_SIZE = ("Jupiter", "Saturn", "Uranus", "Neptune", "Earth", "Venus", "Mars", "Mercury")
_CATEGORIES = {
    "fruits": "apple banana cherry grape mango pear peach plum lemon kiwi pineapple strawberry apricot melon papaya".split(),
    "animals": "dog cat horse elephant tiger lion rabbit wolf bear zebra giraffe monkey fox deer camel".split(),
    "musical instruments": "piano guitar violin drum flute trumpet cello harp saxophone clarinet banjo trombone".split(),
    "vehicles": "car bus bicycle truck train motorcycle tram scooter van tractor ferry helicopter".split(),
    "sports": "tennis soccer basketball cricket rugby golf hockey volleyball baseball badminton boxing".split(),
    "colours": "red blue green yellow purple pink brown black white gray".split(),
    "tools": "hammer screwdriver wrench saw drill pliers chisel shovel rake ladder".split(),
    "vegetables": "carrot potato onion cabbage spinach broccoli lettuce cucumber celery pea".split(),
}
_CONCEPTS = (
    "photosynthesis", "gravity", "inflation", "the water cycle", "plate tectonics", "vaccines",
    "compound interest", "machine learning", "democracy", "the immune system", "black holes",
    "evolution by natural selection", "supply and demand", "electricity", "magnetism",
    "climate change", "DNA", "the internet", "the greenhouse effect", "encryption", "recycling",
    "the stock market", "tides", "earthquakes", "rainbows", "antibiotics", "solar panels",
    "the printing press", "the Roman Empire", "the Renaissance", "the Industrial Revolution",
    "blood circulation", "sleep", "memory", "the scientific method", "opportunity cost",
    "interest rates", "taxes", "volcanoes", "the seasons", "the moon's phases", "sound waves",
    "friction", "batteries", "nuclear power", "wind turbines", "the human eye", "digestion",
    "bacteria", "viruses", "GPS", "search engines", "open-source software", "copyright",
    "recessions", "biodiversity", "coral reefs", "glaciers", "the ozone layer", "probability",
)
_AUDIENCES = (
    "a five-year-old", "a high-school student", "a busy executive", "a software engineer",
    "a retired teacher", "a tourist", "a nurse", "a farmer", "a journalist", "a university professor",
    "a new employee", "a curious teenager", "a non-native English speaker", "a museum visitor",
)
_TOPICS = (
    "remote work", "urban gardening", "electric cars", "the history of tea", "ocean pollution",
    "learning a second language", "public libraries", "space tourism", "healthy breakfasts",
    "saving money", "city cycling", "board games", "volunteering", "time management", "bees",
    "home composting", "public transport", "online privacy", "street food", "marathon training",
    "houseplants", "night photography", "minimalism", "jazz music", "desert ecosystems",
    "renewable energy", "school uniforms", "video game design", "mountain hiking", "coffee culture",
    "ancient libraries", "smart homes", "bird watching", "small businesses", "rainy days",
    "first jobs", "museum visits", "recycling electronics", "sleep habits", "local markets",
    "train journeys", "community theatre", "learning to code", "fermented food", "lighthouses",
    "winter sports", "family recipes", "podcasts", "open offices", "clean water",
)
_TONES = ("formal", "friendly", "humorous", "neutral", "enthusiastic", "calm", "persuasive", "poetic")
_ADJ = ("quiet old tall narrow bright heavy small ancient green wooden busy empty crowded distant "
        "hidden modern broken golden silent rusty").split()
_NOUN = ("bridge tower garden river market library station harbour village forest lantern clock "
         "bakery museum orchard workshop lighthouse theatre courtyard meadow").split()
_VERB = ("stood", "waited", "glowed", "slept", "changed", "remained", "shone", "stretched", "leaned", "faded")
_PLACE = ("hill", "square", "coast", "valley", "road", "canal", "park", "cliff", "gate", "lake")
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_SYLL = ("ba be bi bo bu da de di do du fa fe fi fo ka ke ki ko la le li lo lu ma me mi mo mu na ne "
         "ni no nu pa pe pi po ra re ri ro ru sa se si so ta te ti to tu va ve vi vo za ze zi zo").split()

_NUM_FMT = (
    "Give only the final number.",
    "Reply with just the number.",
    "Explain briefly, then give the final answer on the last line as 'Answer: <number>'.",
    "Think step by step and finish with 'Answer: <number>'.",
    "Answer in one short sentence.",
    "Show your working, then state the result.",
    "Be concise.",
    "Put the final answer in \\boxed{}.",
)
_WORD_FMT = (
    "Answer with just the name.",
    "Reply in one short sentence.",
    "Explain your reasoning briefly, then give the answer on the last line as 'Answer: <answer>'.",
    "Think it through step by step and end with 'Answer: <answer>'.",
    "Be concise.",
    "Give the answer first, then a one-line justification.",
)
_YES_NO = {"yes": ["yes", "true", "correct"], "no": ["no", "false", "incorrect"]}


def _num(value: float, **tol: float) -> dict[str, Any]:
    return {"kind": "number", "value": value, **tol}


def _choice(value: str, options: Iterable[str] | Mapping[str, Sequence[str]]) -> dict[str, Any]:
    opts = dict(options) if isinstance(options, Mapping) else {o: [o] for o in options}
    return {"kind": "choice", "value": value, "options": {k: list(v) for k, v in opts.items()}}


def _nonce(rng: random.Random, syllables: int = 2) -> str:
    """A made-up word ('bokimu'): endless fresh entity names that no fact table can answer."""
    return "".join(rng.choice(_SYLL) for _ in range(syllables))


def _fmt_list(items: Sequence[Any]) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _document(rng: random.Random, n_words: int, inserts: Sequence[str] = ()) -> tuple[str, list[int]]:
    """Filler prose of about ``n_words`` words with ``inserts`` placed at random sentence slots,
    in the given order. Returns the text and each insert's paragraph number (1-based).

    The filler never mentions people, numbers or codes, so counts and look-ups over the inserts
    have exactly one right answer.
    """
    n = max(1, -(-n_words // 8))  # every filler sentence has 8 words
    # One rng call per bank instead of five per sentence: documents are the costliest fills.
    a1, a2 = rng.choices(_ADJ, k=n), rng.choices(_ADJ, k=n)
    nouns, verbs, places = rng.choices(_NOUN, k=n), rng.choices(_VERB, k=n), rng.choices(_PLACE, k=n)
    sentences = [f"The {a} {b} {c} near the {d} {e}." for a, b, c, d, e in zip(a1, nouns, verbs, a2, places)]
    slots = sorted(rng.choices(range(len(sentences) + 1), k=len(inserts)))
    merged: list[str] = []
    j = 0
    for i in range(len(sentences) + 1):
        while j < len(inserts) and slots[j] == i:
            merged.append("\x00" + inserts[j])
            j += 1
        if i < len(sentences):
            merged.append(sentences[i])
    paragraphs, where, current = [], [], []
    per = rng.randint(4, 7)
    for s in merged:
        if s.startswith("\x00"):
            where.append(len(paragraphs) + 1)
            s = s[1:]
        current.append(s)
        if len(current) >= per:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n\n".join(paragraphs), where
