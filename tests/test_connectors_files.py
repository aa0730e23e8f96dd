"""The files connector (source, table, sink) and the shared decoding, on real files in tmp_path."""

from __future__ import annotations

import datetime as dt
import json
import os

import polars as pl
import pytest

from stream_dsl.connectors import file_writes
from stream_dsl.connectors import decode, decode_ndjson, files
from stream_dsl.connectors.base import SourceBatch
from stream_dsl.errors import ConnectorError, DSLError
from stream_dsl.ir.definitions import SinkDef, SourceDef, Watermark
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema

SCHEMA = Schema.of(("id", T.BIGINT), ("name", T.STRING), ("score", T.DOUBLE), ("ok", T.BOOLEAN), ("ts", T.TIMESTAMP))
ROWS = [
    {"id": 1, "name": "a", "score": 1.5, "ok": True, "ts": dt.datetime(2024, 1, 1, 0, 0, 0)},
    {"id": 2, "name": "b", "score": 2.0, "ok": False, "ts": dt.datetime(2024, 1, 1, 0, 0, 1, 250_000)},
    {"id": 3, "name": None, "score": None, "ok": None, "ts": None},
]


def expected(rows=ROWS, schema: Schema = SCHEMA) -> pl.DataFrame:
    return pl.DataFrame([{k: r[k] for k in schema.names} for r in rows], schema=schema.to_polars(), orient="row")


def source(path, schema: Schema = SCHEMA, watermark: Watermark | None = None, **options) -> files.FileSource:
    opts = tuple(sorted({"connector": "files", "path": str(path), **{k: str(v) for k, v in options.items()}}.items()))
    return files.make_source(SourceDef("events", "stream", schema, opts, watermark))


def read_all(src, columns=None, offset=None, interval: int = 100) -> tuple[pl.DataFrame, list[SourceBatch]]:
    src.open(columns, offset)
    batches = []
    while True:
        batch = src.next_batch(interval)
        batches.append(batch)
        if batch.exhausted:
            break
        assert len(batches) < 1000
    frames = [b.frame for b in batches]
    return pl.concat(frames), batches


def write_ndjson(path, rows) -> None:
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps({k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in r.items()}) + "\n")


def write_csv(path, rows) -> None:
    expected(rows).with_columns(pl.col("ts").dt.to_string("%Y-%m-%dT%H:%M:%S%.3f")).write_csv(path)


# ------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
def test_each_format_reads_the_declared_schema(tmp_path, fmt):
    path = tmp_path / f"data.{files.SINK_EXTENSION[fmt]}"
    {"ndjson": write_ndjson, "csv": write_csv, "parquet": lambda p, r: expected(r).write_parquet(p)}[fmt](path, ROWS)
    frame, batches = read_all(source(path))
    assert frame.equals(expected())
    assert frame.schema == pl.Schema(SCHEMA.to_polars())
    assert batches[-1].exhausted and not batches[-1].dead_letters


def test_format_option_overrides_the_extension(tmp_path):
    path = tmp_path / "events.txt"
    write_ndjson(path, ROWS)
    frame, _ = read_all(source(path, format="json"))
    assert frame.equals(expected())
    with pytest.raises(ConnectorError, match="cannot tell the format of .*events.txt"):
        read_all(source(path))


def test_directory_reads_files_in_name_order_and_only_the_formats_files(tmp_path):
    write_ndjson(tmp_path / "b.json", ROWS[1:2])
    write_ndjson(tmp_path / "a.json", ROWS[0:1])
    write_ndjson(tmp_path / "c.ndjson", ROWS[2:3])
    (tmp_path / "campaigns.csv").write_text("id\n99\n")
    (tmp_path / ".hidden.json").write_text("not read\n")
    (tmp_path / "_SUCCESS").write_text("")
    frame, batches = read_all(source(tmp_path, format="ndjson"))
    assert frame.equals(expected())
    assert batches[-1].offset == {"files": sorted(str(tmp_path / n) for n in ("a.json", "b.json", "c.ndjson"))}


