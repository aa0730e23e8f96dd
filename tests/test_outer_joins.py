"""RIGHT, FULL and CROSS joins with tables, against DuckDB; their continuous semantics; join column names.

The semantics are in `optimizer/physical/outer_joins.py`: matched rows stream out per batch, a table row
no stream row matched comes out once at the end of bounded input, and over an unbounded stream a RIGHT or
FULL join is refused when the query starts. Hypothesis data (`test_differential.datasets`: NULL and
duplicate keys on both sides, random micro-batch splits) runs through every executor, 1 and 3 workers,
with the optimizer on and off; each result must equal DuckDB's over all the data at once.
"""

from __future__ import annotations

import contextlib
import dataclasses

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

import stream_dsl as sd
from budget import examples
from executor.api import collect
from stream_dsl.config import RunConfig
from stream_dsl.errors import BindError, PlanError
from test_differential import (
    BASE,
    S_SCHEMA,
    T_SCHEMA,
    Q,
    assert_same_rows,
    datasets,
    duckdb_rows,
    engine,
    one_query_per_step,
)

QUERIES = [
    Q(
        "right_on",
        "SELECT s.k, s.i, t.k AS tk, t.name, t.w FROM s RIGHT JOIN t ON s.k = t.k",
        "SELECT s.k, s.i, t.k AS tk, t.name, t.w FROM s RIGHT JOIN t ON s.k = t.k",
    ),
    Q(
        "right_outer_on_numbers",
        "SELECT s.i, s.d, t.w, t.name FROM s RIGHT OUTER JOIN t ON s.i = t.w",
        "SELECT s.i, s.d, t.w, t.name FROM s RIGHT OUTER JOIN t ON s.i = t.w",
    ),
    Q(
        "full_using",
        "SELECT k, i, d, name, w FROM s FULL JOIN t USING (k)",
        "SELECT k, i, d, name, w FROM s FULL JOIN t USING (k)",
    ),
    Q(
        "full_using_each_sides_own_key",  # k is COALESCE(s.k, t.k); s.k and t.k are NULL where padded
        "SELECT k, s.k AS sk, t.k AS tk, i, w FROM s FULL JOIN t USING (k)",
        "SELECT k, s.k AS sk, t.k AS tk, i, w FROM s FULL JOIN t USING (k)",
    ),
    Q(
        "table_left_join_stream_using_own_keys",
        "SELECT t.k AS tk, s.k AS sk, k, s.i FROM t LEFT JOIN s USING (k)",
        "SELECT t.k AS tk, s.k AS sk, k, s.i FROM t LEFT JOIN s USING (k)",
    ),
    Q(
        "full_outer_on",
        "SELECT s.k, s.i, t.k AS tk, t.w FROM s FULL OUTER JOIN t ON s.k = t.k",
        "SELECT s.k, s.i, t.k AS tk, t.w FROM s FULL OUTER JOIN t ON s.k = t.k",
    ),
    Q(
        "table_left_join_stream",
        "SELECT t.k, t.name, s.i FROM t LEFT JOIN s ON t.k = s.k",
        "SELECT t.k, t.name, s.i FROM t LEFT JOIN s ON t.k = s.k",
    ),
    Q(
        "table_right_join_stream_using",
        "SELECT k, w, i FROM t RIGHT JOIN s USING (k)",
        "SELECT k, w, i FROM t RIGHT JOIN s USING (k)",
    ),
    Q(
        "table_full_join_stream",
        "SELECT t.name, s.s2 FROM t FULL JOIN s ON t.k = s.k",
        "SELECT t.name, s.s2 FROM t FULL JOIN s ON t.k = s.k",
    ),
    Q(
        "right_join_where_both_sides",  # the stream-side predicate must stay above the join
        "SELECT t.k, t.w, s.i FROM s RIGHT JOIN t ON s.k = t.k WHERE t.w > 0 AND (s.i IS NULL OR s.i > 5)",
        "SELECT t.k, t.w, s.i FROM s RIGHT JOIN t ON s.k = t.k WHERE t.w > 0 AND (s.i IS NULL OR s.i > 5)",
    ),
    Q(
        "right_join_then_aggregate",
        "SELECT t.name, COUNT(s.i) AS n, SUM(s.i) AS si, COUNT(*) AS rows FROM s RIGHT JOIN t ON s.k = t.k "
        "GROUP BY t.name",
        "SELECT t.name, COUNT(s.i) AS n, SUM(s.i) AS si, COUNT(*) AS rows FROM s RIGHT JOIN t ON s.k = t.k "
        "GROUP BY t.name",
    ),
    Q(
        "right_join_count_star",  # no table column kept: the unmatched rows are NULLs alone, one per table row
        "SELECT COUNT(*) AS n FROM s RIGHT JOIN t ON s.k = t.k",
        "SELECT COUNT(*) AS n FROM s RIGHT JOIN t ON s.k = t.k",
    ),
    Q(
        "full_join_stream_columns_only",
        "SELECT s.i, s.d FROM s FULL JOIN t ON s.k = t.k",
        "SELECT s.i, s.d FROM s FULL JOIN t ON s.k = t.k",
    ),
    Q(
        "cross_count_star",
        "SELECT COUNT(*) AS n, COUNT(t.w) AS nw FROM s CROSS JOIN t",
        "SELECT COUNT(*) AS n, COUNT(t.w) AS nw FROM s CROSS JOIN t",
    ),
    Q(
        "right_join_of_a_right_join",
        "SELECT a.k, b.k AS bk, s.i FROM s RIGHT JOIN t a ON s.k = a.k RIGHT JOIN t b ON a.w = b.w",
        "SELECT a.k, b.k AS bk, s.i FROM s RIGHT JOIN t a ON s.k = a.k RIGHT JOIN t b ON a.w = b.w",
    ),
    Q(
        "full_join_then_left_join",
        "SELECT s.i, a.name, b.name AS bn FROM s FULL JOIN t a ON s.k = a.k LEFT JOIN t b ON s.k = b.k",
        "SELECT s.i, a.name, b.name AS bn FROM s FULL JOIN t a ON s.k = a.k LEFT JOIN t b ON s.k = b.k",
    ),
    Q(
        "right_join_of_a_union",
        "SELECT u.k, s.i FROM (SELECT k, i FROM s WHERE i > 1 UNION ALL SELECT k, i FROM s WHERE i <= 1) s "
        "RIGHT JOIN t u ON s.k = u.k",
        "SELECT u.k, s.i FROM (SELECT k, i FROM s WHERE i > 1 UNION ALL SELECT k, i FROM s WHERE i <= 1) s "
        "RIGHT JOIN t u ON s.k = u.k",
    ),
    Q(
        "cross",
        "SELECT s.k, s.i, t.name, t.w FROM s CROSS JOIN t WHERE s.i > 0 OR t.w IS NULL",
        "SELECT s.k, s.i, t.name, t.w FROM s CROSS JOIN t WHERE s.i > 0 OR t.w IS NULL",
    ),
    Q(
        "table_cross_stream",
        "SELECT t.name, s.k FROM t CROSS JOIN s",
        "SELECT t.name, s.k FROM t CROSS JOIN s",
    ),
    Q(
        "table_full_join_table",
        "SELECT a.k, a.w, b.name FROM t a FULL JOIN t b ON a.w = b.w",
        "SELECT a.k, a.w, b.name FROM t a FULL JOIN t b ON a.w = b.w",
    ),
    Q(
        "table_cross_table",
        "SELECT a.k, b.w FROM t a CROSS JOIN t b",
        "SELECT a.k, b.w FROM t a CROSS JOIN t b",
    ),
]
MULTIPROCESS = ["right_on", "full_using", "table_left_join_stream", "cross"]


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_outer_and_cross_joins_match_duckdb(query, data):
    frame, batches, table, ordered = data
    plan = engine(batches, table, ordered).sql(query.dsl).plan
    expected = duckdb_rows(query.duck, frame, table)
    for workers, optimize, one_query in ((1, True, False), (3, True, False), (3, False, True)):
        with one_query_per_step() if one_query else contextlib.nullcontext():
            result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert_same_rows(result.rows(), expected, f"{query.name} workers={workers} optimize={optimize}")


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@settings(max_examples=examples(2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_outer_and_cross_joins_match_duckdb_on_worker_processes(executor, data, warm_workers):
    frame, batches, table, ordered = data
    ctx = engine(batches, table, ordered)
    for query in (q for q in QUERIES if q.name in MULTIPROCESS):
        expected = duckdb_rows(query.duck, frame, table)
        optimize = query.name != "full_using"
        config = RunConfig(workers=2, executor=executor, group_size=2, optimize=optimize)
        result = collect(ctx.sql(query.dsl).plan, config, pool=lambda: warm_workers)
        assert_same_rows(result.rows(), expected, f"{query.name} {executor} optimize={optimize}")


def test_a_filter_on_the_stream_side_stays_above_a_right_join():
    """Below the join it would turn a table row whose matches it removes into an unmatched row with NULLs."""
    frame = pl.DataFrame({"k": ["a", "b"], "i": [1, None], "d": [None, None], "s2": [None, None]})
    frame = frame.with_columns(ts=pl.lit(BASE)).cast(S_SCHEMA)  # type: ignore[arg-type]
    table = pl.DataFrame({"k": ["a", "b", "c"], "name": ["x", "y", "x"], "w": [1, 2, 3]}, schema=T_SCHEMA)
    query = next(q for q in QUERIES if q.name == "right_join_where_both_sides")
    plan = engine([frame], table, False).sql(query.dsl).plan
    expected = duckdb_rows(query.duck, frame, table)
    assert sorted(expected) == [("b", 2, None), ("c", 3, None)]
    for optimize in (True, False):
        result = collect(plan, RunConfig(workers=1, executor="inline", optimize=optimize))
        assert_same_rows(result.rows(), expected, f"optimize={optimize}")


# ---------------------------------------------------------------- when rows come out


def _two_batches(bounded: bool = True) -> sd.Context:
    ctx = sd.Context(executor="inline")
    batches = [pl.DataFrame({"k": ["a", "x"], "v": [1, 2]}), pl.DataFrame({"k": ["b"], "v": [3]})]
    ctx.from_polars(batches, name="s")
    if not bounded:
        source = ctx.catalog.sources["s"]
        options = tuple(sorted(dict(source.options, bounded="false").items()))
        ctx.catalog.sources["s"] = dataclasses.replace(source, options=options)
    ctx.from_polars(pl.DataFrame({"k": ["a", "b", "c", None], "w": [10, 20, 30, 40]}), name="t", static=True)
    return ctx


def test_matched_rows_stream_out_per_batch_and_unmatched_table_rows_at_the_end_of_input():
    written: dict[int, list] = {}
    query = _two_batches().sql("SELECT s.v, t.k, t.w FROM s FULL JOIN t ON s.k = t.k")
    handle = query.start(lambda b, f: written.__setitem__(b, sorted(f.rows(), key=str)))
    assert handle.await_termination(120)
    batches = [written[b] for b in sorted(written) if written[b]]
    # batch 0: the match for 'a' and the stream row 'x' with no table row; batch 1: 'b', and, since its
    # source is then exhausted (the end of input), the table rows no stream row matched ('c' and the NULL
    # key, which matches nothing). Never before the end: 'c' could still have come.
    end = sorted([(3, "b", 20), (None, "c", 30), (None, None, 40)], key=str)
    assert batches == [[(1, "a", 10), (2, None, None)], end]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM s RIGHT JOIN t USING (k)",
        "SELECT * FROM t LEFT JOIN s USING (k)",
        "SELECT s.v, t.w FROM s FULL JOIN t ON s.k = t.k",
    ],
)
def test_a_right_or_full_join_over_an_unbounded_stream_is_refused_when_it_starts(sql):
    ctx = _two_batches(bounded=False)
    with pytest.raises(PlanError, match="at the end of input, but 's' is unbounded") as info:
        ctx.sql(sql).start(lambda b, f: None)
    assert "LEFT JOIN from the stream" in str(info.value)
    # the same join the other way round (LEFT JOIN from the stream) and a CROSS JOIN run
    handle = ctx.sql("SELECT s.v, t.w FROM s LEFT JOIN t USING (k)").start(lambda b, f: None)
    handle.stop()
    handle = ctx.sql("SELECT s.v, t.w FROM s CROSS JOIN t").start(lambda b, f: None)
    handle.stop()


