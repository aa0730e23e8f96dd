"""The messages between the driver and the workers (map outputs are `shuffle.MapOutput`).

Driver to worker: `Setup` once per query (the stage programs and what the
worker's sources need; after a failure or a restart, the checkpoint to
`Restore` from), then `Assign` (a whole group in Drizzle, one wave in BSP;
it also carries the `Commit` of the batches written since the last one,
and asks for a checkpoint part when the query checkpoints), and `Commit` /
`Cancel` / `Stop`. Worker to driver: `Ready`, `Output` (a finished output
task's rows, for the sink), `Report` (once per assignment: task metrics,
per-batch stats, the worker's `CheckpointPart`), `Logged` (with the outputs), `Heartbeat`, `Failed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from executor.query.changelog_rows import RowsPart
from executor.multiproc.metrics import BatchStats, TaskMetrics
from executor.multiproc.scheduler import Placement, TaskSpec
from stream_dsl.config import RunConfig


@dataclass(frozen=True, slots=True)
class Setup:
    """The stage programs, shipped once per query, and what the worker's sources need.

    `tables`: the broadcast join tables, read once by the driver (by table
    id, IPC bytes behind a `Transport.share` handle: on Ray, put into the
    object store once for every worker). `memory`: in-memory connector data for the sources this
    worker opens (registry id -> frames and abort markers).
    `collect_changelog`: collect() of a changelog query, whose stateful
    output goes to the driver as upserts and deletes. `cwd` and `sys_path`
    are the driver's, so relative paths and late imports resolve alike.
    """

    graph: nx.DiGraph
    config: RunConfig
    tables: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, list[Any]] = field(default_factory=dict)
    connectors: dict[str, str] = field(default_factory=dict)
    realtime: bool = False
    collect_changelog: bool = False
    cwd: str | None = None
    sys_path: tuple[str, ...] = ()
    first_batch: int = 0
    restore: "Restore | None" = None
    heartbeat_s: float = 1.0
    logged: dict[int, dict[int, Any]] | None = None  # with checkpoints: this worker's sources' logged batch
    # ends from `first_batch` on (source stage -> batch -> offset), to replay; None: no batch log is kept
    resume: dict[int, int] = field(default_factory=dict)  # no checkpoint: what the sources committed (query/restart)


@dataclass(frozen=True, slots=True)
class Restore:
    """Where a (re)started worker begins: the checkpoint's state parts, source offsets and clocks.

    A worker loads the states of the partitions it hosts from `data` (the
    bytes of the part files that hold them, read and checksum-verified by
    the driver: a worker needs no access to the checkpoint directory;
    `partitions` says which file holds each), opens its sources at
    `offsets` with their clocks at `clocks`, and starts its watermark chain
    at `watermark` after batch `next_batch - 1`.
    """

    data: dict[str, bytes]
    partitions: dict[tuple[int, int], str]
    offsets: dict[int, Any]
    clocks: dict[int, tuple[int | None, bool]]
    watermark: int | None
    next_batch: int


@dataclass(frozen=True, slots=True)
class Ready:
    worker: int
    pid: int


@dataclass(frozen=True, slots=True)
class Commit:
    """The output of batches up to `through_batch` is written: sources may release what they read for them.

    `keep_from_ms`: the earliest event time operator state still needs
    (see `executor.query.release.retention_ms`). Rides on the next `Assign`, or
    comes alone when the query ends.
    """

    through_batch: int
    keep_from_ms: int | None


@dataclass(frozen=True, slots=True)
class Assign:
    """Tasks for one worker: one group (Drizzle) or one wave (BSP); `sent_at` is the driver's clock."""

    assignment: int
    tasks: tuple[TaskSpec, ...]
    placement: Placement
    first_batch: int
    last_batch: int
    sent_at: float
    commit: Commit | None = None
    checkpoint: int | None = None  # a checkpoint's id: after this assignment, send a part of it with the Report


@dataclass(frozen=True, slots=True)
class Cancel:
    """Run nothing more; report what ran."""


@dataclass(frozen=True, slots=True)
class Stop:
    """Exit now."""


@dataclass(frozen=True, slots=True)
class Release:
    """The query is over and ended cleanly: drain (`Drained`) and wait for the next query's Setup."""


@dataclass(frozen=True, slots=True)
class Drained:
    """`worker` will send nothing more of the query that ended: to every peer, then (having every peer's) to
    the driver, so that no message of one query reaches the next (`worker_process._drain`)."""

    worker: int


@dataclass(frozen=True, slots=True)
class OutputMessage:
    """A finished output task's result: rows to append (IPC), or a changelog's upserts and deletes.

    A changelog part comes as IPC bytes or, while small, as its rows (`changelog_rows.pack`).
    """

    worker: int
    batch: int
    stage: int
    partition: int
    frame: bytes | None = None
    upserts: bytes | RowsPart | None = None
    deletes: bytes | RowsPart | None = None
    finished_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Report:
    """Every task of `assignment` on `worker` finished (or the worker was cancelled)."""

    worker: int
    assignment: int
    tasks: tuple[TaskMetrics, ...]
    batches: dict[int, BatchStats]
    cancelled: bool = False
    checkpoint: "CheckpointPart | None" = None


@dataclass(frozen=True, slots=True)
class CheckpointPart:
    """A worker's share of checkpoint `id`: its state part (None: it holds no state) and its sources' offsets.

    A worker sends the part's bytes as `data`; the driver writes them into
    the checkpoint as `file` and keeps the part with `sha256` set and no data.
    """

    id: int
    worker: int
    file: str | None
    sha256: str | None
    partitions: tuple[tuple[int, int], ...]
    offsets: dict[int, Any]
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Logged:
    """Where a source stage's batch ended (see `executor/recovery/offset_log.py`): the driver appends it to the
    stage's offset log before any output of the batch is emitted."""

    stage: int
    batch: int
    offset: Any


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A worker is alive (sent by a thread every `Setup.heartbeat_s`, even while a task runs)."""

    worker: int


@dataclass(frozen=True, slots=True)
class Failed:
    """A task failed: `message` is the user-facing error (it names the operator)."""

    worker: int
    message: str
    detail: str = ""
