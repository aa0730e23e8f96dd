"""A source task as ONE polars query: the scan of a batch's files fused with the stage pipeline on its rows.

ndjson batches go the same way with their checks (`ndjson_map.py`); what
follows says it of parquet (`fused_parquet.py`).

The files source reads a parquet batch through `parquet_scan` when no row
can become a dead letter. Read that way, then handed to the stage
pipeline, a batch costs two queries and materializes every row the scan
keeps in between. When the executor lets it (`fuse_reader`), the source
hands the batch over unread (`SourceBatch.scan`, a `DeferredScan`), and the
reader runs the scan, the stage's operators (filter, project, broadcast
join, partial aggregate, partitioning) and the batch's statistics (the
rows read, the watermark column's maximum over every row) in one
`pl.collect_all`. The stage's output then comes with the batch
(`SourceBatch.mapped`) and the executor skips the task's pipeline.

A batch sampled for `why` (`diagnose_every`) runs the same query with
its operators' rows counted in it (`fused_counts.py`). Whatever the fused
query cannot do the way the two-step path does, it leaves to that path: a
stage with a stateful operator, or a fused query that fails in any way (a
file of other column types, a corrupt file, an operator's error). The files are then read as before
(`DeferredScan.read`, dead letters included) and the task runs its
pipeline, which names the operator that fails.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Sequence

import polars as pl

from executor import kernels
from executor.query import fused_counts, fused_group, ndjson_map
from executor.query.diagnostics import sampled
from executor.query.fused_parquet import run_fused
from optimizer.physical.stages import ShuffleWrite, Stage
from stream_dsl.connectors.ndjson_deferred import DeferredNdjson
from stream_dsl.connectors.parquet_scan import DeferredScan
from stream_dsl.ir import expr as E


@dataclass(frozen=True)
class FusedMap:
    """A source stage's pipeline, compiled once per query, run over a deferred scan in one query."""

    stage: Stage
    runner: Any  # the TaskRunner: its compiled pipeline of the stage, and the broadcast tables it holds
    diagnose_every: int

    @property
    def pipeline(self) -> kernels.Pipeline:
        return self.runner.pipes[self.stage.id]

    @property
    def partition(self) -> bool:
        """Whether the output is split by the hash of the shuffle keys (as `Pipeline.run_partitioned`)."""
        return isinstance(self.stage.terminal, ShuffleWrite) and self.pipeline.splits

    @functools.cached_property
    def groups(self) -> bool:
        """Whether several batches may run in one query (`fused_group.py`): not when an operator calls a function
        whose value is the batch's own (NOW(): each batch's query reads the clock when it runs)."""
        return not fused_counts.any_node(self.stage.operators, _batch_function)

    def counts(self, batch: int) -> bool:
        """Whether the batch is sampled for `why` (`diagnose_every`): its query counts the operators' rows too."""
        return sampled(batch, self.diagnose_every)

    def run(self, scan: DeferredScan, counted: bool = False) -> tuple[dict[int, pl.DataFrame], int, int | None]:
        """The task's output by target partition (as `TaskRunner.run` gives it), the rows read and the
        watermark column's maximum; raises whatever the query raises. `counted` (a sampled batch): the output
        is a `CountedParts`, with the operators' rows counted in the same query (`fused_counts.py`)."""
        rows_after: list[int] | None = None
        if counted:
            counted_run = fused_counts.run_counted(self.pipeline, self.runner.tables, self.partition, scan)
            out, rows, newest, rows_after = counted_run
        elif isinstance(scan, DeferredNdjson):  # read, checked and mapped in one query (`ndjson_map.py`)
            columns, tables = scan.columns, self.runner.tables
            ran = ndjson_map.run_checked(scan, lambda lf: self.pipeline.lazy_over(lf, columns, tables, self.partition))
            if ran is None:
                raise ValueError("a record of the batch is a dead letter")
            out, rows, newest = ran
        else:
            out, rows, newest = run_fused(self.pipeline, self.runner.tables, self.partition, scan)
        result = self.pipeline.parts(out, isinstance(self.stage.terminal, ShuffleWrite))
        if rows_after is not None:
            result = fused_counts.CountedParts(result, rows_after)
        return result, rows, None if newest is None else int(newest)

    def run_group(
        self, scans: Sequence[tuple[int, DeferredScan]]
    ) -> list[tuple[dict[int, pl.DataFrame], int, int | None] | None]:
        """`run` of each (batch id, scan), from one query over all of them (`fused_group.py`), a sampled batch's
        output with its operators' rows counted per batch in that query; None for an ndjson batch with a dead
        letter. Raises whatever the query raises."""
        shuffled = isinstance(self.stage.terminal, ShuffleWrite)
        sampled = [self.counts(batch) for batch, _ in scans]
        tables = self.runner.tables
        outputs = fused_group.run_group(self.pipeline, tables, shuffled, [s for _, s in scans], any(sampled))
        results: list[tuple[dict[int, pl.DataFrame], int, int | None] | None] = []
        for output, counts in zip(outputs, sampled):
            parts = output.parts
            if counts and output.operator_rows is not None:
                parts = fused_counts.CountedParts(parts, output.operator_rows)
            results.append((parts, output.rows, output.newest) if output.clean else None)
        return results


