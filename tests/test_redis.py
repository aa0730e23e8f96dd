"""The redis connector against a real redis-server on a loopback port (no mock).

The server comes from `tests/redis_server.py`: started once for the module
(each test uses its own stream names), or per test where a test stops it.
Timeouts below only keep a broken run from hanging; no test measures time.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.connectors import redis_streams
from stream_dsl.connectors.generator import events_as_json, ysb_campaigns, ysb_events
from stream_dsl.connectors.redis_sink import read_stream
from stream_dsl.errors import ConnectorError, DSLError, ExecutionError
from stream_dsl.ir.definitions import SinkDef, SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema
from redis_server import RedisServer, start_server, stop_server

HANG_GUARD_S = 120  # only to avoid hanging forever when something is broken

YSB_COLUMNS = (
    "user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING, "
    "event_time TIMESTAMP, ip_address STRING, "
    "WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND"
)
YSB_SELECT = """SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, {window}"""
TUMBLE = "TUMBLE(event_time, INTERVAL '10' SECOND)"
SECOND = "TUMBLE(event_time, INTERVAL '1' SECOND)"
HOP = "HOP(event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)"
KEYS = ["campaign_id", "window_start", "window_end"]


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    yield srv
    stop_server(srv)


@pytest.fixture
def own_server():
    """A server this test may stop and start again."""
    srv = start_server()
    yield srv
    stop_server(srv)


# ---------------------------------------------------------------- helpers


def produce(srv: RedisServer, stream: str, events: pl.DataFrame) -> None:
    """Events as JSON records in the `data` field, the way a producer would add them."""
    client = srv.client()
    pipe = client.pipeline(transaction=False)
    for line in events_as_json(events).splitlines():
        pipe.xadd(stream, {"data": line})
    pipe.execute()
    client.close()


EVERY_EXECUTOR = pytest.mark.parametrize("executor", ["inline", "bsp", "drizzle"])


def ysb_context(
    srv: RedisServer, *, stream: str, group: str, sink_stream: str, executor: str = "inline", **options: str
) -> sd.Context:
    ctx = sd.Context(executor=executor, workers=2, group_size=4)
    extra = "".join(f", {k} = '{v}'" for k, v in options.items())
    ctx.sql(f"""
        CREATE STREAM events ({YSB_COLUMNS})
          WITH (connector = 'redis', url = '{srv.url}', stream = '{stream}', group = '{group}'{extra});
        CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
          WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '1');
        CREATE SINK out WITH (connector = 'redis', url = '{srv.url}', stream = '{sink_stream}');
    """)
    return ctx


def polars_ysb(events: pl.DataFrame, *, size_s: int = 10, slide_s: int | None = None) -> pl.DataFrame:
    """The YSB query in plain polars; HOP windows by listing every window start each event falls in."""
    views = events.filter(pl.col("event_type") == "view").join(ysb_campaigns(1), on="ad_id")
    slide_s = slide_s or size_s
    per = size_s // slide_s
    starts = [
        views.with_columns(
            (pl.col("event_time").dt.truncate(f"{slide_s}s") - pl.duration(seconds=slide_s * k)).alias("window_start")
        )
        for k in range(per)
    ]
    windows = pl.concat(starts).with_columns(window_end=pl.col("window_start") + pl.duration(seconds=size_s))
    return windows.group_by(KEYS).agg(pl.len().cast(pl.Int64).alias("views")).sort(KEYS)


def results(srv: RedisServer, stream: str) -> pl.DataFrame:
    rows = read_stream(srv.url, stream)
    if not rows:
        return pl.DataFrame(
            schema={
                "campaign_id": pl.String,
                "window_start": pl.Datetime("ms"),
                "window_end": pl.Datetime("ms"),
                "views": pl.Int64,
            }
        )
    frame = pl.DataFrame(rows)
    return frame.with_columns(
        pl.col("window_start", "window_end").str.to_datetime(time_unit="ms"), pl.col("views").cast(pl.Int64)
    ).select(KEYS + ["views"])


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def rows_read(handle) -> int:
    return sum(p["rows_in"] for p in handle.progress())


# ---------------------------------------------------------------- end to end


def test_ysb_end_to_end_equals_polars(server):
    events = ysb_events(6000, rate=100)  # 60 seconds of event time: 6 windows per campaign
    produce(server, "e2e:events", events)
    ctx = ysb_context(server, stream="e2e:events", group="g", sink_stream="e2e:out", bounded="true", batch_size="400")
    handle = ctx.sql(f"INSERT INTO out {YSB_SELECT.format(window=TUMBLE)}")
    assert handle.await_termination(HANG_GUARD_S)
    out = results(server, "e2e:out")
    expected = polars_ysb(events)
    assert out.sort(KEYS).equals(expected)
    assert out.select(KEYS).is_unique().all()
    assert len(handle.progress()) >= 15  # it really ran in many micro-batches
    client = server.client()
    assert client.xpending("e2e:events", "g")["pending"] == 0  # all acknowledged once written


def test_collect_reads_a_bounded_stream_and_acknowledges_nothing(server):
    events = ysb_events(2000, rate=100)
    produce(server, "col:events", events)
    ctx = ysb_context(server, stream="col:events", group="g", sink_stream="col:out", bounded="true", batch_size="300")
    result = ctx.sql(YSB_SELECT.format(window=TUMBLE)).collect()
    assert result.sort(KEYS).equals(polars_ysb(events))
    # collect() keeps nothing durable, so the entries stay pending for the group
    assert server.client().xpending("col:events", "g")["pending"] == 2000


# ---------------------------------------------------------------- restart


@EVERY_EXECUTOR
@pytest.mark.parametrize("window, size_s, slide_s", [(TUMBLE, 10, None), (HOP, 10, 5)], ids=["tumble", "hop"])
def test_restart_emits_every_window_exactly_once(server, window, size_s, slide_s, executor):
    name = f"restart-{size_s}-{slide_s}-{executor}"
    events = ysb_events(8000, rate=100)  # 80 seconds of event time
    first, second = events.head(4500), events.tail(3500)
    produce(server, f"{name}:events", first)

    ctx = ysb_context(
        server, stream=f"{name}:events", group="g", sink_stream=f"{name}:out", batch_size="300", executor=executor
    )
    query = f"INSERT INTO out {YSB_SELECT.format(window=window)}"
    handle = ctx.sql(query)
    wait_for(lambda: rows_read(handle) >= first.height or not handle.is_active, "the first half to be read")
    handle.stop(HANG_GUARD_S)
    assert handle.exception is None
    partial = results(server, f"{name}:out")
    assert 0 < partial.height < polars_ysb(events, size_s=size_s, slide_s=slide_s).height
    # the entries of windows still open were not acknowledged: a restart reads them again
    client = server.client()
    assert 0 < client.xpending(f"{name}:events", "g")["pending"] < first.height

    committed = [int(k) for k in client.hkeys(f"{name}:out:committed")]
    produce(server, f"{name}:events", second)
    ctx2 = ysb_context(
        server,
        stream=f"{name}:events",
        group="g",
        sink_stream=f"{name}:out",
        batch_size="300",
        bounded="true",
        executor=executor,
    )
    handle2 = ctx2.sql(query)
    assert handle2.await_termination(HANG_GUARD_S)
    assert handle2.progress()[0]["batch_id"] == max(committed) + 1  # ids continue after the sink's last batch

    combined = results(server, f"{name}:out")
    assert combined.select(KEYS).is_unique().all(), "a window was emitted twice"
    assert combined.sort(KEYS).equals(polars_ysb(events, size_s=size_s, slide_s=slide_s))
    assert client.xpending(f"{name}:events", "g")["pending"] == 0


@EVERY_EXECUTOR
def test_restart_of_session_windows_matches_an_uninterrupted_run(server, executor):
    events = ysb_events(3000, rate=50)
    query = (
        "SELECT user_id, window_start, window_end, COUNT(*) AS n FROM events "
        "GROUP BY user_id, SESSION(event_time, INTERVAL '20' SECOND)"
    )
    produce(server, f"sess:events-{executor}", events)
    reference = (
        ysb_context(server, stream=f"sess:events-{executor}", group="ref", sink_stream="sess:unused", bounded="true")
        .sql(query)
        .collect()
    )

    produce(server, f"sess:events2-{executor}", events.head(1700))
    ctx = ysb_context(
        server,
        stream=f"sess:events2-{executor}",
        group="g",
        sink_stream=f"sess:out-{executor}",
        batch_size="200",
        executor=executor,
    )
    handle = ctx.sql(f"INSERT INTO out {query}")
    wait_for(lambda: rows_read(handle) >= 1700 or not handle.is_active, "the first part to be read")
    handle.stop(HANG_GUARD_S)
    produce(server, f"sess:events2-{executor}", events.tail(1300))
    ctx2 = ysb_context(
        server,
        stream=f"sess:events2-{executor}",
        group="g",
        sink_stream=f"sess:out-{executor}",
        batch_size="200",
        bounded="true",
        executor=executor,
    )
    assert ctx2.sql(f"INSERT INTO out {query}").await_termination(HANG_GUARD_S)

    out = pl.DataFrame(read_stream(server.url, f"sess:out-{executor}"))
    out = out.with_columns(
        pl.col("window_start", "window_end").str.to_datetime(time_unit="ms"), pl.col("n").cast(pl.Int64)
    )
    keys = ["user_id", "window_start", "window_end"]
    assert out.select(keys).is_unique().all()
    assert out.sort(keys).equals(reference.select(out.columns).sort(keys))


@EVERY_EXECUTOR
def test_stop_keeps_the_entries_of_open_windows_for_the_next_run(server, executor):
    """A live stream stopped with a window open: stop() acknowledges nothing that window still needs, so the
    next run reads it again and writes the window once. (Drizzle used to acknowledge everything when stop()
    cancelled a group: the cancelled workers' reports lost what their state still held.)"""
    for round in range(3):  # stop() lands at a different moment of a group each time
        name = f"open-{executor}-{round}"
        client = server.client()

        def add(key: str, second: int) -> None:
            client.xadd(f"{name}:ev", {"data": json.dumps({"k": key, "ts": second * 1000})})

        def context() -> sd.Context:
            ctx = sd.Context(executor=executor, workers=2, group_size=4, batch_interval="50ms")
            ctx.sql(f"""CREATE STREAM ev (k STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
                          WITH (connector = 'redis', url = '{server.url}', stream = '{name}:ev', group = 'g');
                        CREATE SINK out WITH (connector = 'redis', url = '{server.url}', stream = '{name}:out')""")
            return ctx

        query = (
            "INSERT INTO out SELECT k, window_start, COUNT(*) AS n FROM ev GROUP BY k, TUMBLE(ts, INTERVAL '5' SECOND)"
        )
        add("a", 1), add("a", 6), add("c", 13)
        handle = context().sql(query)
        wait_for(lambda: len(read_stream(server.url, f"{name}:out")) >= 2, "the two closed windows")
        handle.stop(HANG_GUARD_S)
        assert handle.exception is None
        assert client.xpending(f"{name}:ev", "g")["pending"] >= 1, "the open window's entry was acknowledged"
        handle = context().sql(query)
        add("c", 21)
        wait_for(lambda: len(read_stream(server.url, f"{name}:out")) >= 3, "the window [10s, 15s)")
        handle.stop(HANG_GUARD_S)
        rows = sorted((r["k"], r["window_start"][11:19], int(r["n"])) for r in read_stream(server.url, f"{name}:out"))
        assert rows == [("a", "00:00:00", 1), ("a", "00:00:05", 1), ("c", "00:00:10", 1)], rows


def test_a_failed_sink_write_acknowledges_nothing_and_the_next_run_reads_it_again(server):
    events = ysb_events(500, rate=100)
    produce(server, "fail:events", events)
    ctx = ysb_context(server, stream="fail:events", group="g", sink_stream="fail:out", batch_size="100")
    stream = ctx.sql("SELECT user_id, event_type FROM events")

    def broken(batch_id, frame):
        raise RuntimeError("disk full")

    handle = stream.start(sink=broken)
    with pytest.raises(ExecutionError, match="disk full"):
        handle.await_termination(HANG_GUARD_S)
    assert server.client().xpending("fail:events", "g")["pending"] == 100  # the one batch read, not acked

    seen: list[pl.DataFrame] = []
    handle = stream.start(sink=lambda batch_id, frame: seen.append(frame))
    wait_for(lambda: sum(f.height for f in seen) >= 500, "every event")
    handle.stop(HANG_GUARD_S)
    assert pl.concat(seen).sort("user_id").equals(events.select("user_id", "event_type").sort("user_id"))
    assert server.client().xpending("fail:events", "g")["pending"] == 0


def test_a_stateless_query_acknowledges_after_every_batch(server):
    produce(server, "ack:events", ysb_events(300, rate=100))
    ctx = ysb_context(server, stream="ack:events", group="g", sink_stream="ack:out", batch_size="100")
    pending: list[int] = []
    client = server.client()

    def sink(batch_id, frame):  # runs before the batch commits: its entries are still pending
        pending.append(client.xpending("ack:events", "g")["pending"])

    handle = ctx.sql("SELECT user_id FROM events").start(sink=sink)
    wait_for(lambda: len(pending) >= 3, "three batches")
    handle.stop(HANG_GUARD_S)
    assert pending[:3] == [100, 100, 100]
    assert client.xpending("ack:events", "g")["pending"] == 0


# ---------------------------------------------------------------- formats and options


def test_fields_format_source_and_sink(server):
    client = server.client()
    client.xadd("fields:in", {"id": "1", "name": "a", "score": "1.5", "ts": "2026-01-01T00:00:01", "extra": "x"})
    client.xadd("fields:in", {"id": "2", "name": "b", "ts": "1767225602000"})  # score missing: NULL
    client.xadd("fields:in", {"id": "three", "name": "c", "score": "2", "ts": "2026-01-01T00:00:03"})
    client.xadd("fields:in", {"id": "4", "name": b"\xff\xfe", "score": "2", "ts": "2026-01-01T00:00:04"})
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(f"""
        CREATE STREAM s (id BIGINT, name STRING, score DOUBLE, ts TIMESTAMP)
          WITH (connector = 'redis', url = '{server.url}', stream = 'fields:in', format = 'fields',
                bounded = 'true', dead_letter = 'none');
        CREATE SINK out WITH (connector = 'redis', url = '{server.url}', stream = 'fields:out', format = 'fields');
    """)
    handle = ctx.sql("INSERT INTO out SELECT id, name, score, ts FROM s")
    assert handle.await_termination(HANG_GUARD_S)
    reasons = sorted(d.reason for d in handle.dead_letters)
    assert len(reasons) == 2 and "cannot convert 'three' to BIGINT" in reasons[0] and "invalid UTF-8" in reasons[1]
    assert all(d.position.startswith("fields:in:") for d in handle.dead_letters)
    assert read_stream(server.url, "fields:out", field=None) == [
        {"id": "1", "name": "a", "score": "1.5", "ts": "2026-01-01T00:00:01.000"},
        {"id": "2", "name": "b", "ts": "2026-01-01T00:00:02.000"},
    ]


def test_sink_adds_each_batch_once_and_remembers_the_last_batch(server):
    sink = redis_streams.make_sink(
        SinkDef("out", (("connector", "redis"), ("stream", "idem:out"), ("url", server.url)))
    )
    frame = pl.DataFrame({"k": ["a", "b"], "n": [1, None]})
    assert sink.last_batch_id() is None
    sink.write(3, frame)
    sink.write(3, frame.head(1))  # a replay of batch 3: already in the stream
    sink.write(4, frame.head(1))
    assert read_stream(server.url, "idem:out") == [{"k": "a", "n": 1}, {"k": "b", "n": None}, {"k": "a", "n": 1}]
    assert sink.committed_batches() == [3, 4] and sink.last_batch_id() == 4
    sink.close()


def test_source_json_dead_letters_name_the_entry(server):
    client = server.client()
    good = client.xadd("dl:in", {"data": json.dumps({"id": 1})})
    bad = client.xadd("dl:in", {"data": "{not json"})
    missing = client.xadd("dl:in", {"payload": "x"})
    client.xadd("dl:in", {"data": ""})  # blank: skipped
    definition = SourceDef(
        "s",
        "stream",
        Schema.of(("id", T.BIGINT)),
        (("bounded", "true"), ("connector", "redis"), ("stream", "dl:in"), ("url", server.url)),
    )
    source = redis_streams.make_source(definition)
    source.open(None)
    batch = source.next_batch(100)
    assert batch.exhausted and batch.frame.get_column("id").to_list() == [1]
    positions = {d.position: d.reason for d in batch.dead_letters}
    assert set(positions) == {f"dl:in:{bad.decode()}", f"dl:in:{missing.decode()}"}
    assert positions[f"dl:in:{missing.decode()}"] == "entry has no 'data' field"
    assert batch.offset["id"] > good.decode()
    source.close()


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "needs a stream option"),
        ({"stream": "x", "format": "xml"}, "format must be one of json, fields"),
        ({"stream": "x", "strat": "0"}, "unknown option 'strat' \\(did you mean 'start'"),
        ({"stream": "x", "start": "yesterday"}, "start must be '0', '\\$' or an entry id"),
        ({"stream": "x", "retry_seconds": "-1"}, "retry_seconds must be a number of seconds >= 0"),
    ],
)
def test_bad_options_are_connector_errors(options, message):
    opts = tuple(sorted({"connector": "redis", **options}.items()))
    with pytest.raises(ConnectorError, match=message):
        redis_streams.make_source(SourceDef("s", "stream", Schema.of(("id", T.BIGINT)), opts))


