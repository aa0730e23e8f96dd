"""The `files` connector: ndjson, csv and parquet files as a source, a table or a sink.

Source options: `path` (a file, a directory or a glob), `format` (ndjson,
json, csv or parquet; by default from each file's extension), `watch`
('true' keeps polling for new files, so the source is unbounded),
`max_files_per_batch` (default: every file available), and for csv `header`
('true') and `delimiter` (','). Files are read in name order, each once; the
offset is the list of files read. In a directory only files with the
format's extensions are read, and names starting with '.' or '_' are skipped
(writers' temporary files). With `splits`, part i of n reads the files whose
name hashes to i (crc32 modulo n), each part up to `max_files_per_batch`.

Sink options: `path` (a directory), `format` (parquet, csv or ndjson;
default parquet), `partition_by` (columns: rows go to Hive-style
directories `col=value/`, values %-escaped, NULL as
`__HIVE_DEFAULT_PARTITION__`; the columns stay in the files too),
`compression` (parquet: zstd (default), snappy, lz4, gzip, brotli,
uncompressed; csv and ndjson: gzip, written as `.csv.gz` / `.ndjson.gz`,
which the source reads back), and `roll_interval` / `roll_size` (e.g. '1min',
'128MB'). Without rolling each batch becomes one file per partition,
`part-{batch_id:08d}.{ext}`, visible at once, and writing a batch id again
replaces its files. With rolling a batch goes to staging files under
`_staging/` (durable, never read), and once the oldest staged batch is
`roll_interval` old or the staged bytes reach `roll_size` (checked as
batches arrive, and when the query ends) every staged batch of a partition
is written as one file `data-{first:08d}-{last:08d}.{ext}`, which becomes
visible then; a batch already durable is not written again. Every file is
written to an exclusively created temporary file (an unpredictable name,
mode 0600, never through a symlink: `stream_dsl/file_writes.py`) and
renamed into place, so a reader never sees half a file. A write that finds
the disk full is retried a few times with a growing pause before the query
fails with an error naming the sink and the file. Exactly once: after a
batch's files are in place, the batch is appended to the committed log
`_committed` in the sink directory, and a roll appends its own line after
its files (`files_sink_log` documents the lines for outside readers). A
file the log does not name (a crash between a write and its line) is never
read: `read_committed(path)` and the files source, reading a directory that
has a `_committed` log, read exactly the visible files it names. A query
started again on the same directory continues after the last committed
batch id (`FileSink.last_batch_id`), and rolls what a crash left staged.

A file listed when the source opened but deleted before it was read is a
ConnectorError naming the source and the file.
"""

from __future__ import annotations

import bisect
import glob
import gzip
import os
import time
import zlib
from dataclasses import dataclass
from typing import Any

import polars as pl

from stream_dsl.connectors.base import DeadLetter, SourceBatch, read_schema
from stream_dsl.connectors.decode import Decoded, can_fail, conform, empty_frame, narrow, with_checked
from stream_dsl.connectors.decode_ndjson import decode_ndjson
from stream_dsl.connectors.decode_csv import CsvOptions, decode_csv
from stream_dsl.connectors.option_specs import Option, OptionError, check_options, option_names
from stream_dsl.errors import ConnectorError
from stream_dsl.connectors.file_formats import FORMAT_CHOICES, format_name, format_of
from stream_dsl.connectors.file_formats import SINK_EXTENSION as SINK_EXTENSION
from stream_dsl.connectors.files_sink import FileSink
from stream_dsl.connectors.files_sink_log import COMMITTED_LOG, live_files
from stream_dsl.connectors.file_listing import Listing
from stream_dsl.connectors.ndjson_deferred import deferred_ndjson
from stream_dsl.connectors.ndjson_small import empty_batch
from stream_dsl.connectors.parquet_scan import (
    DeferredParquet,
    DeferredScan,
    PushedPredicate,
    PushedRead,
    engine_for,
    files_bytes,
    parquet_scan,
    pushable,
    pushable_predicate,
    read_pushed,
)

