"""The multiprocess transport's pipe framing: pickling, length-prefixed writes (Outlet), reads (Inlet, Mailbox)."""

from __future__ import annotations

import fcntl
import os
import pickle
import select
import struct
import threading
import time
from collections import deque
from typing import Any


def dumps(message: Any) -> bytes:
    return pickle.dumps(message, protocol=5)


def loads(data: bytes) -> Any:
    return pickle.loads(data)


class Outlet:
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
        self.outlets: set[Outlet] = set()
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        threading.Thread(target=self._run, name="stream-dsl-flusher", daemon=True).start()

    def watch(self, outlet: Outlet) -> None:
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


class Inlet:
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
            into.append(bytes(buffer[at + _LENGTH.size : end]))
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


class Mailbox:
    """The inlets one process reads: messages in the order they were read, one poll over all pipes."""

    def __init__(self, inlets: list[Inlet], extra_fds: list[int] | None = None) -> None:
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
