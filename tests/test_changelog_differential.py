"""Changelogs through the plan against DuckDB: aggregates, DISTINCT, UNION ALL and filters over an aggregate.

Hypothesis makes the data and cuts it into random micro-batches. Every
query runs to the end; `collect()` must equal DuckDB's answer over all the
data at once, AND the changelog the query emitted, replayed row by row
(`Recording` keeps each batch's retract rows, or upserts and deletes), must
give the same table: a -1 row must remove a row an earlier +1 added, so a
wrong or early retraction fails even when the final table comes out right.
The inline executor runs every example with 1 and 3 workers, optimizer on
and off; drizzle and bsp run one fixed split per query with 1 and 3 workers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor.api import _prepare, build_run
from executor.query.outputs import CollectOutput
from stream_dsl.config import RunConfig
from stream_dsl.ir.column_names import CHANGELOG_OP
from budget import examples
from batch_cuts import cut_into_batches
from differential.reference import duckdb_connection, duckdb_table

SCHEMA = {"k": pl.String, "i": pl.Int64, "d": pl.Float64, "ts": pl.Datetime("ms")}
DUCK = "k VARCHAR, i BIGINT, d DOUBLE, ts TIMESTAMP"
BASE = dt.datetime(2024, 1, 1)
COUNTS = "(SELECT k, COUNT(*) AS cnt FROM s GROUP BY k)"


@dataclass(frozen=True)
class Q:
    name: str
    sql: str  # the same text runs on DuckDB, unless `duck` is given
    duck: str | None = None


QUERIES = [
    Q("count_per_count", f"SELECT cnt, COUNT(*) AS n, SUM(cnt) AS total FROM {COUNTS} AS c GROUP BY cnt"),
    Q(
        "min_max_over_sums",
        "SELECT MIN(t) AS lo, MAX(t) AS hi, COUNT(t) AS c, SUM(t) AS st, AVG(t) AS at, COUNT(*) AS n "
        "FROM (SELECT k, SUM(i) AS t FROM s GROUP BY k) AS x",
    ),
    Q(
        "min_max_distinct_per_count",
        f"SELECT cnt, MIN(k) AS lo, MAX(k) AS hi, COUNT(DISTINCT k) AS dk FROM {COUNTS} AS c GROUP BY cnt",
    ),
    Q("avg_of_double_sums", "SELECT AVG(sd) AS a, MAX(sd) AS m FROM (SELECT k, SUM(d) AS sd FROM s GROUP BY k) AS x"),
    Q("distinct_counts", f"SELECT DISTINCT cnt FROM {COUNTS} AS c"),
    Q(
        "over_an_aggregate_without_group_by",
        "SELECT COUNT(*) AS n, SUM(c) AS total FROM (SELECT COUNT(*) AS c FROM s) AS x",
    ),
    Q(
        "union_aggregate_and_stream",
        "SELECT k, COUNT(*) AS n FROM s GROUP BY k UNION ALL SELECT k, i FROM s WHERE i > 2",
    ),
    Q(
        "aggregate_over_union",
        "SELECT n, COUNT(*) AS c FROM (SELECT k, COUNT(*) AS n FROM s GROUP BY k UNION ALL SELECT k, i FROM s) AS u "
        "GROUP BY n",
    ),
    Q("where_on_aggregate_dropping_key", f"SELECT cnt FROM {COUNTS} AS c WHERE cnt >= 2"),
    Q("where_on_aggregate_keeping_key", f"SELECT k, cnt FROM {COUNTS} AS c WHERE cnt >= 2"),
    Q(
        "aggregate_over_window_changes",
        "SELECT n, COUNT(*) AS c FROM (SELECT k, window_start, COUNT(*) AS n FROM s "
        "GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND) EMIT CHANGES) AS w GROUP BY n",
        "SELECT n, COUNT(*) AS c FROM (SELECT k, epoch_ms(ts) - epoch_ms(ts) % 10000 AS ws, COUNT(*) AS n FROM s "
        "GROUP BY k, ws) AS w GROUP BY n",
    ),
]


@st.composite
def datasets(draw):
    n = draw(st.integers(0, 30))
    frame = pl.DataFrame(
        {
            "k": draw(st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=n, max_size=n)),
            "i": draw(st.lists(st.one_of(st.none(), st.integers(-3, 5)), min_size=n, max_size=n)),
            "d": draw(st.lists(st.one_of(st.none(), st.integers(-8, 8).map(lambda x: x / 4)), min_size=n, max_size=n)),
            "ts": [BASE + dt.timedelta(seconds=s) for s in draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))],
        },
        schema=SCHEMA,
    ).sort("ts", maintain_order=True)  # in event-time order: with the watermark (delay 0) no row is late
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return frame, cut_into_batches(frame, cuts)


class Recording(CollectOutput):
    """collect()'s output that also keeps the changelog as it was handed over, batch by batch."""

    def __init__(self, schema, limit) -> None:
        super().__init__(schema, limit)
        self.events: list[tuple] = []

    def emit(self, batch_id, frames):
        self.events += [("rows", f) for f in frames if f.height]
        return super().emit(batch_id, frames)

    def apply_changelog(self, upserts, deletes):
        self.events.append(("upsert", upserts, deletes))
        super().apply_changelog(upserts, deletes)


