"""Process and pipe I/O: the only module of the executor that starts processes or touches pipes.

The driver sees a `Transport`: start a worker, send it a message, receive
the next message from any worker, tell whether a worker is alive, shut
everything down. A worker sees a `Channel`: receive its next message, send
one to another worker or to the driver. Messages are plain picklable
objects. That is the whole interface, kept narrow so another
implementation (Ray actors) can replace this one: transports are chosen
by name in `executor/transports.py`, and tests/transport_conformance.py
is what each must pass.

`MultiprocessTransport` runs workers as real processes of the
`multiprocess` package with a one-way pipe from every process (driver
and workers) to every other, so map outputs go worker to worker without
passing the driver. Messages are pickled (stdlib pickle, protocol 5)
and framed by their length in `pipes.py`. A message is written into the pipe by the
sender itself: a multiprocess Queue hands every message to a feeder
thread, which waits for the GIL while the sender computes (measured:
48-84 ms median delivery for a sender busy in Python, 30 us with a direct
write). Pipe ends belong to the two processes that use them, so a worker
killed mid-write damages only its own pipes, and its readers see the end.

Processes are started by a fork server that has imported polars and the
executor once (`PRELOAD`): a plain fork of a process whose polars thread
pool is running deadlocks in the child, and a fresh interpreter per worker
costs about a second. The fork server (and multiprocess's resource
tracker) are helper processes shared by every query of this Python
process; they are not workers and exit with it. Polars sizes its thread
pool at import, so workers with another polars thread count than this
process's (by default max(1, cores // workers): `forkservers.py`) are
forked from one more such server per thread count.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import multiprocess

from executor.multiproc import forkservers
from executor.multiproc.pipes import Inlet, Mailbox, Outlet, dumps
from stream_dsl.connectors import BUILT_IN_CONNECTORS

DRIVER = -1  # the driver's address on a Channel
# What a fork server imports once, so that no worker pays for it (after a fork, every import is the worker's own):
# - worker_process imports the worker;
# - numpy.ma: polars imports it at a process's first Series made from a numpy array (the generator's, a group
#   read's), 11-14 ms that each worker paid inside its first batch;
# - the built-in connectors: a worker imports its sources' module before Ready, with no bytecode cache about 15 ms
#   for the memory connector, 50 ms for files or the generator, 40 ms for Kafka and 110 ms for Redis (the redis
#   package), at every query's start on every worker. One whose package is not installed is left out (an
#   ImportError is skipped by the server).
PRELOAD = ["polars", "numpy", "numpy.ma", "executor.multiproc.worker_process", *BUILT_IN_CONNECTORS.values()]
START_METHOD = "forkserver"


class Transport(Protocol):
    """What the driver needs from a process runtime: everything `executor/driver.py` calls.

    Made by a `TransportFactory` (`executor/transports.py`) for a number of
    workers, addressed 0..workers-1. Messages are plain picklable objects.
    Guarantees every transport keeps (tests/transport_conformance.py checks
    them): the messages of one sender to one receiver arrive whole and in
    the order sent; a sender never waits for its receiver to read, so two
    processes sending each other large messages at once cannot deadlock;
    a process killed in the middle of a message never delivers part of it.
    """

    sent: int  # messages sent to workers so far (tests count the driver's instructions with it)
    exit_codes: dict[int, int | None]  # after shutdown/abort: worker -> exit code, as in dead_workers

    def share(self, data: bytes) -> Any:
        """A small handle to `data` for messages to any worker, which `Channel.unshare` turns back into it.

        Called before any worker starts: data every worker needs (the
        broadcast tables) is stored once where all of them read it (Ray: the
        object store), not sent to each. A transport without such a store
        returns the data itself.
        """

    def keep_local(self, workers: set[int]) -> None:
        """Run `workers` on the driver's machine (they read what only it has: files, a loopback socket).

        Called before any worker starts. A transport whose workers all run
        on the driver's machine has nothing to do.
        """

    def start_worker(self, worker: int, main: Callable[..., None]) -> None:
        """Start worker `worker` running `main(channel)`, with its `Channel`; returns without waiting for it.

        `main` must be a module-level function (workers import it by name).
        A worker whose `main` returns exits with code 0.
        """

    def send(self, worker: int, message: Any) -> None:
        """Queue `message` for `worker` without waiting for it to be read; to a worker that is gone: dropped."""

    def receive(self, timeout: float) -> Any | None:
        """The next message any worker sent the driver, or None after `timeout` seconds.

        May return None sooner, at once while a worker has died: the caller
        then looks at `dead_workers` (a death is seen from the process, not
        from a failed send).
        """

    def is_alive(self, worker: int) -> bool:
        """Whether worker `worker` was started and is running."""

    def dead_workers(self) -> list[tuple[int, int | None]]:
        """(worker, exit code) of the started workers that stopped running, by worker.

        The exit code is the one the worker exited with, minus the signal's
        number when a signal killed it (-9: SIGKILL), None when unknown.
        """

    @property
    def pids(self) -> list[int]:
        """The OS process ids of the started workers, in worker order (for kill tests and leak checks)."""

    def shutdown(self, timeout: float = 2.0, message: Any = None) -> None:
        """Send `message` (a stop request) to every worker, wait up to `timeout` s, then end the stragglers.

        Returns once every worker has ended and the transport's resources
        (pipes, handles) are released; fills `exit_codes`. Idempotent, and a
        no-op after `abort`.
        """

    def abort(self) -> None:
        """Kill every worker now and release everything (after a failure: no goodbyes); idempotent."""


class Channel(Protocol):
    """What a worker needs: its own inbox, a way to reach the others (DRIVER: the driver), the driver's liveness."""

    worker: int  # this worker's address

    def receive(self, timeout: float) -> Any | None:
        """The next message for this worker from anyone (the driver, a worker, itself), or None after `timeout` s."""

    def send(self, worker: int, message: Any) -> None:
        """Queue `message` for `worker` (DRIVER: the driver; this worker: its own inbox); never waits for the reader."""

    def driver_alive(self) -> bool:
        """False once the driver is gone: a worker then exits by itself instead of waiting for ever."""

    def release(self) -> None:
        """Before the worker returns: deliver what is still queued (its last reports), then close its ends."""

    def unshare(self, handle: Any) -> bytes:
        """The data behind a handle `Transport.share` gave."""


