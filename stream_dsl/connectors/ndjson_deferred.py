"""An ndjson batch handed to the executor unread, to run with its source stage in one polars query.

Parquet batches whose rows cannot be dead letters already go this way
(`parquet_scan.DeferredScan`, `executor/query/fused_read.py`). An ndjson
record can always be one (bad JSON, a value of the wrong type), so here the
read carries one more column, `FAILED`: whether a conversion of the row
failed (`conform_one_query`; epoch-ms timestamps are range-checked by the
read's statistics, `ndjson_small.py`). The executor runs the read, its
statistics and the stage (filter, join, partial aggregate, partitioning) in
one `collect_all` over a shared `cache` of the read
(`executor/query/ndjson_map.py`); when a row failed, or polars refuses a
line, it drops the result and reads the files as the files source always
did (`DeferredScan.read`), which sets the bad records aside with their
reasons. So a clean batch costs one query (it was ten, then two), and dead
letters stay exactly what the full decode says. Without the `cache` node,
one `collect_all` read the records twice and cost more than two queries.

Only a file's start is read here, for the types of its first record
(`read_types`); polars scans the file itself, except a gzip'ed one or one
whose name polars would take for a glob, which are scanned from their text,
and one shorter than that start, read whole already, which polars reads
from memory (cheaper than from the path: docs/performance.md).
A large file used to be read whole into Python first, and `bytes.strip`
copied it again to see whether it was blank (about 30 ms of 145 per
100k-record file).
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass, field, replace
from typing import Callable

import polars as pl

from stream_dsl.connectors.conform_one_query import blank
from stream_dsl.connectors.decode_ndjson import sniffs_like_whole
from stream_dsl.connectors.ndjson_small import CheckedRead, checked_read
from stream_dsl.connectors.parquet_scan import DeferredScan
from stream_dsl.ir.types import Schema


@dataclass(frozen=True)
class DeferredNdjson(DeferredScan):
    """A DeferredScan whose `checked` frame also says, in FAILED, which rows the full decode would set aside;
    the executor runs `checked`, not `lazy` (`fused_read.FusedMap.run`)."""

    checked: pl.LazyFrame | None = None
    plan: CheckedRead | None = None  # how `checked` reads: its statistics, its columns as declared (`ndjson_small`)
    size: int = 0  # bytes of ndjson text
    texts: tuple[bytes, ...] = ()  # every file's text, when each was read whole (small) and by `plan` (`fused_group`)
    memo: dict = field(default_factory=dict, compare=False, repr=False)  # what `ndjson_map` found of the batch


SNIFF_BYTES = 1 << 16  # a file's start, read to sniff its column types; polars scans the file itself
_GLOB = frozenset("*?[")  # polars expands these (and a leading '~') in a path: such a file is scanned from its bytes


def _text(path: str) -> tuple[str | io.BytesIO, bytes, int] | None:
    """What polars scans for `path` (the path itself, or the text: when polars cannot take the path, gzip or a
    name with glob characters, and when the file is shorter than the sniffed prefix, read whole already: from
    memory polars' read of a 50-record file cost 610-680 us of CPU, from its path 740-820), the text's start,
    which holds what `read_types` sniffs, and the text's size; None when the file's start holds no record (the
    full read then reads it)."""
    if path.lower().endswith(".gz") or not _GLOB.isdisjoint(path) or path.startswith("~"):
        with open(path, "rb") as f:
            data = f.read()
        data = gzip.decompress(data) if path.lower().endswith(".gz") else data
        return None if blank(data) else (io.BytesIO(data), data, len(data))
    with open(path, "rb", buffering=0) as f:  # only the start: a 20 MB file read whole into Python cost 3-8 ms
        head = _start(f)
        if len(head) < SNIFF_BYTES:  # the whole file: no fstat, and polars reads it from memory
            return None if blank(head) else (io.BytesIO(head), head, len(head))
        if not sniffs_like_whole(head):  # a first line longer than the prefix
            head += f.read()
        size = os.fstat(f.fileno()).st_size
    return None if blank(head) else (path, head, size)


def _start(f: io.RawIOBase) -> bytes:
    """A file's first SNIFF_BYTES (all of it when shorter), read unbuffered: a buffered reader's set-up and
    buffer cost half the 24 us a 12 KB file's `_text` took. A raw read may return less than asked before the
    end, so it reads until the end or the prefix is full."""
    head = f.read(SNIFF_BYTES) or b""
    while 0 < len(head) < SNIFF_BYTES:
        more = f.read(SNIFF_BYTES - len(head))
        if not more:
            break
        head += more
    return head


def _checked(path: str, schema: Schema) -> tuple[pl.LazyFrame, CheckedRead, int, bytes | None] | None:
    """One file read and converted lazily, with FAILED per row, how (cached, `ndjson_small.py`), its text's size
    and the text itself when it was read whole; None when its conversions need `conform`."""
    text = _text(path)
    if text is None:
        return None
    source, head, size = text
    plan = checked_read(head, schema)
    whole = head if isinstance(source, io.BytesIO) else None
    return None if plan is None else (plan.scan(source), plan, size, whole)


def deferred_ndjson(
    paths: list[str],
    schema: Schema,
    watermark: str | None,
    fallback: Callable[[], tuple[pl.DataFrame, list, int | None]],
    on_read: Callable[[], None],
    checked_schema: Schema | None = None,
) -> DeferredNdjson | None:
    """The batch's ndjson files as one checked lazy frame (module doc); None when a file cannot go this way
    (empty, unreadable, or a column that needs the full conversion): the source then reads the batch itself.
    `schema`: the columns read, none NOT NULL (the caller checks); `checked_schema`: those and the columns whose
    values are only checked (`decode.with_checked`: a record failing one is a dead letter whether or not it is
    read), which the frame leaves out."""
    wide = schema if checked_schema is None else checked_schema
    if not len(schema) or any(f.not_null for f in wide):
        return None
    try:
        parts = [_checked(path, wide) for path in paths]
    except Exception:  # a file deleted or unreadable: the full read reports it
        return None
    read = [p for p in parts if p is not None]
    if not read or len(read) < len(parts) or any(plan.epoch_ms != read[0][1].epoch_ms for _, plan, _, _ in read):
        return None
    checked = read[0][0] if len(read) == 1 else pl.concat([lazy for lazy, _, _, _ in read], how="vertical")
    first = read[0][1]
    plan = first if wide is schema else _narrowed(first, wide, schema)
    lazy = checked.select(plan.declared)
    size = sum(n for _, _, n, _ in read)
    whole = all(text is not None and p is first for _, p, _, text in read)
    texts = tuple(text for _, _, _, text in read if text is not None) if whole else ()
    return DeferredNdjson(lazy, tuple(schema.names), None, watermark, fallback, on_read, checked, plan, size, texts)


def _narrowed(plan: CheckedRead, wide: Schema, schema: Schema) -> CheckedRead:
    """`plan` (of `wide`) giving only the columns of `schema`: its select and statistics still check every column."""
    keep = set(schema.names)
    return replace(plan, declared=tuple(e for e, f in zip(plan.declared, wide) if f.name in keep))
