"""A map task merges its partial rows per final group before the shuffle (`executor/query/combine.py`).

- YSB's map task pre-aggregates per ad, then joins the campaigns: it now
  sends one row per campaign and window, not one per ad (the reduce task's
  fixed cost per partition, paid again by every worker).
- Only where merging early is exact: a query whose partial aggregate already
  groups on the final keys, or with an integer SUM, is left as it was.
- A reduce task's pieces of one schema are stacked, with no query (no type to relax).
- The property: on every executor, with 1 and several workers and random
  micro-batch cuts, out-of-order events and late rows, the rows and the
  late-row count are those of the same query with no merging before the
  shuffle (the inline executor, one worker: the old result).
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from batch_cuts import cut_into_batches
from budget import examples
from executor import kernels
from executor.api import _prepare, run_collect
from executor.query import combine
from executor.query.tasks import TaskRunner, concat_inputs
from executor.query.outputs import QueryOutput
from optimizer.physical.lower import lower
from optimizer.physical.stages import broadcast_tables
from stream_dsl.bench import ysb as B
from stream_dsl.config import RunConfig
from stream_dsl.connectors import generator
from test_differential import assert_same_rows

EPOCH = dt.datetime(2026, 1, 1)
QUERY = """SELECT g, window_start, window_end, COUNT(*) AS c, COUNT(x) AS cx, MIN(x) AS lo, MAX(n) AS hi,
  SUM(x) AS sx, AVG(x) AS ax
