"""The scheduling decisions, as pure state machines: events in, instructions out.

Nothing here touches a process, a queue or a clock; `runtime.py`,
`worker.py`, `driver.py` and `bsp.py` feed these machines the messages they
receive and carry out the instructions they get back. So every decision can
be tested synchronously (see tests/test_scheduler.py).

Vocabulary. A task is (batch, stage, partition). A *map id* is the
(stage, partition) of a task that feeds another task of the same batch. A
source task has partition 0, and besides its data it carries its source's
event-time clock, so in Drizzle every stateful task also waits for every
source task of its batch: that is how reducers advance the watermark by
themselves, without the driver.

Three machines (the two driver-side ones, `DrizzlePolicy` and `BspPolicy`,
live in `policies.py`):

- `WorkerScheduler` (one per worker): which assigned task runs next. A
  task waits for the set of map ids in its `waits`; notices that arrive
  before the task (early) count, duplicates count once, and an empty map
  output still sends its notice. A waiting task holds no execution slot.
  One task runs at a time; a worker runs the tasks of batch b (reduce
  tasks included) before any task of batch b+1, and within a batch in
  stage order, so batches run in order.
- `DrizzlePolicy` (driver): decides placement once per group and sends the
  tasks of a whole group of micro-batches in ONE message per worker, then
  hears back only when every worker reported the group. With groups of
  more than one batch the placement is pipelined (`place`, `pipelines`):
  the reducers live on the workers that host no source, so a source's
  worker runs the map task of batch b+1 while the reducers run batch b.
  It may send a group ahead (`ahead`): the next group's message is on
  the workers before the current group ends, and the boundaries still
  come one at a time, in order, each after every worker reported.
- `BspPolicy` (driver): the classic micro-batch scheduler. Per batch, it
  launches one wave of tasks at a time (all source stages, then each
  downstream stage in order), one message per worker that has tasks in
  the wave, and waits at the barrier for every report before the next wave;
  a launch names the map outputs (and where they ran) the reducers read.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence, Union

if TYPE_CHECKING:  # only for annotations: the state machine loads neither polars nor the plan code
    from executor.query.watermarks import WatermarkStep
    from optimizer.physical.stages import Stage

MapId = tuple[int, int]  # (stage, partition) of a producing task of the same batch


# ---------------------------------------------------------------- the static shape of a query


@dataclass(frozen=True, slots=True)
class StageInfo:
    """What scheduling needs to know of a stage."""

    id: int
    partitions: int
    inputs: tuple[int, ...] = ()
    source: bool = False
    stateful: bool = False
    target: int | None = None  # the stage its shuffle write feeds; None: it writes the query output


@dataclass(frozen=True, slots=True)
class Topology:
    """The stage DAG as scheduling sees it; `stages` in run order (producers first)."""

    stages: tuple[StageInfo, ...]

    def stage(self, stage_id: int) -> StageInfo:
        for info in self.stages:
            if info.id == stage_id:
                return info
        raise KeyError(stage_id)

    @property
    def sources(self) -> tuple[int, ...]:
        return tuple(s.id for s in self.stages if s.source)

    @property
    def output_tasks(self) -> tuple[MapId, ...]:
        """The tasks whose result is the query output (one output message each, per batch)."""
        return tuple((s.id, p) for s in self.stages if s.target is None for p in range(s.partitions))

    def map_ids(self, stage_ids: Iterable[int]) -> frozenset[MapId]:
        return frozenset((u, q) for u in stage_ids for q in range(self.stage(u).partitions))

    def data_waits(self, stage_id: int) -> frozenset[MapId]:
        """The upstream tasks whose output a task of `stage_id` reads."""
        return self.map_ids(self.stage(stage_id).inputs)

    def drizzle_waits(self, stage_id: int) -> frozenset[MapId]:
        """Data inputs, plus every source task's clock for a stateful stage (its watermark)."""
        info = self.stage(stage_id)
        waits = self.data_waits(stage_id)
        if info.stateful:
            waits |= frozenset((s, 0) for s in self.sources)
        return waits


