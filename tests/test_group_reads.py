"""A Drizzle group's small file batches read in one polars query (executor/query/fused_group.py).

What must hold: each batch gets exactly what its own read gives. The sink's
rows batch by batch, the dead letters and the late rows on drizzle with
groups equal those of the inline executor, which reads one batch at a time
(so every watermark, window close and dead letter lands in the same batch).
The group query is the path taken (`batches_in_query` above 1, so a change
that reads each batch alone again fails here), and a batch it must not take
(one sampled for `why`, a stage calling NOW(), a large file) is read alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import time

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor.query import fused_group
from stream_dsl.connectors.ndjson_deferred import SNIFF_BYTES

from budget import examples
from stream_dsl.connectors.memory import MemorySink
from test_recovery import position, recovered, wait_until
from test_udf_recovery import Tally

HANG_GUARD_S = 120
T0 = dt.datetime(2024, 1, 1)
TABLE = pl.DataFrame({"k": ["a", "b", "c"], "label": ["A", "B", "A"]})
WINDOWED = (
    "SELECT label, window_start, COUNT(*) AS n, SUM(x) AS total FROM s JOIN t USING (k) WHERE x IS NULL OR x > -3 "
    "GROUP BY label, TUMBLE(ts, INTERVAL '10' SECOND) EMIT ON WINDOW CLOSE"
)
ROWS = "SELECT k, x, ts FROM s WHERE k <> 'c'"
QUERIES = {"windowed": WINDOWED, "rows": ROWS}
EPOCH_MS = int(T0.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
KEYS = st.sampled_from(["a", "b", "c", "z"])
RECORD = st.fixed_dictionaries({"k": KEYS, "x": st.one_of(st.none(), st.integers(-5, 5)), "s": st.integers(0, 120)})
FILES = st.lists(st.lists(RECORD, max_size=12), min_size=1, max_size=14)


def write(data, files: list[list[dict]], fmt: str, bad: frozenset = frozenset(), iso: frozenset = frozenset()) -> None:
    """One file per entry, of records {k, x, s: seconds after T0}; in ndjson the time is epoch ms (read in one
    checked query) or, in a file whose index is in `iso`, ISO text (the full decode), and a file whose index is in
    `bad` gets a record with a value of the wrong type."""
    data.mkdir()
    for i, records in enumerate(files):
        path = data / f"{i:03d}.{fmt}"
        rows = [{"k": r["k"], "x": r["x"], "ts": EPOCH_MS + 1000 * r["s"]} for r in records]
        if fmt == "parquet":
            frame = pl.DataFrame(rows, schema={"k": pl.String, "x": pl.Int64, "ts": pl.Int64})
            frame.with_columns(pl.col("ts").cast(pl.Datetime("ms"))).write_parquet(path)
            continue
        if i in iso:
            rows = [{**r, "ts": (T0 + dt.timedelta(milliseconds=r["ts"] - EPOCH_MS)).isoformat()} for r in rows]
        rows += [{"k": "a", "x": "oops", "ts": EPOCH_MS}] if i in bad else []
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    TABLE.write_parquet(data.parent / "t.parquet")


def run(data, fmt: str, query: str, diagnose_every: int = 0, **context) -> tuple[dict, list, list[dict]]:
    """The sink's rows by batch (sorted), the dead letters and the progress of the query over the files."""
    ctx = sd.Context(**context)
    ctx.config = ctx.config.with_options(diagnose_every=diagnose_every)
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ("
        f"connector = 'files', path = '{data}', format = '{fmt}', max_files_per_batch = '1');"
        f"CREATE TABLE t (k STRING, label STRING) WITH (connector = 'files', path = '{data.parent / 't.parquet'}')"
    )
    batches: dict[int, pl.DataFrame] = {}

    def sink(batch: int, frame: pl.DataFrame) -> None:
        batches[batch] = pl.concat([batches[batch], frame]) if batch in batches else frame

    handle = ctx.sql(query).start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)
    handle.stop()
    rows = {b: f.sort(f.columns, nulls_last=True) for b, f in batches.items() if f.height}
    letters = sorted((d.position, d.raw, d.reason) for d in handle.dead_letters)
    return rows, letters, handle.progress()


def read_together(progress: list[dict]) -> int:
    """The most batches any source read shared its query with."""
    return max((r.get("batches_in_query", 1) for p in progress for r in p["source_reads"]), default=0)


def operators(progress: list[dict]) -> dict[int, list]:
    """The operator rows `why` keeps, by batch (the sampled ones)."""
    return {p["batch_id"]: p["operators"] for p in progress if p.get("operators")}


