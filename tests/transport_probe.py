"""Worker programs for the transport tests: they exercise a Channel, not a query.

The worker processes import this module by name (the test directory is on
the import path the fork server was started with), so every program is a
module-level function taking the worker's Channel. Every one of them
exits by itself once the driver is gone, so a failed test leaves no
process waiting for ever.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from typing import Any

from executor.multiproc.runtime import DRIVER

BIG = 64 << 20  # far more than a pipe holds: written only in part when its writer is killed


def payload(sender: int, seq: int, size: int) -> bytes:
    """`size` bytes that only this (sender, seq) produces."""
    seed = hashlib.sha256(f"{sender}/{seq}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _next(channel: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = channel.receive(0.2)
        if message is not None:
            return message
        if not channel.driver_alive():
            os._exit(0)
    raise TimeoutError(f"worker {channel.worker}: nothing arrived within {timeout}s")


def _drain(channel: Any, quiet: float = 0.5) -> list[Any]:
    """What arrives until nothing has for `quiet` seconds."""
    got = []
    while (message := channel.receive(quiet)) is not None:
        got.append(message)
    return got


def serve(channel: Any) -> None:
    """Answer the driver until "stop".

    ("ping", n) -> ("pong", worker, n, pid); ("exit", code) -> exit at once;
    ("send", worker, size) -> send `worker` `size` bytes, then pong (n = -1);
    ("unshare", handle) -> ("unshared", worker, size, sha256) of the data the handle names.
    """
    while True:
        message = _next(channel, timeout=600.0)
        if message == "stop":
            channel.release()
            return
        if message[0] == "ping":
            channel.send(DRIVER, ("pong", channel.worker, message[1], os.getpid()))
        elif message[0] == "exit":
            os._exit(message[1])
        elif message[0] == "send":
            channel.send(message[1], b"x" * message[2])
            channel.send(DRIVER, ("pong", channel.worker, -1, os.getpid()))
        elif message[0] == "unshare":
            data = channel.unshare(message[1])
            channel.send(DRIVER, ("unshared", channel.worker, len(data), hashlib.sha256(data).hexdigest()))


def stubborn(channel: Any) -> None:
    """Read nothing and ignore every request, stop included (until the driver is gone): a straggler."""
    while channel.driver_alive():
        time.sleep(0.1)


def size_of(sizes: list[int], seq: int) -> int:
    """The size of message `seq` of a stream whose sizes cycle through `sizes`."""
    return sizes[seq % len(sizes)]


def exchange(channel: Any) -> None:
    """Send `count` numbered messages to each of `to`, all at once, then read what `expect` says comes.

    The plan is the first message from the driver; the driver may send its
    own numbered messages (from DRIVER) right after it. Message `seq` of
    every sender is `size_of(sizes, seq)` bytes. Reports, per sender, the
    sequence numbers in the order they came and whether every payload was
    intact; then serves (ping, stop).
    """
    early = []  # a peer's messages may come before the driver's plan: only each sender's own order is kept
    while not isinstance(plan := _next(channel), dict):
        early.append(plan)
    me, sizes = channel.worker, plan["sizes"]
    for seq in range(plan["count"]):
        for target in plan["to"]:
            channel.send(target, (me, seq, payload(me, seq, size_of(sizes, seq))))
    expect: dict[int, int] = plan["expect"]
    received: dict[int, list[int]] = {sender: [] for sender in expect}
    intact = True
    while any(len(received[s]) < n for s, n in expect.items()):
        sender, seq, data = early.pop(0) if early else _next(channel)
        received[sender].append(seq)
        intact &= data == payload(sender, seq, size_of(sizes, seq))
    channel.send(DRIVER, {"worker": me, "received": received, "intact": intact})
    serve(channel)


def describe(message: Any) -> Any:
    """A message as the killed-peer test reports it: small ones as they are, bytes by size and integrity."""
    if isinstance(message, bytes):
        return ("bytes", len(message), message == b"x" * len(message))
    return message


def die_mid_message(channel: Any) -> None:
    """Worker 0 sends "whole", then a message far larger than a pipe, to worker 1 and the driver, and is SIGKILLed.

    Worker 1 reads everything until the driver says "report" (after it saw
    worker 0 dead), reads on until nothing more comes, and reports what it
    got: "whole" and never a part of the large message. Then it serves.
    """
    if channel.worker == 0:
        assert _next(channel) == "go"
        for target in (1, DRIVER):
            channel.send(target, "whole")
        for target in (1, DRIVER):
            channel.send(target, b"x" * BIG)
        os.kill(os.getpid(), signal.SIGKILL)  # at once: nothing gets to write the rest of the large message
    got = []
    while (message := _next(channel)) != "report":
        if message != "go":  # the driver's go may come after worker 0's messages: senders are not ordered
            got.append(describe(message))
    got += [describe(m) for m in _drain(channel)]
    channel.send(DRIVER, {"worker": channel.worker, "got": got, "pid": os.getpid()})
    serve(channel)


def report_threads(channel: Any) -> None:
    """Send the driver polars' thread pool size and POLARS_MAX_THREADS as this process sees them; then serve."""
    import polars as pl

    channel.send(DRIVER, ("threads", pl.thread_pool_size(), os.environ.get("POLARS_MAX_THREADS")))
    serve(channel)


def report_modules(channel: Any) -> None:
    """Send the driver whether numpy.ma was already imported when this worker started (fork server preload)."""
    import sys

    channel.send(DRIVER, ("modules", "numpy.ma" in sys.modules))
    serve(channel)
