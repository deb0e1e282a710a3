"""Model loading (Hugging Face checkpoints, the embedded default, layer compression) and the
teachers that answer prompts (in process, vLLM, HTTP).

Imports nothing else from the package; vLLM and HTTP clients are imported lazily."""
