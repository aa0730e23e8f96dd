"""What the stream join and the interval join keep alike: both sides' rows of one partition, and how a batch's
rows of one side are sorted before they meet the other side's.

A row of a side may match, never can (a NULL key; for the interval join
also a NULL event time, which no interval contains), or is late: older
than the join's horizon (the interval join's watermark, the stream join's
TTL before it), so every row it could have matched is gone. Late rows are
counted and dropped; rows that never match are emitted padded by an outer
join. `sorted_rows` is that rule, once for both joins.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from optimizer.physical.interval_join import SIDE_COLUMN


class TwoSidedState:
    """Both sides' kept rows of one partition, as `StreamJoinState` and `IntervalJoinState` hold them: each side's
    columns and the keys, with the join's own bookkeeping columns."""

    def __init__(self, op: Any) -> None:
        self.op = op
        self.keys = list(op.keys)
        self.left_columns = list(op.left_columns)
        self.right_columns = list(op.right_columns)
        self.left: pl.DataFrame | None = None
        self.right: pl.DataFrame | None = None
        self.late_left = 0
        self.late_right = 0

    @property
    def open_groups(self) -> int:
        """Rows kept, both sides: the state size that progress reports (`state_groups`)."""
        return sum(0 if f is None else f.height for f in (self.left, self.right))

    def side(self, rows: pl.DataFrame, right: bool) -> pl.DataFrame:
        """A batch's rows of one side (the physical join marks the right input's rows in SIDE_COLUMN)."""
        return rows.filter(pl.col(SIDE_COLUMN) if right else ~pl.col(SIDE_COLUMN))

    def sorted_rows(
        self, rows: pl.DataFrame, time: str, *, time_required: bool, horizon: int | None
    ) -> tuple[pl.DataFrame, pl.DataFrame, int]:
        """(rows that may match, rows that never can, how many were late) of one side's rows (module doc).
        `time`: the rows' event time in epoch ms; `horizon`: rows before it are late (None: none are)."""
        if not rows.height:
            return rows, rows, 0
        valid = pl.col(time).is_not_null() if time_required else pl.lit(True)
        for k in self.keys:
            valid = valid & pl.col(k).is_not_null()
        late = pl.lit(False) if horizon is None else (pl.col(time) < horizon).fill_null(False)
        flags = rows.select(valid.alias("valid"), late.alias("late"))
        is_valid, is_late = flags.get_column("valid"), flags.get_column("late")
        return rows.filter(is_valid & ~is_late), rows.filter(~is_valid), int((is_valid & is_late).sum())
