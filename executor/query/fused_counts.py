"""A batch sampled for `why` counted inside its stage's one polars query, not one operator at a time.

`why` needs the rows into and out of each operator of a stage on every
`diagnose_every`-th batch (`diagnostics.py`). Run one operator at a time,
with a collect per operator, that batch materialized every intermediate
frame and left the fused one-query path of its source (the files read
whole first): on `bench ysb`'s parquet batch of 5 files, 72-76 ms of CPU
in a fresh worker against 20 ms for a fused batch.

Here the stage runs as the one query it always is, with a count only where
an operator can change the number of rows:

- a projection (and the changelog mark, a reduce stage's read) keeps every
  row: its rows out are its rows in, no count;
- the scan step keeps the rows of a batch whose read already applied the
  same predicate (pushed into the parquet reader): its rows are the rows read;
- the last operator that can change the row count has the output's rows
  (every one after it keeps them), unless the pipeline merges its rows
  after the operators (`combine.CombinedPipeline`);
- any other (a filter, a join, a partial aggregate, an unnest) gets its
  output `cache()`d and a `len()` over the cache as one more output of the
  same `pl.collect_all`.

The caches matter: with polars' common subplan elimination alone to share
the sub-plans, the 5-file batch's query cost 1.8 times the fused one (31.6
against 17.5 ms of CPU, one process, warm); with them 1.14 times (19.9 ms).
In `bench ysb` (docs/performance.md) the sampled 5-file task of a fresh
worker went from 66-73 to 31-37 ms, against 28.5-30.4 ms uncounted.

The counts are those of the operator-at-a-time path (`Pipeline.counted_by_operator`,
the oracle of `tests/test_pqsample_counted.py`). Whatever cannot run this
way takes that path, as before: a pipeline that calls a Python UDF (a
failed query would call it twice on a row), and any query that fails (the
path names the failing operator, and reads files whole for their dead
letters).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import polars as pl

from executor.query import ndjson_map
from executor.query.fused_parquet import run_fused_all, same_predicate
from executor.query.diagnostics import Diagnostics, operator_key
from executor.state.step import SMALL_ROWS, collect_all
from optimizer.physical.changelog import MarkAppendOp
from optimizer.physical.stages import ProjectOp, ReadOp, ScanOp
from stream_dsl.connectors.ndjson_deferred import DeferredNdjson
from stream_dsl.connectors.parquet_scan import DeferredScan

_KEEP_ROWS = (ProjectOp, MarkAppendOp, ReadOp)  # one row out per row in

SAME, OUTPUT = -1, -2  # `CountedQuery.sources`: the previous operator's rows, the output's height


@dataclass(frozen=True)
class CountedQuery:
    """A stage's query with its counts: `output` (partitioned when asked) and one `len()` query per counted
    operator; `sources[i]` says where operator i's rows out come from (SAME, OUTPUT or an index of `counts`)."""

    output: pl.LazyFrame
    counts: tuple[pl.LazyFrame, ...]
    sources: tuple[int, ...]

    def rows(self, rows_in: int, output_rows: int, counted: Sequence[int]) -> list[int]:
        """The rows into the first operator, then after each (`Pipeline.counted_by_operator`'s list), from the
        `counts` queries' results."""
        rows = [rows_in]
        for source in self.sources:
            if source == SAME:
                rows.append(rows[-1])
            elif source == OUTPUT:
                rows.append(output_rows)
            else:
                rows.append(counted[source])
        return rows


def counted_query(
    pipeline: Any, lf: pl.LazyFrame, tables: Any, partition: bool, *, scanned: bool = False, filtered: bool = False
) -> CountedQuery:
    """The pipeline over `lf` with its counts (module doc). `partition`: add the partition column as
    `Pipeline.as_parts` splits by it. `scanned`: `lf` is already the scan step's output; `filtered`: the rows in
    already passed the scan's predicate (a pushed read), so the scan step keeps them all. A pipeline that
    carries a batch column (`Pipeline.carrying`) counts per batch: each count is a frame of (batch, rows)."""
    counts: list[pl.LazyFrame] = []
    sources: list[int] = []
    keeps = [
        isinstance(op, _KEEP_ROWS) or (isinstance(op, ScanOp) and (op.predicate is None or filtered))
        for op in pipeline.ops
    ]
    # the operator after which every one keeps its rows: its rows are the output's (unless a merge follows)
    last = -1 if pipeline.merges else max((i for i, keep in enumerate(keeps) if not keep), default=-1)
    for position, step in enumerate(pipeline.steps):
        if not (position == 0 and scanned):
            lf = step(lf, tables)
        if keeps[position]:
            sources.append(SAME)
        elif position == last:
            sources.append(OUTPUT)
        else:
            lf = lf.cache()
            sources.append(len(counts))
            counts.append(lf.select(pl.len()) if pipeline.carry is None else lf.group_by(pipeline.carry).agg(pl.len()))
    return CountedQuery(pipeline.finish(lf, partition and pipeline.splits), tuple(counts), tuple(sources))


