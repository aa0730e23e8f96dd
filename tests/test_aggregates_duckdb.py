"""The aggregates of `stream_dsl.ir.aggregates_more` against DuckDB, windowed and not, in one and two phases.

Hypothesis makes data with NULLs, extremes (±2^53 and 10^15 integers,
±1e100 doubles), groups of one row and groups whose values are all NULL,
and cuts it into random micro-batches. Every query runs with 1 and 3
workers, with the optimizer off, on, and on with two-phase aggregation
forced (the split's cost guard says yes to everything). The
inline executor runs the hypothesis examples; drizzle and bsp run a fixed
dataset (`test_every_executor`) and a checkpoint/restart.

The stream always has a watermark on `ts` (so FIRST_VALUE & co. order by
event time even without a window): with `ordered` data it follows the rows
with no delay (windows close and leave the state while the data streams),
otherwise with a delay above the data's span (windows close at the end).
Event times are unique, so rows never tie and the order is one on every
worker count. DuckDB's oracle: `first(x ORDER BY ts)`, `quantile_cont`,
`count(DISTINCT x)` for our exact APPROX_COUNT_DISTINCT. Floats match with a
tolerance relative to the data's scale: the variances by Chan's merge and
DuckDB's by Welford's round differently.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import math
import random
from dataclasses import dataclass
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

import stream_dsl as sd
from executor.api import collect
from optimizer.cost import FORCE, CostModel
from stream_dsl.config import RunConfig
from stream_dsl.ir.aggregates_more import MORE_AGGREGATES
from stream_dsl.repl.render import frame_csv, frame_view
from budget import examples
from batch_cuts import cut_into_batches
from differential.reference import duckdb_connection, duckdb_table

BASE = dt.datetime(2024, 1, 1)
SCHEMA = {"k": pl.String, "i": pl.Int64, "d": pl.Float64, "s": pl.String, "ts": pl.Datetime("ms")}
DUCK_SCHEMA = "k VARCHAR, i BIGINT, d DOUBLE, s VARCHAR, ts TIMESTAMP"
SPAN_MS = 40_000

# Ours and DuckDB's, column for column. A column named v_* is a variance, sd_* a standard deviation.
STATS = (
    "STDDEV(i) AS sd_i, STDDEV_POP(d) AS sd_pd, VARIANCE(d) AS v_d, VAR_POP(i) AS v_pi, "
    "APPROX_COUNT_DISTINCT(s) AS acd, MEDIAN(d) AS med, APPROX_PERCENTILE(i, 0.3) AS p30, "
    "APPROX_QUANTILE(d, 1) AS p100"
)
STATS_DUCK = (
    "STDDEV_SAMP(i) AS sd_i, STDDEV_POP(d) AS sd_pd, VAR_SAMP(d) AS v_d, VAR_POP(i) AS v_pi, "
    "COUNT(DISTINCT s) AS acd, MEDIAN(d) AS med, QUANTILE_CONT(i, 0.3) AS p30, QUANTILE_CONT(d, 1) AS p100"
)
ORDERED = "FIRST_VALUE(i) AS f, LAST_VALUE(s) AS l, ARRAY_AGG(d) AS arr, STRING_AGG(s, '|') AS sa, STRING_AGG(s) AS sc"
ORDERED_DUCK = (
    "first(i ORDER BY ts) AS f, last(s ORDER BY ts) AS l, array_agg(d ORDER BY ts) AS arr, "
    "string_agg(s, '|' ORDER BY ts) AS sa, string_agg(s, ',' ORDER BY ts) AS sc"
)
ALL = f"COUNT(*) AS n, {STATS}, {ORDERED}"
ALL_DUCK = f"COUNT(*) AS n, {STATS_DUCK}, {ORDERED_DUCK}"


@dataclass(frozen=True)
class Q:
    name: str
    dsl: str
    duck: str
    keys: int  # the leading columns that identify a row


def _windowed(windows: str, group: str) -> str:
    """DuckDB: the rows of `s` with their window bounds `ws`, `we` (epoch ms) as a CTE `w`, grouped by `group`."""
    return (
        f"WITH e AS (SELECT *, epoch_ms(ts) AS t FROM s), w AS ({windows}) "
        f"SELECT {group}, ws AS window_start, we AS window_end, {ALL_DUCK} FROM w GROUP BY {group}, ws, we"
    )


SESSION = (
    "WITH e AS (SELECT *, epoch_ms(ts) AS t FROM s), "
    "f AS (SELECT *, CASE WHEN t - LAG(t) OVER (PARTITION BY k ORDER BY t) < 3000 THEN 0 ELSE 1 END AS brk FROM e), "
    "g AS (SELECT *, SUM(brk) OVER (PARTITION BY k ORDER BY t ROWS UNBOUNDED PRECEDING) AS sid FROM f) "
    f"SELECT k, MIN(t) AS window_start, MAX(t) + 3000 AS window_end, {ALL_DUCK} FROM g GROUP BY k, sid"
)
QUERIES = [
    Q("group_by", f"SELECT k, {ALL} FROM s GROUP BY k", f"SELECT k, {ALL_DUCK} FROM s GROUP BY k", 1),
    Q("global", f"SELECT {ALL} FROM s", f"SELECT {ALL_DUCK} FROM s", 0),
    Q(
        "tumble",
        f"SELECT k, window_start, window_end, {ALL} FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)",
        _windowed("SELECT *, t - t % 10000 AS ws, t - t % 10000 + 10000 AS we FROM e", "k"),
        3,
    ),
    Q(
        "tumble_changes",
        f"SELECT k, window_start, window_end, {ALL} FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND) EMIT CHANGES",
        _windowed("SELECT *, t - t % 10000 AS ws, t - t % 10000 + 10000 AS we FROM e", "k"),
        3,
    ),
    Q(  # COUNT(DISTINCT) takes the unfused step (and a partial grouped on s too)
        "tumble_with_distinct",
        f"SELECT k, window_start, window_end, COUNT(DISTINCT s) AS ds, {ALL} FROM s "
        "GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)",
        _windowed("SELECT *, t - t % 10000 AS ws, t - t % 10000 + 10000 AS we FROM e", "k").replace(
            "window_end, COUNT(*)", "window_end, COUNT(DISTINCT s) AS ds, COUNT(*)"
        ),
        3,
    ),
    Q(
        "hop",
        f"SELECT k, window_start, window_end, {ALL} FROM s "
        "GROUP BY k, HOP(ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND)",
        _windowed(
            "SELECT *, ws + 15000 AS we FROM (SELECT *, unnest(range(t - t % 5000, t - 15000, -5000)) AS ws FROM e)",
            "k",
        ),
        3,
    ),
    Q(
        "cumulate",
        f"SELECT window_start, window_end, {ALL} FROM s "
        "GROUP BY CUMULATE(ts, INTERVAL '4' SECOND, INTERVAL '12' SECOND)",
        _windowed(
            "SELECT *, t - t % 12000 AS ws FROM (SELECT *, unnest(range(t - t % 12000 + (t % 12000) // 4000 * 4000 "
            "+ 4000, t - t % 12000 + 12001, 4000)) AS we FROM e)",
            "'all'",
        ).replace("SELECT 'all', ", "SELECT "),
        2,
    ),
    Q(
        "session",
        f"SELECT k, window_start, window_end, {ALL} FROM s GROUP BY k, SESSION(ts, INTERVAL '3' SECOND)",
        SESSION,
        3,
    ),
]


# ---------------------------------------------------------------- data

INTEGERS = st.one_of(st.none(), st.integers(-4, 6), st.sampled_from([2**53, -(2**53), 10**15, -(10**12)]))
DOUBLES = st.one_of(
    st.none(), st.integers(-8, 8).map(lambda x: x / 2), st.sampled_from([1e100, -1e100, 1e-100, -0.0, 123456.789])
)
STRINGS = st.one_of(st.none(), st.text(alphabet="ab,é", max_size=3))


@st.composite
def datasets(draw):
    n = draw(st.integers(0, 30))
    times = draw(st.lists(st.integers(0, SPAN_MS), min_size=n, max_size=n, unique=True))
    # key 'z' holds only NULL values
    keys = draw(st.lists(st.sampled_from(["a", "b", "c", "z", None]), min_size=n, max_size=n))
    rows = {
        "k": keys,
        "i": [None if k == "z" else draw(INTEGERS) for k in keys],
        "d": [None if k == "z" else draw(DOUBLES) for k in keys],
        "s": [None if k == "z" else draw(STRINGS) for k in keys],
        "ts": [BASE + dt.timedelta(milliseconds=m) for m in times],
    }
    frame = pl.DataFrame(rows, schema=SCHEMA)
    ordered = draw(st.booleans())
    if ordered:
        frame = frame.sort("ts")
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    return frame, cut_into_batches(frame, cuts), ordered


def engine(batches: list[pl.DataFrame], ordered: bool) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=1)
    delay = "0s" if ordered else f"{SPAN_MS + 1000}ms"
    ctx.from_polars(batches, name="s", watermark="ts", watermark_delay=delay)
    return ctx


def duckdb_rows(sql: str, frame: pl.DataFrame) -> list[tuple]:
    con = duckdb_connection()
    duckdb_table(con, "s", DUCK_SCHEMA, frame.rows())
    return con.execute(sql).fetchall()


@contextlib.contextmanager
def two_phase_forced():
    """The split's cost guard says yes to every valid split (small test data never pays by the estimate)."""
    with mock.patch.object(CostModel, "from_config", classmethod(lambda cls, config: FORCE)):
        yield


