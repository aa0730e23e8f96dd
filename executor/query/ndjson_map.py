"""An ndjson batch's map task as ONE polars query: the read, the conversions, the checks and the stage.

The read of a deferred ndjson batch (`connectors/ndjson_deferred.py`,
`ndjson_small.py`) says per row whether a value failed to convert, and
leaves epoch timestamps as integers whose range is still to be checked.
The stage (filter, join, partial aggregate, partitioning) may only keep
its output when no row failed; otherwise the batch is read the full way,
which sets the bad records aside. Run as two queries (the read, then the
stage over the rows in memory), a 50-record batch cost two fixed polars
query costs. Here the read is a `cache` node shared by two outputs of one
`pl.collect_all`: the stage over the rows with their declared types, and
one row of statistics (a failed conversion, an epoch value out of range,
the rows, the watermark column's maximum). When the statistics say a row
would be a dead letter, the stage's output is dropped and the batch goes
the full way, as before: the stage ran over rows it should not have seen,
but nothing of it is kept, and a stage that calls a Python function is
never fused (`fused_read.fuse_reader`). Measured on the YSB map task of
50 records: 0.74 ms of CPU against 1.27 for the two queries (one polars
thread), and without the `cache` node 1.47 (the file read twice); on a
file of 100k records the one query costs 70-78 ms, about what plain polars'
read of the file does. A batch sampled for `why` runs the same query with
its operators' rows counted in it (`run_checked_all`, `fused_counts.py`);
a batch whose fused query failed runs its operators over the rows of the
same read (`decoded`), not over the full decode.
"""

from __future__ import annotations

from typing import Callable

import polars as pl

from executor.state.step import collect_all
from stream_dsl.connectors.ndjson_deferred import DeferredNdjson
from stream_dsl.connectors.ndjson_small import clean

LEAN_BELOW_BYTES = 4 << 20  # ndjson text below this runs without polars' plan optimizations (`state.step.collect`)


def run_checked(
    scan: DeferredNdjson, stage: Callable[[pl.LazyFrame], pl.LazyFrame]
) -> tuple[pl.DataFrame, int, int | None] | None:
    """`stage`'s output over a deferred ndjson batch, its rows and the watermark column's maximum; None when a row
    of the batch would be a dead letter. Raises whatever the query raises."""
    ran = run_checked_all(scan, lambda rows: [stage(rows)])
    return None if ran is None else (ran[0][0], ran[1], ran[2])


def run_checked_all(
    scan: DeferredNdjson, stage: Callable[[pl.LazyFrame], list[pl.LazyFrame]]
) -> tuple[list[pl.DataFrame], int, int | None] | None:
    """`run_checked` of a stage with several outputs (a sampled batch's counts, `fused_counts.py`)."""
    plan, checked = scan.plan, scan.checked
    assert plan is not None and checked is not None  # a DeferredNdjson's (`deferred_ndjson`)
    base = checked.cache()
    queries = [*stage(base.select(plan.declared)), base.select(plan.statistics(scan.watermark))]
    *outs, row = collect_all(queries, lean=scan.size < LEAN_BELOW_BYTES)
    verdict = clean(row)
    if verdict is None:
        scan.memo["dead letters"] = True  # `decoded` need not read the batch again to find it
        return None
    rows, newest = verdict
    return outs, rows, newest


def decoded(scan: DeferredNdjson) -> tuple[pl.DataFrame, int | None] | None:
    """The batch's rows as declared and the watermark column's maximum, read in one query, for a batch that
    runs the two-step path (its fused query failed); None when a row would be a dead
    letter or polars refuses a line: the full read then sets the records aside with their reasons."""
    if scan.memo.get("dead letters"):
        return None
    try:
        ran = run_checked(scan, lambda rows: rows)
    except Exception:  # a line polars refuses: the full read words it
        return None
    return None if ran is None else (ran[0], ran[2])
