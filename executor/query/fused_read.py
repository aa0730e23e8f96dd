"""A source task as ONE polars query: the parquet scan fused with the stage pipeline that runs on its rows.

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

Whatever the fused query cannot do the way the two-step path does, it
leaves to that path: a batch whose operators are counted one by one (a
sampled batch, `diagnose_every`), a stage with a stateful operator, or a
fused query that fails in any way (a file of other column types, a
corrupt file, an operator's error). The files are then read as before
(`DeferredScan.read`, dead letters included) and the task runs its
pipeline, which names the operator that fails.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import polars as pl

from executor import kernels
from executor.query.diagnostics import sampled
from optimizer.physical.stages import ShuffleWrite, Stage
from stream_dsl.connectors.conform_one_query import FAILED
from stream_dsl.connectors.ndjson_deferred import DeferredNdjson
from stream_dsl.connectors.parquet_scan import MAX_COLUMN, ROWS_COLUMN, DeferredScan
from stream_dsl.ir import expr as E


# Bytes of ndjson text from which a batch's stage and checks run as one `collect_all` (`_over_checked`) rather
# than over a decoded frame: measured on YSB records, one query costs more CPU up to about 1,000 records (250 kB)
# and less from about 5,000 (1.2 MB).
ONE_QUERY_FROM = 1 << 20


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
        pipe = self.pipeline
        return isinstance(self.stage.terminal, ShuffleWrite) and pipe.partitions > 1 and bool(pipe.partition_keys)

    def applies(self, batch: int) -> bool:
        """A batch whose operators are counted one by one (`diagnose_every`) runs the two-step path."""
        return not sampled(batch, self.diagnose_every)

    def run(self, scan: DeferredScan) -> tuple[dict[int, pl.DataFrame], int, int | None]:
        """The task's output by target partition (as `TaskRunner.run` gives it), the rows read and the
        watermark column's maximum; raises whatever the query raises."""
        if isinstance(scan, DeferredNdjson) and scan.size >= ONE_QUERY_FROM:
            out, rows, newest = self._over_checked(scan)
        elif isinstance(scan, DeferredNdjson):  # decoded first (`ndjson_deferred.py`), the stage over a frame
            out, rows, newest = self._over_decoded(decoded_ndjson(scan), scan)
        else:
            mapped = self.pipeline.lazy_over(scan.lazy, scan.columns, self.runner.tables, self.partition)
            out, stats = pl.collect_all([mapped, scan.stats()], engine="in-memory")
            rows = int(stats.get_column(ROWS_COLUMN)[0] or 0)
            newest = stats.get_column(MAX_COLUMN)[0] if MAX_COLUMN in stats.columns else None
        if not isinstance(self.stage.terminal, ShuffleWrite):
            return {0: out}, rows, None if newest is None else int(newest)
        if self.partition:
            result = kernels.split_partitions(out) if out.height else {}
        else:
            result = {0: out} if out.height else {}
        return result, rows, None if newest is None else int(newest)

    def _over_checked(self, scan: DeferredNdjson) -> tuple[pl.DataFrame, int, int | None]:
        """The stage over a large ndjson batch's checked read, with the batch's statistics (whether a row
        failed, the rows, the watermark's maximum) in one `collect_all`: polars reads and converts the files once
        for both, and no decoded frame of every row is materialized for a second query (about 10% of the
        CPU of 100k records). A failed row sends the batch to the full read, without a second one-query read."""
        assert scan.checked is not None
        mapped = self.pipeline.lazy_over(scan.lazy, scan.columns, self.runner.tables, self.partition)
        stats = [pl.col(FAILED).any().alias(FAILED), pl.len().cast(pl.Int64).alias(ROWS_COLUMN)]
        if scan.watermark is not None:
            stats.append(pl.col(scan.watermark).cast(pl.Int64).max().alias(MAX_COLUMN))
        out, found = pl.collect_all([mapped, scan.checked.select(stats)], engine="in-memory")
        if found.get_column(FAILED)[0]:
            scan.memo["rows"] = None  # `decoded_ndjson`: the two-step path reads the batch the full way
            raise ValueError("a record of the batch is a dead letter")
        newest = found.get_column(MAX_COLUMN)[0] if scan.watermark is not None else None
        return out, int(found.get_column(ROWS_COLUMN)[0]), None if newest is None else int(newest)

    def _over_decoded(self, decoded: pl.DataFrame | None, scan: DeferredScan) -> tuple[pl.DataFrame, int, int | None]:
        """The stage over an ndjson batch decoded in one query: a second query, with the partitioning in it.
        Measured on 50 records, this costs less CPU than one `collect_all` of the stage and the statistics,
        which reads the records twice. A failed row (a dead letter, `decoded` None) sends the batch to the full
        read."""
        if decoded is None:
            raise ValueError("a record of the batch is a dead letter")
        newest = _newest(decoded, scan.watermark)
        mapped = self.pipeline.lazy_over(decoded.lazy(), scan.columns, self.runner.tables, self.partition)
        return kernels.collect(mapped, decoded.height), decoded.height, newest