def replay(run, output: Recording) -> pl.DataFrame:
    """The table the recorded changelog gives, applied one row at a time."""
    names = list(output.schema.names)
    if not output.retract and run.runner.changelog_stage is None:  # append-only rows
        return pl.concat([f.select(names) for _, f in output.events]) if output.events else pl.DataFrame()
    if output.retract:
        live: Counter = Counter()
        for _, frame in output.events:
            ops = frame.get_column(CHANGELOG_OP).to_list() if CHANGELOG_OP in frame.columns else [1] * frame.height
            for row, op in zip(frame.select(names).rows(), ops):
                if op == -1:
                    assert live[row] > 0, f"a -1 row {row} that no earlier +1 added"
                    live[row] -= 1
                else:
                    live[row] += 1
        rows = [row for row, n in live.items() for _ in range(n)]
        return pl.DataFrame(rows, schema=pl.DataFrame(schema=output.schema.to_polars()).schema, orient="row")
    keys = output.group_keys
    table: dict[tuple, tuple] = {}
    columns: list[str] = []
    schema = None
    for _, upserts, deletes in output.events:
        if deletes is not None:
            for key in deletes.select(keys).rows():
                table.pop(key, None)
        columns, schema = upserts.columns, upserts.schema
        for row in upserts.rows(named=True):
            table[tuple(row[k] for k in keys)] = tuple(row[c] for c in columns)
    final = pl.DataFrame(list(table.values()), schema=schema, orient="row") if schema is not None else None
    return run.runner.final_changelog(final, None)


def run_query(
    batches: list[pl.DataFrame], sql: str, config: RunConfig, ctx: sd.Context | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """collect()'s result and the replayed changelog of `sql` over `batches` as stream `s` (on `ctx`'s workers)."""
    pool = None if ctx is None else ctx._worker_pool
    ctx = ctx or sd.Context(executor="inline", workers=1)
    ctx.from_polars(batches, name="s", watermark="ts", watermark_delay="0s")
    plan, config = _prepare(ctx.sql(sql).plan, config)
    run = build_run(plan, config, Recording, realtime=False, pool=pool)
    try:
        run.open(bounded=True)
        run.run(None)
        result = run.result()
        return result, replay(run, run.output)
    finally:
        run.close()


def duckdb_rows(sql: str, frame: pl.DataFrame) -> list[tuple]:
    con = duckdb_connection()
    duckdb_table(con, "s", DUCK, frame.rows())
    return con.execute(sql).fetchall()


def _key(row: tuple) -> tuple:
    return tuple((v is None, repr(round(v, 6)) if isinstance(v, float) else repr(v)) for v in row)


def assert_same_rows(ours: list[tuple], theirs: list[tuple], context: str) -> None:
    ours, theirs = sorted(ours, key=_key), sorted(theirs, key=_key)
    assert len(ours) == len(theirs), f"{context}: {len(ours)} rows vs DuckDB's {len(theirs)}\n{ours}\n{theirs}"
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            if isinstance(x, float) and isinstance(y, (float, int)):
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), f"{context}: {a} vs DuckDB's {b}"
            else:
                assert x == y, f"{context}: {a} vs DuckDB's {b}\n{ours}\n{theirs}"


def check(
    query: Q, frame: pl.DataFrame, batches: list[pl.DataFrame], config: RunConfig, ctx: sd.Context | None = None
) -> None:
    expected = duckdb_rows(query.duck or query.sql, frame)
    result, replayed = run_query(batches, query.sql, config, ctx)
    where = f"{query.name} {config.executor} workers={config.workers} optimize={config.optimize} batches={len(batches)}"
    assert_same_rows(result.rows(), expected, where)
    assert_same_rows(replayed.rows(), expected, where + " (replayed changelog)")


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
@settings(max_examples=examples(4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_inline_matches_duckdb_and_the_changelog_replays_to_it(query, data):
    frame, batches = data
    for workers, optimize in ((1, True), (3, True), (3, False)):
        check(query, frame, batches, RunConfig(workers=workers, executor="inline", optimize=optimize))


FIXED = pl.DataFrame(
    {
        "k": ["a", "b", "a", None, "c", "a", "b", "c", "c", "d", "a", None, "b"],
        "i": [1, 2, None, 4, 3, 5, -1, 3, 3, None, 2, 0, 4],
        "d": [0.5, -1.0, None, 2.25, 1.0, 0.0, None, -0.75, 3.5, 1.5, -2.0, 0.25, None],
        "ts": [BASE + dt.timedelta(seconds=s) for s in (0, 1, 4, 9, 11, 12, 12, 15, 23, 24, 31, 33, 40)],
    },
    schema=SCHEMA,
)


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@pytest.mark.parametrize("workers", [1, 3])
def test_worker_executors_match_duckdb_and_replay(executor, workers):
    batches = [FIXED.slice(0, 3), FIXED.slice(3, 1), FIXED.slice(4, 5), FIXED.slice(9, 0), FIXED.slice(9, 4)]
    with sd.Context(executor=executor, workers=workers) as ctx:  # warm workers, shared by the queries
        for query in QUERIES:
            check(query, FIXED, batches, RunConfig(workers=workers, executor=executor, optimize=workers == 1), ctx)
