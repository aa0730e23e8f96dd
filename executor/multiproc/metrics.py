"""Task and batch metrics of the multiprocess executors, measured on the workers.

Every task records a `TaskMetrics` (timestamps from `time.time()`, one
clock for the machine); the workers send them to the driver with their
report (once per group in Drizzle, once per wave in BSP), and the driver
folds them into the per-batch progress dict, per stage:

- scheduler delay: from the moment the task could have run (its inputs
  were produced and its worker was free) to the moment it started; this
  is where a driver round trip shows;
- waiting for inputs: how long the task, assigned and with a free worker,
  waited for the notices of its map tasks (it held no execution slot);
- compute: the task's own time, serialization excluded;
- serialization: encoding and decoding Arrow IPC for shuffles and output;
- transfer bytes: the shuffle's Arrow IPC bytes that went to other
  workers (the progress dict's `shuffle_bytes` is the inline executor's
  counter: the in-memory size of every map task's output);
- rows in and rows out;
- CPU: the worker process's CPU time over its tasks (all its threads,
  polars' pool included), which another program's load on the machine
  does not inflate as it does the wall-clock figures above.

Also per batch: the end-to-end latency (newest rows read to output
written), and the driver-to-worker messages the batch cost (a group
message serves every batch of its group, so each batch gets its share).
"""

from __future__ import annotations

from executor.query.diagnostics import Diagnostics

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from executor.query.progress import add_backlog
from executor.query.watermarks import Clock
from stream_dsl.connectors.base import DeadLetter


@dataclass(frozen=True, slots=True)
class TaskMetrics:
    """What one task did and when (see the module doc)."""

    batch: int
    stage: int
    partition: int
    worker: int
    sent_at: float  # the driver sent the message carrying this task
    assigned_at: float  # the worker received it
    slot_free_at: float  # the worker finished its previous task (or got this one, if later)
    inputs_ready_at: float  # the last awaited map task finished (0: no inputs)
    inputs_arrived_at: float  # the last awaited notice arrived here
    started_at: float
    finished_at: float
    serialize_s: float = 0.0
    transfer_bytes: int = 0
    rows_in: int = 0
    rows_out: int = 0
    trigger: str = ""
    skipped: bool = False  # nothing to do (no rows, watermark unchanged)
    # the process CPU time the task took (every thread, polars' pool too): unlike its wall time it does not
    # grow when other processes take the cores, so it says what a task costs on a loaded machine
    cpu_s: float = 0.0

    def __reduce__(self) -> tuple:
        """Positional pickling: a report carries one per task, and a slots dataclass's state pickles field by field."""
        return TaskMetrics, (
            self.batch,
            self.stage,
            self.partition,
            self.worker,
            self.sent_at,
            self.assigned_at,
            self.slot_free_at,
            self.inputs_ready_at,
            self.inputs_arrived_at,
            self.started_at,
            self.finished_at,
            self.serialize_s,
            self.transfer_bytes,
            self.rows_in,
            self.rows_out,
            self.trigger,
            self.skipped,
            self.cpu_s,
        )

    @property
    def ready_at(self) -> float:
        return max(self.slot_free_at, self.inputs_ready_at)

    @property
    def scheduler_delay_s(self) -> float:
        return max(0.0, self.started_at - self.ready_at)

    @property
    def wait_inputs_s(self) -> float:
        return max(0.0, self.inputs_arrived_at - max(self.slot_free_at, self.assigned_at))

    @property
    def compute_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at - self.serialize_s)


