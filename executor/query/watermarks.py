"""The watermark of each micro-batch, derived once, the same way on every executor.

Every source task reports a `Clock` per batch (its newest event time, whether
it is exhausted, whether the batch was a replay). A `WatermarkChain` turns
those, batch by batch in order, into a `WatermarkStep`: the watermark a
batch's rows are checked against (`previous`: rows of windows closed by it
are late) and the one windows close against (`current`). The inline
executor keeps one chain, each Drizzle reducer keeps its own (fed by the
clocks that ride on the map outputs), the BSP driver keeps one and sends
the steps along; they agree because they see the same clocks in the same
order.

A restart without a checkpoint over sources that replay what they never
released (`SourceBatch.replayed`, Redis Streams) resumes from the
watermark the sources committed (`resume`): the replayed batches rebuild
operator state with no watermark (nothing is late, nothing closes), and the
first batch read afresh first closes, silently, the windows that ended by
the restart watermark (the previous run emitted them: `emitted_through`),
then goes on from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from executor.state.clocks import SourceClock, query_watermark
from stream_dsl.errors import ExecutionError


@dataclass(frozen=True, slots=True)
class Clock:
    """A source task's event-time progress for one batch (what the reducers' watermark needs)."""

    max_event_ms: int | None
    exhausted: bool
    replayed: bool = False  # the batch re-read records an earlier run read but never released

    def __reduce__(self) -> tuple:
        return Clock, (self.max_event_ms, self.exhausted, self.replayed)


@dataclass(frozen=True, slots=True)
class WatermarkStep:
    """One batch's watermarks: rows are late against `previous`, windows close against `current`.

    `emitted_through`: a restart's watermark; before this batch, windows
    ending by it close without output (the previous run emitted them).
    """

    previous: int | None
    current: int | None
    emitted_through: int | None = None

    @property
    def moves(self) -> bool:
        """Whether stateful operators may emit even with no input rows."""
        return self.current != self.previous or self.emitted_through is not None


NO_WATERMARK = WatermarkStep(None, None)


@dataclass
class WatermarkChain:
    """The query watermark of each batch from every source's clock, advanced in batch order.

    `clocks` are the SourceClocks of all source stages (delay None: no
    watermark); `step(b, take)` returns batch b's WatermarkStep, calling
    `take(batch)` for the clocks the source tasks sent for each batch not
    yet seen.
    """

    clocks: dict[int, SourceClock]
    last_batch: int = -1
    current: int | None = None
    resume: int | None = None  # a restart's watermark, taken up after the replayed batches (module doc)
    steps: dict[int, WatermarkStep] = field(default_factory=dict)

    def restore(self, clocks: Mapping[int, tuple[int | None, bool]], next_batch: int, watermark: int | None) -> None:
        """Continue after batch `next_batch - 1` of a checkpoint: its sources' (max_event_ms, exhausted) and
        its watermark."""
        for stage, (max_event_ms, exhausted) in clocks.items():
            if stage in self.clocks:
                self.clocks[stage].observe(max_event_ms, exhausted)
        self.last_batch, self.current, self.resume = next_batch - 1, watermark, None
        self.steps.clear()

    def resume_from(self, restored: Mapping[int, int]) -> None:
        """A restart without a checkpoint: the newest event time each source's previous run committed
        (`Source.restored_max_event_ms`, by source stage) sets the watermark to resume from."""
        observed = False
        for stage, max_event_ms in restored.items():
            clock = self.clocks.get(stage)
            if clock is not None and clock.delay_ms is not None:
                clock.observe(max_event_ms, False)
                observed = True
        if observed:
            self.resume = query_watermark(list(self.clocks.values()), self.current)

    def step(self, batch: int, take: Callable[[int], Mapping[int, Clock]]) -> WatermarkStep:
        while self.last_batch < batch:
            b = self.last_batch + 1
            received = take(b)
            missing = [s for s in self.clocks if s not in received]
            if missing:
                raise ExecutionError(f"internal error: no clock of source stage {missing[0]} for batch {b}")
            self.steps[b] = self._advance(received)
            self.last_batch = b
        for old in [b for b in self.steps if b < batch]:
            del self.steps[old]
        return self.steps[batch]

    def _advance(self, received: Mapping[int, Clock]) -> WatermarkStep:
        for stage, clock in received.items():
            self.clocks[stage].observe(clock.max_event_ms, clock.exhausted)
        if self.resume is not None:
            if any(c.replayed for c in received.values()):
                return NO_WATERMARK  # a replayed batch rebuilds state: nothing late, nothing closes
            restart, self.resume = self.resume, None
            self.current = query_watermark(list(self.clocks.values()), restart)
            return WatermarkStep(restart, self.current, emitted_through=restart)
        previous = self.current
        self.current = query_watermark(list(self.clocks.values()), previous)
        return WatermarkStep(previous, self.current)
