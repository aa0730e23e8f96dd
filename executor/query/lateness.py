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
from stream_dsl.ir.column_names import PARTIAL_ROWS, WINDOW_END

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
