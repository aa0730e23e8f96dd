"""The Kafka sink takes a changelog as upsert-kafka does: key = the row's key, value = the row, tombstone on delete.

Against the real tansu broker (tests/kafka_broker.py): a HAVING aggregate whose groups later fail it, and
SESSION windows with EMIT CHANGES whose sessions merge, written to a 3-partition topic; the topic folded per
message key (newest value, tombstones delete) equals collect()'s final table.
"""

from __future__ import annotations

import json

import polars as pl
import pytest

import stream_dsl as sd
from kafka_broker import start_broker, stop_broker
from stream_dsl.connectors.kafka.common import read_all
from stream_dsl.connectors.kafka.sink import read_table
from test_upsert_sinks import HANG_GUARD_S, MERGES, SESSIONS, events

HAVING = "SELECT k, COUNT(*) AS n, MAX(i) AS hi FROM s GROUP BY k HAVING MAX(i) < 4"


@pytest.fixture(scope="module")
def broker():
    srv = start_broker()
    yield srv
    stop_broker(srv)


def context(batches: list[pl.DataFrame], executor: str) -> sd.Context:
    ctx = sd.Context(executor=executor, workers=2)
    ctx.from_polars(batches, name="s", watermark="ts", watermark_delay="60s")
    return ctx


def run(broker, batches: list[pl.DataFrame], sql: str, executor: str, topic: str) -> list[dict]:
    broker.create_topic(topic, 3)
    ctx = context(batches, executor)
    ctx.sql(f"CREATE SINK out WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', topic = '{topic}')")
    assert ctx.sql(f"INSERT INTO out {sql}").await_termination(HANG_GUARD_S)
    return read_table(broker.bootstrap, topic)


def as_json_rows(frame: pl.DataFrame) -> list[str]:
    text = frame.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%.3f"))
    return sorted(json.dumps(row, sort_keys=True) for row in text.to_dicts())


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_merged_sessions_are_tombstoned(broker, executor):
    batches = MERGES["keys"]
    table = run(broker, batches, SESSIONS, executor, f"sessions-{executor}")
    expected = context(batches, "inline").sql(SESSIONS).collect()
    assert sorted(json.dumps(row, sort_keys=True) for row in table) == as_json_rows(expected)
    messages = read_all(broker.bootstrap, f"sessions-{executor}")
    assert any(m.value() is None for m in messages)  # the merged-away sessions' tombstones
    keys = {json.loads(m.key())["k"] for m in messages}
    assert keys == {"a", "b"}  # the message key is the row's key, as JSON


def test_groups_having_filters_out_are_tombstoned(broker):
    batches = events("a@1 b@2", "a@3 b@9", "c@2 a@7")  # b fails HAVING in batch 2, a in batch 3
    table = run(broker, batches, HAVING, "inline", "having")
    expected = context(batches, "inline").sql(HAVING).collect()
    assert sorted(json.dumps(row, sort_keys=True) for row in table) == as_json_rows(expected)
    assert expected.get_column("k").to_list() == ["c"]
