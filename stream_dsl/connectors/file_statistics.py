"""Statistics of a `files` source at plan time (see connectors/statistics.py).

Rows per batch: parquet row counts from metadata; for text formats the
bytes per batch over the bytes per row sampled from the first file. A
stream reads at most `max_files_per_batch` files a batch (the largest are
assumed). Distinct values are counted only in tables of at most
`SMALL_TABLE_BYTES` (read once).
"""

from __future__ import annotations

import os

from stream_dsl.connectors.statistics import Statistics
from stream_dsl.ir.definitions import SourceDef

SMALL_TABLE_BYTES = 4 << 20  # a files table up to this size is read at plan time for its ndv
SAMPLE_BYTES = 1 << 16  # bytes read from a text file to estimate its bytes per row


def statistics(definition: SourceDef, batch_interval_ms: int) -> Statistics:
    """Rows per batch and size from the files present now; ndv counted in small tables."""
    from stream_dsl.connectors.file_formats import format_of
    from stream_dsl.connectors.files import FileOptions, list_files

    options = FileOptions.parse(definition)
    paths = list_files(options, f"{definition.kind} '{definition.name}'", allow_missing=True)
    if not paths:
        return Statistics()
    size = sum(os.path.getsize(p) for p in paths)
    batch = paths
    if definition.kind == "stream" and options.max_files_per_batch is not None:
        batch = sorted(paths, key=os.path.getsize, reverse=True)[: options.max_files_per_batch]
    fmt = options.format or format_of(batch[0])
    if fmt == "parquet":
        import polars as pl

        rows: float | None = float(sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in batch))
    else:
        per_row = _bytes_per_row(batch[0])
        rows = None if per_row is None else sum(os.path.getsize(p) for p in batch) / per_row

    def ndv(column: str) -> float | None:
        if definition.kind != "table" or size > SMALL_TABLE_BYTES:
            return None
        from stream_dsl.connectors import open_table

        return float(open_table(definition).read([column])[column].n_unique())

    return Statistics(rows_per_batch=rows, bytes=size, bounded=not options.watch, ndv=ndv)


def _bytes_per_row(path: str) -> float | None:
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    if not sample:
        return None
    return len(sample) / max(sample.count(b"\n"), 1)
