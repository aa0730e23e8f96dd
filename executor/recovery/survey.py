"""What a checkpoint_dir holds, and what a restart does with it: resume, start fresh, or refuse.

A restart (`CheckpointStore.latest`) and `stream-dsl checkpoints DIR`
(`inspect`) both survey the directory with `survey` and decide with
`Survey.decide`, so the tool always says what a restart would do.

The decision, newest checkpoint first: uncommitted ones are passed over;
damaged ones are skipped (with the reason); one of another format refuses
the restart; the first good one is resumed from (when it is of this query;
another query's refuses). When none is good, the directory's record
`LAST_CHECKPOINT` (rewritten at every commit, never pruned) tells a
directory that never held a checkpoint (start from the beginning) from one
whose checkpoints were all damaged or deleted: that one refuses, naming
the directory, what it found and why each checkpoint was skipped. Starting
over would write every window again, so it happens only on request:
`reset` (the `checkpoint_reset` setting) moves the old state aside into
`archive/` first.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from executor.recovery.manifest import (
    DAMAGED,
    INCOMPATIBLE,
    LOCK_FILE,
    OK,
    UNCOMMITTED,
    Checkpoint,
    CheckpointInfo,
    verify_checkpoint,
)
from stream_dsl.connectors.file_writes import PRIVATE

RECORD = "LAST_CHECKPOINT"  # root/RECORD: the newest checkpoint committed in this directory (JSON)
_RECORD_BYTES = 256  # its fixed length (JSON padded with blanks), so it is overwritten in place
ARCHIVE = "archive"  # root/archive/reset-*/: what `reset` moved aside
RESETTABLE = ("checkpoints", "offsets", RECORD)  # the state `reset` moves (dead letters and the LOCK stay)
HOW_TO_RESET = (
    "To start this query from the beginning on purpose, turn on checkpoint_reset for this run "
    "(sd.Context(..., checkpoint_reset=True), SET checkpoint_reset = 'true', or "
    "stream-dsl run --fresh): the old state is moved to '{archive}' first. Or give the query "
    "another checkpoint_dir."
)
_DIR = re.compile(r"ckpt-(\d{8,})")
_QUERY_LINES = 20  # how much of each query text a fingerprint mismatch shows
log = logging.getLogger("stream_dsl.checkpoints")


def checkpoint_ids(directory: str) -> list[int]:
    """The ids of the checkpoint directories (committed or not) in root/checkpoints."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return [int(m.group(1)) for m in map(_DIR.fullmatch, names) if m]


def checkpoint_path(directory: str, id: int) -> str:
    return os.path.join(directory, f"ckpt-{id:08d}")


# ---------------------------------------------------------------- the record of the last commit


