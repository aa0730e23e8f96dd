"""Aggregation pushdown: two-phase aggregation, the partial below a join, the cost guard, the counters.

- The YSB plan, from the optimized plan and the stage DAG: scan (ad_id,
  event_type, event_time) → filter → partial count per (ad_id, window) →
  broadcast join campaigns → shuffle on campaign_id → final per
  (campaign_id, window).
- The same, from the executor's counters: with the optimizer on the
  shuffle carries at most one row per (ad_id, window) per map task, with it
  off one row per view event; the source reads only the three columns.
- Exactness: every query of the DuckDB differential family with every
  valid pushdown forced (whatever the cost guard says), on random data and
  batch splits; late rows counted per input row, not per partial row;
  SQL NULL rules; per-batch changelog output identical to one phase.
- The cost guard's statistics and decisions.
"""

from __future__ import annotations

import datetime as dt
import pickle

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal

import optimizer
import stream_dsl as sd
from executor.api import collect, start
from executor.inline import collect_plan
from optimizer import cost
from optimizer.cost import FORCE, CostModel, Estimate
from optimizer.fixpoint import optimize as run_rules
from optimizer.physical.lower import lower, stage_order
from optimizer.rules import RULES, push_aggregate_below_join, split_aggregates, with_cost_model
from optimizer.physical.stages import (
    AggregateOp,
    BroadcastJoinOp,
    OutputWrite,
    PartialAggregateOp,
    ProjectOp,
    ReadOp,
    ScanOp,
    ShuffleWrite,
)
from rules_support import data_context, golden_paths, read_golden, assert_same_result, run
from stream_dsl.config import RunConfig
from stream_dsl.connectors import generator
from stream_dsl.errors import ConnectorError, PlanError
from stream_dsl.ir.plan import Aggregate, FinalAggregate, Join, PartialAggregate, Scan, render_plan, walk
from test_differential import QUERIES, assert_same_rows, datasets, duckdb_rows, engine
from budget import examples

YSB = """
SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
"""
RATE, COUNT = 1_000_000, 250_000
YSB_COLUMNS = ("ad_id", "event_type", "event_time")


def ysb_context(optimize: bool = True, workers: int = 2, count: int = COUNT) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=workers, optimize=optimize)
    ctx.sql(f"""
        CREATE STREAM events (user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING,
          event_time TIMESTAMP, ip_address STRING,
          WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
        WITH (connector = 'generator', kind = 'ysb', rate = '{RATE}', count = '{count}')""")
    ctx.sql(
        "CREATE TABLE campaigns (ad_id STRING, campaign_id STRING) "
        "WITH (connector = 'generator', kind = 'ysb_campaigns')"
    )
    return ctx


def forced(plan):
    """`plan` optimized with every valid aggregation pushdown applied, whatever the estimates."""
    return run_rules(plan, rules=with_cost_model(FORCE)).plan


def kinds(plan) -> list[str]:
    return [type(n).__name__ for n in walk(plan)]


# ---------------------------------------------------------------- the YSB plan


def test_ysb_optimized_plan_counts_per_ad_and_window_below_the_join():
    plan = optimizer.optimize(ysb_context().sql(YSB).plan, RunConfig(workers=2))
    assert isinstance(plan, FinalAggregate)
    assert [k.name for k in plan.keys] == ["campaign_id"] and plan.window.size_ms == 10_000
    join = plan.input
    assert isinstance(join, Join) and join.left_keys == ("ad_id",)
    partial = join.left
    assert isinstance(partial, PartialAggregate)
    assert [k.name for k in partial.keys] == ["ad_id"] and partial.window == plan.window
    scan = partial.input
    assert isinstance(scan, Scan) and scan.columns == YSB_COLUMNS
    assert render_plan(scan).endswith("predicate=(event_type = 'view') watermark=event_time-1s")