def test_a_right_join_over_a_changelog_is_refused_with_the_fix():
    ctx = _two_batches()
    query = ctx.sql("SELECT x.k, x.n, t.w FROM (SELECT k, COUNT(*) AS n FROM s GROUP BY k) x RIGHT JOIN t USING (k)")
    with pytest.raises(PlanError, match="a RIGHT or FULL join over a changelog .* LEFT JOIN from the aggregate"):
        query.collect()


# ---------------------------------------------------------------- names


def test_select_star_over_a_self_join_names_columns_by_alias_never_right():
    ctx = _two_batches()
    result = ctx.sql("SELECT * FROM t a JOIN t b ON a.k = b.k").collect()
    assert result.columns == ["k", "w", "b.k", "b.w"]
    assert result.sort("w").rows() == [("a", 10, "a", 10), ("b", 20, "b", 20), ("c", 30, "c", 30)]
    twice = ctx.sql("SELECT * FROM s JOIN t u1 USING (k) JOIN t u2 USING (k)").collect()
    assert twice.columns == ["k", "v", "w", "u2.w"]
    nested = ctx.sql('SELECT x."b.w" AS bw FROM (SELECT * FROM t a JOIN t b USING (k)) x').collect()
    assert sorted(nested["bw"].to_list()) == [10, 20, 30]


