"""Regular (unbounded) stream-stream joins: DuckDB's join, on every executor, worker count and optimizer setting.

Two streams a(k, ts, v) and b(k, ts, w) with keys from a small alphabet (NULLs too), each
split at random into micro-batches, joined on the key with no time bound: `collect()`
must equal DuckDB's join of the whole input. Outer joins emit a retract changelog (a
NULL-padded row retracted when its first match arrives); replaying what they emitted
row by row must give the same table.
"""

from __future__ import annotations

import datetime as dt
import random
import warnings
from collections import Counter

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from executor.api import collect
from stream_dsl.config import RunConfig
from test_differential import assert_same_rows
from differential.reference import duckdb_connection, duckdb_table

BASE = dt.datetime(2024, 1, 1)
A_SCHEMA = {"k": pl.String, "ts": pl.Datetime("ms"), "v": pl.Int64}
B_SCHEMA = {"k": pl.String, "ts": pl.Datetime("ms"), "w": pl.Int64}

# (name, our SQL, DuckDB's SQL)
INNER = [
    ("inner_on", "SELECT a.k, a.v, b.w, b.ts FROM a JOIN b ON a.k = b.k", None),
    ("inner_using", "SELECT * FROM a JOIN b USING (k)", None),
    ("inner_with_a_condition", "SELECT a.k, a.v + b.w AS s FROM a JOIN b ON a.k = b.k AND a.v > b.w", None),
    ("inner_under_a_filter", "SELECT a.v, b.w FROM a JOIN b ON a.k = b.k WHERE b.w > 0 AND a.v < 4", None),
]
OUTER = [
    ("left_on", "SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k", None),
    ("right_on", "SELECT a.v, b.k, b.w FROM a RIGHT JOIN b ON b.k = a.k", None),
    ("full_on", "SELECT a.k, a.v, b.k AS bk, b.w FROM a FULL OUTER JOIN b ON a.k = b.k", None),
    ("full_using", "SELECT k, a.v, b.w FROM a FULL JOIN b USING (k)", None),
    ("left_with_a_left_guard", "SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k AND a.v > 0", None),
    ("left_with_a_right_condition", "SELECT a.v, b.w FROM a LEFT JOIN b ON a.k = b.k AND b.w > 0", None),
    ("full_under_a_filter", "SELECT a.v, b.w FROM a FULL JOIN b ON a.k = b.k WHERE a.v > 0 OR b.w IS NULL", None),
    (
        "aggregate_over_a_left_join",
        "SELECT k, COUNT(*) AS n, COUNT(w) AS m, SUM(w) AS s FROM (SELECT a.k, b.w FROM a LEFT JOIN b ON a.k = b.k) j "
        "GROUP BY k",
        None,
    ),
]
# inputs that are changelogs (non-windowed aggregates): a retraction retracts the pairs it made
AGG_A = "(SELECT k, COUNT(*) AS n FROM a GROUP BY k)"
AGG_B = "(SELECT k, SUM(w) AS s FROM b GROUP BY k)"
FEW_B = "(SELECT k, COUNT(*) AS c FROM b GROUP BY k HAVING COUNT(*) < 2)"  # a key leaves when its 2nd row comes
CHANGELOG = [
    ("inner_of_two_aggregates", f"SELECT x.k, x.n, y.s FROM {AGG_A} x JOIN {AGG_B} y ON x.k = y.k", None),
    ("left_of_two_aggregates", f"SELECT x.k, x.n, y.s FROM {AGG_A} x LEFT JOIN {AGG_B} y ON x.k = y.k", None),
    ("full_of_an_aggregate_and_a_stream", f"SELECT x.k, x.n, b.w FROM {AGG_A} x FULL JOIN b ON x.k = b.k", None),
    ("left_whose_matches_leave", f"SELECT a.k, a.v, y.c FROM a LEFT JOIN {FEW_B} y ON a.k = y.k", None),
    (
        "aggregate_over_a_join_of_aggregates",
        f"SELECT n, COUNT(*) AS keys, SUM(s) AS total FROM (SELECT x.n, y.s FROM {AGG_A} x JOIN {AGG_B} y "
        "ON x.k = y.k) j GROUP BY n",
        None,
    ),
]
QUERIES = INNER + OUTER + CHANGELOG
REPLAYED = OUTER[:-1] + CHANGELOG[:-1]  # the queries whose output is a retract changelog


