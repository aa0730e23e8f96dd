"""explain(): the logical plan, the optimized plan, the rules that fired, the pushdown decisions, the stages.

Also `explain(format="dot")` (Graphviz DOT of the stage DAG, checked with a
small DOT parser, since pydot is not installed), `EXPLAIN` in the DSL (the
same text), `sd.Context(optimize=False)` (no rules, no partial aggregate)
and `EXPLAIN ANALYZE` (the executor's counters).
"""

from __future__ import annotations

import re

import polars as pl
import pytest

import stream_dsl as sd
from optimizer.explain import explain
from optimizer.physical.lower import lower, stage_order
from stream_dsl.config import RunConfig
from stream_dsl.errors import DSLError

YSB = (
    "SELECT campaign_id, window_start, window_end, COUNT(*) AS views FROM events JOIN campaigns USING (ad_id) "
    "WHERE event_type = 'view' GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)"
)


def context(optimize: bool = True, workers: int = 2) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=workers, optimize=optimize)
    ctx.sql("""
        CREATE STREAM events (user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING,
          event_time TIMESTAMP, ip_address STRING,
          WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
        WITH (connector = 'generator', kind = 'ysb', rate = '1000000', count = '20000')""")
    ctx.sql(
        "CREATE TABLE campaigns (ad_id STRING, campaign_id STRING) "
        "WITH (connector = 'generator', kind = 'ysb_campaigns')"
    )
    return ctx


def sections(text: str) -> dict[str, str]:
    """Section title → body."""
    parts = re.split(r"^== (.+) ==$", text, flags=re.MULTILINE)
    assert parts[0] == ""
    return {title: body.strip("\n") for title, body in zip(parts[1::2], parts[2::2])}


# ---------------------------------------------------------------- text


def test_explain_shows_logical_optimized_rules_pushdown_and_stages_in_order():
    text = context().sql(YSB).explain()
    titles = list(sections(text))
    assert titles == ["Logical plan", "Optimized plan", "Rules fired", "Aggregation pushdown", "Stages"]
    parts = sections(text)
    assert parts["Logical plan"].startswith("Aggregate keys=[campaign_id] window=TUMBLE(event_time, 10s)")
    assert "  Filter (event_type = 'view')" in parts["Logical plan"]
    assert parts["Optimized plan"].splitlines() == [
        "FinalAggregate keys=[campaign_id] window=TUMBLE(event_time, 10s) aggs=[views := count(*)] emit=final",
        "  Join inner on [ad_id = ad_id] right=[campaign_id]",
        "    PartialAggregate keys=[ad_id] window=TUMBLE(event_time, 10s) aggs=[views := count(*)]",
        "      Scan stream events columns=[ad_id, event_type, event_time] predicate=(event_type = 'view') "
        "watermark=event_time-1s",
        "    Scan table campaigns",
    ]
    assert parts["Rules fired"].splitlines() == [
        "push_down_predicates",
        "prune_projections",
        "split_aggregates",
        "push_aggregate_below_join",
        "(fixed point after 2 passes)",
    ]
    assert parts["Aggregation pushdown"].startswith(
        "FinalAggregate keys=[campaign_id] window=TUMBLE(event_time, 10s): two-phase, partial keys=[ad_id] "
        "below 1 join; rows/batch 6,667, groups/batch 1,010 (x6.6): pays"
    )


def test_stages_show_each_fused_pipeline_operator_by_operator():
    stages = sections(context().sql(YSB).explain())["Stages"].splitlines()
    assert stages[:7] == [
        "Stage 0 partitions=1",
        "  Scan stream events columns=[ad_id, event_type, event_time] predicate=(event_type = 'view') "
        "watermark=event_time-1s",
        "  Project ad_id, __sd_time := event_time",
        "  PartialAggregate keys=[ad_id] window=TUMBLE(event_time, 10s) aggs=[views := count(*)]",
        "  BroadcastJoin inner t0 on [ad_id = ad_id] output=[ad_id, window_start, window_end, __sd_rows, __sd_c0, "
        "campaign_id]",
        "  Project campaign_id, window_start, window_end, __sd_rows, __sd_c0",
        "  ShuffleWrite hash([campaign_id]) x2 -> stage 1",
    ]
    assert stages[7:11] == [
        "Stage 1 partitions=2 inputs=[0]",
        "  Read exchange (campaign_id, window_start, window_end, __sd_rows, __sd_c0)",
        "  FinalAggregate keys=[campaign_id] window=TUMBLE(event_time, 10s) merge=[views := sum(__sd_c0)] emit=final",
        "  Output append",
    ]
    assert stages[11:] == ["Broadcast tables:", "  t0:", "    Scan table campaigns"]


def test_explain_is_deterministic():
    plan = context().sql(YSB).plan
    assert explain(plan, RunConfig(workers=2)) == explain(plan, RunConfig(workers=2))
    assert explain(plan, RunConfig(workers=2), format="dot") == explain(plan, RunConfig(workers=2), format="dot")


def test_the_dsl_explain_prints_the_same_text():
    ctx = context()
    assert ctx.sql("EXPLAIN " + YSB) == ctx.sql(YSB).explain()
    assert ctx.sql("EXPLAIN " + YSB + ";") == ctx.sql(YSB).explain()


def test_optimize_false_turns_every_rule_off():
    ctx = context(optimize=False)
    text = ctx.sql(YSB).explain()
    parts = sections(text)
    assert list(parts) == ["Logical plan", "Aggregation pushdown", "Stages"]
    assert "Partial" not in text and "FinalAggregate" not in text
    assert "Filter (event_type = 'view')" in parts["Stages"]  # not pushed into the scan
    assert (
        "Scan stream events columns=[user_id, page_id, ad_id, ad_type, event_type, event_time, ip_address]"
        in parts["Stages"]
    )
    assert parts["Aggregation pushdown"].startswith(
        "Aggregate keys=[campaign_id] window=TUMBLE(event_time, 10s): single-phase;"
    )
    assert ctx.sql("EXPLAIN " + YSB) == text


