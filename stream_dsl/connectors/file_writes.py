"""How stream-dsl writes the files it owns (sink parts, checkpoint files, logs, the REPL history).

- Whole files (`write_atomically`) go to a temporary file created
  exclusively beside the target (`tempfile.mkstemp`: O_CREAT|O_EXCL, a name
  nobody can predict, mode 0600), are written with `os.write`, fsync'ed and
  renamed over the target. A symlink planted at the target is replaced by
  the rename, never followed; one planted at a temporary name cannot be,
  since the name is unknown in advance and O_EXCL refuses an existing file.
- Appended logs (`append_line`, `open_append`) are opened with O_NOFOLLOW
  and created 0600: a planted symlink is an error, never a redirection.
- Files that hold data or history are 0600 whatever the umask
  (`make_private`), so other users of the machine cannot read them.
- A full disk (ENOSPC, EDQUOT) is often brief (a log rotated, a temporary
  file removed): `with_retries` tries a write `WRITE_ATTEMPTS` times, with a
  doubling pause between tries, before it lets the error end the query.
  Each failed try removes its temporary file first, so retries do not fill
  the disk further.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from typing import Callable, TypeVar

from stream_dsl.secrets import masked_logger

log = masked_logger("stream_dsl.connectors.file_writes")

T = TypeVar("T")

PRIVATE = 0o600
FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})
WRITE_ATTEMPTS = 4  # tries of a write that finds the disk full
BACKOFF_S = 0.25  # the pause after the first failed try, doubled after each: 0.25 + 0.5 + 1 s in all
sleep = time.sleep  # tests replace it, so retries cost no wall-clock time


def write_atomically(path: str, data: bytes, *, fsync: bool = True) -> None:
    """`data` into `path`: an exclusive temporary file beside it (0600), written, fsync'ed, renamed over it."""
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")
    try:
        try:
            _write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def open_append(path: str) -> int:
    """A descriptor appending to `path` (created 0600); a symlink at `path` is refused (ELOOP), never followed."""
    return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE)


def ends_torn(fd: int) -> bool:
    """Whether the file ends in the middle of a line (a write cut short by a crash or a full disk)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def append_line(path: str, line: bytes, *, fsync: bool = True) -> None:
    """Append one line to `path` (`append_to`), then fsync."""
    fd = open_append(path)
    try:
        append_to(fd, line)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def append_to(fd: int, line: bytes) -> None:
    """Append one line with a single write on an O_APPEND descriptor: it is whole or torn last.

    After a torn last line (a crash, or a full disk that took half of it) a newline comes first, so the
    torn part stays a line of its own, which readers ignore, instead of swallowing this one.
    """
    _write_all(fd, b"\n" + line if ends_torn(fd) else line)


def make_private(path: str) -> None:
    """Create `path` if missing and make it 0600 (it may have been made world-readable before)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
    try:
        os.fchmod(fd, PRIVATE)
    finally:
        os.close(fd)


def with_retries(write: Callable[[], T], *, attempts: int | None = None) -> T:
    """Run `write`; while it fails on a full disk, pause (doubling) and run it again, `attempts` times in all.

    The last error is raised with `attempts` and `waited_s` set on it, for the message (`error_text`).
    """
    attempts = WRITE_ATTEMPTS if attempts is None else attempts
    waited = 0.0
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except OSError as exc:
            if exc.errno not in FULL_DISK or attempt == attempts:
                exc.attempts, exc.waited_s = attempt, waited  # type: ignore[attr-defined]
                raise
            pause = BACKOFF_S * 2 ** (attempt - 1)
            log.warning(
                "%s (%s); retrying in %.2gs (attempt %d of %d)", exc.strerror, exc.filename, pause, attempt, attempts
            )
            sleep(pause)
            waited += pause
    raise AssertionError("unreachable")


def error_text(exc: OSError) -> str:
    """What went wrong, for a message: the OS's words, and the tries a full disk got."""
    text = exc.strerror or str(exc)
    tries = getattr(exc, "attempts", 1)
    if exc.errno in FULL_DISK and tries > 1:
        text += f" (tried {tries} times over {getattr(exc, 'waited_s', 0.0):.2g}s)"
    return text
