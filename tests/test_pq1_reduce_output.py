"""The dict aggregate state's emitted frame is built column by column (executor/state/small.py `_output_frame`).

What must hold: the frame equals the polars state's output (the property
in test_state_small.py steps both through random streams); and a window
bound column is cast from its epoch milliseconds, never made of one Python
datetime per row (the row-wise build cost 0.23 ms for YSB's 52 groups of a
reduce task, most of it those datetimes): a hook on `_datetime` fails the
test if it is called for the frame.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from executor.state import small as state_small
from executor.state.clocks import WM_INF
from executor.state.operators import AggregateState
from optimizer.physical.stages import TIME_COLUMN
from stream_dsl.ir.definitions import WindowSpec
from test_state_small import ROWS_SCHEMA, aggregate_op, partial_rows


def _rows(n: int) -> pl.DataFrame:
    t0 = dt.datetime(2024, 1, 1)
    return pl.DataFrame(
        {
            "k": [f"c{i % 7}" for i in range(n)],
            "j": [i % 3 for i in range(n)],
            TIME_COLUMN: [t0 + dt.timedelta(milliseconds=37 * i) for i in range(n)],
            "x": [i - 5 for i in range(n)],
            "y": ["p"] * n,
            "z": [None] * n,
            "b": [True] * n,
            "d": [0.5] * n,
        },
        schema=ROWS_SCHEMA,
    )


@pytest.mark.parametrize("phase", ["final", "single"])
def test_a_closed_windows_frame_is_cast_from_epoch_milliseconds(monkeypatch, phase):
    op = aggregate_op(("k",), ["n", "sx", "lo", "hy"], WindowSpec("tumble", "ts", 1000, None), "final", phase)
    batch = _rows(60)
    batch = partial_rows(op, batch) if phase == "final" else batch
    polars_state = AggregateState(op)
    polars_state._may_be_small = False
    expected = polars_state.step(batch, None, WM_INF).frame

    def made(ms: int) -> dt.datetime:
        raise AssertionError("a Python datetime per row for the emitted frame")

    monkeypatch.setattr(state_small, "_datetime", made)
    frames = []
    build = state_small.SmallAggregate._output_frame  # absent before: the frame was built from row tuples
    monkeypatch.setattr(state_small.SmallAggregate, "_output_frame", lambda *a: frames.append(build(*a)) or frames[-1])
    got = AggregateState(op).step(batch, None, WM_INF).frame
    assert len(frames) == 1  # the dict state emitted it (60 rows fit the dict)
    assert got.height == expected.height > 0
    assert_frame_equal(got, expected, check_row_order=False)
