"""The driver of the multiprocess executors, and the Drizzle micro-batch group loop.

`Driver` holds what Drizzle and BSP share: opening the query (broadcast
tables read once, sources checked, workers started and given the stage
programs once), the query output (each batch's rows reach the sink in
batch order as soon as every output task of the batch sent them; the
output rows are the one thing that flows to the driver per batch), the
progress dicts (the inline executor's fields and counters, plus
scheduling metrics), source commits (once a batch is recorded, its
sources may release what it read: the commit rides on the next message
to the workers, or goes alone when the query ends), and failure handling:
a worker's `Failed` or a dead worker ends the query with one
ExecutionError, and every worker process is gone afterwards. Every
blocking receive has a timeout, after which worker liveness (and a stop
request) is checked, so the driver never hangs.

`Driver.run` drives a scheduling policy (`DrizzlePolicy` in drizzle.py's
`DrizzleDriver`, `BspPolicy` in bsp.py) through one loop; what it does with
finished batches (output, changelog, progress, checkpoints) is in records.py. In Drizzle the policy sends one
message per worker with every task of the next G micro-batches; map tasks
notify reducers directly and reducers advance the watermark themselves, so
the driver hears from the workers only at the group boundary (and gets
each batch's output rows, one message per worker and batch). With groups
of more than one batch the reducers are placed away from the sources'
workers (`scheduler.pipelines`), so map and reduce tasks of consecutive
batches overlap. collect()'s changelog is folded by rows while its parts
are small (`changelog_rows`): polars' fold cost the driver more per batch
than anything else it did. At the
boundary it records the group's progress, checks whether the input ended,
the LIMIT was reached or a stop was asked, and re-tunes G (AIMD,
`autotune.py`). stop() in the middle of a group cancels it: the workers
run nothing more and report, and the batches already written are recorded.

With a checkpoint directory (`recovery.py`), the group messages ask for
checkpoint parts and the boundary commits the checkpoint; a worker that
dies or falls silent (no heartbeat for `config.heartbeat_timeout`) is
not an error any more: the workers are replaced, restored from the last
checkpoint, and the run goes on from its batch.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import defaultdict, deque
from typing import Any, Callable

from executor.query.changelog import ChangelogBuffer
from executor.query.changelog_rows import RowFold
from executor.inline import collect_table
from executor.multiproc.messages import (
    Assign,
    Cancel,
    Commit,
    Failed,
    Heartbeat,
    OutputMessage,
    Ready,
    Report,
    Setup,
    Stop,
)
from executor.multiproc.metrics import BatchStats, TaskMetrics
from executor.query.outputs import QueryOutput
from executor.query.readers import DEAD_LETTERS_KEPT
from executor.query.restart import close_readers, idle_pause, open_query
from executor.query.tasks import TaskRunner
from executor.query.watermarks import Clock, WatermarkChain
from executor.recovery.checkpointing import Checkpointing, RestorePoint, clocks_of
from executor.multiproc import transports
from executor.multiproc.batch_logs import DriverLogs
from executor.multiproc.runtime import Transport
from executor.multiproc.policies import Begin, Boundary, Finish, Proceed, Reported, SendTasks, Shutdown
from executor.multiproc.scheduler import Topology, place, topology_of
from executor.multiproc.shuffle import encode, source_clock
from executor.multiproc.transports import TransportFactory
from executor.multiproc.records import BatchRecords, OnBatch
from executor.multiproc.worker import OutputBatch
from optimizer.physical.stages import ScanOp, Stage
from stream_dsl.config import RunConfig
from stream_dsl.connectors.base import DeadLetter
from stream_dsl.errors import DSLError, ExecutionError
from stream_dsl.observe.log import RECOVERY, event

POLL_S = 0.2  # receive timeout: how often the driver checks worker liveness and stop requests
HEARTBEAT_S = 1.0  # how often a worker says it is alive
READY_TIMEOUT_S = 60.0  # workers that are alive but not ready by then: give up
SURVIVORS_STOP_S = 1.0  # after a loss, how long the other workers get to stop cleanly before they are killed
CANCEL_TIMEOUT_S = 5.0  # how long stop() waits for cancelled workers to report

ShouldStop = Callable[[], bool] | None


class _Stopped(Exception):
    """A stop was requested while the driver waited."""


class WorkerLost(Exception):
    """A worker process died or fell silent; with checkpoints the driver recovers, else the query fails."""

    def __init__(self, worker: int, exit_code: int | None, reason: str) -> None:
        super().__init__(f"worker {worker} {reason}")
        self.worker, self.exit_code, self.reason = worker, exit_code, reason

    def error(self, timeout: float) -> ExecutionError:
        if self.reason == "heartbeat timeout":
            return ExecutionError(
                f"worker {self.worker} stopped responding (no heartbeat for {timeout:g}s); the query was stopped."
            )
        return ExecutionError(
            f"worker {self.worker} died unexpectedly (exit code {self.exit_code}); the query was "
            f"stopped. Worker processes can be killed by the system when memory runs out."
        )


class Driver(BatchRecords):
    """One query on worker processes (see the module doc); subclasses provide `run`."""

    executor = "multiprocess"

    def __init__(
        self,
        graph: Any,
        config: RunConfig,
        output: QueryOutput,
        *,
        realtime: bool,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.graph = graph
        self.config = config
        self.output = output
        self.realtime = realtime
        self.runner = TaskRunner(graph, output)  # the changelog stage, the final changelog and the tables
        self.stages: list[Stage] = self.runner.stages
        self.topology: Topology = topology_of(self.stages)
        self.workers = config.workers
        self.transport_factory: TransportFactory = transport_factory or transports.configured_factory(
            config.transport, config
        )
        self.transport: Transport | None = None
        self.dead_letters: deque[DeadLetter] = deque(maxlen=DEAD_LETTERS_KEPT)
        self.chain = self._new_chain()  # the watermark of each recorded batch (BSP: also of each task)
        self.source_clocks: dict[int, dict[int, Clock]] = {}  # batch -> source stage -> clock, until taken
        self.restored: dict[int, int] = {}  # a restart without a checkpoint: `query/restart.py`
        self.state_hosts: set[int] = set()  # the workers that host operator state
        self.realtime_sources = False  # whether a source paces itself to the wall clock
        self.batch_id = 0
        self.done = False
        self.output_tasks = self.topology.output_tasks
        self.outputs: dict[int, dict[tuple[int, int], OutputMessage]] = defaultdict(dict)
        self.next_emit = 0
        self.emitted: dict[int, tuple[int, float]] = {}
        self.stats: dict[int, BatchStats] = defaultdict(BatchStats)
        self.state_groups: dict[int, dict[int, int]] = defaultdict(dict)
        self.late_sides: dict[int, dict[int, dict[int, tuple[int, int]]]] = defaultdict(dict)
        self.retention: dict[int, dict[int, int | None]] = defaultdict(dict)  # batch -> worker -> retention_ms
        self.commit: Commit | None = None  # sources may release what they read up to here (durable outputs)
        self.commit_sent: dict[int, int] = {}  # worker -> the last batch it was told to commit
        self.tasks: dict[int, list[TaskMetrics]] = defaultdict(list)
        self.messages_for: dict[int, float] = defaultdict(float)  # batch -> driver-to-worker messages
        self.assignment_log: deque[tuple[int, int, int, int, float]] = deque(maxlen=100_000)  # (assignment,
        # worker, first batch, last batch, sent at): the driver-to-worker task messages, newest last
        self.task_log: deque[TaskMetrics] = deque(maxlen=100_000)
        self.worker_pids: list[int] = []
        self.dead_letter_router: Any = None  # where bad records go (executor.query.release.dead_letter_router)
        self.late_row_router: Any = None  # where routed late rows go (connectors.late_rows)
        self._changelog = self.runner.changelog_stage is not None and self.output.changelog_collects
        self.changelog = ChangelogBuffer(list(getattr(self.output, "group_keys", [])))
        self.changelog_rows = RowFold(list(getattr(self.output, "group_keys", [])))
        self.checkpointing: Checkpointing | None = None  # with a checkpoint_dir (continuous queries)
        self.batch_logs: DriverLogs | None = None  # with checkpoints: the sources' offset logs (`batch_logs.py`)
        self.last_seen: dict[int, float] = {}  # worker -> when its last heartbeat was read
        self.group_id = -1  # the last group (or batch, BSP) begun, kept across recoveries
        self.pool: Any = None  # a Context's WorkerPool (`pool.py`): its warm workers, and it takes them back
        self.cancelled = False
        self.transport_done = False
        self.clean_end = False  # the run ended by itself (no failure, cancel or lost worker since the start)

    # ------------------------------------------------------------ lifecycle

    def open(self, *, bounded: bool = False) -> None:
        """Read tables, check the sources (in this process), then start the workers and set them up.

        Where the query starts is `query/restart.py`'s decision, as for every
        executor: a checkpoint, or after what the sink and sources hold.
        """
        start = open_query(self.graph, self.config, self.output, collect_table, realtime=self.realtime, bounded=bounded)
        self.realtime_sources = any(r.realtime for r in start.readers.values())
        close_readers(start.readers)  # the workers open their own
        self.runner.tables, self.checkpointing, self.restored = start.tables, start.checkpointing, start.restored
        self.batch_id = self.next_emit = start.first_batch
        if start.restore is not None:
            self._rewind(start.restore)
        else:
            self.chain.last_batch = self.batch_id - 1
            self.chain.resume_from(self.restored)
        if self.checkpointing is not None:
            self.checkpointing.last = start.restore or RestorePoint(
                None, "", self.batch_id, None, clocks_of(self.chain.clocks)
            )
        try:
            self._start_workers(start.restore)
        except WorkerLost as lost:
            self.close()
            raise lost.error(self.config.heartbeat_timeout) from None
        except BaseException:
            self.close()
            raise

    def _new_chain(self) -> WatermarkChain:
        return WatermarkChain({s.id: source_clock(s) for s in self.stages if s.is_source})

    def _rewind(self, point: RestorePoint) -> None:
        """Driver state as it was after batch `point.next_batch - 1`; what came after is forgotten."""
        self.batch_id = self.next_emit = point.next_batch
        self.chain = self._new_chain()
        self.chain.restore(point.clocks, point.next_batch, point.watermark)
        if point.checkpoint is None:  # back to the start of a restarted query
            self.chain.resume_from(self.restored)
        self.output.rows_out = point.output_rows
        self.done = False
        for per_batch in (
            self.outputs,
            self.emitted,
            self.stats,
            self.tasks,
            self.state_groups,
            self.late_sides,
            self.retention,
            self.messages_for,
            self.source_clocks,
        ):
            per_batch.clear()

    def _hosts(self) -> dict[tuple[int, int], int]:
        """Which worker runs each task: the same for every group, so a partition's state stays put."""
        return dict(place(self.topology, self.workers, clock_notices=True).hosts)

    def _start_workers(self, restore: RestorePoint | None = None) -> None:
        """A new transport and worker processes, set up (from `restore`, after a failure or a restart)."""
        from executor.multiproc import worker_process

        transport = self.transport = self.transport_factory(self.workers)
        self.last_seen = {}  # a worker is watched from its Ready on
        hosts = self._hosts()
        transport.keep_local({hosts[(s.id, 0)] for s in self.stages if s.is_source and _node_local(s)})
        tables = {tid: transport.share(encode(frame)) for tid, frame in self.runner.tables.items()}
        for w in range(self.workers):
            transport.start_worker(w, worker_process.main)
        self.worker_pids = transport.pids
        stateful = {s.id for s in self.stages if s.stateful is not None}
        self.state_hosts = {w for (stage, _), w in hosts.items() if stage in stateful}
        self._open_batch_logs()
        worker_config = self.config.with_options(checkpoint_dir=None)  # only the driver touches checkpoints
        connectors = _connector_registry()
        for w in range(self.workers):
            memory = {}
            sources = [s.id for s in self.stages if s.is_source and hosts[(s.id, 0)] == w]
            for stage in self.stages:
                if stage.id in sources:
                    memory.update(_memory_data(stage))
            transport.send(
                w,
                Setup(
                    self.graph,
                    worker_config,
                    tables,
                    memory,
                    connectors,
                    self.realtime,
                    self._changelog,
                    os.getcwd(),
                    tuple(sys.path),
                    self.batch_id,
                    None if restore is None else restore.for_worker(hosts, w),
                    HEARTBEAT_S,
                    None if self.batch_logs is None else self.batch_logs.replays_for(sources),
                    self.restored,
                ),
            )
        ready: set[int] = set()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready) < self.workers:
            message = self._receive(None, deadline)
            if message is None:
                raise ExecutionError(
                    f"workers {sorted(set(range(self.workers)) - ready)} did not start within {READY_TIMEOUT_S:.0f}s"
                )
            if isinstance(message, Ready):
                ready.add(message.worker)
                self.last_seen[message.worker] = time.monotonic()

    def _open_batch_logs(self) -> None:
        """With checkpoints: the sources' offset logs, read from the batch the workers start at."""
        if self.batch_logs is not None:
            self.batch_logs.close()
        if self.checkpointing is not None:
            sources = [s.id for s in self.stages if s.is_source]
            self.batch_logs = DriverLogs(self.checkpointing.offset_log, sources, self.batch_id)

    def close(self) -> None:
        """Stop every worker process (idempotent)."""
        if self.transport is not None and not self.transport_done:
            self._send_last_commit()
            self.transport_done = True  # given back or shut down once: a given-back one may serve another query
            if not (self.pool is not None and self.clean_end and self.pool.give_back(self.transport)):
                self.transport.shutdown(message=Stop())
        if self.batch_logs is not None:
            self.batch_logs.close()
        if self.dead_letter_router is not None:
            self.dead_letter_router.close()
            self.dead_letter_router = None
        if self.late_row_router is not None:
            self.late_row_router.close()
            self.late_row_router = None
        if self.checkpointing is not None:
            self.checkpointing.close()

    def recover(self, lost: WorkerLost) -> None:
        """A worker is gone: stop the others, restore the last checkpoint into a new set of workers, replay
        from its batch.

        The survivors are asked to stop rather than killed: a transport that
        keeps clean workers warm (Ray's actors) hands them to the next set,
        so only the lost workers are replaced and the survivors just reload
        the checkpoint's state. Without checkpoints (collect(), or no
        checkpoint_dir) the query fails with one clear error instead.
        """
        checkpointing = self.checkpointing
        if checkpointing is None or checkpointing.last is None:
            raise lost.error(self.config.heartbeat_timeout) from None
        point = checkpointing.last
        entry = checkpointing.recovering(lost.worker, lost.exit_code, lost.reason, point.next_batch)
        if checkpointing.gave_up:
            raise ExecutionError(
                f"{lost.error(self.config.heartbeat_timeout)} Workers were replaced "
                f"{len(checkpointing.recoveries) - 1} times in a row without reaching a new "
                f"checkpoint; giving up."
            ) from None
        event(
            RECOVERY,
            logging.WARNING,
            f"worker {lost.worker} {lost.reason}"
            + ("" if lost.exit_code is None else f" (exit code {lost.exit_code})")
            + "; replacing the workers from "
            + (f"checkpoint {point.checkpoint}" if point.checkpoint is not None else "the query's start")
            + f", replaying from batch {point.next_batch}",
            worker=lost.worker,
            exit_code=lost.exit_code,
            reason=lost.reason,
            checkpoint=point.checkpoint,
            resumed_batch=point.next_batch,
        )
        assert self.transport is not None
        self.transport.shutdown(SURVIVORS_STOP_S, message=Stop())
        checkpointing.abandon()
        self.commit_sent = {}
        self._rewind(point)
        self._start_workers(point if point.checkpoint is not None else None)
        entry["restored_at"] = time.time()
        event(
            RECOVERY,
            logging.INFO,
            f"workers restored in {(entry['restored_at'] - entry['detected_at']) * 1000:.0f} ms",
            restored_ms=(entry["restored_at"] - entry["detected_at"]) * 1000,
        )

    def run(self, on_batch: OnBatch = None, should_stop: ShouldStop = None, *, idle_sleep: bool = False) -> None:
        """Run the scheduling policy's loop; after a lost worker, recover (or fail) and run it again
        from the checkpoint's batch with a fresh policy."""
        lost: WorkerLost | None = None
        while not self.output.full:  # full before the first batch only under LIMIT 0
            try:
                if lost is not None:
                    self.recover(lost)
                    lost = None
                self._drive(self._new_policy(), on_batch, should_stop, idle_sleep)
                self.clean_end = not self.cancelled and not self.recoveries
                return
            except WorkerLost as exc:
                lost = exc

    def _drive(self, policy: Any, on_batch: OnBatch, should_stop: ShouldStop, idle_sleep: bool) -> None:
        """Carry out the policy's instructions and feed it the workers' reports, from `self.batch_id` on."""
        work = deque(policy.handle(Begin(self.batch_id)))
        try:
            while True:
                while work:
                    instruction = work.popleft()
                    if isinstance(instruction, SendTasks):
                        self.send(self._outgoing(instruction))
                    elif isinstance(instruction, Boundary):
                        work.extend(policy.handle(self._boundary(instruction, on_batch, should_stop, idle_sleep)))
                    elif isinstance(instruction, Shutdown):
                        return
                message = self._receive(should_stop)
                if isinstance(message, Report):
                    self.take_report(message)
                    work.extend(policy.handle(Reported(message.worker, message.assignment)))
        except _Stopped:
            self.cancel(on_batch)

    def _new_policy(self) -> Any:
        """The scheduling state machine (`scheduler.py`) for a run from `self.batch_id`."""
        raise NotImplementedError

    def _outgoing(self, instruction: SendTasks) -> SendTasks:
        """A task message as it goes out (BSP adds the batch's watermarks)."""
        return instruction

    def _boundary(
        self, boundary: Boundary, on_batch: OnBatch, should_stop: ShouldStop, idle_sleep: bool
    ) -> Proceed | Finish:
        raise NotImplementedError

    # ------------------------------------------------------------ messages

    def send(self, instruction: SendTasks) -> None:
        """One driver-to-worker message carrying `instruction`'s tasks."""
        assert self.transport is not None
        sent = time.time()
        commit = self._commit_for(instruction.worker)
        checkpoint = (
            self.checkpointing.request(instruction.worker, instruction.last_batch)
            if self.checkpointing is not None and self._wants_checkpoint(instruction)
            else None
        )
        self.transport.send(
            instruction.worker,
            Assign(
                instruction.assignment,
                instruction.tasks,
                instruction.placement,
                instruction.first_batch,
                instruction.last_batch,
                sent,
                commit,
                checkpoint,
            ),
        )
        self.assignment_log.append(
            (instruction.assignment, instruction.worker, instruction.first_batch, instruction.last_batch, sent)
        )
        share = 1.0 / (instruction.last_batch - instruction.first_batch + 1)
        for b in range(instruction.first_batch, instruction.last_batch + 1):
            self.messages_for[b] += share

    def _wants_checkpoint(self, instruction: SendTasks) -> bool:
        """Whether this message asks its worker for a checkpoint part (Drizzle: every group message)."""
        return self.checkpointing is not None

    def _commit_for(self, worker: int) -> Commit | None:
        """The commit this worker has not heard of yet (it rides on the worker's next message)."""
        commit = self.commit
        if commit is None or self.commit_sent.get(worker, -1) >= commit.through_batch:
            return None
        self.commit_sent[worker] = commit.through_batch
        return commit

    def _send_last_commit(self) -> None:
        """At the end of the query: the commit no group message carried yet."""
        if self.transport is None or self.commit is None:
            return
        for worker in range(self.workers):
            commit = self._commit_for(worker)
            if commit is not None:
                try:
                    self.transport.send(worker, commit)
                except Exception:
                    pass

    def _receive(self, should_stop: ShouldStop, deadline: float | None = None) -> Any:
        """The next report-type message (None once `deadline` passed); outputs are handled on the way.

        A worker's failure, a dead worker and a stop request raise.
        """
        assert self.transport is not None
        checked = time.monotonic()
        while True:
            if should_stop is not None and should_stop():
                raise _Stopped()
            message = self.transport.receive(POLL_S)
            now = time.monotonic()
            if message is None or now - checked > POLL_S:
                self._check_workers()
                checked = now
            if message is None:
                self._check_heartbeats(now)  # only with the inbox drained: a backlog is not silence
                if deadline is not None and now > deadline:
                    return None
                continue
            if isinstance(message, (OutputMessage, OutputBatch)):
                self._on_outputs(message)
                continue
            if isinstance(message, Heartbeat):
                self.last_seen[message.worker] = now
                continue
            if isinstance(message, Failed):
                error = ExecutionError(message.message)
                error.remote_traceback = message.detail  # type: ignore[attr-defined]
                raise error
            return message

    def _check_workers(self) -> None:
        """A dead worker process raises WorkerLost."""
        assert self.transport is not None
        dead = self.transport.dead_workers()
        if dead:
            raise WorkerLost(dead[0][0], dead[0][1], "exited")

    def _check_heartbeats(self, now: float) -> None:
        """A worker silent for longer than the heartbeat timeout raises WorkerLost."""
        limit = self.config.heartbeat_timeout
        for worker, seen in sorted(self.last_seen.items()):
            if now - seen > limit:
                raise WorkerLost(worker, None, "heartbeat timeout")

    def take_report(self, report: Report) -> None:
        """Keep a worker's task metrics, batch stats, source clocks and checkpoint part until the batches are
        recorded."""
        if report.checkpoint is not None and self.checkpointing is not None:
            self.checkpointing.take(report.checkpoint)
        for task in report.tasks:
            self.tasks[task.batch].append(task)
            self.task_log.append(task)
        for batch, stats in report.batches.items():
            self.stats[batch].merge(stats)
            if stats.state_groups is not None:
                self.state_groups[batch][report.worker] = stats.state_groups
            if stats.late_sides is not None:
                self.late_sides[batch][report.worker] = stats.late_sides
            if stats.retention is not None:
                self.retention[batch][report.worker] = stats.retention[0]
            if stats.clocks:
                self.source_clocks.setdefault(batch, {}).update(stats.clocks)

    # ------------------------------------------------------------ stopping

    def cancel(self, on_batch: OnBatch) -> None:
        """stop() in the middle of an assignment: workers run nothing more; record the batches that finished."""
        assert self.transport is not None
        self.cancelled = True
        for w in range(self.workers):
            self.transport.send(w, Cancel())
        waiting = set(range(self.workers))
        deadline = time.monotonic() + CANCEL_TIMEOUT_S + self.config.batch_interval_ms / 1000.0
        while waiting and time.monotonic() < deadline:
            message = self.transport.receive(POLL_S)
            if message is None:
                if self.transport.dead_workers():
                    break
                continue
            if isinstance(message, (OutputMessage, OutputBatch)):
                self._on_outputs(message)
            elif isinstance(message, Report):
                self.take_report(message)
                if message.cancelled:
                    waiting.discard(message.worker)
            elif isinstance(message, Failed):
                break
        if self.next_emit > self.batch_id:
            self.record(self.batch_id, self.next_emit - 1, on_batch, -1, 0, checkpoint=False)

    def idle_pause(self) -> None:
        """A continuous query whose sources had nothing: see `query.restart.idle_pause`."""
        idle_pause(self.config, self.realtime_sources)


# ---------------------------------------------------------------- helpers


def _memory_data(stage: Stage) -> dict[str, list[Any]]:
    """The in-memory registry data (frames and abort markers) a source stage reads, to ship to its worker.

    That is the memory connector's data, or data another connector built on
    it names with its `id` option.
    """
    from stream_dsl.connectors import memory

    scan: ScanOp = stage.head  # type: ignore[assignment]
    definition = scan.source
    is_memory = (definition.option("connector") or "").lower() == "memory"
    id = definition.option("id", definition.name if is_memory else None)
    if not id:
        return {}
    try:
        return {id: list(memory._lookup(id))}
    except DSLError:
        return {}


def _node_local(stage: Stage) -> bool:
    """Whether a source stage reads what only the driver's machine has (its connector says `NODE_LOCAL`)."""
    from stream_dsl.connectors import connector_module

    source = stage.head.source  # type: ignore[union-attr]
    name = source.option("connector")
    return bool(getattr(connector_module(name, f"stream '{source.name}'"), "NODE_LOCAL", False))


def _connector_registry() -> dict[str, str]:
    from stream_dsl import connectors

    return dict(connectors.CONNECTORS)