def test_ysb_stages_fuse_the_partial_and_the_join_before_the_shuffle_on_campaign_id():
    plan = optimizer.optimize(ysb_context().sql(YSB).plan, RunConfig(workers=2))
    graph = lower(plan, 2)
    source, reduce = stage_order(graph)
    ops = [type(op) for op in source.operators]
    assert ops == [ScanOp, ProjectOp, PartialAggregateOp, BroadcastJoinOp, ProjectOp, ShuffleWrite]
    assert source.head.read_columns == YSB_COLUMNS
    partial = source.operators[2]
    assert partial.keys == ("ad_id",) and partial.group_columns == ("ad_id", "window_start", "window_end")
    assert source.terminal.exchange.keys == ("campaign_id",) and source.terminal.exchange.partitions == 2
    assert [type(op) for op in reduce.operators] == [ReadOp]
    final = reduce.stateful
    assert isinstance(final, AggregateOp) and final.final and final.keys == ("campaign_id",)
    assert final.describe().startswith(
        "FinalAggregate keys=[campaign_id] window=TUMBLE(event_time, 10s) merge=[views := sum(__sd_c0)]"
    )
    assert reduce.terminal == OutputWrite()


def test_stages_with_partial_aggregates_are_picklable_for_the_workers():
    graph = lower(optimizer.optimize(ysb_context().sql(YSB).plan), 2)
    for stage in stage_order(graph):
        assert pickle.loads(pickle.dumps(stage)) == stage


def test_optimize_off_keeps_one_phase():
    ctx = ysb_context(optimize=False)
    plan = ctx.sql(YSB).plan
    assert "PartialAggregate" not in kinds(plan)
    text = ctx.sql(YSB).explain()
    assert "PartialAggregate" not in text and "FinalAggregate" not in text
    assert "== Rules fired ==" not in text


# ---------------------------------------------------------------- the YSB counters


def _reports(optimize: bool) -> tuple[pl.DataFrame, list[dict]]:
    ctx = ysb_context(optimize=optimize)
    plan = ctx.sql(YSB).plan
    if optimize:
        plan = optimizer.optimize(plan, ctx.config)
    reports: list[dict] = []
    result = collect_plan(plan, ctx.config, reports.append)
    return result, reports