def test_an_ambiguous_name_in_a_join_lists_the_qualified_candidates_where_it_is_written():
    ctx = _two_batches()
    with pytest.raises(BindError) as info:
        ctx.sql("SELECT v,\n  w FROM s JOIN t u1 USING (k) JOIN t u2 USING (k)")
    assert info.value.message == "column 'w' is ambiguous: it is in u1 and u2; write u1.w or u2.w"
    assert (info.value.line, info.value.column) == (2, 3)


def test_the_dataframe_api_joins_right_full_and_cross_as_sql_does():
    ctx = _two_batches()
    s, t = ctx.stream("s"), ctx.table("t")
    for how, sql in (
        ("right", "SELECT * FROM s RIGHT JOIN t USING (k)"),
        ("full", "SELECT * FROM s FULL JOIN t USING (k)"),
    ):
        api = s.join(t, on="k", how=how)
        assert api.plan == ctx.sql(sql).plan
        assert sorted(api.collect().rows(), key=str) == sorted(ctx.sql(sql).collect().rows(), key=str)
    crossed = s.join(t, how="cross")
    assert crossed.columns == ["k", "v", "k_right", "w"]  # the API keeps polars' suffix
    assert crossed.collect().height == 12
    with pytest.raises(sd.DSLError, match="how='full'"):
        s.join(t, on="k", how="outer")
    with pytest.raises(sd.DSLError, match="a cross join takes no keys"):
        s.join(t, on="k", how="cross")


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_a_right_join_restarted_from_a_checkpoint_keeps_what_was_matched(tmp_path, executor):
    """The matched table rows are state: a restart that lost them would emit 'a' and 'b' as unmatched."""
    from stream_dsl.connectors import memory

    frames = [pl.DataFrame({"k": [k], "v": [v]}) for k, v in (("a", 1), ("b", 2), ("x", 3))]
    sink = f"outer-join-restart-{executor}"
    memory.clear_sink(sink)

    def run(batches: list) -> None:
        ctx = sd.Context(executor=executor, workers=2, group_size=1, checkpoint_dir=str(tmp_path))
        ctx.from_polars(frames, name="s")
        memory.register(ctx.catalog.source("s").option("id"), batches)
        ctx.from_polars(pl.DataFrame({"k": ["a", "b", "c", "d"], "w": [10, 20, 30, 40]}), name="t", static=True)
        ctx.sql(f"CREATE SINK out WITH (connector = 'memory', id = '{sink}')")
        handle = ctx.sql("INSERT INTO out SELECT s.v, t.k, t.w FROM s RIGHT JOIN t ON s.k = t.k")
        assert handle.await_termination(120)

    with pytest.raises(sd.DSLError, match="the feed broke"):
        run(frames[:2] + [RuntimeError("the feed broke")])
    assert sorted(memory.sink_output(sink).rows())[:1] == [(1, "a", 10)]  # and (2, 'b', 20) if its batch committed
    assert list(tmp_path.glob("checkpoints/ckpt-*/manifest.json")), "no checkpoint to restart from"
    run(frames)
    assert sorted(memory.sink_output(sink).rows(), key=str) == sorted(
        [(1, "a", 10), (2, "b", 20), (None, "c", 30), (None, "d", 40)], key=str
    )