def topology_of(stages: Sequence[Stage]) -> Topology:
    """The Topology of stages in run order (see `optimizer.physical.lower.stage_order`)."""
    infos = []
    for stage in stages:
        terminal = stage.terminal
        target = getattr(terminal, "target", None)  # a ShuffleWrite's receiving stage; the output has none
        infos.append(
            StageInfo(
                stage.id, stage.partitions, tuple(stage.inputs), stage.is_source, stage.stateful is not None, target
            )
        )
    return Topology(tuple(infos))


@dataclass(frozen=True, slots=True)
class Placement:
    """Which worker runs each task, and which workers each task of a stage must notify.

    `hosts` maps (stage, partition) to a worker; the same for every batch, so
    reduce partition r stays on its worker, which holds its state.
    `receivers[stage]` are the workers a task of that stage sends an
    output-ready notice to (possibly empty notices).
    """

    workers: int
    hosts: Mapping[MapId, int]
    receivers: Mapping[int, tuple[int, ...]]

    def worker_of(self, stage: int, partition: int) -> int:
        return self.hosts[(stage, partition)]

    def tasks_on(self, worker: int) -> tuple[MapId, ...]:
        return tuple(sorted(m for m, w in self.hosts.items() if w == worker))

    def workers_of(self, stage: int) -> tuple[int, ...]:
        return tuple(sorted({w for (s, _), w in self.hosts.items() if s == stage}))


def place(topology: Topology, workers: int, *, clock_notices: bool, pipelined: bool = False) -> Placement:
    """Pin every task to a worker: sources spread from the last worker; partition r of a stage on worker r (mod).

    With `pipelined`, the partitions of the stages downstream of the
    sources go, round robin, on the workers that host no source (when there
    are such workers): a source's worker then runs only map tasks, and its
    map task of batch b+1 overlaps the reduce tasks of batch b elsewhere.
    Without it, every worker gets a share of every stage (the classic
    placement).

    With `clock_notices` (Drizzle) a source task notifies every worker that
    holds a stateful task, because those tasks derive the watermark from all
    sources' clocks; otherwise (BSP) only the hosts of its target stage.
    """
    if workers < 1:
        raise ValueError("at least one worker is needed")
    hosts: dict[MapId, int] = {}
    sources = [info for info in topology.stages if info.source]
    for index, info in enumerate(sources):
        hosts[(info.id, 0)] = (workers - 1 - index) % workers
    source_hosts = set(hosts.values())
    spare = [w for w in range(workers) if w not in source_hosts] if pipelined else []
    pool = spare or list(range(workers))
    for info in topology.stages:
        if info.source:
            continue
        offset = 0 if info.partitions == len(pool) else info.id
        for p in range(info.partitions):
            hosts[(info.id, p)] = pool[(p + offset) % len(pool)]
    stateful_hosts = sorted({hosts[(s.id, p)] for s in topology.stages if s.stateful for p in range(s.partitions)})
    receivers: dict[int, tuple[int, ...]] = {}
    for info in topology.stages:
        targets: set[int] = set()
        if info.target is not None:
            target = topology.stage(info.target)
            targets |= {hosts[(target.id, p)] for p in range(target.partitions)}
        if info.source and clock_notices:
            targets |= set(stateful_hosts)
        receivers[info.id] = tuple(sorted(targets))
    return Placement(workers, hosts, receivers)


def pipelines(group_size: int | str) -> bool:
    """Whether a Drizzle query places its reducers away from its sources (`place(pipelined=True)`).

    Decided once per query from the group size setting, and kept even when
    'auto' resizes the groups, because a reduce partition never leaves the
    worker that holds its state. Pipelining happens across the batches of
    a group (the map task of batch b+1 runs while the reducers of batch b
    do), so groups of one gain nothing from it (measured on the scheduling
    benchmark) and keep the classic placement, every worker with its share
    of every stage.
    """
    return group_size == "auto" or int(group_size) > 1