def test_no_rule_firing_is_said_so():
    text = context().sql("SELECT * FROM events").explain()
    assert sections(text)["Rules fired"].splitlines() == [
        "(none: no rule changed the plan)",
        "(fixed point after 1 pass)",
    ]
    assert "Aggregation pushdown" not in sections(text)


def test_a_cost_guard_refusal_is_explained():
    text = (
        context()
        .sql("SELECT user_id, page_id, ip_address, COUNT(*) AS n FROM events GROUP BY user_id, page_id, ip_address")
        .explain()
    )
    assert "PartialAggregate" not in text
    assert sections(text)["Aggregation pushdown"] == (
        "Aggregate keys=[user_id, page_id, ip_address]: single-phase; rows/batch 20,000, groups/batch 20,000 "
        "(x1.0): does not pay (needs x4; unknown counts pay)"
    )


def test_hop_is_explained_as_single_phase():
    text = (
        context()
        .sql(
            "SELECT ad_id, window_start, COUNT(*) AS n FROM events "
            "GROUP BY ad_id, HOP(event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)"
        )
        .explain()
    )
    assert sections(text)["Aggregation pushdown"].endswith("single-phase (a HOP or SESSION window)")


def test_unknown_format_is_a_clear_error():
    with pytest.raises(DSLError, match=r"unknown explain format 'dto' \(did you mean 'dot'\?\); choose one of"):
        context().sql(YSB).explain(format="dto")


# ---------------------------------------------------------------- DOT


_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_STRING = r'"(?:[^"\\]|\\.)*"'
_VALUE = rf"(?:{_STRING}|{_ID}|[0-9.]+)"
_ATTRS = rf"\[\s*{_ID}\s*=\s*{_VALUE}(?:\s*,\s*{_ID}\s*=\s*{_VALUE})*\s*\]"
_NODE = re.compile(rf"^({_ID})\s*(?:{_ATTRS})?\s*;$")
_EDGE = re.compile(rf"^({_ID})\s*->\s*({_ID})\s*(?:{_ATTRS})?\s*;$")
_DEFAULT = re.compile(rf"^(?:node|edge|graph)\s*{_ATTRS}\s*;$|^{_ID}\s*=\s*{_VALUE}\s*;$")


def parse_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    """A tiny DOT reader for what render_dot writes: one statement per line; nodes → labels, edges."""
    lines = [line.strip() for line in text.strip().splitlines()]
    assert lines[0] == "digraph stages {" and lines[-1] == "}"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str, str]] = []
    for line in lines[1:-1]:
        if _DEFAULT.match(line):
            continue
        edge = _EDGE.match(line)
        if edge:
            edges.append((edge.group(1), edge.group(2), _label(line)))
            continue
        node = _NODE.match(line)
        assert node, f"not a DOT statement: {line!r}"
        nodes[node.group(1)] = _label(line)
    return nodes, edges


def _label(statement: str) -> str:
    found = re.search(rf"label=({_STRING})", statement)
    if not found:
        return ""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "l" else m.group(1), found.group(1)[1:-1])


def test_dot_is_the_stage_dag():
    ctx = context()
    dot = ctx.sql(YSB).explain(format="dot")
    nodes, edges = parse_dot(dot)
    assert set(nodes) == {"stage0", "stage1", "t0", "output"}
    for u, v, _ in edges:
        assert u in nodes and v in nodes, (u, v)
    assert ("stage0", "stage1", "hash([campaign_id]) x2\n") in edges
    assert ("t0", "stage0", "broadcast") in edges and ("stage1", "output", "Output append\n") in edges
    graph = lower(__import__("optimizer").optimize(ctx.sql(YSB).plan, ctx.config), 2)
    for stage in stage_order(graph):
        assert nodes[f"stage{stage.id}"] == "".join(line.strip() + "\n" for line in stage.describe())
    assert "PartialAggregate keys=[ad_id]" in nodes["stage0"]


def test_dot_escapes_quotes_and_backslashes():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(pl.DataFrame({"s": ['a"b\\c']}), "q")
    dot = ctx.sql("SELECT s FROM q WHERE s = 'x\"y\\z'").explain(format="dot")
    nodes, _ = parse_dot(dot)
    assert "predicate=(s = 'x\"y\\z')" in nodes["stage0"]


def test_dot_of_a_union_and_a_limit():
    ctx = context()
    dot = ctx.sql("SELECT ad_id FROM events UNION ALL SELECT ad_id FROM events WHERE ad_type = 'mail' LIMIT 3").explain(
        format="dot"
    )
    nodes, edges = parse_dot(dot)
    assert {"stage0", "stage1", "output"} <= set(nodes) and nodes["output"] == "output limit 3\n"
    assert {(u, v) for u, v, _ in edges} == {("stage0", "output"), ("stage1", "output")}


# ---------------------------------------------------------------- EXPLAIN ANALYZE


def test_explain_analyze_adds_metrics_with_the_counters():
    text = context().sql("EXPLAIN ANALYZE " + YSB)
    parts = sections(text)
    assert list(parts)[-1] == "Metrics" and "Rules fired" in parts
    metrics = parts["Metrics"]
    assert re.search(
        r"^shuffle_rows=\d+ shuffle_bytes=\d+ map_tasks=\d+ max_rows_per_map_task=\d+$", metrics, re.MULTILINE
    )
    assert "Source events columns=[ad_id, event_type, event_time] rows_read=20000" in metrics
