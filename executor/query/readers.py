"""Sources as a query reads them: a `Reader` per source stage, with its clock, its offset and its replays.

Every executor reads through these: the inline executor in its own
process, a worker for the source stages it hosts. A reader pulls one
batch per micro-batch in batch order; with checkpoints it logs where each
batch ended before the batch runs and, on a replay, cuts the batch where
the earlier run cut it (`executor/offset_log.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import polars as pl

from executor import kernels
from executor.query.fused_group import GROUP_BYTES, group_bytes, small
from executor.query.fused_read import resolve, run_together, runs_of
from executor.state.clocks import SourceClock
from optimizer.physical.stages import ScanOp, Stage
from stream_dsl.connectors import open_source, open_table
from stream_dsl.connectors.base import Source, SourceBatch, pull_source, push_predicate, source_backlog
from stream_dsl.errors import DSLError, ExecutionError
from stream_dsl.ir.definitions import SourceDef

DEAD_LETTERS_KEPT = 10_000  # the newest dead letters a query keeps in memory (all went to their target)
NOT_REPLAYED = object()  # `Reader.pull`'s default: a batch read afresh, not the replay of a logged one


class BatchLog(Protocol):
    """Where a reader logs each batch's end before the batch runs: the offset log itself (`OffsetLog`, in
    the process that owns the checkpoint directory) or a worker's channel to it (`multiproc/batch_logs.py`)."""

    def append(self, batch: int, offset: Any) -> None: ...

    def committed(self, through_batch: int) -> None: ...

    def close(self) -> None: ...


class TableAsSource:
    """A static table scanned like a stream: all rows in the first batch, then exhausted."""

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self._table = open_table(definition)
        self._columns: list[str] | None = None
        self._done = False

    @property
    def bounded(self) -> bool:
        return True

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        self._columns = columns
        self._done = bool(offset)

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False) -> SourceBatch:
        if self._done:
            schema = self.definition.schema
            names = self._columns or list(schema.names)
            return SourceBatch(pl.DataFrame(schema={c: schema.dtype(c).polars for c in names}), True, True)
        self._done = True
        return SourceBatch(self._table.read(self._columns), exhausted=True, offset=True)

    def close(self) -> None:
        pass