# ---------------------------------------------------------------- comparison


def _epoch(v):
    return int((v - dt.datetime(1970, 1, 1)).total_seconds() * 1000) if isinstance(v, dt.datetime) else v


def _sort_key(row: tuple, keys: int) -> tuple:
    return tuple((v is None, "" if v is None else v) for v in row[:keys])


def _close(ours, theirs, tolerance: float) -> bool:
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(_close(a, b, tolerance) for a, b in zip(ours, theirs))
    if isinstance(ours, float) and isinstance(theirs, (int, float)) and theirs is not None:
        if math.isnan(ours) or math.isnan(theirs):
            return math.isnan(ours) and math.isnan(theirs)
        return math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=tolerance)
    return ours == theirs


def assert_same(ours: pl.DataFrame, theirs: list[tuple], keys: int, scale: float, context: str) -> None:
    """Row for row by the key columns; floats within a tolerance of the data's `scale` (see the module doc)."""
    names = ours.columns
    mine = sorted((tuple(_epoch(v) for v in r) for r in ours.rows()), key=lambda r: _sort_key(r, keys))
    expected = sorted((tuple(_epoch(v) for v in r) for r in theirs), key=lambda r: _sort_key(r, keys))
    assert len(mine) == len(expected), f"{context}: {len(mine)} rows vs DuckDB's {len(expected)}\n{mine}\n{expected}"
    for a, b in zip(mine, expected):
        for name, x, y in zip(names, a, b):
            tolerance = 1e-12 * scale**2 if name.startswith("v_") else 1e-6 * scale if name.startswith("sd_") else 0
            assert _close(x, y, max(tolerance, 1e-9)), f"{context}: {name} = {x!r}, DuckDB's {y!r}\n{a}\n{b}"


