"""In-memory streams, tables and sinks: the testing kit.

A stream registered here replays a list of polars frames, one frame per
micro-batch, so a test decides exactly which rows arrive in which batch.
An `Exception` in the list is raised when the source reaches it (an abort
marker). A memory stream is bounded (it ends after its last frame) unless
its options say `bounded = 'false'`; then it keeps returning empty batches,
like a live stream that went quiet.

A memory sink keeps every batch it is given by batch id (writing a batch id
again replaces it), readable with `sink_output(id)` or `sink_batches(id)`.

Options: `id` (the registry key; defaults to the stream, table or sink name),
`bounded` ('true' | 'false'), `batch_rows` (split every frame into batches of
at most this many rows).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any, Iterable, cast

import polars as pl

from stream_dsl.connectors.base import SourceBatch
from stream_dsl.connectors.statistics import Statistics, int_option
from stream_dsl.connectors.upserts import UPSERT
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SinkDef, SourceDef, Watermark
from stream_dsl.ir.types import Field, Schema, type_from_polars

_FRAMES: dict[str, list[pl.DataFrame | BaseException]] = {}
_SINKS: dict[str, dict[int, pl.DataFrame]] = {}
_LOCK = threading.Lock()
_IDS = itertools.count()

Batches = pl.DataFrame | Iterable[pl.DataFrame | BaseException]


def register(id: str, frames: Batches) -> str:
    """Store `frames` (one frame, or one frame per micro-batch) under `id`; returns `id`."""
    items: list[pl.DataFrame | BaseException] = [frames] if isinstance(frames, pl.DataFrame) else list(frames)
    for item in items:
        if not isinstance(item, (pl.DataFrame, BaseException)):
            raise ConnectorError(f"memory source '{id}': expected polars DataFrames, got {type(item).__name__}")
    with _LOCK:
        _FRAMES[id] = items
    return id


def unregister(id: str) -> None:
    with _LOCK:
        _FRAMES.pop(id, None)


def new_id(prefix: str = "mem") -> str:
    """A registry key no one else uses."""
    return f"__{prefix}_{next(_IDS)}"


def frames(id: str) -> list[pl.DataFrame]:
    """The frames registered under `id` (abort markers left out)."""
    return [f for f in _lookup(id) if isinstance(f, pl.DataFrame)]


def _lookup(id: str) -> list[pl.DataFrame | BaseException]:
    with _LOCK:
        if id not in _FRAMES:
            known = ", ".join(sorted(_FRAMES)) or "none"
            raise ConnectorError(f"no in-memory data registered under '{id}'; known: {known}")
        return _FRAMES[id]


def schema_of(frame: pl.DataFrame) -> Schema:
    """The SQL schema of a polars frame (TIMESTAMP columns become Datetime('ms') when read)."""
    try:
        return Schema(tuple(Field(name, type_from_polars(dtype)) for name, dtype in frame.schema.items()))
    except TypeError as exc:
        raise ConnectorError(f"cannot stream this frame: {exc}") from exc


def source_def(
    name: str,
    batches: Batches,
    *,
    kind: str = "stream",
    schema: Schema | None = None,
    watermark: Watermark | None = None,
    bounded: bool = True,
    **options: str,
) -> SourceDef:
    """Register `batches` and describe them as a memory stream (or table) called `name`."""
    id = register(new_id(name), batches)
    found = frames(id)
    if schema is None:
        if not found:
            raise ConnectorError(f"memory source '{name}' needs a schema when it has no frames")
        schema = schema_of(found[0])
    opts = {"connector": "memory", "id": id, **options}
    if not bounded:
        opts["bounded"] = "false"
    return SourceDef(name, kind, schema, tuple(sorted(opts.items())), watermark)


def _conform(frame: pl.DataFrame, definition: SourceDef, columns: list[str]) -> pl.DataFrame:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConnectorError(
            f"memory source '{definition.name}': frame has no column(s) {', '.join(missing)}; "
            f"it has {', '.join(frame.columns)}"
        )
    schema = definition.schema
    dtypes = [schema.dtype(c).polars for c in columns]
    if frame.columns == columns and frame.dtypes == dtypes:
        return frame.clone()  # nothing to select or cast: no polars query (~40 us, a micro-batch's map task's tenth)
    try:
        return frame.select([pl.col(c).cast(t) for c, t in zip(columns, dtypes)])
    except pl.exceptions.PolarsError as exc:
        raise ConnectorError(
            f"memory source '{definition.name}': cannot read frame as ({schema}): {str(exc).splitlines()[0]}"
        ) from exc


class MemorySource:
    """Replays registered frames, one per micro-batch (see the module doc)."""

    replays_from_start = True  # without a checkpoint, a new run reads from the start (`base.Source`)

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self._id = definition.option("id", definition.name)
        self._bounded = (definition.option("bounded", "true") or "true").lower() != "false"
        rows = definition.option("batch_rows")
        self._batch_rows = int(rows) if rows else None
        self._items: list[pl.DataFrame | BaseException] = []
        self._position = 0
        self._columns: list[str] = list(definition.schema.names)

    @property
    def bounded(self) -> bool:
        return self._bounded

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        self._columns = list(columns) if columns is not None else list(self.definition.schema.names)
        self._items = self._split(_lookup(self._id))
        self._position = int(offset or 0)

    def _split(self, items: list[pl.DataFrame | BaseException]) -> list[pl.DataFrame | BaseException]:
        if not self._batch_rows:
            return list(items)
        out: list[pl.DataFrame | BaseException] = []
        for item in items:
            if isinstance(item, pl.DataFrame) and item.height > self._batch_rows:
                out.extend(item.slice(i, self._batch_rows) for i in range(0, item.height, self._batch_rows))
            else:
                out.append(item)
        return out

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False) -> SourceBatch:
        if self._position >= len(self._items):
            return SourceBatch(self._empty(), exhausted=self._bounded, offset=self._position)
        item = self._items[self._position]
        self._position += 1
        if isinstance(item, BaseException):
            raise item
        done = self._bounded and self._position >= len(self._items)
        return SourceBatch(_conform(item, self.definition, self._columns), exhausted=done, offset=self._position)

    def _empty(self) -> pl.DataFrame:
        schema = self.definition.schema
        return pl.DataFrame(schema={c: schema.dtype(c).polars for c in self._columns})

    def close(self) -> None:
        self._items = []


class MemoryTable:
    """A static table: all registered frames, concatenated."""

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self._id = definition.option("id", definition.name)

    def read(self, columns: list[str] | None = None) -> pl.DataFrame:
        columns = list(columns) if columns is not None else list(self.definition.schema.names)
        parts = [_conform(f, self.definition, columns) for f in frames(self._id)]
        if not parts:
            schema = self.definition.schema
            return pl.DataFrame(schema={c: schema.dtype(c).polars for c in columns})
        return pl.concat(parts, how="vertical")


@dataclass
class MemorySink:
    """Keeps each batch's frame by batch id; `id` names it in the registry (None: private)."""

    id: str | None = None
    writes = UPSERT  # a changelog arrives as upsert records (`upserts`): tests fold them into the table

    def __post_init__(self) -> None:
        self._batches: dict[int, pl.DataFrame] = {}
        if self.id is not None:
            with _LOCK:
                self._batches = _SINKS.setdefault(self.id, {})

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        with _LOCK:
            self._batches[batch_id] = frame

    def close(self) -> None:
        pass

    @property
    def batches(self) -> dict[int, pl.DataFrame]:
        with _LOCK:
            return dict(sorted(self._batches.items()))

    def frame(self) -> pl.DataFrame:
        """Every batch written, in batch order."""
        parts = list(self.batches.values())
        return pl.concat(parts, how="vertical") if parts else pl.DataFrame()


