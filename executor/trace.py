"""Chrome trace export: every task of a query on a timeline, viewable in Perfetto or chrome://tracing.

`q.start(trace="trace.json")` records the query's tasks and writes them,
when the query ends (its sink closes), in the Chrome trace event format:

    {"traceEvents": [{"name": "stage 1", "cat": "task", "ph": "X", "ts": 1234.5, "dur": 870.2,
                      "pid": 2, "tid": 1, "args": {"batch": 3, "stage": 1, "partition": 0,
                                                   "rows_in": 512, "rows_out": 100, ...}}, ...],
     "displayTimeUnit": "ms", "otherData": {...}}

One complete ("X") event per task: `ts` and `dur` in microseconds from the
first recorded moment, `pid` the process (0 the driver, w + 1 worker w, so
the driver sorts first), `tid` the stage. A worker runs one task at a time,
so a worker's rows never overlap in time; gaps are where it waited. The
driver's rows show what it did: `groups` (one span per group, or per wave
in BSP, from its first send to the next one), `boundary` (from the last
task to finish before a send to that send: the driver's time at a group
boundary, reports included), `sends` (one instant per task message, with
the batches it carries) and `sink` (each batch's write to the sink).
`otherData` holds the executor, the worker count, the Unix time of ts=0
(`t0_unix_s`) and whether older tasks were dropped (`truncated`: the
driver keeps the newest 100,000).

Task times come from `executor.multiproc.metrics.TaskMetrics`, measured on the
workers with `time.time()` (one clock per machine); the inline executor
records the same shape (`InlineQuery.task_log`). A worker's task also
carries its process CPU time (`cpu_ms`; 0 under inline): on a machine
other work keeps busy, a task's wall time grows and its CPU time does not. `summarize` turns a trace
into where the time went: per stage, per worker and at the driver.
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import polars as pl

from executor.multiproc.metrics import TaskMetrics
from stream_dsl.errors import DSLError

DRIVER_PID = 0
GROUPS_TID, BOUNDARY_TID, SENDS_TID, SINK_TID = 0, 1, 2, 3
DRIVER_THREADS = {GROUPS_TID: "groups", BOUNDARY_TID: "boundary", SENDS_TID: "sends", SINK_TID: "sink"}

Send = tuple[int, int, int, int, float]  # (assignment, worker, first batch, last batch, sent at): Driver.assignment_log


@dataclass(frozen=True, slots=True)
class SinkWrite:
    """One batch handed to the sink: when the write started and ended (Unix seconds), and its rows."""

    batch: int
    started_at: float
    finished_at: float
    rows: int


def worker_pid(worker: int) -> int:
    """The trace `pid` of worker `worker` (0 is the driver)."""
    return worker + 1


def _us(seconds: float, t0: float) -> float:
    return round((seconds - t0) * 1e6, 3)


def stage_label(stage: Any) -> str:
    """A stage's operators in one short line: 'stage 0: Scan > Filter > BroadcastJoin > ShuffleWrite'."""
    ops = list(stage.operators) + ([stage.stateful] if stage.stateful is not None else []) + list(stage.post)
    names = [type(op).__name__.removesuffix("Op") for op in ops]
    return f"stage {stage.id}: {' > '.join(names)}"


def task_event(task: TaskMetrics, t0: float) -> dict[str, Any]:
    """The complete event of one task."""
    return {
        "name": f"stage {task.stage}",
        "cat": "skipped" if task.skipped else "task",
        "ph": "X",
        "ts": _us(task.started_at, t0),
        "dur": round(max(0.0, task.finished_at - task.started_at) * 1e6, 3),
        "pid": worker_pid(task.worker),
        "tid": task.stage,
        "args": {
            "batch": task.batch,
            "stage": task.stage,
            "partition": task.partition,
            "worker": task.worker,
            "rows_in": task.rows_in,
            "rows_out": task.rows_out,
            "scheduler_delay_ms": round(task.scheduler_delay_s * 1000, 3),
            "wait_inputs_ms": round(task.wait_inputs_s * 1000, 3),
            "serialize_ms": round(task.serialize_s * 1000, 3),
            "transfer_bytes": task.transfer_bytes,
            "trigger": task.trigger,
            "cpu_ms": round(task.cpu_s * 1000, 3),
        },
    }