# ---------------------------------------------------------------- outages


def _source_on(srv: RedisServer, stream: str, **options: str) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=1)
    extra = "".join(f", {k} = '{v}'" for k, v in options.items())
    ctx.sql(f"CREATE STREAM s (id BIGINT) WITH (connector = 'redis', url = '{srv.url}', stream = '{stream}'{extra})")
    return ctx


def test_a_server_that_stays_down_ends_the_query_with_one_clear_error(own_server, caplog):
    ctx = _source_on(own_server, "down", retry_seconds="1")
    seen: list[int] = []
    handle = ctx.sql("SELECT id FROM s").start(sink=lambda b, f: seen.extend(f.get_column("id").to_list()))
    own_server.client().xadd("down", {"data": '{"id": 1}'})
    wait_for(lambda: seen == [1], "the first record")
    with caplog.at_level(logging.WARNING, logger="stream_dsl.connectors.redis"):
        own_server.stop()
        with pytest.raises(ExecutionError) as info:
            handle.await_termination(HANG_GUARD_S)
    message = str(info.value)
    assert "source 's'" in message and own_server.url in message and "gave up after retrying for 1s" in message
    assert isinstance(info.value.__cause__, ConnectorError)
    assert any("retrying" in r.getMessage() for r in caplog.records)


