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

from stream_dsl.plan import SourceDef


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
    """

    frame: pl.DataFrame
    exhausted: bool = False
    offset: Any = None
    dead_letters: list[DeadLetter] = field(default_factory=list)
    max_event_time_ms: int | None = None


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


class TableSource(Protocol):
    """A static table, read once per query."""

    definition: SourceDef

    def read(self, columns: list[str] | None = None) -> pl.DataFrame: ...


class Sink(Protocol):
    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        """Write one batch's output; idempotent per batch id."""

    def close(self) -> None: ...
