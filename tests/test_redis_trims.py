"""Redis entries trimmed before a replay (issue 16, item 11) are counted and reported, not silently gone.

A real redis-server on loopback (tests/redis_server.py). A first run reads
entries and stops before acknowledging them; the stream is then trimmed
(XTRIM, or XDEL); the next run replays what is still pending.
"""

from __future__ import annotations

import json
import logging

import pytest

from stream_dsl.connectors.redis_streams import RedisSource
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema
from redis_server import start_server, stop_server


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    yield srv
    stop_server(srv)


def _source(srv, stream: str, fmt: str) -> RedisSource:
    definition = SourceDef(
        "ev",
        "stream",
        Schema.of(("k", T.STRING), ("n", T.BIGINT)),
        (
            ("batch_size", "100"),
            ("bounded", "true"),
            ("connector", "redis"),
            ("format", fmt),
            ("stream", stream),
            ("url", srv.url),
        ),
    )
    source = RedisSource(definition)
    source.open(None)
    return source


@pytest.mark.parametrize("fmt", ["json", "fields"])
@pytest.mark.parametrize("trim", ["xtrim", "xdel"])
def test_pending_entries_trimmed_before_a_replay_are_dead_letters_and_counted(server, fmt, trim, caplog):
    client = server.client()
    stream = f"trim-{fmt}-{trim}"
    entries = [
        {"data": json.dumps({"k": f"k{i}", "n": i})} if fmt == "json" else {"k": f"k{i}", "n": str(i)}
        for i in range(10)
    ]
    ids = [client.xadd(stream, e).decode() for e in entries]
    first = _source(server, stream, fmt)
    assert first.next_batch(100).frame.height == 10  # delivered, never acknowledged: the run stops here
    first.close()
    if trim == "xtrim":
        client.xtrim(stream, maxlen=4, approximate=False)  # entries 0-5 are gone
        lost = ids[:6]
    else:
        client.xdel(stream, ids[2], ids[7])
        lost = [ids[2], ids[7]]
    second = _source(server, stream, fmt)
    with caplog.at_level(logging.WARNING, logger="stream_dsl.connectors.redis"):
        batch = second.next_batch(100)
    assert batch.replayed
    assert sorted(batch.frame.get_column("n").to_list()) == [i for i in range(10) if ids[i] not in lost]
    assert [d.position for d in batch.dead_letters] == [f"{stream}:{i}" for i in lost]
    assert all("trimmed" in d.reason for d in batch.dead_letters)
    assert second.trimmed == len(lost)
    assert any(f"{len(lost)} pending entries" in r.getMessage() for r in caplog.records)
    second.close()