def test_the_source_reconnects_when_the_server_comes_back(own_server):
    ctx = _source_on(own_server, "flaky", retry_seconds="60")
    seen: list[int] = []
    lock = threading.Lock()

    def sink(batch_id, frame):
        with lock:
            seen.extend(frame.get_column("id").to_list())

    handle = ctx.sql("SELECT id FROM s").start(sink=sink)
    own_server.client().xadd("flaky", {"data": '{"id": 1}'})
    wait_for(lambda: seen == [1], "the first record")
    own_server.stop()
    time.sleep(0.5)  # let the source notice the outage (not a limit: the test passes either way)
    own_server.start()  # empty: no persistence, the group is created again
    own_server.client().xadd("flaky", {"data": '{"id": 2}'})
    wait_for(lambda: 2 in seen or not handle.is_active, "the record after the outage")
    handle.stop(HANG_GUARD_S)
    assert handle.exception is None and seen == [1, 2]


def test_an_unreachable_server_at_open_is_a_connector_error():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        "CREATE STREAM s (id BIGINT) WITH (connector = 'redis', url = 'redis://127.0.0.1:1/0', "
        "stream = 'x', retry_seconds = '0', bounded = 'true')"
    )
    with pytest.raises(DSLError, match="source 's': Redis at redis://127.0.0.1:1/0 is unreachable"):
        ctx.sql("SELECT id FROM s").collect()


