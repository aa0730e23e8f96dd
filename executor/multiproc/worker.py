"""A worker process: runs the tasks the driver assigns, in the order `WorkerScheduler` decides.

Lifecycle: receive `Setup` once per query (the stage programs, the
broadcast tables, data for in-memory sources), answer `Ready`, then
handle `Assign` (the tasks of a group or a wave), `MapOutput` (an
output-ready notice with pushed data, from any worker), `Commit`,
`Cancel` and `Stop` until told to stop, or until the driver process is
gone. Between two tasks the worker looks at its inbox, so a notice or a
Cancel is seen at once; a task itself is never interrupted.

Where sources are read: a source stage's task for batch b runs on the
source's home worker (fixed by the placement), which opens the source
once per query and calls `next_batch` once per batch, in batch order, so
batch b holds the same rows as in the inline executor whatever the group
size. A source is opened in the worker process from its definition; the
in-memory test source, whose frames live in the driver's registry, gets
them in `Setup` once. When the files source already holds the files of
this group's next batches, the first of their tasks reads them all and
runs their map queries as one (`Reader.read_ahead`,
`query/fused_group.py`); each later task takes its batch's output, clock
and offset in its turn, so what each batch holds and emits is unchanged.

A task does exactly what the inline executor does for the same (stage,
partition, batch): both run it through the query core's `TaskRunner`
(`executor/query/tasks.py`), so results are equal. Watermarks: in Drizzle
a stateful task derives its batch's WatermarkStep from the clocks every
source task sent along with its notices, through the same chain the
inline executor keeps (`query/watermarks.py`, restarts included); in BSP
the driver gives it.

Output rows: an output task's rows (or changelog) wait while this worker
has another task ready that reads no source (at most OUTPUT_HOLD_S), and
go to the driver together in one message (`OutputBatch`): a worker
working through a backlog sends one message for many batches, and one
that has caught up (or is about to wait for a source) sends at once.

Errors in a task become one `Failed` message naming the operator; the
worker then waits to be stopped.

Checkpoints: an `Assign` may ask for a checkpoint part; after the
assignment's last task (so the state is exactly that after its last
batch: the report comes before any task of a later assignment, which may
already be here, since batches run in order)
the worker encodes the states of its partitions as one part and sends
it with its sources' offsets in the assignment's Report; the driver
writes it (a worker never touches the checkpoint directory, which may be
on another machine). Its sources' batch ends go to the driver's offset
logs with its outputs (`batch_logs.py`). A
worker started with `Setup.restore` loads its partitions' states, opens
its sources at the checkpointed offsets and starts its watermark chain at
the checkpoint. A heartbeat thread tells the driver the process is alive,
even during a long task (the process loop is in `worker_process.py`).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import polars as pl

from executor import kernels
from executor.query.diagnostics import sampled
from executor.query.changelog_rows import pack
from executor.query.outputs import CapturedOutput
from executor.query.progress import add_backlog
from executor.query.fused_counts import note_counts
from executor.query.fused_read import fuse_reader
from executor.query.readers import Reader, open_reader
from executor.query.release import retention_ms
from executor.query.restart import restore_from
from executor.query.tasks import TaskRunner, concat_inputs, skips
from executor.query.watermarks import Clock, WatermarkChain, WatermarkStep
from executor.multiproc.messages import (
    Assign,
    Cancel,
    CheckpointPart,
    Commit,
    Logged,
    OutputMessage,
    Drained,
    Release,
    Report,
    Restore,
    Setup,
    Stop,
)
from executor.multiproc.metrics import BatchStats, TaskMetrics
from executor.multiproc.batch_logs import ShippedLog
from executor.recovery.checkpointing import checkpoint_part
from executor.multiproc.runtime import DRIVER, Channel
from executor.multiproc.scheduler import (
    Assigned,
    AssignmentDone,
    Finished,
    InputsReady,
    Notice,
    Run,
    TaskKey,
    TaskSpec,
    WorkerScheduler,
)
from executor.multiproc.shuffle import Inbox, MapOutput, decode, encode, route, source_clock
from optimizer.physical.stages import OutputWrite, ScanOp, ShuffleWrite, Stage
from stream_dsl.ir.udf_polars import take_letters
from stream_dsl.connectors.base import commit_source
from stream_dsl.errors import ExecutionError

NO_STEP = WatermarkStep(None, None)  # a source task's: it reads, it holds no state
IDLE_POLL_S = 1.0  # how often an idle worker checks that the driver is still there
OUTPUT_HOLD_S = 0.01  # a worker with tasks ready keeps finished batches' outputs back at most this long
READ_AHEAD = 100  # a source task reads at most this many of its group's batches at once (`Reader.read_ahead`)


@dataclass(frozen=True, slots=True)
class OutputBatch:
    """One worker's finished outputs, of one batch or several, in one message (see `_send_output`)."""

    outputs: tuple[OutputMessage, ...]
    logged: tuple[Logged, ...] = ()  # the batch ends this worker's sources logged since (`batch_logs.py`)

    def __reduce__(self) -> tuple:
        """The outputs as plain tuples: unpickling a slots dataclass field by field costs more than the rest."""
        return _outputs, (tuple(tuple(getattr(o, f) for f in _OUTPUT_FIELDS) for o in self.outputs), self.logged)


