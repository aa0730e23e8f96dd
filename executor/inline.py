"""The inline executor: every stage of every micro-batch in this one process.

The micro-batch loop (exact):

1. Pull one SourceBatch from every stream source that is not exhausted
   (`Source.next_batch(batch_interval_ms, realtime=...)`); static tables
   used by broadcast joins were read once when the query opened, and a
   table scanned directly acts as a bounded source with one batch.
2. Advance the watermark with the batch's event times (see `state.py`):
   rows of this batch are checked against the previous watermark, windows
   close against the new one; when every source is exhausted it is +inf
   and all state flushes in this same batch.
3. Run the stages producers first. A source stage runs one task; a stage
   fed by a hash exchange runs one task per partition, each owning the
   state of its keys.
4. Hand the output to the sink (append rows, or a changelog's changed
   groups; a sink gets no deletes, so a session that merged away stays in
   its output), stopping after LIMIT rows; record the batch's progress.
5. Write the batch's dead letters to their targets, then commit every
   source (`executor/commits.py`): only now may a source release what the
   batch read.

With a checkpoint directory (`checkpoint_dir`, set when this executor
runs a continuous query), the state, source offsets and watermark are
checkpointed after every `group_size` batches (`recovery.Checkpointing`,
the multiprocess executors' format; sources release what they read only
then), and a query started again on the directory resumes from the newest
good checkpoint: the batches after it run again under the same ids, and
sinks, idempotent per batch id, replace what they wrote.

A restarted query without a checkpoint (a sink that lasts) continues its batch
ids after the sink's last batch. If its sources committed a watermark R
before, the batches they replay (records read but not released, marked
`SourceBatch.replayed`) rebuild the state with no watermark: nothing is
late, nothing closes. Before the first new batch, windows ending by R close
silently (the previous run emitted them) and the query goes on from R.

`collect()` runs this to the end of input with `realtime=False` and returns
the appended rows, or the last value of every group of a changelog, with
the operators after the aggregate (HAVING, the final projection, joins)
applied to those final values.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Callable

import networkx as nx
import polars as pl

from executor import kernels
from executor.commits import commit_sources, dead_letter_router, resume_watermark, retention_ms
from executor.offset_log import OffsetLog
from executor.recovery import Checkpointing, RestorePoint, load_states, write_checkpoint_part
from executor.state import (AggregateState, DistinctState, SourceClock, empty_aggregate_row, make_state,
                            query_watermark, watermark_datetime)
from optimizer.lower import lower, stage_order
from optimizer.stages import AggregateOp, OutputWrite, ScanOp, ShuffleWrite, Stage, broadcast_tables
from stream_dsl.config import RunConfig
from stream_dsl.connectors import open_source, open_table
from stream_dsl.connectors.base import DeadLetter, Sink, Source, SourceBatch, next_batch_id, pull_source
from stream_dsl.errors import DSLError, ExecutionError, PlanError
from stream_dsl.plan import Plan, SortKey, SourceDef
from stream_dsl.types import Schema


# ---------------------------------------------------------------- sources

DEAD_LETTERS_KEPT = 10_000  # the newest dead letters a query keeps in memory (all went to their target)
NOT_REPLAYED = object()  # `Reader.pull`'s default: a batch read afresh, not the replay of a logged one


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
    log: OffsetLog | None = None  # with checkpoints: where each batch ended, logged before it runs
    replays: dict[int, Any] = field(default_factory=dict)  # batch -> logged end of a batch an earlier run read

    @property
    def scan(self) -> ScanOp:
        return self.stage.head  # type: ignore[return-value]

    def follow_log(self, log: OffsetLog, from_batch: int) -> None:
        """Log every batch read from now on; replay the ones an earlier run logged from `from_batch` on."""
        self.log, self.replays = log, log.read(from_batch)

    def read(self, interval_ms: int, batch: int) -> SourceBatch:
        """Batch `batch`: cut where an earlier run cut it (a logged batch, replayed), or read afresh and logged
        (before any of its output exists)."""
        until = self.replays.pop(batch, NOT_REPLAYED)
        pulled = self.pull(interval_ms, until)
        if self.log is not None and until is NOT_REPLAYED:
            self.log.append(batch, self.replay)
        return pulled

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
        if until is NOT_REPLAYED:
            until = None
        try:
            batch = pull_source(self.source, interval_ms, realtime=self.realtime, until=until)
        except DSLError:  # a connector's own error already names the source
            raise
        except Exception as exc:
            raise ExecutionError(f"{self.scan.describe()}: {kernels.error_text(exc)}") from exc
        self.exhausted = batch.exhausted
        self.offset = batch.offset
        self.replay = batch.offset if batch.replay is None else batch.replay
        self.clock.observe(self._max_event_ms(batch), batch.exhausted)
        return batch

    def _max_event_ms(self, batch: SourceBatch) -> int | None:
        wm = self.scan.source.watermark
        if wm is None:
            return None
        if batch.max_event_time_ms is not None:
            return batch.max_event_time_ms
        if not batch.frame.height or wm.column not in batch.frame.columns:
            return None
        value = batch.frame.select(pl.col(wm.column).cast(pl.Datetime("ms")).dt.epoch("ms").max()).item()
        return None if value is None else int(value)

    def _empty(self) -> pl.DataFrame:
        schema = self.scan.source.schema
        return pl.DataFrame(schema={c: schema.dtype(c).polars for c in self.scan.read_columns})


def open_reader(stage: Stage, *, realtime: bool, restore: Any = None) -> Reader:
    """Open a source stage's source; from a checkpoint (`restore`: a RestorePoint or a worker's Restore,
    with `offsets` and `clocks` by stage) at its offset, with its clock as it was then."""
    scan: ScanOp = stage.head  # type: ignore[assignment]
    definition = scan.source
    source: Source = TableAsSource(definition) if definition.kind == "table" else open_source(definition)
    paced = realtime and (definition.option("realtime", "true") or "true").lower() != "false"
    wm = definition.watermark
    clock = SourceClock(None if wm is None or definition.kind == "table" else wm.delay_ms)
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


# ---------------------------------------------------------------- outputs


class Output:
    """Where a query's result goes; `rows_out` counts rows handed on."""

    changelog_collects = False  # whether changelog emissions arrive before post-operators (collect())
    takes_rows = False  # whether apply_changelog takes a RowsPart for upserts (`executor.rows`)
    durable = False  # whether emitted rows are written somewhere lasting (then sources may commit)

    def __init__(self, schema: Schema, limit: int | None) -> None:
        self.schema = schema
        self.limit = limit
        self.rows_out = 0
        self.group_keys: list[str] = []  # a changelog's group columns, set by the query
        self.order: tuple[SortKey, ...] = ()  # ORDER BY: a result sorted whole, a continuous query's batches each
        self.order_limit: int | None = None  # LIMIT after ORDER BY: the sorted result's first rows

    def ordered(self, graph: nx.DiGraph) -> "Output":
        """Take the lowered query's ORDER BY (and the LIMIT that follows it); returns self."""
        self.order, self.order_limit = tuple(graph.graph.get("order", ())), graph.graph.get("order_limit")
        return self

    @property
    def full(self) -> bool:
        return self.limit is not None and self.rows_out >= self.limit

    def _take(self, frame: pl.DataFrame) -> pl.DataFrame:
        frame = kernels.conform(frame, self.schema)
        if self.limit is not None:
            frame = frame.head(max(self.limit - self.rows_out, 0))
        self.rows_out += frame.height
        return frame

    def emit(self, batch_id: int, frames: list[pl.DataFrame]) -> int:
        raise NotImplementedError

    def apply_changelog(self, upserts: pl.DataFrame, deletes: pl.DataFrame | None) -> None:
        raise NotImplementedError


