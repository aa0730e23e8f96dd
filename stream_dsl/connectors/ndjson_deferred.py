"""An ndjson batch handed to the executor unread, to run with its source stage in two lean polars queries.

Parquet batches whose rows cannot be dead letters already go this way
(`parquet_scan.DeferredScan`, `executor/query/fused_read.py`). An ndjson
record can always be one (bad JSON, a value of the wrong type), so here the
read carries one more column, `FAILED`: whether a conversion of the row
failed (`conform_one_query`). The executor runs the read and the
conversions in one query, checks that column (no query), and runs the
stage (filter, join, partial aggregate, partitioning) in a second; when a
row failed, or polars refuses a line, it drops the result and reads the
files as the files source always did (`DeferredScan.read`), which sets the
bad records aside with their reasons. So a clean batch costs two queries
(it was ten), and dead letters stay exactly what the full decode says.
One `collect_all` of the stage and the statistics, as parquet does, cost
more CPU on 50 records (1.5 against 2.3-2.5 ms). From about 1 MiB of text
it costs less (polars reads the files once for both and no frame of every
row is made), so a large batch runs that way (`fused_read.ONE_QUERY_FROM`).

Only a file's start is read here, for the types of its first record
(`read_types`); polars scans the file itself, except a gzip'ed one or one
whose name polars would take for a glob, which are scanned from their text.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass, field
from typing import Callable

import polars as pl

from stream_dsl.connectors.conform_one_query import FAILED, blank, conversions
from stream_dsl.connectors.decode_ndjson import read_types, sniffs_like_whole
from stream_dsl.connectors.parquet_scan import DeferredScan
from stream_dsl.ir.types import Schema


@dataclass(frozen=True)
class DeferredNdjson(DeferredScan):
    """A DeferredScan whose `checked` frame also says, in FAILED, which rows the full decode would set aside;
    the executor runs `checked`, not `lazy` (`fused_read.FusedMap.run`)."""

    checked: pl.LazyFrame | None = None
    size: int = 0  # bytes of ndjson text: a large batch runs its stage and checks in one query (`fused_read.py`)
    memo: dict = field(default_factory=dict, compare=False, repr=False)  # `fused_read.decoded_ndjson`: run once


SNIFF_BYTES = 1 << 16  # a file's start, read to sniff its column types; polars scans the file itself
_GLOB = frozenset("*?[")  # polars expands these (and a leading '~') in a path: such a file is scanned from its bytes


def _text(path: str) -> tuple[str | io.BytesIO, bytes, int] | None:
    """What polars scans for `path` (the path itself, or the text when polars cannot take the path: gzip, a
    name with glob characters), the text's start, which holds what `read_types` sniffs, and the text's size;
    None when the file holds no record (the full read then returns its empty frame)."""
    if path.lower().endswith(".gz") or not _GLOB.isdisjoint(path) or path.startswith("~"):
        with open(path, "rb") as f:
            data = f.read()
        data = gzip.decompress(data) if path.lower().endswith(".gz") else data
        return None if blank(data) else (io.BytesIO(data), data, len(data))
    with open(path, "rb") as f:  # only the start: a 20 MB file read whole into Python cost 3-8 ms of CPU
        head = f.read(SNIFF_BYTES)
        if len(head) == SNIFF_BYTES and not sniffs_like_whole(head):  # a first line longer than the prefix
            head += f.read()
        size = os.fstat(f.fileno()).st_size
    return None if blank(head) else (path, head, size)


def _checked(path: str, schema: Schema) -> tuple[pl.LazyFrame, int] | None:
    """One file read and converted lazily, with FAILED per row, and its text's size; None when its conversions
    need `conform`."""
    text = _text(path)
    if text is None:
        return None
    source, head, size = text
    read_schema = read_types(head, schema)
    converted = conversions(read_schema, schema)
    if converted is None:
        return None
    columns, failures = converted
    failed = pl.any_horizontal(failures) if failures else pl.lit(False)
    return pl.scan_ndjson(source, schema=read_schema).select(*columns, failed.alias(FAILED)), size


def deferred_ndjson(
    paths: list[str],
    schema: Schema,
    watermark: str | None,
    fallback: Callable[[], tuple[pl.DataFrame, list, int | None]],
    on_read: Callable[[], None],
) -> DeferredNdjson | None:
    """The batch's ndjson files as one checked lazy frame (module doc); None when a file cannot go this way
    (empty, unreadable, or a column that needs the full conversion): the source then reads the batch itself.
    `schema`: the columns read, none NOT NULL (the caller checks)."""
    if not len(schema) or any(f.not_null for f in schema):
        return None
    try:
        parts = [_checked(path, schema) for path in paths]
    except Exception:  # a file deleted or unreadable: the full read reports it
        return None
    if not parts or any(p is None for p in parts):
        return None
    frames = [p[0] for p in parts if p is not None]
    checked = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")
    names = tuple(schema.names)
    size = sum(p[1] for p in parts if p is not None)
    return DeferredNdjson(checked.select(names), names, None, watermark, fallback, on_read, checked, size)
