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
passing the driver. Messages are pickled here (stdlib pickle, protocol 5)
and framed by their length. A message is written into the pipe by the
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
process; they are not workers and exit with it.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import select
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import multiprocess

DRIVER = -1  # the driver's address on a Channel
PRELOAD = ["polars", "numpy", "executor.multiproc.worker"]
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


def dumps(message: Any) -> bytes:
    return pickle.dumps(message, protocol=5)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


class _Outlet:
    """The writing end of one pipe, in the process that writes to it.

    A message goes straight into the pipe while the pipe has room, so the
    common small message costs one write and no thread hand-off; what does
    not fit waits in a backlog that the process's flusher thread writes as
    the reader drains the pipe. A sender never blocks on its reader, so two
    workers sending each other large partitions cannot deadlock. Messages
    to a reader that is gone (its process died) are dropped: a death is
    the driver's to notice, from the process, not from a failed send.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        _widen(self.fd)
        self.backlog: deque[memoryview] = deque()
        self.lock = threading.Lock()
        self.closed = False

    def send(self, data: bytes) -> None:
        header = _LENGTH.pack(len(data))
        with self.lock:
            if self.closed:
                return
            if len(data) <= _JOIN_BELOW:
                self.backlog.append(memoryview(header + data))
            else:  # not copied into one buffer: a large partition is written from where it is
                self.backlog.append(memoryview(header))
                self.backlog.append(memoryview(data))
            self.drain()
            if self.backlog:
                _flusher().watch(self)

    def drain(self) -> None:
        """Write from the backlog until it is empty or the pipe is full (the caller holds `lock`)."""
        while self.backlog:
            head = self.backlog[0]
            try:
                written = os.write(self.fd, head)
            except BlockingIOError:
                return
            except (BrokenPipeError, OSError):
                self.backlog.clear()
                self.closed = True
                return
            if written == len(head):
                self.backlog.popleft()
            else:
                self.backlog[0] = head[written:]
                return

    def flush(self, deadline: float) -> None:
        """Write the backlog, waiting for room until `deadline` (a worker's last reports before it exits)."""
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        while True:
            with self.lock:
                self.drain()
                if not self.backlog or self.closed:
                    return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            poller.poll(left * 1000)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.backlog.clear()
            self.conn.close()


class _Flusher:
    """The thread that writes the backlogs of a process's outlets when their pipes have room again."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.outlets: set[_Outlet] = set()
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        threading.Thread(target=self._run, name="stream-dsl-flusher", daemon=True).start()

    def watch(self, outlet: _Outlet) -> None:
        """`outlet` has a backlog (the caller holds its lock, which orders this with `_run`'s removal)."""
        with self.lock:
            self.outlets.add(outlet)
        try:
            os.write(self.wake_write, b"x")
        except BlockingIOError:
            pass  # the thread has wake-ups enough waiting

    def _run(self) -> None:
        while True:
            poller = select.poll()
            poller.register(self.wake_read, select.POLLIN)
            with self.lock:
                watched = {o.fd: o for o in self.outlets}
            for fd in watched:
                poller.register(fd, select.POLLOUT)
            for fd, _ in poller.poll():
                if fd == self.wake_read:
                    try:
                        os.read(self.wake_read, 4096)
                    except BlockingIOError:
                        pass
                    continue
                outlet = watched[fd]
                with outlet.lock:
                    if not outlet.closed:
                        outlet.drain()
                    if outlet.closed or not outlet.backlog:
                        with self.lock:
                            self.outlets.discard(outlet)


_flusher_of_process: _Flusher | None = None
_flusher_lock = threading.Lock()


def _flusher() -> _Flusher:
    global _flusher_of_process
    with _flusher_lock:
        if _flusher_of_process is None or _flusher_of_process.pid != os.getpid():
            _flusher_of_process = _Flusher()
        return _flusher_of_process


class _Inlet:
    """The reading end of one pipe: reads what is there without blocking and cuts it into messages.

    Never blocking on a half-written message means a writer killed in the
    middle of one cannot hang its reader: the pipe ends (EOF) and the half
    is dropped.
    """

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.fd = conn.fileno()
        os.set_blocking(self.fd, False)
        self.buffer = bytearray()
        self.ended = False

    def pump(self, into: deque[bytes]) -> None:
        """Read what the pipe holds; every whole message goes to `into`."""
        while True:
            try:
                chunk = os.read(self.fd, _READ_BYTES)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.ended = True
                break
            self.buffer += chunk
            if len(chunk) < _READ_BYTES:
                break
        buffer, at = self.buffer, 0
        while len(buffer) - at >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer, at)
            end = at + _LENGTH.size + size
            if end > len(buffer):
                break
            into.append(bytes(buffer[at + _LENGTH.size:end]))
            at = end
        if at:
            del buffer[:at]

    def close(self) -> None:
        self.ended = True
        self.conn.close()


_LENGTH = struct.Struct("!Q")
_JOIN_BELOW = 1 << 16  # a message up to this size is written with its header in one buffer
_READ_BYTES = 1 << 20
_PIPE_BYTES = 1 << 20  # pipe capacity asked for: a micro-batch's partition fits in one write


def _widen(fd: int) -> None:
    """Ask for a larger pipe buffer (Linux; the default 64 KiB splits larger partitions into many writes)."""
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    except (AttributeError, OSError):
        pass


class _Mailbox:
    """The inlets one process reads: messages in the order they were read, one poll over all pipes."""

    def __init__(self, inlets: list[_Inlet], extra_fds: list[int] | None = None) -> None:
        self.inlets = {i.fd: i for i in inlets}
        self.ready: deque[bytes] = deque()
        self.poller = select.poll()
        for fd in self.inlets:
            self.poller.register(fd, select.POLLIN)
        for fd in extra_fds or ():
            self.poller.register(fd, select.POLLIN)

    def receive(self, timeout: float) -> Any | None:
        """The next message, or None after `timeout` seconds (or as soon as an extra fd is readable)."""
        if not self.ready:
            self._poll(0)
            if not self.ready and timeout > 0:
                self._poll(timeout)
        return loads(self.ready.popleft()) if self.ready else None

    def _poll(self, timeout: float) -> None:
        for fd, _ in self.poller.poll(timeout * 1000):
            inlet = self.inlets.get(fd)
            if inlet is None:
                continue
            inlet.pump(self.ready)
            if inlet.ended:  # its writer is gone: stop polling it (an ended pipe is always readable)
                self.poller.unregister(fd)
                del self.inlets[fd]

    def close(self) -> None:
        for inlet in self.inlets.values():
            inlet.close()
        self.inlets = {}


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
        self.mailbox = _Mailbox([_Inlet(c) for c in inlets])
        self.outlets = {w: _Outlet(c) for w, c in outlets.items()}

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

    def __post_init__(self) -> None:
        ctx = context()
        ends = range(DRIVER, self.workers)
        pipes = {(a, b): _pipe(ctx) for a in ends for b in ends if a != b}  # (from, to) -> (reader, writer)
        self._channels = {w: PipeChannel(w, [pipes[(DRIVER, w)][0]] + [pipes[(v, w)][0] for v in ends
                                                                         if v not in (DRIVER, w)],
                                         {v: pipes[(w, v)][1] for v in ends if v != w}, os.getpid())
                          for w in range(self.workers)}
        self._outlets = {w: _Outlet(pipes[(DRIVER, w)][1]) for w in range(self.workers)}
        self._inlets = [_Inlet(pipes[(w, DRIVER)][0]) for w in range(self.workers)]
        self._mailbox: _Mailbox | None = None
        self._closed = False

    def channel(self, worker: int) -> PipeChannel:
        return self._channels[worker]

    def start_worker(self, worker: int, main: Callable[..., None]) -> None:
        """Start the worker process; then close this process's copies of the pipe ends it was handed.

        The process holds the only copies afterwards, so its death ends
        those pipes (the readers see EOF instead of waiting for ever).
        """
        channel = self._channels[worker]
        process = context().Process(target=main, args=(channel,), name=f"stream-dsl-worker-{worker}", daemon=True)
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
            self._mailbox = _Mailbox(self._inlets, [p.sentinel for p in self.processes.values()])
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
