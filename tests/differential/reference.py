"""DuckDB as the tests' reference, opened and filled fast: `duckdb_connection()` and `duckdb_table()`.

A fresh `duckdb.connect()` costs about 28 ms (DuckDB 2.0), and
`executemany` runs one INSERT a row at about 0.9 ms each: 13% of the CPU of
the differential tests went there. So each reference query gets its own
connection to one in-memory database per test process (`cursor()`, about
10 us), its tables are TEMP tables (that connection's alone, gone with it),
and their rows go in with one INSERT of many VALUES per chunk. The values
bind to the same parameters as before, typed by the table's columns, so
DuckDB sees the same data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import duckdb

CHUNK_ROWS = 500  # rows per INSERT statement

_database: list[duckdb.DuckDBPyConnection] = []


def duckdb_connection(*settings: str) -> duckdb.DuckDBPyConnection:
    """A connection of its own to this process's in-memory database, with `settings` (SET statements) applied
    to it alone (they are session settings)."""
    if not _database:
        _database.append(duckdb.connect())
    con = _database[0].cursor()
    for setting in settings:
        con.execute(setting)
    return con


def duckdb_table(con: duckdb.DuckDBPyConnection, name: str, columns: str, rows: Iterable[Sequence[object]]) -> None:
    """CREATE TEMP TABLE `name` (`columns`, DuckDB's column list) holding `rows` (tuples in column order)."""
    con.execute(f"CREATE TEMP TABLE {name} ({columns})")
    rows = list(rows)
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start : start + CHUNK_ROWS]
        marks = "(" + ", ".join("?" * len(chunk[0])) + ")"
        con.execute(f"INSERT INTO {name} VALUES {', '.join([marks] * len(chunk))}", [v for row in chunk for v in row])
