"""Model loading (Hugging Face checkpoints, the embedded default, layer compression) and the
teachers that answer prompts (in process, vLLM, HTTP), with the specs a config names them by.

Imports only core from the package; vLLM and HTTP clients are imported lazily, and importing
the package imports only the specs (no torch), so a config's ``class_path:
read_lightning.teachers.HTTPTeacherSpec`` costs nothing to resolve."""

from read_lightning.teachers.specs import HFTeacherSpec, HTTPTeacherSpec, TeacherSpec, VLLMTeacherSpec

__all__ = ["TeacherSpec", "HFTeacherSpec", "VLLMTeacherSpec", "HTTPTeacherSpec"]