# ---------------------------------------------------------------- task descriptors


@dataclass(frozen=True, slots=True, order=True)
class TaskKey:
    batch: int
    stage: int
    partition: int

    def __reduce__(self) -> tuple:
        return TaskKey, (self.batch, self.stage, self.partition)  # pickles ~5x faster than a slots dataclass


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task descriptor: what to run and the map ids it waits for.

    `watermarks` is the batch's WatermarkStep when the driver decided it (BSP);
    None when the worker derives them from the source clocks (Drizzle).
    `locations` (BSP) says where each awaited map output ran.
    """

    key: TaskKey
    waits: frozenset[MapId] = frozenset()
    watermarks: WatermarkStep | None = None
    locations: tuple[tuple[MapId, int], ...] = ()

    def __reduce__(self) -> tuple:
        """A group message carries G tasks per worker: positional pickling keeps it cheap."""
        return TaskSpec, (self.key, self.waits, self.watermarks, self.locations)


# ---------------------------------------------------------------- the worker's machine


@dataclass(frozen=True, slots=True)
class Assigned:
    """The driver's message arrived: `tasks` for this worker, under `assignment` (a group or a wave)."""

    assignment: int
    tasks: tuple[TaskSpec, ...]
    last_batch: int  # the assignment covers batches up to here (some may have no task on this worker)


@dataclass(frozen=True, slots=True)
class Notice:
    """Map task `map_id` of `batch` finished and its output for this worker is here (maybe empty)."""

    batch: int
    map_id: MapId


@dataclass(frozen=True, slots=True)
class Finished:
    key: TaskKey


WorkerEvent = Union[Assigned, Notice, Finished]


@dataclass(frozen=True, slots=True)
class Run:
    """Run this task now; `trigger` is the event that made it runnable ('assigned', 'notice', 'finished')."""

    spec: TaskSpec
    trigger: str


@dataclass(frozen=True, slots=True)
class AssignmentDone:
    """Every task of `assignment` finished: the worker reports it to the driver."""

    assignment: int


@dataclass(frozen=True, slots=True)
class InputsReady:
    """Task `key` has every input it waits for (the worker notes when, for metrics)."""

    key: TaskKey


WorkerInstruction = Union[Run, AssignmentDone, InputsReady]


