"""The files sink for real use (issue 24): rolled files, partition_by, compression, exactly once kept.

Hypothesis writes random batches (with replays of batches already
written, as a recovery does) through every option combination; what a
reader gets (`read_committed`, and the files source reading the directory
back) is every batch's rows exactly once. Crashes between the steps of a
roll leave the directory readable and the next sink finishes the roll.
"""

from __future__ import annotations

import gzip
import json
import os

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from stream_dsl.connectors import files
from stream_dsl.connectors import files_sink
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SinkDef


def sink(path, **options: str) -> files.FileSink:
    settings_ = {"connector": "files", "path": str(path), **options}
    return files.FileSink(SinkDef("out", tuple(sorted(settings_.items()))))


def batch(rows: list[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"k": pl.String, "v": pl.Int64}, orient="row")


OPTIONS = [
    {},
    {"roll_size": "1"},  # every batch rolls at once
    {"roll_size": "1GB"},  # nothing rolls until close
    {"roll_interval": "1h"},
    {"partition_by": "k"},
    {"partition_by": "k", "roll_size": "2KB"},
    {"format": "csv", "compression": "gzip", "roll_size": "300"},
    {"format": "ndjson", "compression": "gzip", "partition_by": "k"},
    {"format": "csv", "roll_size": "1"},
    {"compression": "snappy", "roll_size": "1GB", "partition_by": "k"},
]
batches = st.lists(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c/d", "é"]), st.integers(-5, 5)), max_size=6), min_size=1, max_size=8
)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=batches, replays=st.lists(st.integers(0, 7), max_size=3))
def test_every_batch_is_read_back_once_whatever_the_options(tmp_path_factory, options, data, replays):
    out = tmp_path_factory.mktemp("out")
    writer = sink(out, **options)
    for batch_id, rows in enumerate(data):
        writer.write(batch_id, batch(rows))
        for again in replays:  # a recovery writes batches again with the same rows
            if again <= batch_id:
                writer.write(again, batch(data[again]))
    writer.close()
    expected = sorted(row for rows in data for row in rows)
    written = files.read_committed(str(out))
    got = sorted(written.select("k", "v").rows()) if written.height else []
    assert got == expected
    assert files.committed_batches(str(out)) == list(range(len(data)))
    assert not os.path.exists(out / files_sink.STAGING) or not any(os.scandir(out / files_sink.STAGING))
    if expected:  # the files source reads the directory back the same
        ctx = sd.Context(executor="inline")
        fmt = options.get("format", "parquet")
        ctx.sql(f"CREATE STREAM back (k STRING, v BIGINT) WITH (connector = 'files', path = '{out}', format = '{fmt}')")
        assert sorted(ctx.sql("SELECT k, v FROM back").collect().rows()) == expected


def test_rolled_files_hold_many_batches_and_appear_only_when_rolled(tmp_path):
    writer = sink(tmp_path, roll_size="1GB", partition_by="k")
    for batch_id in range(5):
        writer.write(batch_id, batch([("a", batch_id), ("b", -batch_id)]))
    assert files.committed_batches(str(tmp_path)) == [0, 1, 2, 3, 4]  # durable ...
    assert files.read_committed(str(tmp_path)).height == 0  # ... but staged, not visible yet
    writer.close()
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("data-*")) == [
        "k=a/data-00000000-00000004.parquet",
        "k=b/data-00000000-00000004.parquet",
    ]
    assert pl.read_parquet(tmp_path / "k=a" / "data-00000000-00000004.parquet")["v"].to_list() == [0, 1, 2, 3, 4]


def test_a_crash_in_the_middle_of_a_roll_loses_nothing_and_duplicates_nothing(tmp_path, monkeypatch):
    writer = sink(tmp_path, roll_size="1GB")
    for batch_id in range(3):
        writer.write(batch_id, batch([("a", batch_id)]))

    def crash(path: str, line: bytes) -> None:
        if b'"roll"' in line:
            raise OSError(5, "Input/output error")
        files_sink.append_line(path, line)

    monkeypatch.setattr(files_sink, "_append_line", crash)
    with pytest.raises(ConnectorError, match="cannot write"):
        writer.close()  # the rolled file is written, its line is not
    monkeypatch.undo()
    assert files.read_committed(str(tmp_path)).height == 0  # the orphan rolled file is not read
    again = sink(tmp_path, roll_size="1GB")  # a restart: the staged batches are still there
    assert again.last_batch_id() == 2
    again.write(2, batch([("a", 2)]))  # a replay of a durable batch writes nothing
    again.write(3, batch([("a", 3)]))
    again.close()
    assert files.read_committed(str(tmp_path))["v"].to_list() == [0, 1, 2, 3]


def test_compression_and_the_log_an_outside_reader_follows(tmp_path):
    writer = sink(tmp_path, format="ndjson", compression="gzip")
    writer.write(0, batch([("a", 1)]))
    (part,) = [p for p in os.listdir(tmp_path) if p.startswith("part-")]
    assert part == "part-00000000.ndjson.gz"
    assert json.loads(gzip.decompress((tmp_path / part).read_bytes())) == {"k": "a", "v": 1}
    lines = [json.loads(line) for line in (tmp_path / "_committed").read_text().splitlines()]
    assert lines == [{"batch_id": 0, "file": "part-00000000.ndjson.gz"}]
    for bad, message in (
        ({"compression": "zip"}, "compression 'zip' is not one of zstd"),
        ({"roll_interval": "soon"}, "roll_interval must be a duration"),
        ({"roll_size": "big"}, "roll_size must be a size"),
    ):
        with pytest.raises(ConnectorError, match=message):
            sink(tmp_path / "x", **bad)
    with pytest.raises(ConnectorError, match="partition_by names column 'nope'"):
        sink(tmp_path / "y", partition_by="nope").write(0, batch([("a", 1)]))
