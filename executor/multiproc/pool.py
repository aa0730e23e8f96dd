"""A Context's warm worker processes: the pipes transport of a query that ended cleanly serves the next one.

Starting worker processes and setting them up costs 0.1–0.3 s per query
(seconds for the first). A `WorkerPool` (one per Context) keeps the
transport of a query that ended cleanly: its driver sends `Release`, every
worker tells every peer and then the driver that it sends nothing more
(`worker_process._drain`), so no message of one query reaches the next,
and the processes wait for the next query's Setup. A query that failed,
was cancelled, lost a worker or did not drain in time shuts its workers
down as before. `close()` (the Context's, or when it is garbage collected)
ends the idle workers; workers idle for IDLE_S are not handed out again,
and a warm worker that gets no query for WARM_EXIT_S exits by itself, so
Contexts nobody closes do not keep processes for ever.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from executor.multiproc import forkservers
from executor.multiproc.messages import Drained, Release, Stop
from executor.multiproc.runtime import MultiprocessTransport


IDLE_S = 60.0  # idle workers older than this are not handed out (they exit by themselves at WARM_EXIT_S)


class WorkerPool:
    """Idle pipes transports by worker count (one each), handed to the next query that needs as many."""

    def __init__(self) -> None:
        # (workers, polars threads) -> (transport, released at)
        self._idle: dict[tuple[int, int | None], tuple[MultiprocessTransport, float]] = {}
        self._lock = threading.Lock()
        self.reused = 0  # how many queries got warm workers (for tests and progress)

    def factory(self, workers: int, polars_threads: int | None = None) -> MultiprocessTransport:
        """A transport for `workers` workers (with `polars_threads` polars threads each): the idle one with live
        processes, or a new one."""
        polars_threads = forkservers.worker_threads(workers, polars_threads)  # 'auto' resolved: the key says the count
        with self._lock:
            idle, released_at = self._idle.pop((workers, polars_threads), (None, 0.0))
        if idle is None:
            return MultiprocessTransport(workers, polars_threads=polars_threads)
        fresh = time.monotonic() - released_at < IDLE_S  # well before the workers give up by themselves
        if fresh and not idle.dead_workers() and len(idle.processes) == workers:
            self.reused += 1
            return idle
        idle.shutdown(message=Stop())
        return MultiprocessTransport(workers, polars_threads=polars_threads)

    def give_back(self, transport: Any) -> bool:
        """After a clean end: keep `transport` if its workers drain (True); else the caller shuts it down."""
        if not isinstance(transport, MultiprocessTransport):
            return False
        if not transport.release(Release(), lambda m: m.worker if isinstance(m, Drained) else None):
            return False
        with self._lock:
            key = (transport.workers, transport.polars_threads)
            spare = self._idle.pop(key, None)
            self._idle[key] = (transport, time.monotonic())
        if spare is not None:
            spare[0].shutdown(message=Stop())
        return True

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [pid for transport, _ in self._idle.values() for pid in transport.pids]

    def close(self) -> None:
        """End every idle worker."""
        with self._lock:
            idle, self._idle = list(self._idle.values()), {}
        for transport, _ in idle:
            transport.shutdown(message=Stop())
