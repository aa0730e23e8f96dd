"""The files sink's committed log `_committed`: which batches are durable and which files a reader may read.

One JSON object per line, appended with a single write and fsync'ed (a
line cut short by a crash is ignored), so outside readers can follow it:

- `{"batch_id": 7, "files": ["part-00000007.parquet", "k=a/part-00000007-0.parquet"]}`: batch 7 is
  durable and these files (relative to the sink directory) hold its rows, visible now (no rolling);
  `[]` when the batch had no rows. (`{"batch_id": 7, "file": "part-....parquet" | null}`, the older
  form, means the same.)
- `"key": ["k", "window_start", "window_end"]` in a batch's line: its rows are upsert records keyed by
  those columns, with the `op` column first ('upsert' or 'delete'; see `connectors.upserts`);
  `read_table` folds them into the table.
- `{"batch_id": 7, "staged": ["_staging/part-00000007-0.parquet", ...]}`: batch 7 is durable in
  staging files, which readers do not read; a later roll makes its rows visible.
- `{"roll": ["k=a/data-00000003-00000009.parquet", ...], "batches": [3, ..., 9]}`: the rolled files
  hold every row of those (staged) batches and are visible from now on; the staging files go.

A reader (`live_files`, `read_committed`, the files source) reads exactly
the visible files, in log order. A file in the directory that no line
names (a batch or roll cut short by a crash) is never read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from stream_dsl.connectors.file_formats import format_of

COMMITTED_LOG = "_committed"


@dataclass
class SinkLog:
    """What a sink directory's `_committed` log says (see the module doc)."""

    batches: list[int] = field(default_factory=list)  # durable batch ids, in log order, each once
    visible: list[str] = field(default_factory=list)  # files a reader reads, in log order
    staged: dict[int, list[str]] = field(default_factory=dict)  # batch -> its staging files, until rolled
    files_of: dict[int, list[str]] = field(default_factory=dict)  # batch -> the visible files holding it

    @staticmethod
    def read(path: str) -> "SinkLog":
        log = SinkLog()
        try:
            with open(os.path.join(path, COMMITTED_LOG), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return log
        seen: set[int] = set()
        for line in data.split(b"\n")[:-1]:  # the part after the last newline is unfinished
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                log._apply(entry, seen)
        return log

    def _apply(self, entry: dict[str, Any], seen: set[int]) -> None:
        if "roll" in entry:
            rolled = [str(f) for f in entry.get("roll") or []]
            for batch in entry.get("batches") or []:
                if self.staged.pop(int(batch), None) is not None:
                    self.files_of[int(batch)] = rolled
            self.visible += [f for f in rolled if f not in self.visible]
            return
        try:
            batch = int(entry["batch_id"])
        except (KeyError, TypeError, ValueError):
            return
        if batch in seen:
            return
        seen.add(batch)
        self.batches.append(batch)
        if "staged" in entry:
            self.staged[batch] = [str(f) for f in entry["staged"] or []]
            return
        files = entry.get("files")
        if files is None:
            files = [] if entry.get("file") is None else [entry["file"]]
        self.files_of[batch] = [str(f) for f in files]
        self.visible += [str(f) for f in files if f not in self.visible]


def committed_batches(path: str) -> list[int]:
    """The durable batch ids of sink directory `path`, in order (each once)."""
    return sorted(SinkLog.read(path).batches)


def live_files(path: str) -> list[str]:
    """The files of sink directory `path` a reader reads (relative to it), in log order."""
    return SinkLog.read(path).visible


def committed_files(path: str) -> dict[int, str | None]:
    """Batch id → the (first) visible file holding its rows (None: no rows, or still staged)."""
    log = SinkLog.read(path)
    firsts = {batch: files[0] for batch, files in log.files_of.items() if files}
    return {batch: firsts.get(batch) for batch in sorted(log.batches)}


def read_file_rows(file: str) -> pl.DataFrame:
    """One file the sink wrote, as polars reads it back (gzip'ed text formats included)."""
    fmt = format_of(file)
    if fmt == "parquet":
        return pl.read_parquet(file)
    if file.endswith(".gz"):
        import gzip

        with open(file, "rb") as f:
            data = gzip.decompress(f.read())
        return pl.read_csv(data) if fmt == "csv" else pl.read_ndjson(data)
    return pl.read_csv(file) if fmt == "csv" else pl.read_ndjson(file)


def upsert_key(path: str) -> list[str] | None:
    """The key columns of the upsert records in sink directory `path` (the newest batch line's `key`), or None
    when its batches are appended rows."""
    key = None
    try:
        with open(os.path.join(path, COMMITTED_LOG), "rb") as f:
            lines = f.read().split(b"\n")[:-1]
    except FileNotFoundError:
        return None
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "batch_id" in entry:
            key = entry.get("key")
    return [str(k) for k in key] if isinstance(key, list) else None


def read_table(path: str, key: list[str] | None = None) -> pl.DataFrame:
    """The table the upsert records of sink directory `path` describe: the last row per key (`key`, or the one
    its log names), deleted keys left out (`upserts.fold_changes`)."""
    from stream_dsl.connectors.upserts import OP_COLUMN, fold_changes

    keys = key if key is not None else upsert_key(path)
    if keys is None:
        if not SinkLog.read(path).batches:
            return pl.DataFrame()  # nothing written yet
        records = read_committed(path)
        if OP_COLUMN in records.columns:  # a retract changelog's insert and delete records: a multiset
            return fold_changes(records, [])
        raise ValueError(f"{path}: its log names no upsert key (appended rows?); give the key columns")
    return fold_changes(read_committed(path), keys)


def read_committed(path: str) -> pl.DataFrame:
    """Every visible file of the sink directory `path`, in log order, as one frame (staged batches, not yet
    rolled, and files no log line names are left out)."""
    files = [os.path.join(path, name) for name in live_files(path)]
    frames = [read_file_rows(f) for f in files if os.path.isfile(f)]  # a batch replayed with no rows: gone
    if not frames:
        return pl.DataFrame()
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")
