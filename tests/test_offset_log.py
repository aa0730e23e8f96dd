"""Batch offset logs (executor/offset_log.py) and the sources' exact replays of a logged batch (`until`)."""

from __future__ import annotations

import json
import time
from typing import Any

import polars as pl
import pytest

from executor.recovery import offset_log
from executor.recovery.offset_log import OffsetLog
from stream_dsl.connectors import files, generator
from stream_dsl.connectors.base import pull_source
from stream_dsl.errors import ConnectorError, DSLError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema


def test_entries_from_a_batch_on_later_lines_winning_and_a_torn_line_ignored(tmp_path):
    log = OffsetLog(str(tmp_path), 3)
    log.append(0, {"id": "1-0"})
    log.append(1, None)
    log.append(2, {"files": ["a", "b"]})
    log.append(1, {"id": "2-0"})  # a replay logs nothing, but a second run may: the newest line wins
    log.close()
    with open(log.path, "ab") as f:
        f.write(b'{"batch": 3, "offs')  # a crash in the middle of a line
    assert OffsetLog(str(tmp_path), 3).read(1) == {1: {"id": "2-0"}, 2: {"files": ["a", "b"]}}
    assert OffsetLog(str(tmp_path), 4).read(0) == {}  # another stage's log


def test_committed_batches_are_dropped_once_the_log_is_long(tmp_path, monkeypatch):
    monkeypatch.setattr(offset_log, "COMPACT_AFTER", 5)
    log = OffsetLog(str(tmp_path), 0)
    for b in range(4):
        log.append(b, b * 10)
    log.committed(2)
    assert log.read(0) == {0: 0, 1: 10, 2: 20, 3: 30}  # not long enough yet
    log.append(4, 40)
    log.committed(2)
    assert log.read(0) == {3: 30, 4: 40}
    log.append(5, 50)  # appends go on after the rewrite
    assert OffsetLog(str(tmp_path), 0).read(0) == {3: 30, 4: 40, 5: 50}


def _events(**options: str) -> SourceDef:
    schema = Schema.of(("ad_id", T.STRING), ("event_time", T.TIMESTAMP))
    opts = {"connector": "generator", "kind": "ysb", "rate": "1000", "seed": "1", **options}
    return SourceDef("events", "stream", schema, tuple(sorted(opts.items())))


def test_the_generator_replays_a_batch_cut_at_a_logged_offset_whatever_the_interval():
    first = generator.make_source(_events())
    first.open(None)
    original = [first.next_batch(100) for _ in range(3)]
    again = generator.make_source(_events())
    again.open(None)
    replayed = [pull_source(again, 250, until=b.offset) for b in original]  # another batch interval now
    for a, b in zip(original, replayed):
        assert a.frame.equals(b.frame) and a.offset == b.offset
    assert again.next_batch(100).frame.equals(first.next_batch(100).frame)  # and on as usual


def test_the_files_source_replays_exactly_the_files_a_batch_read(tmp_path):
    directory = tmp_path / "in"
    directory.mkdir()
    for name, v in (("a", 1), ("b", 2), ("c", 3)):
        pl.DataFrame({"v": [v]}).write_ndjson(directory / f"{name}.ndjson")
    definition = SourceDef(
        "s", "stream", Schema.of(("v", T.BIGINT)), (("connector", "files"), ("path", str(directory)), ("watch", "true"))
    )
    first = files.make_source(definition)
    first.open(None)
    original = first.next_batch(100)  # a, b and c
    assert original.replay == {"files": [str(directory / f"{n}.ndjson") for n in "abc"]}  # what the log keeps
    source = files.make_source(definition)
    source.open(None)
    pl.DataFrame({"v": [4]}).write_ndjson(directory / "d.ndjson")  # arrived after the lost run's batch
    replayed = pull_source(source, 100, until={"files": [str(directory / "a.ndjson"), str(directory / "b.ndjson")]})
    assert replayed.frame.get_column("v").to_list() == [1, 2]
    assert original.frame.get_column("v").to_list() == [1, 2, 3]
    assert source.next_batch(100).frame.get_column("v").to_list() == [3, 4]  # then on as usual


