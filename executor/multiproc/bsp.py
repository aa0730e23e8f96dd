"""The BSP baseline: the classic micro-batch scheduler, on the same workers and transport as Drizzle.

Per batch, the driver launches one wave of tasks at a time (every source
stage together, then each downstream stage in order) with one message per
worker that has tasks in the wave, and waits at the barrier until every
one of those workers reported. Map tasks push their output to the
reducers' workers as in Drizzle (the same shuffle, so the comparison
measures scheduling only), and report to the driver; the driver then
launches the reducers with the map output locations and the batch's
watermark, which it computes from the source clocks the source tasks
reported. The next batch starts when the last wave of this one reported.

Tuned to be a fair baseline: one launch message per worker per wave (not
per task), no launch to workers without tasks, sources of all streams in
one wave, and the same data path, task code, kernels, state and output
handling as Drizzle. Its placement spreads every stage over every worker,
the classic one (`scheduler.place`); `pipelined = True` (a subclass)
places the reducers as Drizzle's groups do, away from the sources'
workers. On the 2-worker micro-benchmark that is the faster BSP (one
reduce-wave message and report instead of two, for two small tasks in a
row), so `stream-dsl bench scheduling` measures Drizzle against both.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from executor.multiproc.driver import Driver, OnBatch, ShouldStop, TransportFactory
from executor.query.outputs import QueryOutput
from executor.multiproc.policies import Boundary, BspPolicy, Finish, Proceed, SendTasks
from executor.multiproc.scheduler import place
from stream_dsl.config import RunConfig


class BspDriver(Driver):
    """Driver-coordinated stages and batches (see the module doc)."""

    executor = "bsp"
    pipelined = False  # reducers on the workers without a source, as Drizzle's groups place them (see the module doc)

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
        self._policy: BspPolicy | None = None

    def _hosts(self) -> dict[tuple[int, int], int]:
        return dict(place(self.topology, self.workers, clock_notices=False, pipelined=self.pipelined).hosts)

    def _wants_checkpoint(self, instruction: SendTasks) -> bool:
        """A worker's last wave of the batch asks for its checkpoint part: its state is final for the batch then."""
        policy = self._policy
        if self.checkpointing is None or policy is None:
            return False
        stages = [set(wave) for wave in policy.waves]
        mine = {s for (s, _), w in policy.placement.hosts.items() if w == instruction.worker}
        last_wave = max(i for i, wave in enumerate(stages) if wave & mine)
        return policy.wave == last_wave

    def _new_policy(self) -> BspPolicy:
        """Batches from `self.batch_id` on, one wave of tasks at a time."""
        self._policy = BspPolicy(self.topology, self.workers, pipelined=self.pipelined)
        return self._policy

    def _outgoing(self, instruction: SendTasks) -> SendTasks:
        """Stateful tasks get the batch's WatermarkStep from the driver's chain."""
        stateful = {s.id for s in self.stages if s.stateful is not None}
        if not any(t.key.stage in stateful for t in instruction.tasks):
            return instruction
        step = self.chain.step(instruction.first_batch, self._take_clocks)
        tasks = tuple(replace(t, watermarks=step) if t.key.stage in stateful else t for t in instruction.tasks)
        return replace(instruction, tasks=tasks)

    def _boundary(
        self, boundary: Boundary, on_batch: OnBatch, should_stop: ShouldStop, idle_sleep: bool
    ) -> Proceed | Finish:
        batch = boundary.first_batch
        rows_in = self.stats[batch].rows_in if batch in self.stats else 0
        done = self.record(batch, batch, on_batch, batch, 1)
        if done or (should_stop is not None and should_stop()):
            return Finish()
        if idle_sleep and rows_in == 0:
            self.idle_pause()
        return Proceed(1)
