"""Checkpoint files: operator-state parts and the manifests that commit them (docs/architecture.md, Fault tolerance).

Layout under a query's checkpoint_dir (`root`):

    root/LOCK                              flock'ed for the life of the query; holds its pid
    root/checkpoints/ckpt-00000007/        one checkpoint (ids only grow)
        worker-1.state ...                 state parts, written by whoever holds the states (`write_part`)
        manifest.json                      written last: the checkpoint exists once this file does

Every file is written atomically (a temporary file in the same directory,
flush + fsync, os.replace), and the manifest's directory is fsync'ed after
the rename, so after a crash a checkpoint directory is either committed
(manifest present, parts complete) or ignored. The manifest carries a
sha256 of its own canonical JSON and of every part, so a torn or altered
checkpoint is detected and the previous one used (`CheckpointStore.latest`).

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
import re
import shutil
import struct
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Mapping

from executor.state import AggregateState, DistinctState, restore_state, snapshot_state
from optimizer.stages import AggregateOp, DistinctOp
from stream_dsl.errors import CheckpointError

CHECKPOINTS_KEPT = 5
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
LOCK_FILE = "LOCK"
_MAGIC = b"SDSTATE\n"
_HEADER = struct.Struct(">8sI")  # magic, format version
_DIR = re.compile(r"ckpt-(\d{8,})")
_QUERY_LINES = 20  # how much of each query text a fingerprint mismatch shows

State = AggregateState | DistinctState
StatefulOp = AggregateOp | DistinctOp


class CheckpointCorrupt(CheckpointError):
    """A checkpoint file is missing, unreadable, or does not match its checksum."""


def fingerprint(query_text: str) -> str:
    """The sha256 hex of the query's stage-plan text: checkpoints of another plan must not be restored."""
    return hashlib.sha256(query_text.encode()).hexdigest()


# ---------------------------------------------------------------- state parts


def write_part(directory: str, name: str, states: Mapping[tuple[int, int], State]) -> str:
    """Write the states ((stage, partition) -> state) to directory/name atomically: a temporary file in
    the same directory, flush + fsync, then os.replace. Returns the sha256 hex of the bytes written."""
    _check_part_name(name)
    snapshots = {(int(stage), int(part)): snapshot_state(state) for (stage, part), state in states.items()}
    data = _HEADER.pack(_MAGIC, FORMAT_VERSION) + pickle.dumps(snapshots, protocol=5)
    _write_atomically(os.path.join(directory, name), data)
    return hashlib.sha256(data).hexdigest()


def read_part(path: str, sha256: str, ops: Mapping[tuple[int, int], StatefulOp]) -> dict[tuple[int, int], State]:
    """Verify the checksum (CheckpointCorrupt, a CheckpointError subclass, on mismatch or unreadable file),
    then restore every state in the file whose key is in `ops` (ops gives each key's operator).

    Keys of `ops` the file does not hold are absent from the result.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CheckpointCorrupt(f"checkpoint part '{path}' cannot be read: {exc.strerror or exc}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise CheckpointCorrupt(f"checkpoint part '{path}': checksum mismatch")
    if len(data) < _HEADER.size or data[:len(_MAGIC)] != _MAGIC:
        raise CheckpointCorrupt(f"checkpoint part '{path}' is not a stream-dsl state file")
    version = _HEADER.unpack_from(data)[1]
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint part '{path}' has format {version}; this stream-dsl reads format "
                              f"{FORMAT_VERSION}")
    try:
        snapshots = _PlainUnpickler(io.BytesIO(data[_HEADER.size:])).load()
        if not isinstance(snapshots, dict):
            raise TypeError(f"a {type(snapshots).__name__}, not a dict of states")
        return {key: restore_state(ops[key], snap) for key, snap in snapshots.items() if key in ops}
    except Exception as exc:  # noqa: BLE001 - whatever a bad file makes the reader raise
        raise CheckpointCorrupt(f"checkpoint part '{path}' cannot be restored: {type(exc).__name__}: {exc}") from exc


class _PlainUnpickler(pickle.Unpickler):
    """Containers, numbers, strings and bytes, plus datetime values: nothing that can run code."""

    _ALLOWED = frozenset({("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"),
                          ("datetime", "timedelta"), ("datetime", "timezone")})

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"a state file may not refer to {module}.{name}")
        return super().find_class(module, name)


def _check_part_name(name: str) -> None:
    if not name or name in (".", "..", MANIFEST, LOCK_FILE) or "/" in name or "\0" in name or name.startswith("."):
        raise ValueError(f"{name!r} is not a valid checkpoint part name (a plain file name, not {MANIFEST})")


# ---------------------------------------------------------------- files


def _write_atomically(path: str, data: bytes) -> None:
    """A temporary file beside `path`, flushed and fsync'ed, then renamed over it."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _canonical(body: Mapping[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