# Frames up to this many rows in all are counted exactly for a column's distinct values.
NDV_ROWS = 1_000_000


def statistics(definition: SourceDef, batch_interval_ms: int) -> Statistics:
    """From the registered frames: rows per batch (all rows for a table), counted ndv, each batch's time span."""
    data = frames(definition.option("id", definition.name) or definition.name)
    if definition.kind == "table":
        rows = float(sum(f.height for f in data))
    else:
        batch_rows = int_option(definition, "batch_rows")
        rows = float(max((min(f.height, batch_rows) if batch_rows else f.height for f in data), default=0))

    def ndv(column: str) -> float | None:
        having = [f for f in data if column in f.columns]
        if not having or sum(f.height for f in having) > NDV_ROWS:
            return None
        return float(pl.concat([f.select(column) for f in having], how="vertical_relaxed")[column].n_unique())

    def batch_span_ms(column: str) -> float | None:
        spans = []
        for f in data:
            if column in f.columns and f.height:
                t = f.select(pl.col(column).cast(pl.Datetime("ms")).dt.epoch("ms"))[column]
                if t.null_count() < t.len():
                    # epoch milliseconds (Int64) with a non-NULL value: polars' stubs say any scalar or None
                    spans.append(float(cast(int, t.max()) - cast(int, t.min())))
        return max(spans) if spans else None

    bounded = (definition.option("bounded", "true") or "true").lower() != "false"
    total = float(sum(f.height for f in data))
    return Statistics(rows_per_batch=rows, rows_total=total, bounded=bounded, ndv=ndv, batch_span_ms=batch_span_ms)


def make_source(definition: SourceDef) -> MemorySource:
    return MemorySource(definition)


def make_table(definition: SourceDef) -> MemoryTable:
    return MemoryTable(definition)


def make_sink(definition: SinkDef) -> MemorySink:
    return MemorySink(definition.option("id", definition.name))


def sink_batches(id: str) -> dict[int, pl.DataFrame]:
    """The frames a memory sink called `id` received, by batch id."""
    with _LOCK:
        return dict(sorted(_SINKS.get(id, {}).items()))


def sink_output(id: str) -> pl.DataFrame:
    """Everything a memory sink called `id` received, in batch order."""
    parts = list(sink_batches(id).values())
    return pl.concat(parts, how="vertical") if parts else pl.DataFrame()


def clear_sink(id: str) -> None:
    with _LOCK:
        _SINKS.pop(id, None)