def test_directory_without_format_reads_each_file_by_its_extension(tmp_path):
    write_ndjson(tmp_path / "1.json", ROWS[0:1])
    write_csv(tmp_path / "2.csv", ROWS[1:2])
    expected(ROWS[2:3]).write_parquet(tmp_path / "3.parquet")
    (tmp_path / "notes.txt").write_text("ignored")
    frame, _ = read_all(source(tmp_path))
    assert frame.equals(expected())


def test_glob(tmp_path):
    for i, row in enumerate(ROWS):
        write_ndjson(tmp_path / f"part-{i}.json", [row])
    write_ndjson(tmp_path / "other.json", ROWS)
    frame, _ = read_all(source(tmp_path / "part-*.json"))
    assert frame.equals(expected())


# ---------------------------------------------------------------- projection


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
def test_only_requested_columns_are_returned_in_requested_order(tmp_path, fmt):
    path = tmp_path / f"data.{files.SINK_EXTENSION[fmt]}"
    {"ndjson": write_ndjson, "csv": write_csv, "parquet": lambda p, r: expected(r).write_parquet(p)}[fmt](path, ROWS)
    frame, _ = read_all(source(path), columns=["ts", "id"])
    assert frame.equals(expected().select("ts", "id"))
    counted, _ = read_all(source(path), columns=[])
    assert counted.shape == (3, 0)


