"""Built-in multilingual templates: a small verified lexicon in five languages."""

from __future__ import annotations

import random

from read_lightning.prompts.banks.vocabulary import (
    _AUDIENCES,
    _CONCEPTS,
    _NUM_FMT,
    _WEEKDAYS,
    _WORD_FMT,
    _choice,
    _fmt_list,
    _num,
)
from read_lightning.prompts.slots import Fill, _ri, _template
from read_lightning.prompts.verifiers import _fold

# -- multilingual: a small verified lexicon in five languages ---------------------------------

_ML = "multilingual"
_ML_LANGS = ("Spanish", "French", "German", "Italian", "Portuguese")
# English: (Spanish, French, German, Italian, Portuguese); 'a|b' lists accepted alternatives.
_LEXICON: dict[str, tuple[str, str, str, str, str]] = {
    "water": ("agua", "eau", "Wasser", "acqua", "água"), "house": ("casa", "maison", "Haus", "casa", "casa"),
    "dog": ("perro", "chien", "Hund", "cane", "cão|cachorro"), "cat": ("gato", "chat", "Katze", "gatto", "gato"),
    "book": ("libro", "livre", "Buch", "libro", "livro"), "bread": ("pan", "pain", "Brot", "pane", "pão"),
    "sun": ("sol", "soleil", "Sonne", "sole", "sol"), "moon": ("luna", "lune", "Mond", "luna", "lua"),
    "tree": ("árbol", "arbre", "Baum", "albero", "árvore"), "school": ("escuela", "école", "Schule", "scuola", "escola"),
    "friend": ("amigo|amiga", "ami|amie", "Freund|Freundin", "amico|amica", "amigo|amiga"),
    "city": ("ciudad", "ville", "Stadt", "città", "cidade"), "apple": ("manzana", "pomme", "Apfel", "mela", "maçã"),
    "milk": ("leche", "lait", "Milch", "latte", "leite"), "door": ("puerta", "porte", "Tür", "porta", "porta"),
    "window": ("ventana", "fenêtre", "Fenster", "finestra", "janela"), "table": ("mesa", "table", "Tisch", "tavolo", "mesa"),
    "chair": ("silla", "chaise", "Stuhl", "sedia", "cadeira"), "flower": ("flor", "fleur", "Blume", "fiore", "flor"),
    "sea": ("mar", "mer", "Meer", "mare", "mar"), "mountain": ("montaña", "montagne", "Berg", "montagna", "montanha"),
    "night": ("noche", "nuit", "Nacht", "notte", "noite"), "day": ("día", "jour", "Tag", "giorno", "dia"),
    "mother": ("madre", "mère", "Mutter", "madre", "mãe"), "father": ("padre", "père", "Vater", "padre", "pai"),
    "brother": ("hermano", "frère", "Bruder", "fratello", "irmão"), "sister": ("hermana", "sœur", "Schwester", "sorella", "irmã"),
    "hand": ("mano", "main", "Hand", "mano", "mão"), "eye": ("ojo", "œil", "Auge", "occhio", "olho"),
    "heart": ("corazón", "cœur", "Herz", "cuore", "coração"), "bird": ("pájaro|ave", "oiseau", "Vogel", "uccello", "pássaro|ave"),
    "horse": ("caballo", "cheval", "Pferd", "cavallo", "cavalo"), "cheese": ("queso", "fromage", "Käse", "formaggio", "queijo"),
    "wine": ("vino", "vin", "Wein", "vino", "vinho"), "key": ("llave", "clé|clef", "Schlüssel", "chiave", "chave"),
    "street": ("calle", "rue", "Straße", "strada|via", "rua"), "rain": ("lluvia", "pluie", "Regen", "pioggia", "chuva"),
    "snow": ("nieve", "neige", "Schnee", "neve", "neve"), "fire": ("fuego", "feu", "Feuer", "fuoco", "fogo"),
    "star": ("estrella", "étoile", "Stern", "stella", "estrela"), "bed": ("cama", "lit", "Bett", "letto", "cama"),
    "shoe": ("zapato", "chaussure", "Schuh", "scarpa", "sapato"), "egg": ("huevo", "œuf", "Ei", "uovo", "ovo"),
    "red": ("rojo", "rouge", "rot", "rosso", "vermelho"), "blue": ("azul", "bleu", "blau", "blu", "azul"),
    "green": ("verde", "vert", "grün", "verde", "verde"), "black": ("negro", "noir", "schwarz", "nero", "preto|negro"),
    "white": ("blanco", "blanc", "weiß", "bianco", "branco"), "yellow": ("amarillo", "jaune", "gelb", "giallo", "amarelo"),
}
_NUMBER_WORDS: dict[str, tuple[str, ...]] = {  # 1..20
    "Spanish": tuple("uno|una dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce quince dieciséis diecisiete dieciocho diecinueve veinte".split()),
    "French": tuple("un|une deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize dix-sept dix-huit dix-neuf vingt".split()),
    "German": tuple("eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn zwanzig".split()),
    "Italian": tuple("uno|una due tre quattro cinque sei sette otto nove dieci undici dodici tredici quattordici quindici sedici diciassette diciotto diciannove venti".split()),
    "Portuguese": tuple("um|uma dois|duas três quatro cinco seis sete oito nove dez onze doze treze catorze|quatorze quinze dezesseis|dezasseis dezessete|dezassete dezoito dezenove|dezanove vinte".split()),
}
_DAY_WORDS: dict[str, tuple[str, ...]] = {  # Monday..Sunday
    "Spanish": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "French": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "German": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag|Sonnabend", "Sonntag"),
    "Italian": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
    "Portuguese": ("segunda-feira|segunda", "terça-feira|terça", "quarta-feira|quarta", "quinta-feira|quinta", "sexta-feira|sexta", "sábado", "domingo"),
}
_PHRASES: dict[str, tuple[str, str, str, str, str]] = {
    "good morning": ("buenos días", "bonjour", "guten Morgen", "buongiorno", "bom dia"),
    "thank you": ("gracias", "merci", "danke", "grazie", "obrigado|obrigada"),
    "good night": ("buenas noches", "bonne nuit", "gute Nacht", "buonanotte|buona notte", "boa noite"),
    "please": ("por favor", "s'il vous plaît|s'il te plaît", "bitte", "per favore", "por favor"),
    "goodbye": ("adiós", "au revoir", "auf Wiedersehen|tschüss", "arrivederci|ciao", "adeus|tchau"),
    "yes": ("sí", "oui", "ja", "sì", "sim"),
}
_ML_FMT = ("Answer briefly.", "One item per line.", "Reply as 'source: translation' pairs.", "Add a short example sentence for each.", "No explanations.")


