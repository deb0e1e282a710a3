"""Model loading (Hugging Face checkpoints, the embedded default) and the teachers that generate answers.

Imports only :mod:`read_lightning.core`; vLLM and HTTP clients are imported lazily."""
