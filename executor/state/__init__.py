"""Operator state: windows, aggregates, DISTINCT, and their snapshots."""
