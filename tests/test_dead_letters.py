"""Bad records on every source: the good rows give the right result, every bad one is a dead letter.

One corpus of malformed records mixed into good ones (truncated JSON, wrong
types, unknown fields, empty lines, invalid UTF-8, 2 MB lines) goes through
the files, socket, redis and python sources. Then where dead letters go:
the `dead_letter` option (a file, 'none', a catalog sink) and its default.
"""

from __future__ import annotations

import json
import os
import socket
import threading

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.connectors import python_io
from stream_dsl.connectors.dead_letters import read_dead_letters
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.errors import ConnectorError
from redis_server import free_port, start_server, stop_server

HANG_GUARD_S = 120  # only to avoid hanging when something is broken
HUGE = 2 * 1024 * 1024
COLUMNS = "k STRING, n BIGINT, note STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND"
QUERY = "SELECT k, n, LENGTH(note) AS note_len, ts FROM ev"


def _good(k: str, n: int, second: int, note: str = "", **extra) -> bytes:
    return json.dumps({"k": k, "n": n, "note": note, "ts": f"2026-01-01T00:00:{second:02d}", **extra}).encode()


def corpus() -> tuple[list[bytes], list[tuple[str, int, int]], dict[int, str]]:
    """Lines, the good rows (k, n, note length), and line number → a word the bad line's reason holds."""
    lines: list[bytes] = []
    good: list[tuple[str, int, int]] = []
    bad: dict[int, str] = {}

    def add_good(k: str, n: int, note: str = "", **extra) -> None:
        lines.append(_good(k, n, len(lines) % 60, note, **extra))
        good.append((k, n, len(note)))

    def add_bad(line: bytes, reason: str) -> None:
        lines.append(line)
        bad[len(lines)] = reason

    add_good("a", 1)
    add_bad(b'{"k": "b", "n": 2, "ts": "2026-01', "invalid JSON")  # truncated
    add_good("a", 2, extra_field={"nested": [1, 2]})  # unknown fields are ignored
    lines.append(b"")  # an empty line: skipped, not an error
    add_bad(b'{"k": "c", "n": "lots", "note": "", "ts": "2026-01-01T00:00:05"}', "column 'n'")  # wrong type
    add_bad(b'{"k": "\xff\xfe", "n": 3, "note": "", "ts": "2026-01-01T00:00:06"}', "UTF-8")  # invalid UTF-8
    add_good("b", 3, note="x" * HUGE)  # a huge good line
    add_bad(b'{"k": "d", "n": 4, "note": "' + b"y" * HUGE, "invalid JSON")  # a huge truncated line
    lines.append(b"   ")  # blank: skipped
    add_bad(b"[1, 2, 3]", "JSON object")
    add_bad(b'{"k": "e", "n": 5, "note": "", "ts": "not a time"}', "column 'ts'")
    add_bad(b'{"k": "f", "n": 1.5, "note": "", "ts": "2026-01-01T00:00:09"}', "column 'n'")
    for i in range(20):
        add_good("c", 10 + i)
    return lines, good, bad


