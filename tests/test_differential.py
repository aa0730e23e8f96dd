"""Differential tests: the streaming engine against DuckDB, an engine nobody here wrote.

Hypothesis makes random data (integers and doubles with NULLs, strings from
a small alphabet, timestamps), splits it at random into micro-batches, and
every query of the family below runs through `collect()` with 1 and 3
workers (and with the optimizer off, and with small frames computed as
large ones are); each must equal DuckDB's answer over all the data at once (the
core equivalence property). Windows become arithmetic on epoch
milliseconds in DuckDB: tumble = ts - ts % size; hop = unnest of the window
starts; session = a running sum of gap breaks over LAG per key.

With `ordered` data the stream has a watermark (delay 0) and its rows come
in event-time order, so windows close early but no row is ever late;
otherwise the stream has no watermark and windows close at end of input.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from unittest import mock

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor import kernels
from executor.api import collect
from stream_dsl.config import RunConfig
from budget import examples
from batch_cuts import cut_into_batches
from differential.reference import duckdb_connection, duckdb_table

BASE = dt.datetime(2024, 1, 1)
S_SCHEMA = {"k": pl.String, "i": pl.Int64, "d": pl.Float64, "s2": pl.String, "ts": pl.Datetime("ms")}
T_SCHEMA = {"k": pl.String, "name": pl.String, "w": pl.Int64}
S_DUCK = "k VARCHAR, i BIGINT, d DOUBLE, s2 VARCHAR, ts TIMESTAMP"
T_DUCK = "k VARCHAR, name VARCHAR, w BIGINT"


@dataclass(frozen=True)
class Q:
    name: str
    dsl: str
    duck: str


def tumble(size_ms: int, select: str, group: str, where: str = "") -> str:
    return (
        f"WITH w AS (SELECT *, epoch_ms(ts) - epoch_ms(ts) % {size_ms} AS ws FROM s {where}) "
        f"SELECT {select.format(ws='epoch_ms(ws)', we=f'epoch_ms(ws + {size_ms})')} FROM w GROUP BY {group}"
    )


QUERIES = [
    Q("filter_project", "SELECT k, i + 1 AS x FROM s WHERE i > 0", "SELECT k, i + 1 AS x FROM s WHERE i > 0"),
    Q(
        "arithmetic",
        "SELECT i * 2 - 1 AS a, i / 2 AS b, i % 3 AS c, d * i AS e, -d AS f, i % (i - 1) AS g FROM s",
        "SELECT i * 2 - 1 AS a, i / 2 AS b, i % 3 AS c, d * i AS e, -d AS f, i % (i - 1) AS g FROM s",
    ),
    Q(
        "case",
        "SELECT k, CASE WHEN i > 2 THEN 'big' WHEN i < 0 THEN 'neg' ELSE 'small' END AS c, "
        "CASE k WHEN 'a' THEN d END AS e FROM s",
        "SELECT k, CASE WHEN i > 2 THEN 'big' WHEN i < 0 THEN 'neg' ELSE 'small' END AS c, "
        "CASE WHEN k = 'a' THEN d END AS e FROM s",
    ),
    Q(
        "nulls",
        "SELECT k, i IS NULL AS n, COALESCE(i, -1) AS c, NOT (i > 0) AS b, (i > 0) AND (d > 0) AS both, "
        "(i > 0) OR (d > 0) AS either FROM s",
        "SELECT k, i IS NULL AS n, COALESCE(i, -1) AS c, NOT (i > 0) AS b, (i > 0) AND (d > 0) AS both, "
        "(i > 0) OR (d > 0) AS either FROM s",
    ),
    Q(
        "in_between",
        "SELECT k, i, d FROM s WHERE i IN (1, 2, NULL) OR d BETWEEN -1 AND 1 OR k NOT IN ('a', 'b')",
        "SELECT k, i, d FROM s WHERE i IN (1, 2, NULL) OR d BETWEEN -1 AND 1 OR k NOT IN ('a', 'b')",
    ),
    Q(
        "like",
        "SELECT k, s2, s2 LIKE 'a%' AS p, s2 NOT LIKE '_b' AS q, s2 LIKE '%.%' AS r FROM s",
        "SELECT k, s2, s2 LIKE 'a%' AS p, s2 NOT LIKE '_b' AS q, s2 LIKE '%.%' AS r FROM s",
    ),
    Q(
        "strings",
        "SELECT upper(k) || '-' || CAST(i AS STRING) AS x, length(s2) AS n, replace(s2, 'a', 'z') AS r FROM s",
        "SELECT upper(k) || '-' || CAST(i AS VARCHAR) AS x, length(s2) AS n, replace(s2, 'a', 'z') AS r FROM s",
    ),
    Q(
        "timestamps",
        "SELECT ts + INTERVAL '1' SECOND AS t1, CAST(ts AS STRING) AS t2, epoch_ms(ts) % 1000 AS ms, "
        "ts > TIMESTAMP '2024-01-01 00:00:20' AS late FROM s",
        "SELECT ts + INTERVAL '1' SECOND AS t1, CAST(ts AS VARCHAR) AS t2, epoch_ms(ts) % 1000 AS ms, "
        "ts > TIMESTAMP '2024-01-01 00:00:20' AS late FROM s",
    ),
    Q(
        "casts",
        "SELECT CAST(i AS DOUBLE) / 4 AS q, d > i AS cmp, CAST(d AS BIGINT) AS r, CAST(i > 0 AS STRING) AS b FROM s",
        "SELECT CAST(i AS DOUBLE) / 4 AS q, d > i AS cmp, CAST(d AS BIGINT) AS r, CAST(i > 0 AS VARCHAR) AS b FROM s",
    ),
    Q(
        "join_inner",
        "SELECT s.k, s.i, t.w, t.name FROM s JOIN t ON s.k = t.k",
        "SELECT s.k, s.i, t.w, t.name FROM s JOIN t ON s.k = t.k",
    ),
    Q(
        "join_left",
        "SELECT s.k, s.d, t.name FROM s LEFT JOIN t ON s.k = t.k",
        "SELECT s.k, s.d, t.name FROM s LEFT JOIN t ON s.k = t.k",
    ),
    Q(
        "join_using_filter",
        "SELECT k, i, w FROM s JOIN t USING (k) WHERE w > 1 OR i < 0",
        "SELECT k, i, w FROM s JOIN t USING (k) WHERE w > 1 OR i < 0",
    ),
    Q(
        "group_by",
        "SELECT k, COUNT(*) AS n, COUNT(i) AS ni, SUM(i) AS si, AVG(d) AS ad, MIN(d) AS mn, MAX(s2) AS mx, "
        "SUM(d) AS sd FROM s GROUP BY k",
        "SELECT k, COUNT(*) AS n, COUNT(i) AS ni, SUM(i) AS si, AVG(d) AS ad, MIN(d) AS mn, MAX(s2) AS mx, "
        "SUM(d) AS sd FROM s GROUP BY k",
    ),
    Q(
        "global_aggregate",
        "SELECT COUNT(*) AS n, SUM(d) AS sd, COUNT(DISTINCT k) AS dk, MIN(ts) AS first FROM s WHERE i <> 0",
        "SELECT COUNT(*) AS n, SUM(d) AS sd, COUNT(DISTINCT k) AS dk, MIN(ts) AS first FROM s WHERE i <> 0",
    ),
    Q(
        "having_names_select_aliases",
        "SELECT k, COUNT(*) AS n, SUM(i) AS total FROM s GROUP BY k HAVING n > 1 AND (total IS NULL OR total >= 0)",
        "SELECT k, COUNT(*) AS n, SUM(i) AS total FROM s GROUP BY k HAVING COUNT(*) > 1 "
        "AND (SUM(i) IS NULL OR SUM(i) >= 0)",
    ),
    Q("count_star_only", "SELECT COUNT(*) AS n FROM s", "SELECT COUNT(*) AS n FROM s"),
    Q(
        "having",
        "SELECT k, SUM(i) AS si FROM s GROUP BY k HAVING COUNT(*) > 1 AND SUM(i) IS NOT NULL",
        "SELECT k, SUM(i) AS si FROM s GROUP BY k HAVING COUNT(*) > 1 AND SUM(i) IS NOT NULL",
    ),
    Q(
        "group_by_expression",
        "SELECT i % 2 AS parity, COUNT(DISTINCT s2) AS ds, MAX(i) AS mi FROM s GROUP BY i % 2",
        "SELECT i % 2 AS parity, COUNT(DISTINCT s2) AS ds, MAX(i) AS mi FROM s GROUP BY i % 2",
    ),
    Q(
        "tumble",
        "SELECT k, window_start, window_end, COUNT(*) AS n, SUM(i) AS si FROM s "
        "GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)",
        tumble(10_000, "k, {ws} AS window_start, {we} AS window_end, COUNT(*) AS n, SUM(i) AS si", "k, ws"),
    ),
    Q(
        "tumble_changes",
        "SELECT k, window_start, COUNT(*) AS n, AVG(d) AS ad FROM s "
        "GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND) EMIT CHANGES",
        tumble(10_000, "k, {ws} AS window_start, COUNT(*) AS n, AVG(d) AS ad", "k, ws"),
    ),
    Q(
        "tumble_no_keys_distinct",
        "SELECT window_start, COUNT(DISTINCT k) AS dk, MAX(d) AS md FROM s GROUP BY TUMBLE(ts, INTERVAL '7' SECOND)",
        tumble(7_000, "{ws} AS window_start, COUNT(DISTINCT k) AS dk, MAX(d) AS md", "ws"),
    ),
    Q(
        "hop",
        "SELECT k, window_start, window_end, COUNT(*) AS n, AVG(d) AS ad FROM s "
        "GROUP BY k, HOP(ts, INTERVAL '5' SECOND, INTERVAL '15' SECOND)",
        "WITH w AS (SELECT *, unnest(range(epoch_ms(ts) - epoch_ms(ts) % 5000, epoch_ms(ts) - 15000, -5000)) AS ws "
        "FROM s) SELECT k, epoch_ms(ws) AS window_start, epoch_ms(ws + 15000) AS window_end, COUNT(*) AS n, "
        "AVG(d) AS ad FROM w GROUP BY k, ws",
    ),
    Q(
        "session",
        "SELECT k, window_start, window_end, COUNT(*) AS n, MIN(i) AS mi, COUNT(DISTINCT s2) AS ds FROM s "
        "GROUP BY k, SESSION(ts, INTERVAL '3' SECOND)",
        # rn: one order for both window functions, whatever the ties in t
        "WITH e AS (SELECT *, epoch_ms(ts) AS t, row_number() OVER () AS rn FROM s), "
        "f AS (SELECT *, CASE WHEN t - LAG(t) OVER (PARTITION BY k ORDER BY t, rn) < 3000 THEN 0 ELSE 1 END AS brk "
        "FROM e), g AS (SELECT *, SUM(brk) OVER (PARTITION BY k ORDER BY t, rn ROWS UNBOUNDED PRECEDING) AS sid "
        "FROM f) "
        "SELECT k, epoch_ms(MIN(t)) AS window_start, epoch_ms(MAX(t) + 3000) AS window_end, COUNT(*) AS n, "
        "MIN(i) AS mi, COUNT(DISTINCT s2) AS ds FROM g GROUP BY k, sid",
    ),
    Q(
        "join_then_window",
        "SELECT name, window_start, COUNT(*) AS n, SUM(w) AS sw FROM s JOIN t USING (k) WHERE i IS NOT NULL "
        "GROUP BY name, TUMBLE(ts, INTERVAL '10' SECOND)",
        "WITH w AS (SELECT s.*, t.name, t.w, epoch_ms(s.ts) - epoch_ms(s.ts) % 10000 AS ws FROM s JOIN t USING (k) "
        "WHERE s.i IS NOT NULL) SELECT name, epoch_ms(ws) AS window_start, COUNT(*) AS n, SUM(w) AS sw FROM w "
        "GROUP BY name, ws",
    ),
    Q(
        "window_of_windows",
        "SELECT window_start AS ws, SUM(n) AS total, COUNT(*) AS groups FROM (SELECT k, window_start AS inner_start, "
        "COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '5' SECOND)) GROUP BY TUMBLE(inner_start, "
        "INTERVAL '20' SECOND)",
        "WITH a AS (SELECT k, epoch_ms(ts) - epoch_ms(ts) % 5000 AS inner_start, COUNT(*) AS n FROM s "
        "GROUP BY k, inner_start) SELECT epoch_ms(inner_start - inner_start % 20000) AS ws, SUM(n) AS total, "
        "COUNT(*) AS groups FROM a GROUP BY inner_start - inner_start % 20000",
    ),
    Q("distinct", "SELECT DISTINCT k, i FROM s", "SELECT DISTINCT k, i FROM s"),
    Q(
        "distinct_then_count",
        "SELECT k, COUNT(*) AS n FROM (SELECT DISTINCT k, s2 FROM s) GROUP BY k",
        "SELECT k, COUNT(*) AS n FROM (SELECT DISTINCT k, s2 FROM s) GROUP BY k",
    ),
    Q(
        "union_all",
        "SELECT k, i FROM s WHERE i > 0 UNION ALL SELECT k, i * 10 FROM s WHERE i <= 0 UNION ALL SELECT k, w FROM t",
        "SELECT k, i FROM s WHERE i > 0 UNION ALL SELECT k, i * 10 FROM s WHERE i <= 0 UNION ALL SELECT k, w FROM t",
    ),
    Q(
        "union_then_aggregate",
        "SELECT k, COUNT(*) AS n FROM (SELECT k FROM s UNION ALL SELECT k FROM t) GROUP BY k",
        "SELECT k, COUNT(*) AS n FROM (SELECT k FROM s UNION ALL SELECT k FROM t) GROUP BY k",
    ),
]


# ---------------------------------------------------------------- data


@st.composite
def datasets(draw):
    n = draw(st.integers(0, 24))
    rows = {
        "k": draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n)),
        "i": draw(st.lists(st.one_of(st.none(), st.integers(-4, 6)), min_size=n, max_size=n)),
        "d": draw(st.lists(st.one_of(st.none(), st.integers(-8, 8).map(lambda x: x / 2)), min_size=n, max_size=n)),
        "s2": draw(st.lists(st.one_of(st.none(), st.text(alphabet="ab.", max_size=3)), min_size=n, max_size=n)),
        "ts": [
            BASE + dt.timedelta(milliseconds=m) for m in draw(st.lists(st.integers(0, 40_000), min_size=n, max_size=n))
        ],
    }
    frame = pl.DataFrame(rows, schema=S_SCHEMA)
    scale = draw(st.sampled_from([1, 1, 1, 40]))  # 40: batches past state_small's limit, on polars' path
    if scale > 1 and n:
        frame = pl.concat([frame] * scale)
        n = frame.height
    ordered = draw(st.booleans())
    if ordered:
        frame = frame.sort("ts", maintain_order=True)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    batches = cut_into_batches(frame, cuts)
    m = draw(st.integers(0, 5))
    table = pl.DataFrame(
        {
            "k": draw(st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=m, max_size=m)),
            "name": draw(st.lists(st.sampled_from(["x", "y"]), min_size=m, max_size=m)),
            "w": draw(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=m, max_size=m)),
        },
        schema=T_SCHEMA,
    )
    return frame, batches, table, ordered


# ---------------------------------------------------------------- comparison


def _norm(value):
    if isinstance(value, Decimal):
        return float(value)
    return value


def _key(row):
    out = []
    for v in row:
        if v is None:
            out.append((1, 0))
        elif isinstance(v, float):
            out.append((0, "nan") if math.isnan(v) else (0, round(v, 6)))
        else:
            out.append((0, v))
    return tuple(out)


def assert_same_rows(ours: list[tuple], theirs: list[tuple], context: str) -> None:
    ours = sorted((tuple(_norm(v) for v in r) for r in ours), key=_key)
    theirs = sorted((tuple(_norm(v) for v in r) for r in theirs), key=_key)
    assert len(ours) == len(theirs), f"{context}: {len(ours)} rows vs DuckDB's {len(theirs)}\n{ours}\n{theirs}"
    for a, b in zip(ours, theirs):
        assert len(a) == len(b), f"{context}: {a} vs {b}"
        for x, y in zip(a, b):
            if isinstance(x, float) and isinstance(y, (float, int)) and not isinstance(y, bool):
                same = (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
            else:
                same = x == y
            assert same, f"{context}: row {a} vs DuckDB's {b}"


def assert_same_ordered_rows(ours: list[tuple], theirs: list[tuple], context: str) -> None:
    """As `assert_same_rows`, and in the same order (for ORDER BY)."""
    assert_same_rows(ours, theirs, context)
    ours, theirs = [tuple(_norm(v) for v in r) for r in ours], [tuple(_norm(v) for v in r) for r in theirs]
    assert [_key(r) for r in ours] == [_key(r) for r in theirs], f"{context}: order differs\n{ours}\n{theirs}"


def duckdb_rows(sql: str, frame: pl.DataFrame, table: pl.DataFrame) -> list[tuple]:
    con = duckdb_connection("SET error_on_division_by_zero = false")
    for name, data, columns in (("s", frame, S_DUCK), ("t", table, T_DUCK)):
        duckdb_table(con, name, columns, data.rows())
    return con.execute(sql).fetchall()


@contextlib.contextmanager
def one_query_per_step():
    """Small frames as large ones run: projections in one polars query, partitions split by partition_by."""
    with mock.patch.object(kernels, "SERIAL_BELOW", 0), mock.patch.object(kernels, "SPLIT_BY_MASKS", 0):
        yield


def engine(batches: list[pl.DataFrame], table: pl.DataFrame, ordered: bool) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=1)
    options = {"watermark": "ts", "watermark_delay": "0s"} if ordered else {}
    ctx.from_polars(batches, name="s", **options)
    ctx.from_polars(table, name="t", static=True)
    return ctx


# ---------------------------------------------------------------- the tests


def test_the_family_is_large_enough():
    assert len(QUERIES) >= 20
    assert len({q.name for q in QUERIES}) == len(QUERIES)


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
@settings(max_examples=examples(7), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_query_matches_duckdb_for_every_split_and_worker_count(query, data):
    frame, batches, table, ordered = data
    plan = engine(batches, table, ordered).sql(query.dsl).plan
    expected = duckdb_rows(query.duck, frame, table)
    for workers, optimize, one_query in ((1, True, False), (3, True, False), (3, False, True)):
        with one_query_per_step() if one_query else contextlib.nullcontext():
            result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert result.columns == list(plan.schema.names)
        assert_same_rows(
            result.rows(),
            expected,
            f"{query.name} workers={workers} optimize={optimize} one_query={one_query} batches={len(batches)}",
        )


# ---------------------------------------------------------------- ORDER BY: the same rows in the same order

# Each orders by enough columns that ties are whole equal rows, so the order is DuckDB's exactly.
ORDERED = [
    Q(
        "order_by_columns",
        "SELECT k, i, d FROM s ORDER BY k, i DESC, d NULLS FIRST",
        "SELECT k, i, d FROM s ORDER BY k NULLS LAST, i DESC NULLS LAST, d NULLS FIRST",
    ),
    Q(
        "order_by_position_and_alias_with_limit",
        "SELECT s2 AS name, i * 2 AS twice FROM s WHERE i > 0 ORDER BY 1 DESC NULLS FIRST, twice LIMIT 5",
        "SELECT s2 AS name, i * 2 AS twice FROM s WHERE i > 0 ORDER BY 1 DESC NULLS FIRST, twice NULLS LAST LIMIT 5",
    ),
    Q(
        "top_groups",
        "SELECT k, COUNT(*) AS n, SUM(i) AS si FROM s GROUP BY k ORDER BY n DESC, k LIMIT 2",
        "SELECT k, COUNT(*) AS n, SUM(i) AS si FROM s GROUP BY k ORDER BY n DESC NULLS LAST, k NULLS LAST LIMIT 2",
    ),
    Q(
        "windows_in_order",
        "SELECT k, window_start, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND) "
        "ORDER BY window_start DESC, k",
        "SELECT k, epoch_ms(epoch_ms(ts) - epoch_ms(ts) % 10000) AS window_start, COUNT(*) AS n FROM s "
        "GROUP BY k, epoch_ms(ts) - epoch_ms(ts) % 10000 ORDER BY window_start DESC NULLS LAST, k NULLS LAST",
    ),
]


@pytest.mark.parametrize("query", ORDERED, ids=[q.name for q in ORDERED])
@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_order_by_gives_duckdbs_rows_in_duckdbs_order(query, data):
    frame, batches, table, ordered = data
    plan = engine(batches, table, ordered).sql(query.dsl).plan
    expected = duckdb_rows(query.duck, frame, table)
    for workers, optimize in ((1, True), (3, False)):
        result = collect(plan, RunConfig(workers=workers, executor="inline", optimize=optimize))
        assert_same_ordered_rows(
            result.rows(), expected, f"{query.name} workers={workers} optimize={optimize} batches={len(batches)}"
        )