def data_scale(frame: pl.DataFrame) -> float:
    values = [abs(float(v)) for c in ("i", "d") for v in frame.get_column(c).to_list() if v is not None]
    return max(values, default=1.0)


RUNS = (  # (workers, optimize, two phase forced)
    (1, True, False),
    (3, True, True),
    (3, False, False),
)


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_new_aggregates_match_duckdb(query, data):
    frame, batches, ordered = data
    expected = duckdb_rows(query.duck, frame)
    for workers, optimize, forced in RUNS:
        with two_phase_forced() if forced else contextlib.nullcontext():
            plan = engine(batches, ordered).sql(query.dsl).plan
            result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        context = f"{query.name} workers={workers} optimize={optimize} two-phase={forced} batches={len(batches)}"
        assert_same(result, expected, query.keys, data_scale(frame), context)


def fixed_dataset(rows: int = 120, seed: int = 5) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """A dataset of every kind of value the hypothesis strategy draws, cut into uneven batches."""
    rng = random.Random(seed)
    integers, doubles = [None, -3, 0, 5, 2**53, -(10**12)], [None, -0.5, 2.5, 1e100, -1e100, 123456.789]
    times = sorted(rng.sample(range(SPAN_MS), rows))
    keys = [rng.choice(["a", "b", "c", "z", None]) for _ in range(rows)]
    frame = pl.DataFrame(
        {
            "k": keys,
            "i": [None if k == "z" else rng.choice(integers) for k in keys],
            "d": [None if k == "z" else rng.choice(doubles) for k in keys],
            "s": [None if k == "z" else rng.choice([None, "", "a", "é,b"]) for k in keys],
            "ts": [BASE + dt.timedelta(milliseconds=t) for t in times],
        },
        schema=SCHEMA,
    )
    cuts = [0, 7, 8, 50, 51, 90, rows]
    return frame, [frame.slice(a, b - a) for a, b in zip(cuts, cuts[1:])]


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_every_executor(executor, warm_workers):
    """The fixed dataset through every executor, 1 and 3 workers, one and two phases, windowed or not."""
    frame, batches = fixed_dataset()
    for query in (q for q in QUERIES if q.name in ("group_by", "tumble_changes", "session")):
        expected = duckdb_rows(query.duck, frame)
        for workers, optimize, forced in ((1, True, True), (3, True, True), (3, False, False)):
            with two_phase_forced() if forced else contextlib.nullcontext():
                plan = engine(batches, True).sql(query.dsl).plan
                result = collect(
                    plan, RunConfig(workers=workers, executor=executor, optimize=optimize), pool=lambda: warm_workers
                )
            context = f"{query.name} {executor} workers={workers} optimize={optimize} two-phase={forced}"
            assert_same(result, expected, query.keys, data_scale(frame), context)


