"""Fault tolerance: checkpoint files, checkpointing at group boundaries, the batch offset log."""