_OUTPUT_FIELDS = tuple(f.name for f in dataclasses.fields(OutputMessage))


def _outputs(rows: tuple[tuple, ...], logged: tuple[Logged, ...] = ()) -> OutputBatch:
    return OutputBatch(tuple(OutputMessage(*row) for row in rows), logged)


@dataclass
class _Pending:
    """What a worker has measured but not reported yet, per assignment."""

    tasks: list[TaskMetrics] = field(default_factory=list)
    batches: dict[int, BatchStats] = field(default_factory=dict)


class WorkerRunner:
    """The state of one worker for one query (see the module doc)."""

    def __init__(self, channel: Channel, setup: Setup) -> None:
        self.channel = channel
        self.me = channel.worker
        self.setup = setup
        _install_connectors(setup)
        take_letters()  # a warm worker: UDF dead letters a failed query left behind are not this query's
        self.output = CapturedOutput(setup.collect_changelog)
        self.runner = TaskRunner(setup.graph, self.output)
        self.runner.tables = {tid: decode(channel.unshare(handle)) for tid, handle in setup.tables.items()}
        self.stages: dict[int, Stage] = {s.id: s for s in self.runner.stages}
        _import_connectors(self.stages.values())
        self.readers: dict[int, Reader] = {}
        self.mapped: dict[int, dict[int, pl.DataFrame]] = {}  # source stage -> its output, run with the read
        self.sched = WorkerScheduler(self.me)
        self.inbox = Inbox()
        self.chain = WatermarkChain(
            {s.id: source_clock(s) for s in self.stages.values() if s.is_source}, last_batch=setup.first_batch - 1
        )
        self.restore: Restore | None = setup.restore
        if self.restore is not None:
            restore_from(self.restore, self.runner, self.chain)
        else:
            self.chain.resume_from(setup.resume)
        self.assigns: dict[int, Assign] = {}
        self.owner: dict[TaskKey, int] = {}
        self.assigned_at: dict[TaskKey, float] = {}
        self.arrived_at: dict[TaskKey, float] = {}
        self.produced_at: dict[int, dict[tuple[int, int], float]] = {}  # batch -> map id -> finished
        self.pending: dict[int, _Pending] = {}
        self.last_finished: float | None = None
        self.offsets: dict[int, dict[int, Any]] = {}  # batch -> source stage -> offset after it, until committed
        self.watermark_columns = {
            s.head.source.watermark.column
            for s in self.stages.values()
            if isinstance(s.head, ScanOp) and s.head.source.watermark is not None
        }
        self.work: deque = deque()
        self.unsent: list[OutputMessage] = []  # outputs of finished tasks, not sent yet (see `_send_output`)
        self.unlogged: list[Logged] = []  # batch ends read, not sent to the driver's offset logs yet
        self.unsent_since = 0.0  # when the oldest of them was kept back (time.monotonic)
        self.stopped = False
        self.released = False  # stopped by Release: the process serves the next query (a warm pool)
        self.drained: set[int] = set()  # peers whose Drained came before this process's Release
        self.cancelled = False

    # ------------------------------------------------------------ messages and instructions

    def handle(self, message: Any) -> None:
        """Take in one message; the scheduler's instructions queue up in `work`."""
        if isinstance(message, Stop):
            self.stopped = True
        elif isinstance(message, Release):  # a clean end: the process stays for the next query
            self.stopped = self.released = True
        elif isinstance(message, Drained):  # a peer released before this process read its own Release
            self.drained.add(message.worker)
        elif isinstance(message, Commit):
            self._commit(message)
        elif self.cancelled:
            return  # after Cancel nothing runs any more; wait for Stop
        elif isinstance(message, MapOutput):
            if message.batch >= self.sched.floor:
                self._arrived(message)
        elif isinstance(message, Assign):
            if message.commit is not None:
                self._commit(message.commit)
            now = time.time()
            self.assigns[message.assignment] = message
            for spec in message.tasks:
                self.owner[spec.key] = message.assignment
                self.assigned_at[spec.key] = now
            self.pending.setdefault(message.assignment, _Pending())
            self.work.extend(self.sched.handle(Assigned(message.assignment, message.tasks, message.last_batch)))
        elif isinstance(message, Cancel):
            self._cancel()
        else:
            raise ExecutionError(f"internal error: worker {self.me} got an unknown message {type(message).__name__}")

    def _arrived(self, output: MapOutput) -> None:
        self.inbox.put(output)
        self.produced_at.setdefault(output.batch, {}).setdefault(output.map_id, output.finished_at)
        self.work.extend(self.sched.handle(Notice(output.batch, output.map_id)))

    def step(self) -> None:
        """Carry out the next instruction (running a task is one instruction)."""
        instruction = self.work.popleft()
        if isinstance(instruction, InputsReady):
            self.arrived_at.setdefault(instruction.key, time.time())
        elif isinstance(instruction, Run):
            for local in self._run(instruction):
                self._arrived(local)
            self.work.extend(self.sched.handle(Finished(instruction.spec.key)))
            held = self.unsent or self.unlogged
            if held and not holds_outputs(self.work, self.stages, time.monotonic() - self.unsent_since):
                self._flush_outputs()
        elif isinstance(instruction, AssignmentDone):
            self._report(instruction.assignment)

    def _report(self, assignment: int) -> None:
        """Every task of `assignment` ran: one report to the driver (with a checkpoint part, if asked)."""
        self._flush_outputs()
        pending = self.pending.pop(assignment, _Pending())
        assign = self.assigns.pop(assignment, None)
        part = None if assign is None or assign.checkpoint is None else self._checkpoint_part(assign.checkpoint)
        self.channel.send(DRIVER, Report(self.me, assignment, tuple(pending.tasks), pending.batches, checkpoint=part))
        floor = self.sched.floor
        self.inbox.drop_before(floor)
        for b in [b for b in self.produced_at if b < floor]:
            del self.produced_at[b]

    def _checkpoint_part(self, id: int) -> CheckpointPart:
        """This worker's states (one part, for the driver to write) and its sources' offsets, as they are
        after its last task."""
        offsets = {stage: reader.offset for stage, reader in self.readers.items()}
        if self.restore is not None:  # sources not read since the restore are where the checkpoint left them
            for stage, offset in self.restore.offsets.items():
                offsets.setdefault(stage, offset)
        return checkpoint_part(id, self.me, f"worker-{self.me}.state", self.runner.states, offsets)

    def _commit(self, commit: Commit) -> None:
        """Let this worker's sources release what they read up to the committed batch (as inline does per batch)."""
        offsets = self.offsets.get(commit.through_batch, {})
        for stage, reader in self.readers.items():
            if reader.log is not None:
                reader.log.committed(commit.through_batch)
            if stage in offsets:
                commit_source(reader.source, offsets[stage], commit.keep_from_ms)
        for batch in [b for b in self.offsets if b <= commit.through_batch]:
            del self.offsets[batch]

    def _cancel(self) -> None:
        """Forget every task not run yet and report what ran."""
        self.work.clear()
        self.sched = WorkerScheduler(self.me)
        self.cancelled = True
        self._flush_outputs()
        merged = _Pending()
        for assignment in sorted(self.pending):
            part = self.pending[assignment]
            merged.tasks += part.tasks
            for batch, stats in part.batches.items():
                merged.batches.setdefault(batch, BatchStats()).merge(stats)
                if stats.state_groups is not None:
                    merged.batches[batch].state_groups = stats.state_groups
        self.pending.clear()
        self.channel.send(DRIVER, Report(self.me, -1, tuple(merged.tasks), merged.batches, True))

    # ------------------------------------------------------------ tasks

    def _run(self, instruction: Run) -> list[MapOutput]:
        """Run one task; send its outputs (other workers, the driver); return the notices for this worker."""
        spec = instruction.spec
        key = spec.key
        stage = self.stages[key.stage]
        started, cpu_started = time.time(), time.process_time()
        stats = self._stats(key)
        frame, step, clock, serialize = self._input(stage, spec, stats)
        mapped = self.mapped.pop(stage.id, None) if stage.is_source else None  # run with the read (fused_read.py)
        skipped = mapped is None and skips(stage, frame, step)
        result: dict[int, pl.DataFrame] | None = None
        stats.facts.sampled = sampled(key.batch, self.setup.config.diagnose_every)
        if mapped is not None:
            result = mapped or None
            note_counts(stage.id, mapped, stats.facts)  # a sampled batch's counts, made in its fused query
            stats.dead_letters.extend(take_letters())  # a Python UDF's, in the fused query
            if result is not None and isinstance(stage.terminal, ShuffleWrite):
                stats.shuffled.append(kernels.shuffle_counts(stage.id, key.partition, result))
        elif not skipped:
            result, late = self.runner.run(stage, key.partition, frame, step, stats.facts)
            stats.late_rows += late
            stats.dead_letters.extend(take_letters())  # rows a Python UDF failed on (stream_dsl/ir/udf_polars.py)
            if result is not None and isinstance(stage.terminal, ShuffleWrite):
                stats.shuffled.append(kernels.shuffle_counts(stage.id, key.partition, result))
        finished = time.time()
        rows_out = 0 if result is None else sum(f.height for f in result.values())
        stats.stage_rows[stage.id] = stats.stage_rows.get(stage.id, 0) + rows_out
        local, sent_s, bytes_sent = self._deliver(stage, key, result, clock, finished)
        if self.sched.unfinished.get(key.batch, 1) == 1:  # this worker's last task of the batch
            states = self.runner.states.values()
            stats.state_groups = sum(getattr(s, "open_groups", 0) for s in states)
            stats.late_sides = self.runner.late_by_side() or None
            stats.retention = (retention_ms(states, self.watermark_columns),)
        done = time.time()
        produced = self.produced_at.get(key.batch, {})
        assigned = self.assigned_at.pop(key, started)
        metrics = TaskMetrics(
            batch=key.batch,
            stage=key.stage,
            partition=key.partition,
            worker=self.me,
            sent_at=self.assigns[self.owner[key]].sent_at,
            assigned_at=assigned,
            slot_free_at=assigned if self.last_finished is None else self.last_finished,
            inputs_ready_at=max((produced.get(m, 0.0) for m in spec.waits), default=0.0),
            inputs_arrived_at=self.arrived_at.pop(key, assigned),
            started_at=started,
            finished_at=done,
            serialize_s=serialize + sent_s,
            transfer_bytes=bytes_sent,
            rows_in=frame.height,
            rows_out=rows_out,
            trigger=instruction.trigger,
            skipped=skipped,
            cpu_s=time.process_time() - cpu_started,
        )
        self.pending.setdefault(self.owner.pop(key), _Pending()).tasks.append(metrics)
        self.last_finished = done
        return local

    def _input(
        self, stage: Stage, spec: TaskSpec, stats: BatchStats
    ) -> tuple[pl.DataFrame, WatermarkStep, Clock | None, float]:
        """A task's input rows, its batch's watermarks, its source clock and the seconds spent decoding."""
        key = spec.key
        if stage.is_source:
            frame, clock = self._read_source(stage, key, stats)
            return frame, NO_STEP, clock, 0.0
        frames, decoding = self.inbox.take(key.batch, stage.id, key.partition)
        step = spec.watermarks if spec.watermarks is not None else self.chain.step(key.batch, self.inbox.take_clocks)
        return concat_inputs(frames, stage), step, None, decoding

    def _deliver(
        self, stage: Stage, key: TaskKey, result: dict[int, pl.DataFrame] | None, clock: Clock | None, finished: float
    ) -> tuple[list[MapOutput], float, int]:
        """Output rows to the driver; notices (and pushed partitions) to the receivers.

        Returns the notices for this worker itself, the seconds spent
        encoding and the bytes sent to other workers.
        """
        spent = 0.0
        target = None
        if isinstance(stage.terminal, OutputWrite):
            spent += self._send_output(stage, key, result, finished)
        else:
            target = stage.terminal.target
        parts = result if target is not None and result else {}
        routed = route(
            key.batch,
            (stage.id, key.partition),
            target,
            parts,
            self.assigns[self.owner[key]].placement,
            self.me,
            clock,
            finished,
        )
        local: list[MapOutput] = []
        for worker, output in routed.messages.items():
            if worker == self.me:
                local.append(output)
            else:
                self.channel.send(worker, output)
        return local, spent + routed.serialize_s, routed.bytes_sent

    def _stats(self, key: TaskKey) -> BatchStats:
        pending = self.pending.get(self.owner[key])
        if pending is None:
            pending = self.pending[self.owner[key]] = _Pending()
        stats = pending.batches.get(key.batch)
        if stats is None:  # not setdefault: a BatchStats per task call would be built for nothing
            stats = pending.batches[key.batch] = BatchStats()
        return stats

    def _read_source(self, stage: Stage, key: TaskKey, stats: BatchStats) -> tuple[pl.DataFrame, Clock]:
        """The source's next batch, read here in batch order (the source is opened on first use); with the next
        batches of this source this group gives this worker, when the source has them waiting (`read_ahead`)."""
        batch = key.batch
        reader = self.readers.get(stage.id)
        if reader is None:
            reader = self.readers[stage.id] = open_reader(stage, realtime=self.setup.realtime, restore=self.restore)
            if self.setup.logged is not None:
                reader.follow_log(ShippedLog(stage.id, self.unlogged), self.setup.logged.get(stage.id, {}))
            fuse_reader(reader, self.runner, self.setup.config.diagnose_every)
        kept_back = bool(self.unsent or self.unlogged)
        if reader.fused is not None and not reader.ahead:
            reader.read_ahead(self.setup.config.batch_interval_ms, self._source_batches(key))
        pulled = reader.read(self.setup.config.batch_interval_ms, batch)
        if self.unlogged and not kept_back:
            self.unsent_since = time.monotonic()
        stats.pulled_at = max(stats.pulled_at, time.time())
        stats.rows_in += pulled.rows
        stats.reads.append((stage.id, kernels.source_read(reader.scan, pulled.rows, pulled.read_with)))
        if pulled.mapped is not None:
            self.mapped[stage.id] = pulled.mapped
        stats.dead_letters.extend(pulled.dead_letters)
        clock = Clock(reader.clock.max_event_ms, reader.exhausted, pulled.replayed)
        if reader.wall_offset_ms is not None:
            stats.wall_offset_ms = reader.wall_offset_ms
        if reader.backlog is not None:
            add_backlog(stats.backlog, reader.scan.source.name, reader.backlog)
        stats.clocks[stage.id] = clock
        self.offsets.setdefault(batch, {})[stage.id] = reader.offset
        return pulled.frame, clock

    def _source_batches(self, key: TaskKey) -> list[int]:
        """The batches of this source task and the ones that follow it in its assignment, on this worker, for the
        same split: consecutive, in order (at most READ_AHEAD)."""
        tasks = self.assigns[self.owner[key]].tasks
        mine = {t.key.batch for t in tasks if t.key.stage == key.stage and t.key.partition == key.partition}
        batches = [key.batch]
        while len(batches) < READ_AHEAD and batches[-1] + 1 in mine:
            batches.append(batches[-1] + 1)
        return batches

    def _send_output(
        self, stage: Stage, key: TaskKey, result: dict[int, pl.DataFrame] | None, finished: float
    ) -> float:
        """The output task's rows (or changelog) for the driver; returns the seconds spent encoding.

        Kept back while this worker has another task ready to run, for at
        most OUTPUT_HOLD_S (`holds_outputs`): a worker working through a backlog
        of batches then sends their outputs in one message instead of one
        per batch, each of which wakes the driver (measured: the write that
        wakes it was about a sixth of a reduce worker's time on 50-row batches).
        A worker that has caught up sends at once, so a live stream's
        latency is unchanged.
        """
        started = time.perf_counter()
        frame = upserts = deletes = None
        captured, self.output.captured = self.output.captured, None
        if captured is not None:  # collect()'s changelog: the driver folds it by rows while it is small
            upserts = pack(captured[0])
            deletes = None if captured[1] is None else pack(captured[1])
        elif result is not None and result[0].height:
            frame = encode(result[0])
        spent = time.perf_counter() - started
        if not self.unsent and not self.unlogged:
            self.unsent_since = time.monotonic()
        self.unsent.append(
            OutputMessage(self.me, key.batch, stage.id, key.partition, frame, upserts, deletes, finished)
        )
        return spent

    def _flush_outputs(self) -> None:
        """Send the outputs and batch ends kept back: one message, however many tasks and batches they are."""
        if not self.unsent and not self.unlogged:
            return
        batch = OutputBatch(tuple(self.unsent), tuple(self.unlogged))
        self.unsent.clear()
        self.unlogged.clear()
        self.channel.send(DRIVER, batch)

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        from stream_dsl.connectors import memory

        for id in self.setup.memory:  # the in-memory sources' frames: the next query brings its own
            memory.unregister(id)


