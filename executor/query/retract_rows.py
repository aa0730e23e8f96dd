"""A retract changelog folded into a table: each row's +1/-1 operations summed as a multiset.

A retract frame carries CHANGELOG_OP (Int8): +1 adds a row, -1 removes one
earlier-added equal row (an update is -old then +new). A frame without the
column is all +1 (append-only rows). The table a retract stream stands for
is every distinct row whose operations sum to a positive count, that many
times. `RetractTable` keeps the stream folded (rows with their net count)
and compacts as it grows, so collect() holds about one row per live row,
not the whole history of changes.
"""

from __future__ import annotations

import polars as pl

from stream_dsl.ir.column_names import CHANGELOG_OP

_OP = CHANGELOG_OP
COMPACT_ROWS = 65_536  # fold the pending frames once they hold this many rows more than the last fold


def with_ops(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with its operations as Int64 counts (+1 for every row of a frame without them)."""
    if _OP in frame.columns:
        return frame.with_columns(pl.col(_OP).fill_null(1).cast(pl.Int64))
    return frame.with_columns(pl.lit(1, dtype=pl.Int64).alias(_OP))


def fold(frames: list[pl.DataFrame]) -> pl.DataFrame | None:
    """One frame of distinct rows and their net counts (CHANGELOG_OP, Int64); rows netting to 0 go."""
    frames = [with_ops(f) for f in frames if f.height]
    if not frames:
        return None
    stacked = pl.concat(frames, how="diagonal_relaxed")
    columns = [c for c in stacked.columns if c != _OP]
    if not columns:
        return stacked.select(pl.col(_OP).sum())
    summed = stacked.group_by(columns, maintain_order=True).agg(pl.col(_OP).sum())
    return summed.filter(pl.col(_OP) != 0)


def expand(folded: pl.DataFrame | None) -> pl.DataFrame | None:
    """The rows of a folded multiset: each row with a positive count, that many times (no op column)."""
    if folded is None:
        return None
    live = folded.filter(pl.col(_OP) > 0)
    columns = [c for c in live.columns if c != _OP]
    if not columns:
        return None
    index = pl.int_ranges(pl.col(_OP)).alias("__sd_i")  # a list of `count` items per row, exploded
    return live.with_columns(index).explode("__sd_i").select(columns)


class RetractTable:
    """The folded table of a retract stream (module doc); `add` frames in order, `rows()` at the end."""

    def __init__(self) -> None:
        self.folded: pl.DataFrame | None = None
        self.pending: list[pl.DataFrame] = []
        self._pending_rows = 0

    def add(self, frame: pl.DataFrame) -> None:
        if not frame.height:
            return
        self.pending.append(frame)
        self._pending_rows += frame.height
        if self._pending_rows >= COMPACT_ROWS + (0 if self.folded is None else self.folded.height):
            self._compact()

    def _compact(self) -> None:
        self.folded = fold(([] if self.folded is None else [self.folded]) + self.pending)
        self.pending, self._pending_rows = [], 0

    def rows(self) -> pl.DataFrame | None:
        """Every live row (None when nothing was ever added)."""
        self._compact()
        return expand(self.folded)
