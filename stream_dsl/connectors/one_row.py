"""The relation a SELECT without FROM reads: one row, then the end (DuckDB's `SELECT 1`, `SELECT now()`).

Its one column is never visible to the query (`bind/no_from.py` binds the SELECT list in an empty
scope); a projection that keeps no column still gets the row, as a frame with a height and no columns.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from stream_dsl.connectors.base import SourceBatch
from stream_dsl.ir.definitions import SourceDef

COLUMN = "one_row"
OPTION_SPECS: dict[str, tuple] = {"source": (), "table": ()}


class OneRowSource:
    """Bounded: the first batch holds the row and is the last; the offset says whether it was read."""

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self._columns: list[str] = [COLUMN]
        self._done = False

    @property
    def bounded(self) -> bool:
        return True

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        self._columns = [COLUMN] if columns is None else [c for c in columns if c == COLUMN]
        self._done = bool(offset)

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False) -> SourceBatch:
        rows = 0 if self._done else 1
        self._done = True
        frame = pl.DataFrame({COLUMN: [True] * rows}) if self._columns else pl.DataFrame(height=rows)
        return SourceBatch(frame, exhausted=True, offset=1)

    def close(self) -> None:
        pass


class OneRowTable:
    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition

    def read(self, columns: list[str] | None = None) -> pl.DataFrame:
        wanted = [COLUMN] if columns is None else [c for c in columns if c == COLUMN]
        return pl.DataFrame({COLUMN: [True]}) if wanted else pl.DataFrame(height=1)


def make_source(definition: SourceDef) -> OneRowSource:
    return OneRowSource(definition)


def make_table(definition: SourceDef) -> OneRowTable:
    return OneRowTable(definition)