def fuse_reader(reader: Any, runner: Any, diagnose_every: int) -> None:
    """Let `reader`'s source defer its parquet batches, which the reader then runs fused with the stage's
    pipeline as `runner` (a TaskRunner) compiled it. Not fused: a stage with a stateful operator, and one that
    calls a Python UDF (a fused query that failed later would call it twice on a row, and note its dead
    letters twice)."""
    stage: Stage = reader.stage
    if stage.stateful is not None or not hasattr(reader.source, "defer_scans") or _calls_udf(stage.operators):
        return
    reader.fused = FusedMap(stage, runner, diagnose_every)
    reader.source.defer_scans = True


def resolve(batch: Any, fused: FusedMap | None, batch_id: int | None) -> Any:
    """`batch` with its deferred scan run: fused with the stage (`mapped`, `rows_read` and the maximum set)
    when `fused` applies to the batch and the query succeeds, else read as the files source reads it."""
    scan: DeferredScan = batch.scan
    batch.scan = None
    if fused is not None and batch_id is not None and fused.applies(batch_id):
        try:
            batch.mapped, batch.rows_read, batch.max_event_time_ms = fused.run(scan)
        except Exception:  # the two-step path reads the files again, and reports what fails there
            pass
        else:
            scan.on_read()
            return batch
    batch.frame, letters, batch.max_event_time_ms = _read(scan)
    batch.dead_letters = list(batch.dead_letters) + list(letters)
    return batch


def decoded_ndjson(scan: DeferredNdjson) -> pl.DataFrame | None:
    """An ndjson batch's rows read and converted in one query, run once per batch: the fused path and the
    two-step one (a sampled batch, an operator's error) share it. None when a row is a dead letter or polars
    refuses a line: the batch is then read the full way, which words the dead letters."""
    if "rows" not in scan.memo:
        try:
            rows: pl.DataFrame | None = kernels.collect(scan.checked, 1) if scan.checked is not None else None
        except Exception:  # a line polars refuses
            rows = None
        scan.memo["rows"] = None if rows is None or rows.drop_in_place(FAILED).any() else rows  # no query
    return scan.memo["rows"]


def _read(scan: DeferredScan) -> tuple[pl.DataFrame, list, int | None]:
    """The batch as the files source reads it (`DeferredScan.read`); a clean ndjson batch from its one-query
    decode, so that a sampled batch does not take the full decode (twice the CPU on a large file)."""
    decoded = decoded_ndjson(scan) if isinstance(scan, DeferredNdjson) else None
    if decoded is None:
        return scan.read()
    return decoded, [], _newest(decoded, scan.watermark)


def _newest(decoded: pl.DataFrame, watermark: str | None) -> int | None:
    """The watermark column's maximum over the decoded rows, as the files source finds it (cast and max run
    no query)."""
    newest = decoded.get_column(watermark).cast(pl.Int64).max() if watermark is not None and decoded.height else None
    return None if newest is None else int(newest)


def _calls_udf(value: Any) -> bool:
    """Whether an operator (its fields, nested expressions included) calls a Python UDF."""
    if isinstance(value, E.Func):
        return value.udf is not None or any(_calls_udf(a) for a in value.args)
    if isinstance(value, (tuple, list)):
        return any(_calls_udf(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return any(_calls_udf(getattr(value, f.name)) for f in dataclasses.fields(value))
    return False
