"""The pure core: capability names and distributions, the token ledger, number checks, JSONL I/O,
the parts of a run's ``summary.json``.

Imports nothing from the rest of the package, and neither torch nor Lightning."""