def same_batches(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for batch, frame in want.items():
        assert got[batch].equals(frame), f"batch {batch}:\n{got[batch]}\n{want[batch]}"


CLEAN = [{"k": "b", "x": 1, "s": 121}]  # a file read in one checked query: x and ts typed in its first record


@settings(max_examples=examples(12))
@given(
    drawn=FILES,
    fmt=st.sampled_from(["ndjson", "parquet"]),
    query=st.sampled_from(sorted(QUERIES)),
    executor=st.sampled_from([("drizzle", 3), ("drizzle", 20), ("bsp", 1)]),
    every=st.sampled_from([0, 1, 3]),
    data=st.data(),
)
def test_each_batch_of_a_group_read_gets_what_its_own_read_gives(
    tmp_path_factory, drawn, fmt, query, executor, every, data
):
    """Random files, some with a bad record or ISO times (read the full way), then two that go the one-query way;
    drizzle with groups of 3 and 20, and bsp, which schedules one batch at a time (so reads each alone); every,
    every third or no batch sampled for `why`, whose operators' rows are the inline executor's."""
    name, group = executor
    files = drawn + [CLEAN, CLEAN]
    index = st.integers(0, len(drawn) - 1)
    bad = frozenset(data.draw(st.sets(index, max_size=2))) if fmt == "ndjson" else frozenset()
    iso = frozenset(data.draw(st.sets(index, max_size=3))) if fmt == "ndjson" else frozenset()
    root = tmp_path_factory.mktemp("group")
    write(root / "data", files, fmt, bad, iso)
    sql = QUERIES[query]
    want, want_letters, reference = run(root / "data", fmt, sql, every, executor="inline")
    got, letters, progress = run(root / "data", fmt, sql, every, executor=name, workers=2, group_size=group)
    same_batches(got, want)
    assert operators(progress) == operators(reference)
    assert letters == want_letters and len(letters) == len(bad)
    last = len(files) - 1
    if name == "bsp":
        assert read_together(progress) == 1
    elif (last - 1) // group == last // group:  # the two clean files' batches are in one group: read in one query
        assert read_together(progress) > 1


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_sampled_batches_are_counted_inside_their_group_query_and_now_reads_alone(tmp_path, fmt):
    """A batch sampled for `why` joins its group and gets its operators' rows counted per batch in that query,
    the counts the inline executor gives it; a stage that calls NOW() reads every batch alone."""
    files = [[{"k": "abz"[(i + j) % 3], "x": j - 1, "s": 2 * i + j} for j in range(1 + i % 4)] for i in range(12)]
    write(tmp_path / "data", files, fmt)
    got, _, progress = run(tmp_path / "data", fmt, WINDOWED, diagnose_every=3, executor="drizzle", group_size=12)
    assert read_together(progress) == 12
    want, _, reference = run(tmp_path / "data", fmt, WINDOWED, diagnose_every=3, executor="inline")
    same_batches(got, want)
    counted = operators(progress)
    assert counted == operators(reference) and set(counted) == {0, 3, 6, 9}
    now = "SELECT k, x, NOW() >= ts AS seen FROM s"
    _, _, progress = run(tmp_path / "data", fmt, now, executor="drizzle", group_size=12)
    assert read_together(progress) == 1
    now = "SELECT k, x, NOW() >= ts AS seen FROM s"
    _, _, progress = run(tmp_path / "data", "ndjson", now, executor="drizzle", group_size=12)
    assert read_together(progress) == 1


def test_a_stage_that_calls_an_aggregate_udf_reads_every_batch_alone(tmp_path):
    """A Python function must see each row once: a source stage whose partial aggregate runs an aggregate UDF is
    neither fused with its read nor grouped (a failed group query is tried again in halves), and gives inline's
    result."""
    files = [[{"k": "ab"[j % 2], "x": j, "s": i} for j in range(3)] for i in range(8)]
    write(tmp_path / "data", files, "ndjson")

    def collect(**options) -> tuple[pl.DataFrame, list[dict]]:
        ctx = sd.Context(**options)
        ctx.sql(
            f"CREATE STREAM s (k STRING, x BIGINT, ts TIMESTAMP) WITH (connector = 'files', path = "
            f"'{tmp_path / 'data'}', format = 'ndjson', max_files_per_batch = '1')"
        )
        ctx.register_aggregate("tally", Tally, returns="BIGINT")
        handle = ctx.sql("SELECT k, tally(x) AS n FROM s GROUP BY k").start(sink=lambda b, f: None)
        assert handle.await_termination(HANG_GUARD_S)
        handle.stop()
        return ctx.sql("SELECT k, tally(x) AS n FROM s GROUP BY k").collect().sort("k"), handle.progress()

    got, progress = collect(executor="drizzle", group_size=8)
    assert read_together(progress) == 1
    assert got.equals(collect(executor="inline")[0]) and got.get_column("n").to_list() == [16, 8]


@pytest.mark.parametrize("over", [False, True])
def test_files_scanned_by_path_group_up_to_the_batch_bound(tmp_path, over):
    """Files longer than the sniffed prefix are scanned by path, one scan per file in the group query; above
    BATCH_BYTES the per-row work outweighs a query's fixed cost and each batch keeps its own query."""
    size = fused_group.BATCH_BYTES + 1 if over else SNIFF_BYTES + 1
    rows = size // 30  # a record takes 39-40 bytes
    files = [[{"k": "ab"[j % 2], "x": j % 5, "s": j % 60} for j in range(rows)] for _ in range(4)]
    write(tmp_path / "data", files, "ndjson")
    assert all(p.stat().st_size > size for p in (tmp_path / "data").iterdir())
    got, _, progress = run(tmp_path / "data", "ndjson", WINDOWED, executor="drizzle", group_size=4)
    assert read_together(progress) == (1 if over else 4)
    want, _, _ = run(tmp_path / "data", "ndjson", WINDOWED, executor="inline")
    same_batches(got, want)


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_a_split_source_reads_each_part_s_batches_together(tmp_path, fmt):
    """splits = 'workers': each worker reads its part's batches of a group in one query; the result is plain
    polars'."""
    files = [[{"k": "ab"[i % 2], "x": i, "s": 3 * i}] for i in range(16)]
    write(tmp_path / "data", files, fmt)
    ctx = sd.Context(executor="drizzle", workers=2, group_size=8)
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, ts TIMESTAMP) WITH (connector = 'files', path = '{tmp_path / 'data'}', "
        f"format = '{fmt}', max_files_per_batch = '1', splits = 'workers')"
    )
    got = ctx.sql("SELECT k, COUNT(*) AS n, SUM(x) AS total FROM s GROUP BY k").collect().sort("k")
    want = pl.DataFrame({"k": ["a", "b"], "n": [8, 8], "total": [56, 64]})
    assert got.equals(want)