def _lang(rng: random.Random) -> tuple[str, int]:
    i = rng.randrange(len(_ML_LANGS))
    return _ML_LANGS[i], i


def _first(alts: str) -> str:
    return alts.split("|")[0]


def _ml(name: str, scaffold: str, verifier: str | None):
    return _template(name, _ML, scaffold, verifier)


@_ml("ml_translate_words", "Translate into {lang}: {words}. {fmt}", "contains")
def _ml_translate_words(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 1, 8)
    words = rng.sample(sorted(_LEXICON), k)
    return {"lang": lang, "words": ", ".join(words), "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": [_LEXICON[w][i] for w in words]}, {"words": k}


@_ml("ml_words_to_english", "Translate these {lang} words into English: {words}. {fmt}", "contains")
def _ml_words_to_english(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 1, 8)
    words = rng.sample(sorted(_LEXICON), k)
    return {"lang": lang, "words": ", ".join(_first(_LEXICON[w][i]) for w in words), "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": words}, {"words": k}


@_ml("ml_number_words", "Write these numbers as {lang} words: {nums}. {fmt}", "contains")
def _ml_number_words(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    k = _ri(rng, h, 1, 6)
    nums = rng.sample(range(1, 21), k)
    return {"lang": lang, "nums": ", ".join(map(str, nums)), "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": [_NUMBER_WORDS[lang][n - 1] for n in nums]}, {"numbers": k}


@_ml("ml_words_to_numbers", "Which numbers are these {lang} words: {words}? Answer with digits. {fmt}", "sequence")
def _ml_words_to_numbers(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    k = _ri(rng, h, 1, 6)
    nums = rng.sample(range(1, 21), k)
    words = ", ".join(_first(_NUMBER_WORDS[lang][n - 1]) for n in nums)
    return {"lang": lang, "words": words, "fmt": rng.choice(("Keep the order.", "Give them in the same order, comma-separated."))}, {"kind": "sequence", "values": nums, "numeric": True}, {"numbers": k}


@_ml("ml_day_names", "What are the {lang} names of these days of the week: {days}? {fmt}", "contains")
def _ml_day_names(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    k = _ri(rng, h, 1, 7)
    days = rng.sample(range(7), k)
    return {"lang": lang, "days": ", ".join(_WEEKDAYS[d] for d in days), "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": [_DAY_WORDS[lang][d] for d in days]}, {"days": k}


@_ml("ml_day_arithmetic", "In {lang}, which day comes {n} days after {day}? Answer with the {lang} word. {fmt}", "choice")
def _ml_day_arithmetic(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    n, d = _ri(rng, h, 1, 60), rng.randrange(7)
    names = _DAY_WORDS[lang]
    want = names[(d + n) % 7]
    return {"lang": lang, "n": n, "day": _first(names[d]), "fmt": rng.choice(("", "Explain briefly.", "One word only."))}, _choice(want, {w: w.split("|") for w in names}), {"days": n}


def _distinctive_words(i: int) -> list[str]:
    """English words whose form in language ``i`` differs from their form in every other language
    (so 'casa' never has to be attributed to one language)."""
    if i not in _DISTINCTIVE:
        out = []
        for word, translations in sorted(_LEXICON.items()):
            forms = [_fold(_first(f)) for f in translations]
            if forms.count(forms[i]) == 1:
                out.append(word)
        _DISTINCTIVE[i] = out
    return _DISTINCTIVE[i]


_DISTINCTIVE: dict[int, list[str]] = {}


@_ml("ml_identify_language", "Which language is this: \"{phrase}\"? {fmt}", "choice")
def _ml_identify_language(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, 1.0 - h, 1, 4)  # fewer words is harder
    pool = _distinctive_words(i)
    words = [_first(_LEXICON[w][i]) for w in rng.sample(pool, max(1, k))]
    return {"phrase": " ".join(words), "fmt": rng.choice(_WORD_FMT).replace("name", "language name")}, _choice(lang, _ML_LANGS), {"clues": -len(words)}


@_ml("ml_phrases", "How do you say {phrases} in {lang}? {fmt}", "contains")
def _ml_phrases(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 1, 4)
    picked = rng.sample(sorted(_PHRASES), k)
    return {"phrases": _fmt_list([f"'{p}'" for p in picked]), "lang": lang, "fmt": rng.choice(_ML_FMT)}, {"kind": "contains", "values": [_PHRASES[p][i] for p in picked]}, {"phrases": k}


@_ml("ml_respond_in", "Answer only in {lang}, in at most {n} sentences: what is {concept} and why does it matter to {audience}?", "constraints")
def _ml_respond_in(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    n = _ri(rng, 1.0 - h, 1, 6)  # fewer sentences allowed is harder
    check = {"kind": "constraints", "items": [{"type": "language", "lang": lang.lower()}, {"type": "max_sentences", "n": max(1, n)}]}
    return {"lang": lang, "n": max(1, n), "concept": rng.choice(_CONCEPTS), "audience": rng.choice(_AUDIENCES)}, check, {"tightness": -max(1, n)}


@_ml("ml_translate_sentence", "Translate into {lang}: \"My {rel} has a {color} {noun} and {m} {plural}.\" {fmt}", "contains")
def _ml_translate_sentence(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    rel = rng.choice(("mother", "father", "brother", "sister", "friend"))
    noun = rng.choice(("house", "door", "table", "chair", "book", "bed", "cat", "dog", "horse", "key"))
    color = rng.choice(("red", "blue", "green", "black", "white", "yellow"))
    m = _ri(rng, h, 2, 20)
    plural = rng.choice(("books", "apples", "flowers", "chairs", "eggs", "shoes", "trees"))
    fmt = rng.choice(("", "Then translate it back into English.", "Give only the translation.", "Mention any grammar change you had to make."))
    values = [_LEXICON[rel][i], _LEXICON[noun][i]]
    return {"lang": lang, "rel": rel, "color": color, "noun": noun, "m": m, "plural": plural, "fmt": fmt}, {"kind": "contains", "values": values}, {"number": m}


@_ml("ml_count_words", "How many words are in this {lang} sentence: \"{sentence}\"? {fmt}", "number")
def _ml_count_words(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 2, 16)
    words = [_first(_LEXICON[rng.choice(sorted(_LEXICON))][i]) for _ in range(k)]
    sentence = " ".join(words)
    return {"lang": lang, "sentence": sentence[0].upper() + sentence[1:], "fmt": rng.choice(_NUM_FMT)}, _num(len(sentence.split())), {"words": k}


@_ml("ml_match_pairs", "Match each {lang} word with its English meaning. {lang} words: {foreign}. English words: {english}. {fmt}", "pairs")
def _ml_match_pairs(rng: random.Random, h: float) -> Fill:
    lang, i = _lang(rng)
    k = _ri(rng, h, 2, 8)
    words = rng.sample(_distinctive_words(i), k)
    foreign = [_first(_LEXICON[w][i]) for w in words]
    english = list(words)
    rng.shuffle(english)
    fmt = rng.choice(("Write one pair per line as 'word = meaning'.", "List the pairs one per line."))
    return {"lang": lang, "foreign": ", ".join(foreign), "english": ", ".join(english), "fmt": fmt}, {"kind": "pairs", "pairs": [[f, w] for f, w in zip(foreign, words)]}, {"pairs": k}


@_ml("ml_number_arithmetic", "What is {a} {op} {b}? The numbers are written in {lang}. {fmt}", "number")
def _ml_number_arithmetic(rng: random.Random, h: float) -> Fill:
    lang, _ = _lang(rng)
    top = _ri(rng, h, 5, 20)
    a, b = rng.randint(1, top), rng.randint(1, top)
    op = rng.choice(("plus", "minus", "times"))
    value = {"plus": a + b, "minus": a - b, "times": a * b}[op]
    words = _NUMBER_WORDS[lang]
    return {"a": _first(words[a - 1]), "b": _first(words[b - 1]), "op": op, "lang": lang, "fmt": rng.choice(_NUM_FMT)}, _num(value), {"size": top}
