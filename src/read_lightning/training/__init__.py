"""The Lightning adapters: the distillation module, the data module and its batching, the
callbacks, and the loss (plain torch)."""