def _views_per_batch(interval_ms: int = 100) -> pl.DataFrame:
    """Per micro-batch of the generator: view events, and distinct (ad_id, 10s window) pairs among them."""
    events = generator.ysb_events(COUNT, rate=RATE)
    t = pl.col("event_time").dt.epoch("ms") - pl.col("event_time").dt.epoch("ms").min()
    return (
        events.filter(pl.col("event_type") == "view")
        .with_columns(
            (t // interval_ms).alias("batch"), (pl.col("event_time").dt.epoch("ms") // 10_000).alias("window")
        )
        .group_by("batch")
        .agg(pl.len().alias("views"), pl.struct("ad_id", "window").n_unique().alias("groups"))
        .sort("batch")
    )


def test_ysb_shuffle_carries_one_row_per_ad_and_window_per_map_task_not_one_per_event():
    on_result, on = _reports(optimize=True)
    off_result, off = _reports(optimize=False)
    assert_frame_equal(on_result.sort("campaign_id", "window_start"), off_result.sort("campaign_id", "window_start"))
    expected = _views_per_batch()
    assert len(on) == len(off) >= expected.height >= 2
    for report_on, report_off, (batch, views, groups) in zip(on, off, expected.iter_rows()):
        assert report_on["batch_id"] == report_off["batch_id"] == batch
        assert report_off["shuffle_rows"] == views  # optimizer off: one row per view event
        assert report_on["shuffle_rows"] <= groups  # on: at most one per (ad_id, window)
        assert all(task["rows"] <= groups for task in report_on["shuffle_tasks"])
        assert report_on["shuffle_rows"] * 10 < views
        assert report_on["shuffle_bytes"] * 10 < report_off["shuffle_bytes"]
    assert sum(r["shuffle_rows"] for r in off) == expected["views"].sum()


def test_ysb_source_reads_only_the_three_columns_it_needs():
    _, on = _reports(optimize=True)
    _, off = _reports(optimize=False)
    reads_on = [read for r in on for read in r["source_reads"]]
    assert {read["columns"] for read in reads_on} == {YSB_COLUMNS}
    assert sum(read["rows"] for read in reads_on) == COUNT
    reads_off = [read for r in off for read in r["source_reads"]]
    assert {read["columns"] for read in reads_off} == {generator.YSB_SCHEMA.names}


def test_counters_are_in_the_progress_of_a_continuous_query():
    ctx = ysb_context(count=30_000)
    frames: list[pl.DataFrame] = []
    handle = ctx.sql(YSB).start(sink=lambda batch_id, frame: frames.append(frame))
    handle.await_termination()
    progress = handle.progress()
    assert progress and all(
        {"shuffle_rows", "shuffle_bytes", "shuffle_tasks", "source_reads"} <= set(p) for p in progress
    )
    assert all(read["columns"] == YSB_COLUMNS for p in progress for read in p["source_reads"])


def test_explain_analyze_shows_the_counters():
    text = ysb_context(count=30_000).sql("EXPLAIN ANALYZE " + YSB)
    assert "shuffle_rows=" in text and "max_rows_per_map_task=" in text
    assert "Source events columns=[ad_id, event_type, event_time] rows_read=30000" in text


# ---------------------------------------------------------------- exactness, forced


SPLITTABLE = {q.name for q in QUERIES} - {
    "hop",
    "session",
    "filter_project",
    "arithmetic",
    "case",
    "nulls",
    "in_between",
    "like",
    "strings",
    "timestamps",
    "casts",
    "join_inner",
    "join_left",
    "join_using_filter",
    "distinct",
    "union_all",
}


def test_forcing_splits_every_splittable_query_of_the_family():
    ctx = engine(
        [
            pl.DataFrame(
                schema={"k": pl.String, "i": pl.Int64, "d": pl.Float64, "s2": pl.String, "ts": pl.Datetime("ms")}
            )
        ],
        pl.DataFrame(schema={"k": pl.String, "name": pl.String, "w": pl.Int64}),
        True,
    )
    for query in QUERIES:
        plan = forced(ctx.sql(query.dsl).plan)
        assert ("PartialAggregate" in kinds(plan)) == (query.name in SPLITTABLE), query.name
    pushed = forced(ctx.sql(next(q for q in QUERIES if q.name == "join_then_window").dsl).plan)
    joins = [n for n in walk(pushed) if isinstance(n, Join)]
    assert joins and not isinstance(joins[0].left, PartialAggregate)  # SUM(w) is a table column: stays above


@pytest.mark.parametrize("query", [q for q in QUERIES if q.name in SPLITTABLE], ids=lambda q: q.name)
@settings(max_examples=examples(8), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_forced_two_phase_plans_match_duckdb(query, data):
    frame, batches, table, ordered = data
    plan = engine(batches, table, ordered).sql(query.dsl).plan
    split = forced(plan)
    expected = duckdb_rows(query.duck, frame, table)
    for workers in (1, 3):
        result = collect(split, RunConfig(workers=workers, executor="inline", optimize=False))
        assert result.columns == list(plan.schema.names)
        assert_same_rows(result.rows(), expected, f"{query.name} forced workers={workers} batches={len(batches)}")


GOLDENS = [p for p in golden_paths() if p.parent.name in ("split_aggregates", "push_aggregate_below_join")]


@pytest.fixture(scope="module")
def data_ctx():
    return data_context()


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_queries_give_the_same_results_with_every_pushdown_forced(path, data_ctx):
    plan = data_ctx.sql(read_golden(path).sql).plan
    expected = run(plan)
    assert_same_result(expected, run(forced(plan)))
    assert_same_result(expected, run(forced(plan), workers=3))


T0 = dt.datetime(2024, 1, 1)


def _stream(ctx: sd.Context, batches: list[list[tuple]], name: str = "s") -> None:
    frames = [
        pl.DataFrame(rows, schema={"k": pl.String, "v": pl.Int64, "ts": pl.Datetime("ms")}, orient="row")
        for rows in batches
    ]
    ctx.from_polars(frames, name, watermark="ts", watermark_delay="0s")


def _late_rows(sql: str, batches: list[list[tuple]], split: bool) -> tuple[pl.DataFrame, int]:
    ctx = sd.Context(executor="inline", workers=2, optimize=False)
    _stream(ctx, batches)
    plan = ctx.sql(sql).plan
    if split:
        plan = forced(plan)
        assert "PartialAggregate" in kinds(plan)
    reports: list[dict] = []
    result = collect_plan(plan, ctx.config, reports.append)
    return result, sum(r["late_rows"] for r in reports)


def test_late_rows_count_input_rows_not_partial_rows():
    s = lambda sec: T0 + dt.timedelta(seconds=sec)  # noqa: E731
    batches = [
        [("a", 1, s(1)), ("b", 2, s(2))],
        [("a", 3, s(25))],  # the watermark passes 20s: windows [0, 10) and [10, 20) close
        [("a", 4, s(3)), ("a", 5, s(4)), ("a", 6, s(5)), ("b", 7, s(12)), ("c", 8, None), ("a", 9, s(26))],
    ]
    sql = "SELECT k, window_start, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"
    one, late_one = _late_rows(sql, batches, split=False)
    two, late_two = _late_rows(sql, batches, split=True)
    assert late_one == late_two == 5  # three rows of (a, [0,10)), one of (b, [10,20)), one without a time
    assert_frame_equal(one.sort("k", "window_start"), two.sort("k", "window_start"))
    assert sorted(two.rows()) == [("a", s(0), 1, 1), ("a", s(20), 2, 12), ("b", s(0), 1, 2)]


def test_sum_of_only_nulls_is_null_and_count_of_nothing_is_zero():
    ctx = sd.Context(executor="inline", workers=2, optimize=False)
    ctx.from_polars(
        [
            pl.DataFrame({"k": ["a", "a", "b"], "v": [None, None, 1]}, schema={"k": pl.String, "v": pl.Int64}),
            pl.DataFrame({"k": ["a"], "v": [None]}, schema={"k": pl.String, "v": pl.Int64}),
        ],
        "s",
    )
    ctx.from_polars(pl.DataFrame({"k": [], "v": []}, schema={"k": pl.String, "v": pl.Int64}), "empty")
    for sql, expected in [
        (
            "SELECT k, SUM(v) AS s, AVG(v) AS a, COUNT(v) AS c, MIN(v) AS lo FROM s GROUP BY k",
            [("a", None, None, 0, None), ("b", 1, 1.0, 1, 1)],
        ),
        ("SELECT COUNT(*) AS n, COUNT(v) AS c, SUM(v) AS s FROM empty", [(0, 0, None)]),
        ("SELECT COUNT(*) AS n, SUM(v) AS s FROM s WHERE v > 100", [(0, None)]),
    ]:
        plan = forced(ctx.sql(sql).plan)
        assert "PartialAggregate" in kinds(plan)
        result = collect(plan, RunConfig(executor="inline", workers=2, optimize=False))
        assert sorted(result.rows(), key=repr) == expected, sql


def test_a_changelog_emits_the_same_rows_per_batch_in_two_phases():
    def per_batch(split: bool) -> list[list[tuple]]:
        ctx = sd.Context(executor="inline", workers=2, optimize=False)
        s = lambda sec: T0 + dt.timedelta(seconds=sec)  # noqa: E731
        _stream(ctx, [[("a", 1, s(1)), ("b", 2, s(2))], [], [("a", 3, s(3))], [("c", None, s(4))]])
        plan = ctx.sql("SELECT k, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY k").plan
        if split:
            plan = forced(plan)
        out: dict[int, list[tuple]] = {}
        handle = start(
            plan,
            lambda batch_id, frame: out.__setitem__(batch_id, sorted(frame.rows(), key=repr)),
            RunConfig(executor="inline", workers=2, optimize=False),
        )
        handle.await_termination()
        return [out.get(b, []) for b in range(max(out) + 1)]

    assert (
        per_batch(split=True)
        == per_batch(split=False)
        == [[("upsert", "a", 1, 1), ("upsert", "b", 1, 2)], [], [("upsert", "a", 2, 4)], [("upsert", "c", 1, None)]]
    )  # a function sink takes a changelog as upsert records


def test_partial_plan_nodes_validate_what_they_are_given():
    ctx = ysb_context()
    agg = ctx.sql(
        "SELECT ad_id, window_start, COUNT(*) AS n FROM events "
        "GROUP BY ad_id, HOP(event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)"
    ).plan.input
    assert isinstance(agg, Aggregate)
    with pytest.raises(PlanError, match="TUMBLE windows only"):
        PartialAggregate(agg.input, agg.keys, agg.aggs, agg.window)
    two = ctx.sql("SELECT COUNT(DISTINCT ad_id) AS a, COUNT(DISTINCT user_id) AS u FROM events").plan
    with pytest.raises(PlanError, match="one argument only"):
        PartialAggregate(two.input, two.keys, two.aggs)
    plain = ctx.sql("SELECT ad_id, COUNT(*) AS n FROM events GROUP BY ad_id").plan
    with pytest.raises(PlanError, match="final aggregate: column .__sd_c0. is not found in the input"):
        FinalAggregate(plain.input, plain.keys, plain.aggs)


# ---------------------------------------------------------------- the cost guard


def test_generator_statistics_give_rows_per_batch_and_distinct_values():
    plan = ysb_context().sql(YSB).plan
    scan = next(n for n in walk(plan) if isinstance(n, Scan) and n.source.name == "events")
    assert cost.rows_per_batch(scan, CostModel(batch_interval_ms=100)) == 100_000
    assert cost.rows_per_batch(scan, CostModel(batch_interval_ms=1000)) == 250_000  # capped by count
    assert cost.column_ndv(scan, "ad_id") == 1000 and cost.column_ndv(scan, "event_time") is None
    join = next(n for n in walk(plan) if isinstance(n, Join))
    assert cost.column_ndv(join, "campaign_id") == 100
    filtered = plan.input
    assert cost.rows_per_batch(filtered) == pytest.approx(100_000 / 3)


def test_hints_and_unknowns():
    ctx = sd.Context(check_files=False)  # 'nowhere/': statistics of files that are not there
    ctx.sql(
        "CREATE STREAM h (k STRING, v BIGINT) WITH (connector = 'files', path = 'nowhere/', "
        "format = 'ndjson', ndv = 'k=7', rows_per_batch = '5000')"
    )
    ctx.sql("CREATE STREAM u (k STRING, v BIGINT) WITH (connector = 'files', path = 'nowhere/', format = 'ndjson')")
    hinted = ctx.sql("SELECT k, COUNT(*) AS n FROM h GROUP BY k").plan
    guess = cost.estimate(hinted.input, [k.expr for k in hinted.keys], None)
    assert guess == Estimate(5000.0, 7.0) and guess.pays(CostModel())
    assert not Estimate(5000.0, 2000.0).pays(CostModel())
    unknown = ctx.sql("SELECT k, COUNT(*) AS n FROM u GROUP BY k").plan
    guess = cost.estimate(unknown.input, [k.expr for k in unknown.keys], None)
    assert guess == Estimate(None, None) and guess.pays(CostModel())  # the documented default
    assert not guess.pays(CostModel(enabled=False)) and Estimate(1.0, 1.0).pays(FORCE)


def test_a_malformed_ndv_hint_is_a_clear_error():
    ctx = sd.Context(check_files=False)
    ctx.sql(
        "CREATE STREAM h (k STRING) WITH (connector = 'files', path = 'nowhere/', format = 'ndjson', ndv = 'k=lots')"
    )
    with pytest.raises(ConnectorError, match="option ndv must look like 'column=N"):
        ctx.sql("SELECT k, COUNT(*) AS n FROM h GROUP BY k").explain()


def test_memory_and_file_statistics(tmp_path):
    ctx = sd.Context()
    ctx.from_polars([pl.DataFrame({"k": ["a", "b"] * 50}), pl.DataFrame({"k": ["c"] * 30})], "m")
    plan = ctx.sql("SELECT k, COUNT(*) AS n FROM m GROUP BY k").plan
    assert cost.rows_per_batch(plan.input) == 100 and cost.column_ndv(plan.input, "k") == 3
    events = generator.ysb_events(20_000, rate=RATE)
    directory = tmp_path / "events"
    directory.mkdir()
    for i in range(4):
        (directory / f"part-{i}.ndjson").write_bytes(generator.events_as_json(events.slice(i * 5000, 5000)))
    ctx.sql(
        f"CREATE STREAM f (ad_id STRING, event_time TIMESTAMP) WITH (connector = 'files', "
        f"path = '{directory}', format = 'ndjson', max_files_per_batch = '1')"
    )
    scan = ctx.sql("SELECT ad_id FROM f").plan
    assert cost.rows_per_batch(scan) == pytest.approx(5000, rel=0.1)
    table = tmp_path / "campaigns.csv"
    generator.ysb_campaigns().write_csv(table)
    ctx.sql(f"CREATE TABLE c (ad_id STRING, campaign_id STRING) WITH (connector = 'files', path = '{table}')")
    assert cost.column_ndv(ctx.sql("SELECT * FROM c").plan, "campaign_id") == 100
    assert cost.rows_per_batch(ctx.sql("SELECT * FROM c").plan) == pytest.approx(1000, rel=0.1)


def test_the_batch_interval_of_the_query_reaches_the_cost_guard():
    # Per batch: 1,000,000 events/s x interval, a third of them views; 1000 ads (100 campaigns) x ~1 window.
    def phases(interval_ms: int) -> tuple[bool, bool]:
        plan = optimizer.optimize(ysb_context().sql(YSB).plan, RunConfig(batch_interval_ms=interval_ms))
        split = "PartialAggregate" in kinds(plan)
        below = any(isinstance(n, Join) and isinstance(n.left, PartialAggregate) for n in walk(plan))
        return split, below

    assert phases(100) == (True, True)  # 33,333 rows: per ad and window (~1000 groups) pays
    assert phases(10) == (True, False)  # 3,333 rows: per campaign (100) pays, per ad (1000) does not
    assert phases(1) == (False, False)  # 333 rows: not even per campaign


def test_cost_based_rules_keep_their_names_when_bound():
    bound = with_cost_model(FORCE)
    assert [r.__name__ for r in bound] == [r.__name__ for r in RULES]
    assert split_aggregates in RULES and push_aggregate_below_join in RULES


def test_the_partial_moves_down_a_chain_of_joins(data_ctx):
    sql = (
        "SELECT c.campaign_id, u.country, COUNT(*) AS n, SUM(u.age) AS ages FROM events e "
        "JOIN campaigns c ON e.ad_id = c.ad_id JOIN users u ON e.user_id = u.user_id "
        "GROUP BY c.campaign_id, u.country"
    )
    plan = data_ctx.sql(sql).plan
    # SUM(u.age) reads a table column: the partial stays above the joins.
    assert not any(isinstance(n, Join) and isinstance(n.left, PartialAggregate) for n in walk(forced(plan)))
    counts = data_ctx.sql(sql.replace(", SUM(u.age) AS ages", "")).plan
    pushed = forced(counts)
    assert render_plan(pushed).splitlines()[:4] == [
        "FinalAggregate keys=[campaign_id, country] aggs=[n := count(*)] emit=changes",
        "  Join inner on [user_id = user_id] right=[country]",
        "    Join inner on [ad_id = ad_id] right=[campaign_id]",
        "      PartialAggregate keys=[ad_id, user_id] aggs=[n := count(*)]",
    ]
    expected = run(counts)
    assert expected.height > 0
    assert_same_result(expected, run(pushed))
    assert_same_result(expected, run(pushed, workers=3))
