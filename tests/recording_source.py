"""A test source that replays fixed batches and logs what any executor does with it, from any process.

Its script (batches, the event time a previous run committed, how many
batches are replays) is a JSON file named by the source's `script`
option, and every read, commit and sink write is appended to the log file
the script names, one JSON line each. A source opened in a worker process
reads the same script and writes to the same log as one opened in the
test's own process, so tests can check the order of events on every executor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from stream_dsl.connectors.base import SourceBatch

NAME = "recording"


def write_script(
    path: Path, batches: list[pl.DataFrame], *, restored: int | None = None, replayed_batches: int = 0
) -> Path:
    """The script the source plays; returns the log file its events go to."""
    log = path.with_suffix(".log")
    script = {
        "batches": [b.with_columns(pl.col("ts").dt.epoch("ms")).to_dicts() for b in batches],
        "restored": restored,
        "replayed_batches": replayed_batches,
        "log": str(log),
    }
    path.write_text(json.dumps(script))
    log.write_text("")
    return log


def record(log: str | os.PathLike, kind: str, payload: Any) -> None:
    """Append one event to the log (O_APPEND: lines from several processes do not interleave)."""
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, (json.dumps([kind, payload]) + "\n").encode())
    finally:
        os.close(fd)


def events(log: Path) -> list[tuple[str, Any]]:
    return [
        (kind, tuple(p) if isinstance(p, list) else p)
        for kind, p in (json.loads(line) for line in log.read_text().splitlines())
    ]


class RecordingSource:
    def __init__(self, definition: Any) -> None:
        script = json.loads(Path(definition.option("script")).read_text())
        self.batches = [
            pl.DataFrame(rows, schema={"k": pl.String, "ts": pl.Int64}).with_columns(
                pl.col("ts").cast(pl.Datetime("ms"))
            )
            for rows in script["batches"]
        ]
        self.replayed_batches = script["replayed_batches"]
        self.restored_max_event_ms = script["restored"]
        self.log = script["log"]
        self.position = 0

    @property
    def bounded(self) -> bool:
        return True

    def open(self, columns: list[str], offset: Any = None) -> None:
        self.columns = columns
        self.position = int(offset or 0)

    def next_batch(self, batch_interval_ms: int, *, realtime: bool = False) -> SourceBatch:
        batch = self.batches[self.position].select(self.columns)
        self.position += 1
        record(self.log, "read", self.position)
        return SourceBatch(
            batch,
            exhausted=self.position == len(self.batches),
            offset=self.position,
            replayed=self.position <= self.replayed_batches,
        )

    def commit(self, offset: Any, keep_from_ms: int | None = None) -> None:
        record(self.log, "commit", [offset, keep_from_ms])

    def close(self) -> None:
        pass


def make_source(definition: Any) -> RecordingSource:
    return RecordingSource(definition)
