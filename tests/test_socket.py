"""The socket source on real loopback TCP connections: framing, clients, formats, windows, errors."""

from __future__ import annotations

import json
import socket

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.connectors import socket_source
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema
from redis_server import free_port

HANG_GUARD_S = 120  # only to avoid hanging when something is broken


def _send(port: int, chunks: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S) as client:
        for chunk in chunks:
            client.sendall(chunk)


def _source(port: int, **options: str) -> socket_source.SocketSource:
    opts = tuple(sorted({"connector": "socket", "port": str(port), **options}.items()))
    return socket_source.make_source(SourceDef("ev", "stream", Schema.of(("k", T.STRING), ("n", T.BIGINT)), opts))


def test_a_windowed_query_over_a_socket_equals_polars():
    port = free_port()
    rows = [{"user": f"u{i % 7}", "ts": 1_767_225_600_000 + i * 137} for i in range(3000)]
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    ctx = sd.Context(executor="inline", workers=2, batch_interval="20ms")
    ctx.sql(
        f"CREATE STREAM clicks (user STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
        f"WITH (connector = 'socket', port = '{port}', bounded = 'true')"
    )
    sink = MemorySink()
    handle = ctx.sql(
        "SELECT user, window_start, COUNT(*) AS n FROM clicks GROUP BY user, TUMBLE(ts, INTERVAL '10' SECOND)"
    ).start(sink=sink)
    step = len(data) // 10 + 3  # cut inside records
    _send(port, [data[i : i + step] for i in range(0, len(data), step)])
    assert handle.await_termination(HANG_GUARD_S)
    frame = pl.DataFrame(rows).with_columns(pl.col("ts").cast(pl.Datetime("ms")))
    expected = (
        frame.group_by("user", pl.col("ts").dt.truncate("10s").alias("window_start"))
        .agg(pl.len().cast(pl.Int64).alias("n"))
        .sort("user", "window_start")
    )
    assert sink.frame().sort("user", "window_start").equals(expected)
    assert sum(p["rows_in"] for p in handle.progress()) == 3000


def test_it_listens_on_loopback_by_default_and_port_0_picks_a_free_port():
    source = _source(0)
    source.open(None)
    try:
        assert source.options.host == "127.0.0.1" and source.port and source.port > 0
        _send(source.port, [b'{"k": "a", "n": 1}\n'])
        batch = source.next_batch(HANG_GUARD_S * 1000)  # waits for the line (returns as soon as it is there)
        while not batch.frame.height:
            batch = source.next_batch(100)
        assert batch.frame.rows() == [("a", 1)]
    finally:
        source.close()


def test_a_line_waits_for_its_newline_and_a_closed_client_flushes_its_last_line():
    source = _source(0, bounded="true")
    source.open(None)
    try:
        client = socket.create_connection(("127.0.0.1", source.port), timeout=HANG_GUARD_S)
        client.sendall(b'{"k": "a", "n": 1}\n{"k": "b", ')
        got: list[tuple] = []
        while len(got) < 1:
            got += source.next_batch(50).frame.rows()
        assert got == [("a", 1)]
        assert source.next_batch(10).frame.height == 0  # half a record is not a record
        client.sendall(b'"n": 2}')
        client.close()  # no trailing newline: the end of the connection ends the line
        batch = source.next_batch(50)
        while not batch.exhausted:
            got += batch.frame.rows()
            batch = source.next_batch(50)
        got += batch.frame.rows()
        assert got == [("a", 1), ("b", 2)]
    finally:
        source.close()


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "needs a port option"),
        ({"port": "70000"}, "port must be at most 65535"),
        ({"port": "1", "format": "xml"}, "format must be ndjson or csv"),
        ({"port": "1", "hots": "0.0.0.0"}, "unknown option 'hots'"),
    ],
)
def test_bad_options(options, message):
    opts = tuple(sorted({"connector": "socket", **options}.items()))
    with pytest.raises(ConnectorError, match=message):
        socket_source.make_source(SourceDef("ev", "stream", Schema.of(("k", T.STRING)), opts))


def test_two_clients_and_csv_with_a_header_each():
    port = free_port()
    ctx = sd.Context(executor="inline", workers=1, batch_interval="20ms")
    ctx.sql(
        f"CREATE STREAM ev (k STRING, n BIGINT) WITH (connector = 'socket', port = '{port}', format = 'csv', "
        f"header = 'true', bounded = 'true', dead_letter = 'none')"
    )
    sink = MemorySink()
    handle = ctx.sql("SELECT k, n FROM ev").start(sink=sink)
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S) as first:
        first.sendall(b"n,k\n1,a\n")
        _send(port, [b"k,n\nb,2\nc,three\n", b"d,4"])  # a second client, in another column order
        first.sendall(b"5,e\n")
    assert handle.await_termination(HANG_GUARD_S)
    assert sorted(sink.frame().rows()) == [("a", 1), ("b", 2), ("d", 4), ("e", 5)]
    [letter] = handle.dead_letters
    assert letter.position.endswith(":3") and "three" in letter.reason


def test_lines_longer_than_the_limit_are_cut_into_one_dead_letter():
    port = free_port()
    ctx = sd.Context(executor="inline", workers=1, batch_interval="20ms")
    ctx.sql(
        f"CREATE STREAM ev (k STRING) WITH (connector = 'socket', port = '{port}', bounded = 'true', "
        f"max_line_bytes = '1000', dead_letter = 'none')"
    )
    sink = MemorySink()
    handle = ctx.sql("SELECT k FROM ev").start(sink=sink)
    _send(port, [b'{"k": "a"}\n{"k": "', b"z" * 3000, b'"}\n{"k": "b"}\n'])
    assert handle.await_termination(HANG_GUARD_S)
    assert sorted(sink.frame().get_column("k").to_list()) == ["a", "b"]
    [letter] = handle.dead_letters
    assert letter.position.endswith(":2") and "longer than max_line_bytes" in letter.reason


def test_a_port_in_use_is_a_connector_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ctx = sd.Context(executor="inline", workers=1)
        ctx.sql(f"CREATE STREAM ev (k STRING) WITH (connector = 'socket', port = '{port}')")
        with pytest.raises(ConnectorError, match=f"source 'ev': cannot listen on 127.0.0.1:{port}"):
            ctx.sql("SELECT k FROM ev").start(sink=lambda b, f: None)