class PipeChannel:
    """A worker's end of a MultiprocessTransport: a pipe from each other process, a pipe to each.

    Picklable: the driver hands it to the worker process, which gets the
    pipe ends (file descriptors) and nothing else.
    """

    def __init__(self, worker: int, inlets: list[Any], outlets: dict[int, Any], driver_pid: int) -> None:
        self.worker = worker
        self.driver_pid = driver_pid
        self._conns = (inlets, outlets)
        self._driver_fd = inlets[0].fileno()  # by construction: the pipe from the driver comes first
        self.mailbox = Mailbox([Inlet(c) for c in inlets])
        self.outlets = {w: Outlet(c) for w, c in outlets.items()}

    def __reduce__(self) -> tuple:
        return PipeChannel, (self.worker, *self._conns, self.driver_pid)

    def receive(self, timeout: float) -> Any | None:
        return self.mailbox.receive(timeout)

    def send(self, worker: int, message: Any) -> None:
        if worker == self.worker:
            self.mailbox.ready.append(dumps(message))
        else:
            self.outlets[worker].send(dumps(message))

    def driver_alive(self) -> bool:
        """False once the driver process is gone or has closed its pipe (then the worker exits by itself)."""
        if self._driver_fd not in self.mailbox.inlets:
            return False
        try:
            os.kill(self.driver_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def unshare(self, handle: Any) -> bytes:
        return handle  # `MultiprocessTransport.share` hands out the data itself

    def release(self, timeout: float = 2.0) -> None:
        """Before the worker exits: write what is still waiting (the last reports), then close every pipe."""
        deadline = time.monotonic() + timeout
        for outlet in self.outlets.values():
            outlet.flush(deadline)
            outlet.close()
        self.mailbox.close()


_context: Any = None
_launch_lock = threading.Lock()
_created: deque[str] = deque(maxlen=100_000)  # the pipes our transports opened, as /proc/self/fd names them


def created_resources() -> list[str]:
    """The pipes transports of this process created, as /proc/self/fd links name them ('pipe:[inode]')."""
    return list(_created)


def open_pipes() -> set[str]:
    """The pipes this process has open now, named as in `created_resources` (for leak checks)."""
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return names


def _pipe(ctx: Any) -> tuple[Any, Any]:
    """A one-way pipe (reader, writer); its name is remembered (for leak checks)."""
    reader, writer = ctx.Pipe(duplex=False)
    try:
        _created.append(os.readlink(f"/proc/self/fd/{reader.fileno()}"))
    except OSError:
        pass
    return reader, writer


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


@dataclass
class MultiprocessTransport:
    """Workers as `multiprocess` processes, a pipe between every two processes (see the module doc)."""

    workers: int
    processes: dict[int, Any] = field(default_factory=dict)
    exit_codes: dict[int, int | None] = field(default_factory=dict)
    sent: int = 0
    received: int = 0
    # polars threads in each worker (RunConfig.worker_threads); None: 'auto' (`forkservers.worker_threads`)
    polars_threads: int | None = None

    @classmethod
    def from_config(cls, config: Any) -> Callable[[int], "MultiprocessTransport"]:
        """The factory for a run's settings: workers with `config.worker_threads` polars threads each."""
        threads = getattr(config, "worker_threads", None)
        if threads is None:
            return cls
        return lambda workers: cls(workers, polars_threads=threads)

    def __post_init__(self) -> None:
        self.polars_threads = forkservers.worker_threads(self.workers, self.polars_threads)
        ctx = context()
        ends = range(DRIVER, self.workers)
        pipes = {(a, b): _pipe(ctx) for a in ends for b in ends if a != b}  # (from, to) -> (reader, writer)
        self._channels = {
            w: PipeChannel(
                w,
                [pipes[(DRIVER, w)][0]] + [pipes[(v, w)][0] for v in ends if v not in (DRIVER, w)],
                {v: pipes[(w, v)][1] for v in ends if v != w},
                os.getpid(),
            )
            for w in range(self.workers)
        }
        self._outlets = {w: Outlet(pipes[(DRIVER, w)][1]) for w in range(self.workers)}
        self._inlets = [Inlet(pipes[(w, DRIVER)][0]) for w in range(self.workers)]
        self._mailbox: Mailbox | None = None
        self._closed = False

    def channel(self, worker: int) -> PipeChannel:
        return self._channels[worker]

    def share(self, data: bytes) -> Any:
        return data  # no store every process reads: the data goes in each message

    def keep_local(self, workers: set[int]) -> None:
        pass  # every process runs on this machine

    def start_worker(self, worker: int, main: Callable[..., None]) -> None:
        """Start the worker process; then close this process's copies of the pipe ends it was handed.

        The process holds the only copies afterwards, so its death ends
        those pipes (the readers see EOF instead of waiting for ever).
        """
        running = self.processes.get(worker)
        if running is not None and running.is_alive():  # a warm transport's worker (`pool.py`) serves on
            return
        channel = self._channels[worker]
        # polars sizes its thread pool when it is imported: the fork server's processes have imported it, so a
        # worker with another thread count is forked from a server of its own (`forkservers.py`)
        options = {"target": main, "args": (channel,), "name": f"stream-dsl-worker-{worker}", "daemon": True}
        if self.polars_threads in (None, forkservers.default_threads()):
            ctx = context()
            forkservers.start_default_server()
            process = ctx.Process(**options)
        else:
            process = forkservers.process(self.polars_threads, PRELOAD, **options)
        _start_without_main(process)
        self.processes[worker] = process
        self._close_channel(worker)

    def _close_channel(self, worker: int) -> None:
        channel = self._channels.pop(worker, None)
        if channel is not None:
            for conn in [*channel._conns[0], *channel._conns[1].values()]:
                conn.close()

    def send(self, worker: int, message: Any) -> None:
        """Write `message` to `worker`'s pipe; after shutdown or abort (every worker gone) it is dropped."""
        if self._closed:
            return
        self._outlets[worker].send(dumps(message))
        self.sent += 1

    def receive(self, timeout: float) -> Any | None:
        """The next message, or None after `timeout`, or None at once when a worker process ends.

        Polling the processes' sentinels with the pipes makes a death seen
        in microseconds instead of at the driver's next poll.
        """
        if self._mailbox is None:  # the sentinels exist once the workers have started
            self._mailbox = Mailbox(self._inlets, [p.sentinel for p in self.processes.values()])
        message = self._mailbox.receive(timeout)
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
        """Kill every worker at once and close the pipes without writing what waits in them."""
        if self._closed:
            return
        for process in self.processes.values():
            if process.is_alive():
                process.kill()
        self.shutdown(timeout=0.0)

    def release(self, message: Any, drained: Callable[[Any], int | None], timeout: float = 5.0) -> bool:
        """End a query but keep the workers (a warm pool): send `message` (Release) to each and read until each
        has drained (`drained(message)` gives the worker a Drained came from), dropping what the ended
        query still sent. False when a worker is gone or does not drain within `timeout`."""
        if self._closed or len(self.processes) != self.workers or self.dead_workers():
            return False
        for worker in range(self.workers):
            self.send(worker, message)
        waiting, deadline = set(range(self.workers)), time.monotonic() + timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            received = self.receive(min(left, 0.2))
            if received is None and self.dead_workers():
                return False
            if received is not None:
                waiting.discard(drained(received))
        return True

    def shutdown(self, timeout: float = 2.0, message: Any = None) -> None:
        """Ask every worker to exit (with `message`), then terminate and kill stragglers; close the pipes."""
        if self._closed:
            return
        if message is not None:
            for worker, process in self.processes.items():
                if process.is_alive():
                    self.send(worker, message)
        self._closed = True
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
        for worker in list(self._channels):  # never started
            self._close_channel(worker)
        for outlet in self._outlets.values():
            outlet.close()
        for inlet in self._inlets:
            inlet.close()
        self._outlets, self._inlets, self._mailbox = {}, [], None
        self.processes = {}
