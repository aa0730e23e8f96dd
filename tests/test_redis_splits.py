"""A Redis stream read in parts (`splits`, issue 18): part i of n is member '<consumer>-<i>' of the consumer group.

Against a real redis-server on loopback (tests/redis_server.py). Each entry
goes to exactly one member; a split stream gives the unsplit result on every
executor; restarts and stop() stay exactly once per member; a member count
that changed between runs loses no entry (the gone members' pending entries
are claimed); an idle member does not hold the watermark back.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import stream_dsl as sd
from stream_dsl.connectors.generator import ysb_events
from stream_dsl.connectors.redis_members import pending_by_consumer
from stream_dsl.connectors.redis_sink import read_stream
from stream_dsl.connectors.redis_streams import RedisSource
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.definitions import Watermark
from stream_dsl.ir.types import Schema
from redis_server import start_server, stop_server
from test_redis import (
    HANG_GUARD_S,
    KEYS,
    TUMBLE,
    YSB_SELECT,
    polars_ysb,
    produce,
    results,
    rows_read,
    wait_for,
    ysb_context,
)

EVERY_EXECUTOR = pytest.mark.parametrize("executor", ["inline", "bsp", "drizzle"])


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    yield srv
    stop_server(srv)


def member(srv, stream: str, index: int, count: int, **options: str) -> RedisSource:
    """Part `index` of `count` of a stream of records {id, ts}, with a watermark on ts."""
    opts = {"connector": "redis", "url": srv.url, "stream": stream, "group": "g", "splits": str(count), **options}
    definition = SourceDef(
        "s",
        "stream",
        Schema.of(("id", T.BIGINT), ("ts", T.TIMESTAMP)),
        tuple(sorted(opts.items())),
        watermark=Watermark("ts", 1000),
    )
    return RedisSource(replace(definition, split=(index, count)))


def add_records(srv, stream: str, ids: range) -> None:
    client = srv.client()
    pipe = client.pipeline(transaction=False)
    for i in ids:
        pipe.xadd(stream, {"data": json.dumps({"id": i, "ts": i * 10})})
    pipe.execute()


def ids_of(batch) -> list[int]:
    return batch.frame.get_column("id").to_list()


# ---------------------------------------------------------------- members


def test_each_entry_is_read_by_exactly_one_member(server):
    add_records(server, "one:ev", range(1000))
    parts = [member(server, "one:ev", i, 3, bounded="true", batch_size="70") for i in range(3)]
    for part in parts:
        part.open(None)
    read: list[list[int]] = [[], [], []]
    done = [False] * 3
    while not all(done):
        for i, part in enumerate(parts):
            if not done[i]:
                batch = part.next_batch(100)
                read[i] += ids_of(batch)
                done[i] = batch.exhausted
    assert all(read), "each member read some entries"
    assert sorted(sum(read, [])) == list(range(1000)), "every entry once, by one member"
    pending = pending_by_consumer(server.client(), "one:ev", "g")
    assert pending == {"stream-dsl-0": len(read[0]), "stream-dsl-1": len(read[1]), "stream-dsl-2": len(read[2])}


def test_an_idle_member_reports_the_event_time_the_group_was_delivered(server):
    add_records(server, "idle:ev", range(50))
    busy, idle = member(server, "idle:ev", 0, 2), member(server, "idle:ev", 1, 2)
    busy.open(None), idle.open(None)
    first = busy.next_batch(100)
    assert ids_of(first) == list(range(50)) and first.max_event_time_ms == 490
    quiet = idle.next_batch(100)
    assert quiet.frame.height == 0
    assert quiet.max_event_time_ms == 490, "an idle member holding the watermark at None would stall every window"
    # a replay of the idle batch (a recovery from a checkpoint) reports the same event time and reads nothing
    add_records(server, "idle:ev", range(50, 60))  # the replay must not read these: the lost batch did not
    replaying = member(server, "idle:ev", 1, 2)
    replaying.open(None)
    again = replaying.next_batch(100, until=quiet.offset)
    assert again.frame.height == 0 and again.max_event_time_ms == 490
    # an unsplit stream keeps its own clock: nothing read, no event time
    whole = RedisSource(
        replace(
            busy.definition,
            split=None,
            options=(("connector", "redis"), ("group", "w"), ("stream", "idle:ev"), ("url", server.url)),
        )
    )
    whole.open(None)
    assert whole.next_batch(100).frame.height == 60 and whole.next_batch(100).max_event_time_ms is None
    for source in (busy, idle, replaying, whole):
        source.close()


def test_entries_of_members_a_run_no_longer_has_are_claimed_and_read_first(server):
    add_records(server, "claim:ev", range(300))
    old = [member(server, "claim:ev", i, 3, batch_size="100") for i in range(3)]
    for part in old:
        part.open(None)
        assert len(ids_of(part.next_batch(100))) == 100  # read, never acknowledged: pending for each member
    add_records(server, "claim:ev", range(300, 400))
    new = [member(server, "claim:ev", i, 2, batch_size="1000", bounded="true") for i in range(2)]
    for part in new:
        part.open(None)
    assert sum(p.claimed for p in new) == 100  # the entries of stream-dsl-2
    pending = pending_by_consumer(server.client(), "claim:ev", "g")
    assert pending.get("stream-dsl-2", 0) == 0 and sum(pending.values()) == 300
    replayed, fresh = [], []
    for part in new:
        while True:
            batch = part.next_batch(100)
            (replayed if batch.replayed else fresh).extend(ids_of(batch))
            if batch.exhausted:
                break
    assert sorted(replayed) == list(range(300)), "every pending entry, the claimed ones too, is read first"
    assert sorted(fresh) == list(range(300, 400))


def test_a_checkpoint_resume_refuses_entries_pending_for_a_member_it_does_not_have(server):
    add_records(server, "refuse:ev", range(10))
    stranger = member(server, "refuse:ev", 4, 5)  # a member of a run in five parts
    stranger.open(None)
    assert len(ids_of(stranger.next_batch(100))) == 10
    errors = []
    for i in range(2):
        part = member(server, "refuse:ev", i, 2)
        try:
            part.open(None, {"id": None, "event_ms": None})
        except ConnectorError as e:
            errors.append(str(e))
    assert len(errors) == 1 and "consumer 'stream-dsl-4'" in errors[0] and "10 pending entries" in errors[0]
    assert "checkpoint_reset" in errors[0]


# ---------------------------------------------------------------- queries


@pytest.mark.parametrize(
    ("executor", "splits"), [("inline", "2"), ("inline", "workers"), ("drizzle", "workers"), ("bsp", "2")]
)
def test_a_split_stream_gives_the_unsplit_result(server, executor, splits):
    name = f"split-{executor}-{splits}"
    events = ysb_events(3000, rate=100)
    produce(server, f"{name}:events", events)
    ctx = ysb_context(
        server,
        stream=f"{name}:events",
        group="g",
        sink_stream="unused",
        bounded="true",
        batch_size="200",
        splits=splits,
        executor=executor,
    )
    assert ctx.sql(YSB_SELECT.format(window=TUMBLE)).collect().sort(KEYS).equals(polars_ysb(events))
    pending = pending_by_consumer(server.client(), f"{name}:events", "g")
    assert set(pending) == {"stream-dsl-0", "stream-dsl-1"} and sum(pending.values()) == 3000


@EVERY_EXECUTOR
def test_a_restart_with_a_changed_member_count_emits_every_window_exactly_once(server, executor):
    """Two members read and stop with windows open; three go on (each re-reads its own pending entries first),
    then two (the third one's pending entries are claimed), then the stream is read whole: every window once,
    every entry acknowledged."""
    name = f"resplit-{executor}"
    events = ysb_events(6000, rate=100)
    chunks = [events.slice(0, 2000), events.slice(2000, 1500), events.slice(3500, 1500), events.slice(5000, 1000)]
    query = f"INSERT INTO out {YSB_SELECT.format(window=TUMBLE)}"
    client = server.client()
    for n, (chunk, splits) in enumerate(zip(chunks, ["2", "3", "2", None])):
        read = client.xpending(f"{name}:events", "g")["pending"] + chunk.height if n else chunk.height
        produce(server, f"{name}:events", chunk)
        options = {"batch_size": "300"} | ({"splits": splits} if splits else {"bounded": "true"})
        ctx = ysb_context(
            server, stream=f"{name}:events", group="g", sink_stream=f"{name}:out", executor=executor, **options
        )
        handle = ctx.sql(query)
        if splits:
            wait_for(lambda: rows_read(handle) >= read or not handle.is_active, "the pending and the new entries")
            handle.stop(HANG_GUARD_S)
        else:
            assert handle.await_termination(HANG_GUARD_S)
        assert handle.exception is None
        if n == 1:
            assert pending_by_consumer(client, f"{name}:events", "g").get("stream-dsl-2", 0) > 0
    out = results(server, f"{name}:out")
    assert out.select(KEYS).is_unique().all(), "a window was emitted twice"
    assert out.sort(KEYS).equals(polars_ysb(events))
    assert client.xpending(f"{name}:events", "g")["pending"] == 0


@EVERY_EXECUTOR
def test_stop_keeps_each_members_open_windows_for_the_next_run(server, executor):
    """A live stream in two parts, stopped with a window open, then run again: each member re-reads its own
    pending entries; the windows close though a member may get no entry at all (it takes the group's time)."""
    name = f"split-open-{executor}"
    client = server.client()

    def add(key: str, second: int) -> None:
        client.xadd(f"{name}:ev", {"data": json.dumps({"k": key, "ts": second * 1000})})

    def start() -> sd.QueryHandle:
        ctx = sd.Context(executor=executor, workers=2, group_size=4, batch_interval="50ms")
        ctx.sql(f"""CREATE STREAM ev (k STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND)
                      WITH (connector = 'redis', url = '{server.url}', stream = '{name}:ev', group = 'g',
                            splits = 'workers');
                    CREATE SINK out WITH (connector = 'redis', url = '{server.url}', stream = '{name}:out')""")
        return ctx.sql(
            "INSERT INTO out SELECT k, window_start, COUNT(*) AS n FROM ev GROUP BY k, TUMBLE(ts, INTERVAL '5' SECOND)"
        )

    add("a", 1), add("a", 6), add("c", 13)
    handle = start()
    wait_for(lambda: len(read_stream(server.url, f"{name}:out")) >= 2, "the two closed windows")
    handle.stop(HANG_GUARD_S)
    assert handle.exception is None
    assert client.xpending(f"{name}:ev", "g")["pending"] >= 1, "the open window's entry was acknowledged"
    handle = start()
    add("c", 21)
    wait_for(lambda: len(read_stream(server.url, f"{name}:out")) >= 3, "the window [10s, 15s)")
    handle.stop(HANG_GUARD_S)
    rows = sorted((r["k"], r["window_start"][11:19], int(r["n"])) for r in read_stream(server.url, f"{name}:out"))
    assert rows == [("a", "00:00:00", 1), ("a", "00:00:05", 1), ("c", "00:00:10", 1)], rows


def test_progress_a_source_before_splits_saved_still_restores(server):
    """The progress hash of an older run (one member, fields `id` and `event_ms`) still gives the restart's
    watermark, so an upgrade does not emit the previous run's windows again."""
    add_records(server, "legacy:ev", range(5))
    client = server.client()
    client.xgroup_create("legacy:ev", "g", id="0")
    client.hset("legacy:ev:g:progress", mapping={"id": "0-0", "event_ms": "12345"})
    source = member(server, "legacy:ev", 0, 1)
    source.open(None)
    assert source.restored_max_event_ms == 12345
    source.close()


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_the_parts_backlogs_add_up_to_the_groups(server, executor):
    produce(server, f"backlog-split-{executor}:events", ysb_events(300, rate=100))
    ctx = ysb_context(
        server,
        stream=f"backlog-split-{executor}:events",
        group="g",
        sink_stream="unused",
        batch_size="50",
        bounded="true",
        splits="2",
        executor=executor,
    )
    handle = ctx.sql("SELECT user_id FROM events").start(sink=lambda batch_id, frame: None)
    assert handle.await_termination(HANG_GUARD_S)
    backlogs = [p["backlog"]["events"] for p in handle.progress()]
    assert backlogs and all(b["stream_length"] == 300 for b in backlogs), backlogs
    assert backlogs[0]["pending"] >= 50 and all(b["pending"] <= 300 for b in backlogs)