# ---------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """One committed checkpoint: where the query resumes, and which files hold which states."""

    id: int
    path: str  # its directory
    fingerprint: str
    next_batch: int  # the first batch id after it
    watermark: int | None  # the query watermark after batch next_batch - 1
    clocks: dict[int, tuple[int | None, bool]]  # source stage id -> (max_event_ms, exhausted)
    offsets: dict[int, Any]  # source stage id -> source offset after batch next_batch-1 (as JSON gives it back)
    parts: dict[str, str]  # state file name -> sha256 hex
    partitions: dict[tuple[int, int], str]  # (stage, partition) -> state file name holding it
    output_rows: int  # rows the query output took so far (for LIMIT)
    created_at: float
    query: str  # the stage-plan text, for messages

    def part_path(self, name: str) -> str:
        """The path of state part `name` (give it and `parts[name]` to `read_part`)."""
        return os.path.join(self.path, name)


class _Unusable(Exception):
    """Why a committed checkpoint cannot be used (the reason goes to `CheckpointStore.skipped`)."""


class CheckpointStore:
    """The checkpoints of one query under its checkpoint_dir (see the module doc for the layout).

    The driver calls `lock` once, then `begin` and `commit` at group boundaries; state parts are
    written into the directory `begin` returns (`write_part`) before `commit`. On start, `latest`
    gives the checkpoint to resume from.
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
        fd = os.open(os.path.join(self.root, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CheckpointError(f"checkpoint_dir '{self.root}' cannot be locked: {exc.strerror}") from None
            raise CheckpointError(f"checkpoint_dir '{self.root}' is in use by another running query (pid {holder}); "
                                  "stop that query, or give this one another checkpoint_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the lock (idempotent)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ------------------------------------------------------------ writing

    def begin(self) -> tuple[int, str]:
        """The next checkpoint id (one past the highest directory id, committed or not) and its directory."""
        os.makedirs(self.directory, exist_ok=True)
        ids = self._ids()
        next_id = (max(ids) if ids else 0) + 1
        path = self._path(next_id)
        os.mkdir(path)
        return next_id, path

    def commit(self, id: int, *, next_batch: int, watermark: int | None,
               clocks: Mapping[int, tuple[int | None, bool]], offsets: Mapping[int, Any],
               parts: Mapping[str, str], partitions: Mapping[tuple[int, int], str], output_rows: int) -> Checkpoint:
        """Write checkpoint `id`'s manifest atomically (the checkpoint exists from then on), then prune."""
        path = self._path(id)
        if not os.path.isdir(path):
            raise CheckpointError(f"checkpoint {id} was not begun: no directory '{path}'")
        if os.path.exists(os.path.join(path, MANIFEST)):
            raise CheckpointError(f"checkpoint {id} is already committed")
        for name in parts:
            _check_part_name(name)
            if not os.path.isfile(os.path.join(path, name)):
                raise CheckpointError(f"checkpoint {id}: state part '{name}' was not written")
        unknown = sorted({name for name in partitions.values() if name not in parts})
        if unknown:
            raise CheckpointError(f"checkpoint {id}: partitions name state parts it does not list: {unknown}")
        body = {
            "format": FORMAT_VERSION, "id": id, "fingerprint": self.fingerprint, "query": self.query,
            "next_batch": next_batch, "watermark": watermark,
            "clocks": {str(stage): [clock[0], bool(clock[1])] for stage, clock in clocks.items()},
            "offsets": {str(stage): offset for stage, offset in offsets.items()},
            "parts": dict(parts),
            "partitions": sorted([stage, part, name] for (stage, part), name in partitions.items()),
            "output_rows": output_rows, "created_at": time.time(),
        }
        try:
            canonical = _canonical(body)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {id}: source offsets must be JSON values: {exc}") from None
        manifest = dict(json.loads(canonical), sha256=hashlib.sha256(canonical.encode()).hexdigest())
        _write_atomically(os.path.join(path, MANIFEST), json.dumps(manifest, indent=1, sort_keys=True).encode())
        _fsync_dir(path)
        _fsync_dir(self.directory)  # the checkpoint's own directory entry (made by `begin`)
        self._prune(id)
        return _checkpoint(path, json.loads(canonical))

    def _prune(self, newest: int) -> None:
        """Keep the newest `keep` committed checkpoints; drop older ones and uncommitted ones older than `newest`.

        A directory newer than `newest` is left alone: a part may be being written there.
        """
        committed = [i for i in self._ids() if os.path.exists(os.path.join(self._path(i), MANIFEST))]
        kept = set(sorted(committed)[-self.keep:])
        for i in self._ids():
            if i in kept or i > newest:
                continue
            path = self._path(i)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(path, MANIFEST))  # first: a half-deleted directory is uncommitted
            shutil.rmtree(path, ignore_errors=True)

    # ------------------------------------------------------------ reading

    def latest(self) -> Checkpoint | None:
        """The newest usable checkpoint of this query, None when there is none.

        Directories without a manifest (half written) are passed over; so are checkpoints whose manifest
        or parts are damaged, with the reason in `skipped`. The newest good one must be of this query
        (same fingerprint) and of this FORMAT_VERSION, or CheckpointError says what to do.
        """
        self.skipped = []
        if not os.path.isdir(self.directory):
            return None
        for i in sorted(self._ids(), reverse=True):
            path = self._path(i)
            try:
                with open(os.path.join(path, MANIFEST), "rb") as f:
                    text = f.read()
            except FileNotFoundError:
                continue  # not committed
            except OSError as exc:
                self.skipped.append(f"{os.path.basename(path)}: {MANIFEST}: cannot be read: {exc.strerror}")
                continue
            try:
                found = self._load(i, path, text)
            except _Unusable as exc:
                self.skipped.append(f"{os.path.basename(path)}: {exc}")
                continue
            if found.fingerprint != self.fingerprint:
                raise CheckpointError(self._mismatch(found))
            return found
        return None

    def _load(self, id: int, path: str, text: bytes) -> Checkpoint:
        """The checkpoint in directory `path` from its manifest text, its parts verified; _Unusable if damaged."""
        try:
            manifest = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _Unusable(f"{MANIFEST}: not valid JSON ({exc})") from None
        if not isinstance(manifest, dict):
            raise _Unusable(f"{MANIFEST}: not a JSON object")
        version = manifest.get("format")
        if not isinstance(version, int) or isinstance(version, bool):
            raise _Unusable(f"{MANIFEST}: no format number")
        if version != FORMAT_VERSION:
            raise CheckpointError(f"checkpoint '{path}' has format {version!r}; this stream-dsl reads format "
                                  f"{FORMAT_VERSION}. Use a new checkpoint_dir, or delete '{self.root}' to start "
                                  "the query over")
        claimed = manifest.pop("sha256", None)
        if claimed != hashlib.sha256(_canonical(manifest).encode()).hexdigest():
            raise _Unusable(f"{MANIFEST}: checksum mismatch")
        try:
            found = _checkpoint(path, manifest)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _Unusable(f"{MANIFEST}: malformed ({type(exc).__name__}: {exc})") from None
        if found.id != id:
            raise _Unusable(f"{MANIFEST}: belongs to checkpoint {found.id}")
        for name, sha in found.parts.items():
            try:
                _check_part_name(name)
                actual = _file_sha256(found.part_path(name))
            except ValueError as exc:
                raise _Unusable(f"{MANIFEST}: {exc}") from None
            except FileNotFoundError:
                raise _Unusable(f"part {name}: missing") from None
            except OSError as exc:
                raise _Unusable(f"part {name}: cannot be read: {exc.strerror}") from None
            if actual != sha:
                raise _Unusable(f"part {name}: checksum mismatch")
        return found

    def _mismatch(self, found: Checkpoint) -> str:
        return (f"checkpoint_dir '{self.root}' holds checkpoints of a different query "
                f"(ckpt-{found.id:08d}), so this query cannot resume from it.\n"
                f"The checkpoints are of:\n{_excerpt(found.query)}\n"
                f"This query is:\n{_excerpt(self.query)}\n"
                f"Use a new checkpoint_dir for this query, or delete '{self.root}' to start it over from the "
                "beginning.")

    # ------------------------------------------------------------ directories

    def _ids(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return [int(m.group(1)) for m in map(_DIR.fullmatch, names) if m]

    def _path(self, id: int) -> str:
        return os.path.join(self.directory, f"ckpt-{id:08d}")


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint directory as `inspect` finds it: `state` is 'ok', 'uncommitted' or 'damaged'."""

    id: int
    path: str
    state: str
    reason: str = ""
    checkpoint: Checkpoint | None = None
    bytes: int = 0


def inspect(root: str) -> tuple[list[CheckpointInfo], int | None]:
    """Every checkpoint under a checkpoint_dir, newest first, verified; and the pid of a query holding it.

    Read-only: nothing is locked, pruned or repaired (`stream-dsl checkpoints DIR`).
    """
    store = CheckpointStore(root, "", "")
    infos = []
    for i in sorted(store._ids(), reverse=True):
        path = store._path(i)
        size = sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path)
                   if os.path.isfile(os.path.join(path, n)))
        try:
            with open(os.path.join(path, MANIFEST), "rb") as f:
                text = f.read()
        except FileNotFoundError:
            infos.append(CheckpointInfo(i, path, "uncommitted", "no manifest: begun, never committed", bytes=size))
            continue
        try:
            found = store._load(i, path, text)
        except (_Unusable, CheckpointError) as exc:
            infos.append(CheckpointInfo(i, path, "damaged", str(exc), bytes=size))
            continue
        infos.append(CheckpointInfo(i, path, "ok", checkpoint=found, bytes=size))
    return infos, _lock_holder(root)


def _lock_holder(root: str) -> int | None:
    """The pid of the live query that holds root/LOCK, if one does."""
    try:
        fd = os.open(os.path.join(root, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _checkpoint(path: str, body: Mapping[str, Any]) -> Checkpoint:
    """A Checkpoint from a manifest body (JSON: string keys, lists for tuples)."""
    clocks = {}
    for stage, (max_event_ms, exhausted) in body["clocks"].items():
        clocks[int(stage)] = (None if max_event_ms is None else int(max_event_ms), bool(exhausted))
    parts = body["parts"]
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in parts.items()):
        raise TypeError("parts must map file names to sha256 strings")
    partitions = {}
    for stage, part, name in body["partitions"]:
        if name not in parts:
            raise ValueError(f"partition ({stage}, {part}) is in part {name!r}, which is not listed")
        partitions[(int(stage), int(part))] = str(name)
    watermark = body["watermark"]
    return Checkpoint(
        id=int(body["id"]), path=path, fingerprint=str(body["fingerprint"]), next_batch=int(body["next_batch"]),
        watermark=None if watermark is None else int(watermark), clocks=clocks,
        offsets={int(stage): offset for stage, offset in body["offsets"].items()}, parts=dict(parts),
        partitions=partitions, output_rows=int(body["output_rows"]), created_at=float(body["created_at"]),
        query=str(body["query"]),
    )


def _excerpt(text: str, lines: int = _QUERY_LINES) -> str:
    """`text` indented, cut to `lines` lines."""
    rows = text.strip("\n").splitlines() or [""]
    shown = rows[:lines] + ([f"... ({len(rows) - lines} more lines)"] if len(rows) > lines else [])
    return "\n".join("    " + row for row in shown)
