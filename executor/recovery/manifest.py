"""A checkpoint's manifest: what it holds (`Checkpoint`) and the one check of it (`verify_checkpoint`).

A restart and `stream-dsl checkpoints DIR` both judge a checkpoint
directory with `verify_checkpoint`, so they never disagree. It checks the
manifest's own checksum before anything the manifest says, its format
included: a manifest whose `format` field was edited is damaged (and
skipped), not a checkpoint of another format (which refuses the restart).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
LOCK_FILE = "LOCK"

OK, UNCOMMITTED, DAMAGED, INCOMPATIBLE = "ok", "uncommitted", "damaged", "incompatible"


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


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint directory as `verify_checkpoint` finds it.

    `state`: 'ok'; 'uncommitted' (no manifest: begun, never committed);
    'damaged' (`reason` says why: it is skipped); or 'incompatible' (intact,
    but of another FORMAT_VERSION: a restart refuses it).
    """

    id: int
    path: str
    state: str
    reason: str = ""
    checkpoint: Checkpoint | None = None
    bytes: int = 0


class _Damaged(Exception):
    """Why a committed checkpoint cannot be used."""


def verify_checkpoint(id: int, path: str) -> CheckpointInfo:
    """Checkpoint `id` in directory `path`, verified: its manifest's checksum, then its format, its fields,
    and the checksum of every state part it lists. Read-only."""
    size = _size(path)
    try:
        with open(os.path.join(path, MANIFEST), "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return CheckpointInfo(id, path, UNCOMMITTED, "no manifest: begun, never committed", bytes=size)
    except OSError as exc:
        return CheckpointInfo(id, path, DAMAGED, f"{MANIFEST}: cannot be read: {exc.strerror}", bytes=size)
    try:
        manifest = _verified_manifest(text)
        version = manifest.get("format")
        if not isinstance(version, int) or isinstance(version, bool):
            raise _Damaged(f"{MANIFEST}: no format number")
        if version != FORMAT_VERSION:
            return CheckpointInfo(
                id,
                path,
                INCOMPATIBLE,
                f"has format {version!r}; this stream-dsl reads format {FORMAT_VERSION}",
                bytes=size,
            )
        found = _parse(id, path, manifest)
    except _Damaged as exc:
        return CheckpointInfo(id, path, DAMAGED, str(exc), bytes=size)
    return CheckpointInfo(id, path, OK, checkpoint=found, bytes=size)


def _verified_manifest(text: bytes) -> dict[str, Any]:
    """The manifest's fields once its own checksum matches them (it is checked first)."""
    try:
        manifest = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Damaged(f"{MANIFEST}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise _Damaged(f"{MANIFEST}: not a JSON object")
    claimed = manifest.pop("sha256", None)
    try:
        actual = hashlib.sha256(canonical(manifest).encode()).hexdigest()
    except (TypeError, ValueError):
        actual = None
    if claimed != actual:
        raise _Damaged(f"{MANIFEST}: checksum mismatch")
    return manifest


def _parse(id: int, path: str, manifest: Mapping[str, Any]) -> Checkpoint:
    try:
        found = checkpoint_of(path, manifest)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _Damaged(f"{MANIFEST}: malformed ({type(exc).__name__}: {exc})") from None
    if found.id != id:
        raise _Damaged(f"{MANIFEST}: belongs to checkpoint {found.id}")
    for name, sha in found.parts.items():
        try:
            check_part_name(name)
            actual = file_sha256(found.part_path(name))
        except ValueError as exc:
            raise _Damaged(f"{MANIFEST}: {exc}") from None
        except FileNotFoundError:
            raise _Damaged(f"part {name}: missing") from None
        except OSError as exc:
            raise _Damaged(f"part {name}: cannot be read: {exc.strerror}") from None
        if actual != sha:
            raise _Damaged(f"part {name}: checksum mismatch")
    return found


def manifest_bytes(body: Mapping[str, Any]) -> bytes:
    """The manifest file of `body`: its fields and the sha256 of their canonical JSON."""
    text = canonical(body)
    manifest = dict(json.loads(text), sha256=hashlib.sha256(text.encode()).hexdigest())
    return json.dumps(manifest, indent=1, sort_keys=True).encode()


def canonical(body: Mapping[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def check_part_name(name: str) -> None:
    if not name or name in (".", "..", MANIFEST, LOCK_FILE) or "/" in name or "\0" in name or name.startswith("."):
        raise ValueError(f"{name!r} is not a valid checkpoint part name (a plain file name, not {MANIFEST})")


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _size(path: str) -> int:
    """The bytes of the files in `path` (a running query may be pruning it meanwhile: what is gone counts 0)."""
    total = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    except OSError:
        return 0
    return total


def checkpoint_of(path: str, body: Mapping[str, Any]) -> Checkpoint:
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
        id=int(body["id"]),
        path=path,
        fingerprint=str(body["fingerprint"]),
        next_batch=int(body["next_batch"]),
        watermark=None if watermark is None else int(watermark),
        clocks=clocks,
        offsets={int(stage): offset for stage, offset in body["offsets"].items()},
        parts=dict(parts),
        partitions=partitions,
        output_rows=int(body["output_rows"]),
        created_at=float(body["created_at"]),
        query=str(body["query"]),
    )
