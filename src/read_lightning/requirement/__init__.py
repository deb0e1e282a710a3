"""The requirement vector of a task card: written in the card, predicted by the learned
identifier, or rated by the teacher (:func:`read_lightning.requirement.inference.infer_requirement`).

``interventions`` is a driver that runs short distillations to collect the identifier's data;
it alone imports :mod:`read_lightning.training` (docs/architecture.md)."""
