"""Reading TIMESTAMP values: epoch numbers in a declared unit, or ISO-8601 text, into `Datetime("ms")`.

The unit of epoch numbers is the source option `timestamp_unit`: 's', 'ms',
'us' or 'ns' for every TIMESTAMP column (`timestamp_unit = 's'`), or per
column (`timestamp_unit = 'created=s, updated=ms'`; a bare unit in the
list is the default for the other columns). Digit strings count as
numbers; decimals are allowed ('1700000000.25' seconds).

A value outside years 0001-9999 in its unit is a dead letter. Without the
option, numbers are epoch milliseconds, but an integer between 10^9 and
10^11 is a dead letter too: as milliseconds it is a date in 1970-1973, as
seconds a date in 2001-5138, so it is far more likely epoch seconds read
in the wrong unit than a real date; the reason names the option that
settles it. Declaring `timestamp_unit = 'ms'` reads such values as
milliseconds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import polars as pl

from stream_dsl.errors import ConnectorError
from stream_dsl.ir.types import DataType, Schema

UNITS = ("s", "ms", "us", "ns")
MS = pl.Datetime("ms")


def newest_ms(column: str) -> pl.Expr:
    """The column's largest value in epoch milliseconds: a source's clock over a batch (its watermark column is a
    TIMESTAMP, `Datetime("ms")`, whose integer is epoch ms)."""
    return pl.col(column).cast(pl.Int64).max()


# 0001-01-01T00:00:00 and 9999-12-31T23:59:59.999 in epoch milliseconds
MIN_MS, MAX_MS = -62_135_596_800_000, 253_402_300_799_999
# Integers read as milliseconds by default that are much more likely epoch seconds (see the module doc).
SECONDS_LIKE = (10**9, 10**11)
_PER_MS = {"s": 1 / 1000, "ms": 1, "us": 1000, "ns": 1_000_000}  # units per millisecond
_NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)\s*$"


def parse_units(value: str | None, schema: Schema, what: str) -> dict[str, str]:
    """`timestamp_unit` → column name → unit, for the TIMESTAMP columns it names (or all of them)."""
    if value is None or not value.strip():
        return {}
    stamps = [f.name for f in schema if f.dtype is DataType.TIMESTAMP]
    default: str | None = None
    per_column: dict[str, str] = {}
    for entry in (e.strip() for e in value.split(",")):
        column, _, unit = entry.rpartition("=")
        column, unit = column.strip(), unit.strip().lower()
        if unit not in UNITS:
            raise ConnectorError(
                f"{what}: option timestamp_unit: unknown unit '{unit}' in '{value}'; units: {', '.join(UNITS)}"
            )
        if not column:
            default = unit
        elif column not in stamps:
            raise ConnectorError(
                f"{what}: option timestamp_unit names '{column}', which is not a TIMESTAMP "
                f"column; TIMESTAMP columns: {', '.join(stamps) or 'none'}"
            )
        else:
            per_column[column] = unit
    return {name: chosen for name in stamps if (chosen := per_column.get(name, default))}


def with_units(schema: Schema, units: dict[str, str]) -> Schema:
    """`schema` with the unit of each TIMESTAMP column set (Field.unit)."""
    if not units:
        return schema
    return Schema(tuple(replace(f, unit=units[f.name]) if f.name in units else f for f in schema))


def _bounds(unit: str) -> tuple[float, float]:
    return MIN_MS * _PER_MS[unit], MAX_MS * _PER_MS[unit]


def epoch_to_ms(values: pl.Series, unit: str | None) -> pl.Series:
    """Epoch numbers (any numeric dtype) in `unit` (None: ms by default) → Datetime("ms"); null where out of range."""
    name = values.name
    converted = epoch_ms_expr(pl.col(name), values.dtype.is_integer(), unit)
    return values.to_frame().select(converted.alias(name)).to_series()


def epoch_ms_expr(v: pl.Expr, integer: bool, unit: str | None) -> pl.Expr:
    """`epoch_to_ms` as an expression over `v` (of an integer dtype when `integer`), to run in a larger query."""
    lo, hi = _bounds(unit or "ms")
    ok = (v >= lo) & (v <= hi)
    if unit is None:
        ok = ok & ~((v.abs() >= SECONDS_LIKE[0]) & (v.abs() < SECONDS_LIKE[1]))
    per_ms = _PER_MS[unit or "ms"]
    if integer:
        ms = v.cast(pl.Int64) * 1000 if unit == "s" else v.cast(pl.Int64) // int(per_ms) if per_ms >= 1 else None
    else:
        ms = (v.cast(pl.Float64) / per_ms).floor().cast(pl.Int64)
    return pl.when(ok).then(ms).otherwise(None).cast(MS)


def epoch_or_iso(text: pl.Series, unit: str | None) -> pl.Series:
    """Strings holding epoch numbers (in `unit`) or ISO-8601 timestamps → Datetime("ms"); null where neither."""
    stripped = text.str.strip_chars()
    integers = stripped.cast(pl.Int64, strict=False)
    epoch = epoch_to_ms(integers, unit)
    rest = (integers.is_null() & text.is_not_null()).arg_true()
    if not len(rest):
        return epoch.alias(text.name)
    # only what is not an integer goes on: decimals, then the ISO formats
    others = stripped.gather(rest)
    decimals = others.str.contains(_NUMBER)
    found = pl.select(
        pl.when(decimals)
        .then(epoch_to_ms(others.cast(pl.Float64, strict=False), unit))
        .otherwise(_iso(others.set(decimals, None)))
    ).to_series()
    return epoch.scatter(rest, found).alias(text.name)


def _iso(text: pl.Series) -> pl.Series:
    """ISO-8601 text (a space for the 'T' too, an offset converted to UTC) → Datetime("ms"); null elsewhere."""
    name, n_values = text.name, len(text) - text.null_count()
    iso = text.str.strip_chars().str.replace(" ", "T", literal=True)
    parsed = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="ms", strict=False)
    if len(text) - parsed.null_count() == n_values:
        return parsed.alias(name)
    with_zone = (
        iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="ms", strict=False)
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
    )
    minutes = iso.str.to_datetime("%Y-%m-%dT%H:%M", time_unit="ms", strict=False)
    date = iso.str.to_datetime("%Y-%m-%d", time_unit="ms", strict=False)
    return pl.select(pl.coalesce(parsed, with_zone, minutes, date)).to_series().alias(name)


def to_timestamp(s: pl.Series, unit: str | None = None) -> pl.Series:
    """Any column → Datetime("ms"), null where a value does not convert (callers compare null masks)."""
    if isinstance(s.dtype, pl.Datetime):
        if s.dtype.time_zone is not None:
            s = s.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return s.cast(MS)
    if s.dtype == pl.Date:
        return s.cast(MS)
    if s.dtype.is_integer() or s.dtype.is_float():
        return epoch_to_ms(s, unit)
    if s.dtype == pl.String:
        return epoch_or_iso(s, unit)
    if s.dtype == pl.Null:
        return s.cast(MS)
    return epoch_or_iso(s.cast(pl.String, strict=False), unit)


def problem(value: object, unit: str | None) -> str | None:
    """Why an epoch number is not a timestamp in `unit` (None: not a number; the caller says 'cannot convert')."""
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    if number != number:  # NaN
        return None
    lo, hi = _bounds(unit or "ms")
    if not lo <= number <= hi:
        return f"{value} is out of range for epoch {_UNIT_NAMES[unit or 'ms']} (years 0001-9999)" + (
            "" if unit else "; if it is in another unit, set the option timestamp_unit ('s', 'us', 'ns')"
        )
    if unit is None and SECONDS_LIKE[0] <= abs(number) < SECONDS_LIKE[1]:
        try:
            as_seconds = f"{dt.datetime(1970, 1, 1) + dt.timedelta(seconds=number):%Y-%m-%d}"
        except OverflowError:  # -10^11 < value <= -10^9: as seconds, before year 1 (a dead letter, not a crash)
            as_seconds = "before 0001-01-01"
        return (
            f"{value} looks like epoch seconds ({as_seconds}), not milliseconds (a date in 1970-1973); "
            f"set the option timestamp_unit = 's', or 'ms' to read it as milliseconds"
        )
    return None


_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