@dataclass
class Reader:
    """One source stage's source, with its event-time clock."""

    stage: Stage
    source: Source
    clock: SourceClock
    realtime: bool
    exhausted: bool = False
    offset: Any = None
    replay: Any = None  # what the offset log keeps of the last batch (`SourceBatch.replay`)
    log: BatchLog | None = None  # with checkpoints: where each batch ended, logged before it runs
    replays: dict[int, Any] = field(default_factory=dict)  # batch -> logged end of a batch an earlier run read
    wall_offset_ms: int | None = None  # a paced source: event time + this = wall clock time (event lag)
    backlog: dict[str, int] | None = None  # what the source knows is waiting, after the last batch
    fused: Any = None  # a FusedMap: deferred parquet batches run fused with the stage (`fused_read.py`)
    batch_id: int | None = None  # the batch `read` is reading (a FusedMap applies to some batches only)
    ahead: dict[int, "ReadAhead"] = field(default_factory=dict)  # batch -> read before its task (`read_ahead`)

    @property
    def scan(self) -> ScanOp:
        return self.stage.head  # type: ignore[return-value]

    def follow_log(self, log: BatchLog, replays: dict[int, Any]) -> None:
        """Log every batch read from now on; replay the ones an earlier run logged (`replays`: batch -> end)."""
        self.log, self.replays = log, dict(replays)

    def read(self, interval_ms: int, batch: int) -> SourceBatch:
        """Batch `batch`: cut where an earlier run cut it (a logged batch, replayed), or read afresh and logged
        (before any of its output exists); or the batch `read_ahead` read, which only now moves the reader's
        clock, offset and log on to it."""
        ahead = self.ahead.pop(batch, None)
        if ahead is None and self.ahead:  # the source is past this batch: batches are read in order
            raise ExecutionError(f"internal error: {self.scan.describe()} read batch {batch} out of order")
        if ahead is not None:
            if ahead.error is not None:
                raise ahead.error
            self._advance(ahead.batch, ahead.backlog)
            if self.log is not None:
                self.log.append(batch, self.replay)
            return ahead.batch
        until = self.replays.pop(batch, NOT_REPLAYED)
        self.batch_id = batch
        pulled = self.pull(interval_ms, until)
        if self.log is not None and until is NOT_REPLAYED:
            self.log.append(batch, self.replay)
        return pulled

    def read_ahead(self, interval_ms: int, batches: Sequence[int]) -> None:
        """Pull `batches` (this reader's next ones, in order: its tasks of a Drizzle group) now, while the source
        has more waiting, and run each run of them that may share one query in one (`fused_read.runs_of`). Each
        batch keeps what it would have had read in its turn: its rows, offset and clock move the reader on only
        when its task `read`s it.

        Only batches the source already holds (a paced source waits for the wall clock only when nothing is
        waiting), at most GROUP_BYTES of files; never a replay (cut where the earlier run cut it), nor past an
        exhausted batch or one that runs its own query for its size (its output may be as large)."""
        if self.fused is None or not self.fused.groups or self.exhausted or self.ahead or not batches:
            return
        pulled: list[tuple[int, SourceBatch]] = []
        size = 0
        for batch in batches:
            if batch in self.replays or (pulled and not _waiting(self.source)):
                break
            try:
                read = self._pulled(interval_ms, None)
            except Exception as exc:  # raised when that batch's task reads it, as it would have been
                self.ahead[batch] = ReadAhead(SourceBatch(self._empty()), None, exc)
                break
            self.ahead[batch] = ReadAhead(read, source_backlog(self.source))
            pulled.append((batch, read))
            size += group_bytes(read.scan)
            if read.exhausted or size > GROUP_BYTES or not small(read.scan):
                break
        for run in runs_of(self.fused, pulled):
            run_together(run, self.fused)
        for batch, ahead in self.ahead.items():
            if ahead.batch.scan is not None:
                self.batch_id = batch
                try:
                    self._resolve(ahead.batch)
                except Exception as exc:
                    ahead.error = exc
        self.batch_id = None

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        try:
            self.source.close()
        except Exception:
            pass

    def pull(self, interval_ms: int, until: Any = NOT_REPLAYED) -> SourceBatch:
        """The next batch; `until`: the offset where an earlier run's batch ended (a replay, see offset_log)."""
        if self.exhausted:
            return SourceBatch(self._empty(), exhausted=True, offset=self.offset)
        if until is None:  # the earlier run's batch read nothing: neither does its replay
            return SourceBatch(self._empty(), offset=self.offset)
        batch = self._pulled(interval_ms, None if until is NOT_REPLAYED else until)
        if batch.scan is not None:  # a deferred parquet read (`fused_read.py`)
            batch = self._resolve(batch)
        self._advance(batch, source_backlog(self.source))
        return batch

    def _pulled(self, interval_ms: int, until: Any) -> SourceBatch:
        """The source's next batch, the reader left as it is."""
        try:
            return pull_source(self.source, interval_ms, realtime=self.realtime, until=until)
        except DSLError:  # a connector's own error already names the source
            raise
        except Exception as exc:
            raise ExecutionError(f"{self.scan.describe()}: {kernels.error_text(exc)}") from exc

    def _advance(self, batch: SourceBatch, backlog: dict[str, int] | None) -> None:
        """The reader moved on past `batch`: its offset, its clock (the batch's newest event time), what waits."""
        self.exhausted = batch.exhausted
        self.offset = batch.offset
        self.replay = batch.offset if batch.replay is None else batch.replay
        self.clock.observe(self._max_event_ms(batch), batch.exhausted)
        self.wall_offset_ms = batch.wall_offset_ms
        self.backlog = backlog

    def _resolve(self, batch: SourceBatch) -> SourceBatch:
        try:
            return resolve(batch, self.fused, self.batch_id)
        except DSLError:
            raise
        except Exception as exc:
            raise ExecutionError(f"{self.scan.describe()}: {kernels.error_text(exc)}") from exc

    def _max_event_ms(self, batch: SourceBatch) -> int | None:
        wm = self.scan.source.watermark
        if wm is None:
            return None
        if batch.max_event_time_ms is not None or getattr(self.source, "reports_event_time", False):
            return batch.max_event_time_ms  # a source that tracks event time itself (Kafka: per partition)
        if not batch.frame.height or wm.column not in batch.frame.columns:
            return None
        value = batch.frame.select(pl.col(wm.column).cast(pl.Datetime("ms")).dt.epoch("ms").max()).item()
        return None if value is None else int(value)

    def _empty(self) -> pl.DataFrame:
        schema = self.scan.source.schema
        return pl.DataFrame(schema={c: schema.dtype(c).polars for c in self.scan.read_columns})


@dataclass
class ReadAhead:
    """A batch `Reader.read_ahead` read before its task: the batch, what the source said was waiting after it,
    and the error to raise instead when its read failed."""

    batch: SourceBatch
    backlog: dict[str, int] | None
    error: Exception | None = None


def _waiting(source: Source) -> bool:
    """Whether the source says more is waiting to be read now (`Source.backlog`: files listed, not read yet)."""
    backlog = source_backlog(source)
    return bool(backlog) and any(count > 0 for count in backlog.values())  # type: ignore[union-attr]


def open_reader(stage: Stage, *, realtime: bool, restore: Any = None) -> Reader:
    """Open a source stage's source; from a checkpoint (`restore`: a RestorePoint or a worker's Restore,
    with `offsets` and `clocks` by stage) at its offset, with its clock as it was then."""
    scan: ScanOp = stage.head  # type: ignore[assignment]
    definition = scan.source
    source: Source = TableAsSource(definition) if definition.kind == "table" else open_source(definition)
    paced = realtime and (definition.option("realtime", "true") or "true").lower() != "false"
    wm = definition.watermark
    clock = SourceClock(None if wm is None or definition.kind == "table" else wm.delay_ms)
    push_predicate(source, scan.predicate)
    if restore is None or stage.id not in restore.offsets:
        source.open(list(scan.read_columns))
        return Reader(stage, source, clock, paced)
    offset, restored = restore.offsets[stage.id], restore.clocks.get(stage.id)
    source.open(list(scan.read_columns), offset)
    reader = Reader(stage, source, clock, paced, offset=offset)
    if restored is not None:  # the clock's (max_event_ms, exhausted) after the checkpointed batch
        clock.observe(*restored)
        reader.exhausted = restored[1]
    return reader


def is_bounded(reader: Reader) -> bool:
    return bool(getattr(reader.source, "bounded", True))
