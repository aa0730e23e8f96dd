"""A parquet file read with the scan's columns and its predicate pushed into polars' reader.

The files source reads a parquet file through this path when no row of it
can become a dead letter: every declared column the query reads is in the
file with exactly its declared type (polars checks it against the footer
as it reads), and none is NOT NULL (`pushable`).
Then rows may be dropped before anyone looks at them, and the scan's
predicate (`Scan ... predicate=...` in EXPLAIN) goes into
`pl.scan_parquet`, which reads only the columns asked for and skips row
groups whose statistics rule the predicate out. Otherwise, or when the
pushed read fails in any way, the file is read whole and converted as
before (`files._read_parquet`), so dead letters and errors do not change.

The watermark needs the largest event time over every row of the file, not
only the rows the predicate keeps: the pushed query computes it over the
rows before the filter, in the same pass, so a source with a watermark
column does not prune row groups (the max needs them); one without does.

Only predicates that cannot fail and call no function are pushed
(`pushable_predicate`): a function may be a user's Python function, which
must see each row once, and a predicate that raises must raise in the
stage pipeline, which names the operator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import polars as pl

from stream_dsl.connectors.per_schema import per_schema
from stream_dsl.connectors.timestamps import newest_ms
from stream_dsl.ir import expr as E
from stream_dsl.ir.to_polars import can_fail, compile_predicate
from stream_dsl.ir.types import DataType, Schema

MAX_COLUMN = "__sd_file_max_event_time"  # the pushed query's watermark column maximum (over unfiltered rows)


@dataclass(frozen=True, slots=True)
class PushedPredicate:
    """A scan predicate the files source applies while it reads parquet files, and the columns it reads."""

    expr: pl.Expr
    columns: frozenset[str]


@dataclass(frozen=True, slots=True)
class PushedRead:
    """The file's rows that the predicate keeps, and the largest watermark-column value over all its rows."""

    frame: pl.DataFrame
    max_event_ms: int | None


@dataclass(frozen=True, slots=True)
class DeferredScan:
    """A batch's parquet files as a lazy scan, not read yet: the executor's source task runs it fused with its
    stage pipeline (`executor/query/fused_read.py`), or `read()`s it as the files source would have.

    `lazy` reads the scan's columns of every row; `predicate` is the pushed one (the rows the batch holds),
    `watermark` the column whose maximum over all rows the batch reports.
    """

    lazy: pl.LazyFrame
    columns: tuple[str, ...]  # of `lazy`, in order
    predicate: PushedPredicate | None
    watermark: str | None
    fallback: Callable[[], tuple[pl.DataFrame, list, int | None]]  # the eager read: rows, dead letters, max
    on_read: Callable[[], None]  # the source counts its pushed reads

    def stats(self) -> pl.LazyFrame:
        """One row: the batch's rows (`ROWS_COLUMN`, those the pushed predicate keeps) and, with a
        watermark, MAX_COLUMN over every row; run alongside the fused query (`pl.collect_all`)."""
        return self.lazy.select(self.statistics())

    def statistics(self) -> list[pl.Expr]:
        """`stats`' aggregations, which a group of batches' query runs per batch (`fused_group.py`)."""
        rows = pl.len() if self.predicate is None else self.predicate.expr.sum()
        exprs = [rows.cast(pl.Int64).alias(ROWS_COLUMN)]
        if self.watermark is not None:
            exprs.append(newest_ms(self.watermark).alias(MAX_COLUMN))
        return exprs

    def read(self) -> tuple[pl.DataFrame, list, int | None]:
        """The files read as the files source reads them (`FileSource._frames`): rows, dead letters, max."""
        return self.fallback()


ROWS_COLUMN = "__sd_file_rows"  # `DeferredScan.stats`: the rows the pushed predicate keeps

Engine = Literal["in-memory", "streaming"]
STREAMING_FROM_BYTES = 1 << 20  # a deferred scan of this many bytes of files or more runs on the streaming engine


@dataclass(frozen=True)
class DeferredParquet(DeferredScan):
    """A DeferredScan of parquet files with the polars engine its fused query runs on (`engine_for`)."""

    engine: Engine = "in-memory"
    size: int = 0  # bytes of the files (`files_bytes`)


