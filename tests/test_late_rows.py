"""Late rows routed to a sink (`WITH (late_rows = 'sink')`): each late row once, with how late it was, on
every executor and optimizer setting, and exactly once across a worker kill."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import time
from pathlib import Path

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.connectors import memory
from stream_dsl.errors import DSLError

T0 = dt.datetime(2026, 1, 1, 10)
QUERY = "SELECT k, window_start, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"


def _define(ctx: sd.Context, frames: list[pl.DataFrame], late_sink: str = "late") -> str:
    id = memory.register(memory.new_id("late"), frames)
    ctx.sql(
        "CREATE STREAM s (k STRING, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts) "
        f"WITH (connector = 'memory', id = '{id}', late_rows = '{late_sink}')"
    )
    sink_id = memory.new_id("late_sink")
    ctx.sql(f"CREATE SINK late WITH (connector = 'memory', id = '{sink_id}')")
    return sink_id


def _frame(seconds: list[int], seed: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    return pl.DataFrame(
        {
            "k": [rng.choice("ab") for _ in seconds],
            "v": list(range(len(seconds))),
            "ts": [T0 + dt.timedelta(seconds=s) for s in seconds],
        },
        schema={"k": pl.String, "v": pl.Int64, "ts": pl.Datetime("ms")},
    )


def _expected_late(frames: list[pl.DataFrame], window_s: int = 10) -> list[tuple]:
    """Brute force, batch by batch: a row is late when its window ended at or before the watermark (the
    newest event time of the earlier batches); lateness = watermark - window end + 1 ms."""
    late, watermark = [], None
    for frame in frames:
        for k, v, ts in frame.iter_rows():
            end = T0 + dt.timedelta(seconds=((ts - T0).total_seconds() // window_s + 1) * window_s)
            if watermark is not None and end <= watermark:
                late.append((k, v, ts, int((watermark - end).total_seconds() * 1000) + 1))
        newest = frame.get_column("ts").max()
        watermark = newest if watermark is None else max(watermark, newest)
    return sorted(late)


def _routed(sink_id: str) -> list[tuple]:
    frame = memory.sink_output(sink_id)
    return sorted(frame.select("k", "v", "ts", "lateness_ms").iter_rows()) if frame is not None else []


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
@pytest.mark.parametrize("optimize", [True, False])
def test_each_late_row_reaches_the_sink_once_with_its_lateness(executor: str, optimize: bool) -> None:
    seconds = [0, 10, 20, 5, 25, 3, 30, 12, 41, 33, 8]
    frames = [_frame(seconds[i : i + 2], seed=i) for i in range(0, len(seconds), 2)]
    ctx = sd.Context(executor=executor, workers=2, optimize=optimize)
    sink_id = _define(ctx, frames)
    result = ctx.sql(QUERY).collect()
    expected = _expected_late(frames)
    assert len(expected) == 4  # 5 s, 3 s, 12 s and 8 s come after their windows closed
    assert _routed(sink_id) == expected
    assert result.get_column("n").sum() == len(seconds) - len(expected)
    batches = memory.sink_batches(sink_id)
    assert all((f.get_column("batch_id") == b).all() for b, f in batches.items())


def test_two_sinks_for_one_aggregate_are_refused() -> None:
    ctx = sd.Context(executor="inline")
    a = memory.register(memory.new_id("a"), [_frame([0])])
    b = memory.register(memory.new_id("b"), [_frame([0])])
    for name, id, sink in (("s", a, "x"), ("t", b, "y")):
        ctx.sql(
            f"CREATE STREAM {name} (k STRING, v BIGINT, ts TIMESTAMP) "
            f"WITH (connector = 'memory', id = '{id}', late_rows = '{sink}')"
        )
    with pytest.raises(DSLError, match="different sinks: x, y"):
        ctx.sql(
            "SELECT window_start, COUNT(*) AS n FROM (SELECT ts FROM s UNION ALL SELECT ts FROM t) "
            "GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)"
        ).collect()


def test_an_unknown_sink_is_named() -> None:
    ctx = sd.Context(executor="inline")
    _define(ctx, [_frame([0])], late_sink="lat")
    with pytest.raises(DSLError, match=r"late_rows 'lat' is not a sink in the catalog \(did you mean 'late'\?\)"):
        ctx.sql(QUERY).collect()


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
def test_exactly_once_across_a_worker_kill(executor: str, tmp_path: Path) -> None:
    rng = random.Random(4)
    seconds = [i // 4 - rng.randint(0, 25) * (rng.random() < 0.2) for i in range(1200)]
    frames = [_frame(seconds[i : i + 20], seed=i) for i in range(0, len(seconds), 20)]
    ctx = sd.Context(executor=executor, workers=2, group_size=2, checkpoint_dir=str(tmp_path / "ckpt"))
    sink_id = _define(ctx, frames)
    out_id = memory.new_id("out")
    ctx.sql(f"CREATE SINK out WITH (connector = 'memory', id = '{out_id}')")
    handle = ctx.sql(f"INSERT INTO out {QUERY}")
    deadline = time.monotonic() + 120
    while handle.batches < 15 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(handle.worker_pids()[0], signal.SIGKILL)
    assert handle.await_termination(180)
    assert handle.exception is None, handle.exception
    assert handle.recoveries, "the kill was not noticed"
    expected = _expected_late(frames)
    assert len(expected) > 50
    assert _routed(sink_id) == expected
