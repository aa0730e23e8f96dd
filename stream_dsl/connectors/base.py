"""The interface between connectors and executors.

A `Source` hands out micro-batches as polars frames in its declared schema
(TIMESTAMP as `Datetime("ms")`), with the records it could not read as dead
letters. A `Sink` receives each batch's result once per batch id; writing
the same batch id again replaces, never duplicates. Connectors are found by
the `connector` option of a SourceDef or SinkDef through `open_source` and
`open_sink` in `stream_dsl.connectors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import Schema


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be read: the raw text, where it came from, and why."""

    source: str
    position: str
    raw: str
    reason: str


@dataclass(slots=True)
class SourceBatch:
    """One micro-batch of a source.

    `frame` has exactly the requested columns, typed as declared; it may be
    empty when nothing new arrived. `exhausted` is True once a bounded
    source has nothing more (this batch may still carry rows). `offset`
    is the position after this batch, JSON-serializable, for checkpoints.
    `replayed` marks a batch of records an earlier run read but never
    committed, delivered again after a restart (see `CommittingSource`).
    """

    frame: pl.DataFrame
    exhausted: bool = False
    offset: Any = None
    dead_letters: list[DeadLetter] = field(default_factory=list)
    max_event_time_ms: int | None = None
    replayed: bool = False
    replay: Any = None  # what `next_batch(until=...)` needs to cut this batch again (None: the offset)
    wall_offset_ms: int | None = None  # a live source: event time + this = when the event was due on the wall clock
    scan: Any = None  # files: the batch's rows as a lazy parquet scan, not read yet (frame empty; parquet_scan.py)
    mapped: Any = None  # the source task's output, run fused with the read (`executor/query/fused_read.py`)
    rows_read: int | None = None  # with `mapped`: the rows read (frame holds none)
    read_with: int = 1  # the batches whose source tasks ran in one query with this one (`fused_group.py`)

    @property
    def rows(self) -> int:
        """The rows the source read for this batch."""
        return self.frame.height if self.rows_read is None else self.rows_read


class Source(Protocol):
    definition: SourceDef

    @property
    def bounded(self) -> bool:
        """True when the source ends by itself (files present at start, a generator with a count)."""

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        """Prepare to read only `columns` (None: all), resuming after `offset` if given."""

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False) -> SourceBatch:
        """The next micro-batch. With `realtime` a source may wait to pace itself to the wall clock."""

    def close(self) -> None: ...

    # Optional: `backlog() -> dict[str, int]`, what the source knows is waiting to be read (Redis: pending
    # entries and stream length; files: files not read yet), reported in every progress dict.
    # Optional: `replays_from_start = True`: without a checkpoint a new run reads again what an earlier run
    # read (files, the generator, in-memory frames). Sources that keep their readers' progress themselves
    # (Kafka, Redis Streams) or never replay (a socket) leave it out.


def replays_from_start(source: Any) -> bool:
    """Whether a run of `source` without a checkpoint reads again what an earlier run read (see `Source`)."""
    return getattr(source, "replays_from_start", False) is True


def source_backlog(source: Any) -> dict[str, int] | None:
    """What `source` knows is still waiting to be read (its `backlog()` hook, see `Source`), or None when it
    cannot tell; a failing hook only means no number."""
    hook = getattr(source, "backlog", None)
    if not callable(hook):
        return None
    try:
        value = hook()
    except Exception:
        return None
    return value if isinstance(value, dict) else None


def source_schema(definition: SourceDef, what: str) -> Schema:
    """The declared schema with each TIMESTAMP column's epoch unit (the `timestamp_unit` option) set."""
    from stream_dsl.connectors.timestamps import parse_units, with_units

    units = parse_units(definition.option("timestamp_unit"), definition.schema, what)
    return with_units(definition.schema, units)


def read_schema(definition: SourceDef, columns: list[str] | None, what: str) -> Schema:
    """The schema `Source.open(columns)` reads: the requested columns (None: all), each one checked.

    TIMESTAMP columns carry the unit the `timestamp_unit` option declares (see `timestamps.py`).
    """
    schema = source_schema(definition, what)
    if columns is None:
        return schema
    missing = [c for c in columns if c not in schema]
    if missing:
        raise ConnectorError(f"{what}: no column '{missing[0]}'; columns: {', '.join(schema.names)}")
    return schema.select(columns)


