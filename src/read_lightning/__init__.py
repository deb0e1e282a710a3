"""read-lightning: budgeted, reinforcement-guided capability distillation (ReAD) on Lightning.

Public names are imported lazily, so ``import read_lightning.bandit`` (the pure core) does not
pull in Lightning or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    # pure core
    "DEFAULT_CAPABILITIES": "capabilities",
    "validate_distribution": "capabilities",
    "distillation_loss": "losses",
    "kd_divergence": "losses",
    "TokenLedger": "ledger",
    "BudgetExceeded": "ledger",
    "UCBEnsembleAllocator": "bandit",
    "make_allocator": "bandit",
    "ALLOCATORS": "bandit",
    "compute_reward": "bandit",
    "candidate_actions": "bandit",
    "make_environment": "simulator",
    "run_episode": "simulator",
    # generation
    "Prompt": "generation",
    "Generation": "generation",
    "HFTeacher": "generation",
    "HTTPTeacher": "generation",
    "VLLMTeacher": "generation",
    "TeacherError": "generation",
    "StaticPromptSource": "generation",
    "TemplateLibrary": "templates",
    "Curriculum": "templates",
    "LeakageFilter": "leakage",
    "build_hash_set": "leakage",
    # evaluation
    "CapabilityProbe": "probes",
    "TaskCard": "tasks",
    "evaluate_task": "tasks",
    "infer_requirement": "requirement",
    "RequirementIdentifier": "requirement",
    # run reports
    "write_report": "report",
    "load_run": "report",
    "estimate_transfer": "report",
    # Lightning adapters
    "CapabilityDataModule": "data",
    "DistillationModule": "module",
    "BanditAllocationCallback": "callbacks",
    "CapabilityProbeCallback": "callbacks",
    "TaskEvaluationCallback": "callbacks",
    "EMBEDDED": "models",
    "load_model": "models",
    "load_tokenizer": "models",
    "compress_layers": "models",
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