def test_a_declared_column_missing_from_the_file_is_null(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("id,name\n1,a\n")
    frame, _ = read_all(source(path))
    assert frame.row(0) == (1, "a", None, None, None)


def test_unknown_requested_column_is_refused(tmp_path):
    write_ndjson(tmp_path / "a.json", ROWS)
    with pytest.raises(ConnectorError, match="no column 'nope'"):
        source(tmp_path).open(["nope"])


# ---------------------------------------------------------------- timestamps


def test_timestamps_accept_epoch_millis_and_iso_text(tmp_path):
    schema = Schema.of(("ts", T.TIMESTAMP))
    lines = [
        1704067200000,
        "1704067200000",
        "2024-01-01T00:00:00",
        "2024-01-01 00:00:00.000",
        "2024-01-01T01:00:00+01:00",
        "2024-01-01T00:00:00Z",
        "2024-01-01",
    ]
    (tmp_path / "t.json").write_text("".join(json.dumps({"ts": v}) + "\n" for v in lines))
    (tmp_path / "t.csv").write_text("ts\n" + "".join(f"{v}\n" for v in lines))
    want = dt.datetime(2024, 1, 1)
    for name in ("t.json", "t.csv"):
        frame, batches = read_all(source(tmp_path / name, schema))
        assert frame.schema["ts"] == pl.Datetime("ms")
        assert frame["ts"].to_list() == [want] * len(lines), name
        assert not batches[-1].dead_letters


def test_timestamps_keep_milliseconds_and_epoch_numbers_read_fast_path(tmp_path):
    schema = Schema.of(("ts", T.TIMESTAMP))
    (tmp_path / "t.json").write_text('{"ts": 1704067200123}\n{"ts": 1704067200999}\n')
    frame, _ = read_all(source(tmp_path / "t.json", schema))
    assert frame["ts"].dt.epoch("ms").to_list() == [1704067200123, 1704067200999]


def test_max_event_time_comes_from_the_watermark_column(tmp_path):
    write_ndjson(tmp_path / "a.json", ROWS)
    _, batches = read_all(source(tmp_path, watermark=Watermark("ts", 1000)))
    assert batches[-1].max_event_time_ms == int(
        dt.datetime(2024, 1, 1, 0, 0, 1, 250_000).replace(tzinfo=dt.timezone.utc).timestamp() * 1000
    )


# ----------------------------------------------------------- batching, watch


def test_max_files_per_batch_and_resuming_from_an_offset(tmp_path):
    for i, row in enumerate(ROWS):
        write_ndjson(tmp_path / f"{i}.json", [row])
    src = source(tmp_path, max_files_per_batch=2)
    frame, batches = read_all(src)
    assert [b.frame.height for b in batches] == [2, 1]
    assert [b.exhausted for b in batches] == [False, True]
    assert frame.equals(expected())
    resumed, _ = read_all(source(tmp_path, max_files_per_batch=2), offset=batches[0].offset)
    assert resumed.equals(expected(ROWS[2:]))


def test_bounded_source_reads_the_files_present_at_open(tmp_path):
    write_ndjson(tmp_path / "0.json", ROWS[:1])
    src = source(tmp_path)
    assert src.bounded
    src.open(None)
    write_ndjson(tmp_path / "1.json", ROWS[1:])
    batch = src.next_batch(100)
    assert batch.exhausted and batch.frame.height == 1


def test_watch_mode_picks_up_new_files_once(tmp_path):
    write_ndjson(tmp_path / "0.json", ROWS[:1])
    src = source(tmp_path, watch="true")
    assert not src.bounded
    src.open(None)
    first = src.next_batch(100)
    assert first.frame.equals(expected(ROWS[:1])) and not first.exhausted
    assert src.next_batch(100).frame.height == 0
    write_ndjson(tmp_path / ".1.json.tmp", ROWS[1:])  # a writer's temporary file is not read...
    assert src.next_batch(100).frame.height == 0
    os.replace(tmp_path / ".1.json.tmp", tmp_path / "1.json")  # ...until it is renamed into place
    second = src.next_batch(100)
    assert second.frame.equals(expected(ROWS[1:])) and not second.exhausted
    assert second.offset == {"files": [str(tmp_path / "0.json"), str(tmp_path / "1.json")]}
    assert src.next_batch(100).frame.height == 0


def test_watch_mode_on_an_empty_glob_waits_for_files(tmp_path):
    src = source(tmp_path / "*.json", watch="true")
    src.open(None)
    assert src.next_batch(100).frame.height == 0
    write_ndjson(tmp_path / "a.json", ROWS)
    assert src.next_batch(100).frame.height == 3


# --------------------------------------------------------------- bad records


def test_bad_ndjson_lines_become_dead_letters_and_good_rows_pass(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(
        b'{"id": 1, "name": "a", "ts": 1704067200000}\n'
        b'{"id": 2, "name": "b"\n'  # truncated JSON
        b'{"id": "seven", "name": "c"}\n'  # a string where a number is declared
        b"\n"
        b'{"id": 4, "name": "\xff\xfe"}\n'  # invalid UTF-8
        b"[1, 2]\n"
        b'{"id": 6, "ts": "yesterday"}\n'
        b'{"id": 7, "score": "high"}\n'
        b'{"id": 8, "ok": 1}\n'
        b'{"id": 9, "name": "i"}\n'
    )
    frame, batches = read_all(source(path))
    assert frame["id"].to_list() == [1, 9]
    letters = batches[-1].dead_letters
    assert [d.position for d in letters] == [f"{path}:{n}" for n in (2, 3, 5, 6, 7, 8, 9)]
    assert all(d.source == "events" for d in letters)
    reasons = [d.reason for d in letters]
    assert reasons[0].startswith("invalid JSON")
    assert reasons[1] == "column 'id': expected BIGINT, got string \"seven\""
    assert reasons[2].startswith("invalid UTF-8")
    assert reasons[3].startswith("expected a JSON object")
    assert reasons[4] == "column 'ts': cannot convert 'yesterday' to TIMESTAMP"
    assert reasons[5] == "column 'score': expected DOUBLE, got string \"high\""
    assert reasons[6] == "column 'ok': expected BOOLEAN, got number 1"
    assert letters[1].raw == '{"id": "seven", "name": "c"}'
    assert "\\xff" in letters[2].raw


def test_one_bad_line_in_a_big_file_costs_one_chunk(tmp_path):
    n = decode_ndjson.CHUNK_RECORDS * 3
    lines = [json.dumps({"id": i, "name": f"n{i}"}) for i in range(n)]
    lines[5000] = '{"id": oops}'
    (tmp_path / "big.json").write_text("\n".join(lines) + "\n")
    frame, batches = read_all(source(tmp_path / "big.json"))
    assert frame.height == n - 1
    assert frame["id"].to_list() == [i for i in range(n) if i != 5000]
    [letter] = batches[-1].dead_letters
    assert letter.position.endswith("big.json:5001") and letter.raw == '{"id": oops}'


def test_bad_csv_rows_become_dead_letters(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"id,name,score,ok,ts\n"
        b"1,a,1.5,true,2024-01-01T00:00:00\n"
        b"two,b,1,true,2024-01-01\n"
        b"3,c,1,true,2024-01-01,extra\n"
        b"4,\xff,1,true,2024-01-01\n"
        b"5,e,1,maybe,2024-01-01\n"
        b"6,f,1,true,soon\n"
        b'7,"multi\nline",2,FALSE,1704067200000\n'
    )
    frame, batches = read_all(source(path))
    assert frame["id"].to_list() == [1, 7]
    assert frame["name"].to_list() == ["a", "multi\nline"]
    letters = batches[-1].dead_letters
    assert [d.position.rsplit(":", 1)[1] for d in letters] == ["3", "4", "5", "6", "7"]
    assert letters[0].reason == "column 'id': cannot convert 'two' to BIGINT"
    assert letters[1].reason == "expected 5 fields, got 6"
    assert letters[2].reason.startswith("invalid UTF-8")
    assert letters[3].reason == "column 'ok': cannot convert 'maybe' to BOOLEAN"
    assert letters[4].reason == "column 'ts': cannot convert 'soon' to TIMESTAMP"
    assert letters[0].raw == "two,b,1,true,2024-01-01"


def test_csv_without_header_and_other_delimiter(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1;a;1.5;true;2024-01-01T00:00:00\n")
    frame, _ = read_all(source(path, header="false", delimiter=";"))
    assert frame.row(0) == (1, "a", 1.5, True, dt.datetime(2024, 1, 1))


def test_a_corrupt_parquet_file_is_a_dead_letter_not_a_crash(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"PAR1 this is not parquet")
    expected(ROWS).write_parquet(tmp_path / "b.parquet")
    frame, batches = read_all(source(tmp_path))
    assert frame.height == 3
    [letter] = batches[-1].dead_letters
    assert letter.position == str(tmp_path / "a.parquet") and "unreadable parquet" in letter.reason


def test_decode_conform_reports_unconvertible_parquet_values():
    frame = pl.DataFrame({"id": ["1", "x"], "ts": [1704067200000, None]})
    decoded = decode.conform(frame, Schema.of(("id", T.BIGINT), ("ts", T.TIMESTAMP)), source="s", origin="f")
    assert decoded.frame.rows() == [(1, dt.datetime(2024, 1, 1))]
    [letter] = decoded.dead_letters
    assert letter.position == "f:row 2" and letter.raw == '{"id":"x","ts":null}'


# -------------------------------------------------------------------- errors


def test_missing_path_names_the_source_and_the_path(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConnectorError, match=f"source 'events': path '{missing}' does not exist"):
        source(missing).open(None)
    with pytest.raises(ConnectorError, match="no files match"):
        source(tmp_path / "*.json").open(None)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"path": "x", "fromat": "csv"}, "unknown option 'fromat' (did you mean 'format'?)"),
        ({"path": "x", "format": "xml"}, "option format must be one of ndjson, json, jsonl, csv, parquet, got 'xml'"),
        ({"path": "x", "watch": "maybe"}, "option watch must be 'true' or 'false'"),
        ({"path": "x", "max_files_per_batch": "0"}, "max_files_per_batch must be at least 1"),
        ({}, "option 'path' is required"),
    ],
)
def test_bad_options_are_connector_errors(options, message):
    opts = tuple(sorted({"connector": "files", **options}.items()))
    with pytest.raises(ConnectorError) as info:
        files.make_source(SourceDef("events", "stream", SCHEMA, opts))
    assert message in str(info.value)
    assert isinstance(info.value, DSLError)