# ---------------------------------------------------------------- checkpoints and lost workers


@pytest.mark.parametrize("splits", [None, "workers"])
def test_killed_workers_over_a_live_stream_emit_every_window_exactly_once(server, tmp_path, splits):
    """A live stream: entries arrive while the query reads, so micro-batches are cut wherever reads land.

    A replay after a lost worker must cut its batches where the lost run cut
    them (the Redis sink skips batch ids it already has): every window once.
    """
    import os
    import random
    import signal

    name = f"live-kill-{splits}"
    split = f", splits = '{splits}'" if splits else ""
    events = ysb_events(9000, rate=100)  # 90 seconds of event time
    ctx = sd.Context(
        executor="drizzle", workers=2, group_size=4, batch_interval="50ms", checkpoint_dir=str(tmp_path / "ckpt")
    )
    ctx.sql(f"""
        CREATE STREAM events ({YSB_COLUMNS})
          WITH (connector = 'redis', url = '{server.url}', stream = '{name}:events', group = 'g',
                batch_size = '400'{split});
        CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
          WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '1');
        CREATE SINK out WITH (connector = 'redis', url = '{server.url}', stream = '{name}:out');
    """)
    handle = ctx.sql(f"INSERT INTO out {YSB_SELECT.format(window=SECOND)}")  # a window closes every 100 events
    rng = random.Random(3)
    try:
        chunks = [events.slice(i, 150) for i in range(0, events.height, 150)]
        for n, chunk in enumerate(chunks):
            produce(server, f"{name}:events", chunk)
            time.sleep(rng.random() * 0.03)
            if n in (12, 30, 45):
                # the previous kill's recovery done (its first batch recorded): a pid listed while the workers are
                # being replaced may have exited already, and a kill then is no third recovery
                kills = [12, 30, 45].index(n)
                wait_for(
                    lambda: (
                        (
                            len(handle.recoveries) == kills
                            and (kills == 0 or handle.recoveries[-1]["first_batch_at"] is not None)
                            and handle.worker_pids()
                        )
                        or not handle.is_active
                    ),
                    f"recovery {kills} and live workers",
                )
                os.kill(rng.choice(handle.worker_pids()), signal.SIGKILL)
        wait_for(
            lambda: rows_read(handle) >= events.height and len(handle.recoveries) == 3 or not handle.is_active,
            "every event to be read after the recoveries",
        )
    finally:
        handle.stop(HANG_GUARD_S)
    assert handle.exception is None
    assert len(handle.recoveries) == 3
    out = results(server, f"{name}:out")
    assert out.select(KEYS).is_unique().all(), "a window was emitted twice"
    expected = polars_ysb(events, size_s=1)
    closed = expected.filter(pl.col("window_end") <= out.get_column("window_end").max())
    assert out.sort(KEYS).equals(closed), "windows lost or counted wrong"
    assert closed.height >= expected.height - 200  # all but the last windows closed


