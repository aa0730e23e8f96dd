"""How late a batch's late rows were: how much longer a watermark delay would have kept each one.

A row is late when its first window has closed: `first_end(t) <= wm`
(`executor/state/windows.py`), against the watermark before its batch. With
a delay longer by Δ the watermark is lower by Δ at every batch boundary, so
the row is kept exactly when Δ > wm - first_end(t): its lateness is
wm - first_end(t) + 1 ms. Two-phase aggregates see partial rows, one per
group and window with the count of rows it stands for, whose window end
gives the same number. A row without an event time is late whatever the
delay: it counts in the histogram's last bucket.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from executor.query.diagnostics import BUCKETS, histogram
from executor.state.windows import Windows
from optimizer.physical.stages import TIME_COLUMN, AggregateOp
from executor.state.clocks import WM_INF
from stream_dsl.ir.column_names import PARTIAL_ROWS, WINDOW_END
from stream_dsl.ir.late_rows import LATENESS_COLUMN, PREFIX

_OVERFLOW = np.iinfo(np.int64).max


def late_rows_lateness(op: object, rows: pl.DataFrame, watermark: int) -> list[int] | None:
    """The lateness histogram of the late rows among a windowed aggregate's input `rows` (None: another
    operator, whose lateness is not measured)."""
    if not isinstance(op, AggregateOp) or op.window is None or not rows.height:
        return None
    if op.final:
        ends = rows.get_column(WINDOW_END).dt.epoch("ms")
        weights = rows.get_column(PARTIAL_ROWS).cast(pl.Float64)
    else:
        times = rows.get_column(TIME_COLUMN).dt.epoch("ms")
        ends = Windows.of(op.window).first_end(times)
        weights = None
    late = ends.is_null() | (ends <= watermark)
    if not late.any():
        return [0] * BUCKETS
    lateness = (watermark - ends.filter(late) + 1).fill_null(_OVERFLOW).to_numpy()
    return histogram(lateness, None if weights is None else weights.filter(late).to_numpy())


def split_late_rows(
    op: AggregateOp, rows: pl.DataFrame, watermark: int | None
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """An aggregate's input without the columns carried for routing, and its late rows as they reached the
    GROUP BY, with their lateness (None: no late row). The same rule as the state's: the row's first window
    closed at the watermark before its batch."""
    carried = [PREFIX + c for c in op.late_columns]
    kept = rows.drop(carried)
    window = op.window
    if window is not None and not window.watermarked and (watermark is None or watermark < WM_INF):
        watermark = None  # a window the watermark does not bound: only the end of input closes it
    if watermark is None or window is None or not rows.height:
        return kept, None
    ends = Windows.of(window).first_end(rows.get_column(TIME_COLUMN).dt.epoch("ms"))
    late = ends.is_null() | (ends <= watermark)
    if not late.any():
        return kept, None
    routed = rows.filter(late).select(pl.col(p).alias(c) for p, c in zip(carried, op.late_columns))
    return kept, routed.with_columns((watermark - ends.filter(late) + 1).alias(LATENESS_COLUMN))