# ---------------------------------------------------------------- replays read only what the source reads


def _secret(tmp_path) -> str:
    """A file outside the source's path, which no replay may read."""
    secret = tmp_path / "secret.ndjson"
    secret.write_text('{"v": 424242}\nroot:$6$hash:19000:0:99999:7:::\n')
    return str(secret)


def _watched(directory) -> SourceDef:
    return SourceDef(
        "s", "stream", Schema.of(("v", T.BIGINT)), (("connector", "files"), ("path", str(directory)), ("watch", "true"))
    )


@pytest.mark.parametrize(
    "logged",
    [
        lambda d, secret: [secret],
        lambda d, secret: [str(d / "a.ndjson"), secret],
        lambda d, secret: [str(d / ".." / "secret.ndjson")],  # inside by prefix, outside in fact
        lambda d, secret: [str(d / "missing.ndjson")],
        lambda d, secret: secret,  # not a list
    ],
    ids=["outside", "mixed", "dot-dot", "missing", "not-a-list"],
)
def test_a_replay_of_a_file_the_source_does_not_select_is_refused_unread(tmp_path, monkeypatch, logged):
    directory = tmp_path / "in"
    directory.mkdir()
    pl.DataFrame({"v": [1]}).write_ndjson(directory / "a.ndjson")
    secret = _secret(tmp_path)
    read = []
    real_read = files.read_file
    monkeypatch.setattr(files, "read_file", lambda path, *a, **k: read.append(path) or real_read(path, *a, **k))
    source = files.make_source(_watched(directory))
    source.open(None)
    with pytest.raises(ConnectorError, match="source 's': the offset log names|not a list of file names"):
        pull_source(source, 100, until={"files": logged(directory, secret)})
    assert read == []  # refused before a byte was read
    glob_source = files.make_source(_watched(directory / "*.ndjson"))
    glob_source.open(None)
    assert pull_source(glob_source, 100, until={"files": [str(directory / "a.ndjson")]}).frame.height == 1
    with pytest.raises(ConnectorError, match="the offset log names"):
        pull_source(glob_source, 100, until={"files": [secret]})


def test_a_restart_whose_offset_log_names_another_file_is_refused(tmp_path):
    """The attack of issue 16 item 4: one line appended to the offset log of a stopped query."""
    import stream_dsl as sd
    from executor.recovery.survey import survey

    directory, ckpt, out = tmp_path / "in", tmp_path / "ckpt", tmp_path / "out"
    directory.mkdir()
    for i in range(3):
        pl.DataFrame({"v": [i]}).write_ndjson(directory / f"{i}.ndjson")
    secret = _secret(tmp_path)

    def start() -> Any:
        ctx = sd.Context(executor="inline", workers=1, group_size=1, checkpoint_dir=str(ckpt))
        ctx.sql(f"CREATE STREAM s (v BIGINT) WITH (connector = 'files', path = '{directory}', watch = 'true')")
        ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{out}', format = 'ndjson')")
        return ctx.sql("INSERT INTO out SELECT v FROM s")

    handle = start()
    try:
        wait = time.monotonic() + 120
        while survey(str(ckpt)).decide().action != "resume" and time.monotonic() < wait:
            time.sleep(0.01)
    finally:
        handle.stop(120)
    resume = survey(str(ckpt)).decide().checkpoint
    assert resume is not None
    (log,) = (ckpt / "offsets").glob("*/stage-*.log")
    with open(log, "ab") as f:
        f.write(json.dumps({"batch": resume.next_batch, "offset": {"files": [secret]}}).encode() + b"\n")
    handle = start()
    try:
        with pytest.raises(DSLError, match=f"the offset log names file '{secret}'"):
            handle.await_termination(120)
    finally:
        handle.stop(120)
    letters = [p.read_text() for p in tmp_path.rglob("*.ndjson") if "dead_letters" in str(p)]
    assert not any("424242" in text or "root:" in text for text in letters)
    written = files.read_committed(str(out)) if out.exists() else pl.DataFrame({"v": []})
    assert 424242 not in written.get_column("v").to_list()