def driver_events(
    sends: Sequence[Send], tasks: Sequence[TaskMetrics], executor: str, t0: float
) -> list[dict[str, Any]]:
    """The driver's rows: a span per group (or BSP wave), the boundary before each send, one instant per send."""
    events: list[dict[str, Any]] = []
    by_assignment: dict[int, list[Send]] = defaultdict(list)
    for send in sends:
        by_assignment[send[0]].append(send)
    firsts = sorted((min(s[4] for s in group), a, group) for a, group in by_assignment.items())
    finishes = sorted(t.finished_at for t in tasks)
    end = finishes[-1] if finishes else (firsts[-1][0] if firsts else t0)
    unit = "wave" if executor == "bsp" else "group"
    previous_send = None
    for i, (sent, assignment, group) in enumerate(firsts):
        first, last = min(s[2] for s in group), max(s[3] for s in group)
        until = firsts[i + 1][0] if i + 1 < len(firsts) else max(end, sent)
        batches = f"batch {first}" if first == last else f"batches {first}-{last}"
        events.append(
            {
                "name": f"{unit} {assignment} ({batches})",
                "cat": "driver",
                "ph": "X",
                "ts": _us(sent, t0),
                "dur": round(max(0.0, until - sent) * 1e6, 3),
                "pid": DRIVER_PID,
                "tid": GROUPS_TID,
                "args": {
                    "assignment": assignment,
                    "first_batch": first,
                    "last_batch": last,
                    "workers": sorted(s[1] for s in group),
                },
            }
        )
        done_before = _last_before(finishes, sent)
        if previous_send is not None and done_before is not None and done_before > previous_send:
            events.append(
                {
                    "name": "boundary",
                    "cat": "driver",
                    "ph": "X",
                    "ts": _us(done_before, t0),
                    "dur": round((sent - done_before) * 1e6, 3),
                    "pid": DRIVER_PID,
                    "tid": BOUNDARY_TID,
                    "args": {"before_assignment": assignment},
                }
            )
        previous_send = sent
        for _, worker, lo, hi, at in group:
            events.append(
                {
                    "name": f"send to worker {worker}",
                    "cat": "driver",
                    "ph": "i",
                    "s": "t",
                    "ts": _us(at, t0),
                    "pid": DRIVER_PID,
                    "tid": SENDS_TID,
                    "args": {"assignment": assignment, "worker": worker, "first_batch": lo, "last_batch": hi},
                }
            )
    return events


def _last_before(ordered: Sequence[float], moment: float) -> float | None:
    """The largest value of `ordered` (sorted) that is <= moment."""
    import bisect

    i = bisect.bisect_right(ordered, moment)
    return ordered[i - 1] if i else None


def sink_event(write: SinkWrite, t0: float) -> dict[str, Any]:
    return {
        "name": "sink write",
        "cat": "sink",
        "ph": "X",
        "ts": _us(write.started_at, t0),
        "dur": round(max(0.0, write.finished_at - write.started_at) * 1e6, 3),
        "pid": DRIVER_PID,
        "tid": SINK_TID,
        "args": {"batch": write.batch, "rows": write.rows},
    }


