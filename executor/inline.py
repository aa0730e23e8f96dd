"""The inline executor: every stage of every micro-batch in this one process, over the query core.

The micro-batch loop (exact):

1. Pull one SourceBatch from every stream source that is not exhausted
   (`Source.next_batch(batch_interval_ms, realtime=...)`); static tables
   used by broadcast joins were read once when the query opened, and a
   table scanned directly acts as a bounded source with one batch.
2. Advance the watermark with the batch's source clocks
   (`query/watermarks.py`): rows of this batch are checked against the
   previous watermark, windows close against the new one; when every
   source is exhausted it is +inf and all state flushes in this same batch.
3. Run the stages producers first (`query/tasks.py`). A source stage runs
   one task; a stage fed by a hash exchange runs one task per partition,
   each owning the state of its keys.
4. Hand the output to the query output (`query/outputs.py`: append rows,
   or a changelog's changed groups; a sink gets no deletes, so a session
   that merged away stays in its output), stopping after LIMIT rows; record
   the batch's progress (`query/progress.py`).
5. Write the batch's dead letters to their targets, then commit every
   source (`query/release.py`): only now may a source release what the
   batch read.

Where a query starts (a checkpoint, or after what its sink and sources
hold) is decided by `query/restart.py`, the same for every executor. With
a checkpoint directory the state, source offsets and watermark are
checkpointed after every `group_size` batches (`recovery.Checkpointing`,
the multiprocess executors' format; sources release what they read only
then).

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
from executor.recovery.offset_log import OffsetLog
from executor.query.diagnostics import Diagnostics, sampled
from executor.query.fused_counts import note_counts
from executor.query.fused_read import fuse_reader
from executor.query.outputs import CollectOutput, QueryOutput
from executor.query.progress import add_backlog, batch_report
from executor.query.readers import DEAD_LETTERS_KEPT, Reader
from executor.query.release import commit_sources, retention_ms
from executor.query.restart import close_readers, idle_pause, open_query, restore_from
from executor.query.tasks import TaskRunner, TaskResult, concat_inputs, skips
from executor.query.watermarks import Clock, WatermarkChain, WatermarkStep
from executor.recovery.checkpointing import Checkpointing, checkpoint_part
from executor.multiproc.shuffle import source_clock
from optimizer.physical.stages import ShuffleWrite, Stage
from stream_dsl.config import RunConfig
from stream_dsl.connectors.base import DeadLetter, SourceBatch
from stream_dsl.ir.udf_polars import take_letters

OnBatch = Callable[[dict[str, Any]], None] | None
ShouldStop = Callable[[], bool] | None


@dataclass
class BatchResult:
    report: dict[str, Any]
    done: bool


@dataclass
class InlineQuery:
    """One query run in this process: its stage DAG, sources, state and output (see the module doc)."""

    graph: nx.DiGraph
    config: RunConfig
    output: QueryOutput
    realtime: bool = False
    dead_letter_router: Any = None  # connectors.dead_letters.DeadLetterRouter: where bad records go
    late_row_router: Any = None  # connectors.late_rows.LateRowRouter: where routed late rows go
    task_log: list[Any] | None = None  # when tracing: a TaskMetrics per task run (executor/trace.py)
    readers: dict[int, Reader] = field(default_factory=dict)
    dead_letters: deque[DeadLetter] = field(default_factory=lambda: deque(maxlen=DEAD_LETTERS_KEPT))
    batch_id: int = 0

    executor = "inline"

    def __post_init__(self) -> None:
        self.runner = TaskRunner(self.graph, self.output)
        self.stages = self.runner.stages
        self.limit = self.graph.graph.get("limit")
        self.chain = WatermarkChain({s.id: source_clock(s) for s in self.stages if s.is_source})
        self.checkpointing: Checkpointing | None = None  # with a checkpoint_dir
        self._checkpoint_from = 0
        self._read_at: dict[int, float] = {}  # source stage -> when this batch's read began (task_log)
        self._mapped: dict[int, dict[int, pl.DataFrame]] = {}  # source stage -> its output, run with the read

    # ------------------------------------------------------------ lifecycle

    def open(self, *, bounded: bool = False) -> None:
        """Read the broadcast tables, open every source where the query starts (`query/restart.py`)."""
        start = open_query(self.graph, self.config, self.output, collect_table, realtime=self.realtime, bounded=bounded)
        self.runner.tables, self.readers, self.checkpointing = start.tables, start.readers, start.checkpointing
        for reader in self.readers.values():  # parquet batches read in one query with their stage
            fuse_reader(reader, self.runner, self.config.diagnose_every)
        self.batch_id = self._checkpoint_from = start.first_batch
        self.chain.last_batch = self.batch_id - 1
        if start.restore is not None:
            restore_from(start.restore.whole(), self.runner, self.chain)
            self.output.rows_out = start.restore.output_rows
        else:
            self.chain.resume_from(start.restored)
        if self.checkpointing is not None:
            for stage_id, reader in self.readers.items():
                log = OffsetLog(self.checkpointing.offset_log, stage_id)
                reader.follow_log(log, log.read(self.batch_id))

    def close(self) -> None:
        close_readers(self.readers)
        if self.dead_letter_router is not None:
            self.dead_letter_router.close()
            self.dead_letter_router = None
        if self.late_row_router is not None:
            self.late_row_router.close()
            self.late_row_router = None
        if self.checkpointing is not None:
            self.checkpointing.close()

    @property
    def watermark(self) -> int | None:
        return self.chain.current

    @property
    def states(self) -> dict[tuple[int, int], Any]:
        return self.runner.states

    @property
    def changelog(self) -> bool:
        """Whether the output is a changelog (later rows replace earlier ones per group)."""
        return self.runner.changelog_stage is not None

    def _backlog(self) -> dict[str, dict[str, int]]:
        """What the sources know is waiting, per source name (the parts of a split stream add up)."""
        total: dict[str, dict[str, int]] = {}
        for reader in self.readers.values():
            if reader.backlog is not None:
                add_backlog(total, reader.scan.source.name, reader.backlog)
        return total

    @property
    def exhausted(self) -> bool:
        return all(r.exhausted for r in self.readers.values())

    # ------------------------------------------------------------ the executor interface

    def run(self, on_batch: OnBatch = None, should_stop: ShouldStop = None, *, idle_sleep: bool = False) -> None:
        """Run batches until the input ends, the LIMIT is reached or `should_stop()` says so."""
        take_letters()  # UDF dead letters a failed query left behind are not this query's
        while not (should_stop and should_stop()) and not self.output.full:
            result = self.run_batch()
            if on_batch is not None:
                on_batch(result.report)
            if result.done:
                return
            if idle_sleep and result.report["rows_in"] == 0:
                idle_pause(self.config, any(r.realtime for r in self.readers.values()))

    def result(self) -> pl.DataFrame:
        """collect()'s result once the run is over: the appended rows, or the final value of every group."""
        assert isinstance(self.output, CollectOutput)
        if self.changelog:
            return self.runner.final_changelog(self.output.table, self.limit)
        return self.output.result()

    @property
    def recoveries(self) -> list[dict[str, Any]]:
        return []  # one process: nothing to recover

    @property
    def worker_pids(self) -> list[int]:
        return []

    def restored_info(self) -> dict[str, Any] | None:
        return None if self.checkpointing is None else self.checkpointing.restored_info()

    # ------------------------------------------------------------ one batch

    def run_batch(self) -> BatchResult:
        """Pull, process and emit one micro-batch."""
        started = time.perf_counter()
        batch_id = self.batch_id
        inputs: dict[int, pl.DataFrame] = {}
        clocks: dict[int, Clock] = {}
        reads: list[dict[str, Any]] = []  # rows read per source and column set (the executor's counters)
        pulled: list[SourceBatch] = []
        for stage_id, reader in self.readers.items():
            self._read_at[stage_id] = time.time()
            batch = reader.read(self.config.batch_interval_ms, batch_id)
            pulled.append(batch)
            inputs[stage_id] = batch.frame
            if batch.mapped is not None:  # the stage ran fused with the read (`fused_read.py`)
                self._mapped[stage_id] = batch.mapped
            clocks[stage_id] = Clock(reader.clock.max_event_ms, reader.exhausted, batch.replayed)
            reads.append(kernels.source_read(reader.scan, batch.rows))
            self.dead_letters.extend(batch.dead_letters)
        pulled_at = time.perf_counter()
        step = self.chain.step(batch_id, lambda b: clocks)
        facts = Diagnostics(sampled=sampled(batch_id, self.config.diagnose_every))
        late, outputs, stage_rows, shuffled, changed = self._run_stages(inputs, step, facts)
        rows_out = self.output.emit(batch_id, outputs) + changed
        letters = [d for b in pulled for d in b.dead_letters]
        udf_letters = take_letters()  # rows a Python UDF failed on (stream_dsl/ir/udf_polars.py)
        self.dead_letters.extend(udf_letters)
        letters += udf_letters
        self._after_output(batch_id, letters, facts.routed_late)
        checkpoint = self._checkpoint(batch_id) if self.checkpointing is not None else None
        self.batch_id += 1
        finished = time.perf_counter()
        report = batch_report(
            batch_id=batch_id,
            rows_in=sum(b.rows for b in pulled),
            rows_out=rows_out,
            late_rows=late,
            dead_letters=len(letters),
            watermark=step.current,
            duration_ms=(finished - started) * 1000.0,
            latency_ms=(finished - pulled_at) * 1000.0,  # the newest rows' event latency
            state_groups=self.runner.open_groups(),
            late_sides=self.runner.late_by_side(),
            diagnostics=facts,
            stage_rows=stage_rows,
            shuffled=shuffled,
            reads=reads,
            executor=self.executor,
            wall_offsets=[r.wall_offset_ms for r in self.readers.values() if r.wall_offset_ms is not None],
            backlog=self._backlog(),
        )
        if self.checkpointing is not None:
            report["checkpoint"] = checkpoint
        return BatchResult(report, self.exhausted or self.output.full)

    def _after_output(self, batch_id: int, letters: list[DeadLetter], late: list[pl.DataFrame]) -> None:
        """The batch's output is written: its dead letters and routed late rows go out, then the sources may
        release it."""
        if self.dead_letter_router is not None and letters:
            self.dead_letter_router.write(batch_id, letters)
        if self.late_row_router is not None and late:
            self.late_row_router.write(batch_id, late)
        if self.output.durable and self.checkpointing is None:
            wm_columns = {
                r.scan.source.watermark.column for r in self.readers.values() if r.scan.source.watermark is not None
            }
            commit_sources(self.readers.values(), retention_ms(self.runner.states.values(), wm_columns))

    def _run_stages(
        self, inputs: dict[int, pl.DataFrame], step: WatermarkStep, facts: Diagnostics | None = None
    ) -> tuple[int, list[pl.DataFrame], dict[int, int], list[dict[str, Any]], int]:
        """Every task of the batch, producers first: late rows, output frames, rows per stage, shuffle
        counters and the changelog rows folded into collect()'s output."""
        buffers: dict[tuple[int, int], list[pl.DataFrame]] = defaultdict(list)
        outputs: list[pl.DataFrame] = []
        stage_rows: dict[int, int] = {}
        shuffled: list[dict[str, Any]] = []
        late = changed = 0
        for stage in self.stages:
            if stage.is_source:
                tasks = [(0, inputs[stage.id])]
            else:
                tasks = [(p, concat_inputs(buffers.pop((stage.id, p), []), stage)) for p in range(stage.partitions)]
            produced = 0
            for partition, frame in tasks:
                mapped = self._mapped.pop(stage.id, None) if stage.is_source else None
                if mapped is None and skips(stage, frame, step):
                    continue
                started = self._read_at.pop(stage.id, None) or time.time()
                if mapped is not None:
                    result, task_late = mapped or None, 0
                    note_counts(stage.id, mapped, facts)  # a sampled batch's counts, made in its fused query
                else:
                    result, task_late = self.runner.run(stage, partition, frame, step, facts)
                if self.task_log is not None:
                    self._log_task(stage, partition, frame.height, result, started)
                late += task_late
                if result is None:
                    continue
                if stage is self.runner.changelog_stage and self.output.changelog_collects:
                    changed += result[0].height  # already folded into the collected changelog
                    produced += result[0].height
                elif isinstance(stage.terminal, ShuffleWrite):
                    for part, piece in result.items():
                        buffers[(stage.terminal.target, part)].append(piece)
                        produced += piece.height
                    shuffled.append(kernels.shuffle_counts(stage.id, partition, result))
                else:
                    outputs.append(result[0])
                    produced += result[0].height
            stage_rows[stage.id] = produced
        return late, outputs, stage_rows, shuffled, changed

    def _log_task(self, stage: Stage, partition: int, rows_in: int, result: TaskResult | None, started: float) -> None:
        """Record one task for the trace, in the workers' TaskMetrics shape (a source task includes its read)."""
        from executor.multiproc.metrics import TaskMetrics

        rows_out = 0 if result is None else sum(f.height for f in result.values())
        self.task_log.append(  # type: ignore[union-attr]
            TaskMetrics(
                batch=self.batch_id,
                stage=stage.id,
                partition=partition,
                worker=0,
                sent_at=started,
                assigned_at=started,
                slot_free_at=started,
                inputs_ready_at=0.0,
                inputs_arrived_at=started,
                started_at=started,
                finished_at=time.time(),
                rows_in=rows_in,
                rows_out=rows_out,
                trigger="inline",
            )
        )

    # ------------------------------------------------------------ checkpoints

    @property
    def checkpoints_every(self) -> int:
        """Batches between checkpoints: the group size (10 for 'auto')."""
        size = self.config.group_size
        return size if isinstance(size, int) else 10

    def _checkpoint(self, batch_id: int) -> int | None:
        """After batch `batch_id`'s output: every `checkpoints_every` batches (and at the end), a checkpoint;
        once it is committed the state is safe and sources may release everything up to here."""
        checkpointing = self.checkpointing
        assert checkpointing is not None
        due = (batch_id + 1 - self._checkpoint_from) % self.checkpoints_every == 0
        if not (due or self.exhausted or self.output.full):
            return None
        id = checkpointing.request(0, batch_id)
        offsets = {stage: reader.offset for stage, reader in self.readers.items()}
        checkpointing.take(checkpoint_part(id, 0, "inline.state", self.runner.states, offsets))
        clocks = {stage: reader.clock for stage, reader in self.readers.items()}
        checkpoint = checkpointing.commit(
            batch_id, next_batch=batch_id + 1, watermark=self.watermark, clocks=clocks, output_rows=self.output.rows_out
        )
        if checkpoint is not None:
            commit_sources(self.readers.values(), None)
            for reader in self.readers.values():
                if reader.log is not None:
                    reader.log.committed(batch_id)
        return checkpoint


def collect_table(plan: Any, config: RunConfig) -> pl.DataFrame:
    """A broadcast table's rows: its plan collected in this process."""
    return collect_plan(plan, config)


def collect_plan(plan: Any, config: RunConfig, on_batch: OnBatch = None, *, catalog: Any = None) -> pl.DataFrame:
    """Run an (already optimized) plan over its bounded input in this process and return the final result."""
    from executor.api import run_collect

    return run_collect(plan, config.with_options(executor="inline"), catalog, on_batch)[0]
