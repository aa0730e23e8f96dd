"""A Context keeps its worker processes warm between queries (issue 24: start fast), and never lets one
query's messages reach the next (`executor/multiproc/pool.py`)."""

from __future__ import annotations

import os
import time

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.errors import DSLError


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def wait_until(condition, what: str, guard_s: float = 60.0) -> None:
    deadline = time.monotonic() + guard_s  # a hang guard only
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


QUERIES = [
    ("SELECT k, COUNT(*) AS n, SUM(v) AS s FROM t GROUP BY k", ["k"]),
    ("SELECT v, k FROM t WHERE v % 7 = 0", ["v"]),
    ("SELECT DISTINCT k FROM t", ["k"]),
]


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
def test_queries_of_a_context_reuse_its_workers_and_each_gets_only_its_own_rows(executor):
    frame = pl.DataFrame({"k": [f"k{i % 5}" for i in range(600)], "v": range(600)})
    inline = sd.Context(executor="inline")
    with sd.Context(executor=executor, group_size=3) as ctx:
        for c in (ctx, inline):
            c.from_polars(frame, name="t", batch_size=50)
        pids = None
        for round_ in range(3):  # different queries back to back on the same processes
            for query, keys in QUERIES:
                got = ctx.sql(query).collect().sort(keys)
                assert got.equals(inline.sql(query).collect().sort(keys)), (round_, query)
                assert pids is None or ctx._pool.pids == pids
                pids = ctx._pool.pids
        assert len(pids) == 2 and ctx._pool.reused == 3 * len(QUERIES) - 1
    wait_until(lambda: not any(alive(p) for p in pids), "the pool's workers to end with the Context")


def test_a_stopped_or_failed_query_does_not_hand_its_workers_on():
    ctx = sd.Context(executor="drizzle", batch_interval="10ms")
    ctx.from_polars(pl.DataFrame({"s": ["1", "2", "x"]}), name="bad", batch_size=1)
    with pytest.raises(DSLError, match="cannot CAST 'x'"):
        ctx.sql("SELECT CAST(s AS BIGINT) AS n FROM bad").collect()
    assert ctx._pool.pids == []  # a failed query's workers are shut down
    ctx.sql(
        "CREATE STREAM g (user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING, "
        "event_time TIMESTAMP, ip_address STRING) WITH (connector = 'generator', kind = 'ysb', rate = '1000')"
    )
    handle = ctx.sql("SELECT ad_id FROM g").start(lambda b, f: None)
    wait_until(lambda: handle.batches >= 2, "two batches")
    workers = handle.worker_pids()
    handle.stop()  # cancelled in the middle of a group: its pipes may hold messages
    assert ctx._pool.pids == []
    wait_until(lambda: not any(alive(p) for p in workers), "the stopped query's workers to exit")
    ctx.close()
