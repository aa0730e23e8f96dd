"""Python UDFs and the optimizer (docs/udfs.md): a non-deterministic UDF is neither folded nor moved and is
computed once per row; UDFs pickle by value; registering again replaces a function for later queries. The
functions and helpers are tests/test_udfs.py's."""

from __future__ import annotations

import pickle
from functools import reduce
from pathlib import Path

import polars as pl

import stream_dsl as sd
from stream_dsl.ir import udfs
from stream_dsl.ir.types import DataType
from test_udfs import many_rows, registered, stream  # noqa: F401  (registered: the module's UDFs, a fixture)


# ---------------------------------------------------------------- the optimizer


def test_non_deterministic_udfs_are_neither_folded_nor_moved():
    ctx = sd.Context(executor="inline")
    calls = iter(range(10**6))
    ctx.register_function("ticket", lambda x: next(calls), returns="BIGINT", deterministic=False)
    stream(ctx, "s", [pl.DataFrame({"x": [1, 2, 3]})])
    text = ctx.sql("SELECT x FROM (SELECT x, ticket(x) AS t FROM s) WHERE t >= 0 AND x > 1").explain()
    optimized = text.split("== Optimized plan ==")[1].split("==")[0]
    # x > 1 moves down to the scan; the ticket filter stays above the projection that computes it once
    assert "Filter (t >= 0)" in optimized and "ticket(x)" in optimized
    assert "(ticket(x) >= 0)" not in optimized
    folded = ctx.sql("SELECT ticket(1) AS t, score(1, 2.0) AS s FROM s").explain()
    assert "ticket(1)" in folded.split("== Optimized plan ==")[1]
    assert "score(1, 2.0)" in folded.split("== Optimized plan ==")[1]  # no UDF runs at plan time


def test_udfs_pickle_by_value_when_they_cannot_be_imported():
    offset = 7
    closure = udfs.PythonFunction("closure", lambda x: x + offset, DataType.BIGINT, min_args=1, max_args=1)
    copy = pickle.loads(pickle.dumps(closure))
    assert copy.fn(1) == 8 and copy.returns is DataType.BIGINT
    agg = udfs.aggregate("total")
    assert agg is not None
    copied = pickle.loads(pickle.dumps(agg))
    assert copied.finish(reduce(copied.merge, [copied.update(copied.init(), 2), copied.update(copied.init(), 3)])) == 5


def test_registering_again_replaces_the_function_for_later_queries(tmp_path: Path):
    ctx = sd.Context(executor="inline")
    stream(ctx, "s", [pl.DataFrame({"x": [1]})])
    ctx.register_function("version", lambda x: 1, returns="BIGINT")
    first = ctx.sql("SELECT version(x) AS v FROM s")
    ctx.register_function("version", lambda x: 2, returns="BIGINT")
    assert first.collect().item() == 1  # bound before: keeps its function
    assert ctx.sql("SELECT version(x) AS v FROM s").collect().item() == 2


def test_a_non_deterministic_value_is_computed_once_per_row_when_aggregates_move_below_a_join():
    frame, batches = many_rows()
    ctx = sd.Context(executor="inline", workers=3)
    stream(ctx, "s", batches)
    draws = iter(range(1, 10**9, 7919))
    ctx.register_function("draw", lambda x: next(draws) % 1000, returns="BIGINT", deterministic=False, skip_nulls=False)
    ctx.from_polars(pl.DataFrame({"k": ["a", "b", "c"], "g": ["g1", "g1", "g2"]}), name="groups", static=True)
    query = ctx.sql(
        "SELECT g, sum(t) AS a, sum(t + 0) AS b FROM (SELECT g, draw(x) AS t FROM s JOIN groups USING (k)) GROUP BY g"
    )
    assert "two-phase" in query.explain()  # over the join: below it, draw(x) would be computed once per SUM
    out = query.collect()
    assert out.height == 2 and out.filter(pl.col("a") != pl.col("b")).height == 0
