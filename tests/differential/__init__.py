"""A random differential tester (SQLancer style): our engine against DuckDB on generated queries and data.

- `oracle`: load data into both engines, run one query, compare the answers.
- `generator`: random data (NULLs, NaN, extremes) and random queries over the claimed SQL surface.
- `shrink`: make a failing case small (fewer rows, simpler query) while it still fails.
- `python -m tests.differential --seed S --count N`: a long local run that prints each shrunk failure.
"""
