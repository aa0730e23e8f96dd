"""`conform` of a clean batch as ONE polars query: every column's conversion and the failure mask together.

`decode.conform` converts column by column with Series operations, and
each of those runs a polars query of its own (about seven for a YSB
record: strip, cast, the epoch range check, the failure masks). On a batch
of 50 records that fixed cost is most of the decode. Here the same
conversions are expressions of one `select`, with one more column that says
whether any value of the row failed to convert. When no row failed (the
common case), that select is the result; when one did, or a column needs
what only `conform` does (a missing NOT NULL column, a list column, a
timestamp that is not an epoch number), `conform` runs as before and
words the dead letters. So a dead letter is always `conform`'s, exactly.
"""

from __future__ import annotations

import io

import polars as pl

from stream_dsl.connectors.timestamps import epoch_ms_expr
from stream_dsl.ir.types import DataType, Field, Schema

FAILED = "__conform_failed"
_CONVERTED_HERE = frozenset(
    {DataType.BIGINT, DataType.INT, DataType.DOUBLE, DataType.STRING, DataType.BOOLEAN, DataType.TIMESTAMP}
)


def _converted(raw: pl.Expr, dtype: pl.DataType, field: Field) -> pl.Expr | None:
    """`decode._convert` as an expression over a column of polars type `dtype` (None: none here; the full path).

    A timestamp held as text converts here only when it is an integer (epoch in the field's unit) written
    without spaces around it: other text (decimals, ISO-8601, ' 12') is NULL, which counts as a failure and sends
    the batch to the full path. Not stripping the text saves a third of a large file's read (`strip_chars` makes
    a new string per value, about 27 ms per 100k records); the full path strips, so the result is the same."""
    if field.dtype not in _CONVERTED_HERE:  # DECIMAL (exact from text), DATE, lists, structs: decode's own rules
        return None
    target = field.dtype.polars
    if dtype == target:
        return raw
    if field.dtype is DataType.TIMESTAMP:
        if dtype.is_integer():
            return epoch_ms_expr(raw, True, field.unit)
        if dtype == pl.String:
            return epoch_ms_expr(raw.cast(pl.Int64, strict=False), True, field.unit)
        return None
    if field.dtype.is_list or field.dtype.is_nested or isinstance(dtype, (pl.List, pl.Struct)):
        return None
    if dtype == pl.String:
        text = raw.str.strip_chars()
        if field.dtype is DataType.BOOLEAN:
            lowered = text.str.to_lowercase()
            return pl.when(lowered == "true").then(True).when(lowered == "false").then(False).otherwise(None)
        return text.cast(target, strict=False)
    if field.dtype is DataType.STRING and isinstance(dtype, pl.Datetime):
        return raw.dt.to_string("%Y-%m-%dT%H:%M:%S%.3f")
    return raw.cast(target, strict=False)


def conversions(dtypes: dict[str, pl.DataType], schema: Schema) -> tuple[list[pl.Expr], list[pl.Expr]] | None:
    """The converted columns of `schema` over columns of polars types `dtypes`, and the failure masks; None when
    the schema needs the full `conform`."""
    if not len(schema):
        return None
    columns: list[pl.Expr] = []
    failures: list[pl.Expr] = []
    for field in schema:
        if field.name not in dtypes:
            if field.not_null:
                return None
            columns.append(pl.lit(None, dtype=field.dtype.polars).alias(field.name))
            continue
        raw = pl.col(field.name)
        converted = _converted(raw, dtypes[field.name], field)
        if converted is None:
            return None
        if converted is not raw:
            failures.append(converted.is_null() & raw.is_not_null())
        if field.not_null:
            failures.append(converted.is_null())
        columns.append(converted.alias(field.name))
    return columns, failures


def _clean(frame: pl.LazyFrame | pl.DataFrame, converted: tuple[list[pl.Expr], list[pl.Expr]]) -> pl.DataFrame | None:
    columns, failures = converted
    query = frame.lazy().select(*columns, pl.any_horizontal(failures).alias(FAILED)) if failures else None
    out = (query if query is not None else frame.lazy().select(columns)).collect()
    if query is not None and out.drop_in_place(FAILED).any():  # drop_in_place and any run no query
        return None
    return out


def conform_clean(frame: pl.DataFrame, schema: Schema) -> pl.DataFrame | None:
    """`frame` cast to `schema` in one query when no value fails to convert; None when one does, or when the
    schema needs the full `conform` (the caller then runs it)."""
    converted = conversions(dict(frame.schema), schema) if frame.height else None
    return None if converted is None else _clean(frame, converted)


def blank(data: bytes) -> bool:
    """Whether ndjson text holds no record (empty, or only ASCII whitespace, as `bytes.strip` counts it), without
    copying it: `data.strip()` copied a whole file (about 20 ms for 20 MB)."""
    return not data or data.isspace()


def decode_clean(data: bytes, read_schema: dict[str, pl.DataType], schema: Schema) -> pl.DataFrame | None:
    """ndjson text read (as `read_schema`) and cast to `schema` in ONE query, when polars reads every line and no
    value fails to convert; None otherwise (the caller then decodes as before: the sieve, dead letters)."""
    converted = conversions(read_schema, schema)
    if converted is None or blank(data):
        return None
    try:
        return _clean(pl.scan_ndjson(io.BytesIO(data), schema=read_schema), converted)
    except Exception:  # a line polars refuses: the full decode sets it aside and says why
        return None
