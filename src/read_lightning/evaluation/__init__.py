"""Measuring a model: capability probes, task cards and their scoring, the code sandbox, answer extraction.

Imports :mod:`read_lightning.core` and :mod:`read_lightning.teachers`."""