def _side(draw, schema: dict, value: str) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    n = draw(st.integers(0, 12))
    frame = pl.DataFrame(
        {
            "k": draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n)),
            "ts": [BASE + dt.timedelta(seconds=s) for s in sorted(draw(st.lists(st.integers(0, 30), min_size=n,
                                                                                max_size=n)))],
            value: draw(st.lists(st.one_of(st.none(), st.integers(-3, 5)), min_size=n, max_size=n)),
        },
        schema=schema,
    )  # fmt: skip
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0] + cuts + [n]
    return frame, [frame.slice(lo, hi - lo) for lo, hi in zip(bounds, bounds[1:])]


@st.composite
def streams(draw):
    a, a_batches = _side(draw, A_SCHEMA, "v")
    b, b_batches = _side(draw, B_SCHEMA, "w")
    return a, a_batches, b, b_batches, draw(st.booleans())


def engine(
    a_batches: list[pl.DataFrame], b_batches: list[pl.DataFrame], watermark: bool, executor="inline", workers=1
) -> sd.Context:
    ctx = sd.Context(executor=executor, workers=workers)
    options = {"watermark": "ts", "watermark_delay": "0s"} if watermark else {}
    ctx.from_polars(a_batches or [pl.DataFrame(schema=A_SCHEMA)], name="a", **options)
    ctx.from_polars(b_batches or [pl.DataFrame(schema=B_SCHEMA)], name="b", **options)
    return ctx


def duckdb_rows(sql: str, a: pl.DataFrame, b: pl.DataFrame) -> list[tuple]:
    con = duckdb_connection()
    for name, frame, value in (("a", a, "v"), ("b", b, "w")):
        duckdb_table(con, name, f"k VARCHAR, ts TIMESTAMP, {value} BIGINT", frame.rows())
    return con.execute(sql).fetchall()