def slow(n: int) -> int:
    """The window's count, a little later: keeps the query running long enough to be killed in the middle."""
    time.sleep(0.002)
    return n


def test_killed_workers_leave_every_batch_exact_when_groups_read_ahead(tmp_path):
    """Workers killed (SIGKILL) while groups read their batches ahead: the replacement replays the logged batches
    and reads on; with the memory sink (a replayed batch replaces its rows) each batch's rows are the inline
    executor's."""
    files = [[{"k": "abc"[j % 3], "x": j % 7, "s": 2 * i + j % 2} for j in range(20)] for i in range(160)]
    write(tmp_path / "data", files, "ndjson")
    query = WINDOWED.replace("COUNT(*) AS n", "slow(COUNT(*)) AS n")

    def context(**options) -> sd.Context:
        ctx = sd.Context(**options)
        ctx.config = ctx.config.with_options(diagnose_every=0)
        ctx.sql(
            f"CREATE STREAM s (k STRING, x BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH "
            f"(connector = 'files', path = '{tmp_path / 'data'}', format = 'ndjson', max_files_per_batch = '1');"
            f"CREATE TABLE t (k STRING, label STRING) WITH (connector = 'files', path = '{tmp_path / 't.parquet'}')"
        )
        ctx.register_function("slow", slow, returns="BIGINT")
        return ctx

    sink = MemorySink()
    ctx = context(executor="drizzle", workers=2, group_size=8)
    handle = ctx.sql(query).start(sink=sink, checkpoint_dir=str(tmp_path / "ckpt"))
    try:
        for killed, threshold in enumerate((40, 90), start=1):
            wait_until(lambda: position(handle) >= threshold or not handle.is_active, f"batch {threshold}")
            assert handle.is_active, "the query ended before the kill"
            os.kill(handle.worker_pids()[killed % 2], signal.SIGKILL)
            wait_until(recovered(handle, killed), f"recovery {killed}")
        assert handle.await_termination(HANG_GUARD_S)
    finally:
        handle.stop(HANG_GUARD_S)
        ctx.close()
    assert len(handle.recoveries) == 2
    assert read_together(handle.progress()) > 1
    want: dict[int, pl.DataFrame] = {}
    inline = context(executor="inline").sql(query).start(sink=lambda b, f: want.__setitem__(b, f))
    assert inline.await_termination(HANG_GUARD_S)
    inline.stop()
    got = {b: f.sort(f.columns, nulls_last=True) for b, f in sink.batches.items() if f.height}
    same_batches(got, {b: f.sort(f.columns, nulls_last=True) for b, f in want.items() if f.height})
