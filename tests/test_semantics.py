"""Query semantics end to end: YSB against plain polars, SQL NULL rules, joins, DISTINCT, UNION, LIMIT.

The equivalence property: on bounded input with no late rows, collect()
equals the same query computed in one batch by plain polars (or DuckDB),
for every batch split and worker count.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor.api import collect, start
from stream_dsl.ir import expr as E
from stream_dsl.config import RunConfig
from stream_dsl.connectors import generator, memory
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.errors import ConnectorError, ExecutionError
from stream_dsl.ir.plan import Join, Scan
from stream_dsl.ir.types import DataType as T
from budget import examples
from batch_cuts import cut_into_batches

BASE = dt.datetime(2024, 1, 1)

YSB = """
SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
"""


def ysb_context(workers: int, batch_interval: str, count: int = 30_000, rate: int = 2_000) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=workers, batch_interval=batch_interval)
    ctx.sql(f"""
        CREATE STREAM events (user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING,
          event_time TIMESTAMP, ip_address STRING,
          WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)
        WITH (connector = 'generator', kind = 'ysb', rate = '{rate}', count = '{count}')""")
    ctx.sql(
        "CREATE TABLE campaigns (ad_id STRING, campaign_id STRING) "
        "WITH (connector = 'generator', kind = 'ysb_campaigns')"
    )
    return ctx


def ysb_by_polars(count: int = 30_000, rate: int = 2_000) -> pl.DataFrame:
    events = generator.ysb_events(count, rate=rate)
    campaigns = generator.ysb_campaigns()
    size = 10_000
    start = pl.col("event_time").dt.epoch("ms") // size * size
    return (
        events.filter(pl.col("event_type") == "view")
        .join(campaigns, on="ad_id")
        .group_by("campaign_id", start.alias("ws"))
        .agg(pl.len().cast(pl.Int64).alias("views"))
        .select(
            "campaign_id",
            pl.col("ws").cast(pl.Datetime("ms")).alias("window_start"),
            (pl.col("ws") + size).cast(pl.Datetime("ms")).alias("window_end"),
            "views",
        )
    )


@pytest.mark.parametrize("workers,interval", [(1, "1s"), (3, "250ms"), (2, "7s")])
def test_ysb_counts_equal_plain_polars(workers, interval):
    ours = ysb_context(workers, interval).sql(YSB).collect()
    expected = ysb_by_polars()
    key = ["campaign_id", "window_start"]
    assert ours.schema == expected.schema
    assert ours.height > 100
    assert ours.sort(key).equals(expected.sort(key))


def test_ysb_continuous_run_emits_each_window_once_and_reports_progress():
    ctx = ysb_context(2, "500ms", count=60_000, rate=4_000)
    ctx.catalog.sources["events"] = _with_option(ctx.catalog.sources["events"], realtime="false")
    sink = MemorySink()
    handle = ctx.sql(YSB).start(sink=sink)
    assert handle.await_termination(120)
    progress = handle.progress()
    assert sum(p["rows_in"] for p in progress) == 60_000
    assert sum(p["late_rows"] for p in progress) == 0
    assert progress[-1]["watermark"] == dt.datetime.max
    out = sink.frame()
    assert out.select("campaign_id", "window_start").is_duplicated().sum() == 0
    assert sum(p["rows_out"] for p in progress) == out.height
    key = ["campaign_id", "window_start"]
    assert out.sort(key).equals(ysb_by_polars(60_000, 4_000).sort(key))
    # Windows were emitted along the way, not all at the end.
    assert sum(1 for p in progress if p["rows_out"]) > 1


def _with_option(source, **options):
    from dataclasses import replace

    return replace(source, options=tuple(sorted(dict(source.options, **options).items())))


# ---------------------------------------------------------------- equivalence with polars


@st.composite
def split_frames(draw):
    n = draw(st.integers(0, 30))
    frame = pl.DataFrame(
        {
            "k": draw(st.lists(st.sampled_from(["x", "y", None]), min_size=n, max_size=n)),
            "v": draw(st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=n, max_size=n)),
            "ts": [
                BASE + dt.timedelta(milliseconds=m)
                for m in draw(st.lists(st.integers(0, 30_000), min_size=n, max_size=n))
            ],
        },
        schema={"k": pl.String, "v": pl.Int64, "ts": pl.Datetime("ms")},
    )
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return frame, cut_into_batches(frame, cuts)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=split_frames(), workers=st.integers(1, 4))
def test_windowed_aggregate_equals_one_polars_batch(data, workers):
    frame, batches = data
    ctx = sd.Context(executor="inline", workers=workers)
    ctx.from_polars(batches, name="s")
    ours = ctx.sql(
        "SELECT k, window_start, COUNT(*) AS n, SUM(v) AS total, COUNT(v) AS nv FROM s "
        "GROUP BY k, TUMBLE(ts, INTERVAL '5' SECOND)"
    ).collect()
    expected = frame.group_by("k", pl.col("ts").dt.truncate("5s").alias("window_start")).agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.when(pl.col("v").count() > 0).then(pl.col("v").sum()).alias("total"),
        pl.col("v").count().cast(pl.Int64).alias("nv"),
    )
    key = ["k", "window_start"]
    assert ours.sort(key, nulls_last=True).equals(expected.sort(key, nulls_last=True))


# ---------------------------------------------------------------- SQL NULL rules in aggregates


def nulls_context(workers: int = 2) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=workers)
    frame = pl.DataFrame(
        {
            "k": ["a", "a", "b", None, None],
            "v": [None, None, 1, 2, None],
            "d": [None, None, 0.5, None, 1.5],
            "s": [None, None, "q", "p", "p"],
        },
        schema={"k": pl.String, "v": pl.Int64, "d": pl.Float64, "s": pl.String},
    )
    ctx.from_polars([frame[:2], frame[2:]], name="s")
    return ctx


def test_aggregates_follow_sql_null_rules():
    out = (
        nulls_context()
        .sql(
            "SELECT k, COUNT(*) AS n, COUNT(v) AS nv, SUM(v) AS sv, AVG(d) AS ad, MIN(s) AS mn, MAX(v) AS mx, "
            "COUNT(DISTINCT s) AS ds FROM s GROUP BY k"
        )
        .collect()
    )
    rows = {r[0]: r[1:] for r in out.rows()}
    assert rows["a"] == (2, 0, None, None, None, None, 0)
    assert rows["b"] == (1, 1, 1, 0.5, "q", 1, 1)
    assert rows[None] == (2, 1, 2, 1.5, "p", 2, 1)  # NULL keys form one group


def test_global_aggregate_over_no_rows_is_one_row():
    out = (
        nulls_context()
        .sql("SELECT COUNT(*) AS n, SUM(v) AS sv, MAX(s) AS m, COUNT(DISTINCT s) AS d FROM s WHERE v > 100")
        .collect()
    )
    assert out.rows() == [(0, None, None, 0)]


def test_distinct_treats_nulls_as_equal():
    out = nulls_context(3).sql("SELECT DISTINCT k, v FROM s").collect()
    assert sorted(out.rows(), key=repr) == sorted([("a", None), ("b", 1), (None, 2), (None, None)], key=repr)


def test_constants_are_one_value_per_row():
    ctx = nulls_context()
    assert ctx.sql("SELECT 1 AS one FROM s").collect().get_column("one").to_list() == [1] * 5
    assert ctx.sql("SELECT 'x' AS c, NULL AS n, k FROM s").collect().height == 5


# ---------------------------------------------------------------- joins, union, limit


def join_context() -> sd.Context:
    ctx = sd.Context(executor="inline", workers=2)
    ctx.from_polars([pl.DataFrame({"k": ["a", "b", None, "c"], "v": [1, 2, 3, 4]})], name="s")
    ctx.from_polars(pl.DataFrame({"k": ["a", "a", "b", None], "name": ["x", "y", "z", "n"]}), name="t", static=True)
    return ctx


def test_inner_and_left_joins_with_a_table_never_match_null_keys():
    ctx = join_context()
    inner = ctx.sql("SELECT s.k, v, name FROM s JOIN t ON s.k = t.k").collect()
    assert sorted(inner.rows()) == [("a", 1, "x"), ("a", 1, "y"), ("b", 2, "z")]
    left = ctx.sql("SELECT s.k, v, name FROM s LEFT JOIN t ON s.k = t.k").collect()
    assert sorted(left.rows(), key=repr) == sorted(
        [("a", 1, "x"), ("a", 1, "y"), ("b", 2, "z"), (None, 3, None), ("c", 4, None)], key=repr
    )


def test_join_output_names_follow_right_columns():
    ctx = join_context()
    out = ctx.sql("SELECT * FROM s JOIN t ON s.k = t.k").collect()
    assert out.columns == list(ctx.sql("SELECT * FROM s JOIN t ON s.k = t.k").plan.schema.names)


def test_table_on_the_left_of_an_inner_join():
    ctx = join_context()
    stream = ctx.catalog.sources["s"]
    table = ctx.catalog.sources["t"]
    plan = Join(Scan(table), Scan(stream), "inner", ("k",), ("k",), (("v", "v"), ("k", "sk")))
    out = collect(plan, RunConfig(workers=2, executor="inline"))
    assert out.columns == ["k", "name", "v", "sk"]
    assert sorted(out.rows()) == [("a", "x", 1, "a"), ("a", "y", 1, "a"), ("b", "z", 2, "b")]


def test_join_keys_of_different_integer_types():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(pl.DataFrame({"k": [1, 2]}, schema={"k": pl.Int32}), name="s")
    ctx.from_polars(
        pl.DataFrame({"k": [2, 3], "w": ["two", "three"]}, schema={"k": pl.Int64, "w": pl.String}),
        name="t",
        static=True,
    )
    assert ctx.sql("SELECT w FROM s JOIN t ON s.k = t.k").collect().rows() == [("two",)]


def test_union_all_takes_names_from_the_first_input():
    ctx = join_context()
    out = ctx.sql("SELECT k AS key, v FROM s UNION ALL SELECT name, 0 FROM t").collect()
    assert out.columns == ["key", "v"]
    assert out.height == 8


def test_limit_returns_n_rows_and_limit_on_a_changelog_takes_final_groups():
    ctx = join_context()
    assert ctx.sql("SELECT k FROM s LIMIT 2").collect().height == 2
    assert ctx.sql("SELECT k FROM s LIMIT 0").collect().height == 0
    out = ctx.sql("SELECT k, COUNT(*) AS n FROM s GROUP BY k LIMIT 2").collect()
    assert out.height == 2 and out.get_column("n").to_list() == [1, 1]


def test_static_only_query_runs_as_one_batch():
    ctx = join_context()
    assert sorted(ctx.sql("SELECT name FROM t WHERE k = 'a'").collect().rows()) == [("x",), ("y",)]


@pytest.mark.parametrize("executor", ["drizzle", "bsp", "inline"])
def test_every_executor_name_runs(executor):
    ctx = sd.Context(executor=executor, workers=2)
    ctx.from_polars([pl.DataFrame({"k": ["a", "b", "a"]})], name="s")
    assert sorted(ctx.sql("SELECT k, COUNT(*) AS n FROM s GROUP BY k").collect().rows()) == [("a", 2), ("b", 1)]


# ---------------------------------------------------------------- sinks and failures


def test_start_writes_to_a_named_sink_a_function_or_the_console(capsys):
    ctx = join_context()
    ctx.sql("CREATE SINK out WITH (connector = 'memory', id = 'semantics-out')")
    memory.clear_sink("semantics-out")
    handle = ctx.sql("SELECT k, v FROM s").start(sink="out")
    assert handle.await_termination(60)
    assert memory.sink_output("semantics-out").height == 4
    seen = []
    handle = ctx.sql("SELECT k FROM s").start(sink=lambda batch_id, frame: seen.append((batch_id, frame.height)))
    assert handle.await_termination(60)
    assert seen == [(0, 4)]
    handle = ctx.sql("SELECT v FROM s WHERE v = 4").start()
    assert handle.await_termination(60)
    assert "batch 0" in capsys.readouterr().out


def test_insert_into_starts_the_query():
    ctx = join_context()
    ctx.sql("CREATE SINK out2 WITH (connector = 'memory', id = 'semantics-insert')")
    memory.clear_sink("semantics-insert")
    handle = ctx.sql("INSERT INTO out2 SELECT k FROM s WHERE v > 1")
    assert handle.await_termination(60)
    assert memory.sink_output("semantics-insert").height == 3


def test_unknown_connector_names_the_known_ones():
    with pytest.raises(ConnectorError, match="unknown connector 'nope'.*known connectors: ") as raised:
        start(Scan(memory.source_def("x", pl.DataFrame({"a": [1]}))), sink=_sink_def("nope"))
    known = str(raised.value).split("known connectors: ")[1].split(", ")
    assert {"console", "files", "generator", "memory"} <= set(known)


def _sink_def(connector: str):
    from stream_dsl.ir.definitions import SinkDef

    return SinkDef("bad", (("connector", connector),))


def test_failure_in_an_aggregate_argument_names_the_operator():
    ctx = sd.Context(executor="inline", workers=2)
    ctx.from_polars([pl.DataFrame({"k": ["a"], "s": ["oops"]})], name="s")
    with pytest.raises(ExecutionError, match=r"Project .*CAST\(s AS DOUBLE\).*cannot CAST 'oops' to DOUBLE"):
        ctx.sql("SELECT k, SUM(CAST(s AS DOUBLE)) AS total FROM s GROUP BY k").collect()


def test_results_match_duckdb_for_a_having_over_a_join():
    ctx = join_context()
    sql = "SELECT name, SUM(v) AS total FROM s JOIN t ON s.k = t.k GROUP BY name HAVING SUM(v) > 1"
    con = duckdb.connect()
    con.execute("CREATE TABLE s (k VARCHAR, v BIGINT); CREATE TABLE t (k VARCHAR, name VARCHAR)")
    con.execute("INSERT INTO s VALUES ('a', 1), ('b', 2), (NULL, 3), ('c', 4)")
    con.execute("INSERT INTO t VALUES ('a', 'x'), ('a', 'y'), ('b', 'z'), (NULL, 'n')")
    assert sorted(ctx.sql(sql).collect().rows()) == sorted(con.execute(sql).fetchall())


def test_expression_columns_use_declared_types():
    ctx = join_context()
    out = ctx.sql("SELECT CAST(v AS INT) AS i, v / 2 AS h, CAST(v AS STRING) AS s FROM s").collect()
    assert out.schema == pl.Schema({"i": pl.Int32, "h": pl.Float64, "s": pl.String})
    assert E.Column("v", T.BIGINT).dtype is T.BIGINT


def test_explain_analyze_runs_the_query_and_reports_metrics():
    ctx = join_context()
    text = ctx.sql("EXPLAIN ANALYZE SELECT k, COUNT(*) AS n FROM s GROUP BY k")
    assert "== Stages ==" in text and "== Metrics ==" in text
    assert "batches=1 rows_in=4 rows_out=4 result_rows=4 late_rows=0 dead_letters=0" in text
    assert "Stage 0 rows_out=4" in text


def test_collect_of_an_unbounded_changelog_is_refused_even_with_a_limit():
    from stream_dsl.errors import PlanError

    ctx = join_context()
    ctx.catalog.sources["s"] = _with_option(ctx.catalog.sources["s"], bounded="false")
    with pytest.raises(PlanError, match="bounded"):
        ctx.sql("SELECT k, COUNT(*) AS n FROM s GROUP BY k LIMIT 1").collect()
    assert ctx.sql("SELECT k FROM s LIMIT 2").collect().height == 2


# ---------------------------------------------------------------- ORDER BY in a continuous query


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_a_continuous_query_sorts_each_batch_and_refuses_order_by_with_limit(executor):
    ctx = sd.Context(executor=executor, workers=2, group_size=2)
    batches = [pl.DataFrame({"v": [3, 1, None, 2]}), pl.DataFrame({"v": [9, 5]}), pl.DataFrame({"v": [0, 7, 4]})]
    ctx.from_polars(batches, name="s")
    written: dict[int, list] = {}
    handle = ctx.sql("SELECT v FROM s ORDER BY v DESC").start(lambda b, f: written.__setitem__(b, f["v"].to_list()))
    assert handle.await_termination(120)
    assert [written[b] for b in sorted(written)] == [[3, 2, 1, None], [9, 5], [7, 4, 0]]
    with pytest.raises(sd.DSLError, match="ORDER BY with LIMIT needs the whole result"):
        ctx.sql("SELECT v FROM s ORDER BY v LIMIT 2").start(lambda b, f: None)
    assert ctx.sql("SELECT v FROM s ORDER BY v LIMIT 2").collect()["v"].to_list() == [0, 1]


def test_order_by_with_limit_over_an_unbounded_stream_is_refused_by_collect():
    ctx = sd.Context(executor="inline")
    ctx.sql("CREATE STREAM g (ad_id STRING) WITH (connector = 'generator', kind = 'ysb', realtime = 'false')")
    assert ctx.sql("SELECT ad_id FROM g LIMIT 3").collect().height == 3  # a LIMIT alone ends the stream
    with pytest.raises(sd.DSLError, match="ORDER BY needs the whole result, so its LIMIT cannot end the stream"):
        ctx.sql("SELECT ad_id FROM g ORDER BY ad_id LIMIT 3").collect()
