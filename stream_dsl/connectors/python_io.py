"""The `python` connector: Python iterables and queues as a source, Python functions as a sink.

Source: register the items under an id (`register_items`) and declare a
stream `WITH (connector = 'python', id = '...')`, or call
`iterable_stream(ctx, items, schema)`. The items are pulled lazily, at most
`batch_rows` (default 1000) per micro-batch, so a generator may be endless.
An item is a dict (column → value), a tuple or list (values in declared
order) or a polars DataFrame (many rows). Values go through the same
conversion as JSON input: TIMESTAMP accepts datetimes, epoch milliseconds
or ISO-8601 text. An item that is none of these, has the wrong number of
values, or holds a value that does not convert is a dead letter
('<id>:item N', its repr, the reason); the query goes on.

A `queue.Queue` is read without blocking: each batch takes what has
arrived (a continuous query waits up to one batch interval for the first
item); put `END` to end the stream. An iterator's `next()` may block, and
the query waits with it.

Options: `id` (default: the stream's name), `batch_rows`, `bounded`
('true' by default: the source ends with its iterable or at `END`;
'false' lets collect() refuse it as unbounded).

Sink: `register_function(id, fn)` and `WITH (connector = 'python', id =
'...')`: `fn(batch_id, frame)` is called once per batch with output, like
Spark's foreachBatch (and `Stream.foreach_batch(fn)`). A replayed batch
calls it again with the same batch id: make `fn` idempotent per batch id.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import queue
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Mapping

import polars as pl

from stream_dsl.connectors.base import DeadLetter, SourceBatch, read_schema
from stream_dsl.connectors.decode import conform, empty_frame, narrow, with_checked
from stream_dsl.connectors.decode_ndjson import decode_ndjson
from stream_dsl.connectors.files import max_event_time_ms
from stream_dsl.connectors.upserts import UPSERT
from stream_dsl.connectors.options import as_bool, as_int, check_keys
from stream_dsl.connectors.option_specs import Option, option_names
from stream_dsl.errors import ConnectorError, DSLError
from stream_dsl.ir.definitions import SinkDef, SourceDef, Watermark
from stream_dsl.ir.types import Schema

SOURCE_SPECS = (
    Option("id", "string", "the registered iterable or queue (default: the stream's name)"),
    Option("batch_rows", "int", "rows per micro-batch", default="1000", minimum=1),
    Option("bounded", "bool", "the iterable ends (false: a queue fed while the query runs)", default="true"),
)
SINK_SPECS = (Option("id", "string", "the registered function (default: the sink's name)"),)
SOURCE_OPTIONS = option_names(SOURCE_SPECS)
SINK_OPTIONS = option_names(SINK_SPECS)
OPTION_SPECS = {"source": SOURCE_SPECS, "sink": SINK_SPECS}
END = object()  # put into a queue to end the stream

_ITEMS: dict[str, Iterable[Any] | queue.Queue] = {}
_FUNCTIONS: dict[str, Callable[[int, pl.DataFrame], Any]] = {}
_LOCK = threading.Lock()
_IDS = itertools.count()


def register_items(id: str, items: Iterable[Any] | queue.Queue) -> str:
    """Make `items` (an iterable, an iterator or a queue.Queue) readable as `connector='python', id=...`."""
    if not isinstance(items, queue.Queue) and not hasattr(items, "__iter__"):
        raise ConnectorError(f"python source '{id}': expected an iterable or a queue.Queue, got {type(items).__name__}")
    with _LOCK:
        _ITEMS[id] = items
    return id


def register_function(id: str, fn: Callable[[int, pl.DataFrame], Any]) -> str:
    """Make `fn(batch_id, frame)` the sink `connector='python', id=...`."""
    if not callable(fn):
        raise ConnectorError(f"python sink '{id}': expected a function (batch_id, frame), got {type(fn).__name__}")
    with _LOCK:
        _FUNCTIONS[id] = fn
    return id


def new_id(prefix: str = "py") -> str:
    return f"__{prefix}_{next(_IDS)}"


def source_def(
    name: str, items: Iterable[Any] | queue.Queue, schema: Schema, *, watermark: Watermark | None = None, **options: str
) -> SourceDef:
    """Register `items` and describe them as the python stream `name`."""
    id = register_items(new_id(name), items)
    opts = {"connector": "python", "id": id, **{k: str(v) for k, v in options.items()}}
    return SourceDef(name, "stream", schema, tuple(sorted(opts.items())), watermark)


def sink_def(name: str, fn: Callable[[int, pl.DataFrame], Any]) -> SinkDef:
    id = register_function(new_id(name), fn)
    return SinkDef(name, (("connector", "python"), ("id", id)))


def iterable_stream(
    ctx: Any,
    items: Iterable[Any] | queue.Queue,
    schema: Mapping[str, Any] | Schema,
    name: str | None = None,
    *,
    watermark: str | None = None,
    watermark_delay: str | int | dt.timedelta = "0s",
    batch_rows: int = 1000,
    bounded: bool = True,
    dead_letter: str | None = None,
) -> Any:
    """A Stream of `ctx` over Python items, pulled lazily (see the module doc).

    `schema` maps column names to SQL type names (or is a Schema);
    `watermark` names the TIMESTAMP column the watermark follows;
    `dead_letter` is the source option (see `dead_letters.py`).
    """
    from stream_dsl.frame.stream import wrap
    from stream_dsl.frame.expr import to_duration_ms
    from stream_dsl.ir.plan import Scan
    from stream_dsl.ir.types import DataType, Field

    if not isinstance(schema, Schema):
        fields = []
        for column, kind in schema.items():
            dtype = kind if isinstance(kind, DataType) else _written_type(str(kind))
            if dtype is None:
                raise ConnectorError(f"python source: unknown type '{kind}' for column '{column}'")
            fields.append(Field(column, dtype))
        schema = Schema(tuple(fields))
    wm = None
    if watermark is not None:
        if watermark not in schema:
            raise ConnectorError(
                f"python source: unknown watermark column '{watermark}'; columns: {', '.join(schema.names)}"
            )
        wm = Watermark(watermark, to_duration_ms(watermark_delay, "watermark_delay", allow_zero=True))
    label = name or "iterable"
    options = {"batch_rows": str(batch_rows), "bounded": "true" if bounded else "false"}
    if dead_letter is not None:
        options["dead_letter"] = dead_letter
    definition = source_def(label, items, schema, watermark=wm, **options)
    if name is not None:
        ctx.catalog.add_source(definition, replace=True)
    return wrap(ctx, Scan(definition))


def _written_type(text: str) -> Any:
    """A type as DDL writes it (`BIGINT`, `BIGINT[]`, `ARRAY<STRING>`), or None."""
    from stream_dsl.frame.io import sql_type

    try:
        return sql_type(text)
    except DSLError:
        return None


# ---------------------------------------------------------------- source


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):  # as its text, which a DECIMAL column reads exactly
        return str(value)
    return value


def _short_repr(item: Any, limit: int = 10_000) -> str:
    text = repr(item)
    return text if len(text) <= limit else text[:limit] + "..."


class PythonSource:
    """Items of a registered iterable or queue, `batch_rows` per micro-batch (see the module doc)."""

    def __init__(self, definition: SourceDef) -> None:
        what = f"source '{definition.name}'"
        check_keys(definition.options, SOURCE_OPTIONS, what=what)
        self.definition = definition
        self._what = what
        self._id = definition.option("id") or definition.name
        self._batch_rows = (
            as_int(definition.option("batch_rows", "1000"), key="batch_rows", what=what, minimum=1) or 1000
        )
        self._bounded = as_bool(definition.option("bounded"), key="bounded", what=what, default=True)
        self._schema = definition.schema
        self._iterator: Iterator[Any] | None = None
        self._queue: queue.Queue | None = None
        self._position = 0
        self._done = False

    @property
    def bounded(self) -> bool:
        return self._bounded

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        with _LOCK:
            items = _ITEMS.get(self._id)
        if items is None:
            raise ConnectorError(
                f"{self._what}: no Python items registered under '{self._id}' (python_io.register_items)"
            )
        self._schema = read_schema(self.definition, columns, self._what)
        if isinstance(items, queue.Queue):
            self._queue = items
        else:
            self._iterator = iter(items)
        skip = int(offset or 0)  # a re-iterable (a list) resumes after the items already read
        if self._iterator is not None:
            for _ in range(skip):
                if next(self._iterator, END) is END:
                    break
        self._position = skip

    def _take(self, interval_ms: int, realtime: bool) -> list[Any]:
        taken: list[Any] = []
        if self._queue is not None:
            wait = interval_ms / 1000 if realtime else 0.0
            deadline = time.monotonic() + wait
            while len(taken) < self._batch_rows:
                try:
                    item = (
                        self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                        if not taken and wait
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
                if item is END:
                    self._done = True
                    break
                taken.append(item)
            return taken
        assert self._iterator is not None
        while len(taken) < self._batch_rows:
            try:
                item = next(self._iterator)
            except StopIteration:
                self._done = True
                break
            except Exception as e:
                raise ConnectorError(f"{self._what}: the Python iterable raised {type(e).__name__}: {e}") from e
            taken.append(item)
        return taken

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False) -> SourceBatch:
        items = [] if self._done else self._take(batch_interval_ms, realtime)
        first = self._position + 1
        self._position += len(items)
        frame, letters = self._decode(items, first)
        return SourceBatch(
            frame=frame,
            exhausted=self._done and self._bounded,
            offset=self._position,
            dead_letters=letters,
            max_event_time_ms=max_event_time_ms(frame, self.definition),
        )

    def _letter(self, number: int, item: Any, reason: str) -> DeadLetter:
        return DeadLetter(self.definition.name, f"{self._id}:item {number}", _short_repr(item), reason)

    def _decode(self, items: list[Any], first: int) -> tuple[pl.DataFrame, list[DeadLetter]]:
        names = list(self.definition.schema.names)
        lines: list[bytes] = []
        numbers: list[int] = []
        reprs: list[Any] = []
        frames: list[pl.DataFrame] = []
        letters: list[DeadLetter] = []
        for number, item in enumerate(items, start=first):
            if isinstance(item, pl.DataFrame):
                wide = with_checked(self._schema, self.definition.schema)
                decoded = narrow(
                    conform(
                        item.select([c for c in item.columns if c in wide]),
                        wide,
                        source=self.definition.name,
                        origin=self._id,
                        row_label=f"item {number} row",
                    ),
                    self._schema,
                )
                frames.append(decoded.frame)
                letters.extend(decoded.dead_letters)
                continue
            if isinstance(item, Mapping):
                row = {str(k): _json_value(v) for k, v in item.items()}
            elif isinstance(item, (tuple, list)):
                if len(item) != len(names):
                    letters.append(
                        self._letter(
                            number, item, f"expected {len(names)} values ({', '.join(names)}), got {len(item)}"
                        )
                    )
                    continue
                row = {n: _json_value(v) for n, v in zip(names, item)}
            else:
                letters.append(
                    self._letter(
                        number, item, f"expected a dict, a tuple or a polars DataFrame, got {type(item).__name__}"
                    )
                )
                continue
            try:
                line = json.dumps(row, allow_nan=False, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError as e:
                letters.append(self._letter(number, item, f"a string is not valid UTF-8 text: {e.reason}"))
                continue
            except (TypeError, ValueError) as e:
                letters.append(self._letter(number, item, f"a value cannot be read: {e}"))
                continue
            lines.append(line)
            numbers.append(number)
            reprs.append(item)
        if lines:
            decoded = decode_ndjson(
                b"\n".join(lines),
                self._schema,
                source=self.definition.name,
                origin=self._id,
                full_schema=self.definition.schema,
            )
            frames.insert(0, decoded.frame)
            for letter in decoded.dead_letters:
                index = int(letter.position.rsplit(":", 1)[1]) - 1
                letters.append(self._letter(numbers[index], reprs[index], letter.reason))
        frames = [f for f in frames if f.height]
        if not frames:
            return empty_frame(self._schema), letters
        return (frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")), letters

    def close(self) -> None:
        self._iterator = None


# ---------------------------------------------------------------- sink


class PythonSink:
    """Calls the registered `fn(batch_id, frame)` once per batch."""

    writes = UPSERT  # a changelog's batches come as upsert records, the `op` column first (`upserts`)

    def __init__(self, definition: SinkDef) -> None:
        what = f"sink '{definition.name}'"
        check_keys(definition.options, SINK_OPTIONS, what=what)
        id = definition.option("id") or definition.name
        with _LOCK:
            fn = _FUNCTIONS.get(id)
        if fn is None:
            raise ConnectorError(f"{what}: no Python function registered under '{id}' (python_io.register_function)")
        self.definition = definition
        self.fn = fn

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        self.fn(batch_id, frame)

    def close(self) -> None:
        pass


def make_source(definition: SourceDef) -> PythonSource:
    return PythonSource(definition)


def make_sink(definition: SinkDef) -> PythonSink:
    return PythonSink(definition)