def holds_outputs(work: Iterable[Any], stages: Mapping[int, Stage], held_s: float) -> bool:
    """Whether finished outputs, the oldest held `held_s` seconds, may wait for the next task (see `_send_output`).

    Only behind a task that is ready to run and reads no source: a source
    may wait for its data (a live stream's next interval), and the outputs
    would wait with it.
    """
    if held_s >= OUTPUT_HOLD_S:
        return False
    following = next((i for i in work if isinstance(i, Run)), None)
    return following is not None and not stages[following.spec.key.stage].is_source


def _import_connectors(stages: Iterable[Stage]) -> None:
    """Import the sources' connector modules now, before Ready: else the first batch pays for it (measured:
    50-500 ms per worker, 0.2-3 ms per batch over 300 small batches), inside the time a benchmark measures."""
    from stream_dsl.connectors import connector_module

    for stage in stages:
        if stage.is_source and isinstance(stage.head, ScanOp) and stage.head.source.kind != "table":
            definition = stage.head.source
            connector_module(definition.option("connector"), f"stream '{definition.name}'")


def _install_connectors(setup: Setup) -> None:
    """Make this process see what the driver sees: working directory, import path, connectors, in-memory data."""
    from stream_dsl import connectors
    from stream_dsl.connectors import memory

    if setup.cwd is not None and os.path.isdir(setup.cwd):  # another machine may not have it (Ray)
        os.chdir(setup.cwd)
    for path in setup.sys_path:
        if path not in sys.path:
            sys.path.append(path)
    for name, module in setup.connectors.items():
        connectors.register_connector(name, module)
    for id, items in setup.memory.items():
        memory.register(id, items)
