"""Data loader of the packaged probes as stock lm-eval tasks (``custom_dataset`` in
``_stock_probe.yaml``). lm-eval imports this file from the YAML's directory; it needs only
``datasets``, never read_lightning, and reads ``<capability>.jsonl`` next to itself, so the
tasks work from any working directory."""

import json
from pathlib import Path

import datasets


def load(capability: str, **_: object) -> datasets.DatasetDict:
    """The ``test`` split of one capability's items: ``id``, ``prompt``, ``answer`` per row."""
    path = Path(__file__).resolve().with_name(f"{capability}.jsonl")
    if not path.is_file():
        raise FileNotFoundError(f"probe data file {path} does not exist")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                rows.append({"id": str(row["id"]), "prompt": str(row["prompt"]), "answer": str(row["answer"])})
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})
