"""The `files` sink: batches to files (rolled or one per batch, partitioned or not) and the committed log.

See `files` for the contract and `files_sink_log` for the log readers follow.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import time
from typing import Any
from urllib.parse import quote

import polars as pl

from stream_dsl.connectors.file_formats import SINK_EXTENSION, format_name
from stream_dsl.connectors.file_writes import append_line, error_text, with_retries, write_atomically
from stream_dsl.connectors.files_sink_log import COMMITTED_LOG, SinkLog
from stream_dsl.connectors.files_sink_log import committed_batches as committed_batches
from stream_dsl.connectors.files_sink_log import committed_files as committed_files
from stream_dsl.connectors.files_sink_log import read_committed as read_committed
from stream_dsl.connectors.upserts import UPSERT
from stream_dsl.connectors.file_formats import FORMAT_CHOICES
from stream_dsl.connectors.option_specs import Option, OptionError, check_options, option_names
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SinkDef

SINK_SPECS = (
    Option("path", "string", "the directory the files go to", required=True),
    Option("format", "choice", "the files' format", default="parquet", choices=FORMAT_CHOICES),
    Option("partition_by", "string", "columns, comma-separated: rows go to Hive-style directories col=value/"),
    Option("compression", "string", "parquet: zstd (default), snappy, lz4, gzip, brotli, uncompressed; text: gzip"),
    Option("roll_interval", "duration", "stage batches and roll them into one file this often (e.g. '1min')"),
    Option("roll_size", "size", "stage batches and roll them once this many bytes are staged (e.g. '128MB')"),
)
SINK_OPTIONS = option_names(SINK_SPECS)
STAGING = "_staging"  # batches waiting for a roll (durable, never read: the name starts with '_')
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
PARQUET_CODECS = ("zstd", "snappy", "lz4", "gzip", "brotli", "uncompressed")


def for_text_format(frame: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """Timestamps as ISO-8601 text in text formats, which the files source reads back."""
    if fmt == "parquet":
        return frame
    stamps = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    if not stamps:
        return frame
    return frame.with_columns(pl.col(stamps).dt.to_string("%Y-%m-%dT%H:%M:%S%.3f"))


def frame_bytes(frame: pl.DataFrame, fmt: str, compression: str | None = None) -> bytes:
    """`frame` as the bytes of a file of format `fmt` (timestamps as ISO-8601 text in text formats;
    `compression`: the parquet codec, zstd by default)."""
    out, buffer = for_text_format(frame, fmt), io.BytesIO()
    if fmt == "parquet":
        out.write_parquet(buffer, compression=compression or "zstd")  # type: ignore[arg-type]
    elif fmt == "csv":
        out.write_csv(buffer)
    else:
        out.write_ndjson(buffer)
    return buffer.getvalue()


def write_frame(frame: pl.DataFrame, path: str, fmt: str) -> None:
    """Write `frame` to `path` atomically, through an exclusively created temporary file
    (`file_writes.write_atomically`: never a predictable name, never through a symlink, 0600)."""
    write_atomically(path, frame_bytes(frame, fmt))


def check_sink_options(definition: SinkDef) -> dict[str, Any]:
    """The sink's options, typed and checked (CREATE SINK runs this too): OptionError naming the one at fault."""
    what = f"sink '{definition.name}'"
    values = check_options(definition.options, SINK_SPECS, what=what)
    if not values["path"]:
        raise OptionError(f"{what}: option path must name a directory", "path", at_value=True)
    values["format"] = format_name(values["format"], what) or "parquet"
    try:
        values["compression"] = _compression(values["compression"], values["format"], what)
    except ConnectorError as e:
        raise OptionError(str(e), "compression", at_value=True) from None
    values["partition_by"] = [c.strip() for c in (values["partition_by"] or "").split(",") if c.strip()]
    return values


