"""DATE: DuckDB's types for date arithmetic, and its CASTs and arithmetic as polars expressions.

A DATE is polars' `Date` (days since 1970-01-01). As in DuckDB: DATE ± an
integer is a DATE (days), DATE - DATE the BIGINT number of days, DATE ±
INTERVAL a TIMESTAMP; a DATE compared with a TIMESTAMP is the TIMESTAMP of its
midnight. A DATE is one of the years 1 to 9999 (Python's date, which results
are read into): arithmetic that leaves them raises `OverflowFailure`.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from stream_dsl.ir.to_polars_checks import CastFailure, OverflowFailure, cast_checked, fail_where
from stream_dsl.ir.types import DataType

T = DataType

_FIRST_DAY = (dt.date(1, 1, 1) - dt.date(1970, 1, 1)).days
_LAST_DAY = (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days


def arithmetic_type(op: str, lt: DataType, rt: DataType) -> DataType | None:
    """The type of `lt op rt` when a side is a DATE (None: no such operator)."""
    if lt is T.DATE and rt.is_integer and op in "+-":
        return T.DATE
    if lt.is_integer and rt is T.DATE and op == "+":
        return T.DATE
    if lt is T.DATE and rt is T.DATE and op == "-":
        return T.BIGINT
    if lt is T.DATE and rt is T.INTERVAL and op in "+-":
        return T.TIMESTAMP
    if lt is T.INTERVAL and rt is T.DATE and op == "+":
        return T.TIMESTAMP
    return None


def comparable(a: DataType, b: DataType) -> bool:
    return {a, b} <= {T.DATE, T.TIMESTAMP}


def parse_date(text: str) -> dt.date | None:
    """'2024-01-31' (a time after it ignored, as DuckDB's CAST does), or None."""
    head = text.strip().replace("T", " ").split(" ")[0]
    try:
        year, month, day = (int(p) for p in head.split("-"))
        return dt.date(year, month, day)
    except ValueError:
        return None


def arithmetic(op: str, left: pl.Expr, right: pl.Expr, lt: DataType, rt: DataType, result: DataType) -> pl.Expr:
    """`left op right` with a DATE operand (see `arithmetic_type`)."""
    if result is T.TIMESTAMP:  # DATE ± INTERVAL: from the date's midnight
        from stream_dsl.ir.to_polars import _arithmetic

        left = left.cast(pl.Datetime("ms")) if lt is T.DATE else left
        right = right.cast(pl.Datetime("ms")) if rt is T.DATE else right
        return _arithmetic(
            op, left, right, T.TIMESTAMP if lt is T.DATE else lt, T.TIMESTAMP if rt is T.DATE else rt, result
        )
    a = left.cast(pl.Int32).cast(pl.Int64) if lt is T.DATE else left.cast(pl.Int64)
    b = right.cast(pl.Int32).cast(pl.Int64) if rt is T.DATE else right.cast(pl.Int64)
    days = a + b if op == "+" else a - b
    if result is T.BIGINT:
        return days
    return fail_where(
        ((days < _FIRST_DAY) | (days > _LAST_DAY)).fill_null(False),
        pl.struct(left.cast(pl.String).alias("a"), right.cast(pl.String).alias("b")),
        days.cast(pl.Int32, strict=False).cast(pl.Date),
        lambda first, n: OverflowFailure(
            f"date out of range: {first['a']} {op} {first['b']} is not in years 1 to 9999"
            f" ({n} value{'s' if n > 1 else ''} failed)"
        ),
        pl.Date(),
    )


def from_text(x: pl.Expr) -> pl.Expr:
    """'2024-01-31', '2024-1-3', '2024-01-31 10:00:00' → DATE; NULL where it is no date."""
    return (
        x.str.strip_chars().str.extract(r"^(\d{4}-\d{1,2}-\d{1,2})(?:[ T].*)?$").str.to_date("%Y-%m-%d", strict=False)
    )


def cast_to_date(x: pl.Expr, source: DataType) -> pl.Expr:
    if source is T.TIMESTAMP:
        return x.dt.date()
    if source is not T.STRING:
        raise CastFailure(f"cannot CAST {source.value} to DATE")
    return cast_checked(x, from_text(x), T.DATE)


def cast_from_date(x: pl.Expr, target: DataType) -> pl.Expr:
    if target is T.TIMESTAMP:
        return x.cast(pl.Datetime("ms"))
    if target is T.STRING:
        return x.dt.strftime("%Y-%m-%d")
    raise CastFailure(f"cannot CAST DATE to {target.value}")


def functions() -> list:
    """CURRENT_DATE (also written without parentheses): today's date in UTC, read as NOW() is."""
    from stream_dsl.ir.functions import ScalarFunction, _const
    from stream_dsl.ir.functions_time import now

    return [
        ScalarFunction(
            "current_date",
            (),
            _const(T.DATE),
            lambda: now().dt.date(),
            doc="today's date in UTC, read once per micro-batch and task (nondeterministic)",
            example="SELECT * FROM s WHERE CAST(ts AS DATE) = current_date",
            nulls="never NULL",
        )
    ]
