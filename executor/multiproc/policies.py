"""The driver's scheduling policies (Drizzle groups, classic BSP waves), as pure state machines.

See `executor.multiproc.scheduler` for the vocabulary; like it, this module
loads neither polars nor the plan code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from executor.multiproc.scheduler import Placement, TaskKey, TaskSpec, Topology, place


@dataclass(frozen=True, slots=True)
class Begin:
    """The workers are ready; start scheduling from `first_batch`."""

    first_batch: int = 0


@dataclass(frozen=True, slots=True)
class Reported:
    """Worker `worker` finished every task it had under `assignment`."""

    worker: int
    assignment: int


@dataclass(frozen=True, slots=True)
class Proceed:
    """The driver did its boundary work: go on with the next group (of `group_size` batches) or batch."""

    group_size: int = 1


@dataclass(frozen=True, slots=True)
class Finish:
    """Stop after the boundary just reached."""


DriverEvent = Union[Begin, Reported, Proceed, Finish]


@dataclass(frozen=True, slots=True)
class SendTasks:
    """One driver-to-worker message: `tasks` of `assignment`, covering batches up to `last_batch`."""

    worker: int
    assignment: int
    tasks: tuple[TaskSpec, ...]
    placement: Placement
    first_batch: int
    last_batch: int


@dataclass(frozen=True, slots=True)
class Boundary:
    """Every worker reported: batches first..last are done. Do boundary work, then send Proceed or Finish."""

    assignment: int
    first_batch: int
    last_batch: int


@dataclass(frozen=True, slots=True)
class Shutdown:
    workers: tuple[int, ...]


DriverInstruction = Union[SendTasks, Boundary, Shutdown]


@dataclass
class DrizzlePolicy:
    """Group scheduling with pre-scheduled reduce tasks (see the module doc).

    `ahead`: how many groups are sent beyond the one running. With 1, the
    next group's message is already on the workers when a group ends, so
    they go on while the driver does its boundary work (reports, progress,
    the group size); boundaries still come one group at a time, in order.
    """

    topology: Topology
    workers: int
    group_size: int
    pipelined: bool = False  # the placement (see `place`)
    ahead: int = 0
    next_batch: int = 0
    group: int = -1  # the newest group sent
    inflight: dict[int, tuple[int, int, set[int]]] = field(default_factory=dict)  # group -> first, last, to report
    announced: bool = False  # the oldest group's Boundary went out
    finished: bool = False

    def handle(self, event: DriverEvent) -> list[DriverInstruction]:
        if self.finished:
            return []
        if isinstance(event, Begin):
            self.next_batch = event.first_batch
            out: list[DriverInstruction] = []
            for _ in range(1 + self.ahead):
                out += self._send_group()
            return out
        if isinstance(event, Reported):
            entry = self.inflight.get(event.assignment)
            if entry is None or event.worker not in entry[2]:
                return []
            entry[2].discard(event.worker)
            return self._boundary()
        if isinstance(event, Proceed):
            if not self.announced:
                raise ValueError("Proceed before every worker reported the group")
            del self.inflight[min(self.inflight)]
            self.announced = False
            self.group_size = max(1, int(event.group_size))
            return self._send_group() + self._boundary()
        if isinstance(event, Finish):
            self.finished = True
            return [Shutdown(tuple(range(self.workers)))]
        raise TypeError(f"unknown event {event!r}")

    def _boundary(self) -> list[DriverInstruction]:
        """The oldest group's Boundary, once every worker reported it (and only once)."""
        if self.announced or not self.inflight:
            return []
        oldest = min(self.inflight)
        first, last, waiting = self.inflight[oldest]
        if waiting:
            return []
        self.announced = True
        return [Boundary(oldest, first, last)]

    def _send_group(self) -> list[DriverInstruction]:
        """Placement once per group; one message per worker with all its tasks of the group's batches.

        Workers that run source tasks get theirs last, so every reduce task
        is placed before any map task of the group can start.
        """
        placement = place(self.topology, self.workers, clock_notices=True, pipelined=self.pipelined)
        self.group += 1
        first = self.next_batch
        last = first + self.group_size - 1
        self.next_batch = last + 1
        self.inflight[self.group] = (first, last, set(range(self.workers)))
        waits = {s.id: self.topology.drizzle_waits(s.id) for s in self.topology.stages}
        sources = set(self.topology.sources)
        feeds = {w for (s, _), w in placement.hosts.items() if s in sources}
        out: list[DriverInstruction] = []
        for worker in sorted(range(self.workers), key=lambda w: (w in feeds, w)):  # reducers' messages first
            mine = placement.tasks_on(worker)
            tasks = tuple(TaskSpec(TaskKey(b, s, p), waits[s]) for b in range(first, last + 1) for s, p in mine)
            out.append(SendTasks(worker, self.group, tasks, placement, first, last))
        return out


@dataclass
class BspPolicy:
    """The classic driver-coordinated micro-batch scheduler (see the module doc)."""

    topology: Topology
    workers: int
    pipelined: bool = False  # the placement (see `place`); fixed for the query
    batch: int = 0
    wave: int = 0
    assignment: int = -1
    pending: set[int] = field(default_factory=set)
    finished: bool = False

    def __post_init__(self) -> None:
        sources = tuple(s.id for s in self.topology.stages if s.source)
        rest = [(s.id,) for s in self.topology.stages if not s.source]
        self.waves: tuple[tuple[int, ...], ...] = (sources,) + tuple(rest)
        self.placement = place(self.topology, self.workers, clock_notices=False, pipelined=self.pipelined)

    def handle(self, event: DriverEvent) -> list[DriverInstruction]:
        if self.finished:
            return []
        if isinstance(event, Begin):
            self.batch, self.wave = event.first_batch, 0
            return self._launch()
        if isinstance(event, Reported):
            if event.assignment != self.assignment or event.worker not in self.pending:
                return []
            self.pending.discard(event.worker)
            if self.pending:
                return []
            if self.wave + 1 < len(self.waves):
                self.wave += 1
                return self._launch()
            return [Boundary(self.assignment, self.batch, self.batch)]
        if isinstance(event, Proceed):
            if self.pending:
                raise ValueError("Proceed before the batch finished")
            self.batch, self.wave = self.batch + 1, 0
            return self._launch()
        if isinstance(event, Finish):
            self.finished = True
            return [Shutdown(tuple(range(self.workers)))]
        raise TypeError(f"unknown event {event!r}")

    def _launch(self) -> list[DriverInstruction]:
        """One message per worker with tasks in this wave; reducers get the map output locations."""
        self.assignment += 1
        placement = self.placement
        by_worker: dict[int, list[TaskSpec]] = {}
        for stage in self.waves[self.wave]:
            waits = self.topology.data_waits(stage)
            locations = tuple(sorted((m, placement.hosts[m]) for m in waits))
            for p in range(self.topology.stage(stage).partitions):
                spec = TaskSpec(TaskKey(self.batch, stage, p), waits, None, locations)
                by_worker.setdefault(placement.worker_of(stage, p), []).append(spec)
        self.pending = set(by_worker)
        return [
            SendTasks(w, self.assignment, tuple(tasks), placement, self.batch, self.batch)
            for w, tasks in sorted(by_worker.items())
        ]
