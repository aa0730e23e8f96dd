"""DECIMAL(p, s) against DuckDB: casts, operators, rounding functions and aggregates, values and result types.

Hypothesis draws a column type (up to 38 digits, scale 0 to the precision),
values of it with NULLs (magnitudes kept where a product still fits 38 digits,
ties such as 0.5 included through few decimals), cuts the rows into random
micro-batches and compares every query with DuckDB's answer over all rows at
once, with 1 and 3 workers and the optimizer on and off; one fixed dataset
goes through every executor. DuckDB types an integer literal INTEGER and a
decimal literal DECIMAL where the engine says BIGINT and DOUBLE
(docs/language.md), so the queries mix DECIMAL only with columns.
"""

from __future__ import annotations

import contextlib
import math
from decimal import Decimal

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from batch_cuts import collected_over_batches
from test_aggregates_duckdb import two_phase_forced
from differential.reference import duckdb_connection, duckdb_table

TYPES = [(18, 3), (5, 2), (38, 0), (38, 10), (10, 10), (1, 0)]

QUERIES = {
    "operators": (
        "SELECT x, x + x AS a, x - i AS b, x * i AS c, x / d AS q, x % i AS m, -x AS n, x + d AS e, "
        "x > i AS g, x = d AS h, x < x2 AS l, x2 - x AS f FROM s"
    ),
    "functions": (
        "SELECT abs(x) AS a, sign(x) AS b, round(x) AS c, round(x, 1) AS e, round(x, -1) AS f, "
        "floor(x) AS g, ceil(x) AS h, trunc(x) AS t, greatest(x, x2) AS gr, coalesce(x, x2) AS co FROM s"
    ),
    "casts": (
        "SELECT CAST(x AS BIGINT) AS a, CAST(x AS INTEGER) AS b, CAST(x AS DOUBLE) AS c, CAST(x AS VARCHAR) AS e, "
        "CAST(x AS DECIMAL(38, 1)) AS f, CAST(CAST(x AS VARCHAR) AS DECIMAL(38, 2)) AS g, "
        "CAST(i AS DECIMAL(20, 2)) AS h, CAST(d AS DECIMAL(30, 4)) AS j, CAST(x AS NUMERIC) AS k FROM s"
    ),
    "aggregates": (
        "SELECT k, SUM(x) AS s, MIN(x) AS mn, MAX(x) AS mx, AVG(x) AS a, COUNT(x) AS c, SUM(x2) AS s2 FROM s GROUP BY k"
    ),
    "global": "SELECT SUM(x) AS s, MAX(x) AS mx, COUNT(*) AS n FROM s",
}
# The engine's types where DuckDB names the same type otherwise.
DUCK_NAMES = {"VARCHAR": "STRING", "INTEGER": "INT", "TINYINT": "INT"}


def decimal_values(precision: int, scale: int) -> st.SearchStrategy[Decimal | None]:
    """Values of DECIMAL(precision, scale): at most 6 integer digits, so x * i still fits 38 digits."""
    digits = min(precision - scale, 6)
    limit = Decimal(10) ** digits - Decimal(10) ** -scale
    exact = st.decimals(min_value=-limit, max_value=limit, places=scale, allow_nan=False, allow_infinity=False)
    ties = st.sampled_from([Decimal("0.5"), Decimal("-2.5"), Decimal("1.05"), Decimal("-0.15")])
    fits = ties.filter(lambda v: -v.as_tuple().exponent <= scale and abs(v) <= limit)  # type: ignore[operator]
    return st.one_of(st.none(), exact, fits)


@st.composite
def datasets(draw: st.DrawFn) -> tuple[tuple[int, int], list[dict], list[int]]:
    precision, scale = draw(st.sampled_from(TYPES))
    n = draw(st.integers(0, 12))
    rows = [
        {
            "k": draw(st.sampled_from(["a", "b", None])),
            "x": draw(decimal_values(precision, scale)),
            "x2": draw(decimal_values(12, 4)),
            "i": draw(st.one_of(st.none(), st.integers(-1000, 1000))),
            "d": draw(st.one_of(st.none(), st.integers(-64, 64).map(lambda v: v / 8))),
        }
        for _ in range(n)
    ]
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    return (precision, scale), rows, cuts


