"""Process and queue I/O: the only module of the executor that starts processes or touches queues.

The driver sees a `Transport`: start a worker, send it a message, receive
the next message from any worker, tell whether a worker is alive, shut
everything down. A worker sees a `Channel`: receive its next message, send
one to another worker or to the driver. Messages are plain picklable
objects. That is the whole interface, kept narrow so another
implementation (Ray actors) can replace this one.

`MultiprocessTransport` runs workers as real processes of the
`multiprocess` package, one inbox queue per worker plus one for the
driver; any process may put into any inbox, so map outputs go worker to
worker without passing the driver. Messages are pickled here (stdlib
pickle, protocol 5) and the queue only moves bytes.

Processes are started by a fork server that has imported polars and the
executor once (`PRELOAD`): a plain fork of a process whose polars thread
pool is running deadlocks in the child, and a fresh interpreter per worker
costs about a second. The fork server (and multiprocess's resource
tracker) are helper processes shared by every query of this Python
process; they are not workers and exit with it.
"""

from __future__ import annotations

import os
import pickle
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import multiprocess
import multiprocess.connection

DRIVER = -1  # the driver's address on a Channel
PRELOAD = ["polars", "numpy", "executor.worker"]
START_METHOD = "forkserver"


class Transport(Protocol):
    """What the driver needs from a process runtime."""

    sent: int  # messages sent to workers so far

    def start_worker(self, worker: int, main: Callable[..., None]) -> None:
        """Start worker `worker` running `main(channel)`."""

    def send(self, worker: int, message: Any) -> None: ...

    def receive(self, timeout: float) -> Any | None:
        """The next message any worker sent the driver, or None after `timeout` seconds."""

    def is_alive(self, worker: int) -> bool: ...

    def dead_workers(self) -> list[tuple[int, int | None]]:
        """(worker, exit code) of the workers that stopped running."""

    @property
    def pids(self) -> list[int]: ...

    def shutdown(self, timeout: float = 2.0, message: Any = None) -> None:
        """Send `message` (a stop request) to every worker, wait, then end the stragglers; idempotent."""

    def abort(self) -> None:
        """Kill every worker now and drop the queues (after a failure: no goodbyes); idempotent."""


class Channel(Protocol):
    """What a worker needs: its own inbox, a way to reach the others (DRIVER: the driver), the driver's liveness."""

    worker: int

    def receive(self, timeout: float) -> Any | None: ...

    def send(self, worker: int, message: Any) -> None: ...

    def driver_alive(self) -> bool: ...

    def release(self) -> None: ...


def dumps(message: Any) -> bytes:
    return pickle.dumps(message, protocol=5)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


def _get(inbox: Any, timeout: float) -> Any | None:
    try:
        data = inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
    except queue.Empty:
        return None
    return loads(data)


