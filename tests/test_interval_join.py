"""Stream-stream interval joins: DuckDB's join with the same time condition, on every executor.

Two streams a(k, ts, v) and b(k, ts, w) with keys from a small alphabet (NULLs too),
split at random into micro-batches. With `ordered` data each stream has a watermark
(delay 0) and comes in event-time order, so state is dropped as the watermark passes
and no row is late; otherwise neither has a watermark and only the end of input
drops state. Either way `collect()` must equal DuckDB's plain join.
"""

from __future__ import annotations

import datetime as dt
import re

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.ir.plan import Project
from budget import examples
from executor.api import collect
from stream_dsl.config import RunConfig
from test_differential import assert_same_rows
from differential.reference import duckdb_connection, duckdb_table

BASE = dt.datetime(2024, 1, 1)
A_SCHEMA = {"k": pl.String, "ts": pl.Datetime("ms"), "v": pl.Int64}
B_SCHEMA = {"k": pl.String, "ts": pl.Datetime("ms"), "w": pl.Int64}

# (name, our SQL, DuckDB's SQL): the same text but for the spelling of intervals
QUERIES = [
    (
        "inner_between",
        "SELECT * FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '10' "
        "SECOND",
        "SELECT * FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL 5 SECOND AND a.ts + INTERVAL 10 SECOND",
    ),
    (
        "left_strict_upper",
        "SELECT a.k, a.v, b.w, b.ts FROM a LEFT OUTER JOIN b ON a.k = b.k "
        "AND b.ts >= a.ts - INTERVAL '2' SECOND AND b.ts < a.ts + INTERVAL '3' SECOND",
        "SELECT a.k, a.v, b.w, b.ts FROM a LEFT OUTER JOIN b ON a.k = b.k "
        "AND b.ts >= a.ts - INTERVAL 2 SECOND AND b.ts < a.ts + INTERVAL 3 SECOND",
    ),
    (
        "right_mirrored_strict_lower",
        "SELECT a.v, b.k, b.w FROM a RIGHT JOIN b ON b.k = a.k AND a.ts > b.ts - INTERVAL '4' SECOND AND a.ts <= b.ts",
        "SELECT a.v, b.k, b.w FROM a RIGHT JOIN b ON b.k = a.k AND a.ts > b.ts - INTERVAL 4 SECOND AND a.ts <= b.ts",
    ),
    (
        "full_outer",
        "SELECT a.k, a.v, b.k AS bk, b.w FROM a FULL OUTER JOIN b ON a.k = b.k "
        "AND b.ts BETWEEN a.ts - INTERVAL '3' SECOND AND a.ts + INTERVAL '1' SECOND",
        "SELECT a.k, a.v, b.k AS bk, b.w FROM a FULL OUTER JOIN b ON a.k = b.k "
        "AND b.ts BETWEEN a.ts - INTERVAL 3 SECOND AND a.ts + INTERVAL 1 SECOND",
    ),
    (
        "full_outer_under_a_filter",  # the filter must not go below the join (it would make rows unmatched)
        "SELECT a.v, b.w FROM a FULL JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '4' SECOND "
        "WHERE a.v > 0",
        "SELECT a.v, b.w FROM a FULL JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL 4 SECOND "
        "WHERE a.v > 0",
    ),
    (
        "inner_with_a_condition",
        "SELECT a.k, a.v + b.w AS s FROM a JOIN b ON a.k = b.k AND a.v > b.w "
        "AND a.ts BETWEEN b.ts - INTERVAL '1' SECOND AND b.ts + INTERVAL '6' SECOND",
        "SELECT a.k, a.v + b.w AS s FROM a JOIN b ON a.k = b.k AND a.v > b.w "
        "AND a.ts BETWEEN b.ts - INTERVAL 1 SECOND AND b.ts + INTERVAL 6 SECOND",
    ),
    (
        "left_with_a_left_guard",
        "SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k AND a.v > 0 "
        "AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '7' SECOND",
        "SELECT a.k, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k AND a.v > 0 "
        "AND b.ts BETWEEN a.ts AND a.ts + INTERVAL 7 SECOND",
    ),
]


def _side(draw, schema: dict, value: str, ordered: bool) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    n = draw(st.integers(0, 14))
    times = draw(st.lists(st.one_of(st.integers(0, 40).map(lambda h: h * 500), st.none()), min_size=n, max_size=n))
    frame = pl.DataFrame(
        {
            "k": draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n)),
            "ts": [None if t is None else BASE + dt.timedelta(milliseconds=t) for t in times],
            value: draw(st.lists(st.one_of(st.none(), st.integers(-3, 5)), min_size=n, max_size=n)),
        },
        schema=schema,
    )
    if ordered:
        frame = frame.sort("ts", nulls_last=draw(st.booleans()), maintain_order=True)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    bounds = [0] + cuts + [n]
    return frame, [frame.slice(lo, hi - lo) for lo, hi in zip(bounds, bounds[1:])]