def metadata_events(workers: Iterable[int], stages: dict[int, str], pids: Sequence[int] = ()) -> list[dict[str, Any]]:
    """Names for the processes (driver, worker w) and their rows (the stages, the driver's threads)."""
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": DRIVER_PID, "tid": 0, "args": {"name": "driver"}},
        {"name": "process_sort_index", "ph": "M", "pid": DRIVER_PID, "tid": 0, "args": {"sort_index": 0}},
    ]
    for tid, name in DRIVER_THREADS.items():
        events.append({"name": "thread_name", "ph": "M", "pid": DRIVER_PID, "tid": tid, "args": {"name": name}})
    for w in sorted(set(workers)):
        label = f"worker {w}" + (f" (pid {pids[w]})" if w < len(pids) else "")
        events.append({"name": "process_name", "ph": "M", "pid": worker_pid(w), "tid": 0, "args": {"name": label}})
        events.append(
            {
                "name": "process_sort_index",
                "ph": "M",
                "pid": worker_pid(w),
                "tid": 0,
                "args": {"sort_index": worker_pid(w)},
            }
        )
        for stage, name in sorted(stages.items()):
            events.append(
                {"name": "thread_name", "ph": "M", "pid": worker_pid(w), "tid": stage, "args": {"name": name}}
            )
    return events


def chrome_trace(
    tasks: Sequence[TaskMetrics],
    *,
    sends: Sequence[Send] = (),
    sink_writes: Sequence[SinkWrite] = (),
    stages: dict[int, str] | None = None,
    executor: str = "",
    workers: int = 1,
    pids: Sequence[int] = (),
    truncated: bool = False,
) -> dict[str, Any]:
    """The trace of one run as a JSON-ready dict (see the module doc)."""
    moments = [t.started_at for t in tasks] + [s[4] for s in sends] + [w.started_at for w in sink_writes]
    t0 = min(moments) if moments else 0.0
    stage_names = dict(stages or {})
    for t in tasks:
        stage_names.setdefault(t.stage, f"stage {t.stage}")
    events = metadata_events(range(workers), stage_names, pids)
    events += [task_event(t, t0) for t in sorted(tasks, key=lambda t: (t.started_at, t.worker))]
    events += driver_events(list(sends), list(tasks), executor, t0)
    events += [sink_event(w, t0) for w in sink_writes]
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "executor": executor,
            "workers": workers,
            "t0_unix_s": t0,
            "tasks": len(tasks),
            "truncated": truncated,
        },
    }


# ---------------------------------------------------------------- files


