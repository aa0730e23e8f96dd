"""The intermediate representation: types, bound expressions, functions, plan nodes, compilation to polars.

Imports no front end.
"""
