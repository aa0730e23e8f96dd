"""Where each micro-batch of a source ended, logged before the batch is processed.

A checkpoint says where the sources were after its batch; the batches run
after it may already be in the sink when a worker or the driver dies. A
replay must cut those batches exactly where the lost run cut them: a sink
that keeps the first write of a batch id (Redis) would otherwise drop a
window that moved to another batch, or keep it twice. A generator or a
fixed set of files cuts the same batches from the same offset anyway; a
live Redis stream or a watched directory does not, since a batch holds
whatever had arrived when it was read.

So `{"batch": b, "offset": ...}` is appended to the source's log after
batch b is read and before any of its output is written (the batch's
`SourceBatch.replay`: its end offset, or less when the offset is big, as
the files source's list of every file it read) (a flushed write, so it
outlives the process; not fsync'ed, so a machine crash may lose the
newest lines). The inline executor appends itself; a worker sends the
entry to the driver, which appends it and holds the batch's output until
it has (`executor/multiproc/batch_logs.py`). After a failure or a restart the
reader replays every logged batch from the restore point on with
`until=offset` (`connectors.base.pull_source`), then reads on as usual.
Lines of batches covered by a committed checkpoint are dropped now and then.

Before logging a batch the log checks that the checkpoint_dir's LOCK
is still the file the query locked when it started (the log lives in
`<checkpoint_dir>/offsets/<query>/`): when it was deleted or replaced,
another program may own the directory, and no further batch is read
(`OwnershipLost`), so a query that lost its directory stops writing within
a batch instead of at its next checkpoint.
"""

from __future__ import annotations

import json
import os
from typing import Any

from executor.recovery.store import OwnershipLost
from executor.recovery.manifest import LOCK_FILE
from stream_dsl.errors import CheckpointError
from stream_dsl.connectors.file_writes import append_to, error_text, open_append, with_retries, write_atomically

COMPACT_AFTER = 1000  # lines appended before the log is rewritten without the committed batches


class OffsetLog:
    """The batch end offsets of one source stage, one JSON line per batch (see the module doc).

    Appends go through an O_NOFOLLOW descriptor (a planted symlink is an error, never followed) to a
    0600 file; compaction writes an exclusively created temporary file (`stream_dsl.connectors.file_writes`).
    A full disk is retried a few times, then fails the query with the log's path.
    """

    def __init__(self, directory: str, stage: int) -> None:
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, f"stage-{stage}.log")
        self._fd: int | None = None
        self._appended = 0
        self._lock = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(directory))), LOCK_FILE)
        self._owned = _identity(self._lock)  # the checkpoint_dir's LOCK as the query took it (see `append`)

    def read(self, from_batch: int) -> dict[int, Any]:
        """The logged end offset of every batch from `from_batch` on (a torn line is ignored)."""
        found: dict[int, Any] = {}
        try:
            with open(self.path, "rb") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue  # cut short by a crash while it was written: its batch never ran
                    if isinstance(entry, dict) and isinstance(entry.get("batch"), int) and entry["batch"] >= from_batch:
                        found[entry["batch"]] = entry.get("offset")
        except FileNotFoundError:
            pass
        return found

    def append(self, batch: int, offset: Any) -> None:
        """Log where `batch` ended, before it runs. OwnershipLost when the checkpoint_dir's LOCK is no
        longer the one this query took: another program may own the directory, so no batch runs here."""
        if self._owned is not None and _identity(self._lock) != self._owned:
            raise OwnershipLost(
                f"checkpoint_dir '{os.path.dirname(self._lock)}' is no longer this query's: its "
                f"lock file '{self._lock}' was deleted or replaced since the query started. "
                "Another program may own the directory now, so this query stops before batch "
                f"{batch}. Never delete LOCK while a query runs."
            )
        line = json.dumps({"batch": batch, "offset": offset}, sort_keys=True).encode() + b"\n"
        self._io(lambda: append_to(self._open(), line))
        self._appended += 1

    def _open(self) -> int:
        if self._fd is None:
            self._fd = open_append(self.path)
        return self._fd

    def _io(self, write: Any) -> None:
        try:
            with_retries(write)
        except OSError as exc:
            raise CheckpointError(f"offset log '{self.path}' cannot be written: {error_text(exc)}") from None

    def committed(self, through_batch: int) -> None:
        """Batches up to `through_batch` are in a checkpoint: now and then rewrite the log without them."""
        if self._appended < COMPACT_AFTER:
            return
        kept = self.read(through_batch + 1)
        data = b"".join(
            json.dumps({"batch": batch, "offset": kept[batch]}, sort_keys=True).encode() + b"\n"
            for batch in sorted(kept)
        )
        self._io(lambda: write_atomically(self.path, data, fsync=False))
        self.close()
        self._appended = 0

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path` (not through a symlink); None when there is none."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return st.st_dev, st.st_ino