def counted_frame(
    pipeline: Any, frame: pl.DataFrame, tables: Any, partition: bool
) -> tuple[dict[int, pl.DataFrame], list[int]] | None:
    """`Pipeline.counted` over an in-memory frame in one query; None when it calls Python or the query fails
    (the operator-at-a-time path then runs, and names the operator that fails)."""
    if calls_python(pipeline.ops):
        return None
    try:
        query = counted_query(pipeline, frame.lazy(), tables, partition)
        out, *counted = collect_all([query.output, *query.counts], lean=frame.height < SMALL_ROWS)
    except Exception:
        return None
    return pipeline.parts(out, partition), query.rows(frame.height, out.height, _items(counted))


def _items(counted: Sequence[pl.DataFrame]) -> list[int]:
    return [int(frame.item()) for frame in counted]


def calls_python(value: Any) -> bool:
    """Whether operators (their fields, nested expressions included) call a Python function: a scalar or an
    aggregate UDF (anything with a `udf`), which must see each row once."""
    return any_node(value, lambda node: getattr(node, "udf", None) is not None)


def any_node(value: Any, test: Callable[[Any], bool]) -> bool:
    """Whether `value` or anything inside it (an operator's fields, nested expressions, tuples) passes `test`."""
    if test(value):
        return True
    if isinstance(value, (tuple, list)):
        return any(any_node(item, test) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(any_node(getattr(value, f.name), test) for f in dataclasses.fields(value))
    return False


class CountedParts(dict[int, pl.DataFrame]):
    """A fused source task's output by partition (`fused_read.FusedMap.run`) with its operators' rows, for a
    sampled batch: the executor notes them (`note_counts`) where it would have counted the task."""

    def __init__(self, parts: dict[int, pl.DataFrame], rows: list[int]) -> None:
        super().__init__(parts)
        self.rows = rows


def note_counts(stage: int, mapped: Any, facts: Diagnostics | None) -> None:
    """A fused source task's counts into the batch's diagnostics, as `TaskRunner._counted` notes them; none when
    no row was read, as the task then is skipped (`tasks.skips`: a fused stage has no state)."""
    if not isinstance(mapped, CountedParts) or facts is None or not facts.sampled or not mapped.rows[0]:
        return
    for position, (rows_in, rows_out) in enumerate(zip(mapped.rows, mapped.rows[1:])):
        facts.count(operator_key(stage, position), rows_in, rows_out)


def run_counted(
    pipeline: Any, tables: Any, partition: bool, scan: DeferredScan
) -> tuple[pl.DataFrame, int, int | None, list[int]]:
    """A deferred batch's fused query (`fused_read.FusedMap.run`) with its counts: the output (partitioned when
    `partition`), the rows read, the watermark column's maximum and the rows after each operator, the rows
    read first. Raises whatever the query raises, and ValueError when a row of an ndjson batch is a dead letter."""
    if isinstance(scan, DeferredNdjson):
        return _counted_ndjson(pipeline, tables, partition, scan)
    head = pipeline.ops[0]
    assert isinstance(head, ScanOp)  # a source stage's
    filtered = head.predicate is None or same_predicate(pipeline, scan)  # the rows read passed the scan step's
    built: list[CountedQuery] = []

    def stage(rows: pl.LazyFrame, scanned: bool) -> list[pl.LazyFrame]:
        built.append(counted_query(pipeline, rows, tables, partition, scanned=scanned, filtered=filtered))
        return [built[0].output, *built[0].counts]

    (out, *counted), rows, newest = run_fused_all(pipeline, tables, scan, stage)
    return out, rows, newest, built[0].rows(rows, out.height, _items(counted))


def _counted_ndjson(
    pipeline: Any, tables: Any, partition: bool, scan: DeferredNdjson
) -> tuple[pl.DataFrame, int, int | None, list[int]]:
    built: list[CountedQuery] = []

    def stage(rows: pl.LazyFrame) -> list[pl.LazyFrame]:
        built.append(counted_query(pipeline, rows, tables, partition))
        return [built[0].output, *built[0].counts]

    ran = ndjson_map.run_checked_all(scan, stage)
    if ran is None:
        raise ValueError("a record of the batch is a dead letter")
    (out, *counted), rows, newest = ran
    return out, rows, newest, built[0].rows(rows, out.height, _items(counted))