def fuse_reader(reader: Any, runner: Any, diagnose_every: int) -> None:
    """Let `reader`'s source defer its parquet batches, which the reader then runs fused with the stage's
    pipeline as `runner` (a TaskRunner) compiled it. Not fused: a stage with a stateful operator, and one that
    calls a Python UDF, scalar or aggregate (a fused query that failed later would call it twice on a row, and
    note its dead letters twice)."""
    stage: Stage = reader.stage
    udf = fused_counts.calls_python(stage.operators)
    if stage.stateful is not None or not hasattr(reader.source, "defer_scans") or udf:
        return
    reader.fused = FusedMap(stage, runner, diagnose_every)
    reader.source.defer_scans = True


def resolve(batch: Any, fused: FusedMap | None, batch_id: int | None) -> Any:
    """`batch` with its deferred scan run: fused with the stage (`mapped`, `rows_read` and the maximum set)
    when `fused` applies to the batch and the query succeeds, else read as the files source reads it."""
    scan: DeferredScan = batch.scan
    batch.scan = None
    known_bad = isinstance(scan, DeferredNdjson) and scan.memo.get("dead letters")  # found by `run_together`
    if fused is not None and batch_id is not None and not known_bad:
        try:
            batch.mapped, batch.rows_read, batch.max_event_time_ms = fused.run(scan, fused.counts(batch_id))
        except Exception:  # the two-step path reads the files again, and reports what fails there
            pass
        else:
            scan.on_read()
            return batch
    batch.frame, letters, batch.max_event_time_ms = _read(scan)
    batch.dead_letters = list(batch.dead_letters) + list(letters)
    return batch


def runs_of(fused: FusedMap, batches: Sequence[tuple[int, Any]]) -> list[list[tuple[int, Any]]]:
    """Consecutive `batches` ((batch id, SourceBatch)) cut into runs that may each run in one query
    (`fused_group.joins`); a batch without a deferred scan, and every batch of a stage that calls NOW()
    (`FusedMap.groups`), are in none. A batch sampled for `why` is counted inside its group's query."""
    runs: list[list[tuple[int, Any]]] = [[]]
    for batch_id, batch in batches:
        scan = batch.scan
        if scan is None or not fused.groups:
            runs.append([])
        elif fused_group.joins(scan, [b.scan for _, b in runs[-1]]):
            runs[-1].append((batch_id, batch))
        else:  # a new run from this batch, unless it may share no query at all (too large)
            runs.append([(batch_id, batch)] if fused_group.joins(scan, []) else [])
    return [run for run in runs if len(run) > 1]


def run_together(batches: Sequence[tuple[int, Any]], fused: FusedMap) -> None:
    """Run the deferred scans of `batches` (a run of `runs_of`: (batch id, SourceBatch)) in one query, which sets
    each batch's `mapped` as `resolve` does. A query that fails is tried again in halves, so a batch polars
    refuses (a value its column type cannot parse) ends up alone; a batch the query leaves keeps its scan for
    `resolve`: one alone, or with a dead letter in it."""
    if len(batches) < 2:
        return
    try:
        results = fused.run_group([(batch_id, batch.scan) for batch_id, batch in batches])
    except Exception:  # each batch's own query, then the two-step path, reports what fails
        half = len(batches) // 2
        run_together(batches[:half], fused)
        run_together(batches[half:], fused)
        return
    for (_, batch), result in zip(batches, results):
        if result is None:
            batch.scan.memo["dead letters"] = True  # an ndjson batch: its full read need not look for them again
            continue
        scan, batch.scan = batch.scan, None
        batch.mapped, batch.rows_read, batch.max_event_time_ms = result
        batch.read_with = len(batches)
        scan.on_read()


def _read(scan: DeferredScan) -> tuple[pl.DataFrame, list, int | None]:
    """The batch as the files source reads it (`DeferredScan.read`); a clean ndjson batch from its one-query
    read (`ndjson_map.decoded`), so that a batch whose fused query failed does not pay the full decode (twice
    the CPU of a large file's read)."""
    decoded = ndjson_map.decoded(scan) if isinstance(scan, DeferredNdjson) else None
    if decoded is None:
        return scan.read()
    frame, newest = decoded
    return frame, [], newest


BATCH_FUNCTIONS = frozenset({"now"})  # a function whose value is its batch's own (the wall clock when it runs)


def _batch_function(node: Any) -> bool:
    return isinstance(node, E.Func) and node.name in BATCH_FUNCTIONS