# the sink's public names, which callers reach as `files.X` (SINK_OPTIONS: the docs' connector reference)
from stream_dsl.connectors.files_sink import SINK_OPTIONS as SINK_OPTIONS
from stream_dsl.connectors.files_sink import SINK_SPECS as SINK_SPECS
from stream_dsl.connectors.files_sink import committed_batches as committed_batches
from stream_dsl.connectors.files_sink import for_text_format as for_text_format
from stream_dsl.connectors.files_sink import read_committed as read_committed
from stream_dsl.connectors.files_sink_log import read_table as read_table
from stream_dsl.connectors.files_sink_log import upsert_key as upsert_key
from stream_dsl.connectors.files_sink import write_frame as write_frame
from stream_dsl.ir.definitions import SinkDef, SourceDef
from stream_dsl.ir.expr import Expr
from stream_dsl.ir.types import Schema

SOURCE_SPECS = (
    Option("path", "string", "a file, a directory or a glob", required=True),
    Option("format", "choice", "the files' format (default: each file's extension)", choices=FORMAT_CHOICES),
    Option("watch", "bool", "keep polling for new files (the stream is then unbounded)", default="false"),
    Option("max_files_per_batch", "int", "files read per micro-batch (default: all available)", minimum=1),
    Option("header", "bool", "csv: the first line names the columns", default="true"),
    Option("delimiter", "char", "csv: the field separator", default=","),
)
SOURCE_OPTIONS = option_names(SOURCE_SPECS)
OPTION_SPECS = {"source": SOURCE_SPECS, "table": SOURCE_SPECS, "sink": SINK_SPECS}
SPLITS = True  # a split part reads the files whose names hash to it (`FileSource._mine`)
NODE_LOCAL = True  # paths name this machine's files: on a cluster its source tasks run on the driver's node


@dataclass(frozen=True, slots=True)
class FileOptions:
    path: str
    format: str | None
    watch: bool
    max_files_per_batch: int | None
    csv: CsvOptions

    @classmethod
    def parse(cls, definition: SourceDef) -> "FileOptions":
        what = f"source '{definition.name}'"
        values = check_options(definition.options, SOURCE_SPECS, what=what)
        if not values["path"]:
            raise OptionError(f"{what}: option path must name a file, a directory or a glob", "path", at_value=True)
        return cls(
            path=os.path.expanduser(values["path"]),
            format=format_name(values["format"], what),
            watch=values["watch"],
            max_files_per_batch=values["max_files_per_batch"],
            csv=CsvOptions(header=values["header"], delimiter=values["delimiter"]),
        )


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _visible(path: str) -> bool:
    return not os.path.basename(path).startswith((".", "_"))


def list_files(options: FileOptions, what: str, *, allow_missing: bool = False) -> list[str]:
    """The data files `path` names, sorted by path. A path that does not exist is an error."""
    path = options.path
    if _is_glob(path):
        found = [p for p in glob.glob(path) if os.path.isfile(p) and _visible(p)]
        if not found and not allow_missing:
            raise ConnectorError(f"{what}: no files match path '{path}'")
        return sorted(found)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, COMMITTED_LOG)):  # a sink's output: its visible files only
            files = [p for p in (os.path.join(path, n) for n in live_files(path)) if os.path.isfile(p)]
        else:
            names = [os.path.join(path, n) for n in os.listdir(path)]
            files = [p for p in names if os.path.isfile(p) and _visible(p)]
        if options.format is not None:
            return sorted(p for p in files if format_of(p) == options.format)
        return sorted(p for p in files if format_of(p) is not None)
    if os.path.isfile(path):
        return [path]
    if allow_missing and os.path.isdir(os.path.dirname(path) or "."):
        return []
    raise ConnectorError(f"{what}: path '{path}' does not exist")