# --------------------------------------------------------------------- table


def test_table_reads_all_files_with_projection(tmp_path):
    (tmp_path / "campaigns.csv").write_text("ad_id,campaign_id\na1,c1\na2,c1\na3,c2\n")
    schema = Schema.of(("ad_id", T.STRING), ("campaign_id", T.STRING))
    table = files.make_table(
        SourceDef("campaigns", "table", schema, (("connector", "files"), ("path", str(tmp_path / "campaigns.csv"))))
    )
    assert table.read().rows() == [("a1", "c1"), ("a2", "c1"), ("a3", "c2")]
    assert table.read(["campaign_id"]).columns == ["campaign_id"]
    assert table.dead_letters == []


def test_table_with_missing_path_is_a_connector_error(tmp_path):
    table = files.make_table(SourceDef("campaigns", "table", SCHEMA, (("path", str(tmp_path / "no.csv")),)))
    with pytest.raises(ConnectorError, match="table 'campaigns': path .* does not exist"):
        table.read()


# ---------------------------------------------------------------------- sink


def parts(path) -> list[str]:
    """The files in a sink directory, without its committed-batch log."""
    return sorted(n for n in os.listdir(path) if n != files.COMMITTED_LOG)


def sink(path, **options) -> files.FileSink:
    return files.make_sink(SinkDef("out", tuple(sorted({"connector": "files", "path": str(path), **options}.items()))))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson"])