@st.composite
def streams(draw):
    ordered = draw(st.booleans())
    a, a_batches = _side(draw, A_SCHEMA, "v", ordered)
    b, b_batches = _side(draw, B_SCHEMA, "w", ordered)
    return a, a_batches, b, b_batches, ordered


def engine(a_batches: list[pl.DataFrame], b_batches: list[pl.DataFrame], ordered: bool) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=1)
    options = {"watermark": "ts", "watermark_delay": "0s"} if ordered else {}
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
def test_interval_join_matches_duckdb_inline(name, ours, theirs, data):
    a, a_batches, b, b_batches, ordered = data
    plan = engine(a_batches, b_batches, ordered).sql(ours).plan
    expected = duckdb_rows(theirs, a, b)
    for workers, optimize in ((1, True), (3, True), (2, False)):
        result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert result.columns == list(plan.schema.names)
        assert_same_rows(result.rows(), expected, f"{name} workers={workers} optimize={optimize} ordered={ordered}")


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@settings(max_examples=examples(2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams())
def test_interval_join_matches_duckdb_on_worker_processes(executor, data, warm_workers):
    a, a_batches, b, b_batches, ordered = data
    ctx = engine(a_batches, b_batches, ordered)
    for i, (name, ours, theirs) in enumerate(QUERIES[:4]):  # inner, left, right, full; optimizer on and off
        optimize = i % 2 == 0
        result = collect(
            ctx.sql(ours).plan, RunConfig(workers=2, executor=executor, optimize=optimize), pool=lambda: warm_workers
        )
        assert_same_rows(result.rows(), duckdb_rows(theirs, a, b), f"{name} {executor} optimize={optimize}")


# ---------------------------------------------------------------- hand-made event orders: what comes out when


def _frame(schema: dict, rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        [(k, BASE + dt.timedelta(seconds=s), x) for k, s, x in rows], schema=list(schema.items()), orient="row"
    )


def _batches_out(query: str, a_rows: list[list[tuple]], b_rows: list[list[tuple]], executor: str = "inline"):
    ctx = sd.Context(executor=executor, workers=2)
    ctx.from_polars([_frame(A_SCHEMA, r) for r in a_rows], name="a", watermark="ts", watermark_delay="0s")
    ctx.from_polars([_frame(B_SCHEMA, r) for r in b_rows], name="b", watermark="ts", watermark_delay="0s")
    out: dict[int, list[tuple]] = {}
    handle = ctx.sql(query).foreach_batch(
        lambda batch_id, frame: out.__setitem__(batch_id, sorted(frame.rows(), key=str))
    )
    handle.await_termination()
    return {b: rows for b, rows in out.items() if rows}, handle.progress()


def _t(seconds: int) -> dt.datetime:
    return BASE + dt.timedelta(seconds=seconds)


LEFT_0_5 = (
    "SELECT a.k, a.ts, a.v, b.w FROM a LEFT JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '5' SECOND"
)


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_pairs_come_when_the_later_row_arrives_and_outer_rows_when_the_watermark_passes(executor):
    a = [[("x", 0, 1), ("y", 2, 2)], [("x", 6, 3)], [("x", 8, 4)], [("y", 9, 5)], [("x", 3, 9)]]
    b = [[("x", 3, 10)], [("z", 6, 20)], [("x", 7, 30)], [("x", 12, 40)], [("x", 1, 50)]]
    out, progress = _batches_out(LEFT_0_5, a, b, executor)
    assert out == {
        0: [("x", _t(0), 1, 10)],  # both rows in batch 0: the pair at once
        2: [("x", _t(6), 3, 30)],  # the right row arrives later than its left row
        # watermark min(9, 12) = 9 passes y@2's interval end 2 + 5 = 7 (it stayed while the watermark was 7)
        3: [("x", _t(8), 4, 40), ("y", _t(2), 2, None)],
        4: [("y", _t(9), 5, None)],  # the end of input flushes the last unmatched left row
    }
    assert [p["late_rows"] for p in progress][4] == 2  # x@3 and b's x@1 arrive below the watermark 9
    assert sum(p["late_rows"] for p in progress) == 2
    # per side, so far: a's x@3 on the left, b's x@1 on the right (summed over the workers' partitions)
    assert [list(p["late_rows_by_side"].values()) for p in progress][3:] == [
        [{"left": 0, "right": 0}],
        [{"left": 1, "right": 1}],
    ]


def test_full_outer_rows_of_each_side_come_out_when_the_watermark_passes_their_interval():
    """b.ts BETWEEN a.ts AND a.ts + 5s: a left row at t waits for the watermark to pass t + 5, a right row t."""
    query = "SELECT a.v, b.w FROM a FULL JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '5' SECOND"
    a = [[("x", 0, 1)], [("z", 3, 2)], [("z", 8, 3)], [("q", 20, 4)]]
    b = [[("y", 1, 10)], [("y", 2, 20)], [("z", 9, 30)], [("q", 20, 40)]]
    out, _ = _batches_out(query, a, b)
    assert out == {
        1: [(None, 10)],  # watermark 2 passes the right row at 1
        2: [(1, None), (3, 30), (None, 20)],  # watermark 8 passes 0 + 5 and 2; z@3 stays (3 + 5 >= 8)
        3: [(2, None), (4, 40)],  # the end of input
    }


def test_a_strict_upper_bound_drops_a_row_one_watermark_earlier():
    """b.ts < a.ts + 5s: at watermark 5 the left row at 0 can match no future row (all at >= 5); with <= it can."""
    query = "SELECT a.v, b.w FROM a LEFT JOIN b ON a.k = b.k AND b.ts >= a.ts AND b.ts < a.ts + INTERVAL '5' SECOND"
    a, b = [[("x", 0, 1)], [("z", 5, 2)]], [[("y", 0, 0)], [("y", 5, 0)], [("x", 5, 3)]]
    out, _ = _batches_out(query, a, b)
    assert out == {1: [(1, None)], 2: [(2, None)]}
    out, _ = _batches_out(query.replace("b.ts < a.ts", "b.ts <= a.ts"), a, b)
    assert out == {2: [(1, 3), (2, None)]}


# ---------------------------------------------------------------- the state itself: late rows per side, its size


def _join_state(query: str):
    from executor.state.interval_join import IntervalJoinState
    from optimizer.physical.lower import lower, stage_order

    ctx = engine([], [], ordered=True)
    [op] = [s.stateful for s in stage_order(lower(ctx.sql(query).plan)) if s.stateful is not None]
    return IntervalJoinState(op)


def _layout(state, left: list[tuple], right: list[tuple]) -> pl.DataFrame:
    """Rows as the exchange delivers them (physical/interval_join.py): both sides in one layout."""
    op = state.op
    rows = []
    for side, items in ((False, left), (True, right)):
        for k, seconds, x in items:
            row = dict.fromkeys(op.output.names)
            time, value = (op.right_time, op.right_columns[-1]) if side else (op.left_time, op.left_columns[-1])
            row.update({time: _t(seconds), value: x, op.keys[0]: k, "__sd_side": side})
            rows.append(row)
    schema = {**op.output.to_polars(), "__sd_side": pl.Boolean, op.keys[0]: pl.String}
    return pl.DataFrame(rows, schema=schema)


def _ms(seconds: int) -> int:
    return seconds * 1000 + int((BASE - dt.datetime(1970, 1, 1)).total_seconds() * 1000)


def test_late_rows_are_counted_per_side_and_dropped():
    state = _join_state("SELECT * FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts")
    out = state.step(_layout(state, [("x", 10, 1)], [("x", 8, 2)]), None, _ms(10))
    assert out.frame.select("v", "w").rows() == [(1, 2)] and out.late == 0
    # watermark 10: a row below it is late (it could have matched rows already dropped), one at 10 is not
    out = state.step(
        _layout(state, [("x", 9, 3), ("x", 10, 4)], [("x", 7, 5), ("x", 6, 6), ("x", 10, 7)]), _ms(10), _ms(10)
    )
    assert sorted(out.frame.select("v", "w").rows()) == [(1, 7), (4, 2), (4, 7)]  # 4 meets the kept right row 2
    assert (out.late, state.late_left, state.late_right) == (3, 1, 2)


def test_rows_with_a_null_key_or_time_never_match_and_outer_ones_come_out_at_once():
    state = _join_state("SELECT * FROM a LEFT JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '5' SECOND")
    frame = _layout(state, [(None, 1, 1), ("x", 1, 2)], [(None, 1, 3), ("x", 2, 4)])
    out = state.step(frame, None, None)
    assert sorted(out.frame.select("v", "w").rows(), key=str) == [(1, None), (2, 4)]
    assert state.open_groups == 2 and out.late == 0


def test_the_state_stays_bounded_as_the_watermark_advances():
    """120 batches, 2 rows a side each, one second apart: the state holds the rows the interval needs, no more."""
    n = 120
    a = [_frame(A_SCHEMA, [("x", i, i), ("y", i, -i)]) for i in range(n)]
    b = [_frame(B_SCHEMA, [("x", i, i), ("y", i, -i)]) for i in range(n)]
    pairs = 2 * sum(1 for i in range(n) for j in range(n) if -5 <= j - i <= 10)
    for watermark in (True, False):
        ctx = sd.Context(executor="inline", workers=1)
        options = {"watermark": "ts", "watermark_delay": "0s"} if watermark else {}
        ctx.from_polars(a, name="a", **options)
        ctx.from_polars(b, name="b", **options)
        handle = ctx.sql(QUERIES[0][1]).foreach_batch(lambda batch_id, frame: None)
        handle.await_termination()
        kept = [p["state_groups"] for p in handle.progress()]
        # a left row stays while t + 10s >= watermark (11 seconds of rows), a right row while t - (-5s) >= it (6);
        # without a watermark every row stays to the end of input
        assert max(kept) == (2 * (11 + 6) if watermark else 4 * (n - 1)), (watermark, max(kept))
        assert sum(p["rows_out"] for p in handle.progress()) == pairs


# ---------------------------------------------------------------- checkpoints: a restart mid-stream is exact


def _random_frames(seed: int, n: int = 12) -> list[pl.DataFrame]:
    import random

    r = random.Random(seed)
    return [
        pl.DataFrame(
            [(r.choice("abc"), BASE + dt.timedelta(milliseconds=i * 1000 + r.randint(0, 999)), r.randint(0, 9))]
            + [(r.choice("abc"), BASE + dt.timedelta(milliseconds=i * 1000 + r.randint(0, 999)), None)],
            schema=list(A_SCHEMA.items()),
            orient="row",
        ).sort("ts")
        for i in range(n)
    ]


CHECKPOINTED = (
    "SELECT a.k, a.ts, a.v, b.ts AS bts, b.v AS bv FROM a LEFT JOIN b ON a.k = b.k "
    "AND b.ts BETWEEN a.ts - INTERVAL '2' SECOND AND a.ts + INTERVAL '1' SECOND"
)


def _checkpointed_context(executor: str, a: list, b: list, checkpoint_dir: str | None) -> sd.Context:
    from stream_dsl.connectors import memory

    ctx = sd.Context(executor=executor, workers=2, group_size=2, checkpoint_dir=checkpoint_dir)
    for name, frames in (("a", a), ("b", b)):
        memory.register(f"ij-ckpt-{executor}-{name}", frames)
        ctx.sql(
            f"CREATE STREAM {name} (k STRING, ts TIMESTAMP, v BIGINT, "
            f"WATERMARK FOR ts AS ts - INTERVAL '500' MILLISECOND) "
            f"WITH (connector = 'memory', id = 'ij-ckpt-{executor}-{name}')"
        )
    ctx.sql(f"CREATE SINK out WITH (connector = 'memory', id = 'ij-ckpt-out-{executor}')")
    return ctx


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_a_restart_from_a_checkpoint_mid_stream_gives_the_exact_output(tmp_path, executor):
    """The sources fail after 7 batches; started again, the query resumes from its last checkpoint (the join
    state of both sides restored, matched flags too) and the sink holds exactly the uninterrupted result."""
    from stream_dsl.connectors import memory

    a, b = _random_frames(1), _random_frames(2)
    expected = sorted(_checkpointed_context(executor, a, b, None).sql(CHECKPOINTED).collect().rows(), key=str)
    boom = RuntimeError("boom")
    failing = _checkpointed_context(executor, a[:7] + [boom], b[:7] + [boom], str(tmp_path))
    with pytest.raises(sd.DSLError, match="boom"):
        failing.sql(CHECKPOINTED).start("out").await_termination(60)
    handle = _checkpointed_context(executor, a, b, str(tmp_path)).sql(CHECKPOINTED).start("out")
    assert handle.await_termination(60)
    assert handle.restored_checkpoint is not None and handle.restored_checkpoint["next_batch"] > 2
    assert sorted(memory.sink_output(f"ij-ckpt-out-{executor}").rows(), key=str) == expected


# ---------------------------------------------------------------- misuse: positioned errors


@pytest.mark.parametrize(
    ("sql", "message", "where"),
    [
        (
            "SELECT * FROM clicks c JOIN events e\n  ON c.ts BETWEEN e.event_time AND e.event_time + INTERVAL '1' "
            "SECOND",
            "JOIN ... ON needs an equality between a column of each side",
            (2, 6),
        ),
        (
            "SELECT * FROM clicks c JOIN events e ON c.user_id = e.user_id AND e.event_time >= c.ts",
            "an interval join needs both a lower and an upper time bound, and this one has no upper bound",
            (1, 67),
        ),
        (
            "SELECT * FROM clicks c RIGHT JOIN events e ON c.user_id = e.user_id AND c.url = 'x' "
            "AND e.event_time BETWEEN c.ts AND c.ts + INTERVAL '1' SECOND",
            "a RIGHT JOIN of two streams takes key equalities and the time bound in ON only",
            (1, 73),
        ),
    ],
)
def test_misuse_is_a_positioned_error(ctx, sql, message, where):
    with pytest.raises(sd.BindError) as info:
        ctx.sql(sql)
    assert info.value.message.startswith(message), info.value.message
    assert (info.value.line, info.value.column) == where


def test_an_unbounded_stream_without_a_watermark_is_refused_when_the_query_starts():
    from stream_dsl.connectors import memory

    ctx = sd.Context(executor="inline")
    for name in ("a", "b"):
        memory.register(f"ij-nowm-{name}", [_frame(A_SCHEMA, [("x", 1, 1)])])
        ctx.sql(
            f"CREATE STREAM {name} (k STRING, ts TIMESTAMP, v BIGINT) "
            f"WITH (connector = 'memory', id = 'ij-nowm-{name}', bounded = 'false')"
        )
    query = ctx.sql("SELECT * FROM a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '1' SECOND")
    with pytest.raises(
        sd.PlanError, match="the watermark does not bound its time columns .ts and ts.; declare a WATERMARK"
    ):
        query.start(sink=lambda batch_id, frame: None)


# ---------------------------------------------------------------- the dataframe API builds the SQL's plan


def test_the_dataframe_api_builds_the_same_plan_as_sql():
    ctx = engine([_frame(A_SCHEMA, [("x", 1, 1)])], [_frame(B_SCHEMA, [("x", 3, 2)])], ordered=True)
    a, b = ctx.stream("a"), ctx.stream("b")
    for how, keyword in (("inner", ""), ("left", "LEFT"), ("right", "RIGHT"), ("full", "FULL")):
        sql = ctx.sql(
            f"SELECT * FROM a {keyword} JOIN b ON a.k = b.k "
            "AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '10' SECOND"
        )
        api = a.join(b, left_on="k", right_on="k", within=("-5s", "10s"), time="ts", how=how)
        # SQL names clashing right columns by alias (b.k) in a Project over the join; the API keeps polars' _right
        sql_join = sql.plan.input if isinstance(sql.plan, Project) else sql.plan
        assert api.plan == sql_join, how
        assert api.collect().rows() == sql.collect().rows()
    using = a.join(b, on="k", within=("-5s", "10s"), left_time="ts", right_time="ts", how="right")
    assert using.columns == ["k", "ts", "v", "ts_right", "w"] and using.collect().rows() == [("x", _t(1), 1, _t(3), 2)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"within": ("5s",), "time": "ts"}, "within= takes (lower, upper)"),
        ({"within": ("10s", "-5s"), "time": "ts"}, "within= needs lower <= upper"),
        ({"within": ("-5s", "10s")}, "an interval join needs its time columns"),
        (
            {"within": ("-5s", "10s"), "left_time": "ts", "right_time": "w"},
            "an interval join bounds TIMESTAMP columns, but 'w' is BIGINT",
        ),
        ({"within": ("-5s", "10s"), "time": "tss"}, "unknown column 'tss'"),
    ],
)
def test_dataframe_api_misuse(kwargs, message):
    ctx = engine([], [], ordered=True)
    with pytest.raises(sd.DSLError, match=re.escape(message)):
        ctx.stream("a").join(ctx.stream("b"), on="k", **kwargs)


def test_an_interval_join_of_a_changelog_is_refused_by_name():
    ctx = engine([_frame(A_SCHEMA, [("x", 1, 1)])], [_frame(B_SCHEMA, [("x", 3, 2)])], ordered=True)
    query = ctx.sql(
        "SELECT * FROM (SELECT k, window_start, COUNT(*) AS n FROM a GROUP BY k, TUMBLE(ts, INTERVAL '1' SECOND) "
        "EMIT CHANGES) x JOIN b ON x.k = b.k AND b.ts BETWEEN x.window_start AND x.window_start + INTERVAL '1' SECOND"
    )
    with pytest.raises(sd.PlanError, match="an interval join over a changelog"):
        query.collect()
