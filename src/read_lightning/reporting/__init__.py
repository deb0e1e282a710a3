"""Run reports (records, figures, Markdown) and the allocator comparison (``read-train compare``).

``compare`` is a driver that runs ``read-train fit`` once per allocator and seed; it alone
imports :mod:`read_lightning.cli` (docs/architecture.md)."""
