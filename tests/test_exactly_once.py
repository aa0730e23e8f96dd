"""Exactly-once output: the files sink's committed-batch log, and the executor's commit hook on sources."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.connectors import files, files_sink, register_connector
from stream_dsl.connectors.base import KEEP_ALL
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.ir.definitions import SinkDef

import recording_source

HANG_GUARD_S = 120


def sink(path, fmt: str = "parquet") -> files.FileSink:
    return files.make_sink(SinkDef("out", (("connector", "files"), ("format", fmt), ("path", str(path)))))


def frame(*values: int) -> pl.DataFrame:
    return pl.DataFrame({"v": list(values)}, schema={"v": pl.Int64})


def log_lines(path) -> list[dict]:
    return [json.loads(line) for line in (path / files.COMMITTED_LOG).read_text().splitlines()]


# ---------------------------------------------------------------- the files sink


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson"])
def test_each_batch_is_committed_once_and_read_back_in_order(tmp_path, fmt):
    out = sink(tmp_path, fmt)
    out.write(0, frame(1, 2))
    out.write(1, frame(3))
    out.write(0, frame(1, 2))  # a replay
    assert files.committed_batches(str(tmp_path)) == [0, 1]
    assert [e["batch_id"] for e in log_lines(tmp_path)] == [0, 1]  # listed once, though written twice
    assert files.read_committed(str(tmp_path)).get_column("v").to_list() == [1, 2, 3]
    assert out.last_batch_id() == 1


def test_a_replayed_batch_replaces_its_output(tmp_path):
    out = sink(tmp_path)
    out.write(5, frame(1, 2, 3))
    out.write(5, frame(9))
    assert files.read_committed(str(tmp_path)).get_column("v").to_list() == [9]
    out.write(5, frame())  # replayed with no rows: nothing left, still committed
    assert files.read_committed(str(tmp_path)).height == 0 and files.committed_batches(str(tmp_path)) == [5]


def test_a_crash_between_part_and_log_leaves_the_batch_uncommitted(tmp_path, monkeypatch):
    out = sink(tmp_path)
    out.write(0, frame(1))

    def crash(path: str, line: bytes) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files_sink, "_append_line", crash)
    with pytest.raises(sd.DSLError, match="sink 'out': cannot write"):
        out.write(1, frame(2))
    monkeypatch.undo()
    assert os.path.exists(out.file_for(1))  # the part file is there ...
    assert files.committed_batches(str(tmp_path)) == [0]  # ... but the batch never committed
    assert files.read_committed(str(tmp_path)).get_column("v").to_list() == [1]
    # the files source reading the sink directory sees only committed batches too
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(f"CREATE STREAM back (v BIGINT) WITH (connector = 'files', path = '{tmp_path}', format = 'parquet')")
    assert ctx.sql("SELECT v FROM back").collect().get_column("v").to_list() == [1]
    # a new sink (a restarted query) replays batch 1: it replaces the part and commits it
    again = sink(tmp_path)
    assert again.last_batch_id() == 0
    again.write(1, frame(3))
    assert files.read_committed(str(tmp_path)).get_column("v").to_list() == [1, 3]


def test_a_torn_last_log_line_is_ignored(tmp_path):
    out = sink(tmp_path)
    out.write(0, frame(1))
    out.write(1, frame(2))
    with open(tmp_path / files.COMMITTED_LOG, "ab") as f:
        f.write(b'{"batch_id": 2, "fi')  # a crash in the middle of the append
    (tmp_path / "part-00000002.parquet").write_bytes(b"")  # never committed
    assert files.committed_batches(str(tmp_path)) == [0, 1]
    assert files.read_committed(str(tmp_path)).get_column("v").to_list() == [1, 2]


def test_read_committed_of_a_directory_without_log_is_empty(tmp_path):
    frame(1).write_parquet(tmp_path / "part-00000000.parquet")
    assert files.read_committed(str(tmp_path)).height == 0


def test_a_query_started_again_continues_after_the_last_committed_batch(tmp_path):
    out_dir = tmp_path / "out"
    for run in range(2):
        ctx = sd.Context(executor="inline", workers=1)
        ctx.from_polars([frame(10 * run + 1), frame(10 * run + 2)], name="ev")
        ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{out_dir}', format = 'ndjson')")
        assert ctx.sql("INSERT INTO out SELECT v FROM ev").await_termination(HANG_GUARD_S)
    assert files.committed_batches(str(out_dir)) == [0, 1, 2, 3]  # the second run did not overwrite 0 and 1
    assert files.read_committed(str(out_dir)).get_column("v").to_list() == [1, 2, 11, 12]


# ---------------------------------------------------------------- the commit hook


EXECUTORS = ["inline", "bsp", "drizzle"]


@pytest.fixture(params=EXECUTORS)
def executor(request) -> str:
    return request.param


@pytest.fixture
def recording(tmp_path):
    """Plays a script of batches through the `recording` connector (tests/recording_source.py) on any executor."""
    register_connector(recording_source.NAME, "recording_source")
    return tmp_path / "script.json"


def _ts(*seconds: int) -> pl.Series:
    return pl.Series("ts", [s * 1000 for s in seconds], dtype=pl.Int64).cast(pl.Datetime("ms"))


def _context(script: Path, executor: str) -> sd.Context:
    ctx = sd.Context(executor=executor, workers=2, group_size=2)
    ctx.sql(
        "CREATE STREAM ev (k STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
        f"WITH (connector = 'recording', script = '{script}', dead_letter = 'none', realtime = 'false')"
    )
    return ctx


def _batch(keys: str, *seconds: int) -> pl.DataFrame:
    return pl.DataFrame({"k": list(keys), "ts": _ts(*seconds)})


def _commits(log: Path) -> list[tuple[int, int | None]]:
    return [payload for kind, payload in recording_source.events(log) if kind == "commit"]


def test_sources_commit_after_the_sink_write(recording, executor):
    log = recording_source.write_script(recording, [_batch("ab", 1, 2), _batch("c", 3)])
    ctx = _context(recording, executor)

    def write(batch_id, frame):
        recording_source.record(log, "write", batch_id)

    assert ctx.sql("SELECT k FROM ev").start(sink=write).await_termination(HANG_GUARD_S)
    happened = recording_source.events(log)
    assert [p for kind, p in happened if kind == "read"] == [1, 2]
    assert [p for kind, p in happened if kind == "write"] == [0, 1]
    commits = [(i, p) for i, (kind, p) in enumerate(happened) if kind == "commit"]
    assert commits and commits[-1][1] == (2, None)  # in the end everything read is released
    for at, (offset, keep) in commits:  # a commit through offset o comes after batch o - 1 was written
        assert ("write", offset - 1) in happened[:at] and keep is None, happened
    if executor == "inline":  # one process: the exact order
        assert happened == [
            ("read", 1),
            ("write", 0),
            ("commit", (1, None)),
            ("read", 2),
            ("write", 1),
            ("commit", (2, None)),
        ]


def test_windows_keep_the_records_of_open_windows(recording, executor):
    log = recording_source.write_script(recording, [_batch("ab", 1, 5), _batch("c", 25), _batch("d", 26)])
    handle = (
        _context(recording, executor)
        .sql("SELECT k, window_start, COUNT(*) AS n FROM ev GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)")
        .start(sink=MemorySink())
    )
    assert handle.await_termination(HANG_GUARD_S)
    # after batch 1 the window from 0s is open; after batch 2 it closed (watermark 24s), the 20s one is open;
    # the end of input closes everything. Drizzle may skip a commit a later one covers, never the last.
    expected = {1: 0, 2: 20_000, 3: None}
    commits = _commits(log)
    assert commits[-1] == (3, None)
    assert all(keep == expected[offset] for offset, keep in commits), commits
    if executor == "inline":
        assert commits == [(1, 0), (2, 20_000), (3, None)]


def test_state_that_never_expires_keeps_everything(recording, executor):
    log = recording_source.write_script(recording, [_batch("ab", 1, 2), _batch("a", 3)])
    handle = _context(recording, executor).sql("SELECT k, COUNT(*) AS n FROM ev GROUP BY k").start(sink=MemorySink())
    assert handle.await_termination(HANG_GUARD_S)
    commits = _commits(log)
    assert commits and commits[-1] == (2, KEEP_ALL)
    assert all(keep == KEEP_ALL for _, keep in commits), commits


def test_collect_commits_nothing(recording, executor):
    log = recording_source.write_script(recording, [_batch("ab", 1, 2)])
    assert _context(recording, executor).sql("SELECT k FROM ev").collect().height == 2
    assert [kind for kind, _ in recording_source.events(log)] == ["read"]


def test_a_restart_replays_and_drops_windows_the_last_run_emitted(recording, executor):
    """Batches marked replayed rebuild state; windows ending by the restored watermark are not emitted again."""
    # the previous run saw 12s (watermark 11s), so it emitted [0s, 10s); it read 5s and 11s but did not
    # release them: they come again, as a replay
    recording_source.write_script(
        recording, [_batch("ab", 5, 11), _batch("c", 13), _batch("d", 31)], restored=12_000, replayed_batches=1
    )
    out = MemorySink()
    handle = (
        _context(recording, executor)
        .sql("SELECT window_start, COUNT(*) AS n FROM ev GROUP BY TUMBLE(ts, INTERVAL '10' SECOND)")
        .start(sink=out)
    )
    assert handle.await_termination(HANG_GUARD_S)
    assert sorted((ws.second, n) for ws, n in out.frame().rows()) == [(10, 2), (30, 1)]
    progress = handle.progress()
    assert progress[0]["late_rows"] == 0  # replayed rows are not late: they rebuild the state
    assert progress[0]["watermark"] is None  # nothing closes while the replay rebuilds the state
