"""Checkpoint files: operator-state parts and the manifests that commit them (docs/architecture.md, Fault tolerance).

Layout under a query's checkpoint_dir (`root`):

    root/LOCK                              flock'ed for the life of the query; holds its pid
    root/LAST_CHECKPOINT                   the newest committed checkpoint (`checkpoint_survey`)
    root/checkpoints/ckpt-00000007/        one checkpoint (ids only grow)
        worker-1.state ...                 state parts, shipped by the workers and written by the driver
        manifest.json                      written last: the checkpoint exists once this file does
    root/offsets/<query>/stage-N.log       where each batch of source stage N ended (`offset_log.py`)
    root/archive/reset-<time>/             old state moved aside by `checkpoint_reset`

Every file is written atomically (an exclusively created temporary file
in the same directory, flush + fsync, os.replace: `stream_dsl.connectors.file_writes`;
retried a few times while the disk is full), and the manifest's directory
is fsync'ed after the rename, so after a crash a checkpoint directory is
either committed (manifest present, parts complete) or ignored. The
manifest carries a sha256 of its own canonical JSON and of every part, so
a torn or altered checkpoint is detected and the previous one used
(`CheckpointStore.latest`; `checkpoint_manifest.verify_checkpoint`).

The LOCK is checked before every checkpoint is begun and committed: when
it was deleted or replaced (another program may own the directory now),
the query fails with `OwnershipLost` instead of writing on.

Part files are a header (magic, FORMAT_VERSION) and a pickle (protocol 5)
of {(stage, partition): state snapshot} (`state.snapshot_state`). They are
unpickled with only plain values allowed (no classes but datetime's), so a
checkpoint directory cannot make the reader run code.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import time
from typing import Any, Mapping

from executor.recovery.manifest import (
    FORMAT_VERSION,
    LOCK_FILE,
    MANIFEST,
    Checkpoint,
    CheckpointInfo,
    check_part_name,
    checkpoint_of,
    manifest_bytes,
)
from executor.recovery.survey import checkpoint_ids, checkpoint_path, inspect, survey, write_record
from executor.state.distinct import DistinctState
from executor.state.top_n import TopNState
from executor.state.interval_join import IntervalJoinState
from optimizer.physical.interval_join import IntervalJoinOp
from executor.state.stream_join import StreamJoinState
from optimizer.physical.stream_join import StreamJoinOp
from executor.state.operators import AggregateState
from executor.state.unmatched import UnmatchedState
from executor.state.snapshots import restore_state, snapshot_state
from optimizer.physical.stages import AggregateOp, DistinctOp, TopNOp, UnmatchedRowsOp
from stream_dsl.errors import CheckpointError
from stream_dsl.connectors.file_writes import error_text, with_retries, write_atomically

CHECKPOINTS_KEPT = 5
_MAGIC = b"SDSTATE\n"
_HEADER = struct.Struct(">8sI")  # magic, format version
_check_part_name = check_part_name  # the names this module had before the manifest code moved out

__all__ = [
    "CHECKPOINTS_KEPT",
    "FORMAT_VERSION",
    "MANIFEST",
    "LOCK_FILE",
    "Checkpoint",
    "CheckpointInfo",
    "CheckpointCorrupt",
    "CheckpointStore",
    "OwnershipLost",
    "fingerprint",
    "encode_part",
    "write_part_data",
    "write_part",
    "read_part_data",
    "decode_part",
    "read_part",
    "inspect",
]

State = AggregateState | DistinctState | TopNState | IntervalJoinState | StreamJoinState | UnmatchedState
StatefulOp = AggregateOp | DistinctOp | TopNOp | IntervalJoinOp | StreamJoinOp | UnmatchedRowsOp


class CheckpointCorrupt(CheckpointError):
    """A checkpoint file is missing, unreadable, or does not match its checksum."""


class OwnershipLost(CheckpointError):
    """The checkpoint_dir's LOCK was deleted or replaced while this query held it: another program may own
    the directory now, so this query stops writing to it."""


def fingerprint(query_text: str) -> str:
    """The sha256 hex of the query's stage-plan text: checkpoints of another plan must not be restored."""
    return hashlib.sha256(query_text.encode()).hexdigest()


# ---------------------------------------------------------------- state parts


def encode_part(states: Mapping[tuple[int, int], State]) -> bytes:
    """The bytes of a state part holding `states` ((stage, partition) -> state): what a worker ships to the
    driver, which writes them (`write_part_data`)."""
    snapshots = {(int(stage), int(part)): snapshot_state(state) for (stage, part), state in states.items()}
    return _HEADER.pack(_MAGIC, FORMAT_VERSION) + pickle.dumps(snapshots, protocol=5)


def write_part_data(directory: str, name: str, data: bytes) -> str:
    """Write a state part's bytes to directory/name atomically: a temporary file in the same directory,
    flush + fsync, then os.replace. Returns the sha256 hex of the bytes written."""
    _check_part_name(name)
    _write_retried(os.path.join(directory, name), data, "checkpoint part")
    return hashlib.sha256(data).hexdigest()