@dataclass
class QueueChannel:
    """A worker's end of a MultiprocessTransport (picklable: handed to the worker process)."""

    worker: int
    inboxes: list[Any]
    driver_inbox: Any
    driver_pid: int

    def receive(self, timeout: float) -> Any | None:
        return _get(self.inboxes[self.worker], timeout)

    def send(self, worker: int, message: Any) -> None:
        target = self.driver_inbox if worker == DRIVER else self.inboxes[worker]
        target.put(dumps(message))

    def driver_alive(self) -> bool:
        """False once the driver process is gone (then the worker exits by itself)."""
        try:
            os.kill(self.driver_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def release(self) -> None:
        """Before the worker exits: do not wait for queue feeder threads nobody reads any more."""
        for q in self.inboxes + [self.driver_inbox]:
            try:
                q.cancel_join_thread()
            except Exception:
                pass


_context: Any = None
_launch_lock = threading.Lock()
_created: deque[str] = deque(maxlen=100_000)  # /dev/shm names of the semaphores our queues use


def created_resources() -> list[str]:
    """The shared resources (named semaphores, as /dev/shm file names) transports of this process created."""
    return list(_created)


def _queue(ctx: Any) -> Any:
    """A multiprocess Queue; its named semaphores are remembered (for leak checks)."""
    q = ctx.Queue()
    for attr in ("_rlock", "_wlock", "_sem"):
        name = getattr(getattr(getattr(q, attr, None), "_semlock", None), "name", None)
        if name:
            _created.append("sem." + name.lstrip("/"))
    return q


def context() -> Any:
    """The multiprocess context workers start from (a fork server with the executor preloaded)."""
    global _context
    if _context is None:
        ctx = multiprocess.get_context(START_METHOD)
        ctx.set_forkserver_preload(PRELOAD)
        _context = ctx
    return _context


def _start_without_main(process: Any) -> None:
    """Start `process` without re-running the user's __main__ in it.

    Workers need only the executor's modules; re-importing a user's script
    (which may not be guarded by `if __name__ == "__main__"`) would run the
    script again inside every worker.
    """
    from multiprocess import spawn

    original = spawn.get_preparation_data

    def without_main(name: str) -> dict:
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    with _launch_lock:
        spawn.get_preparation_data = without_main
        try:
            process.start()
        finally:
            spawn.get_preparation_data = original


def _close_queue(q: Any, timeout: float = 1.0) -> None:
    """Close a queue without ever blocking for long: its feeder thread flushes, or is left behind.

    The feeder thread holds the queue's write lock (a named semaphore) until
    it ends; waiting for it here is what lets the semaphore be unlinked now.
    """
    q.cancel_join_thread()  # never block at interpreter exit on a pipe nobody reads
    q.close()
    feeder = getattr(q, "_thread", None)
    if feeder is not None:
        feeder.join(timeout)


@dataclass
class MultiprocessTransport:
    """Workers as `multiprocess` processes with one inbox queue each (see the module doc)."""

    workers: int
    processes: dict[int, Any] = field(default_factory=dict)
    exit_codes: dict[int, int | None] = field(default_factory=dict)
    sent: int = 0
    received: int = 0

    def __post_init__(self) -> None:
        ctx = context()
        self.driver_inbox = _queue(ctx)
        self.inboxes = [_queue(ctx) for _ in range(self.workers)]
        self._closed = False

    def channel(self, worker: int) -> QueueChannel:
        return QueueChannel(worker, self.inboxes, self.driver_inbox, os.getpid())

    def start_worker(self, worker: int, main: Callable[..., None]) -> None:
        process = context().Process(target=main, args=(self.channel(worker),),
                                    name=f"stream-dsl-worker-{worker}", daemon=True)
        _start_without_main(process)
        self.processes[worker] = process

    def send(self, worker: int, message: Any) -> None:
        self.inboxes[worker].put(dumps(message))
        self.sent += 1

    def receive(self, timeout: float) -> Any | None:
        """The next message, or None after `timeout`, or None at once when a worker process ends.

        Waiting on the processes' sentinels with the inbox makes a death
        seen in microseconds instead of at the driver's next poll.
        """
        message = _get(self.driver_inbox, 0)
        if message is None and timeout > 0:
            sentinels = [p.sentinel for p in self.processes.values()]
            if multiprocess.connection.wait([self.driver_inbox._reader] + sentinels, timeout):
                message = _get(self.driver_inbox, 0)
        if message is not None:
            self.received += 1
        return message

    def is_alive(self, worker: int) -> bool:
        process = self.processes.get(worker)
        return process is not None and process.is_alive()

    def dead_workers(self) -> list[tuple[int, int | None]]:
        """(worker, exit code) of every started worker that is no longer running."""
        return [(w, p.exitcode) for w, p in sorted(self.processes.items()) if not p.is_alive()]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values() if p.pid is not None]

    def abort(self) -> None:
        """Kill every worker at once and free the queues without waiting on them.

        After a worker died, a queue may be locked by it or hold half a
        message: nothing that reads or flushes them can be trusted.
        """
        if self._closed:
            return
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
        self.shutdown(timeout=0.0, queue_timeout=0.05)

    def shutdown(self, timeout: float = 2.0, message: Any = None, queue_timeout: float = 1.0) -> None:
        """Ask every worker to exit (with `message`), then terminate and kill stragglers; free the queues."""
        if self._closed:
            return
        self._closed = True
        if message is not None:
            for worker, process in self.processes.items():
                if process.is_alive():
                    try:
                        self.send(worker, message)
                    except Exception:
                        pass
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes.values():
            if process.is_alive():
                process.terminate()
                process.join(1.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
        self.exit_codes = {w: p.exitcode for w, p in self.processes.items()}
        for process in self.processes.values():
            try:
                process.close()
            except Exception:
                pass
        for q in self.inboxes + [self.driver_inbox]:
            _close_queue(q, queue_timeout)
        self.inboxes = []
        self.driver_inbox = None
        self.processes = {}  # a process object holds its channel, and so the queues and their semaphores