@pytest.mark.parametrize("name", ["group_by", "global", "tumble"])
def test_forcing_splits_into_two_phases(name):
    """The forced runs above do run two-phase where a split is valid (non-windowed and TUMBLE)."""
    query = next(q for q in QUERIES if q.name == name)
    with two_phase_forced():
        text = engine([pl.DataFrame(schema=SCHEMA)], True).sql(query.dsl).explain()
    assert "PartialAggregate" in text and "FinalAggregate" in text


def test_ties_keep_arrival_order_in_one_worker():
    """Rows of one event time: FIRST_VALUE, LAST_VALUE, ARRAY_AGG take them in the order they arrived."""
    frame = pl.DataFrame(
        {"k": ["a"] * 4, "i": [3, 1, 2, 5], "d": [None] * 4, "s": ["x", "y", None, "w"], "ts": [BASE] * 4},
        schema=SCHEMA,
    )
    query = "SELECT FIRST_VALUE(i) AS f, LAST_VALUE(i) AS l, ARRAY_AGG(i) AS a, STRING_AGG(s, '') AS s FROM s"
    for sql in (query, query + " GROUP BY TUMBLE(ts, INTERVAL '1' SECOND)"):
        for cut in (1, 2, 3):
            out = engine([frame[:cut], frame[cut:]], True).sql(sql).collect()
            assert out.rows() == [(3, 5, [3, 1, 2, 5], "xyw")], (sql, cut)


def test_list_type_is_shown_and_collected():
    ctx = engine([pl.DataFrame(schema=SCHEMA)], True)
    stream = ctx.sql("SELECT k, ARRAY_AGG(i) AS a, ARRAY_AGG(s) AS b FROM s GROUP BY k")
    assert str(stream.plan.schema) == "k: STRING, a: BIGINT[], b: STRING[]"
    assert stream.collect().schema == {"k": pl.String, "a": pl.List(pl.Int64), "b": pl.List(pl.String)}
    ctx.sql("CREATE VIEW lists AS SELECT k, ARRAY_AGG(i) AS a, ARRAY_AGG(ts) AS t FROM s GROUP BY k")
    assert ctx.sql("DESCRIBE lists").rows() == [("k", "STRING"), ("a", "BIGINT[]"), ("t", "TIMESTAMP[]")]


def test_lists_render_in_the_repl_as_duckdb_prints_them():
    frame = pl.DataFrame({"a": [[1, None, 3], None], "b": [["x", "y"], []]})
    console = Console(width=60, record=True)
    console.print(frame_view(frame))
    text = console.export_text()
    assert "BIGINT[]" in text and "STRING[]" in text and "[1, NULL, 3]" in text and "[x, y]" in text
    assert frame_csv(frame) == 'a,b\n"[1, NULL, 3]","[x, y]"\n,[]\n'


BAD = [
    ("SELECT APPROX_PERCENTILE(i) FROM s", "APPROX_PERCENTILE takes exactly two arguments, got 1"),
    ("SELECT APPROX_PERCENTILE(i, 2) FROM s", "must be a number from 0 to 1"),
    ("SELECT APPROX_PERCENTILE(i, d) FROM s", "second argument must be a constant"),
    ("SELECT STRING_AGG(s, 1) FROM s", "separator must be a string"),
    ("SELECT STRING_AGG(i) FROM s", "STRING_AGG needs a string, got BIGINT"),
    ("SELECT STDDEV(s) FROM s", "STDDEV_SAMP needs a number, got STRING"),
    ("SELECT MEDIAN(DISTINCT d) FROM s", "DISTINCT is supported in COUNT only"),
    ("SELECT MEDIAN(d, 1) FROM s", "MEDIAN takes exactly one argument, got 2"),
]


@pytest.mark.parametrize("sql, message", BAD)
def test_positioned_errors(sql, message):
    ctx = engine([pl.DataFrame(schema=SCHEMA)], True)
    with pytest.raises(sd.errors.BindError) as raised:
        ctx.sql(sql)
    assert message in str(raised.value) and raised.value.line == 1 and raised.value.column == 8


