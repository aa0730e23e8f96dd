"""The `kafka` source: the partitions of one or more topics, read with `assign()` at known offsets.

Options:
- `bootstrap_servers` ('127.0.0.1:9092'), `topic` (required; several,
  comma separated, are read as one stream), `group` (the consumer group
  whose offsets this query commits; default 'stream-dsl-<stream name>').
- `partitions`: read only these partitions ('0,2', or 'orders:0,orders:2'
  with several topics); default all. A partition is a source partition:
  readers of disjoint partition lists can share a topic.
- `splits` ('N' or 'workers', see docs/connectors.md): read the stream in
  parts, each by its own map task every batch. Part i of n reads the
  partitions at positions i, i + n, ... of the stream's partitions sorted
  by (topic, number), after `partitions` chose them; each part has its own
  consumer, offsets, checkpointed offset, progress record and event time.
  A part given no partition (more parts than partitions) reads nothing and
  is exhausted from its first batch, bounded or not, so it never holds the
  watermark back; partitions added to a topic later are not read until the
  query restarts (a topic's new partitions sort after its old ones, so with
  one topic no partition moves to another part).
- `start`: where a group with no committed offsets starts: 'earliest'
  (default), 'latest', or a timestamp (epoch milliseconds or ISO-8601),
  resolved with the broker's offsets-for-times (tansu ignores the time and
  answers the first offset). A partition nothing was read from yet is
  resolved again when a checkpoint is restored.
- `format`: 'json' (one JSON object per message) or 'csv' (one CSV record
  per message, the value columns in declared order, no header).
- `batch_size` (10000 messages per micro-batch), `bounded` ('false'; 'true'
  ends the source once every partition was read to its end, for collect()
  and tests), `retry_seconds` ('30': how long an unreachable broker is
  waited for before the query fails), `progress_topic`
  ('stream-dsl-progress', see `progress.py`).
- Metadata columns: a declared column named `kafka_partition`,
  `kafka_offset`, `kafka_timestamp` (TIMESTAMP; the message's timestamp,
  usable as event time with a WATERMARK) or `kafka_key` (STRING) is filled
  from the message, not from its value.

Offsets are `{"offsets": {"topic:partition": next offset}, "event_ms": event
time reached, "partition_ms": {partition: newest event time}}`: the end of
the batch, what a checkpoint restores. The offset log keeps the batch's
ends per partition, and a replay (`until`) reads each partition exactly up
to its logged end offset, nothing beyond (the first message past it is read
again later).

Event time: partitions are read unevenly (one fetch may bring a whole
partition before the next starts), so the source reports as its event time
the oldest of its partitions' newest event times (`reports_event_time`),
like per-partition watermarks. Every partition must deliver a record
before event time moves at all; an idle partition holds it back.

Committing: `commit(offset, keep_from_ms)` (called after the batch's output
and dead letters are durable, after a checkpoint when there is one) commits
to the consumer group the end offsets of the oldest batches that no open
window needs; first it appends the group's progress (offsets, event time,
how far it had read) to the progress topic (`progress.py`: tansu drops commit
metadata; each part of a split stream notes its own partitions). A query
restarted without a checkpoint starts there, reads the records up to where
the previous run had read as `replayed` batches, and resumes from that
event time (`restored_max_event_ms`).

Progress: `backlog()` gives the consumer lag (`lag`): messages between this source's
position and each partition's end, from the last fetch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import polars as pl

from stream_dsl.connectors.base import NOTHING_TO_READ_MS, DeadLetter, SourceBatch, read_schema
from stream_dsl.connectors.files import max_event_time_ms
from stream_dsl.connectors.kafka.common import KafkaError, KafkaException, Outage, ck, client_config, metadata
from stream_dsl.connectors.kafka.messages import decode_messages, parse_part, part_name
from stream_dsl.connectors.kafka.options import SOURCE_OPTIONS, SourceOptions
from stream_dsl.connectors.kafka.progress import ProgressLog
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import Schema

__all__ = ["KafkaSource", "SourceOptions", "SOURCE_OPTIONS"]

POLL_S = 0.1  # one consume() call's wait when the batch may end sooner


@dataclass(slots=True)
class Delivered:
    """A batch read and not yet committed: where it ended, its good rows and newest event time."""

    ends: dict[str, int]
    rows: int
    max_event_ms: int | None


class KafkaSource:
    """Reads assigned partitions at explicit offsets (see the module doc)."""

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self.options = SourceOptions.parse(definition)
        self._what = f"source '{definition.name}'"
        self._schema: Schema = definition.schema
        self.outage = Outage(self._what, self.options.bootstrap, self.options.retry_seconds)
        self.progress = ProgressLog(
            self.options.bootstrap,
            self.options.progress_topic,
            f"{self.options.group}/{','.join(sorted(self.options.topics))}",
            self._what,
            self.outage,
            definition.split,
        )
        self._consumer: Any = None
        self.restored_max_event_ms: int | None = None
        self._position: dict[str, int] = {}  # next offset to read, per partition
        self._replay_to: dict[str, int] = {}  # records a previous run read: replayed batches up to here
        self._eof: set[str] = set()
        self._event_ms: int | None = None
        self._inflight: list[Delivered] = []
        self._committed: dict[str, int] = {}
        self._part_ms: dict[str, int] = {}  # newest event time per partition (see `_event_time`)

    @property
    def bounded(self) -> bool:
        return self.options.bounded

    @property
    def retries(self) -> int:
        return self.outage.retries

    def partitions(self) -> list[str]:
        """The partitions this source reads ('topic:partition'), once open."""
        return sorted(self._position, key=parse_part)

    # ------------------------------------------------------------ open

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        self._schema = read_schema(self.definition, columns, self._what)
        opts = self.options
        self._consumer = ck.Consumer(
            client_config(
                opts.bootstrap,
                self.outage,
                {
                    "group.id": opts.group,
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 50,
                    "session.timeout.ms": 6000,
                },
            )
        )
        found = metadata(self._consumer, opts.topics, self._what, opts.bootstrap, opts.retry_seconds)
        parts = [part_name((t, p)) for t in opts.topics for p in found[t]]
        if opts.partitions is not None:
            missing = [p for p in opts.partitions if p not in parts]
            if missing:
                raise ConnectorError(f"{self._what}: no partition {missing[0]}; the topics have {', '.join(parts)}")
            parts = list(opts.partitions)
        parts = my_partitions(parts, self.definition.split)
        self._eof, self._inflight = set(), []
        self._part_ms = {}
        if isinstance(offset, dict) and isinstance(offset.get("offsets"), dict):  # from a checkpoint
            self._position = {p: int(offset["offsets"].get(p, -2)) for p in parts}
            self._event_ms = offset.get("event_ms")
            self._part_ms = {p: int(ms) for p, ms in (offset.get("partition_ms") or {}).items() if p in parts}
            unknown = [p for p, o in self._position.items() if o < 0]
            if unknown:
                self._position.update(self._starting(unknown))
        else:
            self._position = self._from_group(parts)
        self._consumer.assign([ck.TopicPartition(*parse_part(p), o) for p, o in self._position.items()])

    def _call(self, action: str, call: Any) -> Any:
        """A blocking client call, retried while the broker is unreachable for up to retry_seconds."""
        deadline = time.monotonic() + self.options.retry_seconds
        while True:
            try:
                return call()
            except KafkaException as e:
                error = e.args[0] if e.args else None
                retriable = isinstance(error, KafkaError) and (
                    error.retriable()
                    or error.code() in (KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
                )
                if not retriable or time.monotonic() >= deadline:
                    raise ConnectorError(
                        f"{self._what}: Kafka at {self.options.bootstrap} failed {action}: "
                        f"{error.str() if isinstance(error, KafkaError) else e}"
                    ) from None
                time.sleep(0.2)

    def _from_group(self, parts: list[str]) -> dict[str, int]:
        """Where the group got to (its progress record, else its committed offsets); elsewhere `start`."""
        if not parts:  # a part of a split stream with no partition to read: never holds a restart back
            self.restored_max_event_ms = NOTHING_TO_READ_MS
            return {}
        note = self.progress.load(parts)
        position: dict[str, int] = {}
        if note is not None:
            position = {p: int(o) for p, o in note["offsets"].items() if p in parts}
            if note.get("event_ms") is not None:
                self.restored_max_event_ms = int(note["event_ms"])
            self._part_ms = {p: int(ms) for p, ms in (note.get("partition_ms") or {}).items() if p in parts}
            self._replay_to = {
                p: int(e) for p, e in (note.get("read") or {}).items() if p in position and int(e) > position[p]
            }
        else:
            tps = [ck.TopicPartition(*parse_part(p)) for p in parts]
            committed = self._call("reading the group's offsets", lambda: self._consumer.committed(tps, timeout=10))
            position = {part_name((tp.topic, tp.partition)): tp.offset for tp in committed if tp.offset >= 0}
        self._event_ms = self.restored_max_event_ms
        self._committed = dict(position)
        missing = [p for p in parts if p not in position]
        if missing:
            position.update(self._starting(missing))
        return position

    def _starting(self, parts: list[str]) -> dict[str, int]:
        start = self.options.start
        if start == "earliest":
            return {p: ck.OFFSET_BEGINNING for p in parts}
        if start == "latest":
            return {p: ck.OFFSET_END for p in parts}
        tps = [ck.TopicPartition(*parse_part(p), int(start)) for p in parts]
        found = self._call("looking up offsets for a time", lambda: self._consumer.offsets_for_times(tps, timeout=10))
        return {part_name((tp.topic, tp.partition)): (tp.offset if tp.offset >= 0 else ck.OFFSET_END) for tp in found}

    # ------------------------------------------------------------ reading

    replays_exactly = True  # `until` holds every partition's end offset
    reports_event_time = True  # SourceBatch.max_event_time_ms is `_event_time()`, None while a partition lags

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False, until: Any = None) -> SourceBatch:
        logged = isinstance(until, dict) and isinstance(until.get("offsets"), dict)
        if logged:
            ends = {p: int(o) for p, o in until["offsets"].items() if p in self._position}
            messages = self._read_until(ends)
            replayed = True
        elif self._replay_to:  # a previous run read these and never committed them: they rebuild state
            messages = self._read_until(dict(self._replay_to), limit=self.options.batch_size)
            self._replay_to = {p: e for p, e in self._replay_to.items() if self._at(p) < e}
            replayed = bool(messages)
        else:
            messages, replayed = [], False
        if not replayed and self._position:
            wait = batch_interval_ms / 1000 if not self.options.bounded else self.options.retry_seconds
            messages = self._read_new(wait)
        frame, letters, parts = self._decode(messages)
        self._observe(frame, parts)
        event_ms = self._event_time()
        if event_ms is not None:
            self._event_ms = event_ms if self._event_ms is None else max(self._event_ms, event_ms)
        if messages:
            self._inflight.append(Delivered(self._ends(), frame.height, max_event_time_ms(frame, self.definition)))
        # a replay ends the source where the logged batch did: whether partitions are at their end now is
        # a matter of timing (more may have arrived), and an earlier end would close windows in another batch
        exhausted = bool(until.get("exhausted")) if logged else self._exhausted()
        return SourceBatch(
            frame=frame,
            exhausted=exhausted,
            offset=self._offset(),
            dead_letters=letters,
            max_event_time_ms=event_ms,
            replayed=replayed,
            replay={"offsets": self._ends(), "exhausted": exhausted},
        )

    def _observe(self, frame: pl.DataFrame, parts: list[str]) -> None:
        """Each partition's newest event time so far (`parts`: the partition of each row)."""
        wm = self.definition.watermark
        if wm is None or wm.column not in frame.columns or not frame.height:
            return
        newest = (
            pl.DataFrame({"p": parts, "t": frame.get_column(wm.column).cast(pl.Int64)})
            .group_by("p")
            .agg(pl.col("t").max())
        )
        for part, ms in newest.iter_rows():
            if ms is not None:
                self._part_ms[part] = max(self._part_ms.get(part, ms), ms)

    def _event_time(self) -> int | None:
        """The event time the source has reached: the oldest of its partitions' newest event times.

        Partitions are read unevenly (a fetch may bring one partition's
        records well ahead of another's), so the newest event time of the
        whole batch would make the slower partitions' records late. Like a
        Kafka reader's per-partition watermarks, this waits for every
        partition: one that has delivered nothing yet holds event time back.
        """
        if not self._part_ms or any(p not in self._part_ms for p in self._position):
            return None
        return min(self._part_ms[p] for p in self._position)

    def _at(self, part: str) -> int:
        return self._position.get(part, 0)

    def _ends(self) -> dict[str, int]:
        return {p: o for p, o in self._position.items() if o >= 0}

    def _consume(self, count: int, timeout: float) -> list[Any]:
        """Up to `count` messages; partition ends noted, errors raised or waited out."""
        try:
            found = self._consumer.consume(count, timeout)
        except KafkaException as e:
            raise ConnectorError(f"{self._what}: Kafka read failed: {e}") from None
        messages = []
        last: dict[tuple[str, int], int] = {}  # per partition: the offset after its last message
        ended: dict[tuple[str, int], bool] = {}  # per partition: whether its last event was its end
        for m in found:
            error = m.error()
            if error is None:
                messages.append(m)
                key = (m.topic(), m.partition())
                last[key] = m.offset() + 1
                ended[key] = False
            elif error.code() == KafkaError._PARTITION_EOF:
                ended[(m.topic(), m.partition())] = True
            elif error.code() in (
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError._UNKNOWN_TOPIC,
                KafkaError._UNKNOWN_PARTITION,
            ):
                raise ConnectorError(
                    f"{self._what}: topic '{m.topic()}' is gone from Kafka at {self.options.bootstrap}: {error.str()}"
                )
            elif error.code() == KafkaError.OFFSET_OUT_OF_RANGE:
                raise ConnectorError(
                    f"{self._what}: offset {m.offset()} of {m.topic()}:{m.partition()} is no "
                    f"longer on the broker (deleted by retention?): {error.str()}"
                )
            else:
                self.outage.on_error(error)
        if messages:
            self.outage.ok()
        for key, offset in last.items():
            self._position[part_name(key)] = offset
        for key, at_end in ended.items():
            (self._eof.add if at_end else self._eof.discard)(part_name(key))
        return messages

    def _probe(self) -> None:
        self._consumer.list_topics(self.options.topics[0], timeout=1.0)

    def _read_new(self, wait_s: float) -> list[Any]:
        """Up to batch_size new messages: waits up to `wait_s`, or (bounded) until every partition ended."""
        size = self.options.batch_size
        deadline = time.monotonic() + wait_s
        messages: list[Any] = []
        while len(messages) < size:
            if self.options.bounded and self._all_ended():
                break
            left = deadline - time.monotonic()
            got = self._consume(size - len(messages), max(0.0, min(POLL_S, left)))
            messages += got
            if not got:
                self.outage.check(self._probe)
                if left <= 0:
                    break
        return messages

    def _read_until(self, ends: dict[str, int], limit: int | None = None) -> list[Any]:
        """The messages from the current position up to `ends` (exclusive), per partition, nothing beyond."""
        messages: list[Any] = []
        todo = {p for p, e in ends.items() if self._at(p) < e}
        others = [p for p in self._position if p not in todo]
        if not todo:
            return messages
        self._pause(others)
        try:
            deadline = time.monotonic() + max(self.options.retry_seconds, 1.0)
            while todo and (limit is None or len(messages) < limit):
                got = self._consume(1000 if limit is None else min(1000, limit - len(messages)), POLL_S)
                rewind: dict[str, int] = {}  # partition -> its first message past this batch: read it again later
                for m in got:
                    name = part_name((m.topic(), m.partition()))
                    if name in todo and name not in rewind and m.offset() < ends[name]:
                        messages.append(m)
                    elif name not in rewind:
                        rewind[name] = m.offset()
                for name, offset in rewind.items():
                    self._position[name] = offset
                    self._seek(name, offset)
                for p in list(todo):
                    if self._at(p) >= ends[p]:
                        todo.discard(p)
                        self._pause([p])
                if not got:
                    self.outage.check(self._probe)
                    if todo and all(p in self._eof for p in todo) and time.monotonic() >= deadline:
                        raise ConnectorError(
                            f"{self._what}: cannot replay up to offsets {ends}: the partitions "
                            f"end before them (was the topic recreated?)"
                        )
                else:
                    deadline = time.monotonic() + max(self.options.retry_seconds, 1.0)
        finally:
            self._resume(list(self._position))
        return messages

    def _pause(self, parts: list[str]) -> None:
        if parts:
            self._consumer.pause([ck.TopicPartition(*parse_part(p)) for p in parts])

    def _resume(self, parts: list[str]) -> None:
        if parts:
            self._consumer.resume([ck.TopicPartition(*parse_part(p)) for p in parts])

    def _seek(self, part: str, offset: int) -> None:
        self._eof.discard(part)
        self._call("seeking", lambda: self._consumer.seek(ck.TopicPartition(*parse_part(part), offset)))

    def _all_ended(self) -> bool:
        return all(p in self._eof for p in self._position)

    def _exhausted(self) -> bool:
        """Bounded: every partition read to its end. A part of a split stream that was given no partition
        (more parts than partitions) is exhausted from the start, bounded or not: it never reads anything, and
        an exhausted source no longer holds the query's watermark back."""
        if not self._position:
            return True
        return self.options.bounded and not self._replay_to and self._all_ended()

    def _offset(self) -> dict[str, Any]:
        return {"offsets": self._ends(), "event_ms": self._event_ms, "partition_ms": dict(self._part_ms)}

    def backlog(self) -> dict[str, int] | None:
        """Consumer lag (`lag`): messages after this source's position, from the partitions' last fetched end
        offsets."""
        if self._consumer is None:
            return None
        total, known = 0, False
        for part, at in self._position.items():
            try:
                low, high = self._consumer.get_watermark_offsets(ck.TopicPartition(*parse_part(part)), cached=True)
            except KafkaException:
                continue
            if high is None or high < 0:
                continue
            known = True
            total += max(0, high - max(at, low))
        return {"lag": total} if known else None

    def _decode(self, messages: list[Any]) -> tuple[pl.DataFrame, list[DeadLetter], list[str]]:
        return decode_messages(messages, self._schema, self.definition, self.options.format, self._what)

    # ------------------------------------------------------------ commit

    def commit(self, offset: Any, keep_from_ms: int | None = None) -> None:
        """Commit to the group the end of the oldest delivered batches no open window needs (module doc)."""
        if not isinstance(offset, dict) or self._consumer is None or not self._inflight:
            return
        upto = offset.get("offsets") or {}
        released: Delivered | None = None
        while self._inflight:
            batch = self._inflight[0]
            if any(o > upto.get(p, -1) for p, o in batch.ends.items()) or not _releasable(batch, keep_from_ms):
                break
            released = self._inflight.pop(0)
        if released is None:
            return
        tps = [ck.TopicPartition(*parse_part(p), o) for p, o in released.ends.items() if self._committed.get(p) != o]
        if not tps:
            return
        committed = {**self._committed, **released.ends}
        self.progress.save(
            {
                "offsets": committed,
                "event_ms": offset.get("event_ms"),
                "partition_ms": offset.get("partition_ms") or {},
                "read": self._read_positions(),
            }
        )
        self._call("committing offsets", lambda: self._consumer.commit(offsets=tps, asynchronous=False))
        self._committed = committed

    def _read_positions(self) -> dict[str, int]:
        return {p: o for p, o in self._position.items() if o >= 0}

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:
                pass
            self._consumer = None
        self.progress.close()


def my_partitions(parts: list[str], split: tuple[int, int] | None) -> list[str]:
    """The partitions one part of a split stream reads: of the stream's partitions in (topic, number) order,
    part i of n takes those at positions i, i + n, i + 2n, ..."""
    ordered = sorted(parts, key=parse_part)
    if split is None:
        return ordered
    index, count = split
    return ordered[index::count]


def _releasable(batch: Delivered, keep_from_ms: int | None) -> bool:
    """Whether no open window can hold rows of `batch` (see `base.CommittingSource.commit`)."""
    if keep_from_ms is None or batch.rows == 0:
        return True
    return batch.max_event_ms is not None and batch.max_event_ms < keep_from_ms
