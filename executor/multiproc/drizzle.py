"""The Drizzle driver: pre-scheduled groups of micro-batches, re-sized by AIMD at each boundary (see driver.py)."""

from __future__ import annotations

from collections import deque
from typing import Any

from executor.multiproc.autotune import GroupSizer, overhead_fraction
from executor.multiproc.driver import Driver, OnBatch, ShouldStop
from executor.multiproc.metrics import group_overhead
from executor.multiproc.policies import Boundary, DrizzlePolicy, Finish, Proceed
from executor.multiproc.scheduler import pipelines, place
from executor.multiproc.transports import TransportFactory
from executor.query.outputs import QueryOutput
from stream_dsl.config import RunConfig


class DrizzleDriver(Driver):
    """Pre-scheduling and group scheduling (see the module doc)."""

    executor = "drizzle"

    def __init__(
        self,
        graph: Any,
        config: RunConfig,
        output: QueryOutput,
        *,
        realtime: bool,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        super().__init__(graph, config, output, realtime=realtime, transport_factory=transport_factory)
        self.sizer = GroupSizer(config.group_size)
        self.overheads: deque[float] = deque(maxlen=10_000)
        self._previous_end: dict[int, float] = {}

    def _hosts(self) -> dict[tuple[int, int], int]:
        return dict(
            place(self.topology, self.workers, clock_notices=True, pipelined=pipelines(self.config.group_size)).hosts
        )

    def _new_policy(self) -> DrizzlePolicy:
        """Groups from `self.batch_id` on; group ids go on from the last one (across recoveries too).

        The next group goes out with the current one (`DrizzlePolicy.ahead`),
        so workers never wait for the driver's boundary work; measured on the
        scheduling benchmark's groups of 50, that wait was 15-25% of a group.
        With checkpoints too: a worker writes its part of a group's
        checkpoint after its last task of the group, before any task of the
        next, and the driver gathers one checkpoint per group
        (`Checkpointing.gathering`); a commit then rides on the message of
        the group after the next.
        """
        return DrizzlePolicy(
            self.topology,
            self.workers,
            self.sizer.size,
            pipelined=pipelines(self.config.group_size),
            group=self.group_id,
            ahead=1,
        )

    def _boundary(
        self, boundary: Boundary, on_batch: OnBatch, should_stop: ShouldStop, idle_sleep: bool
    ) -> Proceed | Finish:
        """Group boundary: progress, the overhead measurement and AIMD, then go on or finish."""
        first, last = boundary.first_batch, boundary.last_batch
        self.group_id = boundary.assignment
        tasks = [t for b in range(first, last + 1) for t in self.tasks.get(b, [])]
        overhead = overhead_fraction(*group_overhead(tasks, self._previous_end))
        self.overheads.append(overhead)
        rows_in = sum(self.stats[b].rows_in for b in range(first, last + 1) if b in self.stats)
        size = last - first + 1
        done = self.record(first, last, on_batch, boundary.assignment, size)
        next_size = self.sizer.observe(overhead)
        if done or (should_stop is not None and should_stop()):
            return Finish()
        if idle_sleep and rows_in == 0:
            self.idle_pause()
        return Proceed(next_size)