def read_file(path: str, options: FileOptions, schema: Schema, full_schema: Schema, source: str) -> Decoded:
    """One file's rows in `schema` (a projection of `full_schema`), with its dead letters."""
    fmt = options.format or format_of(path)
    if fmt is None:
        raise ConnectorError(
            f"source '{source}': cannot tell the format of '{path}' from its extension; "
            f"set the format option (ndjson, csv or parquet)"
        )
    if not os.path.exists(path):
        raise ConnectorError(f"source '{source}': file '{path}' was deleted before it was read")
    if fmt == "parquet":
        return narrow(_read_parquet(path, schema, full_schema, source), schema)
    try:
        with open(path, "rb") as f:
            data = f.read()
        if path.lower().endswith(".gz"):  # a gzip'ed text file (the files sink's compression = 'gzip')
            data = gzip.decompress(data)
    except FileNotFoundError:
        raise ConnectorError(f"source '{source}': file '{path}' was deleted before it was read") from None
    except (OSError, EOFError) as e:
        raise ConnectorError(f"source '{source}': cannot read '{path}': {getattr(e, 'strerror', None) or e}") from None
    if fmt == "csv":
        return decode_csv(data, schema, source=source, origin=path, options=options.csv, full_schema=full_schema)
    return decode_ndjson(data, schema, source=source, origin=path, full_schema=full_schema)


def _read_parquet(path: str, schema: Schema, full_schema: Schema, source: str) -> Decoded:
    """A parquet file's rows of `schema` and of the columns of `full_schema` a row can fail in this file (NOT NULL,
    or stored as another type than the declared one: `with_checked`, narrowed by the file's types, since a column
    stored as its declared type never fails); a file that cannot be read or converted is one dead letter naming it
    and why.

    A poison file (corrupt, truncated, or a column whose type can never be
    the declared one, such as a list where DOUBLE is declared) must not stop
    the query: the files after it are still read.
    """
    try:
        available = pl.read_parquet_schema(path)
        stored_as_declared = {f.name for f in full_schema if available.get(f.name) == f.dtype.polars}
        schema = with_checked(
            schema, Schema(tuple(f for f in full_schema if f.not_null or f.name not in stored_as_declared))
        )
        mismatch = _parquet_type_mismatch(available, schema)
        if mismatch is not None:
            return _poison(path, schema, source, mismatch)
        wanted = [f.name for f in schema if f.name in available]
        if wanted:
            frame = pl.read_parquet(path, columns=wanted)
        else:  # nothing requested is in the file: only the row count matters
            frame = pl.DataFrame(height=pl.scan_parquet(path).select(pl.len()).collect().item())
    except Exception as e:  # a corrupt or truncated file: one dead letter, not a crash
        return _poison(path, schema, source, f"unreadable parquet file: {e}")
    try:
        return conform(frame, schema, source=source, origin=path)
    except Exception as e:  # a conversion polars refuses for the whole column
        return _poison(path, schema, source, f"parquet file does not fit the declared columns: {e}")


def _parquet_type_mismatch(available: dict[str, pl.DataType], schema: Schema) -> str | None:
    """Why the file's column types can never be the declared ones (nested where a scalar is declared)."""
    for field in schema:
        dtype = available.get(field.name)
        if (
            dtype is not None and dtype.is_nested() and not field.dtype.is_nested
        ):  # lists, structs: conform checks inside
            return (
                f"column '{field.name}' is {dtype} in the file, but {field.dtype.value} is declared; "
                f"the whole file is skipped"
            )
    return None


def _poison(path: str, schema: Schema, source: str, reason: str) -> Decoded:
    return Decoded(empty_frame(schema), (DeadLetter(source, path, "", reason),))


def max_event_time_ms(frame: pl.DataFrame, definition: SourceDef) -> int | None:
    """The largest value of the watermark column, if the stream has one and it was read."""
    wm = definition.watermark
    if wm is None or wm.column not in frame.columns or frame.height == 0:
        return None
    value = frame.get_column(wm.column).cast(pl.Int64).max()
    return int(value) if value is not None else None


def _concat(frames: list[pl.DataFrame], schema: Schema) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_frame(schema)
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical")


def statistics(definition: SourceDef, batch_interval_ms: int) -> Any:
    """The cost model's statistics of the files present now (connectors/file_statistics.py)."""
    from stream_dsl.connectors.file_statistics import statistics as of_files

    return of_files(definition, batch_interval_ms)


