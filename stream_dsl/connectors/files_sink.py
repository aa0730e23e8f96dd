"""The `files` sink: one part file per batch and the committed-batch log (see `files` for the contract)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from typing import Any

import polars as pl

from stream_dsl.connectors.file_formats import SINK_EXTENSION, format_name, format_of
from stream_dsl.connectors.file_writes import append_line, error_text, with_retries, write_atomically
from stream_dsl.connectors.options import check_keys
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SinkDef

SINK_OPTIONS = ("path", "format")
COMMITTED_LOG = "_committed"
_PART = re.compile(r"part-(\d+)\.(?:parquet|csv|ndjson)")


def for_text_format(frame: pl.DataFrame, fmt: str) -> pl.DataFrame:
    """Timestamps as ISO-8601 text in text formats, which the files source reads back."""
    if fmt == "parquet":
        return frame
    stamps = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.Datetime)]
    if not stamps:
        return frame
    return frame.with_columns(pl.col(stamps).dt.to_string("%Y-%m-%dT%H:%M:%S%.3f"))


def frame_bytes(frame: pl.DataFrame, fmt: str) -> bytes:
    """`frame` as the bytes of a file of format `fmt` (timestamps as ISO-8601 text in text formats)."""
    out, buffer = for_text_format(frame, fmt), io.BytesIO()
    if fmt == "parquet":
        out.write_parquet(buffer)
    elif fmt == "csv":
        out.write_csv(buffer)
    else:
        out.write_ndjson(buffer)
    return buffer.getvalue()


def write_frame(frame: pl.DataFrame, path: str, fmt: str) -> None:
    """Write `frame` to `path` atomically, through an exclusively created temporary file
    (`file_writes.write_atomically`: never a predictable name, never through a symlink, 0600)."""
    write_atomically(path, frame_bytes(frame, fmt))


# ---------------------------------------------------------------- the committed-batch log


def committed_batches(path: str) -> list[int]:
    """The batch ids the log of sink directory `path` lists, in order (each once).

    A last line cut short by a crash (no newline, or not JSON) is ignored.
    """
    try:
        with open(os.path.join(path, COMMITTED_LOG), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    found: set[int] = set()
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is unfinished
        try:
            found.add(int(json.loads(line)["batch_id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return sorted(found)


def _part_batch_id(name: str) -> int | None:
    match = _PART.fullmatch(name)
    return int(match.group(1)) if match else None


def committed_files(path: str) -> dict[int, str | None]:
    """Batch id → its part file's name (None: the batch wrote no rows) for every committed batch."""
    parts = {}
    for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
        batch = _part_batch_id(name)
        if batch is not None:
            parts[batch] = name
    return {batch: parts.get(batch) for batch in committed_batches(path)}


def read_committed(path: str) -> pl.DataFrame:
    """Every committed part file of the sink directory `path`, in batch order, as one frame.

    Part files the log does not list (a batch that crashed before it
    committed) are left out; a committed batch with no rows adds nothing.
    """
    frames = []
    for name in committed_files(path).values():
        file = os.path.join(path, name) if name else None
        if file is None:
            continue
        fmt = format_of(file)
        if fmt == "parquet":
            frames.append(pl.read_parquet(file))
        elif fmt == "csv":
            frames.append(pl.read_csv(file))
        else:
            frames.append(pl.read_ndjson(file))
    if not frames:
        return pl.DataFrame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def _append_line(path: str, line: bytes) -> None:
    """Append one line with a single write on an O_APPEND descriptor, then fsync: it is whole or ignored."""
    append_line(path, line)


class FileSink:
    """One file per batch id, then one line in the committed-batch log (see the module doc).

    Empty batches write no part file (and clear a file a replay would replace).
    """

    def __init__(self, definition: SinkDef) -> None:
        what = f"sink '{definition.name}'"
        check_keys(definition.options, SINK_OPTIONS, what=what)
        path = definition.option("path")
        if not path:
            raise ConnectorError(f"{what}: the files connector needs a path option (a directory)")
        self.definition = definition
        self.path = os.path.expanduser(path)
        self.format = format_name(definition.option("format", "parquet"), what) or "parquet"
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ConnectorError(f"{what}: path '{self.path}' exists and is not a directory")
        self._committed: set[int] = set(committed_batches(self.path))

    def file_for(self, batch_id: int) -> str:
        return os.path.join(self.path, f"part-{batch_id:08d}.{SINK_EXTENSION[self.format]}")

    @property
    def log_path(self) -> str:
        return os.path.join(self.path, COMMITTED_LOG)

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        """The batch's part file, then its line in the log; each write is retried while the disk is full."""
        target = self.file_for(batch_id)
        data = frame_bytes(frame, self.format) if frame.height else None
        self._io(target, lambda: os.makedirs(self.path, exist_ok=True))
        if data is None:
            self._io(target, lambda: _remove_if_present(target))
        else:
            self._io(target, lambda: write_atomically(target, data))
        self._io(self.log_path, lambda: self._commit(batch_id, os.path.basename(target) if data else None))

    def _io(self, path: str, write: Any) -> None:
        try:
            with_retries(write)
        except OSError as e:
            raise ConnectorError(f"sink '{self.definition.name}': cannot write '{path}': {error_text(e)}") from None

    def _commit(self, batch_id: int, file: str | None) -> None:
        """List the batch in the log, once: a replay replaced its part file in place already."""
        if batch_id in self._committed:
            return
        _append_line(self.log_path, json.dumps({"batch_id": batch_id, "file": file}).encode() + b"\n")
        self._committed.add(batch_id)

    def last_batch_id(self) -> int | None:
        """The newest committed batch id, so a restarted query continues after it."""
        return max(self._committed) if self._committed else None

    def close(self) -> None:
        pass


def _remove_if_present(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
