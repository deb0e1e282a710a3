"""Built-in tool-use templates: pick the right tool from generated JSON schemas and fill its arguments."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from read_lightning.prompts.banks.steerability import _KEYWORDS
from read_lightning.prompts.banks.vocabulary import _CATEGORIES, _COUNTRIES, _NAMES, _NOUN, _TOPICS, _nonce
from read_lightning.prompts.slots import _BUILTIN, Fill, Template, _ri, _steer, _template

# -- tool use: pick the right tool from generated JSON schemas and fill its arguments ---------

_CITIES = tuple(c[1].split("|")[0] for c in _COUNTRIES)
_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "SEK", "NOK", "INR", "BRL", "MXN")
_TICKERS = ("AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "IBM", "ORCL", "SAP", "ASML", "SONY")
_LANGS = ("Spanish", "French", "German", "Italian", "Portuguese", "Japanese", "Korean", "Dutch")


def _date(rng: random.Random) -> str:
    return f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _hhmm(rng: random.Random) -> str:
    return f"{rng.randint(6, 22):02d}:{rng.choice((0, 15, 30, 45)):02d}"


# name: (description, [(param, json type, description, draw, required, phrase)])
# ``phrase`` renders the argument inside the user's request.
_TOOLS: dict[str, tuple[str, list[tuple[str, str, str, Callable[[random.Random], Any], bool, str]]]] = {
    "get_weather": ("Current weather and forecast for a city.", [
        ("city", "string", "City name", lambda r: r.choice(_CITIES), True, "in {v}"),
        ("unit", "string", "celsius or fahrenheit", lambda r: r.choice(("celsius", "fahrenheit")), False, "in {v}"),
        ("days", "integer", "Forecast length in days", lambda r: r.randint(1, 7), False, "for the next {v} days"),
    ]),
    "convert_currency": ("Convert an amount between currencies.", [
        ("amount", "number", "Amount to convert", lambda r: round(r.uniform(1, 5000), 2), True, "{v}"),
        ("from_currency", "string", "ISO code to convert from", lambda r: r.choice(_CURRENCIES), True, "{v}"),
        ("to_currency", "string", "ISO code to convert to", lambda r: r.choice(_CURRENCIES), True, "into {v}"),
    ]),
    "search_flights": ("Search flights between two cities.", [
        ("origin", "string", "Departure city", lambda r: r.choice(_CITIES), True, "from {v}"),
        ("destination", "string", "Arrival city", lambda r: r.choice(_CITIES), True, "to {v}"),
        ("date", "string", "Departure date YYYY-MM-DD", _date, True, "on {v}"),
        ("passengers", "integer", "Number of passengers", lambda r: r.randint(1, 6), False, "for {v} passengers"),
    ]),
    "set_timer": ("Start a countdown timer.", [
        ("minutes", "integer", "Duration in minutes", lambda r: r.randint(1, 180), True, "for {v} minutes"),
        ("label", "string", "Timer label", lambda r: r.choice(("tea", "pasta", "laundry", "break", "bread", "call")), False, "labelled {v}"),
    ]),
    "send_email": ("Send an email.", [
        ("to", "string", "Recipient address", lambda r: f"{r.choice(_NAMES).lower()}@example.com", True, "to {v}"),
        ("subject", "string", "Subject line", lambda r: r.choice(_TOPICS), True, "about {v}"),
        ("urgent", "boolean", "Mark as urgent", lambda r: r.random() < 0.5, False, "(urgent: {v})"),
    ]),
    "create_event": ("Add an event to the calendar.", [
        ("title", "string", "Event title", lambda r: r.choice(("dentist", "team sync", "yoga", "piano lesson", "budget review")), True, "called {v}"),
        ("date", "string", "Date YYYY-MM-DD", _date, True, "on {v}"),
        ("start_time", "string", "Start time HH:MM", _hhmm, True, "at {v}"),
        ("duration_minutes", "integer", "Length in minutes", lambda r: r.choice((15, 30, 45, 60, 90, 120)), False, "lasting {v} minutes"),
    ]),
    "get_stock_price": ("Latest price of a listed stock.", [
        ("ticker", "string", "Ticker symbol", lambda r: r.choice(_TICKERS), True, "{v}"),
        ("currency", "string", "Quote currency", lambda r: r.choice(_CURRENCIES[:4]), False, "quoted in {v}"),
    ]),
    "translate_text": ("Translate text into another language.", [
        ("text", "string", "Text to translate", lambda r: r.choice(("good morning", "where is the station", "thank you very much", "see you tomorrow", "the bill, please")), True, "'{v}'"),
        ("target_language", "string", "Language to translate into", lambda r: r.choice(_LANGS), True, "into {v}"),
    ]),
    "book_table": ("Reserve a restaurant table.", [
        ("restaurant", "string", "Restaurant name", lambda r: f"{r.choice(('The', 'Chez', 'Casa', 'Little'))} {r.choice(_NOUN).title()}", True, "at {v}"),
        ("party_size", "integer", "Number of guests", lambda r: r.randint(1, 12), True, "for {v} people"),
        ("time", "string", "Time HH:MM", _hhmm, True, "at {v}"),
    ]),
    "get_directions": ("Route between two places.", [
        ("origin", "string", "Start", lambda r: r.choice(_CITIES), True, "from {v}"),
        ("destination", "string", "End", lambda r: r.choice(_CITIES), True, "to {v}"),
        ("mode", "string", "driving, walking, transit or cycling", lambda r: r.choice(("driving", "walking", "transit", "cycling")), False, "by {v}"),
    ]),
    "play_music": ("Play music.", [
        ("genre", "string", "Music genre", lambda r: r.choice(("jazz", "rock", "classical", "hip hop", "folk", "ambient")), True, "some {v}"),
        ("volume", "integer", "Volume 1-10", lambda r: r.randint(1, 10), False, "at volume {v}"),
    ]),
    "find_recipes": ("Find recipes.", [
        ("ingredient", "string", "Main ingredient", lambda r: r.choice(_CATEGORIES["vegetables"] + _CATEGORIES["fruits"]), True, "with {v}"),
        ("max_minutes", "integer", "Maximum cooking time", lambda r: r.choice((10, 20, 30, 45, 60)), False, "that take at most {v} minutes"),
        ("diet", "string", "Diet restriction", lambda r: r.choice(("vegan", "vegetarian", "gluten-free", "none")), False, "({v} diet)"),
    ]),
    "check_inventory": ("Stock level of a product in a warehouse.", [
        ("sku", "string", "Product code", lambda r: f"SKU-{r.randint(1000, 99999)}", True, "of {v}"),
        ("warehouse", "string", "Warehouse city", lambda r: r.choice(_CITIES), False, "in the {v} warehouse"),
    ]),
}
_TOOL_ASKS = {
    "get_weather": "What's the weather {city} {unit} {days}?",
    "convert_currency": "Convert {amount} {from_currency} {to_currency}.",
    "search_flights": "Find me flights {origin} {destination} {date} {passengers}.",
    "set_timer": "Set a timer {minutes} {label}.",
    "send_email": "Email {to} {subject} {urgent}.",
    "create_event": "Put an event {title} in my calendar {date} {start_time} {duration_minutes}.",
    "get_stock_price": "What is the price of {ticker} stock {currency}?",
    "translate_text": "Translate {text} {target_language}.",
    "book_table": "Book a table {restaurant} {party_size} {time}.",
    "get_directions": "How do I get {origin} {destination} {mode}?",
    "play_music": "Play {genre} {volume}.",
    "find_recipes": "Find recipes {ingredient} {max_minutes} {diet}.",
    "check_inventory": "How many units {sku} are left {warehouse}?",
}
_TOOL_FMT = (
    'Respond with only a JSON object of the form {"name": <tool name>, "arguments": {...}}.',
    'Reply with the tool call as JSON: {"name": ..., "arguments": ...}. No other text.',
    'Think about which tool fits, then output the call as a JSON object with keys "name" and "arguments".',
)


def _schema(name: str) -> dict[str, Any]:
    desc, params = _TOOLS[name]
    props = {p: {"type": t, "description": d} for p, t, d, _, _, _ in params}
    return {"name": name, "description": desc, "parameters": {"type": "object", "properties": props, "required": [p for p, _, _, _, req, _ in params if req]}}


_SCHEMA_JSON: dict[tuple[str, int | None], str] = {}


def _schemas_json(tools: Sequence[str], indent: int | None) -> str:
    """``json.dumps([_schema(t) for t in tools], indent=indent)``, from cached per-tool pieces
    (pretty-printing JSON is the slowest part of a tool-use fill)."""
    parts = []
    for t in tools:
        if (t, indent) not in _SCHEMA_JSON:
            text = json.dumps(_schema(t), indent=indent)
            _SCHEMA_JSON[t, indent] = text if indent is None else text.replace("\n", "\n" + " " * indent)
        parts.append(_SCHEMA_JSON[t, indent])
    if indent is None:
        return "[" + ", ".join(parts) + "]"
    pad = " " * indent
    return "[\n" + ",\n".join(pad + p for p in parts) + "\n]"


def _tool_filler(tool: str) -> Callable[[random.Random, float], Fill]:
    def fill(rng: random.Random, h: float) -> Fill:
        distractors = _ri(rng, h, 0, 6)
        offered = [tool] + rng.sample([t for t in _TOOLS if t != tool], distractors)
        rng.shuffle(offered)
        optional_share = _steer(rng, h, 0.0, 1.0)
        args, phrases = {}, {}
        for p, _, _, draw, req, phrase in _TOOLS[tool][1]:
            phrases[p] = ""
            if req or rng.random() < optional_share:
                args[p] = draw(rng)
                shown = str(args[p]).lower() if isinstance(args[p], bool) else args[p]
                phrases[p] = phrase.format(v=shown)
        request = re.sub(r"\s+([?.])", r"\1", re.sub(r" {2,}", " ", _TOOL_ASKS[tool].format(**phrases)))
        schemas = _schemas_json(offered, rng.choice((None, 2)))
        slots = {"tools": schemas, "request": request, "fmt": rng.choice(_TOOL_FMT)}
        return slots, {"kind": "tool_call", "name": tool, "arguments": args}, {"distractors": distractors, "arguments": len(args)}

    return fill


for _tool in _TOOLS:
    _BUILTIN.append(Template(f"tool_{_tool}", "tool_use", "You can call these tools:\n{tools}\n\nUser: {request}\n{fmt}", _tool_filler(_tool), "tool_call"))

_FIELD_POOL = (  # key, json type, value draw
    ("name", "string", lambda r: r.choice(_NAMES)), ("age", "integer", lambda r: r.randint(18, 90)),
    ("city", "string", lambda r: r.choice(_CITIES)), ("email", "string", lambda r: f"{r.choice(_NAMES).lower()}@example.org"),
    ("score", "number", lambda r: round(r.uniform(0, 100), 1)), ("active", "boolean", lambda r: r.random() < 0.5),
    ("order_id", "string", lambda r: f"ORD-{r.randint(10000, 99999)}"), ("quantity", "integer", lambda r: r.randint(1, 50)),
    ("price", "number", lambda r: round(r.uniform(1, 999), 2)), ("country", "string", lambda r: r.choice(_COUNTRIES)[0]),
    ("language", "string", lambda r: r.choice(_LANGS)), ("year", "integer", lambda r: r.randint(1950, 2025)),
)


@_template("tool_json_extract", "tool_use", "Extract {keys} from the text below as a JSON object with exactly those keys.\n\nText: {text}\n{fmt}", "json")
def _tool_json_extract(rng: random.Random, h: float) -> Fill:
    k = _ri(rng, h, 2, len(_FIELD_POOL))
    fields = rng.sample(_FIELD_POOL, k)
    values = {key: draw(rng) for key, _, draw in fields}
    parts = [f"the {key.replace('_', ' ')} is {json.dumps(v) if isinstance(v, bool) else v}" for key, v in values.items()]
    rng.shuffle(parts)
    text = "Record note: " + "; ".join(parts) + "."
    schema = {"type": "object", "properties": {key: {"type": t} for key, t, _ in fields}, "required": list(values)}
    fmt = rng.choice(("Output only the JSON.", "Use the JSON types that fit (numbers as numbers, booleans as true/false).", "Wrap the JSON in a ```json block."))
    return {"keys": ", ".join(f'"{k}"' for k in values), "text": text, "fmt": fmt}, {"kind": "json", "schema": schema, "values": values}, {"fields": k}


def _random_schema(rng: random.Random, fields: int, depth: int) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for _ in range(fields):
        key = _nonce(rng, 2) + "_" + rng.choice(("id", "name", "count", "flag", "items", "info", "value"))
        kind = rng.choice(("string", "integer", "number", "boolean", "array", "object") if depth > 0 else ("string", "integer", "number", "boolean", "array"))
        if kind == "object":
            props[key] = _random_schema(rng, rng.randint(1, 3), depth - 1)
        elif kind == "array":
            props[key] = {"type": "array", "items": {"type": rng.choice(("string", "integer"))}}
        elif kind == "string" and rng.random() < 0.3:
            props[key] = {"type": "string", "enum": rng.sample(_KEYWORDS, 3)}
        else:
            props[key] = {"type": kind}
    return {"type": "object", "properties": props, "required": sorted(props)}


@_template("tool_schema_fill", "tool_use", "Produce an example JSON object that validates against this JSON schema:\n{schema}\n{fmt}", "json")
def _tool_schema_fill(rng: random.Random, h: float) -> Fill:
    fields, depth = _ri(rng, h, 1, 8), _ri(rng, h, 0, 2)
    schema = _random_schema(rng, fields, depth)
    fmt = rng.choice(("Output only the JSON object.", "Use realistic values.", "Put the JSON in a ```json block."))
    return {"schema": json.dumps(schema, indent=rng.choice((None, 2))), "fmt": fmt}, {"kind": "json", "schema": schema}, {"fields": fields, "depth": depth}