def write_part(directory: str, name: str, states: Mapping[tuple[int, int], State]) -> str:
    """Write the states ((stage, partition) -> state) to directory/name atomically (`write_part_data`)."""
    return write_part_data(directory, name, encode_part(states))


def read_part_data(path: str, sha256: str) -> bytes:
    """A state part's bytes, checksum verified (CheckpointCorrupt, a CheckpointError subclass, on mismatch
    or unreadable file): what the driver hands a worker that restores from it."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CheckpointCorrupt(f"checkpoint part '{path}' cannot be read: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointCorrupt(f"checkpoint part '{path}': checksum mismatch")
    return data


def decode_part(data: bytes, path: str, ops: Mapping[tuple[int, int], StatefulOp]) -> dict[tuple[int, int], State]:
    """Restore every state in part `data` (read from `path`, named in errors) whose key is in `ops` (ops
    gives each key's operator); keys of `ops` the part does not hold are absent from the result."""
    if len(data) < _HEADER.size or data[: len(_MAGIC)] != _MAGIC:
        raise CheckpointCorrupt(f"checkpoint part '{path}' is not a stream-dsl state file")
    version = _HEADER.unpack_from(data)[1]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint part '{path}' has format {version}; this stream-dsl reads format {FORMAT_VERSION}"
        )
    try:
        snapshots = _PlainUnpickler(io.BytesIO(data[_HEADER.size :])).load()
        if not isinstance(snapshots, dict):
            raise TypeError(f"a {type(snapshots).__name__}, not a dict of states")
        return {key: restore_state(ops[key], snap) for key, snap in snapshots.items() if key in ops}
    except Exception as exc:  # noqa: BLE001 - whatever a bad file makes the reader raise
        raise CheckpointCorrupt(f"checkpoint part '{path}' cannot be restored: {type(exc).__name__}: {exc}") from exc


def read_part(path: str, sha256: str, ops: Mapping[tuple[int, int], StatefulOp]) -> dict[tuple[int, int], State]:
    """Verify the checksum, then restore every state in the file whose key is in `ops` (`decode_part`)."""
    return decode_part(read_part_data(path, sha256), path, ops)


