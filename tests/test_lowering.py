"""Logical plans lowered to stage DAGs: where the cuts are, what each stage runs."""

from __future__ import annotations

import datetime as dt
import pickle

import polars as pl
import pytest

import stream_dsl as sd
from optimizer.explain import explain
from optimizer.physical.lower import lower, output_stages, stage_order
from optimizer.physical.changelog import MarkAppendOp, RetractAggregateOp
from optimizer.physical.stages import (
    AggregateOp,
    BroadcastJoinOp,
    DistinctOp,
    FilterOp,
    OutputWrite,
    ProjectOp,
    ReadOp,
    ScanOp,
    ShuffleWrite,
    Stage,
)
from stream_dsl.ir import expr as E
from stream_dsl.bind import typecheck as tc
from stream_dsl.config import RunConfig
from stream_dsl.connectors import memory
from stream_dsl.errors import BindError, PlanError
from stream_dsl.ir.definitions import Watermark, WindowSpec
from stream_dsl.ir.plan import Aggregate, Filter, Join, Limit, Project, Scan, Union
from stream_dsl.ir.types import DataType as T

YSB = """
SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
"""


@pytest.fixture
def ctx() -> sd.Context:
    context = sd.Context(executor="inline", workers=3)
    context.sql("""
        CREATE STREAM events (user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING,
          event_time TIMESTAMP, ip_address STRING,
          WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
        WITH (connector = 'generator', kind = 'ysb', rate = '1000', count = '100')""")
    context.sql(
        "CREATE TABLE campaigns (ad_id STRING, campaign_id STRING) "
        "WITH (connector = 'generator', kind = 'ysb_campaigns')"
    )
    context.sql(
        "CREATE STREAM clicks (user_id STRING, ad_id STRING, ts TIMESTAMP) WITH (connector = 'generator', kind = 'ysb')"
    )
    return context


def dag(ctx: sd.Context, sql: str, workers: int = 3):
    return lower(ctx.sql(sql).plan, workers)


def ops(stage: Stage) -> list[type]:
    return [type(op) for op in stage.operators + ((stage.stateful,) if stage.stateful else ()) + stage.post]


def test_ysb_is_two_stages_with_a_hash_exchange_on_the_group_keys(ctx):
    graph = dag(ctx, YSB)
    assert sorted(graph.nodes) == [0, 1]
    assert list(graph.edges) == [(0, 1)]
    exchange = graph.edges[0, 1]["exchange"]
    assert exchange.kind == "hash" and exchange.keys == ("campaign_id",) and exchange.partitions == 3
    source, reduce = stage_order(graph)
    assert source.partitions == 1 and source.inputs == ()
    assert ops(source) == [ScanOp, BroadcastJoinOp, FilterOp, ProjectOp, ShuffleWrite]
    assert source.terminal.target == 1
    assert reduce.partitions == 3 and reduce.inputs == (0,)
    assert ops(reduce) == [ReadOp, AggregateOp, OutputWrite]
    agg = reduce.stateful
    assert agg.keys == ("campaign_id",) and agg.window.kind == "tumble" and agg.window.size_ms == 10_000
    assert agg.emit == "final" and not agg.changelog
    assert reduce.terminal == OutputWrite(changelog=False)


def test_partition_count_follows_workers(ctx):
    graph = dag(ctx, YSB, workers=1)
    assert graph.nodes[1]["stage"].partitions == 1
    assert graph.edges[0, 1]["exchange"].partitions == 1


def test_stateless_query_is_one_stage(ctx):
    graph = dag(ctx, "SELECT upper(ad_id) AS a FROM events WHERE event_type = 'view'")
    assert list(graph.nodes) == [0]
    stage = graph.nodes[0]["stage"]
    assert ops(stage) == [ScanOp, FilterOp, ProjectOp, OutputWrite]
    assert stage.stateful is None and graph.number_of_edges() == 0


def test_union_keeps_a_stage_per_input(ctx):
    graph = dag(ctx, "SELECT ad_id FROM events UNION ALL SELECT ad_id FROM clicks WHERE user_id = 'u'")
    assert sorted(graph.nodes) == [0, 1]
    assert graph.number_of_edges() == 0
    assert [s.id for s in output_stages(graph)] == [0, 1]
    assert all(isinstance(s.head, ScanOp) for s in stage_order(graph))


def test_union_feeding_an_aggregate_shuffles_every_input_into_one_stage(ctx):
    graph = dag(
        ctx,
        "SELECT ad_id, COUNT(*) AS n FROM (SELECT ad_id FROM events UNION ALL SELECT ad_id FROM clicks) GROUP BY ad_id",
    )
    assert sorted(graph.edges) == [(0, 2), (1, 2)]
    assert graph.nodes[2]["stage"].inputs == (0, 1)
    assert graph.edges[0, 2]["exchange"] == graph.edges[1, 2]["exchange"]