@EVERY_EXECUTOR
def test_progress_shows_the_groups_pending_entries_and_the_streams_length(server, executor):
    produce(server, f"backlog-{executor}:events", ysb_events(300, rate=100))
    ctx = ysb_context(
        server,
        stream=f"backlog-{executor}:events",
        group="g",
        sink_stream="unused",
        batch_size="100",
        bounded="true",
        executor=executor,
    )
    handle = ctx.sql("SELECT user_id FROM events").start(sink=lambda batch_id, frame: None)
    assert handle.await_termination(HANG_GUARD_S)
    backlogs = [p["backlog"]["events"] for p in handle.progress()]
    assert backlogs and all(b["stream_length"] == 300 for b in backlogs), backlogs
    assert backlogs[0]["pending"] >= 100  # the first batch's entries: delivered, not acknowledged yet


def test_struct_columns_round_trip_as_json_objects(server):
    """A STRUCT column is a nested JSON object in the entry, and reads back as the same STRUCT (struct helper)."""
    client = server.client()
    client.xadd("struct:in", {"data": json.dumps({"id": 1, "s": {"a": 1, "b": "é", "extra": 0}})})
    client.xadd("struct:in", {"data": json.dumps({"id": 2, "s": None})})
    client.xadd("struct:in", {"data": json.dumps({"id": 3, "s": {"a": "x"}})})
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(f"""
        CREATE STREAM s (id BIGINT, s STRUCT(a BIGINT, b STRING))
          WITH (connector = 'redis', url = '{server.url}', stream = 'struct:in', bounded = 'true',
                dead_letter = 'none');
        CREATE SINK out WITH (connector = 'redis', url = '{server.url}', stream = 'struct:out');
    """)
    handle = ctx.sql("INSERT INTO out SELECT id, s, named_struct('n', s.a) AS t FROM s")
    assert handle.await_termination(HANG_GUARD_S)
    assert [d.reason for d in handle.dead_letters] == ["column 's': field 'a': expected BIGINT, got string \"x\""]
    assert read_stream(server.url, "struct:out") == [
        {"id": 1, "s": {"a": 1, "b": "é"}, "t": {"n": 1}},
        {"id": 2, "s": None, "t": {"n": None}},
    ]
