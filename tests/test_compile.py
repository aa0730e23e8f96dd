"""Bound expressions compiled to polars: every node and every function, NULLs included.

Expected values are SQL's (DuckDB's where dialects differ); the function
table is checked against DuckDB itself.
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_dsl.ir import expr as E
from stream_dsl.bind import typecheck as tc
from stream_dsl.ir.to_polars import CastFailure, OverflowFailure, compile_expr, compile_predicate, like_to_regex
from stream_dsl.ir.functions import SCALAR_FUNCTIONS
from stream_dsl.ir.types import DataType as T
from budget import examples
from differential.reference import duckdb_connection

L = tc.literal
FRAME = pl.DataFrame(
    {
        "i": [7, -7, None, 0],
        "j": [2, 2, 3, None],
        "d": [1.5, -2.5, None, 0.0],
        "s": ["abc", "a.c", None, "A%_"],
        "b": [True, False, None, True],
        "t": [dt.datetime(2024, 1, 1, 12, 0, 0, 123000), dt.datetime(2024, 1, 1), None, dt.datetime(1970, 1, 1)],
    },
    schema={"i": pl.Int64, "j": pl.Int32, "d": pl.Float64, "s": pl.String, "b": pl.Boolean, "t": pl.Datetime("ms")},
)
# the columns i, j and d, in capitals
I, J, D = E.Column("i", T.BIGINT), E.Column("j", T.INT), E.Column("d", T.DOUBLE)  # noqa: E741
S, B, TS = E.Column("s", T.STRING), E.Column("b", T.BOOLEAN), E.Column("t", T.TIMESTAMP)


def values(e: E.Expr, frame: pl.DataFrame = FRAME) -> list:
    """One value per row (with_columns broadcasts constants, as the executor's projections do)."""
    return frame.with_columns(compile_expr(e).alias("__x")).get_column("__x").to_list()


def scalar(e: E.Expr):
    """A constant's value, computed for one row (over no rows its checks would not run)."""
    return pl.DataFrame({"row": [0]}).select(compile_expr(e).alias("x")).item()


# ---------------------------------------------------------------- leaves


def test_column_and_literals():
    assert values(I) == [7, -7, None, 0]
    assert scalar(L(3)) == 3
    assert scalar(L(2.5)) == 2.5
    assert scalar(L("it's")) == "it's"
    assert scalar(L(True)) is True
    assert scalar(L(None)) is None
    assert scalar(L(dt.datetime(2024, 5, 6, 7, 8, 9))) == dt.datetime(2024, 5, 6, 7, 8, 9)
    assert scalar(tc.interval(1500)) == dt.timedelta(milliseconds=1500)
    timestamp = pl.select(compile_expr(L(dt.datetime(2024, 1, 1)))).to_series()
    assert timestamp.dtype == pl.Datetime("ms")


# ---------------------------------------------------------------- comparisons and logic


@pytest.mark.parametrize(
    "op,expected",
    [
        ("=", [False, False, None, None]),
        ("<>", [True, True, None, None]),
        ("<", [False, True, None, None]),
        ("<=", [False, True, None, None]),
        (">", [True, False, None, None]),
        (">=", [True, False, None, None]),
    ],
)
def test_comparisons_with_nulls(op, expected):
    assert values(tc.binary(op, I, J)) == expected


def test_comparison_mixes_integer_and_double():
    assert values(tc.binary(">", I, D)) == [True, False, None, False]
    assert scalar(tc.binary("=", L(1), L(1.0))) is True


def test_comparison_with_null_literal_is_null():
    assert values(tc.binary("=", I, L(None))) == [None] * 4


def test_timestamp_compared_with_string_literal():
    assert values(tc.binary(">=", TS, L("2024-01-01"))) == [True, True, None, False]


def test_three_valued_and_or_not():
    t, f, n = L(True), L(False), L(None)
    assert scalar(tc.binary("AND", n, f)) is False
    assert scalar(tc.binary("AND", n, t)) is None
    assert scalar(tc.binary("OR", n, t)) is True
    assert scalar(tc.binary("OR", n, f)) is None
    assert scalar(tc.not_(n)) is None
    assert values(tc.not_(B)) == [False, True, None, False]


def test_predicate_treats_null_as_false():
    kept = FRAME.filter(compile_predicate(tc.binary(">", I, L(0))))
    assert kept.get_column("i").to_list() == [7]


# ---------------------------------------------------------------- arithmetic


def test_integer_arithmetic_keeps_type_and_nulls():
    out = FRAME.select(compile_expr(tc.binary("+", I, J)).alias("x")).to_series()
    assert out.to_list() == [9, -5, None, None]
    assert out.dtype == pl.Int64
    assert values(tc.binary("-", I, J)) == [5, -9, None, None]
    assert values(tc.binary("*", I, J)) == [14, -14, None, None]
    assert values(tc.binary("+", J, J)) == [4, 4, 6, None]


def test_division_is_always_double():
    assert values(tc.binary("/", I, J)) == [3.5, -3.5, None, None]
    assert scalar(tc.binary("/", L(1), L(0))) == math.inf
    assert math.isnan(scalar(tc.binary("/", L(0.0), L(0.0))))


def test_remainder_sign_follows_dividend():
    assert scalar(tc.binary("%", L(-7), L(2))) == -1
    assert scalar(tc.binary("%", L(7), L(-2))) == 1
    assert scalar(tc.binary("%", L(-7), L(-2))) == -1
    assert scalar(tc.binary("%", L(6), L(3))) == 0
    assert scalar(tc.binary("%", L(-7.5), L(2))) == -1.5
    assert scalar(tc.binary("%", L(1), L(0))) is None
    assert values(tc.binary("%", I, J)) == [1, -1, None, None]


@pytest.mark.parametrize("divisor", [7, -7, 1, -1, 2**62, -(2**63), 0, 2.5, -2.5, 0.0, math.inf, -math.inf])
def test_remainder_by_a_constant_is_the_remainder_by_that_value_in_a_column(divisor):
    """A literal divisor compiles to one condition instead of three (`sql_remainder`): the same values."""
    integer = isinstance(divisor, int)
    dtype, sql = (pl.Int64, T.BIGINT) if integer else (pl.Float64, T.DOUBLE)
    dividends = (
        [-(2**63), -(2**63) + 1, -15, -14, -7, -1, 0, 1, 6, 7, 14, 15, 2**63 - 1, None]
        if integer
        else [-7.5, -0.0, 0.0, 7.5, math.nan, math.inf, -math.inf, -1e300, 1e-300, -3.0, 3.0, None]
    )
    frame = pl.DataFrame({"a": dividends, "b": [divisor] * len(dividends)}, schema={"a": dtype, "b": dtype})
    a, b = E.Column("a", sql), E.Column("b", sql)
    by_constant, by_column = (values(tc.binary("%", a, right), frame) for right in (L(divisor), b))
    assert [repr(x) for x in by_constant] == [repr(x) for x in by_column]  # repr: NaN and -0.0 compare as they are


def test_arithmetic_with_null_literal():
    assert values(tc.binary("+", I, L(None))) == [None] * 4


def test_negation():
    assert values(tc.negate(I)) == [-7, 7, None, 0]
    assert values(tc.negate(D)) == [-1.5, 2.5, None, -0.0]


def test_interval_arithmetic():
    second = tc.interval(1000)
    assert values(tc.binary("+", TS, second))[1] == dt.datetime(2024, 1, 1, 0, 0, 1)
    assert values(tc.binary("-", TS, second))[1] == dt.datetime(2023, 12, 31, 23, 59, 59)
    assert values(tc.binary("+", second, TS))[1] == dt.datetime(2024, 1, 1, 0, 0, 1)
    diff = tc.binary("-", TS, L(dt.datetime(2024, 1, 1)))
    assert values(diff)[:2] == [dt.timedelta(hours=12, milliseconds=123), dt.timedelta(0)]
    assert scalar(tc.binary("+", second, tc.interval(500))) == dt.timedelta(milliseconds=1500)


def test_concatenation():
    assert values(tc.binary("||", S, L("!"))) == ["abc!", "a.c!", None, "A%_!"]
    assert values(tc.binary("||", S, I)) == ["abc7", "a.c-7", None, "A%_0"]
    assert scalar(tc.binary("||", L("a"), L(None))) is None


# ---------------------------------------------------------------- CASE, IN, LIKE, IS NULL


def test_case_first_true_branch_and_null_condition():
    e = tc.case([(tc.binary(">", I, L(0)), L("pos")), (tc.binary("<", I, L(0)), L("neg"))], L("zero-or-null"))
    assert values(e) == ["pos", "neg", "zero-or-null", "zero-or-null"]


def test_case_without_else_is_null_and_widens():
    e = tc.case([(tc.binary(">", I, L(0)), I), (B, L(0.5))], None)
    out = FRAME.select(compile_expr(e).alias("x")).to_series()
    assert out.dtype == pl.Float64
    assert out.to_list() == [7.0, None, None, 0.5]


@pytest.mark.parametrize(
    "items,negated,expected",
    [
        ([L(7), L(0)], False, [True, False, None, True]),
        ([L(7), L(0)], True, [False, True, None, False]),
        ([L(7), L(None)], False, [True, None, None, None]),
        ([L(7), L(None)], True, [False, None, None, None]),
        ([J, L(-7)], False, [False, True, None, None]),
    ],
)
def test_in_list_null_semantics(items, negated, expected):
    assert values(tc.in_list(I, items, negated)) == expected


def test_in_list_of_timestamps_from_strings():
    e = tc.in_list(TS, [L("2024-01-01"), L("1970-01-01 00:00:00")])
    assert values(e) == [False, True, None, True]


@pytest.mark.parametrize(
    "pattern,expected",
    [
        ("a%", [True, True, None, False]),
        ("a_c", [True, True, None, False]),
        ("a.c", [False, True, None, False]),  # '.' is literal, not a regex wildcard
        ("%\\_", [False, False, None, False]),  # no escape character: backslash is literal
        ("A%_", [False, False, None, True]),
        ("%", [True, True, None, True]),
        ("", [False, False, None, False]),
    ],
)
def test_like(pattern, expected):
    assert values(tc.like(S, L(pattern))) == expected


def test_not_like_and_regex_metacharacters():
    assert values(tc.like(S, L("a.c"), negated=True)) == [True, False, None, True]
    frame = pl.DataFrame({"s": ["(x)+[y]*", "x"]})
    assert values(tc.like(S, L("(x)+[y]*")), frame) == [True, False]
    assert like_to_regex("a%b_") == "(?s)^a.*b.$"


def test_like_matches_across_newlines():
    frame = pl.DataFrame({"s": ["a\nb"]})
    assert values(tc.like(S, L("a%b")), frame) == [True]


def test_is_null():
    assert values(tc.is_null(I)) == [False, False, True, False]
    assert values(tc.is_null(S, negated=True)) == [True, True, False, True]


# ---------------------------------------------------------------- CAST


@pytest.mark.parametrize(
    "value,target,expected",
    [
        (L(2.5), T.BIGINT, 2),
        (L(-2.5), T.BIGINT, -2),
        (L(3.5), T.BIGINT, 4),
        (L(2.6), T.INT, 3),
        (L(7), T.DOUBLE, 7.0),
        (L(7), T.STRING, "7"),
        (L(1.5), T.STRING, "1.5"),
        (L(True), T.STRING, "true"),
        (L(True), T.BIGINT, 1),
        (L(0), T.BOOLEAN, False),
        (L(3), T.BOOLEAN, True),
        (L(" 42 "), T.BIGINT, 42),
        (L("1.5"), T.BIGINT, 2),
        (L("2.5"), T.BIGINT, 3),
        (L("2.25"), T.DOUBLE, 2.25),
        (L("true"), T.BOOLEAN, True),
        (L("F"), T.BOOLEAN, False),
        (L("2024-01-01"), T.TIMESTAMP, dt.datetime(2024, 1, 1)),
        (L("2024-01-01 12:30:00"), T.TIMESTAMP, dt.datetime(2024, 1, 1, 12, 30)),
        (L("2024-01-01T12:30:00.5"), T.TIMESTAMP, dt.datetime(2024, 1, 1, 12, 30, 0, 500000)),
        (L("2024-01-01T12:30:00Z"), T.TIMESTAMP, dt.datetime(2024, 1, 1, 12, 30)),
        (L("2024-01-01 12:30:00+02:00"), T.TIMESTAMP, dt.datetime(2024, 1, 1, 10, 30)),
        (L("2024-01-01 12:30"), T.TIMESTAMP, dt.datetime(2024, 1, 1, 12, 30)),
        (L("1704067200000"), T.TIMESTAMP, dt.datetime(2024, 1, 1)),
        (L(dt.datetime(2024, 1, 1, 12)), T.STRING, "2024-01-01 12:00:00"),
        (L(dt.datetime(2024, 1, 1, 12, 0, 0, 123000)), T.STRING, "2024-01-01 12:00:00.123"),
        (L(dt.datetime(2024, 1, 1, 12, 0, 0, 500000)), T.STRING, "2024-01-01 12:00:00.5"),
        (L(dt.datetime(1970, 1, 1, 0, 0, 1)), T.BIGINT, 1000),
        (L(1000), T.TIMESTAMP, dt.datetime(1970, 1, 1, 0, 0, 1)),
        (L(None), T.BIGINT, None),
        (L(None), T.TIMESTAMP, None),
    ],
)
def test_cast(value, target, expected):
    assert scalar(tc.cast(value, target)) == expected


def test_cast_keeps_nulls_in_columns():
    assert values(tc.cast(S, T.TIMESTAMP), pl.DataFrame({"s": [None, "2024-01-01"]})) == [None, dt.datetime(2024, 1, 1)]
    assert values(tc.cast(I, T.STRING)) == ["7", "-7", None, "0"]


@pytest.mark.parametrize(
    "value,target",
    [
        ("abc", T.BIGINT),
        ("abc", T.DOUBLE),
        ("maybe", T.BOOLEAN),
        ("not a time", T.TIMESTAMP),
        ("2024-13-45", T.TIMESTAMP),
        ("99999999999", T.INT),
    ],
)
def test_bad_cast_raises_naming_the_value(value, target):
    with pytest.raises(CastFailure, match=f"cannot CAST '{value}' to {target.value}"):
        scalar(tc.cast(L(value), target))


def test_bad_cast_in_a_column_names_the_first_bad_value():
    frame = pl.DataFrame({"s": ["1", None, "x", "y"]})
    with pytest.raises(CastFailure, match=r"cannot CAST 'x' to BIGINT \(2 values failed\)"):
        values(tc.cast(S, T.BIGINT), frame)


def test_a_cast_in_a_case_branch_fails_only_for_the_rows_the_branch_picks():
    frame = pl.DataFrame(
        {"s": ["1", "x", "3", None, "y"], "i": [1, 2, 3, 4, 5]}, schema={"s": pl.String, "i": pl.Int64}
    )
    s, i = E.Column("s", T.STRING), E.Column("i", T.BIGINT)
    as_int = tc.cast(s, T.BIGINT)
    numeric = tc.binary("<>", s, L("x"))
    guarded = tc.case([(tc.binary("=", s, L("x")), L(-1)), (tc.binary("=", s, L("y")), L(-2))], as_int)
    assert values(guarded, frame) == [1, -1, 3, None, -2]  # the ELSE branch: neither x nor y
    earlier_wins = tc.case([(tc.binary("=", i, L(2)), L(0)), (tc.binary("<", i, L(5)), as_int)], L(9))
    assert values(earlier_wins, frame) == [1, 0, 3, None, 9]  # 'x' is picked by the first branch only
    nested = tc.case(
        [
            (
                tc.binary(">", i, L(1)),
                tc.case([(tc.binary("=", i, L(5)), L(5))], tc.cast(tc.case([(numeric, s)], L("0")), T.BIGINT)),
            )
        ],
        L(7),
    )
    assert values(nested, frame) == [7, 0, 3, 0, 5]  # NULL <> 'x' is not true: '0'
    with pytest.raises(CastFailure, match=r"cannot CAST 'x' to BIGINT \(1 value failed\)"):
        values(tc.case([(tc.binary("<>", s, L("y")), as_int)], None), frame)  # NULL conditions are false


def test_integer_overflow_cast_fails():
    with pytest.raises(CastFailure):
        scalar(tc.cast(L(2**40), T.INT))


# ---------------------------------------------------------------- functions, against DuckDB

TS_LIT = L(dt.datetime(2024, 3, 4, 13, 5, 7))


# (function, arguments, the same call in DuckDB SQL)
def LV(*values):  # a list literal: [values]
    return tc.function("list_value", [L(v) for v in values])


FUNCTION_CASES = [
    ("list_value", [L(1), L(2.5), L(None)], "[1, 2.5, NULL]"),
    ("list_element", [LV(10, 20, 30), L(-1)], "[10, 20, 30][-1]"),
    ("cardinality", [LV(1, None)], "len([1, NULL])"),
    ("list_contains", [LV(1, 2), L(2)], "list_contains([1, 2], 2)"),
    ("array_to_string", [LV("a", None, "b"), L("-")], "array_to_string(['a', NULL, 'b'], '-')"),
    ("string_split", [L("a,,b"), L(",")], "string_split('a,,b', ',')"),
    ("json_value", [L('{"a": {"b": "x"}}'), L("$.a.b")], """json_extract_string('{"a": {"b": "x"}}', '$.a.b')"""),
    ("json_query", [L('{"a": [1, 2.50]}'), L("$.a")], """CAST(json_extract('{"a": [1, 2.50]}', '$.a') AS VARCHAR)"""),
    ("json_extract_string", [L('{"a": {"b": 1}}'), L("$.a")], """json_extract_string('{"a": {"b": 1}}', '$.a')"""),
    ("upper", [L("aBc")], "upper('aBc')"),
    ("upper", [L(None)], "upper(NULL)"),
    ("lower", [L("aBc")], "lower('aBc')"),
    ("length", [L("héllo")], "length('héllo')"),
    ("length", [L(None)], "length(NULL)"),
    ("trim", [L("  a b  ")], "trim('  a b  ')"),
    ("ltrim", [L("  a b  ")], "ltrim('  a b  ')"),
    ("rtrim", [L("  a b  ")], "rtrim('  a b  ')"),
    ("substring", [L("hello"), L(2), L(3)], "substring('hello', 2, 3)"),
    ("substring", [L("hello"), L(2)], "substring('hello', 2)"),
    ("substring", [L(None), L(2)], "substring(NULL, 2)"),
    ("replace", [L("a.b.c"), L("."), L("-")], "replace('a.b.c', '.', '-')"),
    ("concat", [L("a"), L(1), L(2.5)], "concat('a', 1, 2.5::DOUBLE)"),
    ("starts_with", [L("abc"), L("ab")], "starts_with('abc', 'ab')"),
    ("ends_with", [L("abc"), L("bc")], "ends_with('abc', 'bc')"),
    ("contains", [L("a.c"), L(".")], "contains('a.c', '.')"),
    ("contains", [L("abc"), L(".")], "contains('abc', '.')"),
    ("abs", [L(-3)], "abs(-3)"),
    ("abs", [L(-2.5)], "abs(-2.5::DOUBLE)"),
    ("round", [L(-2.345), L(2)], "round(-2.345::DOUBLE, 2)"),
    ("round", [L(2.4)], "round(2.4::DOUBLE)"),
    ("floor", [L(-2.5)], "floor(-2.5::DOUBLE)"),
    ("ceil", [L(-2.5)], "ceil(-2.5::DOUBLE)"),
    ("sqrt", [L(16)], "sqrt(16)"),
    ("exp", [L(1.0)], "exp(1.0::DOUBLE)"),
    ("ln", [L(10.0)], "ln(10.0::DOUBLE)"),
    ("log10", [L(1000.0)], "log10(1000.0::DOUBLE)"),
    ("log", [L(2.0), L(8.0)], "log(2, 8)"),
    ("log", [L(100.0)], "log(100.0::DOUBLE)"),
    ("concat", [L("a"), L(None), L(1)], "concat('a', NULL, 1)"),
    ("round", [L(2.5)], "round(2.5::DOUBLE)"),
    ("round", [L(-2.5)], "round(-2.5::DOUBLE)"),
    ("substring", [L("hello"), L(0), L(3)], "substring('hello', 0, 3)"),
    ("power", [L(2), L(10)], "power(2, 10)"),
    ("coalesce", [L(None), L(2), L(3)], "coalesce(NULL, 2, 3)"),
    ("greatest", [L(1), L(5), L(3)], "greatest(1, 5, 3)"),
    ("least", [L(4), L(2.5)], "least(4, 2.5::DOUBLE)"),
    ("nullif", [L(1), L(1)], "nullif(1, 1)"),
    ("nullif", [L(1), L(2)], "nullif(1, 2)"),
    ("epoch_ms", [TS_LIT], "epoch_ms(TIMESTAMP '2024-03-04 13:05:07')"),
    ("to_timestamp_ms", [L(1704067200000)], "epoch_ms(1704067200000::BIGINT)"),
    ("hour", [TS_LIT], "hour(TIMESTAMP '2024-03-04 13:05:07')"),
    ("minute", [TS_LIT], "minute(TIMESTAMP '2024-03-04 13:05:07')"),
    ("second", [TS_LIT], "second(TIMESTAMP '2024-03-04 13:05:07')"),
    # the functions of ir/functions_time.py and functions_text.py (tests/test_functions_duckdb.py runs them on rows)
    *[(f, [TS_LIT], f"{f}(TIMESTAMP '2024-03-04 13:05:07')") for f in ("year", "quarter", "month", "day", "week")],
    *[(f, [TS_LIT], f"{f}(TIMESTAMP '2024-03-04 13:05:07')") for f in ("dayofweek", "dayofyear", "epoch")],
    ("millisecond", [TS_LIT], "millisecond(TIMESTAMP '2024-03-04 13:05:07')"),
    ("date_part", [L("doy"), TS_LIT], "date_part('doy', TIMESTAMP '2024-03-04 13:05:07')"),
    ("date_trunc", [L("month"), TS_LIT], "date_trunc('month', TIMESTAMP '2024-03-04 13:05:07')"),
    (
        "date_diff",
        [L("day"), L(dt.datetime(2024, 1, 1, 23)), TS_LIT],
        "date_diff('day', TIMESTAMP '2024-01-01 23:00', TIMESTAMP '2024-03-04 13:05:07')",
    ),
    ("date_add", [TS_LIT, tc.interval(90_000)], "date_add(TIMESTAMP '2024-03-04 13:05:07', INTERVAL 90 SECOND)"),
    ("to_timestamp", [L(-1.5)], "to_timestamp(-1.5)::TIMESTAMP"),
    ("regexp_matches", [L("a1"), L("\\d")], "regexp_matches('a1', '\\d')"),
    ("regexp_extract", [L("a-42"), L("([a-z])-(\\d+)"), L(2)], "regexp_extract('a-42', '([a-z])-(\\d+)', 2)"),
    ("regexp_replace", [L("a1b2"), L("(\\d)"), L("<\\1>"), L("g")], "regexp_replace('a1b2', '(\\d)', '<\\1>', 'g')"),
    ("split_part", [L("a,b,c"), L(","), L(-1)], "split_part('a,b,c', ',', -1)"),
    ("concat_ws", [L(","), L("a"), L(None), L(1)], "concat_ws(',', 'a', NULL, 1)"),
    ("lpad", [L("7"), L(3), L("0")], "lpad('7', 3, '0')"),
    ("rpad", [L("ab"), L(5), L("xy")], "rpad('ab', 5, 'xy')"),
    ("repeat", [L("ab"), L(3)], "repeat('ab', 3)"),
    ("reverse", [L("héllo")], "reverse('héllo')"),
    ("trunc", [L(-2.7)], "trunc(-2.7::DOUBLE)"),
    ("sign", [L(-0.0)], "sign(-0.0::DOUBLE)"),
    # STRUCT functions (ir/functions_structs.py; tests/test_structs.py runs them on rows)
    ("named_struct", [L("a"), L(1), L("é"), L("x")], "struct_pack(a := 1, \"é\" := 'x')"),
    ("struct_extract", [tc.function("named_struct", [L("a"), L(None), L("B"), L(2)]), L("b")], "{'a': NULL, 'B': 2}.b"),
]


def _duckdb(sql: str):
    return duckdb_connection().execute(f"SELECT {sql}").fetchone()[0]


def _same(ours, theirs) -> bool:
    if isinstance(ours, pl.Series):  # a list
        ours = ours.to_list()
    if isinstance(ours, float) and isinstance(theirs, float):
        return math.isclose(ours, theirs, rel_tol=1e-12, abs_tol=1e-12)
    return ours == theirs


@pytest.mark.parametrize("name,args,sql", FUNCTION_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(FUNCTION_CASES)])
def test_function_matches_duckdb(name, args, sql):
    ours = scalar(tc.function(name, args))
    theirs = _duckdb(sql)
    assert _same(ours, theirs), (ours, theirs)