def test_distinct_exchanges_on_all_columns(ctx):
    graph = dag(ctx, "SELECT DISTINCT ad_type, event_type FROM events")
    assert graph.edges[0, 1]["exchange"].keys == ("ad_type", "event_type")
    stage = graph.nodes[1]["stage"]
    assert isinstance(stage.stateful, DistinctOp) and stage.partitions == 3


def test_aggregate_without_keys_uses_one_partition(ctx):
    graph = dag(ctx, "SELECT COUNT(*) AS n FROM events")
    assert graph.nodes[1]["stage"].partitions == 1
    assert graph.edges[0, 1]["exchange"].keys == ()


def test_having_and_final_projection_run_after_the_state(ctx):
    graph = dag(ctx, "SELECT ad_type, COUNT(*) AS n FROM events GROUP BY ad_type HAVING COUNT(*) > 2")
    stage = graph.nodes[1]["stage"]
    assert ops(stage)[:2] == [ReadOp, AggregateOp]
    assert FilterOp in ops(stage)[2:]
    assert stage.terminal.changelog and stage.terminal.group_keys == ("ad_type",)


def test_windowed_changes_is_a_changelog_keyed_by_window(ctx):
    graph = dag(
        ctx,
        "SELECT ad_type, window_start, window_end, COUNT(*) AS n FROM events "
        "GROUP BY ad_type, TUMBLE(event_time, INTERVAL '1' SECOND) EMIT CHANGES",
    )
    terminal = graph.nodes[1]["stage"].terminal
    assert terminal.changelog and terminal.group_keys == ("ad_type", "window_start", "window_end")


def test_a_projection_that_drops_a_group_key_makes_the_output_retract(ctx):
    graph = dag(
        ctx,
        "SELECT ad_type, COUNT(*) AS n FROM events "
        "GROUP BY ad_type, TUMBLE(event_time, INTERVAL '1' SECOND) EMIT CHANGES",
    )
    stage = graph.nodes[1]["stage"]
    assert stage.terminal.retract and not stage.terminal.changelog
    assert stage.stateful.retract  # the aggregate emits -old/+new rows
    assert "__sd_op" in [n.name for n in stage.post[0].exprs]  # the projection carries the operation


def test_table_on_the_left_of_an_inner_join_is_broadcast():
    plan = Join(_scan("t", "table"), _scan("s"), "inner", ("k",), ("k",), (("v", "v2"),))
    graph = lower(plan)
    stage = graph.nodes[0]["stage"]
    join = next(op for op in stage.operators if isinstance(op, BroadcastJoinOp))
    assert stage.head.source.name == "s"
    assert join.stream_keys == ("k",) and join.table_keys == ("k",)
    assert join.output == (("table", "k", "k"), ("table", "v", "v"), ("stream", "v", "v2"))


def test_limit_goes_to_the_output(ctx):
    graph = dag(ctx, "SELECT ad_id FROM events LIMIT 7")
    assert graph.graph["limit"] == 7
    assert list(graph.nodes) == [0]


# ---------------------------------------------------------------- refused plans


def _scan(name: str, kind: str = "stream"):
    frame = pl.DataFrame({"k": ["a"], "v": [1]})
    return Scan(memory.source_def(name, frame, kind=kind))


def test_a_join_of_two_streams_is_one_stateful_stage_fed_by_both():
    from optimizer.physical.stream_join import StreamJoinOp

    left, right = _scan("a"), _scan("b")
    graph = lower(Join(left, right, "inner", ("k",), ("k",), (("v", "v2"),)), workers=3)
    [stage] = [graph.nodes[n]["stage"] for n in graph.nodes if graph.nodes[n]["stage"].stateful is not None]
    assert isinstance(stage.stateful, StreamJoinOp) and stage.partitions == 3 and len(stage.inputs) == 2


def test_left_join_from_a_table_to_a_stream_is_refused():
    plan = Join(_scan("t", "table"), _scan("s"), "left", ("k",), ("k",), (("v", "v2"),))
    with pytest.raises(PlanError, match="put the stream on the left"):
        lower(plan)


def test_aggregate_over_a_changelog_takes_retractions(ctx):
    graph = dag(
        ctx, "SELECT n, COUNT(*) AS c FROM (SELECT ad_type, COUNT(*) AS n FROM events GROUP BY ad_type) GROUP BY n"
    )
    inner, outer = graph.nodes[1]["stage"], graph.nodes[2]["stage"]
    assert isinstance(inner.stateful, AggregateOp) and inner.stateful.retract
    assert isinstance(outer.stateful, RetractAggregateOp) and outer.terminal.changelog


def test_windowed_aggregate_over_a_changelog_is_refused_where_the_window_is_written(ctx):
    with pytest.raises(BindError, match="windowed aggregate over a changelog") as info:
        dag(
            ctx,
            "SELECT window_start, COUNT(*) AS c FROM (SELECT ad_id, MAX(event_time) AS t FROM events "
            "GROUP BY ad_id) GROUP BY TUMBLE(t, INTERVAL '1' SECOND)",
        )
    assert (info.value.line, info.value.column) == (1, 114)  # TUMBLE


