"""Requirement inference: which capabilities a task needs (the requirement vector), and the
intervention runs that fit the learned identifier."""
