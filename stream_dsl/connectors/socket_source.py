"""The `socket` source: newline-delimited JSON or CSV sent to a TCP port, for quick experiments.

The source is the server: when the query opens it listens on `host`
(default 127.0.0.1, loopback only) and `port` (required; '0' picks a free
port, then `SocketSource.port` and the log say which). Any number of
clients may connect, one after another or at once (`nc 127.0.0.1 9999 <
events.ndjson`); each micro-batch takes the complete lines that have
arrived on every connection (a line still being sent waits for its newline,
or for its client to close). A continuous query waits up to one batch
interval for data.

Options: `format` ('ndjson', also 'json', default; or 'csv'), for csv
`header` ('false' by default: values in declared column order; 'true': the
first line of every connection is its header) and `delimiter` (','),
`max_line_bytes` (default 16 MiB: a longer line becomes one dead letter
and is skipped, without being buffered whole), `bounded` ('true': the stream ends once a client has connected
and every client has closed its connection: for collect() and tests).

Backpressure: `max_buffer_bytes` (default 64 MiB) bounds what waits for
the next batch. Once that much is buffered, the source stops reading the
connections that have a complete line waiting, so TCP flow control slows
their senders down, and reads them again when a batch has taken the data.
A connection still inside a line keeps reading until the line is complete
(at most `max_line_bytes`), so no batch waits on a line that cannot finish.

Listening on an address that is not loopback (`host = '0.0.0.0'`, a LAN
address) lets anyone who can reach the port inject records, so it needs
`allow_remote = 'true'` and logs a warning.

Bad lines (invalid JSON or UTF-8, wrong types) are dead letters with the
position '<client host:port>:<line number on that connection>'; blank
lines are skipped. The data is not replayable: a restarted query reads only
what is sent after it opens.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from stream_dsl.connectors.base import DeadLetter, SourceBatch, read_schema
from stream_dsl.connectors.decode import Decoded, empty_frame
from stream_dsl.connectors.decode_ndjson import decode_ndjson
from stream_dsl.connectors.decode_csv import CsvOptions, decode_csv
from stream_dsl.connectors.files import max_event_time_ms
from stream_dsl.connectors.options import as_bool, as_int, check_keys
from stream_dsl.connectors.option_specs import Option, option_names
from stream_dsl.errors import ConnectorError
from stream_dsl.secrets import masked_logger
from stream_dsl.ir.definitions import SourceDef

log = masked_logger("stream_dsl.connectors.socket")

NODE_LOCAL = True  # a loopback port: on a cluster its source task runs on the driver's node
SOURCE_SPECS = (
    Option("host", "string", "the address listened on", default="127.0.0.1"),
    Option("port", "int", "the TCP port ('0' picks a free one)", required=True, minimum=0),
    Option("format", "choice", "the lines' format", default="ndjson", choices=("ndjson", "json", "jsonl", "csv")),
    Option("header", "bool", "csv: the first line names the columns", default="false"),
    Option("delimiter", "char", "csv: the field separator", default=","),
    Option("max_line_bytes", "int", "a longer line is a dead letter", minimum=1),
    Option("max_buffer_bytes", "int", "bytes buffered before senders are slowed down", minimum=1),
    Option("bounded", "bool", "end when the senders disconnect", default="false"),
    Option("allow_remote", "bool", "listen on an address other than loopback", default="false"),
)
OPTIONS = option_names(SOURCE_SPECS)
OPTION_SPECS = {"source": SOURCE_SPECS}
FORMATS = {"ndjson": "ndjson", "json": "ndjson", "jsonl": "ndjson", "csv": "csv"}
DEFAULT_MAX_LINE = 16 * 1024 * 1024
DEFAULT_MAX_BUFFER = 64 * 1024 * 1024
RECV_BYTES = 1 << 20
_RAW_PREVIEW = 1024  # bytes of an over-long line kept in its dead letter
_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class SocketOptions:
    host: str
    port: int
    format: str
    csv: CsvOptions
    max_line_bytes: int
    bounded: bool
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER
    allow_remote: bool = False

    @classmethod
    def parse(cls, definition: SourceDef) -> "SocketOptions":
        what = f"source '{definition.name}'"
        check_keys(definition.options, OPTIONS, what=what)
        port = as_int(definition.option("port"), key="port", what=what, minimum=0)
        if port is None:
            raise ConnectorError(f"{what}: the socket connector needs a port option ('0' picks a free one)")
        if port > 65535:
            raise ConnectorError(f"{what}: option port must be at most 65535, got {port}")
        fmt = FORMATS.get((definition.option("format") or "ndjson").strip().lower())
        if fmt is None:
            raise ConnectorError(f"{what}: option format must be ndjson or csv, got '{definition.option('format')}'")
        delimiter = definition.option("delimiter", ",")
        if len(delimiter) != 1:
            raise ConnectorError(f"{what}: option delimiter must be a single character, got '{delimiter}'")
        return cls(
            host=definition.option("host") or "127.0.0.1",
            port=port,
            format=fmt,
            csv=CsvOptions(header=as_bool(definition.option("header"), key="header", what=what), delimiter=delimiter),
            max_line_bytes=as_int(definition.option("max_line_bytes"), key="max_line_bytes", what=what, minimum=1)
            or DEFAULT_MAX_LINE,
            bounded=as_bool(definition.option("bounded"), key="bounded", what=what),
            max_buffer_bytes=as_int(definition.option("max_buffer_bytes"), key="max_buffer_bytes", what=what, minimum=1)
            or DEFAULT_MAX_BUFFER,
            allow_remote=as_bool(definition.option("allow_remote"), key="allow_remote", what=what),
        )


@dataclass
class Connection:
    """What one client sent that no batch has taken yet."""

    peer: str
    buffer: bytearray = field(default_factory=bytearray)
    lines_taken: int = 0  # lines of this connection already handed to batches (header included)
    header: bytes | None = None
    closed: bool = False
    skipping: bool = False  # inside an over-long line: drop bytes until its newline
    letters: list[DeadLetter] = field(default_factory=list)
    client: socket.socket | None = None
    paused: bool = False  # not read while the source's buffer is full (backpressure)


class SocketSource:
    """A TCP server whose clients send records (see the module doc)."""

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self.options = SocketOptions.parse(definition)
        self._what = f"source '{definition.name}'"
        self._schema = definition.schema
        self._server: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Condition()
        self._connections: list[Connection] = []
        self._ever_connected = False
        self._error: BaseException | None = None
        self._lines = 0
        self.port: int | None = None
        self.buffered = 0  # bytes received that no batch has taken yet
        self.max_buffered = 0  # the most that was ever buffered at once

    @property
    def bounded(self) -> bool:
        return self.options.bounded

    # ------------------------------------------------------------ the server thread

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        self._schema = read_schema(self.definition, columns, self._what)
        _check_host(self.options, self._what)
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind((self.options.host, self.options.port))
            server.listen(16)
        except OSError as e:
            server.close()
            raise ConnectorError(
                f"{self._what}: cannot listen on {self.options.host}:{self.options.port}: {e.strerror or e}"
            ) from None
        server.setblocking(False)
        self._server = server
        self.port = server.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(server, selectors.EVENT_READ, None)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._serve, name=f"stream-dsl-socket-{self.definition.name}", daemon=True
        )
        self._thread.start()
        log.info("%s: listening on %s:%d", self._what, self.options.host, self.port)

    def _serve(self) -> None:
        assert self._selector is not None
        try:
            while not self._stop.is_set():
                self._resume()
                for key, _ in self._selector.select(timeout=_POLL_S):
                    if key.data is None:
                        self._accept()
                    else:
                        self._receive(key.fileobj, key.data)  # type: ignore[arg-type]
        except BaseException as e:  # surfaced by the next batch
            with self._lock:
                self._error = e
                self._lock.notify_all()

    def _accept(self) -> None:
        assert self._server is not None and self._selector is not None
        try:
            client, address = self._server.accept()
        except BlockingIOError:
            return
        client.setblocking(False)
        connection = Connection(f"{address[0]}:{address[1]}", client=client)
        with self._lock:
            self._connections.append(connection)
            self._ever_connected = True
        self._selector.register(client, selectors.EVENT_READ, connection)

    def _receive(self, client: socket.socket, connection: Connection) -> None:
        try:
            data = client.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        with self._lock:
            if data:
                self._append(connection, data)
                if self.buffered >= self.options.max_buffer_bytes and connection.buffer.find(b"\n") >= 0:
                    assert self._selector is not None
                    self._selector.unregister(client)  # backpressure: TCP holds the rest at the sender
                    connection.paused = True
            else:
                connection.closed = True
                assert self._selector is not None
                self._selector.unregister(client)
                client.close()
            self._lock.notify_all()

    def _append(self, c: Connection, data: bytes) -> None:
        """Buffer `data`; a line longer than max_line_bytes becomes one dead letter and a blank line."""
        limit = self.options.max_line_bytes
        open_line = len(c.buffer) - (c.buffer.rfind(b"\n") + 1)
        before = len(c.buffer)
        try:
            self._append_lines(c, data, limit, open_line)
        finally:
            self.buffered += len(c.buffer) - before
            self.max_buffered = max(self.max_buffered, self.buffered)

    def _append_lines(self, c: Connection, data: bytes, limit: int, open_line: int) -> None:
        if not c.skipping and open_line + len(data) <= limit:  # no line can be too long: the usual case
            c.buffer += data
            return
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            stop = len(data) if end < 0 else end + 1
            if c.skipping:  # the rest of a line already cut
                c.skipping = end < 0
                pos = stop
                continue
            start = c.buffer.rfind(b"\n") + 1
            length = len(c.buffer) - start + (stop - pos) - (1 if end >= 0 else 0)
            if length <= limit:
                c.buffer += data[pos:stop]
            else:
                head = bytes(c.buffer[start : start + _RAW_PREVIEW]) + data[pos : pos + _RAW_PREVIEW]
                del c.buffer[start:]
                line = c.lines_taken + c.buffer.count(b"\n") + 1
                c.letters.append(
                    DeadLetter(
                        self.definition.name,
                        f"{c.peer}:{line}",
                        head[:_RAW_PREVIEW].decode("utf-8", errors="backslashreplace") + "...",
                        f"line longer than max_line_bytes ({limit} bytes)",
                    )
                )
                c.buffer += b"\n"  # the cut line stays one (blank) line, so later line numbers hold
                c.skipping = end < 0
            pos = stop

    def _resume(self) -> None:
        """Read paused connections again once batches took the data (or they have no complete line left)."""
        with self._lock:
            for c in self._connections:
                if c.paused and (self.buffered < self.options.max_buffer_bytes or c.buffer.find(b"\n") < 0):
                    assert self._selector is not None and c.client is not None
                    self._selector.register(c.client, selectors.EVENT_READ, c)
                    c.paused = False

    # ------------------------------------------------------------ batches

    def _ready(self) -> bool:
        return any(c.letters or c.buffer.find(b"\n") >= 0 or (c.closed and c.buffer) for c in self._connections)

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False) -> SourceBatch:
        with self._lock:
            if not self._ready() and self._error is None:  # live data only: wait for it either way
                self._lock.wait(batch_interval_ms / 1000)
            if self._error is not None:
                raise ConnectorError(f"{self._what}: the socket server failed: {self._error}")
            chunks = [self._take(c) for c in self._connections]
            self._connections = [c for c in self._connections if not (c.closed and not c.buffer)]
            exhausted = (
                self.options.bounded
                and self._ever_connected
                and all(c.closed and not c.buffer for c in self._connections)
            )
        frames, letters = [], []
        for connection, data, first_line, late_letters in chunks:
            letters.extend(late_letters)
            if data:
                decoded = self._decode(connection, data, first_line)
                frames.append(decoded.frame)
                letters.extend(decoded.dead_letters)
        frames = [f for f in frames if f.height]
        frame = (
            (frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical"))
            if frames
            else empty_frame(self._schema)
        )
        letters.sort(key=_position_key)
        return SourceBatch(
            frame=frame,
            exhausted=exhausted,
            offset=self._lines,
            dead_letters=letters,
            max_event_time_ms=max_event_time_ms(frame, self.definition),
        )

    def _take(self, c: Connection) -> tuple[Connection, bytes, int, list[DeadLetter]]:
        """The complete lines of `c` (all of it once closed); the number of their first line."""
        end = len(c.buffer) if c.closed else c.buffer.rfind(b"\n") + 1
        data = bytes(c.buffer[:end])
        del c.buffer[:end]
        self.buffered -= len(data)
        first = c.lines_taken + 1
        taken = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
        c.lines_taken += taken
        self._lines += taken
        letters, c.letters = c.letters, []
        return c, data, first, letters

    def _decode(self, c: Connection, data: bytes, first_line: int) -> Decoded:
        source = self.definition.name
        if self.options.format == "csv":
            if self.options.csv.header:
                if c.header is None:  # the connection's first line is its header
                    head, _, data = data.partition(b"\n")
                    c.header = head.rstrip(b"\r")
                    first_line += 1
                decoded = decode_csv(
                    c.header + b"\n" + data,
                    self._schema,
                    source=source,
                    origin=c.peer,
                    options=self.options.csv,
                    full_schema=self.definition.schema,
                )
                return _renumber(decoded, c.peer, first_line - 2)
            decoded = decode_csv(
                data,
                self._schema,
                source=source,
                origin=c.peer,
                options=self.options.csv,
                full_schema=self.definition.schema,
            )
            return _renumber(decoded, c.peer, first_line - 1)
        decoded = decode_ndjson(data, self._schema, source=source, origin=c.peer, full_schema=self.definition.schema)
        return _renumber(decoded, c.peer, first_line - 1)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._selector is not None:
            for key in list(self._selector.get_map().values()):
                try:
                    key.fileobj.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            self._selector.close()
            self._selector = None
        for c in self._connections:
            if c.paused and c.client is not None:  # not in the selector while paused
                c.client.close()
        self._server = None


def _check_host(options: SocketOptions, what: str) -> None:
    """A non-loopback address needs allow_remote = 'true', and is logged as a warning."""
    if _is_loopback(options.host):
        return
    if not options.allow_remote:
        raise ConnectorError(
            f"{what}: host '{options.host}' is not a loopback address: anyone who can reach it "
            f"could send records. Set allow_remote = 'true' to listen there anyway"
        )
    log.warning(
        "%s: listening on %s, which is not a loopback address: anyone who can reach port %d can send "
        "records to this query",
        what,
        options.host,
        options.port,
    )


def _is_loopback(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host or "0.0.0.0", None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _position_key(letter: DeadLetter) -> tuple[str, int]:
    peer, _, line = letter.position.rpartition(":")
    return peer, int(line) if line.isdigit() else 0


def _renumber(decoded: Decoded, peer: str, shift: int) -> Decoded:
    """Dead-letter positions from line numbers within a chunk to line numbers on the connection."""
    if not decoded.dead_letters or shift == 0:
        return decoded
    letters = []
    for d in decoded.dead_letters:
        line = int(d.position.rsplit(":", 1)[1]) + shift
        letters.append(DeadLetter(d.source, f"{peer}:{line}", d.raw, d.reason))
    return Decoded(decoded.frame, tuple(letters))


def make_source(definition: SourceDef) -> SocketSource:
    return SocketSource(definition)