class FileSink:
    """Batches to files, exactly once (see `files`' module doc and `files_sink_log` for the log).

    Without rolling each batch is one file per partition, visible at once; a replayed batch rewrites
    its files in place. With `roll_interval` or `roll_size` a batch goes to staging files first
    (durable, not read), and a roll writes every staged batch of a partition into one file and makes it
    visible; a replayed batch that is already durable is not written again (its rows are the same).
    A changelog comes as upsert records (`upserts`), written in batch order like any rows.
    """

    writes = UPSERT

    def __init__(self, definition: SinkDef) -> None:
        what = f"sink '{definition.name}'"
        values = check_sink_options(definition)
        self.definition = definition
        self.what = what
        self.path = os.path.expanduser(values["path"])
        self.format = values["format"]
        self.compression = values["compression"]
        self.partition_by = values["partition_by"]
        self.roll_ms = values["roll_interval"]
        self.roll_bytes = values["roll_size"]
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ConnectorError(f"{what}: path '{self.path}' exists and is not a directory")
        log = SinkLog.read(self.path)
        self._committed: set[int] = set(log.batches)
        self._staged: dict[int, list[str]] = dict(log.staged)  # batch -> staging files, until rolled
        self._staged_bytes = sum(_size(os.path.join(self.path, f)) for fs in self._staged.values() for f in fs)
        self._staged_since: float | None = time.monotonic() if self._staged else None
        self._key: list[str] | None = None  # a changelog's key columns, listed in each batch's log line

    def upserts_keyed_by(self, keys: list[str]) -> None:
        """The query writes upsert records keyed by `keys` (`connectors.upserts`): its log lines say so."""
        self._key = list(keys)

    @property
    def rolling(self) -> bool:
        return self.roll_ms is not None or self.roll_bytes is not None

    @property
    def extension(self) -> str:
        return SINK_EXTENSION[self.format] + (".gz" if self.compression == "gzip" and self.format != "parquet" else "")

    def file_for(self, batch_id: int) -> str:
        """Where an unpartitioned batch's rows go without rolling."""
        return os.path.join(self.path, f"part-{batch_id:08d}.{self.extension}")

    @property
    def log_path(self) -> str:
        return os.path.join(self.path, COMMITTED_LOG)

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        """The batch's files, then its line in the log (and a roll when one is due); each write is retried
        while the disk is full."""
        self._io(self.path, lambda: os.makedirs(self.path, exist_ok=True))
        if self.rolling:
            if batch_id not in self._committed:
                self._stage(batch_id, frame)
            if self._roll_due():
                self.roll()
            return
        if not self.partition_by:
            target = self.file_for(batch_id)
            data = self._bytes(frame) if frame.height else None
            if data is None:
                self._io(target, lambda: _remove_if_present(target))
            else:
                self._io(target, lambda: write_atomically(target, data))
            self._commit(batch_id, os.path.basename(target) if data else None)
            return
        names = []
        for index, (directory, piece) in enumerate(self._pieces(frame)):
            name = os.path.join(directory, f"part-{batch_id:08d}-{index}.{self.extension}")
            self._write_file(name, self._bytes(piece))
            names.append(name)
        self._log({"batch_id": batch_id, "files": names}, batch_id)

    def _stage(self, batch_id: int, frame: pl.DataFrame) -> None:
        names = []
        for index, (directory, piece) in enumerate(self._pieces(frame)):
            name = os.path.join(STAGING, directory, f"part-{batch_id:08d}-{index}.{self.extension}")
            data = self._bytes(piece)
            self._write_file(name, data)
            self._staged_bytes += len(data)
            names.append(name)
        self._log({"batch_id": batch_id, "staged": names}, batch_id)
        self._staged[batch_id] = names
        if self._staged_since is None:
            self._staged_since = time.monotonic()

    def _roll_due(self) -> bool:
        if not self._staged:
            return False
        if self.roll_bytes is not None and self._staged_bytes >= self.roll_bytes:
            return True
        waited_ms = (time.monotonic() - (self._staged_since or time.monotonic())) * 1000
        return self.roll_ms is not None and waited_ms >= self.roll_ms

    def roll(self) -> None:
        """Every staged batch into one visible file per partition, then the roll's line, then the staging
        files go (a crash before the line leaves the batches staged; one after it, files nobody reads)."""
        if not self._staged:
            return
        batches = sorted(self._staged)
        by_directory: dict[str, list[str]] = {}
        for batch in batches:
            for name in self._staged[batch]:
                by_directory.setdefault(os.path.dirname(os.path.relpath(name, STAGING)), []).append(name)
        rolled = []
        for directory, names in sorted(by_directory.items()):
            target = os.path.join(directory, f"data-{batches[0]:08d}-{batches[-1]:08d}.{self.extension}")
            self._write_file(target, self._merged([os.path.join(self.path, n) for n in names]))
            rolled.append(target)
        self._log({"roll": rolled, "batches": batches}, None)
        for batch in batches:
            for name in self._staged.pop(batch):
                _remove_if_present(os.path.join(self.path, name))
        _remove_empty_directories(os.path.join(self.path, STAGING))
        self._staged_bytes, self._staged_since = 0, None

    def _merged(self, files: list[str]) -> bytes:
        """The staged files' rows as one file's bytes: parquet re-encoded, text concatenated (one CSV header)."""
        if self.format == "parquet":
            return self._bytes(pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed"))
        chunks = []
        for i, file in enumerate(files):
            with open(file, "rb") as f:
                data = f.read()
            if self.compression == "gzip":
                data = gzip.decompress(data)
            if self.format == "csv" and i > 0:
                data = data.split(b"\n", 1)[1] if b"\n" in data else b""
            chunks.append(data)
        joined = b"".join(chunks)
        return gzip.compress(joined) if self.compression == "gzip" else joined

    def _pieces(self, frame: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
        """The batch's rows per partition directory ('' unpartitioned), partitions in sorted order."""
        if not self.partition_by:
            return [("", frame)] if frame.height else []
        missing = [c for c in self.partition_by if c not in frame.columns]
        if missing:
            raise ConnectorError(
                f"{self.what}: partition_by names column '{missing[0]}', which the query does not produce; "
                f"its columns: {', '.join(frame.columns)}"
            )
        if not frame.height:
            return []
        pieces = frame.partition_by(self.partition_by, as_dict=True, maintain_order=True)
        return sorted((partition_directory(self.partition_by, key), piece) for key, piece in pieces.items())

    def _bytes(self, frame: pl.DataFrame) -> bytes:
        data = frame_bytes(frame, self.format, self.compression)
        return gzip.compress(data) if self.compression == "gzip" and self.format != "parquet" else data

    def _write_file(self, name: str, data: bytes) -> None:
        target = os.path.join(self.path, name)
        self._io(target, lambda: os.makedirs(os.path.dirname(target), exist_ok=True))
        self._io(target, lambda: write_atomically(target, data))

    def _io(self, path: str, write: Any) -> None:
        try:
            with_retries(write)
        except OSError as e:
            raise ConnectorError(f"sink '{self.definition.name}': cannot write '{path}': {error_text(e)}") from None

    def _commit(self, batch_id: int, file: str | None) -> None:
        """List an unpartitioned batch, with its one file (None: no rows), in the log, once."""
        self._log({"batch_id": batch_id, "file": file}, batch_id)

    def _log(self, entry: dict[str, Any], batch_id: int | None) -> None:
        """Append `entry` to the log; a batch's entry once (a replay rewrote its files in place already)."""
        if batch_id is not None and batch_id in self._committed:
            return
        if batch_id is not None and self._key is not None:
            entry = {**entry, "key": self._key}
        line = json.dumps(entry).encode() + b"\n"
        self._io(self.log_path, lambda: _append_line(self.log_path, line))
        if batch_id is not None:
            self._committed.add(batch_id)

    def last_batch_id(self) -> int | None:
        """The newest committed batch id, so a restarted query continues after it."""
        return max(self._committed) if self._committed else None

    def close(self) -> None:
        """The query ended: what is staged becomes visible."""
        self.roll()


def _append_line(path: str, line: bytes) -> None:
    """Append one line with a single write on an O_APPEND descriptor, then fsync: it is whole or ignored."""
    append_line(path, line)


def partition_directory(columns: list[str], values: tuple[Any, ...]) -> str:
    """`col=value/...` (Hive style; values %-escaped, NULL as Hive's default partition name)."""
    parts = []
    for column, value in zip(columns, values):
        text = HIVE_NULL if value is None else quote(str(value), safe="")
        parts.append(f"{column}={text}")
    return os.path.join(*parts)


def _compression(value: str | None, fmt: str, what: str) -> str | None:
    if value is None:
        return None
    codec = value.strip().lower()
    allowed = PARQUET_CODECS if fmt == "parquet" else ("gzip", "none")
    if codec not in allowed:
        raise ConnectorError(f"{what}: compression '{value}' is not one of {', '.join(allowed)} for {fmt}")
    return None if codec == "none" else codec


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _remove_empty_directories(root: str) -> None:
    """The partition directories under `root` that a roll emptied (not `root` itself)."""
    for directory, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        if directory != root:
            with contextlib.suppress(OSError):
                os.rmdir(directory)


def _remove_if_present(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
