"""read-lightning: budgeted, reinforcement-guided capability distillation (ReAD) on Lightning.

Public names are imported lazily, so ``import read_lightning.allocation.bandit`` (the pure core) does not
pull in Lightning or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # pure core
    "DEFAULT_CAPABILITIES": "core.capabilities",
    "validate_distribution": "core.capabilities",
    "Requirement": "core.capabilities",
    "distillation_loss": "training.losses",
    "kd_divergence": "training.losses",
    "TokenLedger": "core.ledger",
    "BudgetExceeded": "core.ledger",
    "UCBEnsembleAllocator": "allocation.bandit",
    "make_allocator": "allocation.bandit",
    "ALLOCATORS": "allocation.bandit",
    "compute_reward": "allocation.bandit",
    "candidate_actions": "allocation.bandit",
    "make_environment": "allocation.simulator",
    "run_episode": "allocation.simulator",
    # generation
    "Prompt": "teachers.generation",
    "Generation": "teachers.generation",
    "HFTeacher": "teachers.generation",
    "HTTPTeacher": "teachers.generation",
    "VLLMTeacher": "teachers.generation",
    "TeacherError": "teachers.generation",
    "StaticPromptSource": "teachers.generation",
    "TemplateLibrary": "prompts.library",
    "Curriculum": "prompts.curriculum",
    "LeakageFilter": "prompts.leakage",
    "build_hash_set": "prompts.leakage",
    # evaluation
    "CapabilityProbe": "evaluation.probes",
    "TaskCard": "evaluation.tasks",
    "evaluate_task": "evaluation.tasks",
    "infer_requirement": "requirement.inference",
    "RequirementIdentifier": "requirement.identifier",
    # run reports
    "write_report": "reporting.report",
    "load_run": "reporting.records",
    "estimate_transfer": "reporting.records",
    "summary_part": "core.run_summary",
    # Lightning adapters
    "CapabilityDataModule": "training.data",
    "MixtureDataModule": "training.mixture",
    "DistillationModule": "training.module",
    "BanditAllocationCallback": "training.callbacks",
    "CapabilityProbeCallback": "training.callbacks",
    "TaskEvaluationCallback": "training.callbacks",
    "EMBEDDED": "teachers.models",
    "load_model": "teachers.models",
    "load_tokenizer": "teachers.models",
    "compress_layers": "teachers.models",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'read_lightning' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"read_lightning.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
