"""Date and time functions over TIMESTAMP, with DuckDB's semantics (there is no DATE type yet).

- Fields (YEAR(ts), EXTRACT(field FROM ts), DATE_PART('field', ts)) are
  BIGINT, EPOCH a DOUBLE of seconds; DAYOFWEEK counts Sunday as 0, WEEK is the
  ISO week, MILLISECOND includes the seconds (7.5 s → 7500), as in DuckDB.
- DATE_TRUNC('unit', ts) is a TIMESTAMP (DuckDB gives a DATE for units of a
  day or more over a DATE; over a TIMESTAMP it gives a TIMESTAMP too).
- DATE_DIFF('unit', a, b) counts the unit's boundaries crossed from a to b
  (DATE_DIFF('month', '01-31', '02-01') = 1), except WEEK: whole weeks of
  calendar days, truncated toward zero, as DuckDB does.
- TO_TIMESTAMP(seconds) reads epoch seconds, rounded to milliseconds (the
  TIMESTAMP's precision); FROM_UNIXTIME is the same function (DuckDB has
  none by that name). DuckDB gives a TIMESTAMP WITH TIME ZONE; here it is a
  TIMESTAMP in UTC.
- NOW() / CURRENT_TIMESTAMP: the wall clock in UTC, read once each time a
  task evaluates the expression over a micro-batch (so one value per batch
  and task; workers of one batch may differ by their clocks' skew, and a
  replayed batch after recovery reads the clock again). The optimizer never
  folds or moves it (`NONDETERMINISTIC_FUNCTIONS`).
"""

from __future__ import annotations

import time
from typing import Any

import polars as pl

from stream_dsl.ir.to_polars_cast import epoch_ms_to_timestamp
from stream_dsl.ir.types import DataType

T = DataType

# EXTRACT / DATE_PART field → the function computing it.
FIELDS = {
    "year": "year",
    "quarter": "quarter",
    "month": "month",
    "day": "day",
    "hour": "hour",
    "minute": "minute",
    "second": "second",
    "millisecond": "millisecond",
    "dow": "dayofweek",
    "dayofweek": "dayofweek",
    "doy": "dayofyear",
    "dayofyear": "dayofyear",
    "week": "week",
    "epoch": "epoch",
}

# DATE_TRUNC unit → polars' truncate interval.
TRUNC_UNITS = {
    "year": "1y",
    "quarter": "1q",
    "month": "1mo",
    "week": "1w",
    "day": "1d",
    "hour": "1h",
    "minute": "1m",
    "second": "1s",
    "millisecond": "1ms",
}