def test_dataframe_api_builds_the_sql_plan():
    """sd.median("x") and the polars spellings (`std`, `quantile`, `str.join`, ...) bind as the SQL aggregates."""
    ctx = engine([pl.DataFrame(schema=SCHEMA)], True)
    api = (
        ctx.stream("s")
        .group_by("k")
        .agg(
            sd.col("d").std().alias("a"),
            sd.col("d").var(ddof=0).alias("b"),
            sd.col("i").quantile(0.25).alias("c"),
            sd.col("s").approx_n_unique().alias("e"),
            sd.col("i").first().alias("f"),
            sd.col("i").last().alias("g"),
            sd.col("d").implode().alias("h"),
            sd.col("s").str.join("-").alias("j"),
            sd.median("d").alias("m"),
            sd.stddev_pop("d").alias("n"),
            sd.string_agg("s").alias("o"),
        )
    )
    sql = ctx.sql(
        "SELECT k, STDDEV_SAMP(d) AS a, VAR_POP(d) AS b, APPROX_PERCENTILE(i, 0.25) AS c, "
        "APPROX_COUNT_DISTINCT(s) AS e, FIRST_VALUE(i) AS f, LAST_VALUE(i) AS g, ARRAY_AGG(d) AS h, "
        "STRING_AGG(s, '-') AS j, MEDIAN(d) AS m, STDDEV_POP(d) AS n, STRING_AGG(s, ',') AS o FROM s GROUP BY k"
    )
    assert api.plan == sql.plan


@pytest.mark.parametrize("name", sorted(MORE_AGGREGATES))
def test_describe_function_examples_hold(name):
    """Each `example` of DESCRIBE FUNCTION ('call over v1, v2, ... = result') is what the engine computes."""
    call, rest = MORE_AGGREGATES[name].example.split(" over ")
    values, result = rest.rsplit(" = ", 1)
    literal = ast.literal_eval(f"[{values.replace('NULL', 'None')}]")
    column = pl.Series("x", literal, dtype=pl.String if isinstance(literal[0], str) else pl.Int64)
    times = pl.Series("ts", [BASE + dt.timedelta(seconds=j) for j in range(len(literal))])
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(pl.DataFrame([column, times]), name="v", watermark="ts")
    value = ctx.sql(f"SELECT {call} AS r FROM v").collect().to_series().to_list()
    assert value == [ast.literal_eval(result.replace("NULL", "None"))]


@pytest.mark.parametrize(
    "call, expected",
    [
        ("STRING_AGG(NULL)", [None, None]),
        ("ARRAY_AGG(NULL)", [[None, None], [None]]),
        ("MEDIAN(NULL)", [None, None]),
        ("APPROX_COUNT_DISTINCT(NULL)", [0, 0]),
        ("STDDEV_POP(NULL)", [None, None]),
        ("FIRST_VALUE(NULL)", [None, None]),
        ("ARRAY_AGG(i > 0)", [[True, False], [True]]),
        ("APPROX_COUNT_DISTINCT(ts)", [2, 1]),
    ],
)
def test_null_literal_and_other_argument_types(call, expected):
    frame = pl.DataFrame(
        {"k": ["a", "a", "b"], "i": [1, 0, 3], "d": [None] * 3, "s": [None] * 3, "ts": [BASE, BASE, BASE]},
        schema=SCHEMA,
    ).with_columns(pl.col("ts") + pl.duration(seconds=pl.int_range(3)))
    ctx = engine([frame[:1], frame[1:]], False)
    for window in ("", ", TUMBLE(ts, INTERVAL '1' MINUTE)"):
        out = ctx.sql(f"SELECT k, {call} AS x FROM s GROUP BY k{window}").collect().sort("k")
        assert out.get_column("x").to_list() == expected, window


def test_show_and_describe_function_list_every_new_aggregate():
    ctx = sd.Context(executor="inline", workers=1)
    shown = {r[0]: r for r in ctx.sql("SHOW FUNCTIONS").rows()}
    for name, info in MORE_AGGREGATES.items():
        assert shown[name][1:] == ("aggregate", info.signature, info.description)
        described = dict(ctx.sql(f"DESCRIBE FUNCTION {name}").rows())
        assert described["example"] == info.example and described["state"] == info.state
    assert dict(ctx.sql("DESCRIBE FUNCTION variance").rows())["alias of"] == "var_samp"
