"""Executors: run a stage DAG micro-batch by micro-batch.

`executor.api.collect` and `executor.api.start` are the entry points; the
inline executor (`executor.inline`) runs everything in one process and is
the reference the others are tested against.
"""
