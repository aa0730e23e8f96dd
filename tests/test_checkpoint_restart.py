"""Restarts of the recovery tests' YSB query against a damaged, stolen or full checkpoint_dir (issue 16).

- Item 1: a restart that finds checkpoints were committed but none is
  usable refuses (writing nothing); `checkpoint_reset` then starts the query
  over on purpose, with the old state archived.
- Item 3: a running query whose LOCK is deleted and taken by another
  program fails before its next checkpoint instead of writing on.
- Item 16: a real full disk (a small tmpfs; skipped where it cannot be
  mounted) under the sink or the checkpoints fails the query with the path
  and the sink after bounded retries; once space returns, a restart's
  output is exact.

Nothing is timed: waits poll a condition under the hang guard of
tests/test_recovery.py, whose helpers and reference result are reused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from executor.recovery.store import CheckpointStore
from executor.recovery.survey import ARCHIVE, RECORD
from stream_dsl.connectors import files
from stream_dsl.errors import CheckpointError, DSLError
from test_recovery import (
    HANG_GUARD_S,
    assert_exact,
    checkpoint_ids,
    finish,
    normalized,
    reference_output,
    start,
    wait_until,
)


@pytest.fixture(scope="module")
def expected():
    """The recovery query's result without failures (test_recovery's reference)."""
    return reference_output()


def _delete_manifests(ckpt: Path) -> None:
    for manifest in (ckpt / "checkpoints").glob("ckpt-*/manifest.json"):
        manifest.unlink()


def _flip_every_part(ckpt: Path) -> None:
    for part in (ckpt / "checkpoints").glob("ckpt-*/*.state"):
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))


def _delete_checkpoints(ckpt: Path) -> None:
    shutil.rmtree(ckpt / "checkpoints")


@pytest.mark.parametrize(
    "executor, damage",
    [
        ("inline", _delete_manifests),
        ("drizzle", _flip_every_part),
        ("drizzle", _delete_checkpoints),
        ("bsp", _delete_manifests),
    ],
    ids=["inline-manifests-deleted", "drizzle-parts-damaged", "drizzle-checkpoints-deleted", "bsp-manifests-deleted"],
)
def test_a_restart_without_a_usable_checkpoint_refuses_and_a_reset_starts_over(
    tmp_path,
    expected,
    executor,  # noqa: F811
    damage,
):
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    handle = start(tmp_path, executor=executor, group_size=7)
    try:  # stopped once windows are in the sink and checkpoints on disk
        wait_until(
            lambda: (
                not handle.is_active
                or (len(checkpoint_ids(ckpt)) >= 2 and out.is_dir() and files.read_committed(str(out)).height > 0)
            ),
            "output",
        )
        assert handle.is_active, "the query ended before it could be stopped midway"
    finally:
        handle.stop(HANG_GUARD_S)
    damage(ckpt)
    before = files.read_committed(str(out))
    assert before.height > 0
    batches = files.committed_batches(str(out))
    with pytest.raises(CheckpointError) as refused:
        start(tmp_path, executor=executor, group_size=7).stop(HANG_GUARD_S)
    message = str(refused.value)
    assert message.startswith(f"checkpoint_dir '{ckpt}' held checkpoints, but none of them can be used"), message
    assert "The newest checkpoint committed here was ckpt-" in message and "checkpoint_reset" in message
    assert files.committed_batches(str(out)) == batches  # the refused restart wrote nothing

    handle = start(tmp_path, executor=executor, group_size=7, checkpoint_reset=True)  # on purpose
    finish(handle)
    assert handle.restored_checkpoint is None
    (archive,) = (ckpt / ARCHIVE).iterdir()
    assert (archive / RECORD).is_file() and not (ckpt / "offsets").exists() or (archive / "offsets").is_dir()
    after = files.read_committed(str(out))
    assert after.slice(0, before.height).equals(before)  # the sink keeps what it had ...
    assert normalized(after.slice(before.height)).equals(expected)  # ... and the fresh run is all there after it


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_a_query_whose_lock_is_taken_over_stops_writing(tmp_path, executor):
    """Its sources stop before their next batch (the offset log checks the LOCK), and the driver before
    its next checkpoint: only batches already read when the LOCK went may still reach the sink."""
    ckpt, out, group = tmp_path / "ckpt", tmp_path / "out", 5
    handle = start(tmp_path, executor=executor, group_size=group)
    thief = CheckpointStore(str(ckpt), "another program", "")
    try:
        wait_until(lambda: len(checkpoint_ids(ckpt)) >= 5 or not handle.is_active, "five checkpoints")
        os.unlink(ckpt / "LOCK")
        thief.lock()
        at_theft, logged = checkpoint_ids(ckpt), _logged_batches(ckpt)
        with pytest.raises(DSLError) as stopped:
            assert handle.await_termination(HANG_GUARD_S), "the query neither ended nor failed"
        assert f"checkpoint_dir '{ckpt}' is no longer this query's" in str(stopped.value)
        assert len(checkpoint_ids(ckpt)) <= len(at_theft) + 1  # at most the commit already under way
        in_flight = 2 * group if executor == "drizzle" else 1  # drizzle reads a group ahead
        assert _logged_batches(ckpt) <= logged + in_flight  # no source read on for long
        assert max(files.committed_batches(str(out)), default=-1) < logged + in_flight
    finally:
        handle.stop(HANG_GUARD_S)
        thief.unlock()


def _logged_batches(ckpt: Path) -> int:
    """How many batches the query's sources logged (read), by the highest batch id in its offset logs."""
    found = [-1]
    for log in ckpt.glob("offsets/*/stage-*.log"):
        for line in log.read_bytes().splitlines():
            try:
                found.append(int(json.loads(line)["batch"]))
            except (ValueError, KeyError, TypeError):
                continue
    return max(found) + 1


