"""Prompt generation: slot templates, the capability banks, verifiers, the curriculum, leakage filtering.

Imports :mod:`read_lightning.core`, :mod:`read_lightning.teachers` (the ``Prompt`` record) and
:mod:`read_lightning.evaluation` (the code sandbox and answer extraction)."""
