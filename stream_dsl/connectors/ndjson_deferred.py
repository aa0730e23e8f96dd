"""An ndjson batch handed to the executor unread, to run with its source stage in one lean polars query.

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
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from typing import Callable

import polars as pl

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


def _checked(path: str, schema: Schema) -> tuple[pl.LazyFrame, CheckedRead, int] | None:
    """One file read and converted lazily, with FAILED per row, and how (cached, `ndjson_small.py`); None when
    its conversions need `conform`."""
    with open(path, "rb") as f:
        data = f.read()
    if path.lower().endswith(".gz"):
        data = gzip.decompress(data)
    if not data.strip():
        return None
    plan = checked_read(data, schema)
    return None if plan is None else (plan.scan(data), plan, len(data))


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
    read = [p for p in parts if p is not None]
    if not read or len(read) < len(parts) or any(plan.epoch_ms != read[0][1].epoch_ms for _, plan, _ in read):
        return None
    checked = read[0][0] if len(read) == 1 else pl.concat([lazy for lazy, _, _ in read], how="vertical")
    plan = read[0][1]
    lazy = checked.select(plan.declared)
    size = sum(n for _, _, n in read)
    return DeferredNdjson(lazy, tuple(schema.names), None, watermark, fallback, on_read, checked, plan, size)