class FileSource:
    """Files present at open() (bounded), or every file that ever appears (watch='true')."""

    replays_from_start = True  # without a checkpoint, a new run reads from the start (`base.Source`)

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self.options = FileOptions.parse(definition)
        self._what = f"source '{definition.name}'"
        self._schema = definition.schema
        self._pending: list[str] = []
        self._done: set[str] = set()
        self._done_sorted: list[str] = []  # `_done` in order, kept as files are read: the offset, without a sort
        self._listing: Listing | None = None  # watch mode: what appeared since the last batch (file_listing.py)
        self._pushed: PushedPredicate | None = None
        self.pushed_reads = 0  # parquet files read through `parquet_scan` (tests and benchmarks read it)
        self.defer_scans = False  # True: pushed parquet batches come as a `DeferredScan` (fused_read.py)
        self._how: tuple[Schema, PushedPredicate | None, tuple[PushedPredicate | None, str | None] | None] | None = None

    @property
    def bounded(self) -> bool:
        return not self.options.watch

    def push_predicate(self, predicate: Expr) -> bool:
        """Keep only the rows where `predicate` holds while reading parquet files whose rows cannot be dead
        letters (`parquet_scan`); the scan still applies it. False: the predicate cannot be pushed."""
        self._pushed = pushable_predicate(predicate)
        return self._pushed is not None

    def open(self, columns: list[str] | None, offset: Any = None) -> None:
        self._schema = read_schema(self.definition, columns, self._what)
        self._done = set(offset.get("files", ())) if isinstance(offset, dict) else set()
        self._done_sorted = sorted(self._done)
        self._listing = Listing(self.options, self._what) if self.options.watch else None
        self._pending = self._new_files()

    def backlog(self) -> dict[str, int]:
        """Files listed but not read yet (a watched directory's newer files show up at the next listing)."""
        return {"files_unread": len(self._pending)}

    def _new_files(self) -> list[str]:
        if self._listing is not None:  # watching: only the names that appeared since the last look
            listed = self._listing.new_files()
        else:
            listed = list_files(self.options, self._what, allow_missing=self.options.watch)
        return [p for p in listed if p not in self._done and self._mine(p)]

    def _mine(self, path: str) -> bool:
        """Whether this part of a split stream reads `path`: by a hash of its name, so a file that appears
        later (watch) never moves a file already assigned to one part over to another."""
        if self.definition.split is None:
            return True
        index, parts = self.definition.split
        return zlib.crc32(path.encode()) % parts == index

    replays_exactly = True  # `until`: the batch's files (its `replay`) or all files read up to its end

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False, until: Any = None) -> SourceBatch:
        if isinstance(until, dict):  # a replay: exactly the files an earlier run's batch read
            wanted = sorted(set(self._replayable(until.get("files"))) - self._done)
            self._pending = [p for p in self._pending if p not in set(wanted)]
            return self._read(wanted)
        if self.options.watch:
            queued = set(self._pending)
            self._pending += [p for p in self._new_files() if p not in queued]
            self._pending.sort()
            if not self._pending and realtime:
                time.sleep(batch_interval_ms / 1000)
                self._pending = self._new_files()
        take = len(self._pending) if self.options.max_files_per_batch is None else self.options.max_files_per_batch
        chosen, self._pending = self._pending[:take], self._pending[take:]
        return self._read(chosen)

    def _replayable(self, logged: Any) -> list[str]:
        """The files a logged batch names, once each is known to be one this source's path selects.

        The offset log is a file on disk: whatever it names is checked against the source definition
        (the files `path` lists now, not a prefix or a pattern match), and anything else refuses the
        replay before a byte is read.
        """
        if not isinstance(logged, list) or not all(isinstance(p, str) for p in logged):
            raise ConnectorError(
                f"{self._what}: the offset log's entry for a replayed batch is not a list of "
                f"file names: {str(logged)[:200]!r}; refusing to replay it"
            )
        selected = set(list_files(self.options, self._what, allow_missing=True))
        outside = [p for p in logged if p not in selected and p not in self._done]
        if outside:
            raise ConnectorError(
                f"{self._what}: the offset log names file {outside[0]!r}, which is not one of the files its "
                f"path '{self.options.path}' selects (or no longer exists); a replay reads only what the "
                "source is configured to read, so it was not read. If the offset log was edited or the "
                "files were moved, start the query over with checkpoint_reset"
            )
        return logged

    def _read(self, chosen: list[str]) -> SourceBatch:
        deferred = self._deferred(chosen) if self.defer_scans and chosen else None
        if deferred is None:
            frame, letters, newest = self._frames(chosen)
        else:  # the executor reads it (`SourceBatch.scan`)
            frame, letters, newest = empty_batch(self._schema), [], None
        for path in chosen:
            if path not in self._done:
                self._done.add(path)
                bisect.insort(self._done_sorted, path)
        return SourceBatch(
            frame=frame,
            exhausted=self.bounded and not self._pending,
            offset={"files": list(self._done_sorted)},  # a copy: a checkpoint may still hold an older one
            dead_letters=letters,
            max_event_time_ms=newest,
            replay={"files": list(chosen)},
            scan=deferred,
        )  # the offset lists every file ever read: too big to log

    def _frames(self, chosen: list[str]) -> tuple[pl.DataFrame, list[DeadLetter], int | None]:
        """The files' rows, their dead letters and the largest watermark-column value."""
        frames: list[pl.DataFrame] = []
        letters: list[DeadLetter] = []
        maxima: list[int] = []
        together = self._read_pushed(chosen) if len(chosen) > 1 else None  # one scan: polars reads them in parallel
        if together is not None:
            frames.append(together.frame)
            maxima.extend([] if together.max_event_ms is None else [together.max_event_ms])
        for path in chosen if together is None else ():
            pushed = self._read_pushed([path])
            if pushed is not None:
                frame, newest = pushed.frame, pushed.max_event_ms
            else:
                decoded = read_file(path, self.options, self._schema, self.definition.schema, self.definition.name)
                frame, newest = decoded.frame, max_event_time_ms(decoded.frame, self.definition)
                letters.extend(decoded.dead_letters)
            frames.append(frame)
            if newest is not None:
                maxima.append(newest)
        return _concat(frames, self._schema), letters, max(maxima, default=None)

    def _pushed_read(self, paths: list[str]) -> tuple[PushedPredicate | None, str | None] | None:
        """The pushed predicate and the watermark column of a pushed read of `paths` (`parquet_scan`); None
        when one is not parquet, or a row could be a dead letter."""
        if not len(self._schema) or any((self.options.format or format_of(p)) != "parquet" for p in paths):
            return None  # no columns: only the row count matters, which the full read gets from the footer
        schema, pushed, how = self._schema, self._pushed, self._how
        if how is None or how[0] is not schema or how[1] is not pushed:  # the same every batch: decided once
            how = self._how = (schema, pushed, self._pushed_read_of(schema, pushed))
        if how[2] is not None and not self._stored_as_declared(paths):
            return None
        return how[2]

    def _stored_as_declared(self, paths: list[str]) -> bool:
        """Whether each file stores every column a row could fail in (`with_checked`), read or not, as its declared
        type, so that no value can fail. The pushed read cannot tell: polars leaves a column the stage does not use
        out of the scan, and with it the check of its type."""
        fallible = [f for f in self.definition.schema if can_fail(f)]  # those read and those only checked
        if not fallible:
            return True
        try:
            stored = [pl.read_parquet_schema(path) for path in paths]
        except Exception:  # the full read reports an unreadable file
            return False
        return all(types.get(f.name, f.dtype.polars) == f.dtype.polars for f in fallible for types in stored)

    def _pushed_read_of(
        self, schema: Schema, pushed: PushedPredicate | None
    ) -> tuple[PushedPredicate | None, str | None] | None:
        pushed = pushed if pushed is not None and pushed.columns <= set(schema.names) else None
        wm = self.definition.watermark
        watermark = wm.column if wm is not None and wm.column in schema else None
        if not pushable(with_checked(schema, self.definition.schema)):
            return None
        return pushed, watermark

    def _deferred(self, paths: list[str]) -> DeferredScan | None:
        """The pushed read of `paths` as a lazy scan the executor runs (None: read now, see `_pushed_read`)."""
        how = self._pushed_read(paths)
        if how is None:
            return self._deferred_ndjson(paths)

        def counted() -> None:
            self.pushed_reads += len(paths)

        lazy = parquet_scan(paths, self._schema, None, None)
        names = tuple(self._schema.names)
        size = files_bytes(paths)
        engine = engine_for(paths, size)
        return DeferredParquet(lazy, names, how[0], how[1], lambda: self._frames(paths), counted, engine, size or 0)

    def _deferred_ndjson(self, paths: list[str]) -> DeferredScan | None:
        """ndjson files as one checked lazy read the executor runs with its stage (`ndjson_deferred.py`)."""
        if any((self.options.format or format_of(p)) != "ndjson" for p in paths):
            return None
        if any(f.not_null for f in self.definition.schema):  # a NOT NULL column not read still dead-letters
            return None
        wm = self.definition.watermark
        watermark = wm.column if wm is not None and wm.column in self._schema else None
        # the columns read, and those a record can fail in (`with_checked`), which the stage's scan step drops
        checked = with_checked(self._schema, self.definition.schema)
        return deferred_ndjson(paths, self._schema, watermark, lambda: self._frames(paths), lambda: None, checked)

    def _read_pushed(self, paths: list[str]) -> PushedRead | None:
        """Parquet files read with the columns and the pushed predicate in one scan (`parquet_scan`); None
        when a row of one could be a dead letter, or anything fails (each file's full read then reports it)."""
        how = self._pushed_read(paths)
        if how is None:
            return None
        schema, (pushed, watermark) = self._schema, how
        try:
            read = read_pushed(paths, schema, pushed, watermark)
        except Exception:  # other column types, a missing, corrupt or truncated file: the full read deals with it
            return None
        self.pushed_reads += len(paths)
        return read

    def close(self) -> None:
        self._pending = []