def frame_of(dtype: tuple[int, int], rows: list[dict]) -> pl.DataFrame:
    schema = {"k": pl.String, "x": pl.Decimal(*dtype), "x2": pl.Decimal(12, 4), "i": pl.Int64, "d": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def duckdb_result(sql: str, dtype: tuple[int, int], rows: list[dict]) -> tuple[list[tuple], list[str]]:
    con = duckdb_connection("SET error_on_division_by_zero = false")
    columns = f"k VARCHAR, x DECIMAL{dtype}, x2 DECIMAL(12, 4), i BIGINT, d DOUBLE"
    duckdb_table(con, "s", columns, [tuple(r.values()) for r in rows])
    result = con.execute(sql)
    types = [DUCK_NAMES.get(str(c[1]), str(c[1]).replace(", ", ",")) for c in result.description]
    return result.fetchall(), types


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-300)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b and a.as_tuple().exponent == b.as_tuple().exponent  # the value and its scale
    return a == b and type(a) is type(b)


def assert_same_rows(ours: list[tuple], theirs: list[tuple], context: str) -> None:
    key = repr
    ours, theirs = sorted(ours, key=key), sorted(theirs, key=key)
    assert len(ours) == len(theirs), f"{context}\n{ours}\n{theirs}"
    for a, b in zip(ours, theirs):
        assert len(a) == len(b) and all(same(x, y) for x, y in zip(a, b)), f"{context}\nours   {a}\nDuckDB {b}"


def run(
    sql: str, dtype: tuple[int, int], rows: list[dict], cuts: list[int], executor: str, workers: int, optimize: bool
):
    return collected_over_batches(sql, frame_of(dtype, rows), cuts, executor, workers, optimize)


@pytest.mark.parametrize("name", list(QUERIES))
@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets())
def test_decimal_queries_match_duckdb(name: str, data: tuple[tuple[int, int], list[dict], list[int]]) -> None:
    dtype, rows, cuts = data
    expected, types = duckdb_result(QUERIES[name], dtype, rows)
    for workers, optimize, forced in ((1, True, False), (3, True, True), (3, False, False)):
        with two_phase_forced() if forced else contextlib.nullcontext():
            ours, our_types = run(QUERIES[name], dtype, rows, cuts, "inline", workers, optimize)
        context = f"{name} DECIMAL{dtype} workers={workers} optimize={optimize} two-phase={forced} cuts={cuts}"
        assert our_types == types, context
        assert_same_rows(ours, expected, context)


FIXED_ROWS = [
    {"k": k, "x": x, "x2": Decimal("-1.0005"), "i": i, "d": 0.5}
    for k, x, i in [
        ("a", Decimal("99999999999999999999999999999999999.125"), 3),
        ("a", Decimal("-0.125"), -2),
        ("b", None, None),
        ("b", Decimal("2.500"), 0),
        (None, Decimal("-99999999999999999999999999999999999.999"), 1),
    ]
]


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_every_executor_sums_38_digits_exactly(executor: str) -> None:
    """Values of 38 digits through every executor, in two phases: SUM stays exact in DECIMAL(38,3)."""
    sql = QUERIES["aggregates"]
    expected, types = duckdb_result(sql, (38, 3), FIXED_ROWS)
    for workers, optimize in ((1, True), (3, True), (3, False)):
        with two_phase_forced():
            ours, our_types = run(sql, (38, 3), FIXED_ROWS, [1, 3], executor, workers, optimize)
        assert our_types == types
        assert_same_rows(ours, expected, f"{executor} workers={workers} optimize={optimize}")


def test_rounding_is_half_away_from_zero_in_every_cast() -> None:
    ctx = sd.Context()
    ctx.from_iterable(
        [(Decimal("1.005"), "-1.225", 2.5)], schema={"x": "DECIMAL(10, 3)", "t": "STRING", "d": "DOUBLE"}, name="s"
    )
    sql = (
        "SELECT CAST(x AS DECIMAL(10, 2)) AS a, CAST(t AS DECIMAL(10, 2)) AS b, CAST(x * 2 AS BIGINT) AS c, "
        "CAST(-x AS DECIMAL(4, 2)) AS e, CAST(d AS DECIMAL(3, 0)) AS f FROM s"
    )
    assert (
        ctx.sql(sql).collect().rows()
        == duckdb.sql(
            "SELECT 1.01::DECIMAL(10,2), -1.23::DECIMAL(10,2), 2::BIGINT, -1.01::DECIMAL(4,2), 3::DECIMAL(3,0)"
        ).fetchall()
    )


