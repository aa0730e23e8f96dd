"""The files source's listing of a watched path: only what appeared since the last look.

A watched directory is polled once per micro-batch. Listing it in full
every time (a stat per file, a sort of every name) made an idle batch cost
about 100 ms once 20k files had been read, so `Listing` remembers every
name it has seen and looks at new names only:

- A directory is read with one `os.scandir` (no stat per entry: the entry
  type comes with the name); only names not seen before are checked
  (visible, the format's extension, a regular file). When the directory's
  mtime is the one of the last scan and that scan began at least
  `SETTLED_NS` after it, nothing was added, removed or renamed since, and
  the directory is not read at all: an idle batch costs one stat.
- A directory holding a files sink's `_committed` log lists the files the
  log names (`files_sink_log.live_files`), read again only when the log's
  size or mtime changed.
- A glob is expanded each time (it may span directories); only new paths
  are stat'ed.

What is listed is what `files.list_files` lists: in a directory the visible
files with the format's extensions, in a log's directory the files it
names, for a glob every visible file it matches.

A name is considered once: a file rewritten in place under a name already
seen is not read again, and a file renamed (or written under a temporary
name and renamed into place, as the files sink does) is new under its new
name. Hidden names ('.', '_') are never listed, so a writer's temporary
file is picked up only once it is renamed to its final name.
"""

from __future__ import annotations

import glob
import os
import time
from typing import TYPE_CHECKING

from stream_dsl.connectors.file_formats import format_of
from stream_dsl.connectors.files_sink_log import COMMITTED_LOG, live_files
from stream_dsl.errors import ConnectorError

if TYPE_CHECKING:
    from stream_dsl.connectors.files import FileOptions

SETTLED_NS = 2_000_000_000  # a directory mtime this old at a scan is finer than any later change's (coarse clocks)


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _visible(name: str) -> bool:
    return not name.startswith((".", "_"))


class Listing:
    """New data files under a source's `path`, sorted, each returned once (module doc)."""

    def __init__(self, options: FileOptions, what: str) -> None:
        self.options = options
        self.what = what
        self._seen: set[str] = set()  # names (a directory) or paths (a glob, a log) looked at before
        self._stamp: tuple[int, int] | None = None  # what the last full look saw: (mtime_ns, size) of dir or log
        self._looked_at_ns = 0  # wall clock when that look began
        self.scans = 0  # full looks at the directory, the log or the glob (tests and benchmarks read it)

    def new_files(self) -> list[str]:
        """Data files that appeared since the last call (the first call: every file there is), by path."""
        path = self.options.path
        if _is_glob(path):
            return self._new_in_glob(path)
        if os.path.isdir(path):
            log = os.path.join(path, COMMITTED_LOG)
            if os.path.isfile(log):
                return self._new_in_log(path, log)
            return self._new_in_directory(path)
        if os.path.isfile(path):
            return self._first_seen([path])
        if os.path.isdir(os.path.dirname(path) or "."):
            return []  # a file not written yet
        raise ConnectorError(f"{self.what}: path '{path}' does not exist")

    def _unchanged(self, target: str) -> bool:
        """Whether `target` (a directory or a log) is exactly as at the last look, which then was settled."""
        try:
            st = os.stat(target)
        except FileNotFoundError:
            return False
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp and self._looked_at_ns - st.st_mtime_ns >= SETTLED_NS:
            return True
        self._stamp, self._looked_at_ns = stamp, time.time_ns()
        self.scans += 1
        return False

    def _new_in_directory(self, directory: str) -> list[str]:
        if self._unchanged(directory):
            return []
        wanted = self.options.format
        found = []
        with os.scandir(directory) as entries:
            for entry in entries:
                name = entry.name
                if name in self._seen:
                    continue
                self._seen.add(name)
                if not _visible(name):
                    continue
                fmt = format_of(name)
                if fmt is None or (wanted is not None and fmt != wanted):
                    continue
                if entry.is_file():
                    found.append(entry.path)
        return sorted(found)

    def _new_in_log(self, directory: str, log: str) -> list[str]:
        if self._unchanged(log):
            return []
        named = [os.path.join(directory, n) for n in live_files(directory)]
        found = [p for p in self._first_seen(named) if os.path.isfile(p)]
        return sorted(p for p in found if self._has_format(p))

    def _new_in_glob(self, pattern: str) -> list[str]:
        self.scans += 1  # a glob may span directories: expanded every time, only new paths stat'ed
        found = self._first_seen(glob.glob(pattern))
        return sorted(p for p in found if _visible(os.path.basename(p)) and os.path.isfile(p))

    def _has_format(self, path: str) -> bool:
        fmt = format_of(path)
        return fmt is not None and (self.options.format is None or fmt == self.options.format)

    def _first_seen(self, paths: list[str]) -> list[str]:
        new = [p for p in paths if p not in self._seen]
        self._seen.update(new)
        return new
