"""Files stream-dsl writes (issue 16, items 5 and 16).

- Temporary files are created exclusively under unpredictable names, and
  planted symlinks are never followed: a symlink at the old predictable
  temporary name or at the target leaves the file it points to untouched
  (files sink, checkpoint parts and manifests, offset logs and their
  compaction, dead letters).
- Files that hold data or history are 0600 whatever the umask.
- A full disk (ENOSPC, injected at `os.write`) is retried a bounded number
  of times with a doubling pause, then fails with the path and the sink.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.recovery import offset_log
from executor.recovery.store import CheckpointStore, fingerprint, write_part
from executor.recovery.offset_log import OffsetLog
from stream_dsl.connectors import file_writes
from stream_dsl.connectors import files, files_sink
from stream_dsl.connectors.base import DeadLetter
from stream_dsl.connectors.dead_letters import NdjsonFile
from stream_dsl.errors import CheckpointError, ConnectorError
from stream_dsl.ir.definitions import SinkDef
from budget import examples

VICTIM_TEXT = "precious: must never change\n"


@pytest.fixture
def victim(tmp_path):
    """A file elsewhere that a planted symlink points at."""
    path = tmp_path / "elsewhere" / "victim.txt"
    path.parent.mkdir()
    path.write_text(VICTIM_TEXT)
    os.chmod(path, 0o644)
    return path


@pytest.fixture
def open_umask():
    """Umask 0: a file stream-dsl makes must be 0600 even when the umask would allow more."""
    old = os.umask(0)
    yield
    os.umask(old)


def untouched(victim) -> bool:
    return victim.read_text() == VICTIM_TEXT and stat.S_IMODE(victim.stat().st_mode) == 0o644


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def sink(path, name: str = "out") -> files.FileSink:
    return files.FileSink(SinkDef(name, (("connector", "files"), ("path", str(path)), ("format", "parquet"))))


FRAME = pl.DataFrame({"v": [1, 2, 3]})


# ---------------------------------------------------------------- symlinks and modes (item 5)


def test_the_files_sink_follows_no_planted_symlink_and_writes_0600(tmp_path, victim, open_umask):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / f".part-00000000.parquet.{os.getpid()}.tmp")  # the old predictable name
    os.symlink(victim, out / "part-00000001.parquet")  # the target itself
    s = sink(out)
    s.write(0, FRAME)
    s.write(1, FRAME)
    assert untouched(victim)
    for part in ("part-00000000.parquet", "part-00000001.parquet"):
        assert not os.path.islink(out / part) and mode(out / part) == 0o600
        assert pl.read_parquet(out / part).equals(FRAME)
    assert mode(out / files.COMMITTED_LOG) == 0o600
    assert not [n for n in os.listdir(out) if n.endswith(".tmp") and not os.path.islink(out / n)]


def test_a_symlink_planted_as_the_sinks_commit_log_is_refused(tmp_path, victim):
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / files.COMMITTED_LOG)
    with pytest.raises(ConnectorError, match=f"sink 'out': cannot write '{out}/_committed'"):
        sink(out).write(0, FRAME)
    assert untouched(victim)


def test_checkpoint_parts_and_manifests_follow_no_planted_symlink(tmp_path, victim, open_umask):
    s = CheckpointStore(str(tmp_path / "ckpt"), fingerprint("q"), "q")
    id, directory = s.begin()
    os.symlink(victim, os.path.join(directory, "worker-0.state"))
    os.symlink(victim, os.path.join(directory, f".worker-0.state.{os.getpid()}.tmp"))
    os.symlink(victim, os.path.join(directory, "manifest.json"))
    os.symlink(victim, os.path.join(directory, "manifest.json.tmp"))
    with pytest.raises(CheckpointError, match="already committed"):  # a manifest there: never written through
        s.commit(id, next_batch=1, watermark=None, clocks={}, offsets={}, parts={}, partitions={}, output_rows=0)
    os.unlink(os.path.join(directory, "manifest.json"))
    sha = write_part(directory, "worker-0.state", {})
    s.commit(
        id,
        next_batch=1,
        watermark=None,
        clocks={},
        offsets={},
        parts={"worker-0.state": sha},
        partitions={},
        output_rows=0,
    )
    assert untouched(victim)
    for name in ("worker-0.state", "manifest.json"):
        assert not os.path.islink(os.path.join(directory, name)) and mode(os.path.join(directory, name)) == 0o600
    assert s.latest().id == id


def test_offset_logs_follow_no_planted_symlink_when_appending_or_compacting(tmp_path, victim, monkeypatch, open_umask):
    monkeypatch.setattr(offset_log, "COMPACT_AFTER", 2)
    log = OffsetLog(str(tmp_path), 0)
    os.symlink(victim, log.path + ".tmp")  # the old compaction's predictable name
    for batch in range(3):
        log.append(batch, batch)
    log.committed(0)  # compacts
    log.append(3, 3)
    log.close()
    assert untouched(victim) and OffsetLog(str(tmp_path), 0).read(0) == {1: 1, 2: 2, 3: 3}
    assert mode(log.path) == 0o600
    planted = OffsetLog(str(tmp_path), 1)
    os.symlink(victim, planted.path)
    with pytest.raises(CheckpointError, match=f"offset log '{planted.path}' cannot be written"):
        planted.append(0, 0)
    assert untouched(victim)


def test_dead_letters_are_0600_and_follow_no_planted_symlink(tmp_path, victim, open_umask):
    letters = [DeadLetter("s", "f.ndjson", "raw secret record", "bad JSON")]
    target = NdjsonFile(str(tmp_path / "dl" / "s.ndjson"))
    target.write(0, letters)
    assert mode(target.path) == 0o600 and "raw secret record" in Path(target.path).read_text()
    os.symlink(victim, tmp_path / "dl" / "planted.ndjson")
    with pytest.raises(ConnectorError, match="cannot write dead letters"):
        NdjsonFile(str(tmp_path / "dl" / "planted.ndjson")).write(0, letters)
    assert untouched(victim)


def test_the_repl_history_is_0600_even_when_it_was_world_readable(tmp_path, open_umask):
    from stream_dsl.repl import prompt as repl

    fresh, old = tmp_path / "fresh_history", tmp_path / "old_history"
    old.write_text("+SELECT 1\n")
    os.chmod(old, 0o644)
    repl._history(str(fresh))
    repl._history(str(old))
    assert mode(fresh) == 0o600 and mode(old) == 0o600 and old.read_text() == "+SELECT 1\n"


# ---------------------------------------------------------------- a full disk (item 16)


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """os.write into files under tmp_path fails with ENOSPC (after writing half) while `state["full"]` > 0,
    one failure per call; retries' pauses are recorded, not slept."""
    state = {"full": 0, "failures": 0, "pauses": []}
    real_write = os.write

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if state["full"] and target.startswith(str(tmp_path)):
            state["full"] -= 1
            state["failures"] += 1
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(file_writes, "sleep", state["pauses"].append)
    return state


