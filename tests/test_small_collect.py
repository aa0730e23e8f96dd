"""A small bounded collect() runs in-process when no executor was asked for (issue 24: start fast).

The choice is `executor.api.in_process_if_small`, made from the connectors'
statistics; its result is the same as on worker processes (the core
equivalence property), so only the choice is tested here, plus one
end-to-end result.
"""

from __future__ import annotations

import polars as pl

import stream_dsl as sd
from executor.api import in_process_if_small
from stream_dsl.context import SMALL_COLLECT_ROWS


def chosen(ctx: sd.Context, stream: sd.Stream) -> str:
    return in_process_if_small(stream.plan, ctx.config).executor


def test_small_bounded_input_runs_in_process_only_when_no_executor_was_asked_for(tmp_path):
    ctx = sd.Context()
    small = ctx.from_polars(pl.DataFrame({"a": range(100)}), batch_size=10)
    assert chosen(ctx, small) == "inline"
    big = ctx.from_polars(pl.DataFrame({"a": range(SMALL_COLLECT_ROWS + 1)}))
    assert chosen(ctx, big) == "drizzle"
    assert chosen(ctx, small.join(ctx.table_from_polars("t", pl.DataFrame({"a": [1]})), on="a")) == "inline"
    pl.DataFrame({"a": [1, 2]}).write_parquet(tmp_path / "p.parquet")
    assert chosen(ctx, ctx.read_files(str(tmp_path))) == "inline"  # a few bytes of files
    assert chosen(ctx, ctx.read_files(str(tmp_path), watch=True)) == "drizzle"  # unbounded
    explicit = sd.Context(executor="drizzle")
    assert chosen(explicit, explicit.from_polars(pl.DataFrame({"a": [1]}))) == "drizzle"
    ctx.sql("SET executor = 'bsp'")  # named: every query runs on it
    assert chosen(ctx, small) == "bsp"


def test_the_in_process_result_is_the_workers_result():
    frame = pl.DataFrame({"k": [i % 7 for i in range(500)], "v": range(500)})
    fast, slow = sd.Context(), sd.Context(executor="drizzle")
    query = "SELECT k, SUM(v) AS s, COUNT(*) AS n FROM t GROUP BY k"
    for ctx in (fast, slow):
        ctx.from_polars(frame, name="t", batch_size=50)
    assert fast.sql(query).collect().sort("k").equals(slow.sql(query).collect().sort("k"))
