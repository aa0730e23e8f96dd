"""A checkpoint_dir across restarts (issue 16, items 1-3).

- A restart resumes from the newest good checkpoint; when checkpoints were
  committed but none is usable now (damaged, manifests or `checkpoints/`
  deleted) it refuses, naming the directory, what it found and why each
  checkpoint was skipped; `checkpoint_reset` starts over on purpose, with the
  old state archived.
- A restart and `stream-dsl checkpoints DIR` decide with the same code, so
  they agree on every directory (a property test over random damage).
- A query whose LOCK was deleted and taken by another program stops writing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executor.recovery.store import FORMAT_VERSION, CheckpointStore, OwnershipLost, fingerprint, write_part
from executor.recovery.manifest import manifest_bytes
from executor.recovery.survey import RECORD, reset
from executor.recovery.checkpointing import Checkpointing, checkpoint_part
from executor.state.clocks import SourceClock
from stream_dsl.cli import main as cli
from stream_dsl.errors import CheckpointError
from budget import examples

QUERY = "Stage 0: Scan events\n  Output append"


def store(root: Path, query: str = QUERY) -> CheckpointStore:
    return CheckpointStore(str(root), fingerprint(query), query)


def commit(s: CheckpointStore, next_batch: int):
    """A checkpoint with one (empty-state) part file, resuming at `next_batch`."""
    id, directory = s.begin()
    sha = write_part(directory, "worker-0.state", {})
    return s.commit(
        id,
        next_batch=next_batch,
        watermark=None,
        clocks={0: (next_batch, False)},
        offsets={0: next_batch},
        parts={"worker-0.state": sha},
        partitions={},
        output_rows=0,
    )


def flip_part(ckpt: Path) -> None:
    part = ckpt / "worker-0.state"
    data = bytearray(part.read_bytes())
    data[-1] ^= 0xFF
    part.write_bytes(bytes(data))


def edit_format(ckpt: Path) -> None:
    manifest = ckpt / "manifest.json"
    manifest.write_text(manifest.read_text().replace(f'"format": {FORMAT_VERSION}', '"format": 2'))


DAMAGES = {
    "flip-part": flip_part,
    "delete-part": lambda ckpt: (ckpt / "worker-0.state").unlink(),
    "truncate-manifest": lambda ckpt: (ckpt / "manifest.json").write_bytes((ckpt / "manifest.json").read_bytes()[:40]),
    "delete-manifest": lambda ckpt: (ckpt / "manifest.json").unlink(),
    "edit-format": edit_format,
    "delete-directory": lambda ckpt: shutil.rmtree(ckpt),
}


def tool(root: Path) -> tuple[int, dict]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(["checkpoints", str(root), "--json"], out=out, err=err)
    return code, json.loads(out.getvalue())


# ---------------------------------------------------------------- item 1: no usable checkpoint


@pytest.mark.parametrize(
    "damage", ["flip-part", "truncate-manifest", "delete-manifest", "delete-part", "delete-directory"]
)
def test_a_directory_whose_checkpoints_are_all_unusable_is_refused_with_the_reasons(tmp_path, damage):
    s = store(tmp_path)
    for batch in (10, 20):
        commit(s, batch)
    for ckpt in sorted((tmp_path / "checkpoints").iterdir()):
        DAMAGES[damage](ckpt)
    with pytest.raises(CheckpointError) as refused:
        store(tmp_path).latest()
    message = str(refused.value)
    assert message.startswith(f"checkpoint_dir '{tmp_path}' held checkpoints, but none of them can be used")
    assert "The newest checkpoint committed here was ckpt-00000002 (resuming at batch 20" in message
    reasons = {
        "flip-part": "damaged: part worker-0.state: checksum mismatch",
        "truncate-manifest": "damaged: manifest.json: not valid JSON",
        "delete-manifest": "uncommitted: no manifest",
        "delete-part": "damaged: part worker-0.state: missing",
        "delete-directory": "holds no checkpoint directories",
    }
    if damage == "delete-directory":
        assert reasons[damage] in message
    else:
        for id in (1, 2):
            assert f"ckpt-{id:08d}: {reasons[damage]}" in message, message
    assert "checkpoint_reset" in message and "--fresh" in message
    assert "or delete" not in message and f"delete '{tmp_path}" not in message  # the old advice loses the state


def test_a_deleted_checkpoints_directory_is_refused(tmp_path):
    commit(store(tmp_path), 10)
    shutil.rmtree(tmp_path / "checkpoints")
    with pytest.raises(CheckpointError, match=f"Found: no directory '{tmp_path}/checkpoints'"):
        store(tmp_path).latest()


def test_a_directory_that_never_committed_starts_from_the_beginning(tmp_path):
    s = store(tmp_path)
    assert s.latest() is None  # nothing there
    _, begun = s.begin()  # a crash before the first commit: parts, no manifest
    write_part(begun, "worker-0.state", {})
    assert store(tmp_path).latest() is None
    assert tool(tmp_path)[1]["restart"]["action"] == "fresh"


def test_checkpoint_reset_archives_the_old_state_and_starts_over(tmp_path):
    s = store(tmp_path)
    commit(s, 10)
    (tmp_path / "offsets").mkdir()
    (tmp_path / "offsets" / "stage-0.log").write_text('{"batch": 10, "offset": 10}\n')
    flip_part(tmp_path / "checkpoints" / "ckpt-00000001")
    with pytest.raises(CheckpointError):
        store(tmp_path).latest()
    archive = reset(str(tmp_path))
    assert archive is not None and Path(archive).parent == tmp_path / "archive"
    assert sorted(os.listdir(archive)) == sorted(["checkpoints", "offsets", RECORD])  # moved, not deleted
    assert (Path(archive) / "offsets" / "stage-0.log").read_text().startswith('{"batch": 10')
    assert store(tmp_path).latest() is None  # a fresh start now
    assert reset(str(tmp_path)) is None  # nothing left to move


def test_checkpoint_reset_is_a_setting_of_the_context_and_the_dsl(tmp_path):
    import stream_dsl as sd

    assert sd.Context(checkpoint_reset=True).config.checkpoint_reset
    ctx = sd.Context()
    ctx.sql("SET checkpoint_reset = 'true'")
    assert ctx.config.checkpoint_reset
    ctx.sql("SET checkpoint_reset = 'false'")
    assert not ctx.config.checkpoint_reset
    assert cli.context_kwargs(cli.build_parser().parse_args(["run", "x.sql", "--fresh"])) == {"checkpoint_reset": True}


# ---------------------------------------------------------------- item 2: the tool and the restart agree


def test_an_edited_format_field_is_damage_for_both_the_restart_and_the_tool(tmp_path):
    s = store(tmp_path)
    commit(s, 10)
    commit(s, 20)
    edit_format(tmp_path / "checkpoints" / "ckpt-00000002")
    assert store(tmp_path).latest().id == 1
    code, listed = tool(tmp_path)
    assert code == 0 and listed["restart"]["checkpoint"] == 1
    assert listed["checkpoints"][0]["state"] == "damaged"
    assert listed["checkpoints"][0]["reason"] == "manifest.json: checksum mismatch"


def test_an_intact_checkpoint_of_another_format_is_refused_by_both(tmp_path):
    s = store(tmp_path)
    commit(s, 10)
    ckpt = commit(s, 20)
    manifest = Path(ckpt.path) / "manifest.json"
    body = json.loads(manifest.read_text())
    body.pop("sha256")
    body["format"] = FORMAT_VERSION + 1
    manifest.write_bytes(manifest_bytes(body))  # a newer stream-dsl's: its checksum holds
    with pytest.raises(CheckpointError, match="has format 2; this stream-dsl reads format 1"):
        store(tmp_path).latest()
    code, listed = tool(tmp_path)
    assert code == 1 and listed["restart"]["action"] == "refuse"
    assert listed["checkpoints"][0]["state"] == "incompatible"


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    damages=st.lists(st.sampled_from([None, *DAMAGES]), min_size=1, max_size=4),
    uncommitted=st.booleans(),
    drop_all=st.booleans(),
)
def test_the_restart_and_the_tool_agree_on_any_damage(tmp_path_factory, damages, uncommitted, drop_all):
    root = tmp_path_factory.mktemp("ckpt")
    s = store(root)
    for i, _ in enumerate(damages):
        commit(s, 10 * (i + 1))
    if uncommitted:
        s.begin()
    for i, damage in enumerate(damages):
        if damage is not None:
            DAMAGES[damage](root / "checkpoints" / f"ckpt-{i + 1:08d}")
    if drop_all:
        shutil.rmtree(root / "checkpoints")
    good = [] if drop_all else [i + 1 for i, d in enumerate(damages) if d is None]
    try:
        restart = ("resume", store(root).latest().id)
    except CheckpointError:
        restart = ("refuse", None)
    # the oracle: the newest undamaged checkpoint; none left after commits were made: refuse
    assert restart == (("resume", max(good)) if good else ("refuse", None))
    code, listed = tool(root)
    assert (listed["restart"]["action"], listed["restart"]["checkpoint"]) == restart
    assert code == (0 if good else 1)


# ---------------------------------------------------------------- item 3: ownership lost


def test_an_owner_whose_lock_is_deleted_and_taken_stops_writing(tmp_path):
    first = Checkpointing(str(tmp_path), QUERY)
    assert first.open() is None
    clocks = {0: SourceClock(delay_ms=None)}

    def checkpoint(owner: Checkpointing, after: int) -> int | None:
        id = owner.request(0, after)
        owner.take(checkpoint_part(id, 0, "inline.state", {}, {0: after}))
        return owner.commit(after, next_batch=after + 1, watermark=None, clocks=clocks, output_rows=0)

    assert checkpoint(first, 9) == 1
    id = first.request(0, 19)  # begun before the lock goes: its commit must still be refused
    first.take(checkpoint_part(id, 0, "inline.state", {}, {0: 19}))
    os.unlink(tmp_path / "LOCK")
    second = Checkpointing(str(tmp_path), QUERY)
    assert second.open().next_batch == 10  # the other program takes the directory over
    try:
        with pytest.raises(OwnershipLost) as lost:
            first.commit(19, next_batch=20, watermark=None, clocks=clocks, output_rows=0)
        message = str(lost.value)
        assert f"checkpoint_dir '{tmp_path}' is no longer this query's" in message
        assert f"it was replaced (it names pid {os.getpid()})" in message
        with pytest.raises(OwnershipLost):
            first.request(0, 29)
        assert checkpoint(second, 19) == 3
        assert second.store.latest().next_batch == 20 and second.store.latest().id == 3
    finally:
        first.close()
        second.close()


def test_an_owner_whose_lock_is_deleted_stops_before_the_next_checkpoint(tmp_path):
    s = store(tmp_path)
    s.lock()
    try:
        commit(s, 10)
        os.unlink(tmp_path / "LOCK")
        with pytest.raises(OwnershipLost, match="it was deleted"):
            commit(s, 20)
        assert store(tmp_path).latest().next_batch == 10
    finally:
        s.unlock()


def test_a_source_reads_no_further_batch_once_the_lock_is_lost(tmp_path):
    from executor.recovery.offset_log import OffsetLog

    owner = store(tmp_path)
    owner.lock()
    log = OffsetLog(str(tmp_path / "offsets" / "0123456789abcdef"), 0)  # as Checkpointing.offset_log lays it out
    try:
        log.append(0, {"time_ms": 100})
        os.unlink(tmp_path / "LOCK")
        thief = store(tmp_path)
        thief.lock()
        with pytest.raises(OwnershipLost, match="stops before batch 1"):
            log.append(1, {"time_ms": 200})
        assert log.read(0) == {0: {"time_ms": 100}}
        thief.unlock()
    finally:
        log.close()
        owner.unlock()