def test_a_sink_write_on_a_full_disk_is_retried_until_space_returns(tmp_path, full_disk):
    out = sink(tmp_path / "out")
    assert file_writes.WRITE_ATTEMPTS == 4
    full_disk["full"] = 3  # space returns before the last try
    out.write(0, FRAME)
    assert full_disk["failures"] == 3
    assert full_disk["pauses"] == [file_writes.BACKOFF_S * 2**i for i in range(3)]
    assert files.read_committed(str(tmp_path / "out")).equals(FRAME)
    assert sorted(os.listdir(tmp_path / "out")) == ["_committed", "part-00000000.parquet"]  # no temp files left


def test_a_commit_line_cut_by_a_full_disk_is_retried_whole(tmp_path, full_disk, monkeypatch):
    out = sink(tmp_path / "out")
    out.write(0, FRAME)
    real = file_writes.write_atomically
    monkeypatch.setattr(files_sink, "write_atomically", lambda *a, **k: (real(*a, **k), full_disk.update(full=1)))
    out.write(1, FRAME)  # the part file goes in; half the log line, then the disk is full once
    assert full_disk["failures"] == 1
    assert files.committed_batches(str(tmp_path / "out")) == [0, 1]  # the torn half did not swallow the line


def test_a_sink_write_on_a_disk_that_stays_full_fails_naming_the_sink_and_path(tmp_path, full_disk):
    out = sink(tmp_path / "out", name="events_out")
    out.write(0, FRAME)
    full_disk["full"] = 10**6
    with pytest.raises(ConnectorError) as failed:
        out.write(1, FRAME)
    message = str(failed.value)
    assert message.startswith(
        f"sink 'events_out': cannot write '{tmp_path}/out/part-00000001.parquet': "
        f"No space left on device (tried {file_writes.WRITE_ATTEMPTS} times"
    )
    assert full_disk["failures"] == file_writes.WRITE_ATTEMPTS  # bounded
    assert sorted(os.listdir(tmp_path / "out")) == ["_committed", "part-00000000.parquet"]
    full_disk["full"] = 0  # space returns: the same batch id is written again (a restart's replay)
    out.write(1, FRAME)
    assert files.read_committed(str(tmp_path / "out")).height == 2 * FRAME.height


