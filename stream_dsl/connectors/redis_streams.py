"""The `redis` connector: Redis Streams as a source (a consumer group) and as a sink (XADD).

Source options:
- `url` ('redis://127.0.0.1:6379/0'), `stream` (required).
- `group` (default 'stream-dsl-<stream name in the catalog>'), `consumer`
  ('stream-dsl'). A restarted query must use the same group and consumer.
- `format`: 'json' (the entry field `field`, default 'data', holds one JSON
  record) or 'fields' (an entry's fields are the columns; fields the
  schema does not declare are ignored, missing ones are NULL).
- `start`: where a new group starts: '0' (the whole stream, default), '$'
  (only entries added later) or an entry id. The group is created (with
  MKSTREAM) if it does not exist.
- `batch_size`: at most this many entries per micro-batch (10000).
- `bounded`: 'true' makes the source end once it has read every entry the
  stream held when the query opened (entries added later may come along in
  the last batch): for collect() and tests. Default 'false': a stream never
  ends.
- `retry_seconds` ('30'): how long to retry a lost connection.
- `splits` ('N' or 'workers', see docs/connectors.md): read the stream in
  parts, part i of n as the consumer '<consumer>-<i>' of the group (below).

Reading: XREADGROUP, first this consumer's own pending entries (delivered
to an earlier run and never acknowledged: id '0'), then new ones ('>').
In a continuous query an empty read waits up to one batch interval. A
record that does not decode (bad JSON, invalid UTF-8, a value of the wrong
type, an entry without the `data` field) is a dead letter with the position
'<stream>:<entry id>'; blank `data` is skipped. A pending entry the stream
no longer holds when it is read again (trimmed by XTRIM, MAXLEN or XDEL
after an earlier run read it) is a dead letter too, with a warning, and
counted in `RedisSource.trimmed`: its record is lost, never silently.

Acknowledging: entries are acknowledged (XACK) only in `commit`, which the
executor calls after the batch's output and dead letters are written. A
batch whose rows may still sit in an open window (its newest event time is
at or after `keep_from_ms`) stays pending, so a restarted query reads it
again (as `replayed` batches) and rebuilds the window. With each commit
the group's progress (the newest event time committed) goes to the hash
`<stream>:<group>:progress` in the same MULTI/EXEC; a restarted query gets
it as `restored_max_event_ms`, so the windows the previous run emitted are
not emitted again (see `executor/inline.py`). Offsets are
`{"id": last entry id, "event_ms": newest event time so far}`.

Read in parts (`splits`), each part is a member of the consumer group
(`redis_members.Members`): Redis hands each new entry to one member, and
everything above holds per member: its own pending entries first, its own
acknowledgements, its own offsets `{"id": ..., "event_ms": ...}` (id None
until it read an entry). The progress hash holds each member's fields
(`id:<member>`, `event_ms:<member>`) and the names of the last run's
members (`members`); every member resumes from the smallest event time
those members committed (the unsplit source is the one member
'<consumer>'). Entries pending for a member of this query the run does
not have (the number of parts changed) are claimed (XCLAIM, spread over
the members by a hash of the gone member's name) when the query starts
without a checkpoint, and read first as replayed batches; a query resumed
from a checkpoint refuses them with a ConnectorError (its checkpointed
batches cannot hold them; start without the checkpoint). A member
publishes the newest event time it was delivered in the hash
`<stream>:<group>:seen`; when its read finds nothing new it reports the
newest one any member was delivered (kept in its offset, so a replay
reports it again), so an idle member does not hold the query watermark
back, and a row is late only when an entry delivered before it is newer
by more than the delay, as in one consumer.

A lost connection (the server stopped) is retried with exponential backoff
(0.1 s doubling to 5 s) for `retry_seconds`; each retry is logged as a
warning on the logger 'stream_dsl.connectors.redis' and counted in
`retries`. Then one ConnectorError names the source, the URL and the last
error. A group that vanished (a server restarted empty) is created again.

Sink options: `url`, `stream`, `format` ('json': each row is one entry with
the JSON record in `field`, default 'data'; 'fields': one field per non-NULL
column), `field`, `maxlen` (trim the stream to about this many entries),
`retry_seconds`. Exactly once per batch id: one MULTI/EXEC adds the batch's
rows and records the batch id in the hash `<stream>:committed` (batch id →
rows); a batch id already recorded is skipped, so a replay adds nothing.
A query started again continues after the newest recorded batch id
(`last_batch_id`). Timestamps are written as ISO-8601 text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import polars as pl

from stream_dsl.connectors.base import DeadLetter, SourceBatch, read_schema
from stream_dsl.connectors.decode import conform, empty_frame, narrow, with_checked
from stream_dsl.connectors.decode_ndjson import decode_ndjson
from stream_dsl.connectors.files import max_event_time_ms
from stream_dsl.connectors.options import as_bool, as_int, check_keys
from stream_dsl.connectors.option_specs import Option, option_names
from stream_dsl.connectors.redis_members import (
    Members,
    claim_orphans,
    committed_ids,
    group_seen_ms,
    refuse_orphans,
    restored_event_ms,
)
from stream_dsl.connectors.redis_client import (
    DEFAULT_URL,
    FORMATS,
    Retrier,
    StreamId,
    connect,
    entry_text,
    format_id,
    log,
    parse_id,
    redis,
    redis_errors,
    required_option,
    retry_seconds_option,
    stream_format,
)

# the sink as the registry (make_sink) and the docs' connector reference (SINK_OPTIONS) find it here
from stream_dsl.connectors.redis_sink import SINK_OPTIONS as SINK_OPTIONS
from stream_dsl.connectors.redis_sink import SINK_SPECS
from stream_dsl.connectors.redis_sink import RedisSink
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SinkDef, SourceDef
from stream_dsl.secrets import mask

if TYPE_CHECKING:
    from redis.typing import EncodableT, FieldT

SPLITS = True  # part i of n is member i of the consumer group (`redis_members.Members`)
SOURCE_SPECS = (
    Option("url", "string", "the Redis server", default=DEFAULT_URL),
    Option("stream", "string", "the Redis stream read", required=True),
    Option("group", "string", "the consumer group (default: stream-dsl-<name>)"),
    Option("consumer", "string", "the consumer's name in the group", default="stream-dsl"),
    Option("format", "choice", "one JSON field per entry, or one field per column", default="json", choices=FORMATS),
    Option("field", "string", "json: the entry's field", default="data"),
    Option("start", "string", "where a new group starts: '0', '$' or an entry id", default="0"),
    Option("batch_size", "int", "entries read per call", default="10000", minimum=1),
    Option("bounded", "bool", "stop at the entries present at start", default="false"),
    Option("retry_seconds", "seconds", "how long to retry a lost connection", default="30"),
)
SOURCE_OPTIONS = option_names(SOURCE_SPECS)
OPTION_SPECS = {"source": SOURCE_SPECS, "sink": SINK_SPECS}


# ---------------------------------------------------------------- source


@dataclass(frozen=True, slots=True)
class SourceOptions:
    url: str
    stream: str
    group: str
    consumer: str
    format: str
    field: str
    start: str
    batch_size: int
    bounded: bool
    retry_seconds: float

    @classmethod
    def parse(cls, definition: SourceDef) -> "SourceOptions":
        what = f"source '{definition.name}'"
        check_keys(definition.options, SOURCE_OPTIONS, what=what)
        start = (definition.option("start") or "0").strip()
        if start != "$":
            try:
                parse_id(start)
            except ValueError:
                raise ConnectorError(f"{what}: option start must be '0', '$' or an entry id, got '{start}'") from None
        return cls(
            url=definition.option("url") or DEFAULT_URL,
            stream=required_option(definition, "stream", what),
            group=definition.option("group") or f"stream-dsl-{definition.name}",
            consumer=definition.option("consumer") or "stream-dsl",
            format=stream_format(definition.option("format"), what),
            field=definition.option("field") or "data",
            start=start,
            batch_size=as_int(definition.option("batch_size", "10000"), key="batch_size", what=what, minimum=1)
            or 10000,
            bounded=as_bool(definition.option("bounded"), key="bounded", what=what),
            retry_seconds=retry_seconds_option(definition.option("retry_seconds"), what),
        )


@dataclass(slots=True)
class Delivered:
    """One delivered batch not yet acknowledged: its entry ids, good rows and newest event time."""

    last_id: StreamId
    ids: list[bytes]
    rows: int
    max_event_ms: int | None


Entry = tuple[bytes, dict[bytes, bytes] | None]


class RedisSource:
    """A Redis stream read through a consumer group (see the module doc)."""

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self.options = SourceOptions.parse(definition)
        self._what = f"source '{definition.name}'"
        self.members = Members(self.options.consumer, definition.split)
        self.member = self.members.me  # the consumer name this source reads as
        self._schema = definition.schema
        self._client: redis.Redis | None = None
        self.retrier = Retrier(self._what, mask(self.options.url), self.options.retry_seconds, self._create_group)
        self.restored_max_event_ms: int | None = None
        self._pending_cursor: bytes | None = b"0"
        self._end: StreamId | None = None
        self._drained = False
        self._last_id: StreamId | None = None
        self._event_ms: int | None = None
        self._inflight: list[Delivered] = []
        self.trimmed = 0  # pending entries the stream no longer had when they were read again (dead letters)
        self.claimed = 0  # pending entries of members an earlier run had and this one has not, taken over
        self._seen_ms: int | None = None  # the newest event time this member published in the `seen` hash
        self._saved: tuple[Any, Any] | None = None  # the progress this member committed last

    @property
    def bounded(self) -> bool:
        return self.options.bounded

    @property
    def retries(self) -> int:
        return self.retrier.retries

    @property
    def progress_key(self) -> str:
        return f"{self.options.stream}:{self.options.group}:progress"

    @property
    def seen_key(self) -> str:
        return f"{self.options.stream}:{self.options.group}:seen"

    @property
    def _shares_time(self) -> bool:
        """Whether this member publishes what it was delivered and, idle, takes the group's (module doc)."""
        return self.definition.split is not None and self.definition.watermark is not None

    # Replies are raw (no decode_responses; RESP2 or RESP3 shapes), which redis-py's annotations do not
    # follow: the calls below cast them to the shapes this class reads.
    @property
    def _redis(self) -> "redis.Redis":
        assert self._client is not None  # open() connects before any call
        return self._client

    # ------------------------------------------------------------ open

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        self._schema = read_schema(self.definition, columns, self._what)
        self._client = connect(self.options.url, self._what)
        created = self.retrier("creating the consumer group", self._create_group)
        self._pending_cursor = b"0"
        self._drained = False
        self._inflight = []
        self._saved, self._seen_ms = None, None
        if self.options.bounded:
            self._end = self.retrier("reading the stream's last id", self._stream_end)
        if isinstance(offset, dict):  # resumed from a checkpoint: it holds the entries through offset["id"]
            self._event_ms = offset.get("event_ms")
            if offset.get("id"):
                last = self._last_id = parse_id(offset["id"])
                self.retrier("acknowledging checkpointed entries", lambda: self._ack_pending_through(last))
            self.retrier("checking for other members' entries", self._refuse_orphans)
        else:
            self.restored_max_event_ms = self.retrier(
                "reading the group's progress", lambda: self._restored_progress(created)
            )
            self._event_ms = self.restored_max_event_ms
            self.retrier("claiming entries of members gone", self._claim_orphans)

    def _create_group(self) -> bool:
        """Create the consumer group (and the stream); True if it did not exist."""
        try:
            self._redis.xgroup_create(self.options.stream, self.options.group, id=self.options.start, mkstream=True)
            return True
        except redis_errors.ResponseError as e:
            if "BUSYGROUP" in str(e):
                return False
            raise

    def _stream_end(self) -> StreamId | None:
        last = cast("list[Entry]", self._redis.xrevrange(self.options.stream, count=1))
        return parse_id(last[0][0]) if last else None

    def _group_last_delivered(self) -> StreamId | None:
        for info in cast("list[dict[Any, Any]]", self._redis.xinfo_groups(self.options.stream)):
            name = info.get("name") or info.get(b"name")
            if entry_text(name) == self.options.group:
                return parse_id(info.get("last-delivered-id") or info.get(b"last-delivered-id") or "0")
        return None

    def _restored_progress(self, created: bool) -> int | None:
        """The newest event time a previous run committed on this group, over its members (see
        `redis_members.restored_event_ms`); None for a new group."""
        if created:
            self._redis.delete(self.progress_key, self.seen_key)  # left over from a group that was destroyed
            return None
        saved = cast("dict[bytes, bytes]", self._redis.hgetall(self.progress_key))
        restored = restored_event_ms(saved)
        if restored is None:
            return None
        delivered = self._group_last_delivered()
        if delivered is not None and any(parse_id(i) > delivered for i in committed_ids(saved)):
            return None  # the group was recreated behind our back: the progress is not its own
        return restored

    def _claim_orphans(self) -> None:
        self.claimed += claim_orphans(self._redis, self.options.stream, self.options.group, self.members, self._what)

    def _refuse_orphans(self) -> None:
        refuse_orphans(self._redis, self.options.stream, self.options.group, self.members, self._what)

    def _ack_pending_through(self, last: StreamId) -> None:
        cursor = "-"
        while True:
            pending: list[dict[str, Any]] = self._redis.xpending_range(
                self.options.stream,
                self.options.group,
                min=cursor,
                max="+",
                count=1000,
                consumername=self.member,
            )
            ids = [p["message_id"] for p in pending if parse_id(p["message_id"]) <= last]
            if ids:
                self._redis.xack(self.options.stream, self.options.group, *ids)
            if len(pending) < 1000 or len(ids) < len(pending):
                return
            cursor = "(" + entry_text(pending[-1]["message_id"])

    # ------------------------------------------------------------ reading

    def _read(self, stream_id: bytes | str, count: int, block: int | None) -> list[Entry]:
        response: Any = self._redis.xreadgroup(
            self.options.group, self.member, {self.options.stream: stream_id}, count=count, block=block
        )
        if not response:
            return []
        if isinstance(response, dict):  # RESP3
            found: Any = next(iter(response.values()), [])
            return list(found[0] if found and isinstance(found[0], list) else found)
        return list(response[0][1])

    replays_exactly = True  # `until` names the batch's last entry id

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False, until: Any = None) -> SourceBatch:
        size = self.options.batch_size
        entries: list[Entry] = []
        replayed = False
        if isinstance(until, dict):  # a replay: up to the entry an earlier run's batch ended at (None: no entry yet)
            if until.get("id"):
                entries = self.retrier("reading a replayed batch", lambda: self._read_through(parse_id(until["id"])))
            replayed = True
        elif self._pending_cursor is not None:  # an earlier run's unacknowledged entries, in batches of their own
            cursor = self._pending_cursor
            entries = self.retrier("reading pending entries", lambda: self._read(cursor, size, None))
            replayed = bool(entries)
            self._pending_cursor = entries[-1][0] if entries else None
        fresh = not replayed and not self._drained
        if fresh:
            block = max(1, batch_interval_ms) if realtime and not self.options.bounded else None
            entries = self.retrier("reading new entries", lambda: self._read(">", size, block))
            if self.options.bounded and not entries:
                self._drained = True
        frame, letters = self._decode(entries)
        max_event = reported = max_event_time_ms(frame, self.definition)
        if entries:
            last = parse_id(entries[-1][0])
            self._last_id = last if self._last_id is None else max(self._last_id, last)
            self._inflight.append(Delivered(last, [e[0] for e in entries], frame.height, max_event))
        if isinstance(until, dict):  # an empty batch replays the event time the earlier run's reported
            reported = max_event if entries else until.get("event_ms")
        elif self._shares_time:
            reported = self._share_time(max_event) if entries else self._group_time() if fresh else None
        if reported is not None:
            self._event_ms = reported if self._event_ms is None else max(self._event_ms, reported)
        return SourceBatch(
            frame=frame,
            exhausted=self._exhausted(),
            offset=self._offset(),
            dead_letters=letters,
            max_event_time_ms=reported,
            replayed=replayed,
        )

    def _share_time(self, max_event: int | None) -> int | None:
        """Publish the newest event time this member was delivered, for idle members (module doc)."""
        if max_event is not None and (self._seen_ms is None or max_event > self._seen_ms):
            self.retrier(
                "publishing the event time read", lambda: self._redis.hset(self.seen_key, self.member, max_event)
            )
            self._seen_ms = max_event
        return max_event

    def _group_time(self) -> int | None:
        """An idle member (every entry the stream holds went to some member): the newest event time delivered
        to any member, so that it does not hold the query watermark back (module doc)."""
        seen = self.retrier("reading the group's event time", lambda: group_seen_ms(self._redis, self.seen_key))
        return seen if seen is not None and (self._event_ms is None or seen > self._event_ms) else None

    def _read_through(self, last: StreamId) -> list[Entry]:
        """This consumer's entries after the current position up to `last`: its pending ones, then new ones.

        The lost run read them, so they are pending for this consumer, unless
        it died before they were delivered; then they are read as new ones,
        counted first so the read stops exactly at `last`.
        """
        entries: list[Entry] = []
        cursor: bytes | str = format_id(self._last_id) if self._last_id is not None else "0"
        while True:
            found = [e for e in self._read(cursor, self.options.batch_size, None) if parse_id(e[0]) <= last]
            if not found:
                break
            entries += found
            cursor = found[-1][0]
            if parse_id(cursor) >= last:
                break
        got = parse_id(entries[-1][0]) if entries else self._last_id
        if (got is None or got < last) and self.definition.split is None:
            start = "-" if got is None else "(" + format_id(got)
            missing = len(cast("list[Entry]", self._redis.xrange(self.options.stream, min=start, max=format_id(last))))
            if missing:
                entries += self._read(">", missing, None)
        if self._pending_cursor is not None and entries:
            self._pending_cursor = entries[-1][0]  # what was replayed is not pending any more
        return entries

    def _exhausted(self) -> bool:
        if not self.options.bounded or self._pending_cursor is not None:
            return False
        if self._drained or self._end is None:
            return True
        return self._last_id is not None and self._last_id >= self._end

    def _offset(self) -> dict[str, Any] | None:
        if self._last_id is None and self._event_ms is None:
            return None
        return {"id": None if self._last_id is None else format_id(self._last_id), "event_ms": self._event_ms}

    # ------------------------------------------------------------ decoding

    def _decode(self, entries: list[Entry]) -> tuple[pl.DataFrame, list[DeadLetter]]:
        if not entries:
            return empty_frame(self._schema), []
        entries, lost = _split_trimmed(entries)
        letters = [self._letter(entry_id, "", TRIMMED) for entry_id, _ in lost]
        if lost:
            self.trimmed += len(lost)
            log.warning(
                "%s: %d pending entries of stream '%s' were trimmed (XTRIM, MAXLEN or XDEL) before they "
                "were read again, the first %s; their records are lost, each one is a dead letter",
                self._what,
                len(lost),
                self.options.stream,
                entry_text(lost[0][0]),
            )
        if not entries:
            return empty_frame(self._schema), letters
        if self.options.format == "fields":
            frame, more = self._decode_fields(entries)
        else:
            frame, more = self._decode_json(entries)
        return frame, sorted(letters + more, key=lambda d: parse_id(d.position.rsplit(":", 1)[1]))

    def _letter(self, entry_id: bytes, raw: str, reason: str) -> DeadLetter:
        return DeadLetter(self.definition.name, f"{self.options.stream}:{entry_text(entry_id)}", raw, reason)

    @staticmethod
    def _fields_json(fields: dict[bytes, bytes]) -> str:
        return json.dumps({entry_text(k): entry_text(v) for k, v in fields.items()}, ensure_ascii=False)

    def _decode_json(self, entries: list[Entry]) -> tuple[pl.DataFrame, list[DeadLetter]]:
        key = self.options.field.encode()
        lines: list[bytes] = []
        letters: list[DeadLetter] = []
        for entry_id, fields in entries:
            value = fields.get(key) if fields else None
            if value is None and fields:
                letters.append(
                    self._letter(entry_id, self._fields_json(fields), f"entry has no '{self.options.field}' field")
                )
            # one entry, one line: JSON needs no raw newlines outside strings (and allows none inside)
            lines.append(b"" if value is None else value.replace(b"\r", b" ").replace(b"\n", b" "))
        decoded = decode_ndjson(
            b"\n".join(lines),
            self._schema,
            source=self.definition.name,
            origin=self.options.stream,
            full_schema=self.definition.schema,
        )
        for letter in decoded.dead_letters:
            line = int(letter.position.rsplit(":", 1)[1])
            letters.append(
                DeadLetter(
                    letter.source,
                    f"{self.options.stream}:{entry_text(entries[line - 1][0])}",
                    letter.raw,
                    letter.reason,
                )
            )
        return decoded.frame, letters

    def _decode_fields(self, entries: list[Entry]) -> tuple[pl.DataFrame, list[DeadLetter]]:
        schema = with_checked(self._schema, self.definition.schema)
        names = list(schema.names)
        keys = [n.encode() for n in names]
        columns: dict[str, list[str | None]] = {n: [] for n in names}
        kept: list[tuple[bytes, str]] = []
        letters: list[DeadLetter] = []
        for entry_id, fields in entries:
            assert fields is not None  # `_decode` split off the trimmed entries, the ones without fields
            try:
                values = [None if fields.get(k) is None else fields[k].decode("utf-8") for k in keys]
            except UnicodeDecodeError as e:
                bad = next(n for n, k in zip(names, keys) if _invalid_utf8(fields.get(k)))
                letters.append(
                    self._letter(entry_id, self._fields_json(fields), f"field '{bad}': invalid UTF-8 at byte {e.start}")
                )
                continue
            for name, value in zip(names, values):
                columns[name].append(value)
            kept.append((entry_id, self._fields_json(fields)))
        frame = (
            pl.DataFrame({n: pl.Series(n, v, dtype=pl.String) for n, v in columns.items()})
            if names
            else pl.DataFrame(height=len(kept))
        )
        decoded = narrow(
            conform(
                frame,
                schema,
                source=self.definition.name,
                origin=self.options.stream,
                # the position is the entry id, not a line number: conform only formats it
                locate=lambda i: (entry_text(kept[i][0]), kept[i][1].encode()),  # type: ignore[arg-type, return-value]
            ),
            self._schema,
        )
        return decoded.frame, letters + list(decoded.dead_letters)

    # ------------------------------------------------------------ commit

    def commit(self, offset: Any, keep_from_ms: int | None = None) -> None:
        """Acknowledge the batches up to `offset` that no open window needs; save this member's progress."""
        if not isinstance(offset, dict) or self._client is None:
            return
        upto = parse_id(offset["id"]) if offset.get("id") else None
        release = [d for d in self._inflight if upto is not None and d.last_id <= upto and _releasable(d, keep_from_ms)]
        saved = (offset.get("id"), offset.get("event_ms"))
        if not release and not self._inflight and saved == self._saved:
            return
        self._inflight = [d for d in self._inflight if d not in release]
        ids = [i for d in release for i in d.ids]
        progress: dict[FieldT, EncodableT] = {"members": ",".join(self.members.names)}
        if saved[0] is not None:
            progress[f"id:{self.member}"] = saved[0]
        if saved[1] is not None:
            progress[f"event_ms:{self.member}"] = str(saved[1])

        def run() -> None:
            pipe = self._redis.pipeline(transaction=True)
            for start in range(0, len(ids), 10000):
                pipe.xack(self.options.stream, self.options.group, *ids[start : start + 10000])
            pipe.hset(self.progress_key, mapping=progress)
            pipe.execute()

        self.retrier("acknowledging entries", run)
        self._saved = saved

    def backlog(self) -> dict[str, int]:
        """The group's pending entries (delivered, not acknowledged) and the stream's length. The parts of a
        split stream add up (`executor.query.progress.add_backlog`): each reports its own pending entries,
        and the first one the stream's length."""

        def read() -> dict[str, int]:
            assert self._client is not None  # open() connected
            pending = self._client.xpending(self.options.stream, self.options.group)
            if self.definition.split is None:
                return {
                    "pending": int(pending["pending"]),
                    "stream_length": int(self._client.xlen(self.options.stream)),
                }
            mine = sum(
                int(c["pending"]) for c in pending.get("consumers") or () if entry_text(c["name"]) == self.member
            )
            if self.definition.split[0] != 0:
                return {"pending": mine}
            return {"pending": mine, "stream_length": int(self._client.xlen(self.options.stream))}

        return self.retrier("reading the backlog", read)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None


TRIMMED = (
    "entry was trimmed from the stream (XTRIM, MAXLEN or XDEL) while it was pending, before it was "
    "read again: its record is lost"
)


def _split_trimmed(entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """Entries that still hold their fields, and pending ones the stream no longer has (Redis returns no fields)."""
    if all(fields for _, fields in entries):
        return entries, []
    return [e for e in entries if e[1]], [e for e in entries if not e[1]]


def _invalid_utf8(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        value.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


def _releasable(batch: Delivered, keep_from_ms: int | None) -> bool:
    """Whether no open window can hold rows of `batch` (see `base.CommittingSource.commit`)."""
    if keep_from_ms is None or batch.rows == 0:
        return True
    return batch.max_event_ms is not None and batch.max_event_ms < keep_from_ms


def make_source(definition: SourceDef) -> RedisSource:
    return RedisSource(definition)


def make_sink(definition: SinkDef) -> RedisSink:
    return RedisSink(definition)