def test_sink_writes_one_file_per_batch_that_the_source_reads_back(tmp_path, fmt):
    out = sink(tmp_path / "out", format=fmt)
    out.write(0, expected(ROWS[:2]))
    out.write(1, expected(ROWS[2:]))
    out.close()
    ext = files.SINK_EXTENSION[fmt]
    assert parts(tmp_path / "out") == [f"part-00000000.{ext}", f"part-00000001.{ext}"]
    frame, _ = read_all(source(tmp_path / "out", format=fmt))
    assert frame.equals(expected())


def test_sink_default_format_is_parquet(tmp_path):
    sink(tmp_path).write(7, expected())
    assert pl.read_parquet(tmp_path / "part-00000007.parquet").equals(expected())


def test_sink_rewrite_of_a_batch_id_replaces_it(tmp_path):
    out = sink(tmp_path)
    out.write(3, expected(ROWS))
    out.write(3, expected(ROWS[:1]))
    assert parts(tmp_path) == ["part-00000003.parquet"]
    assert pl.read_parquet(tmp_path / "part-00000003.parquet").equals(expected(ROWS[:1]))
    out.write(3, expected([]))  # the replayed batch is now empty: its old file goes
    assert parts(tmp_path) == []


def test_sink_writes_atomically(tmp_path, monkeypatch):
    out = sink(tmp_path)
    out.write(1, expected(ROWS))
    renames = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((os.path.basename(src), os.path.basename(dst)))
        assert os.path.dirname(src) == os.path.dirname(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    out.write(2, expected(ROWS))
    assert len(renames) == 1 and renames[0][1] == "part-00000002.parquet" and renames[0][0].startswith(".")

    real_write = os.write

    def failing_write(fd, data):  # half a file reaches the disk, then the disk is full
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(tmp_path)):
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    monkeypatch.setattr(file_writes, "sleep", lambda s: None)
    with pytest.raises(ConnectorError, match="sink 'out': cannot write .*No space left"):
        out.write(1, expected(ROWS[:1]))
    assert sorted(os.listdir(tmp_path)) == ["_committed", "part-00000001.parquet", "part-00000002.parquet"]
    monkeypatch.undo()
    assert pl.read_parquet(tmp_path / "part-00000001.parquet").equals(expected(ROWS))


def test_sink_path_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConnectorError, match="is not a directory"):
        sink(tmp_path / "f")
