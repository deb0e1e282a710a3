"""Budget allocation: the allocators (bandit and baselines), the reward, candidate mixtures, a simulator.

Imports only :mod:`read_lightning.core`; no torch, no Lightning."""