def test_a_value_that_does_not_fit_fails_the_cast_and_the_sum() -> None:
    ctx = sd.Context()
    ctx.from_iterable([(Decimal("999.995"),)], schema={"x": "DECIMAL(6, 3)"}, name="s")
    with pytest.raises(sd.ExecutionError, match=r"cannot CAST '999.995' to DECIMAL\(5,2\)"):
        ctx.sql("SELECT CAST(x AS DECIMAL(5, 2)) FROM s").collect()
    with pytest.raises(sd.ExecutionError, match="decimal overflow"):
        ctx.sql("SELECT CAST(x AS DECIMAL(38, 3)) * CAST(x AS DECIMAL(38, 35)) FROM s").collect()


def test_ndjson_and_csv_read_decimals_exactly(tmp_path) -> None:
    (tmp_path / "a.ndjson").write_text(
        '{"x": 12345678901234567.125}\n{"x": "0.1"}\n{"x": 1e2}\n{"x": null}\n{"x": "abc"}\n{"x": -1.005}\n'
    )
    (tmp_path / "b.csv").write_text("x\n12345678901234567.125\n0.1\n\nabc\n-1.005\n")
    ctx = sd.Context()
    expected = [Decimal(v) if v else None for v in ("12345678901234567.13", "0.10", "100.00", "", "-1.01")]
    for name, fmt in (("a.ndjson", "ndjson"), ("b.csv", "csv")):
        ctx.sql(
            f"CREATE TABLE t_{fmt} (x DECIMAL(30, 2)) "
            f"WITH (connector = 'files', path = '{tmp_path / name}', format = '{fmt}')"
        )
        rows = ctx.sql(f"SELECT x FROM t_{fmt}").collect().get_column("x").to_list()
        want = expected if fmt == "ndjson" else [expected[0], expected[1], expected[4]]  # (a blank line is no row)
        assert rows == want, fmt


def test_parquet_and_memory_frames_keep_their_decimal_type(tmp_path) -> None:
    frame = pl.DataFrame({"x": pl.Series([Decimal("1.25"), None], dtype=pl.Decimal(7, 2))})
    frame.write_parquet(tmp_path / "p.parquet")
    ctx = sd.Context()
    ctx.sql(f"CREATE TABLE p WITH (connector = 'files', path = '{tmp_path / 'p.parquet'}', format = 'parquet')")
    assert ctx.sql("DESCRIBE p").rows() == [("x", "DECIMAL(7,2)")]
    assert ctx.sql("SELECT x * x AS y FROM p").collect().rows() == [(Decimal("1.5625"),), (None,)]


def test_python_source_items_bring_decimals_exactly() -> None:
    from stream_dsl.connectors import python_io

    items = [{"x": Decimal("12345678901234567.125"), "k": "a"}, ("-1.005", "b"), {"x": "zz", "k": "c"}]
    python_io.register_items("decimal-items", items)
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql("CREATE STREAM t (x DECIMAL(30, 2), k STRING) WITH (connector = 'python', id = 'decimal-items')")
    assert ctx.sql("SELECT * FROM t").collect().rows() == [
        (Decimal("12345678901234567.13"), "a"),
        (Decimal("-1.01"), "b"),
    ]  # 'zz' is a dead letter


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("3088.045", "DECIMAL(38, 2)"),  # DECIMAL(38, 2) leaves no room for an extra digit
        ("3088.0449", "DECIMAL(38, 2)"),  # cut, not rounded twice
        ("-1.235", "DECIMAL(38, 2)"),
        ("1.0005", "DECIMAL(10, 3)"),
        ("-0.005", "DECIMAL(5, 2)"),
        ("0.5", "DECIMAL(38, 38)"),
        ("1e2", "DECIMAL(5, 2)"),
    ],
)
def test_text_rounds_half_away_from_zero_as_duckdb(text: str, target: str) -> None:
    sql = f"SELECT CAST('{text}' AS {target}) AS x"
    (expected,) = duckdb.sql(sql).fetchall()[0]
    assert sd.Context(executor="inline", workers=1).sql(sql).collect().item() == expected
