"""Run reports (plots, summary, estimates) and the allocator comparison (``read-train compare``)."""
