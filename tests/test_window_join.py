"""Window joins: two windowed streams joined on the key and the same window, when the window closes.

`x JOIN y ON x.k = y.k AND x.window_start = y.window_start AND x.window_end = y.window_end`
over two windowed aggregates is an interval join of zero width on window_end
(`bind/interval_join.equal_time_bound`): a window's rows of both sides come out of their
aggregates in the micro-batch whose watermark passes its end, meet there, and leave the
state at once (an outer row comes out with NULLs then). Checked against DuckDB (windows as
arithmetic on epoch milliseconds) on every executor, and with a hand-made event order.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from budget import examples
from executor.api import collect
from stream_dsl.config import RunConfig
from test_differential import assert_same_rows
from test_interval_join import A_SCHEMA, B_SCHEMA, _batches_out, _t, duckdb_rows, engine, streams

SIZE_MS = 2000


def _ours(kind: str) -> str:
    return (
        f"SELECT x.k, x.window_start, x.window_end, x.n, y.m FROM "
        f"(SELECT k, window_start, window_end, COUNT(*) AS n FROM a GROUP BY k, TUMBLE(ts, INTERVAL '2' SECOND)) x "
        f"{kind} JOIN (SELECT k, window_start, window_end, SUM(w) AS m FROM b "
        f"GROUP BY k, TUMBLE(ts, INTERVAL '2' SECOND)) y "
        f"ON x.k = y.k AND x.window_start = y.window_start AND x.window_end = y.window_end"
    )


def _theirs(kind: str) -> str:
    def windowed(table: str, agg: str) -> str:
        return (
            f"(SELECT k, epoch_ms(ts) - epoch_ms(ts) % {SIZE_MS} AS ws, {agg} FROM {table} "
            f"WHERE ts IS NOT NULL GROUP BY ALL)"
        )

    return (
        f"SELECT x.k, epoch_ms(x.ws), epoch_ms(x.ws + {SIZE_MS}), x.n, y.m FROM {windowed('a', 'COUNT(*) AS n')} x "
        f"{kind} JOIN {windowed('b', 'SUM(w) AS m')} y ON x.k = y.k AND x.ws = y.ws"
    )


KINDS = ["", "LEFT", "RIGHT", "FULL"]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams())
def test_window_join_matches_duckdb_inline(kind, data):
    a, a_batches, b, b_batches, ordered = data
    plan = engine(a_batches, b_batches, ordered).sql(_ours(kind)).plan
    expected = duckdb_rows(_theirs(kind), a, b)
    for workers, optimize in ((1, True), (3, True), (2, False)):
        result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert_same_rows(result.rows(), expected, f"{kind} workers={workers} optimize={optimize} ordered={ordered}")


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@settings(max_examples=examples(2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams())
def test_window_join_matches_duckdb_on_worker_processes(executor, data, warm_workers):
    a, a_batches, b, b_batches, ordered = data
    ctx = engine(a_batches, b_batches, ordered)
    for kind in ("", "FULL"):
        for optimize in (True, False):
            result = collect(
                ctx.sql(_ours(kind)).plan,
                RunConfig(workers=2, executor=executor, optimize=optimize),
                pool=lambda: warm_workers,
            )
            assert_same_rows(result.rows(), duckdb_rows(_theirs(kind), a, b), f"{kind} {executor} {optimize}")


def test_a_window_pair_and_an_outer_window_come_out_when_the_window_closes():
    a = [[("x", 0, 1), ("y", 1, 1)], [("x", 3, 1)], [("x", 5, 1)], [("x", 7, 1)]]
    b = [[("x", 1, 10)], [("x", 2, 20)], [("z", 4, 5)], [("x", 7, 1)]]
    query = _ours("LEFT").replace(
        "SELECT x.k, x.window_start, x.window_end, x.n, y.m", "SELECT x.k, x.window_start, x.n, y.m"
    )
    out, progress = _batches_out(query, a, b)
    assert out == {
        1: [("x", _t(0), 1, 10), ("y", _t(0), 1, None)],  # watermark min(3, 2) = 2 closes [0, 2)
        2: [("x", _t(2), 1, 20)],  # watermark 4 closes [2, 4)
        3: [("x", _t(4), 1, None), ("x", _t(6), 1, 1)],  # watermark 7 closes [4, 6); the end of input the rest
    }
    assert sum(p["late_rows"] for p in progress) == 0
    assert A_SCHEMA and B_SCHEMA  # the streams' layouts, shared with test_interval_join


def test_the_dataframe_api_joins_windows_on_the_window_columns():
    import stream_dsl as sd
    from test_interval_join import _frame

    a = [_frame(A_SCHEMA, [("x", 0, 1), ("y", 1, 1)]), _frame(A_SCHEMA, [("x", 3, 1)])]
    b = [_frame(B_SCHEMA, [("x", 1, 10)]), _frame(B_SCHEMA, [("x", 2, 20)])]
    ctx = engine(a, b, ordered=True)
    x = ctx.stream("a").group_by("k", sd.tumble("ts", "2s")).agg(sd.count().alias("n"))
    y = ctx.stream("b").group_by("k", sd.tumble("ts", "2s")).agg(sd.sum("w").alias("m"))
    joined = x.join(y, on=["k", "window_start", "window_end"], how="left")
    assert joined.columns == ["k", "window_start", "window_end", "n", "m"]
    sql = ctx.sql(_ours("LEFT"))
    assert sorted(joined.collect().rows(), key=str) == sorted(sql.collect().rows(), key=str)
    assert len(joined.collect()) == 3
    using = ctx.sql(
        "SELECT * FROM (SELECT k, window_start, window_end, COUNT(*) AS n FROM a GROUP BY k, TUMBLE(ts, INTERVAL '2' "
        "SECOND)) x LEFT JOIN (SELECT k, window_start, window_end, SUM(w) AS m FROM b GROUP BY k, TUMBLE(ts, "
        "INTERVAL '2' SECOND)) y USING (k, window_start, window_end)"
    )
    assert using.plan == joined.plan


def test_a_window_join_on_window_start_alone_is_refused_with_the_fix():
    import stream_dsl as sd

    ctx = engine([], [], ordered=True)
    query = _ours("").replace(" AND x.window_end = y.window_end", "")
    with pytest.raises(sd.BindError, match="a window join needs equal window_end columns too") as info:
        ctx.sql(query)
    assert (info.value.line, info.value.column) == (1, query.index("ON x.k") + 4)