@dataclass
class WorkerScheduler:
    """Readiness and order of one worker's tasks (see the module doc)."""

    worker: int = 0
    waiting: dict[int, dict[TaskKey, set[MapId]]] = field(default_factory=dict)  # per batch: what each task lacks
    specs: dict[TaskKey, TaskSpec] = field(default_factory=dict)
    seen: dict[int, set[MapId]] = field(default_factory=dict)  # notices per batch, early ones included
    ready: list[TaskKey] = field(default_factory=list)  # a heap: (batch, stage, partition) order
    running: TaskKey | None = None
    unfinished: dict[int, int] = field(default_factory=dict)  # per batch
    owner: dict[TaskKey, int] = field(default_factory=dict)  # task -> assignment
    # a heap of the batches in `unfinished` (and some finished ones, dropped when they reach the top):
    # the oldest batch in O(1), where min(unfinished) cost O(batches in the group) on every task
    batches: list[int] = field(default_factory=list, repr=False)
    forgotten_below: int = 0  # `seen` holds no batch below this
    open_tasks: dict[int, int] = field(default_factory=dict)  # per assignment
    last_assigned: int = -1

    def handle(self, event: WorkerEvent) -> list[WorkerInstruction]:
        if isinstance(event, Assigned):
            return self._assigned(event)
        if isinstance(event, Notice):
            return self._notice(event)
        if isinstance(event, Finished):
            return self._finished(event)
        raise TypeError(f"unknown event {event!r}")

    # ------------------------------------------------------------ events

    def _assigned(self, event: Assigned) -> list[WorkerInstruction]:
        out: list[WorkerInstruction] = []
        self.open_tasks[event.assignment] = len(event.tasks)
        self.last_assigned = max(self.last_assigned, event.last_batch)
        for spec in event.tasks:
            key = spec.key
            if key in self.specs:
                raise ValueError(f"task {key} assigned twice")
            self.specs[key] = spec
            self.owner[key] = event.assignment
            if key.batch not in self.unfinished:
                heapq.heappush(self.batches, key.batch)
            self.unfinished[key.batch] = self.unfinished.get(key.batch, 0) + 1
            missing = set(spec.waits) - self.seen.get(key.batch, set())
            if missing:
                self.waiting.setdefault(key.batch, {})[key] = missing
            else:
                heapq.heappush(self.ready, key)
                out.append(InputsReady(key))
        if not event.tasks:
            out.append(AssignmentDone(event.assignment))
            del self.open_tasks[event.assignment]
        return out + self._next("assigned")

    def _notice(self, event: Notice) -> list[WorkerInstruction]:
        if event.batch < self.floor:
            return []  # every task of that batch here is done: a duplicate, or nobody here needs it
        seen = self.seen.setdefault(event.batch, set())
        if event.map_id in seen:
            return []  # duplicates count once
        seen.add(event.map_id)
        out: list[WorkerInstruction] = []
        waiting = self.waiting.get(event.batch, {})
        for key in [k for k, missing in waiting.items() if event.map_id in missing]:
            missing = waiting[key]
            missing.discard(event.map_id)
            if not missing:
                del waiting[key]
                heapq.heappush(self.ready, key)
                out.append(InputsReady(key))
        if not waiting:
            self.waiting.pop(event.batch, None)
        return out + self._next("notice")

    def _finished(self, event: Finished) -> list[WorkerInstruction]:
        key = event.key
        if key != self.running:
            raise ValueError(f"task {key} finished but {self.running} was running")
        self.running = None
        del self.specs[key]
        self.unfinished[key.batch] -= 1
        if not self.unfinished[key.batch]:
            del self.unfinished[key.batch]
        out: list[WorkerInstruction] = []
        assignment = self.owner.pop(key)
        self.open_tasks[assignment] -= 1
        if not self.open_tasks[assignment]:
            del self.open_tasks[assignment]
            out.append(AssignmentDone(assignment))
        self._forget_old_notices()
        return out + self._next("finished")

    # ------------------------------------------------------------ order

    @property
    def floor(self) -> int:
        """Batches below this have no unfinished task here and will get none."""
        current = self.current_batch
        return self.last_assigned if current is None else min(current, self.last_assigned)

    @property
    def current_batch(self) -> int | None:
        """The only batch whose tasks may run now: the oldest one with unfinished tasks."""
        batches = self.batches
        while batches and batches[0] not in self.unfinished:
            heapq.heappop(batches)
        return batches[0] if batches else None

    @property
    def idle(self) -> bool:
        return self.running is None and not self.specs

    def _next(self, trigger: str) -> list[WorkerInstruction]:
        if self.running is not None or not self.ready:
            return []
        head = self.ready[0]
        if head.batch != self.current_batch:
            return []  # an older batch still has tasks waiting for inputs: batches run in order
        key = heapq.heappop(self.ready)
        self.running = key
        return [Run(self.specs[key], trigger)]

    def _forget_old_notices(self) -> None:
        floor = self.floor
        if floor <= self.forgotten_below:
            return
        if floor - self.forgotten_below > len(self.seen):  # a jump (a new group, a restore): look at what is there
            for batch in [b for b in self.seen if b < floor]:
                del self.seen[batch]
        else:
            for batch in range(self.forgotten_below, floor):
                self.seen.pop(batch, None)
        self.forgotten_below = floor
