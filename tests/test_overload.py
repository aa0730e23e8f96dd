"""Overload is visible in progress: the event-time lag of paced sources and what sources know is waiting."""

from __future__ import annotations

import time

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stream_dsl as sd
from executor.query.progress import event_lag_ms
from executor.state.clocks import WM_INF

HANG_GUARD_S = 120
EXECUTORS = ["inline", "bsp", "drizzle"]


@given(st.integers(-(10**12), 10**12), st.integers(-(10**12), 10**12), st.floats(0, 10**13))
def test_the_lag_is_how_long_ago_the_watermark_was_due(watermark, offset, now):
    assert event_lag_ms(watermark, [offset], now) == max(0.0, now - (watermark + offset))
    assert event_lag_ms(None, [offset], now) is None and event_lag_ms(WM_INF, [offset], now) is None
    assert event_lag_ms(watermark, [], now) is None  # no source paced to the wall clock


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_query_that_cannot_keep_up_shows_a_growing_event_lag(executor):
    """Each batch covers 100 ms of event time, but its sink takes 300 ms: the query falls 200 ms further
    behind the paced generator every batch. latency_ms (a batch's own time) cannot show that; event_lag_ms does."""
    ctx = sd.Context(executor=executor, workers=2, group_size=2, batch_interval="100ms")
    ctx.sql(
        "CREATE STREAM events (ad_id STRING, event_time TIMESTAMP, "
        "WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND) "
        "WITH (connector = 'generator', kind = 'ysb', rate = '1000')"
    )
    handle = ctx.sql("SELECT ad_id FROM events").start(sink=lambda batch_id, frame: time.sleep(0.3))
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while len(handle.progress()) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        handle.stop(HANG_GUARD_S)
    progress = [p for p in handle.progress() if p["event_lag_ms"] is not None]
    assert len(progress) >= 10, handle.progress()[:3]
    assert all(p["event_lag_ms"] >= 900 for p in progress)  # at least the watermark's delay behind
    first, last = progress[1], progress[-1]
    batches = last["batch_id"] - first["batch_id"]
    assert last["event_lag_ms"] - first["event_lag_ms"] >= 0.15 * 1000 * batches, (first, last)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_files_source_reports_the_files_it_has_not_read(tmp_path, executor):
    for i in range(5):
        pl.DataFrame({"v": [i]}).write_ndjson(tmp_path / f"part-{i}.ndjson")
    ctx = sd.Context(executor=executor, workers=2, group_size=2)
    ctx.sql(
        f"CREATE STREAM s (v BIGINT) WITH (connector = 'files', path = '{tmp_path}', format = 'ndjson', "
        f"max_files_per_batch = '1')"
    )
    handle = ctx.sql("SELECT v FROM s").start(sink=lambda batch_id, frame: None)
    assert handle.await_termination(HANG_GUARD_S)
    assert [p["backlog"]["s"]["files_unread"] for p in handle.progress()] == [4, 3, 2, 1, 0]
