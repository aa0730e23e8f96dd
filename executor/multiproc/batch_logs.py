"""Offset logs kept by the driver: the workers' sources log each batch's end through it.

A source logs where each batch ended before any output of the batch
exists, so that a replay cuts the batch where the lost run cut it
(`executor/recovery/offset_log.py`). The logs live in the checkpoint
directory, which is the driver's: a worker may run on another machine
(Ray) with no access to it. So a worker's reader hands each end to a
`ShippedLog`, which queues a `Logged` entry that goes to the driver with
the worker's next outputs (`worker.OutputBatch`); the driver appends it to
the stage's log (`DriverLogs.take`) and emits batch b's output only once
every source stage's end of b is in its log (`DriverLogs.covers`). A
worker that dies before its entry reached the driver has had none of
that batch's output emitted, so a replay may cut that batch afresh. On a
(re)start the driver reads the logs and hands each worker the ends its
sources must replay (`Setup.logged`).
"""

from __future__ import annotations

from typing import Any, Iterable

from executor.multiproc.messages import Logged
from executor.recovery.offset_log import OffsetLog


class ShippedLog:
    """A worker's batch log for one source stage: every end goes into `outbox`, which the worker sends to
    the driver (the `executor.query.readers.BatchLog` protocol)."""

    def __init__(self, stage: int, outbox: list[Logged]) -> None:
        self.stage = stage
        self.outbox = outbox

    def append(self, batch: int, offset: Any) -> None:
        self.outbox.append(Logged(self.stage, batch, offset))

    def committed(self, through_batch: int) -> None:
        """The driver compacts its logs itself (`DriverLogs.committed`)."""

    def close(self) -> None:
        pass


class DriverLogs:
    """The offset logs of a query's source stages, on the driver, from batch `from_batch` on."""

    def __init__(self, directory: str, stages: Iterable[int], from_batch: int) -> None:
        self.logs = {stage: OffsetLog(directory, stage) for stage in stages}
        self.replays = {stage: log.read(from_batch) for stage, log in self.logs.items()}
        self.last = {stage: max(ends, default=from_batch - 1) for stage, ends in self.replays.items()}

    def replays_for(self, stages: Iterable[int]) -> dict[int, dict[int, Any]]:
        """The logged ends the given stages replay (an earlier run's batches from `from_batch` on)."""
        return {stage: self.replays[stage] for stage in stages}

    def take(self, entry: Logged) -> None:
        """Append a worker's entry to its stage's log (a flushed write: it outlives this process)."""
        self.logs[entry.stage].append(entry.batch, entry.offset)
        self.last[entry.stage] = max(self.last[entry.stage], entry.batch)

    def covers(self, batch: int) -> bool:
        """Whether every source stage's end of `batch` is logged, so its output may be emitted."""
        return all(last >= batch for last in self.last.values())

    def committed(self, through_batch: int) -> None:
        """Batches up to `through_batch` are in a checkpoint: the logs may drop them now and then."""
        for log in self.logs.values():
            log.committed(through_batch)

    def close(self) -> None:
        for log in self.logs.values():
            log.close()