def check_trace_path(path: str | os.PathLike) -> str:
    """Refuse, before the query starts, a trace path that cannot be written."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise DSLError(f"trace must be a file path such as 'trace.json', got {path!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise DSLError(f"trace: '{path}' is a directory; give a file name such as '{os.path.join(path, 'trace.json')}'")
    if not os.path.isdir(directory):
        raise DSLError(f"trace: the directory '{directory}' does not exist")
    if not os.access(directory, os.W_OK):
        raise DSLError(f"trace: cannot write to the directory '{directory}'")
    return path


def write_trace(path: str, trace: dict[str, Any]) -> None:
    """Write the trace as JSON, atomically (a viewer never opens half a file)."""
    # an exclusive temporary file, never a planted symlink
    from stream_dsl.connectors.file_writes import write_atomically

    try:
        write_atomically(path, json.dumps(trace, separators=(",", ":")).encode(), fsync=False)
    except OSError as e:
        raise DSLError(f"cannot write the trace to {path}: {e.strerror or e}") from None


def read_trace(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DSLError(f"no such trace file: {path}") from None
    except (OSError, ValueError) as e:
        raise DSLError(f"cannot read the trace {path}: {e}") from None


# ---------------------------------------------------------------- recording


@dataclass
class TraceRecorder:
    """Collects one query's trace; `wrap(sink)` times the sink writes and writes the file when it closes.

    `tasks` and `sends` are read when the trace is built, after the run: the
    driver's task and send logs, or the inline query's task log.
    """

    path: str | None
    executor: str
    workers: int
    tasks: Callable[[], Iterable[TaskMetrics]] = lambda: ()
    sends: Callable[[], Iterable[Send]] = lambda: ()
    stages: dict[int, str] = field(default_factory=dict)
    pids: Callable[[], Sequence[int]] = lambda: ()
    capacity: int | None = None  # the task log's maxlen: a full log may have dropped older tasks
    sink_writes: list[SinkWrite] = field(default_factory=list)
    written: bool = False

    def build(self) -> dict[str, Any]:
        tasks = list(self.tasks())
        truncated = self.capacity is not None and len(tasks) >= self.capacity
        return chrome_trace(
            tasks,
            sends=list(self.sends()),
            sink_writes=list(self.sink_writes),
            stages=self.stages,
            executor=self.executor,
            workers=self.workers,
            pids=list(self.pids()),
            truncated=truncated,
        )

    def write(self) -> None:
        """Write the trace file once (the query ended)."""
        if self.written or self.path is None:
            return
        self.written = True
        write_trace(self.path, self.build())

    def wrap(self, sink: Any) -> "TracingSink":
        return TracingSink(sink, self)

    def attach(self, run: Any) -> None:
        """Trace a QueryRun: its task log (an inline query records its tasks into `task_log` once given one),
        and on worker processes its send log and worker pids."""
        if getattr(run, "task_log", None) is None:
            run.task_log = []
        self.tasks = lambda: run.task_log
        self.stages = stage_labels(run.graph)
        if hasattr(run, "assignment_log"):
            self.sends = lambda: run.assignment_log
            self.pids = lambda: run.worker_pids
            self.capacity = getattr(run.task_log, "maxlen", None)


def recorder_for(trace: str | os.PathLike | None, config: Any) -> TraceRecorder | None:
    """A recorder writing to `trace` (checked now, before anything starts), or None without a trace."""
    if trace is None:
        return None
    workers = 1 if config.executor == "inline" else config.workers
    return TraceRecorder(check_trace_path(trace), config.executor, workers)


class TracingSink:
    """A sink that times each write and writes the trace when it closes; everything else goes to `inner`."""

    def __init__(self, inner: Any, recorder: TraceRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        started = time.time()
        try:
            self.inner.write(batch_id, frame)
        finally:
            self.recorder.sink_writes.append(SinkWrite(batch_id, started, time.time(), frame.height))

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.recorder.write()

    def __getattr__(self, name: str) -> Any:  # optional sink hooks (last_batch_id, ...) are the inner sink's
        return getattr(self.inner, name)


def stage_labels(graph: Any) -> dict[int, str]:
    """`stage_label` of every stage of a stage DAG."""
    return {node: stage_label(graph.nodes[node]["stage"]) for node in graph.nodes}


# ---------------------------------------------------------------- where the time went


def task_rows(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The task events of a trace as flat dicts (start and end in ms from ts=0)."""
    rows = []
    for e in trace.get("traceEvents", ()):
        if e.get("ph") == "X" and e.get("cat") in ("task", "skipped"):
            a = e["args"]
            rows.append(
                {
                    "stage": a["stage"],
                    "batch": a["batch"],
                    "partition": a["partition"],
                    "worker": a.get("worker", e["pid"] - 1),
                    "start_ms": e["ts"] / 1000,
                    "end_ms": (e["ts"] + e["dur"]) / 1000,
                    "rows_in": a["rows_in"],
                    "rows_out": a["rows_out"],
                    "serialize_ms": a.get("serialize_ms", 0.0),
                    "scheduler_delay_ms": a.get("scheduler_delay_ms", 0.0),
                    "cpu_ms": a.get("cpu_ms", 0.0),
                }
            )
    return rows