@pytest.mark.parametrize(("name", "ours", "theirs"), QUERIES, ids=[q[0] for q in QUERIES])
@settings(max_examples=examples(8), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams())
def test_stream_join_matches_duckdb_inline(name, ours, theirs, data):
    a, a_batches, b, b_batches, watermark = data
    plan = engine(a_batches, b_batches, watermark).sql(ours).plan
    expected = duckdb_rows(theirs or ours, a, b)
    for workers, optimize in ((1, True), (3, True), (1, False), (3, False)):
        result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert result.columns == list(plan.schema.names)
        assert_same_rows(result.rows(), expected, f"{name} workers={workers} optimize={optimize}")
    if (name, ours, theirs) in REPLAYED:  # the emitted changelog, replayed row by row, is the same table
        ctx = engine(a_batches, b_batches, watermark, workers=3)
        assert_same_rows(replayed(ctx.sql(ours)), expected, f"{name} replayed")


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@settings(max_examples=examples(2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams())
def test_stream_join_matches_duckdb_on_worker_processes(executor, data, warm_workers):
    a, a_batches, b, b_batches, watermark = data
    ctx = engine(a_batches, b_batches, watermark)
    chosen = [INNER[0], OUTER[0], OUTER[3], OUTER[-1], CHANGELOG[1], CHANGELOG[3]]
    for i, (name, ours, theirs) in enumerate(chosen):
        workers, optimize = (1 + 2 * (i % 2), i < 2)
        result = collect(
            ctx.sql(ours).plan,
            RunConfig(workers=workers, executor=executor, optimize=optimize),
            pool=lambda: warm_workers,
        )
        assert_same_rows(result.rows(), duckdb_rows(theirs or ours, a, b), f"{name} {executor} w={workers}")
    replay = engine(a_batches, b_batches, watermark, executor=executor, workers=3).sql(OUTER[2][1])
    assert_same_rows(replayed(replay), duckdb_rows(OUTER[2][1], a, b), f"full_on {executor} replayed")


def signed_rows(frame: pl.DataFrame) -> list[tuple]:
    """A batch's rows, a changelog's records (`op` insert or delete, first) as rows ending in +1 or -1."""
    if "op" not in frame.columns:
        return frame.rows()
    signs = [1 if op == "insert" else -1 for op in frame.get_column("op").to_list()]
    return [row + (sign,) for row, sign in zip(frame.drop("op").rows(), signs)]


def replayed(query: sd.Stream) -> list[tuple]:
    """The table a query's emitted changelog stands for, applied one row at a time: +1 adds a row, -1 removes an
    equal row that must be there already."""
    table: Counter = Counter()
    frames: list[pl.DataFrame] = []
    query.foreach_batch(lambda batch_id, frame: frames.append(frame)).await_termination()
    for frame in frames:
        ops = [{"insert": 1, "delete": -1}[op] for op in frame.get_column("op")] if "op" in frame.columns else None
        for row, op in zip(frame.drop("op", strict=False).rows(), ops or [1] * frame.height):
            assert op in (1, -1), op
            assert op == 1 or table[row] > 0, f"-1 of a row that is not there: {row}"
            table[row] += op
    return list(table.elements())


def test_the_dataframe_api_builds_the_same_plan_as_sql():
    frame = pl.DataFrame({"k": ["x", "y"], "ts": [BASE, BASE], "v": [1, 2]}, schema=A_SCHEMA)
    other = pl.DataFrame({"k": ["x", "x"], "ts": [BASE, BASE], "w": [3, 4]}, schema=B_SCHEMA)
    ctx = engine([frame], [other], watermark=True)
    api = ctx.stream("a").join(ctx.stream("b"), on="k", how="inner")
    sql = ctx.sql("SELECT * FROM a JOIN b USING (k)")
    assert api.columns == ["k", "ts", "v", "ts_right", "w"]
    assert sorted(api.collect().select("k", "v", "w").rows()) == [("x", 1, 3), ("x", 1, 4)]
    assert sorted(sql.collect().select("k", "v", "w").rows()) == [("x", 1, 3), ("x", 1, 4)]
    full = ctx.stream("a").join(ctx.stream("b"), on="k", how="full")
    full_sql = ctx.sql("SELECT * FROM a FULL JOIN b USING (k)")
    assert full.columns == ["k", "ts", "v", "ts_right", "w"] and full_sql.columns == ["k", "ts", "v", "b.ts", "w"]
    for result in (full.collect(), full_sql.collect()):
        assert sorted(result.select("k", "v", "w").rows(), key=str) == [("x", 1, 3), ("x", 1, 4), ("y", 2, None)]


# ---------------------------------------------------------------- what comes out when


def _frame(schema: dict, rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        [(k, BASE + dt.timedelta(seconds=s), x) for k, s, x in rows], schema=list(schema.items()), orient="row"
    )


def _batches_out(query: str, a_rows: list[list[tuple]], b_rows: list[list[tuple]], executor: str = "inline", **conf):
    ctx = sd.Context(executor=executor, workers=2, **conf)
    ctx.from_polars([_frame(A_SCHEMA, r) for r in a_rows], name="a", watermark="ts", watermark_delay="0s")
    ctx.from_polars([_frame(B_SCHEMA, r) for r in b_rows], name="b", watermark="ts", watermark_delay="0s")
    out: dict[int, list[tuple]] = {}
    handle = ctx.sql(query).foreach_batch(
        lambda batch_id, frame: out.__setitem__(batch_id, sorted(signed_rows(frame), key=str))
    )
    handle.await_termination()
    return {b: rows for b, rows in out.items() if rows}, handle.progress()


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_a_pair_comes_out_in_the_batch_of_its_later_row(executor):
    a = [[("x", 0, 1)], [("y", 1, 2)], [("x", 2, 3)], []]
    b = [[("y", 0, 10)], [("x", 1, 20)], [], [("x", 3, 30)]]
    out, progress = _batches_out("SELECT a.v, b.w FROM a JOIN b ON a.k = b.k", a, b, executor)
    assert out == {1: [(1, 20), (2, 10)], 2: [(3, 20)], 3: [(1, 30), (3, 30)]}
    assert [p["state_groups"] for p in progress][:3] == [2, 4, 5]  # every row is kept, none expires


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_an_outer_row_comes_out_null_padded_at_once_and_is_retracted_by_its_first_match(executor):
    a = [[("x", 0, 1)], [("y", 1, 2)], [], [("x", 3, 3)]]
    b = [[], [("x", 1, 10)], [("y", 2, 20), ("z", 2, 40)], [("x", 3, 30)]]
    out, _ = _batches_out("SELECT a.v, b.w FROM a FULL JOIN b ON a.k = b.k", a, b, executor)
    assert out == {  # (v, w, CHANGELOG_OP)
        0: [(1, None, 1)],
        1: [(1, 10, 1), (1, None, -1), (2, None, 1)],  # y has no match yet; x@0 meets its first
        2: [(2, 20, 1), (2, None, -1), (None, 40, 1)],
        3: [(1, 30, 1), (3, 10, 1), (3, 30, 1)],  # a row arriving with its match never shows NULLs
    }


# ---------------------------------------------------------------- state TTL: the state stays bounded


def test_state_ttl_bounds_the_state_and_late_rows_are_counted():
    """120 batches, 2 rows a side each, one second apart, TTL 5s: a row stays while t >= watermark - 5s."""
    n = 120
    a = [[("x", i, i), ("y", i, -i)] for i in range(n)]
    b = [[("x", i, i), ("y", i, -i)] for i in range(n)]
    query = "SELECT a.v, b.w FROM a JOIN b ON a.k = b.k"
    kept = {}
    for ttl in ("5s", None):
        out, progress = _batches_out(query, a, b, state_ttl=ttl)
        kept[ttl] = [p["state_groups"] for p in progress]
        pairs = sum(len(rows) for rows in out.values())
        # with the TTL a new row meets the other side's kept rows (t >= W - 5s, W = i - 1 before batch i) and
        # the one of its own batch; without, every row of the other side
        assert pairs == (2 * sum(min(i, 6) * 2 + 1 for i in range(n)) if ttl else 2 * n * n), ttl
    # 6 seconds of rows (t in [W - 5s, W]), 2 keys, 2 sides; without a TTL every row until the end of input
    assert max(kept["5s"]) == 6 * 2 * 2
    assert max(kept[None]) == 4 * (n - 1)
    # a row older than the TTL behind the watermark is late: dropped and counted
    out, progress = _batches_out(query, [[("x", 10, 1)], [("x", 3, 2)]], [[("x", 10, 5)], []], state_ttl="5s")
    assert out == {0: [(1, 5)]} and sum(p["late_rows"] for p in progress) == 1


def test_explain_says_when_the_state_is_unbounded_and_an_unbounded_query_warns():
    from stream_dsl.connectors import memory

    ctx = sd.Context(executor="inline")
    for name in ("a", "b"):
        memory.register(f"sj-unb-{name}", [_frame(A_SCHEMA, [("x", 1, 1)])])
        ctx.sql(
            f"CREATE STREAM {name} (k STRING, ts TIMESTAMP, v BIGINT, WATERMARK FOR ts AS ts) "
            f"WITH (connector = 'memory', id = 'sj-unb-{name}', bounded = 'false')"
        )
    query = ctx.sql("SELECT a.v, b.v AS w FROM a JOIN b ON a.k = b.k")
    assert "StreamJoin inner on [__sd_jk0] state=unbounded (no state_ttl" in query.explain()
    with pytest.warns(UserWarning, match="keeps its rows for ever, so its state grows without end; SET state_ttl"):
        handle = query.start(sink=lambda batch_id, frame: None)
    handle.stop()
    ctx.sql("SET state_ttl = '1 hour'")
    query = ctx.sql("SELECT a.v, b.v AS w FROM a JOIN b ON a.k = b.k")
    assert "StreamJoin inner on [__sd_jk0] ttl=1h\n" in query.explain()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        query.start(sink=lambda batch_id, frame: None).stop()


# ---------------------------------------------------------------- checkpoints: a restart mid-stream is exact


def _random_frames(seed: int, n: int = 12) -> list[pl.DataFrame]:
    r = random.Random(seed)
    return [
        pl.DataFrame(
            [(r.choice("abcd"), BASE + dt.timedelta(milliseconds=i * 1000 + r.randint(0, 999)), r.randint(0, 9))]
            + [(r.choice("abcd"), BASE + dt.timedelta(milliseconds=i * 1000 + r.randint(0, 999)), None)],
            schema=list(A_SCHEMA.items()),
            orient="row",
        ).sort("ts")
        for i in range(n)
    ]


CHECKPOINTED = {
    "inner": "SELECT a.k, a.ts, a.v, b.ts AS bts, b.v AS bv FROM a JOIN b ON a.k = b.k",
    "full": "SELECT a.k, a.ts, a.v, b.k AS bk, b.v AS bv FROM a FULL JOIN b ON a.k = b.k",
}


def _checkpointed_context(executor: str, a: list, b: list, checkpoint_dir: str | None, out: str) -> sd.Context:
    from stream_dsl.connectors import memory

    ctx = sd.Context(executor=executor, workers=2, group_size=2, checkpoint_dir=checkpoint_dir, state_ttl="4s")
    for name, frames in (("a", a), ("b", b)):
        memory.register(f"sj-ckpt-{executor}-{name}", frames)
        ctx.sql(
            f"CREATE STREAM {name} (k STRING, ts TIMESTAMP, v BIGINT, "
            f"WATERMARK FOR ts AS ts - INTERVAL '500' MILLISECOND) "
            f"WITH (connector = 'memory', id = 'sj-ckpt-{executor}-{name}')"
        )
    ctx.sql(f"CREATE SINK out WITH (connector = 'memory', id = '{out}')")
    return ctx


@pytest.mark.parametrize("kind", ["inner", "full"])
@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_a_restart_from_a_checkpoint_mid_stream_gives_the_exact_output(tmp_path, executor, kind):
    """The sources fail after 7 batches; started again, the query resumes from its last checkpoint (both sides'
    kept rows and match counts restored) and the sink holds exactly what an uninterrupted run wrote: the same
    rows, and for the outer join the same changelog (NULL-padded rows and their retractions)."""
    from stream_dsl.connectors import memory

    a, b = _random_frames(1), _random_frames(2)
    query, out = CHECKPOINTED[kind], f"sj-ckpt-out-{executor}-{kind}"
    handle = _checkpointed_context(executor, a, b, None, out + "-whole").sql(query).start("out")
    assert handle.await_termination(60)
    expected = sorted(memory.sink_output(out + "-whole").rows(), key=str)
    assert ("op" in memory.sink_output(out + "-whole").columns) == (kind == "full")  # insert/delete records
    boom = RuntimeError("boom")
    failing = _checkpointed_context(executor, a[:7] + [boom], b[:7] + [boom], str(tmp_path), out)
    with pytest.raises(sd.DSLError, match="boom"):
        failing.sql(query).start("out").await_termination(60)
    handle = _checkpointed_context(executor, a, b, str(tmp_path), out).sql(query).start("out")
    assert handle.await_termination(60)
    assert handle.restored_checkpoint is not None and handle.restored_checkpoint["next_batch"] > 2
    assert sorted(memory.sink_output(out).rows(), key=str) == expected


# ---------------------------------------------------------------- refusals


def test_a_padded_row_comes_back_when_its_last_match_is_retracted():
    """b's key x leaves the HAVING COUNT(*) < 2 aggregate when its second row comes: a's x row loses its match."""
    a = [[("x", 0, 1)], [], [], []]
    b = [[], [("x", 1, 10)], [("y", 2, 20)], [("x", 3, 30)]]
    out, _ = _batches_out(f"SELECT a.v, y.k, y.c FROM a LEFT JOIN {FEW_B} y ON a.k = y.k", a, b)
    assert out == {  # (v, k, c, CHANGELOG_OP)
        0: [(1, None, None, 1)],
        1: [(1, "x", 1, 1), (1, None, None, -1)],
        3: [(1, "x", 1, -1), (1, None, None, 1)],  # x's count reached 2: the pair goes, the padded row is back
    }


def test_an_interval_join_over_a_changelog_stays_refused_by_name():
    ctx = engine([_frame(A_SCHEMA, [("x", 1, 1)])], [_frame(B_SCHEMA, [("x", 3, 2)])], watermark=True)
    query = ctx.sql(
        "SELECT * FROM (SELECT k, MAX(ts) AS ts FROM a GROUP BY k) x JOIN b ON x.k = b.k "
        "AND b.ts BETWEEN x.ts AND x.ts + INTERVAL '1' SECOND"
    )
    with pytest.raises(sd.PlanError, match="an interval join over a changelog"):
        query.collect()
