"""The reduce side of a two-phase aggregate (issue 22, workers scale).

With N workers every batch has N reduce tasks, so what a reduce task pays
whatever its rows is paid N times per batch. Its partial rows' late count
is told from their window columns when no window can be closed (the usual
case), with no query; these tests hold that shortcut to the query it
replaces: `_none_closed` says "none late" exactly when filtering with
`_closed_partial` finds none.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from budget import examples
from executor.state.operators import _closed_partial, _none_closed
from stream_dsl.ir.column_names import PARTIAL_ROWS, WINDOW_END, WINDOW_START

EPOCH = dt.datetime(2026, 1, 1)
EPOCH_MS = 1_767_225_600_000  # EPOCH in epoch milliseconds (UTC, as polars reads a naive datetime)


def partial_rows(windows: list[tuple[int | None, int | None]]) -> pl.DataFrame:
    """Partial rows with window bounds (ms after EPOCH; None: no window), one input row each."""
    at = [None if ms is None else EPOCH + dt.timedelta(milliseconds=ms) for ms in (s for s, _ in windows)]
    to = [None if ms is None else EPOCH + dt.timedelta(milliseconds=ms) for ms in (e for _, e in windows)]
    return pl.DataFrame(
        {
            WINDOW_START: pl.Series(at, dtype=pl.Datetime("ms")),
            WINDOW_END: pl.Series(to, dtype=pl.Datetime("ms")),
            PARTIAL_ROWS: [1] * len(windows),
        }
    )


def late_by_query(rows: pl.DataFrame, wm: int | None) -> int:
    as_ms = rows.with_columns(pl.col(WINDOW_START).dt.epoch("ms"), pl.col(WINDOW_END).dt.epoch("ms"))
    return as_ms.filter(_closed_partial(wm)).height


window = st.integers(0, 50).map(lambda k: (k * 100, k * 100 + 100))
maybe_missing = st.one_of(window, st.sampled_from([(None, None), (0, None), (None, 100)]))


@settings(max_examples=examples(150))
@given(
    windows=st.lists(window, max_size=8) | st.lists(maybe_missing, max_size=8),
    wm_offset=st.one_of(st.none(), st.integers(-100, 5_200)),
)
def test_no_late_partial_rows_is_told_from_the_columns_exactly_when_the_query_finds_none(windows, wm_offset):
    rows = partial_rows(windows)
    wm = None if wm_offset is None else EPOCH_MS + wm_offset
    if _none_closed(rows, wm):
        assert late_by_query(rows, wm) == 0
    elif all(s is not None and e is not None for s, e in windows):
        assert late_by_query(rows, wm) > 0  # with every bound known, only a closed window sends it to the query
