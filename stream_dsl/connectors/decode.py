"""Decode any polars frame into a declared schema (ndjson: `decode_ndjson.py`, csv: `decode_csv.py`).

Records that cannot be read (bad JSON, invalid UTF-8, a value of the wrong
type, an unparseable timestamp) become dead letters with their position and
a reason; the good records still come through.

TIMESTAMP columns accept epoch milliseconds (numbers or digit strings) or
ISO-8601 text, with or without an offset (converted to UTC), and come out as
`Datetime("ms")`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import polars as pl

from stream_dsl.connectors.base import DeadLetter
from stream_dsl.connectors.timestamps import problem as timestamp_problem, to_timestamp
from stream_dsl.ir.types import DataType, Field, Schema


# Where a row came from, for the dead letters of rows found bad after parsing.
Record = tuple[int, bytes]  # (1-based line number, raw bytes)


@dataclass(frozen=True, slots=True)
class Decoded:
    """Good rows in the declared schema, and the records that could not be read."""

    frame: pl.DataFrame
    dead_letters: tuple[DeadLetter, ...] = ()


def empty_frame(schema: Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema.to_polars())


def raw_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


def short_text(value: object, *, as_json: bool = False) -> str:
    """A value as at most 40 characters of text, for a dead letter's reason."""
    text = json.dumps(value) if as_json or not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


# ----------------------------------------------------------------- conversion


def _convert(s: pl.Series, field: Field) -> pl.Series:
    """`s` as the field's type, null where a value does not convert (callers compare null masks)."""
    dtype = field.dtype
    target = dtype.polars
    if s.dtype == target:
        return s
    if dtype is DataType.TIMESTAMP:
        return to_timestamp(s, field.unit)
    if s.dtype == pl.String and dtype is DataType.DATE:  # '2024-01-31', as CAST reads it
        from stream_dsl.ir.dates import from_text as date_from_text

        return s.to_frame().select(date_from_text(pl.col(s.name))).to_series().alias(s.name)
    if s.dtype == pl.String and dtype.is_decimal:  # exactly, with DuckDB's rounding (decode_decimal.py)
        from stream_dsl.connectors.decode_decimal import from_text

        return from_text(s, dtype)
    if s.dtype == pl.String:
        text = s.str.strip_chars()
        if dtype is DataType.BOOLEAN:
            lowered = text.str.to_lowercase()
            return (
                pl.select(pl.when(lowered == "true").then(True).when(lowered == "false").then(False).otherwise(None))
                .to_series()
                .alias(s.name)
            )
        return text.cast(target, strict=False)
    if dtype is DataType.STRING and isinstance(s.dtype, pl.Datetime):
        return s.dt.to_string("%Y-%m-%dT%H:%M:%S%.3f")
    return s.cast(target, strict=False)


def _null_elements(s: pl.Series) -> pl.Series:
    """Per list, how many of its elements are NULL (an element that did not convert is one more)."""
    return s.list.eval(pl.element().is_null().sum()).list.first()


def _convert_scalar(s: pl.Series, dtype: DataType) -> pl.Series:
    return _convert(s, Field(s.name, dtype))


def _convert_struct(raw: pl.Series, field: Field) -> tuple[pl.Series, pl.Series]:
    from stream_dsl.connectors.decode_struct import convert_struct

    return convert_struct(raw, field.dtype, _convert_scalar)


def conversion_problem(value: object, field: Field) -> str:
    """Why `value` does not convert to the field's type, as a dead letter's reason."""
    if field.dtype.is_struct:
        from stream_dsl.connectors.decode_struct import struct_problem

        return struct_problem(value, field.dtype, _convert_scalar)
    found = timestamp_problem(value, field.unit) if field.dtype is DataType.TIMESTAMP else None
    return found or f"cannot convert '{short_text(value)}' to {field.dtype.value}"


def _default_locate(frame: pl.DataFrame) -> Callable[[int], Record]:
    def locate(i: int) -> Record:
        return i + 1, frame.slice(i, 1).write_ndjson().strip().encode()

    return locate


