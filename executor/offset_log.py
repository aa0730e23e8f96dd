"""Where each micro-batch of a source ended, logged before the batch is processed.

A checkpoint says where the sources were after its batch; the batches run
after it may already be in the sink when a worker or the driver dies. A
replay must cut those batches exactly where the lost run cut them: a sink
that keeps the first write of a batch id (Redis) would otherwise drop a
window that moved to another batch, or keep it twice. A generator or a
fixed set of files cuts the same batches from the same offset anyway; a
live Redis stream or a watched directory does not, since a batch holds
whatever had arrived when it was read.

So the worker that reads a source appends `{"batch": b, "offset": ...}` to
the source's log right after reading batch b, before any of its output
exists (the batch's `SourceBatch.replay`: its end offset, or less when
the offset is big, as the files source's list of every file it read) (a flushed write, so it outlives the process; not fsync'ed, so a
machine crash may lose the newest lines). After a failure or a restart the
reader replays every logged batch from the restore point on with
`until=offset` (`connectors.base.pull_source`), then reads on as usual.
Lines of batches covered by a committed checkpoint are dropped now and then.
"""

from __future__ import annotations

import json
import os
from typing import Any

COMPACT_AFTER = 1000  # lines appended before the log is rewritten without the committed batches


class OffsetLog:
    """The batch end offsets of one source stage, one JSON line per batch (see the module doc)."""

    def __init__(self, directory: str, stage: int) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"stage-{stage}.log")
        self._file: Any = None
        self._appended = 0

    def read(self, from_batch: int) -> dict[int, Any]:
        """The logged end offset of every batch from `from_batch` on (a torn last line is ignored)."""
        found: dict[int, Any] = {}
        try:
            with open(self.path, "rb") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # cut short by a crash while it was written: its batch never ran
                    if isinstance(entry, dict) and isinstance(entry.get("batch"), int) \
                            and entry["batch"] >= from_batch:
                        found[entry["batch"]] = entry.get("offset")
        except FileNotFoundError:
            pass
        return found

    def append(self, batch: int, offset: Any) -> None:
        if self._file is None:
            self._file = open(self.path, "ab")
        self._file.write(json.dumps({"batch": batch, "offset": offset}, sort_keys=True).encode() + b"\n")
        self._file.flush()
        self._appended += 1

    def committed(self, through_batch: int) -> None:
        """Batches up to `through_batch` are in a checkpoint: now and then rewrite the log without them."""
        if self._appended < COMPACT_AFTER:
            return
        kept = self.read(through_batch + 1)
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            for batch in sorted(kept):
                f.write(json.dumps({"batch": batch, "offset": kept[batch]}, sort_keys=True).encode() + b"\n")
        self.close()
        os.replace(tmp, self.path)
        self._appended = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