def test_the_planner_refuses_a_windowed_aggregate_over_a_changelog_built_without_the_binder():
    counts = Aggregate(
        _scan("w"), (E.NamedExpr("k", E.Column("k", T.STRING)),), (E.NamedExpr("n", tc.aggregate("count", None)),)
    )
    frame = pl.DataFrame({"k": ["a"], "ts": [dt.datetime(2024, 1, 1)]})
    times = Join(counts, Scan(memory.source_def("tt", frame, kind="table")), "inner", ("k",), ("k",), (("ts", "ts"),))
    windowed = Aggregate(times, (), (E.NamedExpr("c", tc.aggregate("count", None)),), WindowSpec("tumble", "ts", 1000))
    with pytest.raises(PlanError, match="windowed aggregate over a changelog"):
        lower(windowed)


def test_aggregate_over_window_close_output_is_allowed():
    frame = pl.DataFrame({"k": ["a"], "ts": [dt.datetime(2024, 1, 1)]})
    scan = Scan(memory.source_def("w", frame, watermark=Watermark("ts", 0)))
    inner = Aggregate(
        scan,
        (E.NamedExpr("k", E.Column("k", T.STRING)),),
        (E.NamedExpr("n", tc.aggregate("count", None)),),
        WindowSpec("tumble", "ts", 1000),
    )
    outer = Aggregate(
        inner,
        (),
        (E.NamedExpr("total", tc.aggregate("sum", E.Column("n", T.BIGINT))),),
        WindowSpec("tumble", "window_start", 10_000),
    )
    graph = lower(outer, 2)
    assert sorted(graph.edges) == [(0, 1), (1, 2)]
    assert isinstance(graph.nodes[1]["stage"].terminal, ShuffleWrite)


def test_union_of_a_changelog_retracts_and_marks_append_rows():
    counts = Aggregate(
        _scan("c"),
        (E.NamedExpr("k", E.Column("k", T.STRING)),),
        (E.NamedExpr("v", tc.aggregate("count", None)),),
        emit="changes",
    )
    other = Project(_scan("d"), (E.NamedExpr("k", E.Column("k", T.STRING)), E.NamedExpr("v", E.Column("v", T.BIGINT))))
    graph = lower(Union((counts, other)))
    stages = [graph.nodes[n]["stage"] for n in graph.nodes]
    outputs = [s for s in stages if isinstance(s.terminal, OutputWrite)]
    assert len(outputs) == 2 and all(s.terminal.retract for s in outputs)
    assert any(isinstance(op, MarkAppendOp) for s in outputs for op in s.operators)


def test_limit_inside_a_query_is_refused():
    scan = _scan("l")
    plan = Filter(Limit(scan, 3), tc.binary(">", E.Column("v", T.BIGINT), tc.literal(0)))
    with pytest.raises(PlanError, match="outermost"):
        lower(plan)


def test_ordering_comes_off_the_top_through_filters_and_projections_and_nowhere_else():
    from stream_dsl.ir.plan import Sort, SortKey

    scan = _scan("l")
    v = E.Column("v", T.BIGINT)
    keys = (SortKey("v", True),)
    graph = lower(Limit(Filter(Sort(scan, keys), tc.binary(">", v, tc.literal(0))), 4))
    assert graph.graph["order"] == keys and graph.graph["order_limit"] == 4 and graph.graph["limit"] is None
    plan = Union((Sort(scan, keys), _scan("r")))
    with pytest.raises(PlanError, match="ORDER BY .* only as the outermost query's last step"):
        lower(plan)


# ---------------------------------------------------------------- records and text


def test_stages_are_picklable(ctx):
    graph = dag(ctx, YSB)
    for stage in stage_order(graph):
        assert pickle.loads(pickle.dumps(stage)) == stage


def test_stage_ids_are_topological(ctx):
    graph = dag(ctx, "SELECT ad_id, COUNT(*) AS n FROM (SELECT DISTINCT ad_id, user_id FROM events) GROUP BY ad_id")
    assert sorted(graph.edges) == [(0, 1), (1, 2)]
    assert [s.id for s in stage_order(graph)] == [0, 1, 2]


def test_explain_shows_plan_then_stages_deterministically(ctx):
    plan = ctx.sql(YSB).plan
    text = explain(plan, RunConfig(workers=2))
    assert text == explain(plan, RunConfig(workers=2))
    assert text.index("== Logical plan ==") < text.index("== Stages ==")
    stages = text.split("== Stages ==")[1]
    assert "Stage 0 partitions=1" in stages and "Stage 1 partitions=2 inputs=[0]" in stages
    assert "ShuffleWrite hash([campaign_id]) x2 -> stage 1" in stages
    assert "Broadcast tables:" in stages


def test_stream_explain_uses_this_text(ctx):
    assert "== Stages ==" in ctx.sql(YSB).explain()
