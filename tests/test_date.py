"""DATE against DuckDB: casts, arithmetic, comparisons with TIMESTAMP, time functions, GROUP BY and MIN/MAX.

Hypothesis draws dates (with NULLs, from year 1 on), day counts, timestamps
and date text, cuts the rows into random micro-batches and compares each query
with DuckDB over all rows (values and result types), with 1 and 3 workers and
the optimizer on and off; one fixed dataset goes through every executor.
DuckDB adds only an INTEGER to a DATE; the engine's integer literals are
BIGINT, so it takes BIGINT too (the queries cast to INTEGER for DuckDB's sake).
"""

from __future__ import annotations

import contextlib
import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from batch_cuts import collected_over_batches
from test_aggregates_duckdb import two_phase_forced
from differential.reference import duckdb_connection, duckdb_table

QUERIES = {
    "arithmetic": (
        "SELECT d + CAST(n AS INTEGER) AS a, CAST(n AS INTEGER) + d AS b, d - CAST(n AS INTEGER) AS c, d - d2 AS e, "
        "d + INTERVAL '90' MINUTE AS f, d - INTERVAL '1' SECOND AS g FROM s"
    ),
    "compare_cast": (
        "SELECT d < ts AS a, d = ts AS b, d >= d2 AS c, d = '2024-02-29' AS e, CAST(d AS VARCHAR) AS f, "
        "CAST(ts AS DATE) AS g, CAST(d AS TIMESTAMP) AS h, CAST(t AS DATE) AS i, COALESCE(d, ts) AS j, "
        "CASE WHEN n > 0 THEN d ELSE d2 END AS k, d < DATE '2024-02-29' AS l, DATE '2024-03-01' - d AS m FROM s"
    ),
    "functions": (
        "SELECT year(d) AS a, month(d) AS b, day(d) AS c, extract(dow FROM d) AS e, date_trunc('month', d) AS f, "
        "date_diff('day', d2, d) AS g, date_add(d, INTERVAL '1' DAY) AS h, epoch_ms(d) AS i FROM s"
    ),
    "group_by": "SELECT d, COUNT(*) AS n, MIN(d2) AS lo, MAX(ts) AS hi FROM s GROUP BY d",
}
DUCK_NAMES = {"VARCHAR": "STRING", "INTEGER": "INT"}
DATES = st.dates(min_value=dt.date(1, 12, 1), max_value=dt.date(9998, 1, 1))