# ---------------------------------------------------------------- a real full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs at tmp_path/disk (skipped where mounting needs privileges we lack), unmounted after."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=True)


def _fill(disk: Path, leave_bytes: int) -> Path:
    st = os.statvfs(disk)
    filler = disk / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * (st.f_bavail * st.f_frsize - leave_bytes))
    return filler


# The full-disk runs keep the 400-batch stream: the 120 batches of the other recovery tests write less than the
# 150 kB left free (their sink about 100 kB in 4 kB pages), so the disk would never fill.
FULL_DISK_BATCHES = 400


@pytest.fixture(scope="module")
def expected_full_disk():
    """The recovery query's result without failures over the full-disk tests' longer stream."""
    return reference_output(FULL_DISK_BATCHES)


@pytest.mark.parametrize("executor", ["drizzle", "inline"])
@pytest.mark.parametrize("full", ["sink", "checkpoints"])
def test_a_full_disk_fails_the_query_with_its_path_and_a_restart_after_space_returns_is_exact(
    tmp_path, expected_full_disk, small_disk, full, executor
):  # noqa: F811
    sink_dir = small_disk / "out" if full == "sink" else tmp_path / "out"
    ckpt = small_disk / "ckpt" if full == "checkpoints" else tmp_path / "ckpt"
    filler = _fill(small_disk, 150_000)  # room for a part of the run only

    def run():
        import recovery_script as R

        return R.make_context(sink_dir, batches=FULL_DISK_BATCHES, executor=executor, checkpoint_dir=str(ckpt)).sql(
            R.INSERT
        )

    handle = run()
    try:
        with pytest.raises(DSLError) as failed:
            assert handle.await_termination(HANG_GUARD_S), "the query neither ended nor failed"
    finally:
        handle.stop(HANG_GUARD_S)
    message = str(failed.value)
    assert "No space left on device (tried 4 times" in message, message
    if full == "sink":
        assert f"sink 'out': cannot write '{sink_dir}/part-" in message, message
    else:
        assert f"'{ckpt}/checkpoints/ckpt-" in message, message
    filler.unlink()  # space returns
    handle = run()
    finish(handle)
    assert handle.restored_checkpoint is not None
    assert_exact(sink_dir, expected_full_disk)
    assert not [p for p in Path(sink_dir).iterdir() if p.name.endswith(".tmp")]
    assert pl.read_parquet(next(Path(sink_dir).glob("part-*.parquet"))).height > 0
