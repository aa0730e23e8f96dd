"""CAST between SQL types with DuckDB's conversion rules (see `stream_dsl.ir.to_polars` for the list)."""

from __future__ import annotations

import polars as pl

from stream_dsl.ir import dates, decimals
from stream_dsl.ir.to_polars_checks import CastFailure, cast_checked
from stream_dsl.ir.types import DataType

T = DataType


def cast(x: pl.Expr, source: DataType, target: DataType) -> pl.Expr:
    """CAST(x AS target) from `source`, with SQL conversion rules (see the module doc)."""
    if source is target:
        return x
    if source is T.NULL:  # x itself, typed: NULLIF(NULL, j) is a NULL per row, a bare literal one row
        return x.cast(target.polars)
    if source.is_list or target.is_list:  # element by element (to_polars_lists.py)
        from stream_dsl.ir.to_polars_lists import cast_list

        return cast_list(x, source, target)
    if target is T.DATE:
        return dates.cast_to_date(x, source)
    if source is T.DATE:
        return dates.cast_from_date(x, target)
    if target.is_decimal:
        return decimals.cast_to_decimal(x, source, target)
    if source.is_decimal:
        return decimals.cast_from_decimal(x, source, target)
    if source.is_struct and target.is_struct:  # by field name (functions_structs.py)
        from stream_dsl.ir.functions_structs import cast_struct

        return cast_struct(x, source, target, cast)
    if target is T.STRING:
        return to_string(x, source)
    if source is T.STRING:
        return _from_string(x, target)
    if target.is_integer:
        if source is T.DOUBLE:
            x = x.round(0, mode="half_to_even")
        elif source is T.TIMESTAMP:
            x = x.dt.epoch("ms")
        elif source is T.INTERVAL:
            x = x.dt.total_milliseconds()
        return _checked_cast(x, target)
    if target is T.DOUBLE:
        if source is T.TIMESTAMP:
            return x.dt.epoch("ms").cast(pl.Float64)
        return x.cast(pl.Float64)
    if target is T.BOOLEAN:
        if source.is_numeric:
            return x != 0
        raise CastFailure(f"cannot CAST {source.value} to BOOLEAN")
    if target is T.TIMESTAMP:
        if source.is_numeric:
            return epoch_ms_to_timestamp(x)
        raise CastFailure(f"cannot CAST {source.value} to TIMESTAMP")
    raise CastFailure(f"cannot CAST {source.value} to {target.value}")


# TIMESTAMPs are those of years 1 to 9999 (Python's datetime, which results are read into), in epoch ms.
TIMESTAMP_MIN_MS, TIMESTAMP_MAX_MS = -62_135_596_800_000, 253_402_300_799_999


def in_timestamp_range(ms: pl.Expr) -> pl.Expr:
    return (ms >= TIMESTAMP_MIN_MS) & (ms <= TIMESTAMP_MAX_MS)


def epoch_ms_to_timestamp(x: pl.Expr) -> pl.Expr:
    """A number read as epoch milliseconds; one outside years 1 to 9999 raises CastFailure."""
    ms = x.cast(pl.Int64, strict=False)
    value = pl.when(in_timestamp_range(ms)).then(ms).cast(pl.Datetime("ms"))
    return cast_checked(x, value, T.TIMESTAMP)


def _checked_cast(x: pl.Expr, target: DataType) -> pl.Expr:
    """A numeric cast that fails loudly on overflow instead of wrapping or nulling."""
    converted = x.cast(target.polars, strict=False)
    return cast_checked(x, converted, target)


def to_string(x: pl.Expr, source: DataType) -> pl.Expr:
    if source is T.STRING:
        return x
    if source is T.NULL:
        return pl.lit(None, dtype=pl.String)
    if source is T.TIMESTAMP:
        whole = x.dt.strftime("%Y-%m-%d %H:%M:%S")
        fraction = x.dt.strftime("%Y-%m-%d %H:%M:%S%.3f").str.replace(r"0+$", "")
        return pl.when(x.dt.millisecond() != 0).then(fraction).otherwise(whole)
    if source is T.INTERVAL:
        return x.dt.total_milliseconds().cast(pl.String) + pl.lit(" ms")
    if source is T.DOUBLE:
        return x.map_batches(_doubles_as_text, return_dtype=pl.String, is_elementwise=True)
    return x.cast(pl.String)


def _doubles_as_text(values: pl.Series) -> pl.Series:
    """DOUBLEs written as DuckDB writes them, which is Python's repr: 'nan', '1e-07', '2.5e-05', '1e+20'.

    (Polars writes 'NaN', '1e-7' and '0.000025'.)
    """
    return pl.Series(
        values.name, [None if v is None else repr(v) for v in values.cast(pl.Float64).to_list()], dtype=pl.String
    )


_TRUE = ("true", "t", "yes", "y", "1", "on")
_FALSE = ("false", "f", "no", "n", "0", "off")
_TS_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def _from_string(x: pl.Expr, target: DataType) -> pl.Expr:
    s = x.str.strip_chars()
    if target.is_integer:
        as_int = s.cast(pl.Int64, strict=False)
        as_float = s.cast(pl.Float64, strict=False).round(0, mode="half_away_from_zero")
        value = pl.coalesce(as_int, as_float.cast(pl.Int64, strict=False)).cast(target.polars, strict=False)
    elif target is T.DOUBLE:
        value = s.cast(pl.Float64, strict=False)
    elif target is T.BOOLEAN:
        low = s.str.to_lowercase()
        value = pl.when(low.is_in(_TRUE)).then(True).when(low.is_in(_FALSE)).then(False).otherwise(None)
    elif target is T.TIMESTAMP:
        value = parse_timestamp(s)
    else:
        raise CastFailure(f"cannot CAST STRING to {target.value}")
    return cast_checked(x, value, target)


def parse_timestamp(s: pl.Expr) -> pl.Expr:
    """ISO-8601 text (date, date time, optional fraction, 'T', 'Z' or ±hh:mm) or epoch ms → Datetime('ms')."""
    norm = s.str.replace("T", " ", literal=True)
    offset = norm.str.extract(r"([+-]\d{2}):?(\d{2})$", 0)
    body = norm.str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "")
    parsed = pl.coalesce([body.str.to_datetime(f, time_unit="ms", strict=False) for f in _TS_FORMATS])
    sign = pl.when(offset.str.starts_with("-")).then(-1).otherwise(1)
    hours = offset.str.slice(1, 2).cast(pl.Int64, strict=False)
    minutes = norm.str.extract(r"[+-]\d{2}:?(\d{2})$", 1).cast(pl.Int64, strict=False)
    shift_ms = (sign * (hours * 60 + minutes) * 60_000).fill_null(0)
    utc = parsed.dt.epoch("ms") - shift_ms
    epoch = pl.when(s.str.contains(r"^-?\d{9,}$")).then(s.cast(pl.Int64, strict=False))
    ms = pl.coalesce(utc, epoch)
    return pl.when(in_timestamp_range(ms)).then(ms).cast(pl.Datetime("ms"))
