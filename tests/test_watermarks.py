"""Event-time semantics batch by batch: which windows are emitted when, which rows are late.

Every test feeds hand-made batches through the in-memory source (one frame
per micro-batch) and reads what the sink got per batch id and what
progress() reported. Times are seconds after 2024-01-01 00:00:00.
"""

from __future__ import annotations

import time

import datetime as dt
import json

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.errors import ExecutionError, PlanError

BASE = dt.datetime(2024, 1, 1)


def at(seconds: float) -> dt.datetime:
    return BASE + dt.timedelta(seconds=seconds)


def batch(*rows: tuple[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {"k": [r[0] for r in rows], "ts": [at(r[1]) for r in rows]}, schema={"k": pl.String, "ts": pl.Datetime("ms")}
    )


def context(*batches: pl.DataFrame, delay: str | None = "0s", workers: int = 2, name: str = "ev") -> sd.Context:
    ctx = sd.Context(executor="inline", workers=workers)
    options = {} if delay is None else {"watermark": "ts", "watermark_delay": delay}
    ctx.from_polars(list(batches), name=name, **options)
    return ctx


def run(ctx: sd.Context, sql: str):
    """Run `sql` to the end; returns (rows per batch id as sorted tuples, progress)."""
    sink = MemorySink()
    handle = ctx.sql(sql).start(sink=sink)
    assert handle.await_termination(60)
    out = {b: sorted(tuple(_short(v) for v in row) for row in f.iter_rows()) for b, f in sink.batches.items()}
    return out, handle.progress()


def _short(value):
    """Timestamps as seconds after BASE, to keep expectations readable."""
    if isinstance(value, dt.datetime):
        return (value - BASE).total_seconds()
    return value


TUMBLE = "SELECT k, window_start, window_end, COUNT(*) AS n FROM ev GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"


# ---------------------------------------------------------------- TUMBLE, EMIT final


def test_tumble_windows_close_when_the_watermark_passes_their_end():
    ctx = context(batch(("a", 1), ("a", 5)), batch(("a", 12)), batch(("a", 3), ("a", 15)), batch(("a", 25)))
    out, progress = run(ctx, TUMBLE)
    assert out == {1: [("a", 0, 10, 2)], 3: [("a", 10, 20, 2), ("a", 20, 30, 1)]}
    assert [p["late_rows"] for p in progress] == [0, 0, 1, 0]
    assert [p["rows_out"] for p in progress] == [0, 1, 0, 2]
    assert [p["rows_in"] for p in progress] == [2, 1, 2, 1]


def test_rows_are_checked_against_the_watermark_of_the_previous_batch():
    # Batch 1 moves the watermark to 12, but its own row at 3 is checked against 5: not late.
    ctx = context(batch(("a", 1), ("a", 5)), batch(("a", 3), ("a", 12)), batch(("a", 30)))
    out, progress = run(ctx, TUMBLE)
    assert out[1] == [("a", 0, 10, 3)]
    assert [p["late_rows"] for p in progress] == [0, 0, 0]


def test_watermark_exactly_at_window_end_closes_it():
    ctx = context(batch(("a", 1)), batch(("a", 12)), batch(("b", 40)), delay="2s")
    out, progress = run(ctx, TUMBLE)
    assert out[1] == [("a", 0, 10, 1)]  # watermark 12 - 2 = 10 = window_end
    assert progress[1]["watermark"] == at(10)


def test_watermark_in_progress_is_none_then_datetime_then_max_at_the_end():
    ctx = context(batch(), batch(("a", 5)), batch(("a", 7)), delay="1s")
    _, progress = run(ctx, TUMBLE)
    assert [p["watermark"] for p in progress] == [None, at(4), dt.datetime.max]


def test_late_rows_are_counted_per_batch_and_never_emitted():
    ctx = context(batch(("a", 15)), batch(("a", 1), ("b", 2), ("a", 14)), batch(("a", 16)))
    out, progress = run(ctx, TUMBLE)
    assert [p["late_rows"] for p in progress] == [0, 2, 0]
    assert out == {2: [("a", 10, 20, 3)]}


def test_end_of_input_flushes_every_window_without_a_watermark():
    ctx = context(batch(("a", 1)), batch(("a", 12)), batch(("b", 25)), delay=None)
    out, progress = run(ctx, TUMBLE)
    assert out == {2: [("a", 0, 10, 1), ("a", 10, 20, 1), ("b", 20, 30, 1)]}
    assert [p["watermark"] for p in progress][:2] == [None, None]


# ---------------------------------------------------------------- HOP


HOP = (
    "SELECT k, window_start, window_end, COUNT(*) AS n FROM ev "
    "GROUP BY k, HOP(ts, INTERVAL '5' SECOND, INTERVAL '10' SECOND)"
)


def test_hop_assigns_every_containing_window():
    ctx = context(batch(("a", 7)), delay=None)
    out, _ = run(ctx, HOP)
    assert out == {0: [("a", 0, 10, 1), ("a", 5, 15, 1)]}


def test_hop_row_late_for_one_window_counts_once_and_feeds_the_open_one():
    ctx = context(batch(("a", 1)), batch(("a", 10)), batch(("a", 7)), batch(("a", 30)))
    out, progress = run(ctx, HOP)
    assert [p["late_rows"] for p in progress] == [0, 0, 1, 0]
    # [0,10) closed at watermark 10 with the row at 1 only; the late row at 7 still counts in [5,15).
    assert out[1] == [("a", -5, 5, 1), ("a", 0, 10, 1)]
    assert ("a", 5, 15, 2) in out[3]


# ---------------------------------------------------------------- SESSION


SESSION = "SELECT k, window_start, window_end, COUNT(*) AS n FROM ev GROUP BY k, SESSION(ts, INTERVAL '5' SECOND)"


def test_sessions_merge_across_batches_when_an_event_bridges_them():
    ctx = context(batch(("a", 0)), batch(("a", 8), ("b", 1)), batch(("a", 4)), delay="60s")
    out, _ = run(ctx, SESSION)
    assert out == {2: [("a", 0, 13, 3), ("b", 1, 6, 1)]}


def test_events_exactly_gap_apart_start_a_new_session():
    ctx = context(batch(("a", 0), ("a", 5), ("a", 9.999)), delay=None)
    out, _ = run(ctx, SESSION)
    assert out == {0: [("a", 0, 5, 1), ("a", 5, 14.999, 2)]}


def test_sessions_close_on_the_watermark_and_late_session_rows_are_dropped():
    ctx = context(batch(("a", 0)), batch(("a", 8)), batch(("a", 2), ("a", 4)), batch(("a", 20)))
    out, progress = run(ctx, SESSION)
    # Batch 1: watermark 8 >= 0 + 5 closes [0, 5). Batch 2: 2 + 5 <= 8 is late; 4 + 5 > 8 is not,
    # and it bridges to the open session [8, 13) making [4, 13).
    assert out[1] == [("a", 0, 5, 1)]
    assert [p["late_rows"] for p in progress] == [0, 0, 1, 0]
    assert out[3] == [("a", 4, 13, 2), ("a", 20, 25, 1)]


def test_session_changes_report_merged_sessions_and_collect_keeps_the_final_ones():
    ctx = context(batch(("a", 0)), batch(("a", 8)), batch(("a", 4)), delay="60s")
    sql = SESSION + " EMIT CHANGES"
    out, _ = run(ctx, sql)
    # the sink takes upserts: the sessions the event at 4 bridged are deleted before the merged one is upserted
    assert out == {
        0: [("upsert", "a", 0, 5, 1)],
        1: [("upsert", "a", 8, 13, 1)],
        2: [("delete", "a", 0, 5, None), ("delete", "a", 8, 13, None), ("upsert", "a", 0, 13, 3)],
    }
    final = ctx.sql(sql).collect()
    assert final.rows() == [("a", at(0), at(13), 3)]


def test_session_count_distinct_survives_merges():
    frames = [
        pl.DataFrame(
            {"k": ["a"], "v": [v], "ts": [at(t)]}, schema={"k": pl.String, "v": pl.Int64, "ts": pl.Datetime("ms")}
        )
        for v, t in ((1, 0), (2, 8), (1, 4), (3, 9))
    ]
    ctx = sd.Context(executor="inline", workers=2)
    ctx.from_polars(frames, name="ev", watermark="ts", watermark_delay="60s")
    out = ctx.sql(
        "SELECT k, COUNT(DISTINCT v) AS d, COUNT(*) AS n FROM ev GROUP BY k, SESSION(ts, INTERVAL '5' SECOND)"
    ).collect()
    assert out.rows() == [("a", 3, 4)]


# ---------------------------------------------------------------- EMIT CHANGES and changelogs


def test_emit_changes_emits_changed_groups_every_batch():
    ctx = context(batch(("a", 1), ("b", 2)), batch(("a", 3)), batch(("c", 11)), batch(("a", 4)))
    out, progress = run(ctx, TUMBLE + " EMIT CHANGES")
    assert out == {
        0: [("upsert", "a", 0, 10, 1), ("upsert", "b", 0, 10, 1)],
        1: [("upsert", "a", 0, 10, 2)],
        2: [("upsert", "c", 10, 20, 1)],
    }
    # At 11 the watermark closed [0, 10): the row at 4 is late, and nothing is emitted for it.
    assert progress[3]["late_rows"] == 1


def test_non_windowed_aggregate_is_a_changelog():
    ctx = context(batch(("a", 1), ("b", 2)), batch(("a", 3)), batch(("b", 4), ("b", 5)))
    sql = "SELECT k, COUNT(*) AS n FROM ev GROUP BY k"
    out, _ = run(ctx, sql)
    assert out == {0: [("upsert", "a", 1), ("upsert", "b", 1)], 1: [("upsert", "a", 2)], 2: [("upsert", "b", 3)]}
    assert sorted(ctx.sql(sql).collect().rows()) == [("a", 2), ("b", 3)]


def test_having_applies_to_final_values_in_collect():
    ctx = context(batch(("a", 1), ("a", 2), ("b", 2)), batch(("b", 3), ("b", 4)))
    sql = "SELECT k, COUNT(*) AS n FROM ev GROUP BY k HAVING COUNT(*) = 2"
    out, _ = run(ctx, sql)
    # b fails HAVING in both batches: a delete of a key the sink's table never held changes nothing
    assert out == {0: [("delete", "b", None), ("upsert", "a", 2)], 1: [("delete", "b", None)]}
    assert ctx.sql(sql).collect().rows() == [("a", 2)]  # b reached 2 only on its way to 3


def test_distinct_emits_each_row_the_first_time():
    ctx = context(batch(("a", 1), ("a", 1), ("b", 2)), batch(("a", 1), ("c", 3)), batch(("b", 2)))
    out, _ = run(ctx, "SELECT DISTINCT k, ts FROM ev")
    assert out == {0: [("a", 1), ("b", 2)], 1: [("c", 3)]}


# ---------------------------------------------------------------- several sources


def test_query_watermark_is_the_min_over_sources_and_a_finished_source_stops_holding_it():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(
        [batch(("a", 1)), batch(("a", 30)), batch(("a", 31)), batch(("a", 32))],
        name="fast",
        watermark="ts",
        watermark_delay="0s",
    )
    ctx.from_polars(
        [batch(("b", 2)), batch(("b", 5)), batch(("b", 6))], name="slow", watermark="ts", watermark_delay="0s"
    )
    sink = MemorySink()
    handle = ctx.sql(
        "SELECT k, window_start, COUNT(*) AS n FROM (SELECT * FROM fast UNION ALL SELECT * FROM slow) "
        "GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"
    ).start(sink=sink)
    assert handle.await_termination(60)
    marks = [p["watermark"] for p in handle.progress()]
    # Batch 1: min(30, 5) = 5. Batch 2: 'slow' is exhausted, so only 'fast' (31) counts.
    assert marks[:3] == [at(1), at(5), at(31)]
    assert sorted(sink.batches) == [2, 3]
    assert sorted(sink.batches[2].rows()) == [("a", at(0), 1), ("b", at(0), 3)]
    assert sink.batches[3].rows() == [("a", at(30), 3)]


# ---------------------------------------------------------------- refusal, limit, stop, failures


def test_unbounded_window_close_without_watermark_is_refused_at_start():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([batch(("a", 1))], name="ev")
    ctx.catalog.sources["ev"] = _unbounded(ctx.catalog.sources["ev"])
    with pytest.raises(PlanError, match="WATERMARK"):
        ctx.sql(TUMBLE).start(sink=MemorySink())
    handle = ctx.sql(TUMBLE + " EMIT CHANGES").start(sink=MemorySink())
    handle.stop()
    assert not handle.is_active


def test_bounded_window_close_without_watermark_runs():
    ctx = context(batch(("a", 1)), delay=None)
    assert ctx.sql(TUMBLE).collect().rows() == [("a", at(0), at(10), 1)]


def _unbounded(source):
    from dataclasses import replace

    return replace(source, options=tuple(sorted(dict(source.options, bounded="false").items())))


def test_limit_stops_an_unbounded_query():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([batch(("a", 1), ("b", 2)), batch(("c", 3), ("d", 4))], name="ev")
    ctx.catalog.sources["ev"] = _unbounded(ctx.catalog.sources["ev"])
    sink = MemorySink()
    handle = ctx.sql("SELECT k FROM ev LIMIT 3").start(sink=sink)
    assert handle.await_termination(60)
    assert sink.frame().get_column("k").to_list() == ["a", "b", "c"]
    assert ctx.sql("SELECT k FROM ev LIMIT 3").collect().height == 3


def test_stop_ends_a_continuous_query():
    ctx = sd.Context(executor="inline", workers=1, batch_interval="10ms")
    ctx.from_polars([batch(("a", 1))], name="ev")
    ctx.catalog.sources["ev"] = _unbounded(ctx.catalog.sources["ev"])
    handle = ctx.sql("SELECT k FROM ev").start(sink=MemorySink())
    assert handle.is_active
    while handle.batches == 0:  # its first batch (a stop before it would end the query with none)
        time.sleep(0.001)
    handle.stop()
    assert not handle.is_active
    assert handle.await_termination(1) is True
    assert handle.progress()[0]["rows_out"] == 1


def test_collect_refuses_unbounded_input():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([batch(("a", 1))], name="ev")
    ctx.catalog.sources["ev"] = _unbounded(ctx.catalog.sources["ev"])
    with pytest.raises(PlanError, match="bounded"):
        ctx.sql("SELECT k FROM ev").collect()


def test_failing_expression_names_the_operator():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([pl.DataFrame({"s": ["1", "2"]}), pl.DataFrame({"s": ["x"]})], name="ev")
    sql = "SELECT CAST(s AS BIGINT) + 1 AS n FROM ev"
    with pytest.raises(ExecutionError, match=r"Project n := \(CAST\(s AS BIGINT\) \+ 1\): cannot CAST 'x'"):
        ctx.sql(sql).collect()
    sink = MemorySink()
    handle = ctx.sql(sql).start(sink=sink)
    with pytest.raises(ExecutionError, match="cannot CAST 'x' to BIGINT"):
        handle.await_termination(60)
    assert isinstance(handle.exception, ExecutionError)
    assert sink.frame().get_column("n").to_list() == [2, 3]


def test_a_failing_source_names_the_scan():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([batch(("a", 1))], name="ev")
    from stream_dsl.connectors import memory

    memory.register(ctx.catalog.sources["ev"].option("id"), [batch(("a", 1)), RuntimeError("disk on fire")])
    with pytest.raises(ExecutionError, match="Scan stream ev .*disk on fire"):
        ctx.sql("SELECT k FROM ev").collect()


def test_dead_letters_are_counted_in_progress_and_kept(tmp_path):
    (tmp_path / "a.ndjson").write_text(
        json.dumps({"k": "a", "n": 1}) + "\n{not json\n" + json.dumps({"k": "b", "n": "x"}) + "\n"
    )
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(f"CREATE STREAM ev (k STRING, n BIGINT) WITH (connector = 'files', path = '{tmp_path}', format = 'ndjson')")
    sink = MemorySink()
    handle = ctx.sql("SELECT k, n FROM ev").start(sink=sink)
    assert handle.await_termination(60)
    letters = sum(p["dead_letters"] for p in handle.progress())
    assert letters == len(handle.dead_letters) >= 1
    assert ("a", 1) in sink.frame().rows()


def test_progress_has_the_documented_fields():
    ctx = context(batch(("a", 1)))
    _, progress = run(ctx, TUMBLE)
    for key in (
        "batch_id",
        "rows_in",
        "rows_out",
        "late_rows",
        "dead_letters",
        "watermark",
        "duration_ms",
        "latency_ms",
    ):
        assert key in progress[0]
    assert progress[0]["duration_ms"] >= 0 and progress[0]["latency_ms"] >= 0