@st.composite
def datasets(draw: st.DrawFn) -> tuple[list[dict], list[int]]:
    n = draw(st.integers(0, 12))
    few = st.sampled_from([dt.date(2024, 2, 29), dt.date(2024, 3, 1), dt.date(1970, 1, 1)])  # ties for GROUP BY
    rows = [
        {
            "d": draw(st.one_of(st.none(), few, DATES)),
            "d2": draw(st.one_of(st.none(), DATES)),
            "ts": draw(st.one_of(st.none(), st.datetimes(dt.datetime(1, 12, 1), dt.datetime(9998, 1, 1)))),
            "n": draw(st.one_of(st.none(), st.integers(-300, 300))),
            "t": draw(st.one_of(st.none(), DATES.map(str), st.sampled_from(["2024-1-3", "2023-12-31 10:00:00"]))),
        }
        for _ in range(n)
    ]
    for row in rows:  # the engine's TIMESTAMP is in milliseconds
        if row["ts"] is not None:
            row["ts"] = row["ts"].replace(microsecond=row["ts"].microsecond // 1000 * 1000)
    return rows, sorted(draw(st.lists(st.integers(0, n), max_size=3)))


SCHEMA = {"d": pl.Date, "d2": pl.Date, "ts": pl.Datetime("ms"), "n": pl.Int64, "t": pl.String}


def duckdb_result(sql: str, rows: list[dict]) -> tuple[list[tuple], list[str]]:
    con = duckdb_connection()
    duckdb_table(con, "s", "d DATE, d2 DATE, ts TIMESTAMP, n BIGINT, t VARCHAR", [tuple(r.values()) for r in rows])
    result = con.execute(sql)
    return result.fetchall(), [DUCK_NAMES.get(str(c[1]), str(c[1])) for c in result.description]


def run(sql: str, rows: list[dict], cuts: list[int], executor: str, workers: int, optimize: bool):
    return collected_over_batches(sql, pl.DataFrame(rows, schema=SCHEMA), cuts, executor, workers, optimize)


def check(name: str, rows: list[dict], cuts: list[int], executor: str, settings_: tuple) -> None:
    expected, types = duckdb_result(QUERIES[name], rows)
    for workers, optimize, forced in settings_:
        with two_phase_forced() if forced else contextlib.nullcontext():
            ours, our_types = run(QUERIES[name], rows, cuts, executor, workers, optimize)
        context = f"{name} {executor} workers={workers} optimize={optimize} two-phase={forced} cuts={cuts}"
        assert our_types == types, context
        assert sorted(ours, key=repr) == sorted(expected, key=repr), context


@pytest.mark.parametrize("name", list(QUERIES))
@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_date_queries_match_duckdb(name: str, data: tuple[list[dict], list[int]]) -> None:
    rows, cuts = data
    check(name, rows, cuts, "inline", ((1, True, False), (3, True, True), (3, False, False)))


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
def test_a_date_key_groups_on_every_executor(executor: str) -> None:
    day = dt.date(2024, 2, 29)
    rows = [
        {"d": d, "d2": dt.date(2000, 1, 1), "ts": dt.datetime(2024, 1, 1), "n": 1, "t": None}
        for d in [day, None, day, dt.date(1, 12, 31), dt.date(9997, 12, 31)]
    ]
    for name in ("group_by", "arithmetic"):
        check(name, rows, [2], executor, ((1, True, True), (3, False, False)))


def test_files_read_dates_and_parquet_infers_them(tmp_path) -> None:
    (tmp_path / "a.ndjson").write_text('{"d": "2024-02-29"}\n{"d": "2024-1-3"}\n{"d": null}\n{"d": "2024-02-30"}\n')
    (tmp_path / "b.csv").write_text("d\n2024-02-29\n2024-1-3\nnope\n")
    pl.DataFrame({"d": [dt.date(2024, 2, 29), None]}).write_parquet(tmp_path / "c.parquet")
    ctx = sd.Context(executor="inline", workers=1)
    for name, fmt in (("a.ndjson", "ndjson"), ("b.csv", "csv")):
        ctx.sql(f"CREATE TABLE t_{fmt} (d DATE) WITH (connector='files', path='{tmp_path / name}', format='{fmt}')")
    ctx.sql(f"CREATE TABLE t_parquet WITH (connector = 'files', path = '{tmp_path / 'c.parquet'}', format = 'parquet')")
    want = [dt.date(2024, 2, 29), dt.date(2024, 1, 3)]
    assert ctx.sql("SELECT d FROM t_ndjson").collect().get_column("d").to_list() == [*want, None]  # 02-30: dead
    assert ctx.sql("SELECT d FROM t_csv").collect().get_column("d").to_list() == want  # 'nope': a dead letter
    assert ctx.sql("DESCRIBE t_parquet").rows() == [("d", "DATE")]
    assert ctx.sql("SELECT d + 1 AS e FROM t_parquet").collect().rows() == [(dt.date(2024, 3, 1),), (None,)]


def test_current_date_is_today_in_utc() -> None:
    ctx = sd.Context(executor="inline", workers=1)
    before = dt.datetime.now(dt.timezone.utc).date()
    (today,) = ctx.sql("SELECT current_date AS t").collect().row(0)
    assert before <= today <= dt.datetime.now(dt.timezone.utc).date()


def test_a_bad_date_literal_is_named_where_it_is_written() -> None:
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(pl.DataFrame({"d": [dt.date(2024, 1, 1)]}), name="s")
    with pytest.raises(sd.BindError, match=r"invalid DATE literal '2024-13-01'") as info:
        ctx.sql("SELECT * FROM s\nWHERE d > '2024-13-01'")
    assert (info.value.line, info.value.column) == (2, 11)


def test_a_date_literal_is_positioned_when_bad_and_date_stays_a_column_name() -> None:
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(pl.DataFrame({"date": [dt.date(2024, 1, 1), dt.date(2024, 3, 1)]}), name="s")
    got = ctx.sql("SELECT date, s.date - DATE '2024-01-01' AS days FROM s WHERE date >= DATE '2024-02-01'").collect()
    assert got.rows() == [(dt.date(2024, 3, 1), 60)]
    with pytest.raises(sd.BindError, match=r"invalid DATE literal '2024-02-30'") as info:
        ctx.sql("SELECT date\nFROM s WHERE date = DATE '2024-02-30'")
    assert (info.value.line, info.value.column) == (2, 21)