class _PlainUnpickler(pickle.Unpickler):
    """Containers, numbers, strings and bytes, plus datetime values: nothing that can run code."""

    _ALLOWED = frozenset(
        {
            ("datetime", "datetime"),
            ("datetime", "date"),
            ("datetime", "time"),
            ("datetime", "timedelta"),
            ("datetime", "timezone"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"a state file may not refer to {module}.{name}")
        return super().find_class(module, name)


# ---------------------------------------------------------------- files


def _write_retried(path: str, data: bytes, what: str) -> None:
    """`data` into `path` atomically (`file_writes.write_atomically`), retried while the disk is full."""
    try:
        with_retries(lambda: write_atomically(path, data))
    except OSError as exc:
        raise CheckpointError(f"{what} '{path}' cannot be written: {error_text(exc)}") from None


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- checkpoints


class CheckpointStore:
    """The checkpoints of one query under its checkpoint_dir (see the module doc for the layout).

    The driver calls `lock` once, then `begin` and `commit` at group boundaries; state parts are
    written into the directory `begin` returns (`write_part`) before `commit`. On start, `latest`
    gives the checkpoint to resume from. Both `begin` and `commit` first check that the directory is
    still this store's (`check_owner`).
    """

    def __init__(self, root: str, fingerprint: str, query: str, keep: int = CHECKPOINTS_KEPT) -> None:
        if keep < 1:
            raise ValueError("a checkpoint store keeps at least 1 checkpoint")
        self.root = root
        self.fingerprint = fingerprint
        self.query = query
        self.keep = keep
        self.skipped: list[str] = []  # why `latest` passed over committed checkpoints (its last call)
        self._lock_fd: int | None = None
        self._owned: tuple[int, int] | None = None  # (device, inode) of the LOCK file this store holds

    @property
    def directory(self) -> str:
        return os.path.join(self.root, "checkpoints")

    # ------------------------------------------------------------ the lock

    def lock(self) -> None:
        """Hold root/LOCK for the query's life, so two running queries never share a checkpoint_dir.

        flock: the lock goes with the process, so a dead process's lock is free. The file holds our pid
        for the message another query gets.
        """
        if self._lock_fd is not None:
            return
        os.makedirs(self.root, exist_ok=True)
        path = os.path.join(self.root, LOCK_FILE)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise CheckpointError(f"checkpoint_dir '{self.root}' cannot be locked: '{path}': {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CheckpointError(f"checkpoint_dir '{self.root}' cannot be locked: {exc.strerror}") from None
            raise CheckpointError(
                f"checkpoint_dir '{self.root}' is in use by another running query (pid {holder}); "
                "stop that query, or give this one another checkpoint_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        st = os.fstat(fd)
        self._lock_fd, self._owned = fd, (st.st_dev, st.st_ino)

    def unlock(self) -> None:
        """Release the lock (idempotent)."""
        fd, self._lock_fd, self._owned = self._lock_fd, None, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def check_owner(self) -> None:
        """OwnershipLost when root/LOCK is no longer the file this store locked (deleted, or replaced by
        another program's): that program may be writing here, so this query must stop."""
        if self._owned is None:
            return
        path = os.path.join(self.root, LOCK_FILE)
        try:
            st = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            now = "it was deleted"
        except OSError as exc:
            now = f"it cannot be checked ({exc.strerror})"
        else:
            if (st.st_dev, st.st_ino) == self._owned:
                return
            now = f"it was replaced (it names pid {_pid_in(path)})"
        raise OwnershipLost(
            f"checkpoint_dir '{self.root}' is no longer this query's (pid {os.getpid()}): its lock "
            f"file '{path}' is not the one this query locked: {now}. Another program may own the "
            "directory now, so this query stops without writing to it again. Never delete LOCK "
            "while a query runs; use `stream-dsl checkpoints DIR` to see who holds it."
        )

    # ------------------------------------------------------------ writing

    def begin(self) -> tuple[int, str]:
        """The next checkpoint id (one past the highest directory id, committed or not) and its directory."""
        self.check_owner()
        try:
            os.makedirs(self.directory, exist_ok=True)
            ids = self._ids()
            next_id = (max(ids) if ids else 0) + 1
            path = self._path(next_id)
            with_retries(lambda: os.mkdir(path))
        except OSError as exc:
            raise CheckpointError(
                f"checkpoint_dir '{self.root}': cannot make a checkpoint directory: {error_text(exc)}"
            ) from None
        return next_id, path

    def commit(
        self,
        id: int,
        *,
        next_batch: int,
        watermark: int | None,
        clocks: Mapping[int, tuple[int | None, bool]],
        offsets: Mapping[int, Any],
        parts: Mapping[str, str],
        partitions: Mapping[tuple[int, int], str],
        output_rows: int,
    ) -> Checkpoint:
        """Write checkpoint `id`'s manifest atomically (the checkpoint exists from then on), then prune."""
        self.check_owner()
        path = self._path(id)
        if not os.path.isdir(path):
            raise CheckpointError(f"checkpoint {id} was not begun: no directory '{path}'")
        if os.path.exists(os.path.join(path, MANIFEST)):
            raise CheckpointError(f"checkpoint {id} is already committed")
        for name in parts:
            check_part_name(name)
            if not os.path.isfile(os.path.join(path, name)):
                raise CheckpointError(f"checkpoint {id}: state part '{name}' was not written")
        unknown = sorted({name for name in partitions.values() if name not in parts})
        if unknown:
            raise CheckpointError(f"checkpoint {id}: partitions name state parts it does not list: {unknown}")
        body = {
            "format": FORMAT_VERSION,
            "id": id,
            "fingerprint": self.fingerprint,
            "query": self.query,
            "next_batch": next_batch,
            "watermark": watermark,
            "clocks": {str(stage): [clock[0], bool(clock[1])] for stage, clock in clocks.items()},
            "offsets": {str(stage): offset for stage, offset in offsets.items()},
            "parts": dict(parts),
            "partitions": sorted([stage, part, name] for (stage, part), name in partitions.items()),
            "output_rows": output_rows,
            "created_at": time.time(),
        }
        try:
            manifest = manifest_bytes(body)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {id}: source offsets must be JSON values: {exc}") from None
        _write_retried(os.path.join(path, MANIFEST), manifest, f"checkpoint {id}: manifest")
        _fsync_dir(path)
        _fsync_dir(self.directory)  # the checkpoint's own directory entry (made by `begin`)
        committed = checkpoint_of(path, json.loads(manifest))
        with contextlib.suppress(OSError):  # only a message's detail: never fail a committed checkpoint over it
            write_record(self.root, committed)
        self._prune(id)
        return committed

    def _prune(self, newest: int) -> None:
        """Keep the newest `keep` committed checkpoints; drop older ones and uncommitted ones older than `newest`.

        A directory newer than `newest` is left alone: a part may be being written there.
        """
        committed = [i for i in self._ids() if os.path.exists(os.path.join(self._path(i), MANIFEST))]
        kept = set(sorted(committed)[-self.keep :])
        for i in self._ids():
            if i in kept or i > newest:
                continue
            path = self._path(i)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(path, MANIFEST))  # first: a half-deleted directory is uncommitted
            shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------ reading

    def latest(self) -> Checkpoint | None:
        """The newest usable checkpoint of this query; None when the directory never held one.

        Directories without a manifest (half written) are passed over; so are checkpoints whose manifest
        or parts are damaged, with the reason in `skipped`. CheckpointError when the newest good one is
        of another query or format, or when checkpoints were committed here but none is usable now
        (`checkpoint_survey.Survey.decide`, which `stream-dsl checkpoints` uses too).
        """
        decision = survey(self.root).decide(self.fingerprint, self.query)
        self.skipped = decision.skipped
        if decision.action == "refuse":
            raise CheckpointError(decision.message)
        return decision.checkpoint

    # ------------------------------------------------------------ directories

    def _ids(self) -> list[int]:
        return checkpoint_ids(self.directory)

    def _path(self, id: int) -> str:
        return checkpoint_path(self.directory, id)


def _pid_in(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(32).decode(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"