def expected_rows(good: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    return sorted(good)


def output_rows(frame: pl.DataFrame) -> list[tuple[str, int, int]]:
    return sorted(frame.select("k", "n", "note_len").rows())


def check_dead_letters(letters: list[dict], bad: dict[int, str], position_of) -> None:
    """Every bad line is there once, at its position, with a reason naming what is wrong."""
    by_position = {d["position"]: d for d in letters}
    assert len(by_position) == len(letters) == len(bad), [d["position"] for d in letters]
    for line, word in bad.items():
        letter = by_position[position_of(line)]
        assert word in letter["reason"], (line, letter["reason"])
        assert letter["source"] == "ev" and letter["raw"]


def check_progress(handle, bad: dict[int, str]) -> None:
    assert sum(p["dead_letters"] for p in handle.progress()) == len(bad) == len(handle.dead_letters)


# ---------------------------------------------------------------- the corpus on every source


def test_files_source(tmp_path):
    lines, good, bad = corpus()
    data = tmp_path / "in"
    data.mkdir()
    (data / "events.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    letters_file = tmp_path / "bad.ndjson"
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM ev ({COLUMNS}) WITH (connector = 'files', path = '{data}', format = 'ndjson', "
        f"dead_letter = '{letters_file}')"
    )
    sink = MemorySink()
    handle = ctx.sql(QUERY).start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)
    assert output_rows(sink.frame()) == expected_rows(good)
    path = str(data / "events.ndjson")
    check_dead_letters(read_dead_letters(str(letters_file)), bad, lambda line: f"{path}:{line}")
    check_progress(handle, bad)
    assert {d["batch_id"] for d in read_dead_letters(str(letters_file))} == {0}
    # collect() gives the same good rows, and writes the dead letters where the option says
    os.remove(letters_file)
    assert output_rows(ctx.sql(QUERY).collect()) == expected_rows(good)
    assert len(read_dead_letters(str(letters_file))) == len(bad)


def _send(port: int, chunks: list[bytes]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD_S) as client:
        for chunk in chunks:
            client.sendall(chunk)


def test_socket_source(tmp_path):
    lines, good, bad = corpus()
    data = b"\n".join(lines) + b"\n"
    # cut the stream at awkward places: inside lines, inside the huge ones
    cuts = [0, 7, 100, len(data) // 3, len(data) // 3 + 1, 2 * len(data) // 3, len(data) - 5, len(data)]
    chunks = [data[a:b] for a, b in zip(cuts, cuts[1:])]
    port = free_port()
    letters_file = tmp_path / "bad.ndjson"
    ctx = sd.Context(executor="inline", workers=1, batch_interval="20ms")
    ctx.sql(
        f"CREATE STREAM ev ({COLUMNS}) WITH (connector = 'socket', port = '{port}', bounded = 'true', "
        f"dead_letter = '{letters_file}')"
    )
    sink = MemorySink()
    handle = ctx.sql(QUERY).start(sink=sink)  # the source listens once the query is open
    sender = threading.Thread(target=_send, args=(port, chunks))
    sender.start()
    sender.join(HANG_GUARD_S)
    assert handle.await_termination(HANG_GUARD_S)
    assert output_rows(sink.frame()) == expected_rows(good)
    letters = read_dead_letters(str(letters_file))
    peer = letters[0]["position"].rsplit(":", 1)[0]
    assert peer.startswith("127.0.0.1:")
    check_dead_letters(letters, bad, lambda line: f"{peer}:{line}")
    check_progress(handle, bad)


def test_redis_source(tmp_path):
    server = start_server()
    try:
        lines, good, bad = corpus()
        client = server.client()
        ids = [client.xadd("corpus", {"data": line}).decode() for line in lines]
        letters_file = tmp_path / "bad.ndjson"
        ctx = sd.Context(executor="inline", workers=1)
        ctx.sql(
            f"CREATE STREAM ev ({COLUMNS}) WITH (connector = 'redis', url = '{server.url}', stream = 'corpus', "
            f"bounded = 'true', batch_size = '7', dead_letter = '{letters_file}')"
        )
        sink = MemorySink()
        handle = ctx.sql(QUERY).start(sink=sink)
        assert handle.await_termination(HANG_GUARD_S)
        assert output_rows(sink.frame()) == expected_rows(good)
        check_dead_letters(read_dead_letters(str(letters_file)), bad, lambda line: f"corpus:{ids[line - 1]}")
        check_progress(handle, bad)
        assert client.xpending("corpus", "stream-dsl-ev")["pending"] == 0  # bad entries are acknowledged too
    finally:
        stop_server(server)


def test_python_source(tmp_path):
    import datetime as dt

    t = dt.datetime(2026, 1, 1, 0, 0, 1)
    items = [
        {"k": "a", "n": 1, "note": "", "ts": t},
        {"k": "a", "n": "lots", "note": "", "ts": t},  # 2: wrong type
        {"k": "b", "n": 2, "note": "x" * HUGE, "ts": t, "extra": object()},  # unknown fields are ignored...
        b'{"k": "c"}',  # 4: not a record
        ("c", 3, "", "2026-01-01T00:00:02"),
        ("d", 4, ""),  # 6: too few values
        {"k": "e", "n": 5, "note": "", "ts": "not a time"},  # 7: bad timestamp
        {"k": "f", "n": 1.5, "note": "", "ts": t},  # 8: not a BIGINT
        {"k": "\udcff", "n": 6, "note": "", "ts": t},  # 9: a lone surrogate: not valid UTF-8
        {"k": "g", "n": 7, "note": None, "ts": 1767225603000},
    ]
    bad = {
        2: "column 'n'",
        3: "cannot be read",
        4: "got bytes",
        6: "expected 4 values",
        7: "column 'ts'",
        8: "column 'n'",
        9: "UTF-8",
    }
    letters_file = tmp_path / "bad.ndjson"
    ctx = sd.Context(executor="inline", workers=1)
    python_io.iterable_stream(
        ctx,
        iter(items),
        {"k": "STRING", "n": "BIGINT", "note": "STRING", "ts": "TIMESTAMP"},
        name="ev",
        batch_rows=3,
        dead_letter=str(letters_file),
    )
    out: dict[int, pl.DataFrame] = {}
    handle = ctx.sql(QUERY).foreach_batch(lambda batch_id, frame: out.__setitem__(batch_id, frame))
    assert handle.await_termination(HANG_GUARD_S)
    assert output_rows(pl.concat(out.values())) == [("a", 1, 0), ("c", 3, 0), ("g", 7, None)]
    letters = read_dead_letters(str(letters_file))
    prefix = letters[0]["position"].split(":")[0]
    check_dead_letters(letters, bad, lambda number: f"{prefix}:item {number}")
    check_progress(handle, bad)


def test_python_items_of_every_kind():
    rows = [
        {"k": "a", "n": 1},
        ("b", 2),
        pl.DataFrame({"k": ["c", "d"], "n": [3, 4]}),
        ("e",),
        42,
        {"k": "f", "n": "x"},
    ]
    ctx = sd.Context(executor="inline", workers=1)
    stream = python_io.iterable_stream(ctx, rows, {"k": "STRING", "n": "BIGINT"}, batch_rows=2)
    sink = MemorySink()
    handle = stream.start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)
    assert sorted(sink.frame().rows()) == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
    reasons = sorted((d.position, d.reason) for d in handle.dead_letters)
    assert [p for p, _ in reasons] == [f"{reasons[0][0].split(':')[0]}:item {i}" for i in (4, 5, 6)]
    assert "expected 2 values" in reasons[0][1] and "got int" in reasons[1][1] and "column 'n'" in reasons[2][1]


def test_python_queue_source_and_python_sink():
    import queue

    q: queue.Queue = queue.Queue()
    ctx = sd.Context(executor="inline", workers=1, batch_interval="20ms")
    stream = python_io.iterable_stream(ctx, q, {"k": "STRING"})
    got: list[str] = []
    sink = python_io.sink_def("collector", lambda batch_id, frame: got.extend(frame.get_column("k").to_list()))
    handle = stream.start(sink=sink)
    for k in "abc":
        q.put({"k": k})
    q.put(python_io.END)
    assert handle.await_termination(HANG_GUARD_S)
    assert got == ["a", "b", "c"]


# ---------------------------------------------------------------- where dead letters go


BAD_FILE = b'{"k": "a", "n": 1, "note": "", "ts": "2026-01-01T00:00:01"}\n{oops\n'


def _files_context(tmp_path, option: str | None = None, executor: str = "inline", **context) -> sd.Context:
    data = tmp_path / "in"
    data.mkdir(exist_ok=True)
    (data / "e.ndjson").write_bytes(BAD_FILE)
    ctx = sd.Context(executor=executor, workers=1, **context)
    extra = "" if option is None else f", dead_letter = '{option}'"
    ctx.sql(f"CREATE STREAM ev ({COLUMNS}) WITH (connector = 'files', path = '{data}', format = 'ndjson'{extra})")
    return ctx


def _run(ctx: sd.Context, sink=None):
    handle = ctx.sql(QUERY).start(sink=sink if sink is not None else MemorySink())
    assert handle.await_termination(HANG_GUARD_S)
    return handle


def test_default_goes_beside_a_files_sink_and_is_not_read_back(tmp_path):
    ctx = _files_context(tmp_path)
    ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{tmp_path / 'out'}', format = 'ndjson')")
    _run(ctx, "out")
    [letter] = read_dead_letters(str(tmp_path / "out" / "_dead_letter" / "ev.ndjson"))
    assert letter["reason"].startswith("invalid JSON") and letter["raw"] == "{oops" and letter["batch_id"] == 0
    ctx.sql(f"CREATE STREAM back (k STRING) WITH (connector = 'files', path = '{tmp_path / 'out'}', format = 'ndjson')")
    assert ctx.sql("SELECT k FROM back").collect().get_column("k").to_list() == ["a"]


def test_default_goes_into_the_checkpoint_dir(tmp_path):
    checkpoints = tmp_path / "ckpt"
    _run(_files_context(tmp_path, checkpoint_dir=str(checkpoints)))
    assert len(read_dead_letters(str(checkpoints / "_dead_letter" / "ev.ndjson"))) == 1


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_default_otherwise_only_counts_and_writes_nothing_in_the_current_directory(tmp_path, monkeypatch, executor):
    """No checkpoint directory, no files sink: the user named no place to write in, so nothing is written."""
    monkeypatch.chdir(tmp_path)
    ctx = _files_context(tmp_path, executor=executor)
    before = sorted(p.name for p in tmp_path.iterdir())
    handle = _run(ctx)
    assert sum(p["dead_letters"] for p in handle.progress()) == 1
    assert [d.raw for d in handle.dead_letters] == ["{oops"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_collect_without_the_option_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _files_context(tmp_path).sql(QUERY).collect().height == 1
    assert not (tmp_path / "_dead_letter").exists()


def test_none_only_counts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    handle = _run(_files_context(tmp_path, "none"))
    assert sum(p["dead_letters"] for p in handle.progress()) == 1
    assert not (tmp_path / "_dead_letter").exists()


def test_a_directory_path_gets_a_file_named_after_the_source(tmp_path):
    _run(_files_context(tmp_path, f"{tmp_path}/letters/"))
    assert len(read_dead_letters(str(tmp_path / "letters" / "ev.ndjson"))) == 1


def test_a_catalog_sink_receives_the_dead_letters_per_batch(tmp_path):
    ctx = _files_context(tmp_path, "rejects")
    ctx.sql("CREATE SINK rejects WITH (connector = 'memory', id = 'dl-rejects-test')")
    _run(ctx)
    from stream_dsl.connectors.memory import sink_batches

    [(batch_id, frame)] = sink_batches("dl-rejects-test").items()
    assert frame.columns == ["source", "position", "raw", "reason", "batch_id"]
    assert frame.row(0)[0] == "ev" and frame.row(0)[2] == "{oops" and frame.row(0)[4] == batch_id


def test_an_unknown_target_name_is_refused_with_a_suggestion(tmp_path):
    ctx = _files_context(tmp_path, "rejcts")
    ctx.sql("CREATE SINK rejects WITH (connector = 'memory')")
    with pytest.raises(
        ConnectorError,
        match="dead_letter 'rejcts' is neither a sink in the catalog \\(did you mean 'rejects'\\?\\) nor a file path",
    ):
        ctx.sql(QUERY).start(sink=MemorySink())


def test_a_deleted_file_is_one_clear_error_naming_the_source_and_the_file(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    for name in ("a", "b"):
        (data / f"{name}.ndjson").write_bytes(BAD_FILE.splitlines()[0] + b"\n")
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM ev ({COLUMNS}) WITH (connector = 'files', path = '{data}', format = 'ndjson', "
        f"max_files_per_batch = '1', dead_letter = 'none')"
    )
    first = threading.Event()

    def sink(batch_id, frame):
        if not first.is_set():
            first.set()
            os.remove(data / "b.ndjson")

    handle = ctx.sql(QUERY).start(sink=sink)
    with pytest.raises(sd.DSLError) as info:
        handle.await_termination(HANG_GUARD_S)
    assert f"source 'ev': file '{data / 'b.ndjson'}' was deleted before it was read" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectorError)
