"""What a small ndjson batch's read builds that is the same every batch, built once; and a leaner conversion.

A deferred ndjson batch (`ndjson_deferred.py`) is one polars query: read
the file, convert each column, say per row whether a conversion failed
(FAILED). On a 50-record file the Python around that query cost about as
much as the query: the read types sniffed from the first line, then every
column's conversion and failure expressions built anew (about 40 polars
expression objects per batch). They depend only on the declared columns
and on whether each TIMESTAMP column's first value is an epoch integer, so
`checked_read` keeps them per (columns, sniffed kinds).

And the query itself was mostly the epoch check of a TIMESTAMP column
(`timestamps.epoch_ms_expr`: a range test, the "looks like seconds" test
and a `when`), written out twice (the value and its failure mask) on
plans run without common subexpression elimination: 0.5 ms of a 0.8 ms
query. For a column read in milliseconds (the default unit, or 'ms') the
read now only parses the integer (a text that is not one still counts as
FAILED there); the range checks are aggregates of the batch's one row of
`statistics` (any value out of years 1-9999, any that looks like epoch
seconds), computed in the same query as the stage
(`executor/query/ndjson_map.py`), and a value out of range fails the batch
the same way: the executor reads it the full way, which sets the record
aside with its reason. So what is clean, the rows, and every dead letter
are what `conversions` gives (`tests/test_psmall_cached_read.py`).
"""

from __future__ import annotations

import io
import dataclasses
from dataclasses import dataclass
from typing import Any

import polars as pl

from stream_dsl.connectors.conform_one_query import FAILED, conversions
from stream_dsl.connectors.decode_ndjson import first_record, is_integer, read_types
from stream_dsl.connectors.per_schema import per_schema
from stream_dsl.connectors.timestamps import MAX_MS, MIN_MS, MS, SECONDS_LIKE, newest_ms
from stream_dsl.ir.types import DataType, Field, Schema

_CACHE_LIMIT = 256  # plans kept (a source has one or two: its columns, and whether timestamps are integers)


@dataclass(frozen=True)
class CheckedRead:
    """The read of a file of `read_types` as `schema`: the select of the converted columns and FAILED, and the
    epoch columns left as Int64 by the select (`statistics` checks them, `declared` makes them timestamps)."""

    read_types: dict[str, pl.DataType]
    select: tuple[pl.Expr, ...]
    epoch_ms: dict[str, str | None]  # column -> its declared unit (None or 'ms'): parsed, checked by `statistics`
    declared: tuple[pl.Expr, ...]  # over the select: the columns with their declared types, none checked
    _statistics: dict[str | None, tuple[pl.Expr, ...]] = dataclasses.field(default_factory=dict, compare=False)

    def scan(self, source: str | io.BytesIO) -> pl.LazyFrame:
        """The rows of a file (its path, or its text) converted, with FAILED; the epoch columns still Int64 (see
        `statistics`)."""
        return pl.scan_ndjson(source, schema=self.read_types).select(self.select)

    def statistics(self, watermark: str | None) -> tuple[pl.Expr, ...]:
        """One row over the select's rows: whether a conversion failed, the rows, whether an epoch value does not
        convert (years 1-9999 and, without a declared unit, none that looks like epoch seconds, as
        `timestamps.epoch_ms_expr` says), and the `watermark` column's maximum (epoch ms). See `clean`."""
        kept = self._statistics.get(watermark)
        if kept is None:
            kept = self._statistics[watermark] = _statistics(self.epoch_ms, watermark)
        return kept


def clean(statistics: pl.DataFrame) -> tuple[int, int | None] | None:
    """The rows and the watermark column's maximum, from a `CheckedRead.statistics` row; None when a row would
    be a dead letter (the batch then takes the full read, which words the reasons)."""
    return clean_row(statistics.row(0))


def clean_row(row: tuple) -> tuple[int, int | None] | None:
    """`clean` of the statistics row's values."""
    if any(row[2:-1]) or row[0]:  # FAILED, or an epoch value out of range
        return None
    return int(row[1]), row[-1]


