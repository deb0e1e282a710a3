"""The Lightning adapters: the distillation module, the data module, the callbacks, the loss."""