class FileTable:
    """A static table from files, read whole once per query.

    `dead_letters` holds the records the last read() could not decode.
    """

    def __init__(self, definition: SourceDef) -> None:
        self.definition = definition
        self.options = FileOptions.parse(definition)
        self.dead_letters: list[DeadLetter] = []

    def read(self, columns: list[str] | None = None) -> pl.DataFrame:
        what = f"table '{self.definition.name}'"
        schema = read_schema(self.definition, columns, what)
        frames: list[pl.DataFrame] = []
        letters: list[DeadLetter] = []
        for path in list_files(self.options, what):
            decoded = read_file(path, self.options, schema, self.definition.schema, self.definition.name)
            frames.append(decoded.frame)
            letters.extend(decoded.dead_letters)
        self.dead_letters = letters
        return _concat(frames, schema)


def check_at_create(definition: SourceDef | SinkDef, role: str) -> None:
    """CREATE's checks beyond the option types (`bind/create_check.py`): the path and the first file's format."""
    from stream_dsl.connectors.file_checks import check_source_files
    from stream_dsl.connectors.files_sink import check_sink_options

    if isinstance(definition, SinkDef):
        check_sink_options(definition)
    else:
        check_source_files(definition)


def make_source(definition: SourceDef) -> FileSource:
    return FileSource(definition)


