"""The socket source under a flood, and who may connect (issue 16, item 14).

Real sockets on 127.0.0.1. No timing asserts: the buffer's high-water mark
and the sender being held back by TCP are what show the backpressure.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from stream_dsl.connectors.socket_source import SocketSource
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema

HANG_GUARD_S = 120  # only to avoid hanging when something is broken
CAP = 256 * 1024
RECV_BYTES = 1 << 20  # what one read of the socket may add past the bound
LINE = b'{"k": "flood", "n": 1}\n'


def _source(**options: str) -> SocketSource:
    all_options = {"connector": "socket", "port": "0", **options}
    definition = SourceDef(
        "ev", "stream", Schema.of(("k", T.STRING), ("n", T.BIGINT)), tuple(sorted(all_options.items()))
    )
    source = SocketSource(definition)
    source.open(None)
    return source


def test_a_flood_is_held_back_by_a_bounded_buffer_and_nothing_is_lost():
    source = _source(max_buffer_bytes=str(CAP), max_line_bytes="4096")
    lines = 40 * 1024 * 1024 // len(LINE)  # 40 MB: far more than the buffer and the kernel's socket buffers
    sent = [0]

    def flood() -> None:
        with socket.create_connection(("127.0.0.1", source.port), timeout=HANG_GUARD_S) as client:
            chunk = LINE * 4096
            for _ in range(lines // 4096):
                client.sendall(chunk)
                sent[0] += len(chunk)

    sender = threading.Thread(target=flood, daemon=True)
    sender.start()
    try:
        # wait until the sender is held back: what it has sent stops growing
        last, still, deadline = -1, 0, time.monotonic() + HANG_GUARD_S
        while still < 10 and sender.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
            still = still + 1 if sent[0] == last else 0
            last = sent[0]
        assert sender.is_alive(), "the whole flood was taken in: nothing held the sender back"
        assert source.max_buffered <= CAP + RECV_BYTES  # one read past the bound at most
        rows = 0
        while rows < lines // 4096 * 4096:  # the batches drain it all, in order, nothing lost
            batch = source.next_batch(50)
            rows += batch.frame.height
            assert not batch.dead_letters
        assert rows == lines // 4096 * 4096
        assert source.max_buffered <= CAP + RECV_BYTES
    finally:
        source.close()
        sender.join(HANG_GUARD_S)


def test_listening_beyond_loopback_needs_allow_remote():
    definition = SourceDef(
        "ev",
        "stream",
        Schema.of(
            ("k", T.STRING),
        ),
        (("connector", "socket"), ("host", "0.0.0.0"), ("port", "0")),
    )
    with pytest.raises(ConnectorError, match="host '0.0.0.0' is not a loopback address.*allow_remote = 'true'"):
        SocketSource(definition).open(None)


def test_allow_remote_listens_and_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="stream_dsl.connectors.socket"):
        source = _source(host="0.0.0.0", allow_remote="true")
    try:
        assert any("not a loopback address" in r.getMessage() for r in caplog.records)
        with socket.create_connection(("127.0.0.1", source.port), timeout=HANG_GUARD_S) as client:
            client.sendall(LINE)
        batch = source.next_batch(1000)
        while batch.frame.height == 0:
            batch = source.next_batch(100)
        assert batch.frame.rows() == [("flood", 1)]
    finally:
        source.close()


def test_loopback_names_need_no_option():
    for host in ("127.0.0.1", "localhost"):
        _source(host=host).close()