_MS = {"millisecond": 1, "second": 1000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
DIFF_UNITS = ("year", "quarter", "month", "week", "day", "hour", "minute", "second", "millisecond")


def literal_text(arg: Any) -> str | None:
    """The text of a string literal argument, or None when it is not one."""
    from stream_dsl.ir.expr import Literal

    return arg.value if isinstance(arg, Literal) and isinstance(arg.value, str) else None


def _unit_check(position: int, allowed: Any, what: str) -> Any:
    def check(args: list[Any]) -> str | None:
        text = literal_text(args[position])
        if text is None:
            return f"the {what} must be a string literal such as '{next(iter(allowed))}'"
        if text.lower() not in allowed:
            return f"unknown {what} '{text}'; use one of {', '.join(allowed)}"
        return None

    return check


check_field = _unit_check(0, FIELDS, "EXTRACT field")
check_trunc_unit = _unit_check(0, TRUNC_UNITS, "DATE_TRUNC unit")
check_diff_unit = _unit_check(0, DIFF_UNITS, "DATE_DIFF unit")


def _text(e: pl.Expr) -> str:
    return str(pl.select(e).item()).lower()


def _int(e: pl.Expr) -> pl.Expr:
    return e.cast(pl.Int64)


def year(t: pl.Expr) -> pl.Expr:
    return _int(t.dt.year())


def quarter(t: pl.Expr) -> pl.Expr:
    return _int(t.dt.quarter())


def month(t: pl.Expr) -> pl.Expr:
    return _int(t.dt.month())


def day(t: pl.Expr) -> pl.Expr:
    return _int(t.dt.day())


def millisecond(t: pl.Expr) -> pl.Expr:
    return _int(t.dt.second()) * 1000 + _int(t.dt.millisecond())


def dayofweek(t: pl.Expr) -> pl.Expr:
    return _int(t.dt.weekday()) % 7  # polars: Monday 1 .. Sunday 7; DuckDB: Sunday 0 .. Saturday 6


def dayofyear(t: pl.Expr) -> pl.Expr:
    return _int(t.dt.ordinal_day())


def week(t: pl.Expr) -> pl.Expr:
    return _int(t.dt.week())


def epoch(t: pl.Expr) -> pl.Expr:
    return t.dt.epoch("ms").cast(pl.Float64) / 1000.0


def date_part(field: pl.Expr, t: pl.Expr) -> pl.Expr:
    """Only reached when a caller compiles DATE_PART itself: the binder rewrites it to the field's function."""
    from stream_dsl.ir.functions import SCALAR_FUNCTIONS

    return SCALAR_FUNCTIONS[FIELDS[_text(field)]].polars(t)


def date_trunc(unit: pl.Expr, t: pl.Expr) -> pl.Expr:
    return t.dt.truncate(TRUNC_UNITS[_text(unit)])


def date_diff(unit: pl.Expr, a: pl.Expr, b: pl.Expr) -> pl.Expr:
    name = _text(unit)
    if name in ("year", "quarter", "month"):

        def count(x: pl.Expr) -> pl.Expr:  # the unit's number since year 0
            if name == "year":
                return year(x)
            return year(x) * 4 + quarter(x) - 1 if name == "quarter" else year(x) * 12 + month(x) - 1

        return count(b) - count(a)
    ea, eb = a.dt.epoch("ms"), b.dt.epoch("ms")
    if name == "week":
        days = eb // _MS["day"] - ea // _MS["day"]
        return days.abs() // 7 * days.sign()
    return eb // _MS[name] - ea // _MS[name]


def to_timestamp(seconds: pl.Expr) -> pl.Expr:
    return epoch_ms_to_timestamp((seconds.cast(pl.Float64) * 1000.0).round(0))  # NaN, inf: a CAST failure


def _clock_ms(_: pl.Series) -> pl.Series:
    return pl.Series("now", [time.time_ns() // 1_000_000], dtype=pl.Int64)


def now() -> pl.Expr:
    """The clock, read when polars evaluates the expression (once per batch and task): see the module doc."""
    clock = pl.lit(0).map_batches(_clock_ms, return_dtype=pl.Int64, returns_scalar=True)
    return clock.cast(pl.Datetime("ms"))


def functions() -> list[Any]:
    from stream_dsl.ir.functions import ScalarFunction, _const

    def field(name: str, fn: Any, doc: str, example: str, returns: DataType = T.BIGINT) -> ScalarFunction:
        return ScalarFunction(name, ("timestamp",), _const(returns), fn, doc=doc, example=example)

    return [
        field("year", year, "the year", "year(TIMESTAMP '2024-05-03 10:00') = 2024"),
        field("quarter", quarter, "the quarter, 1 to 4", "quarter(TIMESTAMP '2024-05-03') = 2"),
        field("month", month, "the month, 1 to 12", "month(TIMESTAMP '2024-05-03') = 5"),
        field("day", day, "the day of the month, 1 to 31", "day(TIMESTAMP '2024-05-03') = 3"),
        field(
            "millisecond",
            millisecond,
            "the seconds in milliseconds (7.5 s → 7500)",
            "millisecond(TIMESTAMP '2024-01-01 00:00:07.5') = 7500",
        ),
        field("dayofweek", dayofweek, "day of week, Sunday 0 .. Saturday 6", "dayofweek(TIMESTAMP '2024-01-07') = 0"),
        field("dayofyear", dayofyear, "day of the year, 1 to 366", "dayofyear(TIMESTAMP '2024-12-31') = 366"),
        field("week", week, "the ISO week, 1 to 53", "week(TIMESTAMP '2021-01-01') = 53"),
        field(
            "epoch",
            epoch,
            "seconds since 1970-01-01, a DOUBLE",
            "epoch(TIMESTAMP '1969-12-31 23:59:59.5') = -0.5",
            T.DOUBLE,
        ),
        ScalarFunction(
            "date_part",
            ("string", "timestamp"),
            _const(T.BIGINT),
            date_part,
            doc="a field of a timestamp; EXTRACT(field FROM ts) is the same",
            signature="date_part(field STRING literal, ts TIMESTAMP) -> BIGINT (DOUBLE for 'epoch')",
            example="EXTRACT(dow FROM TIMESTAMP '2024-01-07') = 0; fields: " + ", ".join(FIELDS),
            check=check_field,
        ),
        ScalarFunction(
            "date_trunc",
            ("string", "timestamp"),
            _const(T.TIMESTAMP),
            date_trunc,
            doc="the timestamp truncated to the start of its unit",
            signature="date_trunc(unit STRING literal, ts TIMESTAMP) -> TIMESTAMP",
            example="date_trunc('week', TIMESTAMP '2024-01-03 10:00') = 2024-01-01 (a Monday); units: "
            + ", ".join(TRUNC_UNITS),
            check=check_trunc_unit,
        ),
        ScalarFunction(
            "date_diff",
            ("string", "timestamp", "timestamp"),
            _const(T.BIGINT),
            date_diff,
            doc="unit boundaries crossed from the first timestamp to the second",
            signature="date_diff(unit STRING literal, start TIMESTAMP, end TIMESTAMP) -> BIGINT",
            example="date_diff('month', TIMESTAMP '2024-01-31', TIMESTAMP '2024-02-01') = 1; WEEK counts whole "
            "weeks of days; units: " + ", ".join(DIFF_UNITS),
            check=check_diff_unit,
        ),
        ScalarFunction(
            "date_add",
            ("timestamp", "interval"),
            _const(T.TIMESTAMP),
            lambda t, i: t + i,
            doc="timestamp plus an interval (the same as ts + INTERVAL ...)",
            example="date_add(TIMESTAMP '2024-01-01', INTERVAL 90 MINUTE) = 2024-01-01 01:30:00",
        ),
        ScalarFunction(
            "to_timestamp",
            ("numeric",),
            _const(T.TIMESTAMP),
            to_timestamp,
            doc="epoch seconds to a TIMESTAMP (UTC), rounded to milliseconds",
            example="to_timestamp(1.5) = 1970-01-01 00:00:01.5",
            nulls="NULL if the argument is NULL; a value outside years 1 to 9999 is an error",
        ),
        ScalarFunction(
            "now",
            (),
            _const(T.TIMESTAMP),
            now,
            doc="the current time in UTC, read once per micro-batch and task (nondeterministic)",
            example="SELECT * FROM s WHERE ts > now() - INTERVAL 1 HOUR",
            nulls="never NULL",
        ),
    ]


ALIASES = {"datepart": "date_part", "datetrunc": "date_trunc", "datediff": "date_diff", "from_unixtime": "to_timestamp"}
ALIASES |= {"current_timestamp": "now", "weekofyear": "week"}
