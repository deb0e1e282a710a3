"""The callbacks: probing the student, evaluating the task, and re-allocating the budget.

Put ``CapabilityProbeCallback`` (and optionally ``TaskEvaluationCallback``) before
``BanditAllocationCallback`` in the trainer's callback list: after each interval (epoch) the
probe measures the capability profile, then the bandit reads it, learns from the last choice and
pushes the next mixture into the data module.
"""

from read_lightning.training.callbacks.allocation import BanditAllocationCallback
from read_lightning.training.callbacks.probe import CapabilityProbeCallback
from read_lightning.training.callbacks.task_evaluation import TaskEvaluationCallback

__all__ = ["BanditAllocationCallback", "CapabilityProbeCallback", "TaskEvaluationCallback"]