def write_record(root: str, checkpoint: Checkpoint) -> None:
    """Note checkpoint as the newest committed in `root` (after its manifest is in place).

    Overwritten in place at a fixed length, not fsync'ed: a rename per commit costs a synced write on
    ext4, and the record only tells "never committed" from "committed, now gone" (a torn record still
    says the latter).
    """
    body = {
        "id": checkpoint.id,
        "next_batch": checkpoint.next_batch,
        "fingerprint": checkpoint.fingerprint,
        "created_at": checkpoint.created_at,
    }
    data = json.dumps(body, sort_keys=True).encode().ljust(_RECORD_BYTES - 1) + b"\n"
    fd = os.open(os.path.join(root, RECORD), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def read_record(root: str) -> dict[str, Any] | None:
    """The record of the newest commit, if the directory has one ({} when it is unreadable: still a record)."""
    try:
        with open(os.path.join(root, RECORD), "rb") as f:
            found = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


# ---------------------------------------------------------------- the survey and the decision


@dataclass(frozen=True)
class Decision:
    """What a restart does: 'resume' (from `checkpoint`), 'fresh', or 'refuse' (`message` says why)."""

    action: str
    checkpoint: Checkpoint | None = None
    skipped: list[str] = field(default_factory=list)
    message: str = ""


@dataclass(frozen=True)
class Survey:
    """The checkpoints of a checkpoint_dir, newest first, each verified, and its record of the last commit."""

    root: str
    infos: list[CheckpointInfo]
    record: dict[str, Any] | None
    has_directory: bool

    def decide(self, fingerprint: str | None = None, query: str = "") -> Decision:
        """What a restart of the query with `fingerprint` does (None: of whichever query these are)."""
        skipped = []
        for info in self.infos:
            name = os.path.basename(info.path)
            if info.state == UNCOMMITTED:
                continue
            if info.state == DAMAGED:
                skipped.append(f"{name}: {info.reason}")
                continue
            if info.state == INCOMPATIBLE:
                message = (
                    f"checkpoint '{info.path}' {info.reason}, so this query cannot resume from "
                    f"checkpoint_dir '{self.root}'.\n" + HOW_TO_RESET.format(archive=self.archive_hint)
                )
                return Decision("refuse", skipped=skipped, message=message)
            found = info.checkpoint
            assert found is not None
            if fingerprint is not None and found.fingerprint != fingerprint:
                return Decision("refuse", found, skipped, self._mismatch(found, query))
            return Decision("resume", found, skipped)
        if skipped or self.record is not None:
            return Decision("refuse", skipped=skipped, message=self._none_usable())
        return Decision("fresh")

    @property
    def archive_hint(self) -> str:
        return os.path.join(self.root, ARCHIVE, "reset-<time>")

    def _none_usable(self) -> str:
        lines = [
            (
                f"checkpoint_dir '{self.root}' held checkpoints, but none of them can be used, so this query "
                "cannot resume from it (starting over would write every window again)."
            )
        ]
        record = self.record
        if record:
            when = dt.datetime.fromtimestamp(float(record.get("created_at", 0))).isoformat(" ", "seconds")
            lines.append(
                f"The newest checkpoint committed here was ckpt-{int(record.get('id', 0)):08d} "
                f"(resuming at batch {record.get('next_batch')}, committed {when})."
            )
        elif record is not None:
            lines.append(f"Its record of the last commit ('{os.path.join(self.root, RECORD)}') is unreadable.")
        directory = os.path.join(self.root, "checkpoints")
        if not self.has_directory:
            lines.append(f"Found: no directory '{directory}' (deleted?).")
        elif not self.infos:
            lines.append(f"Found: '{directory}' holds no checkpoint directories.")
        else:
            lines.append(f"Found in '{directory}':")
            committed = int(record.get("id", -1)) if record else -1
            for i in self.infos:
                gone = (
                    " (it was committed: its manifest was deleted)"
                    if i.state == UNCOMMITTED and i.id == committed
                    else ""
                )
                lines.append(f"    {os.path.basename(i.path)}: {i.state}: {i.reason}{gone}")
        lines.append(HOW_TO_RESET.format(archive=self.archive_hint))
        return "\n".join(lines)

    def _mismatch(self, found: Checkpoint, query: str) -> str:
        return (
            f"checkpoint_dir '{self.root}' holds checkpoints of a different query "
            f"(ckpt-{found.id:08d}), so this query cannot resume from it.\n"
            f"The checkpoints are of:\n{_excerpt(found.query)}\n"
            f"This query is:\n{_excerpt(query)}\n" + HOW_TO_RESET.format(archive=self.archive_hint)
        )


def survey(root: str, *, every: bool = False) -> Survey:
    """Verify the checkpoints under `root`, newest first. A restart stops at the first that decides
    (`every` False: good or of another format); the tool verifies `every` one. Read-only."""
    directory = os.path.join(root, "checkpoints")
    infos = []
    for id in sorted(checkpoint_ids(directory), reverse=True):
        info = verify_checkpoint(id, checkpoint_path(directory, id))
        infos.append(info)
        if not every and info.state in (OK, INCOMPATIBLE):
            break
    return Survey(root, infos, read_record(root), os.path.isdir(directory))


def _excerpt(text: str, lines: int = _QUERY_LINES) -> str:
    """`text` indented, cut to `lines` lines."""
    rows = text.strip("\n").splitlines() or [""]
    shown = rows[:lines] + ([f"... ({len(rows) - lines} more lines)"] if len(rows) > lines else [])
    return "\n".join("    " + row for row in shown)


# ---------------------------------------------------------------- starting fresh on purpose


def reset(root: str) -> str | None:
    """Start the query in `root` from the beginning: move its checkpoints, offset logs and record into
    root/archive/reset-<time>/ (the directory's lock held meanwhile); the archive, None if nothing was there.

    The sink keeps what it holds; the fresh run's batch ids continue after its last committed one.
    """
    from executor.recovery.store import CheckpointStore

    present = [name for name in RESETTABLE if os.path.lexists(os.path.join(root, name))]
    if not present:
        return None
    store = CheckpointStore(root, "", "")
    store.lock()
    try:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        archive = os.path.join(root, ARCHIVE, f"reset-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6}")
        os.makedirs(archive, mode=0o700)
        for name in present:
            os.rename(os.path.join(root, name), os.path.join(archive, name))
    finally:
        store.unlock()
    log.warning(
        "checkpoint_reset: the query in checkpoint_dir '%s' starts from the beginning; its old state was moved to '%s'",
        root,
        archive,
    )
    return archive


# ---------------------------------------------------------------- the tool


def inspect(root: str) -> tuple[list[CheckpointInfo], int | None]:
    """Every checkpoint under a checkpoint_dir, newest first, verified; and the pid of a query holding it.

    Read-only: nothing is locked, pruned or repaired (`stream-dsl checkpoints DIR`).
    """
    return survey(root, every=True).infos, lock_holder(root)


def lock_holder(root: str) -> int | None:
    """The pid of the live query that holds root/LOCK, if one does."""
    import fcntl

    try:
        fd = os.open(os.path.join(root, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
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