class TableSource(Protocol):
    """A static table, read once per query."""

    definition: SourceDef

    def read(self, columns: list[str] | None = None) -> pl.DataFrame: ...


class Sink(Protocol):
    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        """Write one batch's output; idempotent per batch id."""

    def close(self) -> None: ...


# ---------------------------------------------------------------- optional hooks
#
# Executors look these up on any source or sink; one without them works as
# before. The functions below are what executors call.

# `commit(offset, keep_from_ms=KEEP_ALL)`: operator state may need every record delivered so far.
KEEP_ALL = -(2**62)
# `restored_max_event_ms` of a source that reads nothing at all (a part of a split stream given no partition):
# +inf (the executors' WM_INF), so it never holds back the watermark a restart resumes from.
NOTHING_TO_READ_MS = 2**62


class CommittingSource(Protocol):
    """A source that can release (acknowledge) what it delivered, and replay the rest after a restart."""

    restored_max_event_ms: int | None
    """After open(): the largest event time a previous run committed (None: no previous run).

    Its records not released come first, in batches marked `replayed` (never
    the last, exhausted batch); an executor without a checkpoint rebuilds
    its state from them, then drops the windows this watermark had closed
    (the previous run emitted them).
    """

    def commit(self, offset: Any, keep_from_ms: int | None = None) -> None:
        """Everything up to `offset` (a SourceBatch.offset) is in the sink, dead letters included.

        Rows with event time >= `keep_from_ms` may still be held in operator
        state (windows not yet emitted): keep the records of the batches that
        reach that far, so a restarted query reads them again. None: no state
        holds rows, release everything; KEEP_ALL: keep everything.
        """


class ResumableSink(Protocol):
    def last_batch_id(self) -> int | None:
        """The newest batch id this sink has committed (None: none).

        A query started again without a checkpoint continues after it, so its
        batches neither overwrite the old ones nor are skipped as replays of them.
        """


class ReplayingSource(Protocol):
    """A source that can cut a batch exactly where an earlier run cut it.

    `next_batch(batch_interval_ms, realtime=..., until=offset)` returns the
    records after the current position up to `offset` (a SourceBatch.offset
    an earlier run returned for this batch), however many arrived since. A
    recovering executor replays the batches after a checkpoint this way
    (`executor/offset_log.py`). A source whose batches depend only on its
    offset (the generator, a fixed set of files) cuts them alike anyway.
    """

    replays_exactly: bool  # True


def pull_source(source: Any, batch_interval_ms: int, *, realtime: bool = False, until: Any = None) -> SourceBatch:
    """The source's next batch; with `until`, the batch an earlier run cut there (if the source can)."""
    if until is not None and getattr(source, "replays_exactly", False):
        return source.next_batch(batch_interval_ms, realtime=realtime, until=until)
    return source.next_batch(batch_interval_ms, realtime=realtime)


def push_predicate(source: Any, predicate: Any) -> bool:
    """Offer the scan's predicate to the source's optional `push_predicate(expr) -> bool` hook: a source
    may then drop rows it knows the predicate rejects before it returns them (the scan still applies the
    predicate, so a source may keep any row). True when the source took it."""
    hook = getattr(source, "push_predicate", None)
    return bool(hook(predicate)) if predicate is not None and callable(hook) else False


def commit_source(source: Any, offset: Any, keep_from_ms: int | None = None) -> None:
    """Call the source's commit hook, if it has one."""
    commit = getattr(source, "commit", None)
    if commit is not None:
        commit(offset, keep_from_ms=keep_from_ms)


def restored_max_event_ms(source: Any) -> int | None:
    value = getattr(source, "restored_max_event_ms", None)
    return value if isinstance(value, int) else None


def next_batch_id(sink: Any) -> int:
    """The first batch id a new run writing to `sink` should use: 0, or one past its last commit."""
    last = getattr(sink, "last_batch_id", None)
    value = last() if callable(last) else None
    return 0 if value is None else int(value) + 1