def test_every_registered_function_is_covered():
    assert {c[0] for c in FUNCTION_CASES} == set(SCALAR_FUNCTIONS) - {"now", "current_date"}  # they read the clock


def test_function_result_takes_declared_type():
    out = pl.select(compile_expr(tc.function("length", [L("abc")]))).to_series()
    assert out.dtype == pl.Int64


def test_aggregate_is_not_a_scalar_expression():
    with pytest.raises(TypeError, match="outside an Aggregate"):
        compile_expr(tc.aggregate("count", None))


# ---------------------------------------------------------------- integer overflow

_EDGES = [0, 1, -1, 2, -2, 3, 2**31 - 1, -(2**31), 2**32, 2**62, -(2**62), 2**63 - 1, -(2**63), 3037000499, 3037000500]


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(_EDGES), st.integers(-(2**63), 2**63 - 1)),
            st.one_of(st.sampled_from(_EDGES), st.integers(-(2**63), 2**63 - 1)),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["+", "-", "*"]),
    st.sampled_from([T.INT, T.BIGINT]),
)
def test_integer_arithmetic_is_exact_or_raises_naming_the_operands(pairs, op, dtype):
    bits = 32 if dtype is T.INT else 64
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    pairs = [(max(low, min(high, a)), max(low, min(high, b))) for a, b in pairs]
    frame = pl.DataFrame(
        {"a": [a for a, _ in pairs], "b": [b for _, b in pairs]}, schema={"a": dtype.polars, "b": dtype.polars}
    )
    expression = tc.binary(op, E.Column("a", dtype), E.Column("b", dtype))
    exact = [{"+": a + b, "-": a - b, "*": a * b}[op] for a, b in pairs]
    bad = [(a, b) for (a, b), r in zip(pairs, exact) if not low <= r <= high]
    if bad:
        with pytest.raises(
            OverflowFailure,
            match=rf"integer overflow: {bad[0][0]} \{op} {bad[0][1]} does not fit "
            rf"in {dtype.value} \({len(bad)} values?",
        ):
            values(expression, frame)
    else:
        assert values(expression, frame) == exact


@settings(max_examples=examples(200), deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(_EDGES), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=6),
    st.sampled_from([T.INT, T.BIGINT]),
)
def test_a_negated_integer_is_exact_or_raises_naming_the_value(xs, dtype):
    bits = 32 if dtype is T.INT else 64
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    xs = [None if x is None else max(low, min(high, x)) for x in xs]
    frame = pl.DataFrame({"a": xs}, schema={"a": dtype.polars})
    expression = E.Unary("-", E.Column("a", dtype), dtype)
    bad = [x for x in xs if x == low]
    if bad:
        with pytest.raises(
            OverflowFailure,
            match=rf"integer overflow: -\({low}\) does not fit in {dtype.value} "
            rf"\({len(bad)} values?",
        ):
            values(expression, frame)
    else:
        assert values(expression, frame) == [None if x is None else -x for x in xs]
