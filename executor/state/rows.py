"""A small frame as Python rows: what a worker sends the driver instead of Arrow IPC bytes.

Made by `changelog_rows.pack` from a changelog part, or directly by the
Python aggregate state (`state_small`), which has the rows before any
frame exists; the driver folds the rows without making a frame either.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True, slots=True)
class RowsPart:
    """A small changelog part (upserts or deletes) as Python rows, exactly as `DataFrame.rows()` gives them."""

    columns: list[str]
    dtypes: list[pl.DataType]
    values: list[tuple]

    def __reduce__(self) -> tuple:
        """Positional pickling: one per output task and batch, and a slots dataclass pickles field by field."""
        return RowsPart, (self.columns, self.dtypes, self.values)

    @property
    def height(self) -> int:
        return len(self.values)

    def frame(self) -> pl.DataFrame:
        """The part as the frame it was made from (its values survive the trip, see `pack`)."""
        return pl.DataFrame(self.values, schema=list(zip(self.columns, self.dtypes)), orient="row")