def make_table(definition: SourceDef) -> FileTable:
    return FileTable(definition)


def make_sink(definition: SinkDef) -> FileSink:
    return FileSink(definition)


INFER_ROWS = 1000  # rows of the first file that ndjson and csv types are inferred from


def infer_schema(definition: SourceDef) -> dict[str, pl.DataType]:
    """The columns and polars types of the first file `definition`'s path selects (the dataframe API's
    `read_files` without a schema): parquet from its footer, ndjson and csv from their first rows."""
    options = FileOptions.parse(definition)
    what = f"source '{definition.name}'"
    found = list_files(options, what, allow_missing=options.watch)
    if not found:
        raise ConnectorError(f"{what}: no file under '{options.path}' yet to infer the columns from; pass schema=")
    first = found[0]
    fmt = options.format or format_of(first)
    try:
        if fmt == "parquet":
            return dict(pl.read_parquet_schema(first))
        if fmt == "csv":
            lazy = pl.scan_csv(
                first,
                has_header=options.csv.header,
                separator=options.csv.delimiter,
                infer_schema_length=INFER_ROWS,
                try_parse_dates=True,
            )
            return dict(lazy.collect_schema())
        return dict(pl.scan_ndjson(first, infer_schema_length=INFER_ROWS).collect_schema())
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise ConnectorError(f"{what}: cannot infer the columns from '{first}': {exc}; pass schema=") from None