class SinkOutput(Output):
    """Each batch's rows (appended rows, or a changelog's changed groups) written once per batch id."""

    durable = True

    def __init__(self, schema: Schema, limit: int | None, sink: Sink) -> None:
        super().__init__(schema, limit)
        self.sink = sink

    def first_batch_id(self) -> int:
        """Where a new run's batch ids start: after the sink's last committed batch."""
        return next_batch_id(self.sink)

    def emit(self, batch_id: int, frames: list[pl.DataFrame]) -> int:
        frames = [f for f in frames if f.height]
        if not frames:
            return 0
        frame = kernels.sort_rows(self._take(pl.concat(frames, how="diagonal_relaxed")), self.order)
        if frame.height:
            try:
                self.sink.write(batch_id, frame)
            except DSLError:
                raise
            except Exception as exc:
                raise ExecutionError(f"Output to sink {type(self.sink).__name__}: {kernels.error_text(exc)}") from exc
        return frame.height


class CollectOutput(Output):
    """Accumulates the result for collect(): appended rows, or the final value per changelog group."""

    changelog_collects = True

    def __init__(self, schema: Schema, limit: int | None) -> None:
        super().__init__(schema, limit)
        self.frames: list[pl.DataFrame] = []
        self.table: pl.DataFrame | None = None

    def emit(self, batch_id: int, frames: list[pl.DataFrame]) -> int:
        taken = [self._take(f) for f in frames if f.height]
        self.frames += [f for f in taken if f.height]
        return sum(f.height for f in taken)

    def apply_changelog(self, upserts: pl.DataFrame, deletes: pl.DataFrame | None) -> None:
        keys = self.group_keys
        table = self.table
        if deletes is not None and deletes.height and table is not None:
            table = _anti(table, deletes, keys)
        if upserts.height:
            table = upserts if table is None else pl.concat([_anti(table, upserts, keys), upserts],
                                                            how="diagonal_relaxed")
        self.table = table

    def result(self) -> pl.DataFrame:
        if not self.frames:
            return kernels.empty_frame(self.schema)
        result = kernels.conform(pl.concat(self.frames, how="diagonal_relaxed"), self.schema)
        return kernels.sort_rows(result, self.order, self.order_limit)


