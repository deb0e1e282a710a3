"""The pure core: capability names and distributions, the token ledger, number checks, JSONL I/O.

Imports nothing from the rest of the package, and neither torch nor Lightning."""
