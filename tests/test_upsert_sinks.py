"""Upsert sinks: a changelog written to the files sink and to Redis, read back as a table, equals the answer.

A non-windowed aggregate over hypothesis data, cut into random micro-batches, runs continuously into a sink;
folding the sink's records ("last row per key, minus deletes") must give DuckDB's GROUP BY, on every
executor. SESSION windows with EMIT CHANGES over hand-made event orders whose sessions merge must leave
exactly the final sessions in the sink. A changelog to a sink that takes appends only is refused at start.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from batch_cuts import cut_into_batches
from redis_server import start_server, stop_server
from differential.reference import duckdb_connection, duckdb_table
from stream_dsl.connectors import files
from stream_dsl.connectors.redis_sink import read_stream
from stream_dsl.connectors.redis_sink import read_table as redis_table
from stream_dsl.errors import DSLError
from stream_dsl.ir.definitions import SinkDef

BASE = dt.datetime(2024, 1, 1)
SCHEMA = {"k": pl.String, "i": pl.Int64, "ts": pl.Datetime("ms")}
HANG_GUARD_S = 120

AGGREGATE = "SELECT k, COUNT(*) AS n, SUM(i) AS s, MIN(i) AS lo, MAX(i) AS hi FROM s GROUP BY k"
HAVING = "SELECT k, COUNT(*) AS n, MAX(i) AS hi FROM s GROUP BY k HAVING MAX(i) < 4"  # groups fail it later: deletes
GLOBAL = "SELECT COUNT(*) AS n, SUM(i) AS s FROM s"  # no key: each record is the whole table
GLOBAL_HAVING = "SELECT COUNT(*) AS n, MAX(i) AS hi FROM s HAVING MAX(i) < 4"  # the one row may go
QUERIES = {
    "aggregate": (AGGREGATE, ["k"]),
    "having": (HAVING, ["k"]),
    "global": (GLOBAL, []),
    "global_having": (GLOBAL_HAVING, []),
}


@st.composite
def datasets(draw):
    n = draw(st.integers(0, 30))
    frame = pl.DataFrame(
        {
            "k": draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n)),
            "i": draw(st.lists(st.one_of(st.none(), st.integers(-3, 6)), min_size=n, max_size=n)),
            "ts": [BASE + dt.timedelta(seconds=s) for s in range(n)],
        },
        schema=SCHEMA,
    )
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return frame, cut_into_batches(frame, cuts)


def duckdb_rows(sql: str, frame: pl.DataFrame) -> list[tuple]:
    con = duckdb_connection()
    duckdb_table(con, "s", "k VARCHAR, i BIGINT, ts TIMESTAMP", frame.rows())
    return sorted(con.execute(sql).fetchall(), key=repr)


def rows_of(table: pl.DataFrame, columns: list[str]) -> list[tuple]:
    if not table.height:
        return []
    return sorted(table.select(columns).rows(), key=repr)


def run_into(batches: list[pl.DataFrame], sql: str, sink: SinkDef, executor: str, workers: int) -> None:
    ctx = sd.Context(executor=executor, workers=workers)
    ctx.from_polars(batches, name="s", watermark="ts", watermark_delay="0s")
    handle = ctx.sql(sql).start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)


def files_sink(path: str) -> SinkDef:
    return SinkDef("out", (("connector", "files"), ("path", path), ("format", "parquet")))


def columns_of(sql: str) -> list[str]:
    ctx = sd.Context(executor="inline")
    ctx.from_polars([pl.DataFrame(schema=SCHEMA)], name="s")
    return ctx.sql(sql).columns


# ---------------------------------------------------------------- files: differential against DuckDB


def check_files(query: str, frame, batches, executor: str, workers: int) -> None:
    sql, keys = QUERIES[query]
    with tempfile.TemporaryDirectory() as path:
        run_into(batches, sql, files_sink(path), executor, workers)
        table = files.read_table(path)  # the key from the sink's log
        recipe = docs_recipe(path, keys) if keys and _parts(path) else table
    columns = columns_of(sql)
    expected = duckdb_rows(sql, frame)
    if query.startswith("global") and not frame.height:
        expected = []  # no batch had a row: nothing was written (collect() gives the one row of no input)
    assert rows_of(table, columns) == expected, f"{query} {executor} workers={workers} batches={len(batches)}"
    assert rows_of(recipe, columns) == expected


def docs_recipe(path: str, keys: list[str]) -> pl.DataFrame:
    """docs/connectors.md's one line of polars that reads the table back, run as written there."""
    doc = (Path(__file__).resolve().parent.parent / "docs" / "connectors.md").read_text()
    line = next(line for line in doc.splitlines() if line.startswith("table = pl.read_parquet("))
    expression = line.split("=", 1)[1].replace('"out/', f'"{path}/').replace('["k"]', repr(keys))
    return eval(expression, {"pl": pl})


