"""A deferred parquet batch's fused query: the stage pipeline over the scan, and the batch's statistics.

The statistics are the rows the pushed predicate keeps and the watermark
column's maximum over every row (`DeferredScan.stats`), run in the same
`collect_all` as the stage. On the streaming engine (a large batch,
`parquet_scan.engine_for`) the rows are counted on the stage's own filtered
scan instead, which polars reads once for both (common subplan
elimination): summing the predicate over every row decoded its columns a
second time. Measured on 5 YSB files: 13.4-13.7 against 15.3-16.3 ms of
CPU per query. On the in-memory engine (one file) sharing was not cheaper.
"""

from __future__ import annotations

from typing import Any, Callable

import polars as pl

from executor import kernels
from optimizer.physical.stages import ScanOp
from stream_dsl.connectors.parquet_scan import MAX_COLUMN, ROWS_COLUMN, DeferredParquet, DeferredScan, Engine
from stream_dsl.connectors.timestamps import newest_ms
from stream_dsl.ir.to_polars import compile_predicate


def run_fused(
    pipeline: kernels.Pipeline, tables: Any, partition: bool, scan: DeferredScan
) -> tuple[pl.DataFrame, int, int | None]:
    """The stage's output over the batch (partitioned when `partition`), the rows read and the watermark
    column's maximum (None without one), in one `collect_all`; raises whatever the query raises."""

    def stage(rows: pl.LazyFrame, scanned: bool) -> list[pl.LazyFrame]:
        if scanned:
            return [pipeline.lazy_after_scan(rows, tables, partition)]
        return [pipeline.lazy_over(rows, scan.columns, tables, partition)]

    (out,), rows, newest = run_fused_all(pipeline, tables, scan, stage)
    return out, rows, newest


def run_fused_all(
    pipeline: kernels.Pipeline,
    tables: Any,
    scan: DeferredScan,
    stage: Callable[[pl.LazyFrame, bool], list[pl.LazyFrame]],
) -> tuple[list[pl.DataFrame], int, int | None]:
    """`run_fused` of a stage with several outputs (a sampled batch's counts, `fused_counts.py`): `stage` gets the
    scan, or (its flag True) the stage's own scan step over it, whose rows are then the rows read (module doc)."""
    engine: Engine = scan.engine if isinstance(scan, DeferredParquet) else "in-memory"  # `engine_for`
    kept = _kept(pipeline, tables, scan) if engine == "streaming" else None
    if kept is None:
        *outs, stats = pl.collect_all([*stage(scan.lazy, False), scan.stats()], engine=engine)
        rows = int(stats.get_column(ROWS_COLUMN)[0] or 0)
        newest = stats.get_column(MAX_COLUMN)[0] if MAX_COLUMN in stats.columns else None
        return outs, rows, None if newest is None else int(newest)
    queries = stage(kept, True)
    outputs = len(queries)
    queries.append(kept.select(pl.len().alias(ROWS_COLUMN)))
    if scan.watermark is not None:
        queries.append(scan.lazy.select(newest_ms(scan.watermark).alias(MAX_COLUMN)))
    frames = pl.collect_all(queries, engine=engine)
    newest = frames[outputs + 1].item() if scan.watermark is not None else None
    return frames[:outputs], int(frames[outputs].item()), None if newest is None else int(newest)


def same_predicate(pipeline: kernels.Pipeline, scan: DeferredScan) -> bool:
    """Whether the predicate pushed into the batch's read is the stage's scan step's own (so the rows the read
    keeps are the rows that step keeps)."""
    head = pipeline.ops[0] if pipeline.ops else None
    if scan.predicate is None or not isinstance(head, ScanOp) or head.predicate is None:
        return False
    return bool(scan.predicate.expr.meta.eq(compile_predicate(head.predicate)))


def _kept(pipeline: kernels.Pipeline, tables: Any, scan: DeferredScan) -> pl.LazyFrame | None:
    """The stage's scan step over the batch, when the rows it keeps are exactly the rows the pushed predicate
    keeps (the same predicate), so counting them counts the rows read; else None."""
    return pipeline.steps[0](scan.lazy, tables) if same_predicate(pipeline, scan) else None