def test_a_checkpoint_write_on_a_full_disk_is_retried_then_fails_naming_the_path(tmp_path, full_disk):
    s = CheckpointStore(str(tmp_path / "ckpt"), fingerprint("q"), "q")
    id, directory = s.begin()
    full_disk["full"] = 2
    sha = write_part(directory, "worker-0.state", {})  # retried through two failures
    full_disk["full"] = 10**6
    with pytest.raises(CheckpointError) as failed:
        s.commit(
            id,
            next_batch=1,
            watermark=None,
            clocks={},
            offsets={},
            parts={"worker-0.state": sha},
            partitions={},
            output_rows=0,
        )
    assert str(failed.value).startswith(
        f"checkpoint {id}: manifest '{directory}/manifest.json' cannot be written: No space left on device (tried"
    )
    assert sorted(os.listdir(directory)) == ["worker-0.state"]  # no half manifest, no temp file
    full_disk["full"] = 0
    assert s.latest() is None  # nothing was committed
    s.commit(
        id,
        next_batch=1,
        watermark=None,
        clocks={},
        offsets={},
        parts={"worker-0.state": sha},
        partitions={},
        output_rows=0,
    )
    assert s.latest().id == id and json.loads(Path(directory, "manifest.json").read_text())["id"] == id


@settings(max_examples=examples(40), deadline=None)
@given(plan=st.lists(st.tuples(st.integers(0, 5), st.floats(0, 0.99)), min_size=1, max_size=12))
def test_logs_keep_every_line_whatever_a_full_disk_cuts(tmp_path_factory, plan):
    """Offset-log and commit-log lines, each hit by `failures` full-disk errors after writing a `cut` of its
    bytes: a line whose write succeeds within the retries is read back, and no torn part ever swallows a
    later line. A line that failed every try is not read back, unless all of it but its newline got
    written (then it is whole and true: the batch's end, or a part file already renamed into place)."""
    root = tmp_path_factory.mktemp("logs")
    cuts: list[float] = []
    real_write = os.write

    def write(fd, data):
        if cuts and os.readlink(f"/proc/self/fd/{fd}").startswith(str(root)):
            real_write(fd, bytes(data[: int(len(data) * cuts.pop())]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    (root / "out").mkdir()
    log, out = OffsetLog(str(root), 0), sink(root / "out")
    logged, committed = {}, []
    with mock.patch.object(os, "write", write), mock.patch.object(file_writes, "sleep", lambda s: None):
        for batch, (failures, cut) in enumerate(plan):
            cuts[:] = [cut] * failures
            try:
                log.append(batch, {"n": batch})
                logged[batch] = {"n": batch}
            except CheckpointError:
                assert failures >= file_writes.WRITE_ATTEMPTS
            cuts[:] = [cut] * failures
            try:
                out._io(out.log_path, lambda: out._commit(batch, None))  # noqa: B023 - called at once
                committed.append(batch)
            except ConnectorError:
                assert failures >= file_writes.WRITE_ATTEMPTS
    log.close()
    read = OffsetLog(str(root), 0).read(0)
    assert set(logged) <= set(read) and all(read[batch] == {"n": batch} for batch in read)
    assert set(committed) <= set(files.committed_batches(str(root / "out"))) <= set(range(len(plan)))