def files_bytes(paths: Sequence[str]) -> int | None:
    """The files' bytes together; None when one is gone (the fused query then fails, and the full read reports it)."""
    try:
        return sum(os.path.getsize(p) for p in paths)
    except OSError:
        return None


def engine_for(paths: Sequence[str], size: int | None = None) -> Engine:
    """The polars engine of a fused query over these parquet files: "streaming" from STREAMING_FROM_BYTES on.

    The in-memory engine materializes every column the scan reads for all
    the files, then filters and aggregates; the streaming engine reads them
    in morsels, so a batch of several files touches a fraction of the
    memory. Measured on YSB's files (100k events, 0.6 MB each), one process,
    CPU per fused query: the same for 1 file (5 ms), 10-14 against 9-12 ms
    for 2, 15-18 against 21-27 ms for 5, and in a fresh worker process
    (every page touched for the first time) 27-37 against 57-63 ms for 5.
    Under 1 MB the streaming engine's start (50-100 us) is not paid back.
    `size`: the files' bytes, when the caller has them (`files_bytes`).
    """
    size = files_bytes(paths) if size is None else size
    return "streaming" if size is not None and size >= STREAMING_FROM_BYTES else "in-memory"


def pushable_predicate(predicate: E.Expr) -> PushedPredicate | None:
    """The predicate compiled for the reader, or None when it calls a function or can fail (module doc)."""
    if can_fail(predicate) or any(isinstance(n, (E.Func, E.Agg)) for n in E.walk(predicate)):
        return None
    try:
        compiled = compile_predicate(predicate)
    except Exception:
        return None
    return PushedPredicate(compiled, frozenset(E.columns_used(predicate)))


def pushable(schema: Schema) -> bool:
    """Whether the declared columns leave a file no way to hold a dead letter once polars has checked that
    each is there with exactly its declared type (`parquet_scan` makes it check): none is NOT NULL."""
    return all(not f.not_null and f.dtype is not DataType.NULL for f in schema)


def parquet_scan(
    path: str | list[str], schema: Schema, predicate: PushedPredicate | None, watermark: str | None
) -> pl.LazyFrame:
    """The lazy read of `schema`'s columns of the file(s), in order, keeping the rows `predicate` keeps; with
    `watermark`, the column's maximum over every row of the files comes along as MAX_COLUMN (module doc).

    Polars refuses (SchemaError, ColumnNotFoundError) a file where a column is missing or of another type:
    its rows need the conversions of the full read.
    """
    declared, columns = _shape(schema)
    # a local file (the files source reads no other): no cloud credentials to look for, which cost 20 us a scan
    lf = pl.scan_parquet(path, schema=declared, extra_columns="ignore", credential_provider=None).select(columns)
    if predicate is None:
        return lf
    if watermark is not None:
        lf = lf.with_columns(newest_ms(watermark).alias(MAX_COLUMN))
    return lf.filter(predicate.expr)


def _shape(schema: Schema) -> tuple[dict[str, pl.DataType], list[pl.Expr]]:
    """The polars types of `schema`'s columns and their select, built once per schema (`per_schema`): building
    them, with the column names parsed into expressions, cost 20-30 us a batch."""
    return per_schema(schema, _declared)


def _declared(schema: Schema) -> tuple[dict[str, pl.DataType], list[pl.Expr]]:
    declared = {f.name: f.dtype.polars for f in schema}
    return declared, [pl.col(name) for name in declared]


def read_pushed(
    path: str | list[str], schema: Schema, predicate: PushedPredicate | None, watermark: str | None
) -> PushedRead:
    """Run `parquet_scan`; the watermark maximum comes from the frame itself when nothing was filtered."""
    frame = parquet_scan(path, schema, predicate, watermark).collect()
    if watermark is None:
        return PushedRead(frame, None)
    if predicate is None:
        return PushedRead(frame, _as_int(frame.get_column(watermark).cast(pl.Int64).max()))
    newest = frame.drop_in_place(MAX_COLUMN)  # in place: a copying drop is a query of its own
    if frame.height:
        return PushedRead(frame, _as_int(newest[0]))
    # the predicate kept no row, and the maximum with them: read that one column
    value = pl.scan_parquet(path).select(newest_ms(watermark)).collect().item()
    return PushedRead(frame, _as_int(value))


def _as_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]