def conform(
    frame: pl.DataFrame,
    schema: Schema,
    *,
    source: str,
    origin: str,
    locate: Callable[[int], Record] | None = None,
    row_label: str = "row",
    locate_many: Callable[[list[int]], list[Record]] | None = None,
    problem: Callable[[object, Field], str] | None = None,
) -> Decoded:
    """Cast `frame` to `schema` (missing columns are NULL); rows with a value that does not convert are dead.

    `locate(i)` gives the line number and raw bytes of row i for its dead letter
    (`locate_many`: of several rows at once); by default the position is the row
    number and the raw text the row as JSON.
    """
    columns: list[pl.Series] = []
    bad_reason: dict[int, str] = {}
    for field in schema:
        if field.name not in frame.columns:
            if field.not_null:
                for i in range(frame.height):
                    bad_reason.setdefault(i, f"column '{field.name}' is NOT NULL but the record has no value")
            columns.append(pl.Series(field.name, [None] * frame.height, dtype=field.dtype.polars))
            continue
        raw = frame.get_column(field.name)
        converted = _convert(raw, field) if not field.dtype.is_struct else raw
        failed = None if converted is raw else converted.is_null() & raw.is_not_null()  # no cast: nothing fails
        if failed is not None and field.dtype.is_list and isinstance(raw.dtype, pl.List):
            failed = failed | (_null_elements(converted) > _null_elements(raw)).fill_null(False)
        if field.dtype.is_struct and raw.dtype != field.dtype.polars:  # field by field (decode_struct.py)
            converted, failed = _convert_struct(raw, field)
        if failed is not None and failed.any():
            failed_at = failed.arg_true()
            reasons: dict[object, str] = {}  # per distinct bad value: bad data repeats itself ('N/A', '')
            for i, value in zip(failed_at.to_list(), raw.gather(failed_at).to_list()):
                if i not in bad_reason:
                    reason = reasons.get(value) if isinstance(value, (str, int, float)) else None
                    if reason is None:
                        reason = f"column '{field.name}': {(problem or conversion_problem)(value, field)}"
                        if isinstance(value, (str, int, float)):
                            reasons[value] = reason
                    bad_reason[i] = reason
        if field.not_null and converted.null_count():
            for i in converted.is_null().arg_true().to_list():
                bad_reason.setdefault(i, f"column '{field.name}' is NOT NULL but the record has no value")
        columns.append(converted.alias(field.name))
    result = pl.DataFrame(columns) if columns else pl.DataFrame(height=frame.height)
    if not bad_reason:
        return Decoded(result)
    prefix = "" if locate is not None or locate_many is not None else f"{row_label} "
    where = sorted(bad_reason)
    if locate_many is None:
        one = locate or _default_locate(frame)
        found = [one(i) for i in where]
    else:
        found = locate_many(where)
    letters = [
        DeadLetter(source, f"{origin}:{prefix}{line}", raw_text(raw_bytes), bad_reason[i])
        for i, (line, raw_bytes) in zip(where, found)
    ]
    keep = pl.Series([True] * frame.height).scatter(where, False)
    return Decoded(result.filter(keep), tuple(letters))


def with_checked(schema: Schema, full: Schema | None) -> Schema:
    """`schema` plus the columns of `full` it lacks that a record can fail: NOT NULL ones, and every one whose
    declared type a value may not convert to (all but STRING, which takes any value).

    A record that fails one is a dead letter whether or not the query reads
    that column, so the rows a query sees do not depend on projection
    pushdown: with the optimizer off, every column is read and checked.
    """
    if full is None:
        return schema
    extra = tuple(f for f in full if can_fail(f) and f.name not in schema)
    return Schema(schema.fields + extra) if extra else schema


def can_fail(field: Field) -> bool:
    """Whether a record's value can make it a dead letter in this column (`with_checked`)."""
    return field.not_null or field.dtype is not DataType.STRING


def narrow(decoded: Decoded, schema: Schema) -> Decoded:
    """Only the columns of `schema` (drops the columns read just to check them: `with_checked`)."""
    if decoded.frame.columns == list(schema.names):
        return decoded
    if not len(schema):  # only the row count matters (COUNT(*)): select([]) would lose the height
        return Decoded(pl.DataFrame(height=decoded.frame.height), decoded.dead_letters)
    return Decoded(decoded.frame.select(schema.names), decoded.dead_letters)


def __getattr__(name: str) -> Any:
    """`decode_ndjson` moved to `decode_ndjson.py`, `CsvOptions` and `decode_csv` to `decode_csv.py`;
    the old import path (the connector authors' API) keeps working."""
    if name in ("CsvOptions", "decode_csv"):
        from stream_dsl.connectors import decode_csv as module

        return getattr(module, name)
    if name == "decode_ndjson":
        from stream_dsl.connectors import decode_ndjson as ndjson

        return ndjson.decode_ndjson
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