FROM s JOIN t USING (k)
GROUP BY g, TUMBLE(ts, INTERVAL '50' MILLISECOND)
EMIT ON WINDOW CLOSE"""


def runner_of(ctx: sd.Context, sql: str, workers: int, table: pl.DataFrame | None = None) -> TaskRunner:
    plan, _ = _prepare(ctx.sql(sql).plan, RunConfig(workers=workers))
    graph = lower(plan, workers)
    runner = TaskRunner(graph, QueryOutput(graph.graph["schema"], None))
    for stage in runner.stages if table is not None else ():
        for op in broadcast_tables(stage):
            runner.tables[op.table_id] = kernels.prepare_table(op, table)
    return runner


def combined_stages(runner: TaskRunner) -> list[int]:
    return [s for s, pipe in runner.pipes.items() if isinstance(pipe, combine.CombinedPipeline)]


def test_a_ysb_map_task_sends_one_row_per_campaign_and_window():
    ctx = sd.Context()
    ddl, query = B.ysb_statements(B.YsbBench(events=200_000))
    ctx.sql(ddl)
    runner = runner_of(ctx, query, 2, generator.ysb_campaigns())
    stages = combined_stages(runner)
    assert len(stages) == 2  # each worker's source stage
    events = generator.ysb_frame(0, 200_000, seed=1, rate=Fraction(1_000_000), start_ms=0)
    parts = runner.pipes[stages[0]].run_partitioned(events.select("ad_id", "event_type", "event_time"), runner.tables)
    sent = pl.concat(parts.values())
    viewed = events.filter(pl.col("event_type") == "view").join(generator.ysb_campaigns(), on="ad_id")
    windows = viewed.select("campaign_id", (pl.col("event_time").dt.epoch("ms") // 10_000).alias("w"))
    assert sent.height == windows.unique().height  # 100 campaigns x 1 window, not 1,000 ads
    assert sent.get_column("__sd_rows").sum() == viewed.height
    # a batch sampled for `why` (operators run one by one) sends the same rows
    counted, _ = runner.pipes[stages[0]].counted(
        events.select("ad_id", "event_type", "event_time"), runner.tables, True
    )
    assert {p: f.sort(f.columns).rows() for p, f in counted.items()} == {
        p: f.sort(f.columns).rows() for p, f in parts.items()
    }


def test_only_a_merge_that_is_exact_and_saves_rows_is_made():
    ctx = sd.Context()
    ctx.from_polars([frame([])], name="s", watermark="ts", watermark_delay="0s")
    ctx.from_polars(pl.DataFrame({"k": [1], "g": [1]}), name="t", static=True)
    assert combined_stages(runner_of(ctx, QUERY, 2))
    same_keys = "SELECT k, window_start, COUNT(*) AS c FROM s GROUP BY k, TUMBLE(ts, INTERVAL '50' MILLISECOND)"
    assert not combined_stages(runner_of(ctx, same_keys, 2))  # the map already groups on the final keys
    int_sum = QUERY.replace("MAX(n) AS hi", "SUM(n) AS hi")
    assert not combined_stages(runner_of(ctx, int_sum, 2))  # a partial BIGINT sum could overflow early


def frame(rows: list[tuple[int, int, float | None, int | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "k": pl.Series([r[0] for r in rows], dtype=pl.Int64),
            "ts": pl.Series([EPOCH + dt.timedelta(milliseconds=r[1]) for r in rows], dtype=pl.Datetime("ms")),
            "x": pl.Series([r[2] for r in rows], dtype=pl.Float64),
            "n": pl.Series([r[3] for r in rows], dtype=pl.Int64),
        }
    )


@st.composite
def streams(draw):
    """Events 40 ms apart in list order, some up to 300 ms behind (late once the watermark passed them)."""
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, 7),
                st.one_of(st.just(0), st.integers(-300, 0)),
                st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False), st.just(float("nan"))),
                st.one_of(st.none(), st.integers(-5, 5)),
            ),
            min_size=4,
            max_size=80,
        )
    )
    rows = [(k, max(0, i * 40 + behind), x, n) for i, (k, behind, x, n) in enumerate(rows)]
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), min_size=1, max_size=6)))
    # every key but 7 has a group, some two (a join row each)
    table = [(k, draw(st.integers(0, 2))) for k in range(7)] + draw(
        st.lists(st.tuples(st.integers(0, 7), st.integers(0, 2)), max_size=3)
    )
    return cut_into_batches(frame(rows), cuts), pl.DataFrame(table, schema={"k": pl.Int64, "g": pl.Int64}, orient="row")


def result(batches, table, config: RunConfig, pool=None) -> tuple[list[tuple], int]:
    ctx = sd.Context()
    ctx.from_polars(batches, name="s", watermark="ts", watermark_delay="30ms")
    ctx.from_polars(table, name="t", static=True)
    plan, config = _prepare(ctx.sql(QUERY).plan, config)
    out, _, progress = run_collect(plan, config, pool=pool)
    return out.rows(), sum(int(p.get("late_rows", 0)) for p in progress)


def old_result(batches, table) -> tuple[list[tuple], int]:
    with mock.patch.object(combine, "combined", lambda stages, pipes: dict(pipes)):
        return result(batches, table, RunConfig(workers=1, executor="inline"))


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams())
def test_merging_before_the_shuffle_keeps_rows_and_late_rows_inline(data):
    batches, table = data
    rows, late = old_result(batches, table)
    for workers, optimize in ((1, True), (3, True), (3, False)):
        ours, our_late = result(batches, table, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert_same_rows(ours, rows, f"inline workers={workers} optimize={optimize}")
        assert our_late == late


@pytest.mark.parametrize(("executor", "workers"), [("drizzle", 3), ("bsp", 2)])
@settings(max_examples=examples(3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=streams())
def test_merging_before_the_shuffle_keeps_rows_and_late_rows_on_workers(executor, workers, data, warm_workers):
    batches, table = data
    rows, late = old_result(batches, table)
    config = RunConfig(workers=workers, executor=executor)
    ours, our_late = result(batches, table, config, pool=lambda: warm_workers)
    assert_same_rows(ours, rows, f"{executor} workers={workers}")
    assert our_late == late


def test_a_reduce_tasks_pieces_of_one_schema_are_stacked_without_a_query():
    stage = mock.Mock()
    a = pl.DataFrame({"g": ["x", "y"], "__sd_rows": [1, 2]})
    b = pl.DataFrame({"g": ["z"], "__sd_rows": [3]})
    with mock.patch.object(pl, "concat", side_effect=AssertionError("a query")):
        stacked = concat_inputs([a, b], stage)
    assert stacked.rows() == [("x", 1), ("y", 2), ("z", 3)]
    wider = pl.DataFrame({"g": [None], "__sd_rows": pl.Series([4], dtype=pl.Int32)})
    relaxed = concat_inputs([a, wider], stage)  # types differ: relaxed, as before
    assert relaxed.schema == a.schema and relaxed.rows() == [("x", 1), ("y", 2), (None, 4)]
