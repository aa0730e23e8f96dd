"""Worker programs for tests/test_runtime.py: they exercise a Channel, not a query.

The worker processes import this module by name (the test directory is on
the import path the fork server was started with).
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from executor.runtime import DRIVER


def payload(sender: int, seq: int, size: int) -> bytes:
    """`size` bytes that only this (sender, seq) produces."""
    seed = hashlib.sha256(f"{sender}/{seq}".encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def _next(channel: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = channel.receive(0.5)
        if message is not None:
            return message
        if not channel.driver_alive():
            os._exit(0)
    raise TimeoutError(f"worker {channel.worker}: nothing arrived within {timeout}s")


def exchange(channel: Any) -> None:
    """Send `count` messages of `size` bytes to every peer and the driver, all at once, then read the peers'.

    Reports to the driver, per peer, the sequence numbers in the order they
    came and whether every payload was intact; then waits for "stop".
    """
    plan = _next(channel)
    me, peers, count, size = channel.worker, plan["peers"], plan["count"], plan["size"]
    for seq in range(count):
        for target in peers + [DRIVER]:
            channel.send(target, (me, seq, payload(me, seq, size)))
    received: dict[int, list[int]] = {p: [] for p in peers}
    intact = True
    while sum(map(len, received.values())) < count * len(peers):
        sender, seq, data = _next(channel)
        received[sender].append(seq)
        intact &= data == payload(sender, seq, size)
    channel.send(DRIVER, {"worker": me, "received": received, "intact": intact})
    while _next(channel) != "stop":
        pass
    channel.release()


def die_while_sending(channel: Any) -> None:
    """Worker 0 writes a message far larger than the pipe holds to worker 1, which is not reading yet, and dies.

    Worker 1 then reads: it must see the pipe end and drop the half message
    instead of waiting for the rest, and it reports what it got.
    """
    _next(channel)  # "go"
    if channel.worker == 0:
        channel.send(1, "whole")
        channel.send(1, b"x" * (64 << 20))  # what fits goes into the pipe; the rest waits for the flusher
        os._exit(3)  # at once: the flusher thread never gets to write any of the rest
    time.sleep(2.0)  # not reading meanwhile: worker 0 dies with its message half written
    got = []
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        message = channel.receive(0.1)
        if message is not None:
            got.append(message if isinstance(message, str) else f"{len(message)} bytes")
    channel.send(DRIVER, {"worker": 1, "got": got})
    while _next(channel) != "stop":
        pass
    channel.release()