def summarize(trace: dict[str, Any]) -> dict[str, Any]:
    """Where the time went: the span of the tasks, busy time per worker and per stage, driver boundaries (ms)."""
    rows = task_rows(trace)
    if not rows:
        return {"span_ms": 0.0, "tasks": 0, "workers": {}, "stages": {}, "boundary_ms": 0.0, "sink_ms": 0.0}
    span = max(r["end_ms"] for r in rows) - min(r["start_ms"] for r in rows)
    workers: dict[int, float] = defaultdict(float)
    worker_cpu: dict[int, float] = defaultdict(float)
    stages: dict[int, dict[str, float]] = {}
    for r in rows:
        busy = r["end_ms"] - r["start_ms"]
        workers[r["worker"]] += busy
        worker_cpu[r["worker"]] += r["cpu_ms"]
        s = stages.setdefault(
            r["stage"],
            {"tasks": 0, "busy_ms": 0.0, "serialize_ms": 0.0, "rows_in": 0, "scheduler_delay_ms": 0.0, "cpu_ms": 0.0},
        )
        s["cpu_ms"] += r["cpu_ms"]
        s["tasks"] += 1
        s["busy_ms"] += busy
        s["serialize_ms"] += r["serialize_ms"]
        s["scheduler_delay_ms"] += r["scheduler_delay_ms"]
        s["rows_in"] += r["rows_in"]
    names = {
        e["tid"]: e["args"]["name"]
        for e in trace["traceEvents"]
        if e.get("ph") == "M" and e["name"] == "thread_name" and e["pid"] != DRIVER_PID
    }
    for stage, s in stages.items():
        s["name"] = names.get(stage, f"stage {stage}")
    driver = [e for e in trace["traceEvents"] if e.get("pid") == DRIVER_PID and e.get("ph") == "X"]
    return {
        "span_ms": span,
        "tasks": len(rows),
        "workers": {
            w: {"busy_ms": b, "busy_fraction": b / span if span else 0.0, "cpu_ms": worker_cpu[w]}
            for w, b in sorted(workers.items())
        },
        "stages": dict(sorted(stages.items())),
        "boundary_ms": sum(e["dur"] for e in driver if e["tid"] == BOUNDARY_TID) / 1000,
        "sink_ms": sum(e["dur"] for e in driver if e["tid"] == SINK_TID) / 1000,
    }


def render_summary(summary: dict[str, Any]) -> list[str]:
    """`summarize`'s result as report lines."""
    span = summary["span_ms"]
    if not summary["tasks"]:
        return ["no tasks recorded"]
    lines = [
        f"{summary['tasks']:,} tasks over {span:,.1f} ms; "
        + ", ".join(f"worker {w} busy {v['busy_fraction']:.0%}" for w, v in summary["workers"].items())
        + f"; driver at boundaries {summary['boundary_ms']:,.1f} ms, sink writes {summary['sink_ms']:,.1f} ms"
    ]
    total = sum(s["busy_ms"] for s in summary["stages"].values()) or 1.0
    for s in summary["stages"].values():
        lines.append(
            f"{s['name']}: {s['busy_ms']:,.1f} ms in {s['tasks']:,} tasks ({s['busy_ms'] / total:.0%} of "
            f"task time; serialization {s['serialize_ms']:,.1f} ms, scheduler delay "
            f"{s['scheduler_delay_ms']:,.1f} ms)"
            + (f"; CPU {s['cpu_ms']:,.1f} ms, {s['cpu_ms'] / s['tasks']:,.2f} ms per task" if s["cpu_ms"] else "")
        )
    if any(v["cpu_ms"] for v in summary["workers"].values()):  # the workers' tasks (inline records no CPU time)
        lines.append(
            "CPU time in tasks (the cost, whatever the load): "
            + ", ".join(f"worker {w} {v['cpu_ms']:,.1f} ms" for w, v in summary["workers"].items())
        )
    return lines


__all__ = [
    "SinkWrite",
    "TraceRecorder",
    "recorder_for",
    "TracingSink",
    "chrome_trace",
    "task_event",
    "driver_events",
    "check_trace_path",
    "write_trace",
    "read_trace",
    "summarize",
    "render_summary",
    "task_rows",
    "stage_label",
    "stage_labels",
    "worker_pid",
]
