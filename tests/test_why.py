"""`why`: hand-made event orders whose answer is known, on every executor; the suggested watermark delay
against a brute-force search over the same data."""

from __future__ import annotations

import datetime as dt
import io
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from executor.query.diagnostics import LATENESS_BOUNDS_MS, histogram, quantile_bound
from stream_dsl.cli.main import main

EXECUTORS = ("inline", "drizzle", "bsp")
T0 = dt.datetime(2026, 1, 1, 10)


def _context(executor: str, **options: Any) -> sd.Context:
    ctx = sd.Context(executor=executor, workers=2, **options)
    ctx.config = ctx.config.with_options(diagnose_every=1)
    return ctx


def _finish(ctx: sd.Context, query: str) -> Any:
    handle = ctx.sql(query).start(lambda batch, frame: None)
    assert handle.await_termination(120)
    assert handle.exception is None, handle.exception
    return handle


def _rows(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "k": ["a", "b"] * (n // 2),
            "v": list(range(n)),
            "ts": [T0 + dt.timedelta(seconds=i) for i in range(n)],
        },
        schema={"k": pl.String, "v": pl.Int64, "ts": pl.Datetime("ms")},
    )


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_filter_dropping_everything(executor: str) -> None:
    ctx = _context(executor)
    ctx.from_polars(_rows(10), "s", batch_size=4)
    text = _finish(ctx, "SELECT k, v FROM s WHERE v > 100").why()
    assert "10 rows read, 0 rows out" in text
    assert "No output because every row was filtered out at read s WHERE (v > 100) (10 of 10 counted)." in text


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_join_without_a_match(executor: str) -> None:
    ctx = _context(executor, optimize=False)
    ctx.from_polars(_rows(10), "s", batch_size=3)
    ctx.table_from_polars("names", pl.DataFrame({"k": ["x"], "name": ["ex"]}))
    text = _finish(ctx, "SELECT s.k, v, name FROM s JOIN names USING (k)").why()
    assert "No output because every row found no match at INNER JOIN names ON k = k (10 of 10 counted)." in text
    assert "dropped 10 (100%)" in text


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_window_the_watermark_has_not_passed(executor: str, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    frame = pl.DataFrame(
        {"k": ["a"] * 300, "ts": [T0 + dt.timedelta(milliseconds=100 * i) for i in range(300)]},
        schema={"k": pl.String, "ts": pl.Datetime("ms")},
    )
    frame.write_ndjson(tmp_path / "in" / "a.ndjson")
    ctx = _context(executor)
    ctx.sql(
        "CREATE STREAM s (k STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH "
        f"(connector = 'files', path = '{tmp_path / 'in'}', format = 'ndjson', watch = 'true')"
    )
    handle = ctx.sql("SELECT k, window_start, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '1' MINUTE)").start(
        lambda batch, frame: None
    )
    try:
        deadline = time.monotonic() + 120
        while handle.totals()["rows_in"] < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        handle.stop()
    text = handle.why()
    assert "300 rows read, 0 rows out" in text
    assert "No output yet because rows are held in open windows" in text
    assert (
        "Next output: window [2026-01-01 10:00:00, 2026-01-01 10:01:00) (stage 1, 1 windows open) closes when the "
        "watermark passes 2026-01-01 10:01:00; the watermark is 2026-01-01 10:00:28.900 because the newest event "
        "time seen in s is 2026-01-01 10:00:29.900 and the delay is 1s"
    ) in text


@pytest.mark.parametrize("executor", EXECUTORS)
def test_late_rows_with_how_late_and_the_delay_that_keeps_them(executor: str) -> None:
    seconds = [0, 10, 20, 5, 25, 3, 30]  # 5 s comes when the watermark is 20 s, 3 s when it is 25 s
    frame = pl.DataFrame({"ts": [T0 + dt.timedelta(seconds=s) for s in seconds]}, schema={"ts": pl.Datetime("ms")})
    ctx = _context(executor)
    ctx.from_polars(frame, "s", watermark="ts", batch_size=1)
    handle = _finish(ctx, "SELECT window_start, COUNT(*) AS n FROM s GROUP BY TUMBLE(ts, INTERVAL '10' SECOND)")
    text = handle.why()
    assert "Late rows: 2 arrived after the watermark passed their window and were dropped." in text
    # window [0 s, 10 s) closed at watermark 20 s and 25 s: 10.001 s and 15.001 s longer delays keep them
    assert "Late rows by how much longer a delay would have kept them: <= 15s: 1, <= 30s: 1" in text
    assert "a watermark delay of 30s (now 0ms) would have kept 99.9% of the 2 late rows" in text
    assert handle.suggested_watermark_delay() == 30_000


def test_dead_letters_by_reason(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.ndjson").write_text('{"k": "a", "v": 1}\nnot json\n{"k": "b", "v": "two"}\n')
    ctx = _context("inline")
    ctx.sql(f"CREATE STREAM s (k STRING, v BIGINT) WITH (connector = 'files', path = '{tmp_path / 'in'}')")
    text = _finish(ctx, "SELECT k, v FROM s").why()
    assert "1 rows read, 1 rows out" in text
    assert "Dead letters: 2 records could not be read (the newest 2: " in text


def test_every_record_a_dead_letter(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.ndjson").write_text("not json\nnor this\n")
    ctx = _context("drizzle")
    ctx.sql(f"CREATE STREAM s (k STRING, v BIGINT) WITH (connector = 'files', path = '{tmp_path / 'in'}')")
    text = _finish(ctx, "SELECT k, v FROM s").why()
    assert "No output because every record was a dead letter (2)" in text


def test_when_there_is_output_it_names_the_operator_that_lost_most(tmp_path: Path) -> None:
    ctx = _context("drizzle", optimize=False)
    ctx.from_polars(_rows(40), "s", batch_size=7)
    ctx.table_from_polars("names", pl.DataFrame({"k": ["a"], "name": ["A"]}))
    text = _finish(ctx, "SELECT s.k, v, name FROM s JOIN names USING (k) WHERE v >= 4").why()
    assert "36 rows read" not in text and "40 rows read, 18 rows out" in text
    assert "Most rows lost: INNER JOIN names ON k = k dropped 20 of 40 (50%)." in text  # WHERE runs after it


def test_the_command_runs_the_last_query_and_prints_the_answer(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    _rows(10).write_ndjson(tmp_path / "in" / "a.ndjson")
    out_dir = tmp_path / "out"
    (tmp_path / "q.sql").write_text(
        f"CREATE STREAM s (k STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'files', path = '{tmp_path / 'in'}');\n"
        f"CREATE SINK o WITH (connector = 'files', path = '{out_dir}', format = 'ndjson');\n"
        "INSERT INTO o SELECT k, v FROM s WHERE k = 'c';\n"
    )
    out = io.StringIO()
    assert main(["why", str(tmp_path / "q.sql"), "--executor", "bsp"], out=out) == 0
    expected = "No output because every row was filtered out at read s WHERE (k = 'c') (10 of 10 counted)."
    assert expected in out.getvalue()
    assert not out_dir.exists() or not any(out_dir.iterdir())  # the sink is not written


# ---------------------------------------------------------------- the suggested delay, brute force


def _late_rows(frame: pl.DataFrame, delay_ms: int) -> tuple[int, Any]:
    ctx = sd.Context(executor="inline", workers=1, optimize=False)
    ctx.from_polars(frame, "s", watermark="ts", watermark_delay=f"{delay_ms}ms", batch_size=10)
    handle = _finish(ctx, "SELECT window_start, COUNT(*) AS n FROM s GROUP BY TUMBLE(ts, INTERVAL '10' SECOND)")
    return handle.totals()["late_rows"], handle


@settings(max_examples=examples(4), deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40))
def test_the_suggested_delay_is_the_smallest_that_keeps_99_percent(seed: int, disorder: int) -> None:
    rng = random.Random(seed)
    times = [T0 + dt.timedelta(milliseconds=500 * i - rng.randint(0, disorder * 1000)) for i in range(200)]
    frame = pl.DataFrame({"ts": times}, schema={"ts": pl.Datetime("ms")})
    base = 1_000
    late, handle = _late_rows(frame, base)
    suggested = handle.suggested_watermark_delay(0.99)
    if not late:
        assert suggested is None
        return
    assert suggested is not None and suggested > base
    # brute force: rerun with each delay a person would write, shortest first; late rows only fall as it grows
    candidates = [base + bound for bound in LATENESS_BOUNDS_MS if bound <= 60_000]
    smallest = next(d for d in candidates if _late_rows(frame, d)[0] <= 0.01 * late)
    assert suggested == smallest


def test_quantile_bounds() -> None:
    counts = histogram(np.array([1, 3, 3, 9, 4_000, 20_000]))
    assert quantile_bound(counts, 0.5) == 5
    assert quantile_bound(counts, 0.99) == 30_000
    assert quantile_bound([0] * len(counts), 0.99) is None