def _parts(path: str) -> bool:
    return any(name.startswith("part-") for name in os.listdir(path))


@pytest.mark.parametrize("query", sorted(QUERIES))
@settings(max_examples=examples(8), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_files_sink_table_equals_duckdb_inline(query, data):
    frame, batches = data
    for workers in (1, 3):
        check_files(query, frame, batches, "inline", workers)


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@settings(max_examples=examples(2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_files_sink_table_equals_duckdb_on_workers(executor, data):
    frame, batches = data
    check_files("having", frame, batches, executor, 3)


# ---------------------------------------------------------------- Redis: the same, against a real redis-server


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    yield srv
    stop_server(srv)


_streams = iter(range(10**9))


def redis_sink(url: str) -> tuple[SinkDef, str]:
    stream = f"upserts-{next(_streams)}"
    return SinkDef("out", (("connector", "redis"), ("url", url), ("stream", stream))), stream


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
@settings(max_examples=examples(3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_redis_sink_table_equals_duckdb(server, executor, data):
    frame, batches = data
    sql, keys = QUERIES["having"]
    sink, stream = redis_sink(server.url)
    run_into(batches, sql, sink, executor, 3 if executor != "inline" else 2)
    table = redis_table(server.url, stream, keys)
    assert rows_of(table, columns_of(sql)) == duckdb_rows(sql, frame), f"{executor} batches={len(batches)}"


# ---------------------------------------------------------------- SESSION windows, EMIT CHANGES: merges


SESSIONS = (
    "SELECT k, window_start, window_end, COUNT(*) AS n, SUM(i) AS s FROM s "
    "GROUP BY k, SESSION(ts, INTERVAL '5' SECOND) EMIT CHANGES"
)
SESSION_KEYS = ["k", "window_start", "window_end"]


def events(*batches: str) -> list[pl.DataFrame]:
    """Batches of events written as 'key@second' (the value is the second)."""
    frames = []
    for text in batches:
        pairs = [e.split("@") for e in text.split()]
        frames.append(
            pl.DataFrame(
                {
                    "k": [k for k, _ in pairs],
                    "i": [int(t) for _, t in pairs],
                    "ts": [BASE + dt.timedelta(seconds=int(t)) for _, t in pairs],
                },
                schema=SCHEMA,
            )
        )
    return frames


MERGES = {
    "bridge": events("a@0 a@8", "a@4"),  # [0,5) and [8,13) merge into [0,13)
    "chain": events("a@0", "a@8", "a@16", "a@4", "a@12"),  # three sessions, merged one bridge at a time
    "keys": events("a@0 a@8 b@1", "a@16 b@30", "a@4 a@12 b@5 b@26"),  # a three-way merge in one batch
}


def final_sessions(batches: list[pl.DataFrame]) -> pl.DataFrame:
    """collect(): the final table, which the sink must equal once read back."""
    ctx = sd.Context(executor="inline")
    ctx.from_polars(batches, name="s", watermark="ts", watermark_delay="60s")
    return ctx.sql(SESSIONS).collect()


def run_sessions(batches: list[pl.DataFrame], sink: SinkDef, executor: str) -> None:
    ctx = sd.Context(executor=executor, workers=2)
    ctx.from_polars(batches, name="s", watermark="ts", watermark_delay="60s")  # no session closes early
    assert ctx.sql(SESSIONS).start(sink=sink).await_termination(HANG_GUARD_S)


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
@pytest.mark.parametrize("order", sorted(MERGES))
def test_merged_sessions_are_deleted_in_the_files_sink(tmp_path, order, executor):
    batches = MERGES[order]
    run_sessions(batches, files_sink(str(tmp_path)), executor)
    expected = final_sessions(batches)
    assert rows_of(files.read_table(str(tmp_path)), expected.columns) == rows_of(expected, expected.columns)
    records = files.read_committed(str(tmp_path))
    assert records.columns[0] == "op" and "delete" in records["op"].to_list()  # merges happened, and were said


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame as the Redis sink's JSON entries hold it: timestamps as ISO-8601 text."""
    return frame.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.3f"))


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
@pytest.mark.parametrize("order", sorted(MERGES))
def test_merged_sessions_are_deleted_in_redis(server, order, executor):
    batches = MERGES[order]
    sink, stream = redis_sink(server.url)
    run_sessions(batches, sink, executor)
    expected = as_text(final_sessions(batches))
    table = redis_table(server.url, stream, SESSION_KEYS)
    assert rows_of(table, expected.columns) == rows_of(expected, expected.columns)


def test_a_session_is_keyed_by_its_start_when_the_query_selects_no_window_end(tmp_path):
    sql = SESSIONS.replace("window_start, window_end,", "window_start,")
    ctx = sd.Context(executor="inline", workers=2)
    ctx.from_polars(MERGES["keys"], name="s", watermark="ts", watermark_delay="60s")
    assert ctx.sql(sql).start(sink=files_sink(str(tmp_path))).await_termination(HANG_GUARD_S)
    expected = final_sessions(MERGES["keys"]).drop("window_end")
    assert files.upsert_key(str(tmp_path)) == ["k", "window_start"]
    assert rows_of(files.read_table(str(tmp_path)), expected.columns) == rows_of(expected, expected.columns)


def test_collect_still_returns_the_final_sessions():
    assert final_sessions(MERGES["bridge"]).select("n", "s").rows() == [(3, 12)]


# ---------------------------------------------------------------- refusals


class AppendOnlySink:
    """A sink that declares nothing: it takes appended rows only."""

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        raise AssertionError("a refused query wrote a batch")

    def close(self) -> None:
        pass


def small_context() -> sd.Context:
    ctx = sd.Context(executor="inline")
    ctx.from_polars(events("a@0 b@1"), name="s", watermark="ts", watermark_delay="0s")
    return ctx


@pytest.mark.parametrize("sql", [AGGREGATE, SESSIONS])
def test_a_changelog_to_an_append_only_sink_is_refused_with_the_fix(sql):
    with pytest.raises(DSLError) as info:
        small_context().sql(sql).start(sink=AppendOnlySink())
    assert str(info.value) == (
        "sink AppendOnlySink takes appended rows only, but this query's result is a changelog (a non-windowed "
        "aggregate, or EMIT CHANGES): later rows replace earlier ones of the same group, and sessions that "
        "merge are deleted, which appended rows cannot say. Write it to a sink that takes upserts by key "
        "(connector 'files', 'redis' or 'kafka'), or make each row final with a windowed aggregate and "
        "EMIT ON WINDOW CLOSE"
    )


def test_appended_rows_still_go_to_an_append_only_sink():
    written = []

    class Appends(AppendOnlySink):
        def write(self, batch_id: int, frame: pl.DataFrame) -> None:
            written.append(frame)

    sql = "SELECT k, window_start, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '5' SECOND)"
    assert small_context().sql(sql).start(sink=Appends()).await_termination(HANG_GUARD_S)
    assert sorted(pl.concat(written).select("k", "n").rows()) == [("a", 1), ("b", 1)]


def test_the_check_takes_the_output_mode_so_a_retract_mode_extends_it():
    from executor.query.sink_modes import check_sink_takes

    check_sink_takes("append", "append", "x")
    check_sink_takes("upsert", "upsert", "x")
    with pytest.raises(DSLError, match="takes appended rows only"):
        check_sink_takes("retract", "append", "'x'")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT COUNT(*) AS n FROM s GROUP BY k",
        "SELECT k, COUNT(*) AS n FROM s GROUP BY k, SESSION(ts, INTERVAL '5' SECOND) EMIT CHANGES",
    ],
)
def test_a_changelog_without_its_key_is_written_as_insert_and_delete_records(tmp_path, sql):
    """Rows that cannot be replaced by a key are taken back whole: the sink's records fold as a multiset."""
    handle = small_context().sql(sql).start(sink=files_sink(str(tmp_path)))
    assert handle.await_termination(60) and handle.exception is None
    records = files.read_committed(str(tmp_path))
    assert set(records.get_column("op")) <= {"insert", "delete"}
    expected = small_context().sql(sql).collect()
    assert sorted(files.read_table(str(tmp_path)).rows()) == sorted(expected.rows())


def test_an_op_column_of_the_query_is_refused_for_an_upsert_sink(tmp_path):
    with pytest.raises(DSLError, match="records have an 'op' column .* rename it"):
        small_context().sql("SELECT k AS op, COUNT(*) AS n FROM s GROUP BY k").start(sink=files_sink(str(tmp_path)))


# ---------------------------------------------------------------- a killed worker: the sink's table stays exact

RECOVERY_SELECT = (
    "SELECT campaign_id, COUNT(*) AS views FROM events JOIN campaigns USING (ad_id) "
    "WHERE event_type = 'view' GROUP BY campaign_id"
)


def wait_until(condition, what: str):
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.005)


def position(handle) -> int:
    last = handle.last_progress
    return -1 if last is None else int(last["batch_id"])


RECOVERY_BATCHES = 120


def recovery_context(**options) -> sd.Context:
    """tests/recovery_script.py's YSB streams, shorter: RECOVERY_BATCHES micro-batches."""
    import recovery_script as R

    settings = {"workers": 2, "executor": "drizzle", "group_size": 10, "batch_interval": "100ms", **options}
    ctx = sd.Context(**settings)
    ctx.sql(R.DDL.replace(f"count = '{R.COUNT}'", f"count = '{R.RATE * RECOVERY_BATCHES // 10}'"))
    return ctx


@pytest.mark.parametrize("target, executor", [("files", "drizzle"), ("redis", "bsp")])
def test_a_killed_worker_leaves_the_upsert_sink_exact(tmp_path, server, target, executor):
    ctx = recovery_context(executor=executor, checkpoint_dir=str(tmp_path / "ckpt"))
    stream = f"recovery-{next(_streams)}"
    if target == "files":
        ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{tmp_path / 'out'}', format = 'parquet')")
    else:
        ctx.sql(f"CREATE SINK out WITH (connector = 'redis', url = '{server.url}', stream = '{stream}')")
    handle = ctx.sql(f"INSERT INTO out {RECOVERY_SELECT}")
    try:
        wait_until(lambda: position(handle) >= RECOVERY_BATCHES // 3 or not handle.is_active, "a third of the batches")
        assert handle.is_active, "the query ended before the kill"
        os.kill(handle.worker_pids()[1], signal.SIGKILL)
        wait_until(lambda: handle.recoveries or not handle.is_active, "the recovery")
        assert handle.await_termination(HANG_GUARD_S)
    finally:
        handle.stop(HANG_GUARD_S)
    assert len(handle.recoveries) == 1
    if target == "files":
        records, table = files.read_committed(str(tmp_path / "out")), files.read_table(str(tmp_path / "out"))
    else:
        records = pl.DataFrame(read_stream(server.url, stream))
        table = redis_table(server.url, stream, ["campaign_id"])
    expected = recovery_context(executor="inline", workers=1).sql(RECOVERY_SELECT).collect()
    assert sorted(table.rows()) == sorted(expected.rows()) and expected.height == 100
    # every batch once: a count only grows, so a batch written twice would repeat a campaign's value
    repeated = records.group_by("campaign_id", "views").len().filter(pl.col("len") > 1)
    assert repeated.height == 0, repeated.head(3).rows()
