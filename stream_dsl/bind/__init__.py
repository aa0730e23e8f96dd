"""Binding: an AST and the catalog become a logical plan, with names resolved and types checked."""