def _statistics(epoch_ms: dict[str, str | None], watermark: str | None) -> tuple[pl.Expr, ...]:
    exprs = [pl.col(FAILED).any().alias("failed"), pl.len().alias("rows")]
    small, large = SECONDS_LIKE
    for i, (name, unit) in enumerate(epoch_ms.items()):
        v = pl.col(name)
        wrong = (v < MIN_MS) | (v > MAX_MS)
        if unit is None:
            wrong = wrong | v.abs().is_between(small, large, closed="left")
        exprs.append(wrong.any().alias(f"wrong_{i}"))
    newest = pl.lit(None, dtype=pl.Int64) if watermark is None else newest_ms(watermark)
    return (*exprs, newest.alias("newest"))


def checked_read(data: bytes, schema: Schema) -> CheckedRead | None:
    """The cached read as `schema` of ndjson text that starts with `data` (its first record whole), None when a
    column needs the full decode (as `conversions` says)."""
    shape = _shape_of(schema)
    key = (shape.key, _epoch_integers(data, shape.timestamps))
    try:
        return _PLANS[key]
    except KeyError:
        pass
    plan = _plan(read_types(data, schema), schema)
    if len(_PLANS) >= _CACHE_LIMIT:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def empty_batch(schema: Schema) -> pl.DataFrame:
    """A frame of `schema` without rows, for a batch the executor reads itself: a copy of one kept per schema
    (building it from the schema costs 40 us, a copy 1)."""
    return _shape_of(schema).empty.clear()


@dataclass(frozen=True)
class _Shape:
    """What a schema gives every batch: its key (`_schema_key`), its TIMESTAMP columns, an empty frame."""

    key: tuple[Any, ...]
    timestamps: tuple[str, ...]
    empty: pl.DataFrame


def _shape_of(schema: Schema) -> _Shape:
    """The schema's `_Shape`, kept per schema object (`per_schema`: a source keeps one for all its batches)."""
    return per_schema(schema, _shape)


def _shape(schema: Schema) -> _Shape:
    return _Shape(
        _schema_key(schema),
        tuple(f.name for f in schema if f.dtype is DataType.TIMESTAMP),
        pl.DataFrame(schema=schema.to_polars()),
    )


_PLANS: dict[tuple[Any, ...], CheckedRead | None] = {}


def _plan(dtypes: dict[str, pl.DataType], schema: Schema) -> CheckedRead | None:
    columns: list[pl.Expr] = []
    failures: list[pl.Expr] = []
    epoch: dict[str, str | None] = {}
    for field in schema:
        parsed = _epoch_integer(field, dtypes.get(field.name))
        if parsed is not None:
            raw = pl.col(field.name)
            if parsed is not raw:
                failures.append(parsed.is_null() & raw.is_not_null())
            columns.append(parsed.alias(field.name))
            epoch[field.name] = field.unit
            continue
        converted = conversions(dtypes, Schema((field,)))  # the column's own conversion, exactly
        if converted is None:
            return None
        columns += converted[0]
        failures += converted[1]
    if not columns:
        return None
    failed = pl.any_horizontal(failures) if failures else pl.lit(False)
    declared = tuple(pl.col(f.name).cast(MS) if f.name in epoch else pl.col(f.name) for f in schema)
    return CheckedRead(dtypes, (*columns, failed.alias(FAILED)), epoch, declared)


def _epoch_integer(field: Field, dtype: pl.DataType | None) -> pl.Expr | None:
    """The parsed epoch integer of a TIMESTAMP column in milliseconds read as Int64 or text (None: the column
    converts as `conversions` says)."""
    if field.dtype is not DataType.TIMESTAMP or field.unit not in (None, "ms") or field.not_null:
        return None
    if dtype == pl.Int64:
        return pl.col(field.name)
    if dtype == pl.String:  # not stripped, as `conform_one_query._converted`: ' 12' fails here, the full path reads it
        return pl.col(field.name).cast(pl.Int64, strict=False)
    return None


def _schema_key(schema: Schema) -> tuple[Any, ...]:
    """The schema as a key: Field's equality leaves out `not_null` and `unit`, which change the conversions."""
    return tuple((f.name, f.dtype, f.not_null, f.unit) for f in schema)


def _epoch_integers(data: bytes, timestamps: tuple[str, ...]) -> tuple[str, ...] | None:
    """What `read_types` reads from the first record: the TIMESTAMP columns (of `timestamps`) whose value there
    is an integer (None: the first line is not a JSON object)."""
    if not timestamps:
        return ()
    obj = first_record(data)
    if obj is None:
        return None
    return tuple(name for name in timestamps if is_integer(obj.get(name)))
