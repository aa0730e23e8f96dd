"""Watch mode lists incrementally (connectors/file_listing.py): new files are seen, old ones never looked at again.

Directory mtimes are set explicitly (os.utime) so that "settled" does not
depend on the filesystem clock's granularity or on sleeping.
"""

from __future__ import annotations

import os
import time

import polars as pl
import pytest

from stream_dsl.connectors import file_listing, files
from stream_dsl.connectors.files_sink import FileSink
from stream_dsl.ir.definitions import SinkDef, SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema

SCHEMA = Schema.of(("k", T.BIGINT))


def write(path, k: int) -> None:
    path.write_text(f'{{"k": {k}}}\n')


def settle(directory, seconds_ago: float) -> None:
    """Give `directory` an mtime in the past, distinct for each call with a distinct `seconds_ago`."""
    when = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(directory, ns=(when, when))


def listing(path, **options) -> file_listing.Listing:
    definition = SourceDef(
        "s", "stream", SCHEMA, tuple(sorted({"connector": "files", "path": str(path), **options}.items()))
    )
    return file_listing.Listing(files.FileOptions.parse(definition), "source 's'")


def source(path, **options) -> files.FileSource:
    opts = {"connector": "files", "path": str(path), "watch": "true", **options}
    return files.make_source(SourceDef("s", "stream", SCHEMA, tuple(sorted(opts.items()))))


def test_a_settled_directory_is_not_read_again_until_it_changes(tmp_path):
    for i in range(3):
        write(tmp_path / f"{i}.ndjson", i)
    write(tmp_path / ".hidden.ndjson", 9)
    (tmp_path / "notes.txt").write_text("not data")
    settle(tmp_path, 60)
    lister = listing(tmp_path)
    assert lister.new_files() == [str(tmp_path / f"{i}.ndjson") for i in range(3)]
    assert lister.new_files() == [] and lister.scans == 1  # one stat of the directory, no scan
    write(tmp_path / "3.ndjson", 3)
    settle(tmp_path, 50)
    assert lister.new_files() == [str(tmp_path / "3.ndjson")] and lister.scans == 2


def test_rewritten_files_are_not_read_again_and_renamed_ones_are_new(tmp_path):
    write(tmp_path / "a.ndjson", 1)
    settle(tmp_path, 60)
    lister = listing(tmp_path)
    assert lister.new_files() == [str(tmp_path / "a.ndjson")]
    write(tmp_path / "a.ndjson", 2)  # rewritten in place: a name is read once
    settle(tmp_path, 50)
    assert lister.new_files() == []
    os.replace(tmp_path / "a.ndjson", tmp_path / "b.ndjson")  # renamed: new under its new name
    settle(tmp_path, 40)
    assert lister.new_files() == [str(tmp_path / "b.ndjson")]


def test_a_directory_changed_just_now_is_scanned_every_time(tmp_path):
    write(tmp_path / "a.ndjson", 1)
    lister = listing(tmp_path)
    lister.new_files()
    lister.new_files()
    assert lister.scans == 2  # the mtime may hide a change made within the clock's granularity


def test_globs_and_single_files_list_like_list_files(tmp_path):
    for name in ("a.ndjson", "b.json", "_c.ndjson", "d.csv"):
        write(tmp_path / name, 1)
    pattern = str(tmp_path / "*.*json")
    options = files.FileOptions.parse(SourceDef("s", "stream", SCHEMA, (("connector", "files"), ("path", pattern))))
    lister = listing(pattern)
    assert lister.new_files() == files.list_files(options, "s") and lister.new_files() == []
    single = listing(tmp_path / "a.ndjson")
    assert single.new_files() == [str(tmp_path / "a.ndjson")] and single.new_files() == []


def test_a_watched_sink_directory_reads_each_committed_batch_once(tmp_path):
    sink = FileSink(SinkDef("out", (("connector", "files"), ("path", str(tmp_path)), ("format", "ndjson"))))
    sink.write(0, pl.DataFrame({"k": [1, 2]}))
    src = source(tmp_path)
    src.open(["k"])
    assert src.next_batch(100).frame.get_column("k").to_list() == [1, 2]
    assert src.next_batch(100).frame.height == 0
    sink.write(1, pl.DataFrame({"k": [3]}))
    assert src.next_batch(100).frame.get_column("k").to_list() == [3]
    sink.close()


@pytest.mark.parametrize("count", [5, 60])
def test_an_idle_watched_batch_stats_a_fixed_number_of_paths(tmp_path, monkeypatch, count):
    for i in range(count):
        write(tmp_path / f"{i:03d}.ndjson", i)
    settle(tmp_path, 60)
    src = source(tmp_path)
    src.open(["k"])
    assert src.next_batch(100).frame.height == count
    calls = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda p, *a, **k: calls.append(p) or real_stat(p, *a, **k))
    batch = src.next_batch(100)
    assert batch.frame.height == 0 and len(batch.offset["files"]) == count
    assert len(calls) <= 3  # the path, its _committed log (absent) and the directory: never the files read