@dataclass
class BatchStats:
    """One worker's part of one batch: what the inline executor reports per batch, from this worker's tasks."""

    rows_in: int = 0
    late_rows: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    stage_rows: dict[int, int] = field(default_factory=dict)
    state_groups: int | None = None
    retention: tuple[int | None] | None = None  # (retention_ms of this worker's state,) after the batch
    clocks: dict[int, Clock] = field(default_factory=dict)  # source stage -> clock after this batch
    pulled_at: float = 0.0  # when the newest of its source reads returned
    shuffled: list[dict[str, int]] = field(default_factory=list)  # kernels.shuffle_counts per map task
    reads: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (stage, kernels.source_read)
    wall_offset_ms: int | None = None  # a paced source's event time to wall clock (query/progress.event_lag_ms)
    backlog: dict[str, dict[str, int]] = field(default_factory=dict)  # source name -> what it knows is waiting
    late_sides: dict[int, tuple[int, int]] | None = None  # interval joins' late rows so far, after the batch
    facts: Diagnostics = field(default_factory=Diagnostics)  # what the batch did per operator (`why`)

    def __reduce__(self) -> tuple:
        """Positional pickling, as TaskMetrics: a report carries one per batch of its group."""
        return BatchStats, (
            self.rows_in,
            self.late_rows,
            self.dead_letters,
            self.stage_rows,
            self.state_groups,
            self.retention,
            self.clocks,
            self.pulled_at,
            self.shuffled,
            self.reads,
            self.wall_offset_ms,
            self.backlog,
            self.late_sides,
            self.facts,
        )

    def merge(self, other: "BatchStats") -> None:
        self.rows_in += other.rows_in
        self.late_rows += other.late_rows
        self.dead_letters.extend(other.dead_letters)
        self.shuffled.extend(other.shuffled)
        self.reads.extend(other.reads)
        for stage, rows in other.stage_rows.items():
            self.stage_rows[stage] = self.stage_rows.get(stage, 0) + rows
        self.clocks.update(other.clocks)
        self.pulled_at = max(self.pulled_at, other.pulled_at)
        if other.retention is not None:  # reported after the worker's last task of the batch: the newest
            self.retention = other.retention
        if other.wall_offset_ms is not None:
            self.wall_offset_ms = max(other.wall_offset_ms, self.wall_offset_ms or other.wall_offset_ms)
        for source, backlog in other.backlog.items():  # other parts of a split stream: theirs add up
            add_backlog(self.backlog, source, backlog)
        self.facts.merge(other.facts)


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def stage_metrics(tasks: Iterable[TaskMetrics]) -> dict[int, dict[str, Any]]:
    """Per stage of one batch: task count, delays, compute, serialization, bytes and rows (times in ms)."""
    out: dict[int, dict[str, Any]] = {}
    for t in sorted(tasks, key=lambda t: (t.stage, t.partition)):
        m = out.setdefault(
            t.stage,
            {
                "tasks": 0,
                "rows_in": 0,
                "rows_out": 0,
                "scheduler_delay_ms": 0.0,
                "wait_inputs_ms": 0.0,
                "compute_ms": 0.0,
                "serialize_ms": 0.0,
                "transfer_bytes": 0,
                "cpu_ms": 0.0,
            },
        )
        m["tasks"] += 1
        m["rows_in"] += t.rows_in
        m["rows_out"] += t.rows_out
        m["scheduler_delay_ms"] = max(m["scheduler_delay_ms"], _ms(t.scheduler_delay_s))
        m["wait_inputs_ms"] = max(m["wait_inputs_ms"], _ms(t.wait_inputs_s))
        m["compute_ms"] += _ms(t.compute_s)
        m["serialize_ms"] += _ms(t.serialize_s)
        m["transfer_bytes"] += t.transfer_bytes
        m["cpu_ms"] += _ms(t.cpu_s)
    return out


def batch_totals(stages: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Batch-level sums of the per-stage metrics (delays: the sum over stages of each stage's worst task)."""
    keys = ("scheduler_delay_ms", "wait_inputs_ms", "compute_ms", "serialize_ms", "transfer_bytes")
    return {k: sum(m[k] for m in stages.values()) for k in keys}


def group_overhead(tasks: Iterable[TaskMetrics], previous_end: dict[int, float]) -> tuple[float, float]:
    """(boundary seconds, busy seconds) of one group, summed over workers; updates `previous_end`.

    A worker's boundary time is the gap from its last task of the previous
    group (for the first group: the send time of the group message) to its
    first task of this group: the other workers draining the previous
    group, the reports, the driver's work and the next group message. Its
    busy time runs from that first task to its last one. Waiting for data
    inside a group (a paced source) counts as busy: it does not shrink
    when groups grow.
    """
    by_worker: dict[int, list[TaskMetrics]] = defaultdict(list)
    for t in tasks:
        by_worker[t.worker].append(t)
    boundary = busy = 0.0
    for worker, items in by_worker.items():
        first = min(t.started_at for t in items)
        last = max(t.finished_at for t in items)
        before = previous_end.get(worker, min(t.sent_at for t in items))
        boundary += max(0.0, first - before)
        busy += max(0.0, last - first)
        previous_end[worker] = last
    return boundary, busy


def render_progress(progress: list[dict[str, Any]]) -> str:
    """The per-batch and per-stage metrics as text lines, for EXPLAIN ANALYZE."""
    if not progress:
        return "no batches ran"
    lines = []
    total_ms = sum(p.get("duration_ms", 0.0) for p in progress)
    messages = sum(p.get("driver_messages", 0.0) for p in progress)
    lines.append(
        f"batches={len(progress)} rows_in={sum(p['rows_in'] for p in progress)} "
        f"rows_out={sum(p['rows_out'] for p in progress)} late_rows={sum(p['late_rows'] for p in progress)} "
        f"time={total_ms:.1f}ms driver_messages={messages:.0f}"
    )
    stages: dict[int, dict[str, float]] = {}
    for p in progress:
        for stage, m in p.get("stages", {}).items():
            acc = stages.setdefault(stage, defaultdict(float))
            for k, v in m.items():
                acc[k] += v
    for stage, m in sorted(stages.items()):
        lines.append(
            f"  Stage {stage}: tasks={int(m['tasks'])} rows_in={int(m['rows_in'])} "
            f"rows_out={int(m['rows_out'])} compute={m['compute_ms']:.1f}ms "
            f"scheduler_delay={m['scheduler_delay_ms']:.1f}ms wait_inputs={m['wait_inputs_ms']:.1f}ms "
            f"serialize={m['serialize_ms']:.1f}ms transfer_bytes={int(m['transfer_bytes'])}"
        )
    latencies = sorted(p.get("latency_ms", 0.0) for p in progress)
    lines.append(f"  latency p50={latencies[len(latencies) // 2]:.1f}ms max={latencies[-1]:.1f}ms")
    return "\n".join(lines)
