"""Top-N per window, QUALIFY and deduplication (ROW_NUMBER() OVER ...): DuckDB as the oracle, watermarks, TTL.

The differential tests reuse test_differential's data (random values, random
micro-batch splits, ordered data with a watermark or unordered data without),
run every query with 1 and 3 workers and the optimizer on and off, and on the
multiprocess executors for a few examples. The engine breaks ties in the
ORDER BY by the other columns (ascending, NULLs last; `executor/state/top_n.py`);
DuckDB breaks them arbitrarily, so its query orders by those columns too.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings

import stream_dsl as sd
from budget import examples
from executor.api import collect
from executor.state.top_n import TopNState
from executor.state.snapshots import restore_state, snapshot_state
from optimizer.physical.lower import lower
from optimizer.physical.stages import TopNOp
from stream_dsl.config import RunConfig
from stream_dsl.errors import BindError, DSLError
import recovery_script as R
from stream_dsl.connectors import files
from test_differential import Q, assert_same_rows, datasets, duckdb_rows, engine, tumble
from test_recovery import finish, stop_midway

WINDOW_AGG = (
    "SELECT k, window_start, window_end, COUNT(*) AS n, SUM(i) AS si FROM s "
    "GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"
)
WINDOW_AGG_DUCK = tumble(10_000, "k, {ws} AS window_start, {we} AS window_end, COUNT(*) AS n, SUM(i) AS si", "k, ws")
PAIR_AGG = (
    "SELECT k, s2, window_start, window_end, SUM(i) AS si FROM s GROUP BY k, s2, TUMBLE(ts, INTERVAL '10' SECOND)"
)
PAIR_AGG_DUCK = tumble(10_000, "k, s2, {ws} AS window_start, {we} AS window_end, SUM(i) AS si", "k, s2, ws")

QUERIES = [
    Q(
        "window_top_2",
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n DESC, k) "
        f"AS rn FROM ({WINDOW_AGG})) WHERE rn <= 2",
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n DESC, k) "
        f"AS rn FROM ({WINDOW_AGG_DUCK})) WHERE rn <= 2",
    ),
    Q(
        "window_top_per_key_rn_not_selected",
        "SELECT k, s2, window_start, si FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, k "
        f"ORDER BY si DESC, s2) AS rn FROM ({PAIR_AGG})) WHERE rn < 3",
        "SELECT k, s2, window_start, si FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, k "
        f"ORDER BY si DESC, s2) AS rn FROM ({PAIR_AGG_DUCK})) WHERE rn < 3",
    ),
    Q(
        "window_top_1_with_other_conditions",
        "SELECT k, window_start, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end "
        f"ORDER BY si NULLS FIRST, k) AS rn FROM ({WINDOW_AGG})) AS r WHERE r.rn = 1 AND n > 1",
        "SELECT k, window_start, n FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end "
        f"ORDER BY si NULLS FIRST, k) AS rn FROM ({WINDOW_AGG_DUCK})) AS r WHERE r.rn = 1 AND n > 1",
    ),
    Q(
        "qualify_window",
        f"SELECT k, window_start, n FROM ({WINDOW_AGG}) "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n, k DESC) <= 2",
        f"SELECT k, window_start, n FROM ({WINDOW_AGG_DUCK}) "
        "QUALIFY ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n, k DESC) <= 2",
    ),
    Q(
        "qualify_alias",
        f"SELECT k, window_end, si, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY si DESC, k) "
        f"AS pos FROM ({WINDOW_AGG}) QUALIFY pos <= 2",
        f"SELECT k, window_end, si, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY si DESC, k) "
        f"AS pos FROM ({WINDOW_AGG_DUCK}) QUALIFY pos <= 2",
    ),
    Q(
        "hop_top_1",
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n DESC, k) AS rn "
        "FROM (SELECT k, window_start, window_end, COUNT(*) AS n FROM s "
        "GROUP BY k, HOP(ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND))) WHERE rn = 1",
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n DESC, k) AS rn "
        "FROM (SELECT k, epoch_ms(ws) AS window_start, epoch_ms(ws + 15000) AS window_end, COUNT(*) AS n FROM "
        "(SELECT *, unnest(range(epoch_ms(ts) - epoch_ms(ts) % 5000, epoch_ms(ts) - 15000, -5000)) AS ws FROM s) "
        "GROUP BY k, ws)) WHERE rn = 1",
    ),
    Q(
        "dedup_first_per_key",
        "SELECT k, i, ts FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rn FROM s) WHERE rn = 1",
        "SELECT k, i, ts FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts, i, d, s2) AS rn FROM s) "
        "WHERE rn = 1",
    ),
    Q(
        "dedup_qualify_two_keys",
        "SELECT * FROM s WHERE i IS NOT NULL QUALIFY ROW_NUMBER() OVER (PARTITION BY k, s2 ORDER BY ts, i) = 1",
        "SELECT * FROM s WHERE i IS NOT NULL QUALIFY ROW_NUMBER() OVER (PARTITION BY k, s2 ORDER BY ts, i, d) = 1",
    ),
    Q(
        "dedup_then_count",
        "SELECT s2, COUNT(*) AS n FROM (SELECT * FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) = 1) "
        "GROUP BY s2",
        "SELECT s2, COUNT(*) AS n FROM (SELECT * FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k "
        "ORDER BY ts, i, d, s2) = 1) GROUP BY s2",
    ),
]


BY_NAME = {q.name: q for q in QUERIES}


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
@settings(max_examples=examples(5), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_top_n_and_dedup_match_duckdb_for_every_split(query, data):
    frame, batches, table, ordered = data
    plan = engine(batches, table, ordered).sql(query.dsl).plan
    expected = duckdb_rows(query.duck, frame, table)
    for workers, optimize in ((1, True), (3, True), (3, False)):
        result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert result.columns == list(plan.schema.names)
        context = f"{query.name} workers={workers} optimize={optimize} batches={len(batches)} ordered={ordered}"
        assert_same_rows(result.rows(), expected, context)


def on_time(batches: list[pl.DataFrame], delay_ms: int) -> pl.DataFrame:
    """The rows no watermark made late: a row is late when its time is before the max time of the earlier
    batches minus the delay (the watermark at the end of the batch before it)."""
    kept, latest = [], None
    for batch in batches:
        if latest is not None:
            batch = batch.filter(pl.col("ts") >= latest - dt.timedelta(milliseconds=delay_ms))
        kept.append(batch)
        top = batch.get_column("ts").max() if batch.height else None
        latest = top if latest is None or (top is not None and top > latest) else latest
    return pl.concat(kept)


@pytest.mark.parametrize("delay_ms", [0, 3_000])
@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_dedup_of_out_of_order_rows_under_a_watermark_is_duckdbs_over_the_rows_on_time(delay_ms, data):
    """Rows come in any order; a later batch may hold a key's smaller time, unless the watermark made it late."""
    _, batches, table, _ = data
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(batches, name="s", watermark="ts", watermark_delay=f"{delay_ms}ms")
    ctx.from_polars(table, name="t", static=True)
    query = BY_NAME["dedup_first_per_key"]
    plan = ctx.sql(query.dsl).plan
    expected = duckdb_rows(query.duck, on_time(batches, delay_ms), table)
    for workers, optimize in ((1, True), (3, False)):
        result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert_same_rows(result.rows(), expected, f"delay={delay_ms} workers={workers} batches={len(batches)}")


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@settings(max_examples=examples(2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_top_n_and_dedup_match_duckdb_on_the_multiprocess_executors(executor, data, warm_workers):
    frame, batches, table, ordered = data
    for query in (BY_NAME["window_top_2"], BY_NAME["dedup_first_per_key"]):
        plan = engine(batches, table, ordered).sql(query.dsl).plan
        result = collect(plan, RunConfig(workers=2, executor=executor, optimize=True), pool=lambda: warm_workers)
        assert_same_rows(result.rows(), duckdb_rows(query.duck, frame, table), f"{query.name} {executor}")


# ---------------------------------------------------------------- the dataframe API builds the same plans


def _api_context() -> sd.Context:
    ctx = sd.Context(executor="inline", workers=1)
    t0 = dt.datetime(2024, 1, 1)
    frame = pl.DataFrame({"k": ["a"], "i": [1], "ts": [t0]}, schema={"k": pl.String, "i": pl.Int64, "ts": pl.Datetime})
    ctx.from_polars([frame], name="s", watermark="ts")
    return ctx


def test_top_k_and_unique_build_the_sql_plans():
    ctx = _api_context()
    agg = "SELECT k, window_start, window_end, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"
    sql = ctx.sql(
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY n DESC) AS rn "
        f"FROM ({agg})) WHERE rn <= 3"
    )
    assert ctx.sql(agg).top_k(3, by="n", number="rn").plan == sql.plan
    qualify = ctx.sql(f"SELECT * FROM ({agg}) QUALIFY ROW_NUMBER() OVER (PARTITION BY window_start, window_end, k "
                      "ORDER BY n) <= 2")  # fmt: skip
    assert ctx.sql(agg).top_k(2, by="n", partition_by="k", descending=False).plan == qualify.plan
    dedup = ctx.sql("SELECT * FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) = 1")
    assert ctx.stream("s").unique(subset=["k"], keep="first", order_by="ts").plan == dedup.plan
    assert ctx.stream("s").unique().plan == ctx.sql("SELECT DISTINCT * FROM s").plan


def test_the_api_refuses_what_the_sql_refuses():
    ctx = _api_context()
    with pytest.raises(DSLError, match="keep='last'"):
        ctx.stream("s").unique(subset="k", keep="last", order_by="ts")
    with pytest.raises(DSLError, match="order_by="):
        ctx.stream("s").unique(subset="k")
    with pytest.raises(DSLError, match="windowed aggregate"):
        ctx.stream("s").top_k(2, by="i")


# ---------------------------------------------------------------- refusals, positioned


@pytest.mark.parametrize(
    ("sql", "message", "column"),
    [
        ("SELECT k, ROW_NUMBER() OVER (ORDER BY ts) AS rn FROM s", "supported only to keep the first rows", 11),
        ("SELECT * FROM s WHERE ROW_NUMBER() OVER (ORDER BY ts) = 1", "supported only to keep the first rows", 23),
        ("SELECT * FROM s QUALIFY DENSE_RANK() OVER (PARTITION BY k ORDER BY ts) = 1", "DENSE_RANK() OVER", 25),
        ("SELECT * FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) > 1", "filter the row number", 25),
        ("SELECT * FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k) = 1", "needs ORDER BY", 25),
        ("SELECT * FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY i) = 1", "TIMESTAMP", 68),
        ("SELECT * FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k || 'x' ORDER BY ts) = 1", "takes columns", 57),
        (
            "SELECT k, COUNT(*) AS n FROM s GROUP BY k QUALIFY ROW_NUMBER() OVER (ORDER BY ts) = 1",
            "aggregation in the same SELECT",
            51,
        ),
        (
            "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY i) AS rn "
            "FROM (SELECT *, ts AS window_start, ts AS window_end FROM s)) WHERE rn <= 2",
            "windowed aggregate",
            26,
        ),
        ("SELECT * FROM (SELECT *, ROW_NUMBER() OVER (ORDER BY ts) FROM s) WHERE k = 'a'", "name the row number", 26),
    ],
)
def test_misuse_is_a_positioned_bind_error(sql, message, column):
    with pytest.raises(BindError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        _api_context().sql(sql)
    assert (info.value.line, info.value.column) == (1, column), str(info.value)


# ---------------------------------------------------------------- watermarks and TTL, by hand


def _op(ttl_ms: int | None = None) -> TopNOp:
    ctx = _api_context()
    plan = ctx.sql("SELECT * FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) = 1").plan
    graph = lower(plan, 1, state_ttl_ms=ttl_ms)
    return next(graph.nodes[n]["stage"].stateful for n in graph.nodes if graph.nodes[n]["stage"].stateful)


def _rows(*rows: tuple[str, int, int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"k": [r[0] for r in rows], "i": [r[1] for r in rows], "ts": [r[2] for r in rows]},
        schema={"k": pl.String, "i": pl.Int64, "ts": pl.Int64},
    ).with_columns(pl.col("ts").cast(pl.Datetime("ms")))


def _emitted(out) -> list[tuple[str, int]]:
    return sorted((k, i) for k, i, _ in out.frame.rows())


def test_dedup_waits_for_the_watermark_to_pass_a_keys_first_time():
    state = TopNState(_op())
    # batch 0: a@100 arrives; the watermark moves to 50: a smaller time may still come
    assert _emitted(state.step(_rows(("a", 1, 100)), None, 50)) == []
    # batch 1: a@60 (smaller, not late: 60 >= 50) replaces it; b@70; watermark 65: a@60 is final
    out = state.step(_rows(("a", 2, 60), ("b", 3, 70)), 50, 65)
    assert _emitted(out) == [("a", 2)]
    # batch 2: a@80 is a duplicate of an emitted key, b@40 is late (before 65); watermark 100 decides b@70
    out = state.step(_rows(("a", 4, 80), ("b", 5, 40)), 65, 100)
    assert _emitted(out) == [("b", 3)] and out.late == 1 and state.duplicates == 1
    # ties on the time: the other columns decide (i ascending), whatever the arrival order
    out = state.step(_rows(("c", 9, 200), ("c", 7, 200)), 100, 201)
    assert _emitted(out) == [("c", 7)]


def test_dedup_ttl_forgets_keys_once_the_watermark_passes_their_time_plus_ttl():
    state = TopNState(_op(ttl_ms=1_000))
    assert _emitted(state.step(_rows(("a", 1, 100)), None, 101)) == [("a", 1)]
    assert _emitted(state.step(_rows(("a", 2, 900)), 101, 1_000)) == []  # 100 + 1000 not yet passed
    assert state.seen is not None and state.seen.height == 1
    out = state.step(_rows(("a", 3, 1_500)), 1_000, 1_300)  # when it arrives, a is still remembered: a duplicate
    assert _emitted(out) == [] and state.seen.height == 0  # then a's 100 falls out of the TTL (100 < 1300 - 1000)
    out = state.step(_rows(("a", 4, 1_600)), 1_300, 1_700)
    assert _emitted(out) == [("a", 4)] and state.seen.height == 1 and state.duplicates == 2


def test_dedup_state_stays_bounded_with_a_ttl_over_a_long_run():
    """Every key is new each second; with a 5 s TTL the state holds about 5 s of keys, however long the run."""
    ttl = TopNState(_op(ttl_ms=5_000))
    forever = TopNState(_op())
    sizes, unbounded = [], []
    wm = None
    for second in range(60):
        batch = _rows(*[(f"k{second}-{j}", j, second * 1_000 + j) for j in range(20)])
        new_wm = second * 1_000 + 999
        ttl.step(batch, wm, new_wm)
        forever.step(batch, wm, new_wm)
        wm = new_wm
        sizes.append(ttl.open_groups)
        unbounded.append(forever.open_groups)
    assert max(sizes) <= 20 * 7
    assert unbounded[-1] == 20 * 60


def test_state_size_is_reported_in_progress_and_bounded_by_the_ttl():
    """The same through a running query: progress()'s state_groups stays bounded with SET state_ttl."""
    base = dt.datetime(2024, 1, 1)
    batches = [
        pl.DataFrame(
            {"k": [f"k{b}-{j}" for j in range(10)], "i": list(range(10)),
             "ts": [base + dt.timedelta(seconds=b, milliseconds=j) for j in range(10)]},
            schema={"k": pl.String, "i": pl.Int64, "ts": pl.Datetime("ms")},
        )
        for b in range(40)
    ]  # fmt: skip
    sizes = {}
    for ttl in (None, "3s"):
        ctx = sd.Context(executor="inline", workers=2, state_ttl=ttl)
        ctx.from_polars(batches, name="s", watermark="ts", watermark_delay="0s")
        q = ctx.sql("SELECT k, i FROM s QUALIFY ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) = 1")
        handle = q.start(sink=lambda batch_id, frame: None)
        assert handle.await_termination(120)
        groups = [p["state_groups"] for p in handle.progress()]
        sizes[ttl] = groups[-2]  # the last batch before the end of input clears everything
    assert sizes["3s"] <= 10 * 5 < sizes[None]


def test_a_window_top_n_ranks_a_window_once_its_end_passes():
    ctx = _api_context()
    agg = "SELECT k, window_start, window_end, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"
    plan = ctx.sql(f"SELECT * FROM ({agg}) QUALIFY ROW_NUMBER() OVER (PARTITION BY window_start, window_end "
                   "ORDER BY n DESC, k) = 1").plan  # fmt: skip
    graph = lower(plan, 1)
    op = next(
        graph.nodes[n]["stage"].stateful for n in graph.nodes if isinstance(graph.nodes[n]["stage"].stateful, TopNOp)
    )
    state = TopNState(op)
    t = dt.datetime(2024, 1, 1)
    rows = pl.DataFrame(
        {"k": ["a", "b", "c"], "window_start": [t, t, t + dt.timedelta(seconds=10)],
         "window_end": [t + dt.timedelta(seconds=10)] * 2 + [t + dt.timedelta(seconds=20)], "n": [1, 2, 5]},
        schema={"k": pl.String, "window_start": pl.Datetime("ms"), "window_end": pl.Datetime("ms"), "n": pl.Int64},
    )  # fmt: skip
    end_ms = (t - dt.datetime(1970, 1, 1)) // dt.timedelta(milliseconds=1) + 10_000
    out = state.step(rows, None, end_ms)  # the first window closes, the second waits
    assert [r[0] for r in out.frame.rows()] == ["b"] and state.pending is not None and state.pending.height == 1
    out = state.step(rows.clear(), end_ms, end_ms + 10_000)
    assert [r[0] for r in out.frame.rows()] == ["c"] and state.open_groups == 0


# ---------------------------------------------------------------- checkpoints


def test_a_snapshot_restores_a_state_that_continues_exactly():
    state = TopNState(_op(ttl_ms=10_000))
    state.step(_rows(("a", 1, 100), ("b", 2, 300)), None, 200)
    restored = restore_state(state.op, snapshot_state(state))
    assert isinstance(restored, TopNState)
    follow = _rows(("b", 0, 250), ("a", 5, 400), ("c", 1, 500))
    assert state.step(follow, 200, 1_000).frame.equals(restored.step(follow, 200, 1_000).frame)
    assert (state.duplicates, state.open_groups) == (restored.duplicates, restored.open_groups)
    with pytest.raises(ValueError):
        restore_state(state.op, {"kind": "distinct", "seen": None})


DEDUP = (
    "SELECT ad_id, event_time, user_id, event_type FROM events "
    "QUALIFY ROW_NUMBER() OVER (PARTITION BY ad_id ORDER BY event_time) = 1"
)


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_a_stop_and_restart_from_a_checkpoint_gives_the_exact_output(tmp_path, executor):
    """The recovery tests' bounded YSB stream deduplicated by ad_id; stopped after 2 checkpoints, restarted."""
    reference = R.make_context(None, executor="inline", workers=1).sql(DEDUP).collect()
    assert reference.height > 10

    def start():
        ctx = R.make_context(tmp_path / "out", executor=executor, group_size=7, checkpoint_dir=str(tmp_path / "ckpt"))
        return ctx.sql(f"INSERT INTO out {DEDUP}")

    stop_midway(start(), tmp_path / "ckpt", 2)
    handle = start()
    assert handle.restored_checkpoint is not None
    finish(handle)
    out = files.read_committed(str(tmp_path / "out"))
    assert out.height == reference.height, "rows written twice or lost across the restart"
    assert sorted(out.select(reference.columns).rows()) == sorted(reference.rows())


def test_a_dedup_that_could_never_decide_is_refused_when_it_starts_and_state_ttl_is_a_setting():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        "CREATE STREAM e (user_id STRING, event_time TIMESTAMP) "
        "WITH (connector = 'generator', kind = 'ysb', realtime = 'false')"
    )
    q = ctx.sql("SELECT * FROM e QUALIFY ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY event_time) = 1")
    with pytest.raises(DSLError, match="no key's first row would ever be decided"):
        q.start(sink=lambda batch_id, frame: None).await_termination(60)
    ctx.sql("SET state_ttl = '1 hour'")
    assert ctx.config.state_ttl_ms == 3_600_000
    assert "ttl=1h" in q.explain()
    ctx.sql("SET state_ttl = 'none'")
    assert ctx.config.state_ttl_ms is None


def test_a_with_query_that_numbers_rows_binds_as_the_subquery_form():
    ctx = _api_context()
    ranked = "SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rn FROM s"
    subquery = ctx.sql(f"SELECT k, i FROM ({ranked}) AS r WHERE r.rn = 1").plan
    assert ctx.sql(f"WITH r AS ({ranked}) SELECT k, i FROM r WHERE r.rn = 1").plan == subquery
    nested = ctx.sql(f"WITH r AS ({ranked}), d AS (SELECT * FROM r WHERE rn = 1) SELECT k, i FROM d").plan
    assert nested == subquery
    with pytest.raises(BindError, match="must be filtered") as info:
        ctx.sql(f"WITH r AS ({ranked})\nSELECT k FROM r")
    assert (info.value.line, info.value.column) == (1, 22)


def test_sources_may_release_records_while_a_top_n_holds_nothing():
    from executor.query.release import retention_ms
    from stream_dsl.connectors.base import KEEP_ALL

    state = TopNState(_op())
    assert retention_ms([state], {"ts"}) is None
    state.step(_rows(("a", 1, 100)), None, 50)  # a's first row waits for the watermark
    assert retention_ms([state], {"ts"}) == KEEP_ALL


def test_predicate_pushdown_moves_partition_conditions_below_a_top_n_and_nothing_else():
    from optimizer.rules.push_down_predicates import push_down_predicates
    from stream_dsl.ir.plan import Filter, TopN, render_plan

    ctx = _api_context()
    ranked = "SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts) AS rn FROM s"
    plan = ctx.sql(f"SELECT * FROM ({ranked}) WHERE rn = 1 AND k = 'a' AND i > 0").plan
    pushed = push_down_predicates(plan)
    assert isinstance(pushed, Filter) and "i" in str(pushed.predicate) and "'a'" not in str(pushed.predicate)
    assert isinstance(pushed.input, TopN) and pushed.input.n == 1  # rn = 1 is the TopN itself, never a filter
    assert "'a'" in render_plan(pushed.input.input)


def test_the_dataframe_examples_run():
    import doctest

    import stream_dsl.frame.ranking as ranking

    result = doctest.testmod(ranking, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