def _anti(table: pl.DataFrame, other: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    if not keys:
        return table.clear()
    return table.join(other.select(keys).unique(), on=keys, how="anti", nulls_equal=True)


# ---------------------------------------------------------------- the query


@dataclass
class BatchResult:
    report: dict[str, Any]
    done: bool


@dataclass
class InlineQuery:
    """One running query: its stage DAG, sources, state and output (see the module doc)."""

    graph: nx.DiGraph
    config: RunConfig
    output: Output
    realtime: bool = False
    readers: dict[int, Reader] = field(default_factory=dict)
    dead_letters: deque[DeadLetter] = field(default_factory=lambda: deque(maxlen=DEAD_LETTERS_KEPT))
    watermark: int | None = None
    batch_id: int = 0
    dead_letter_router: Any = None  # connectors.dead_letters.DeadLetterRouter: where bad records go
    replay_watermark: int | None = None  # a restart's watermark, taken up once the replayed batches are done
    task_log: list[Any] | None = None  # when tracing: a TaskMetrics per task run (executor/trace.py)
    checkpoint_dir: str | None = None  # checkpoint here (a continuous query run by this executor)

    def __post_init__(self) -> None:
        self.stages = stage_order(self.graph)
        self.limit = self.graph.graph.get("limit")
        self.pipes = {s.id: kernels.compile_pipeline(s.operators, f"stage {s.id}") for s in self.stages}
        self.posts = {s.id: kernels.compile_pipeline(s.post, f"stage {s.id}") for s in self.stages if s.stateful}
        self.states: dict[tuple[int, int], AggregateState | DistinctState] = {}
        self.shuffled: list[dict[str, Any]] = []  # this batch's shuffle counters, one per map task
        self._read_at: dict[int, float] = {}  # source stage -> when this batch's read began (task_log)
        self.tables: dict[str, pl.DataFrame] = {}
        self._checkpointing: Checkpointing | None = None  # with a checkpoint_dir
        self._checkpoint_from = 0
        self._changelog_rows = 0
        self._changelog_stage = next((s for s in self.stages if isinstance(s.stateful, AggregateOp)
                                      and isinstance(s.terminal, OutputWrite) and s.terminal.changelog), None)
        if self._changelog_stage is not None:
            self.output.group_keys = list(self._changelog_stage.stateful.group_keys)  # type: ignore[union-attr]

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Read the broadcast tables and open every source; refuse plans that could never emit."""
        for stage in self.stages:
            for op in broadcast_tables(stage):
                if op.table_id not in self.tables:
                    frame = collect_plan(op.table, self.config.with_options(workers=1))
                    self.tables[op.table_id] = kernels.prepare_table(op, frame)
        try:
            point = self._open_checkpoints()
            for stage in self.stages:
                if stage.is_source:
                    self.readers[stage.id] = open_reader(stage, realtime=self.realtime, restore=point)
            check_can_emit(self.graph, self.readers)
            if point is None:
                self._resume()
            else:
                self._restore(point)
            if self._checkpointing is not None:
                for stage_id, reader in self.readers.items():
                    reader.follow_log(OffsetLog(self._checkpointing.offset_log, stage_id), self.batch_id)
        except BaseException:
            self.close()
            raise

    def _open_checkpoints(self) -> RestorePoint | None:
        """With a checkpoint directory: lock it; the newest good checkpoint's RestorePoint, if any."""
        if self.checkpoint_dir is None or not self.output.durable:
            return None
        self._checkpointing = Checkpointing.for_graph(self.checkpoint_dir, self.graph)
        checkpoint = self._checkpointing.open()
        self._checkpoint_from = self.batch_id if checkpoint is None else checkpoint.next_batch
        return None if checkpoint is None else RestorePoint.of(checkpoint)

    def _restore(self, point: RestorePoint) -> None:
        """Start from a checkpoint: its operator states, watermark, batch id and output count."""
        stateful = {stage.id: stage.stateful for stage in self.stages}
        self.states.update(load_states(point.directory, point.parts, point.partitions, stateful))
        self.watermark, self.batch_id = point.watermark, point.next_batch
        self.output.rows_out = point.output_rows

    @property
    def checkpoints_every(self) -> int:
        """Batches between checkpoints: the group size (10 for 'auto')."""
        size = self.config.group_size
        return size if isinstance(size, int) else 10

    def _checkpoint(self, batch_id: int) -> int | None:
        """After batch `batch_id`'s output: every `checkpoints_every` batches (and at the end), a checkpoint."""
        checkpointing = self._checkpointing
        due = (batch_id + 1 - self._checkpoint_from) % self.checkpoints_every == 0
        if not (due or self.exhausted or self.output.full):
            return None
        id, directory = checkpointing.request(0, batch_id)
        offsets = {stage: reader.offset for stage, reader in self.readers.items()}
        checkpointing.take(write_checkpoint_part(id, 0, directory, "inline.state", self.states, offsets))
        clocks = {stage: reader.clock for stage, reader in self.readers.items()}
        return checkpointing.commit(batch_id, next_batch=batch_id + 1, watermark=self.watermark, clocks=clocks,
                                    output_rows=self.output.rows_out)

    def _resume(self) -> None:
        """A restarted query: batch ids after the sink's last one, and the watermark its sources committed."""
        if not self.output.durable:
            return
        first = getattr(self.output, "first_batch_id", None)
        if callable(first):
            self.batch_id = max(self.batch_id, first())
        readers = list(self.readers.values())
        self.replay_watermark = resume_watermark([r.clock for r in readers], [r.source for r in readers], None)

    def _watermark_before(self, batches: list[SourceBatch]) -> int | None:
        """The watermark this batch's rows are checked against; ends a restart's replay at its first new batch."""
        if self.replay_watermark is not None and not any(b.replayed for b in batches):
            empty = {sid: r._empty() for sid, r in self.readers.items()}
            self._run_stages(empty, None, self.replay_watermark)  # closes what the previous run emitted: dropped
            self.watermark, self.replay_watermark = self.replay_watermark, None
        return self.watermark

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        if self.dead_letter_router is not None:
            self.dead_letter_router.close()
        if self._checkpointing is not None:
            self._checkpointing.close()

    @property
    def changelog(self) -> bool:
        """Whether the output is a changelog (later rows replace earlier ones per group)."""
        return self._changelog_stage is not None

    @property
    def exhausted(self) -> bool:
        return all(r.exhausted for r in self.readers.values())

    # ------------------------------------------------------------ one batch

    def run_batch(self) -> BatchResult:
        """Pull, process and emit one micro-batch."""
        started = time.perf_counter()
        batch_id = self.batch_id
        inputs: dict[int, pl.DataFrame] = {}
        rows_in = dead = 0
        reads: list[dict[str, Any]] = []  # rows read per source and column set (the executor's counters)
        pulled_batches: list[SourceBatch] = []
        for stage_id, reader in self.readers.items():
            read_at = time.time()
            batch = reader.read(self.config.batch_interval_ms, batch_id)
            self._read_at[stage_id] = read_at
            pulled_batches.append(batch)
            inputs[stage_id] = batch.frame
            reads.append(kernels.source_read(reader.scan, batch.frame.height))
            rows_in += batch.frame.height
            dead += len(batch.dead_letters)
            self.dead_letters.extend(batch.dead_letters)
        pulled = time.perf_counter()
        wm_prev = self._watermark_before(pulled_batches)
        replaying = self.replay_watermark is not None
        wm_new = None if replaying else query_watermark([r.clock for r in self.readers.values()], wm_prev)
        self.shuffled = []
        late, outputs, stage_rows = self._run_stages(inputs, wm_prev, wm_new)
        rows_out = self.output.emit(batch_id, outputs) + self._changelog_rows
        self._after_output(batch_id, [d for b in pulled_batches for d in b.dead_letters])
        self.watermark = wm_new
        checkpoint = None
        if self._checkpointing is not None:
            checkpoint = self._checkpoint(batch_id)
            if checkpoint is not None:  # the state is safe: sources may release everything up to here
                commit_sources(self.readers.values(), None)
                for reader in self.readers.values():
                    if reader.log is not None:
                        reader.log.committed(batch_id)
        self.batch_id += 1
        finished = time.perf_counter()
        report = {
            "batch_id": batch_id,
            "rows_in": rows_in,
            "rows_out": rows_out,
            "late_rows": late,
            "dead_letters": dead,
            "watermark": watermark_datetime(wm_new),
            "duration_ms": (finished - started) * 1000.0,
            "latency_ms": self._latency_ms(pulled, finished),
            "state_groups": sum(getattr(s, "open_groups", 0) for s in self.states.values()),
            "stage_rows": stage_rows,
            **kernels.counter_report(self.shuffled, reads),
        }
        if self._checkpointing is not None:
            report["checkpoint"] = checkpoint
        done = self.exhausted or self.output.full
        return BatchResult(report, done)

    def _after_output(self, batch_id: int, letters: list[DeadLetter]) -> None:
        """The batch's output is written: its dead letters go out, then the sources may release it."""
        if self.dead_letter_router is not None and letters:
            self.dead_letter_router.write(batch_id, letters)
        if self.output.durable and self._checkpointing is None:
            wm_columns = {r.scan.source.watermark.column for r in self.readers.values()
                          if r.scan.source.watermark is not None}
            commit_sources(self.readers.values(), retention_ms(self.states.values(), wm_columns))

    @staticmethod
    def _latency_ms(pulled: float, finished: float) -> float:
        """From the moment the batch's newest rows arrived (the pull returned) to its output being written.

        A paced source returns a batch when the wall clock reaches its newest
        event, so this is the event latency of that newest event.
        """
        return (finished - pulled) * 1000.0

    def _run_stages(self, inputs: dict[int, pl.DataFrame], wm_prev: int | None,
                    wm_new: int | None) -> tuple[int, list[pl.DataFrame], dict[int, int]]:
        buffers: dict[tuple[int, int], list[pl.DataFrame]] = defaultdict(list)
        outputs: list[pl.DataFrame] = []
        stage_rows: dict[int, int] = {}
        late = changed = 0
        for stage in self.stages:
            if stage.is_source:
                tasks = [(0, inputs[stage.id])]
            else:
                tasks = [(p, _concat(buffers.pop((stage.id, p), []), stage)) for p in range(stage.partitions)]
            produced = 0
            for partition, frame in tasks:
                if not frame.height and (stage.stateful is None or wm_new == wm_prev):
                    continue
                started = self._read_at.pop(stage.id, None) or time.time()
                result, task_late = self._run_task(stage, partition, frame, wm_prev, wm_new)
                if self.task_log is not None:
                    self._log_task(stage, partition, frame.height, result, started)
                late += task_late
                if result is None:
                    continue
                terminal = stage.terminal
                if stage is self._changelog_stage and self.output.changelog_collects:
                    changed += result[0].height  # already folded into the collected changelog
                    produced += result[0].height
                elif isinstance(terminal, ShuffleWrite):
                    for part, piece in result.items():
                        buffers[(terminal.target, part)].append(piece)
                        produced += piece.height
                    self.shuffled.append(kernels.shuffle_counts(stage.id, partition, result))
                else:
                    outputs.append(result[0])
                    produced += result[0].height
            stage_rows[stage.id] = produced
        self._changelog_rows = changed
        return late, outputs, stage_rows

    def _log_task(self, stage: Stage, partition: int, rows_in: int, result: dict[int, pl.DataFrame] | None,
                  started: float) -> None:
        """Record one task for the trace, in the workers' TaskMetrics shape (a source task includes its read)."""
        from executor.metrics import TaskMetrics

        rows_out = 0 if result is None else sum(f.height for f in result.values())
        self.task_log.append(TaskMetrics(  # type: ignore[union-attr]
            batch=self.batch_id, stage=stage.id, partition=partition, worker=0, sent_at=started,
            assigned_at=started, slot_free_at=started, inputs_ready_at=0.0, inputs_arrived_at=started,
            started_at=started, finished_at=time.time(), rows_in=rows_in, rows_out=rows_out, trigger="inline"))

    def _run_task(self, stage: Stage, partition: int, frame: pl.DataFrame, wm_prev: int | None,
                  wm_new: int | None) -> tuple[dict[int, pl.DataFrame] | None, int]:
        """One task: the stage's pipeline on one partition's input; its output by target partition."""
        pipe = self.pipes[stage.id]
        if stage.stateful is None:
            return self._finish(pipe, stage, frame), 0
        rows = pipe.run(frame, self.tables) if len(pipe.ops) > 1 else frame
        collected = stage is self._changelog_stage and self.output.changelog_collects
        state = self.states.get((stage.id, partition))
        if state is None:
            state = self.states[(stage.id, partition)] = make_state(stage.stateful)
        if isinstance(state, AggregateState):  # new, or loaded from a checkpoint
            state.emits_rows = collected and self.output.takes_rows
        step = kernels.catch_operator(stage.stateful, lambda: state.step(rows, wm_prev, wm_new))
        if collected:
            self.output.apply_changelog(step.frame, step.deletes)
            return {0: step.frame}, step.late
        if not step.frame.height:
            return None, step.late
        return self._finish(self.posts[stage.id], stage, step.frame), step.late

    def _finish(self, pipe: kernels.Pipeline, stage: Stage, frame: pl.DataFrame) -> dict[int, pl.DataFrame]:
        if isinstance(stage.terminal, ShuffleWrite):
            return pipe.run_partitioned(frame, self.tables)
        return {0: pipe.run(frame, self.tables)}

    # ------------------------------------------------------------ the end

    def final_changelog(self) -> pl.DataFrame | None:
        """collect() of a changelog: the post-operators over the last value of every group."""
        if self._changelog_stage is None or not isinstance(self.output, CollectOutput):
            return None
        stage = self._changelog_stage
        table = self.output.table
        op = stage.stateful
        if (table is None or not table.height) and not op.keys and op.window is None:  # type: ignore[union-attr]
            table = empty_aggregate_row(op)  # type: ignore[arg-type]
        elif table is None:
            table = kernels.empty_frame(op.output)  # type: ignore[union-attr]
        result = self.posts[stage.id].run(table, self.tables)
        result = kernels.conform(result, self.output.schema)
        result = result if self.limit is None else result.head(self.limit)
        return kernels.sort_rows(result, self.output.order, self.output.order_limit)


def _concat(frames: list[pl.DataFrame], stage: Stage) -> pl.DataFrame:
    if not frames:
        return kernels.empty_frame(stage.head.schema)  # type: ignore[union-attr]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")


# ---------------------------------------------------------------- checks


def check_can_emit(graph: nx.DiGraph, readers: dict[int, Reader]) -> None:
    """Refuse a windowed EMIT final over an unbounded stream that has no watermark: it could never emit."""
    for node in graph.nodes:
        stage: Stage = graph.nodes[node]["stage"]
        op = stage.stateful
        if not isinstance(op, AggregateOp) or op.window is None or op.changelog:
            continue
        upstream = [readers[a] for a in nx.ancestors(graph, node) if a in readers]
        unbounded = [r for r in upstream if not is_bounded(r)]
        if unbounded and not any(r.clock.delay_ms is not None for r in upstream):
            name = unbounded[0].scan.source.name
            raise PlanError(
                f"the windowed aggregate over unbounded stream '{name}' emits on window close, but '{name}' "
                f"has no watermark, so no window would ever close; add a WATERMARK clause to the stream "
                f"(e.g. WATERMARK FOR {op.window.time_column} AS {op.window.time_column} - INTERVAL '1' SECOND) "
                f"or use EMIT CHANGES")
        if unbounded and not op.window.watermarked:
            raise PlanError(
                f"the windowed aggregate over {op.window.time_column} emits on window close, but "
                f"{op.window.time_column} is not the watermark column of unbounded stream "
                f"'{unbounded[0].scan.source.name}', so no window would ever close; window over the watermark "
                f"column or use EMIT CHANGES")


def check_bounded(readers: dict[int, Reader], limit: int | None, changelog: bool, ordered: bool = False) -> None:
    """collect() must end: every source bounded, or a LIMIT on appended rows (not after ORDER BY)."""
    if limit is not None and not changelog:
        return
    for reader in readers.values():
        if not is_bounded(reader):
            name = reader.scan.source.name
            why = ("ORDER BY needs the whole result, so its LIMIT cannot end the stream; bound the source"
                   if ordered else "use start() for a continuous query, add a LIMIT, or bound the source")
            raise PlanError(f"collect() needs bounded input, but stream '{name}' is unbounded; {why} "
                            f"(e.g. a generator 'count')")


# ---------------------------------------------------------------- entry points


def build_query(plan: Plan, config: RunConfig, output_factory: Callable[[Schema, int | None], Output],
                *, realtime: bool) -> InlineQuery:
    graph = lower(plan, config.workers)
    output = output_factory(graph.graph["schema"], graph.graph.get("limit")).ordered(graph)
    check_sorted_output(output)
    return InlineQuery(graph, config, output, realtime=realtime)


def check_sorted_output(output: Output) -> None:
    """A continuous query sorts each batch; ORDER BY ... LIMIT would need the whole unbounded result."""
    if output.durable and output.order_limit is not None:
        raise PlanError("ORDER BY with LIMIT needs the whole result: run it with collect() over bounded input "
                        "(a continuous query sorts each micro-batch's rows, and a LIMIT without ORDER BY "
                        "ends it after that many rows)")


def run_to_end(query: InlineQuery, on_batch: Callable[[dict[str, Any]], None] | None = None,
               should_stop: Callable[[], bool] | None = None,
               idle_sleep: bool = False) -> None:
    """Run batches until the input ends, the LIMIT is reached or `should_stop()` says so."""
    while not (should_stop and should_stop()):
        result = query.run_batch()
        if on_batch is not None:
            on_batch(result.report)
        if result.done:
            return
        if idle_sleep and result.report["rows_in"] == 0 and not any(r.realtime for r in query.readers.values()):
            time.sleep(min(query.config.batch_interval_ms, 100) / 1000.0)


def collect_plan(plan: Plan, config: RunConfig,
                 on_batch: Callable[[dict[str, Any]], None] | None = None, *, catalog: Any = None) -> pl.DataFrame:
    """Run `plan` over its (bounded) input in this process and return the final result.

    `on_batch` receives each micro-batch's progress report. Bad records go
    where a source's `dead_letter` option says (`catalog` resolves sink
    names); without the option they are only counted.
    """
    query = build_query(plan, config, CollectOutput, realtime=False)
    query.dead_letter_router = dead_letter_router(query.graph, catalog=catalog, use_default=False)
    query.open()
    try:
        check_bounded(query.readers, query.limit, query.changelog, bool(query.output.order))
        run_to_end(query, on_batch)
    except DSLError:
        raise
    except Exception as exc:
        raise ExecutionError(f"query failed: {kernels.error_text(exc)}") from exc
    finally:
        query.close()
    final = query.final_changelog()
    return final if final is not None else query.output.result()  # type: ignore[union-attr]
