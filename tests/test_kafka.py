"""The kafka connector against a real Kafka-protocol broker (tansu) on a loopback port (no mock).

The broker comes from `tests/kafka_broker.py`: started once for the module
(each test uses its own topics), or per test where a test stops it.
Timeouts below only keep a broken run from hanging; no test measures time.
"""

from __future__ import annotations

import json
from datetime import datetime
import logging
import os
import signal
import threading
import time

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.connectors.generator import events_as_json, ysb_campaigns, ysb_events
from stream_dsl.connectors.kafka import KafkaSource, make_sink, read_topic
from stream_dsl.errors import ConnectorError, DSLError, ExecutionError
from stream_dsl.ir.definitions import SinkDef, SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema
from kafka_broker import KafkaBroker, start_broker, stop_broker

pytestmark = pytest.mark.kafka

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
KEYS = ["campaign_id", "window_start", "window_end"]
EVERY_EXECUTOR = pytest.mark.parametrize("executor", ["inline", "bsp", "drizzle"])


@pytest.fixture(scope="module")
def broker():
    srv = start_broker()
    yield srv
    stop_broker(srv)


@pytest.fixture
def own_broker():
    """A broker this test may pause or stop."""
    srv = start_broker()
    yield srv
    stop_broker(srv)


# ---------------------------------------------------------------- helpers


def produce(broker: KafkaBroker, topic: str, events: pl.DataFrame) -> None:
    broker.produce(topic, events_as_json(events).splitlines())


def ysb_context(
    broker: KafkaBroker,
    *,
    topic: str,
    sink_topic: str,
    executor: str = "inline",
    checkpoint_dir: str | None = None,
    **options: str,
) -> sd.Context:
    ctx = sd.Context(executor=executor, workers=2, group_size=4, checkpoint_dir=checkpoint_dir)
    extra = "".join(f", {k} = '{v}'" for k, v in options.items())
    ctx.sql(f"""
        CREATE STREAM events ({YSB_COLUMNS})
          WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', topic = '{topic}'{extra});
        CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
          WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '1');
        CREATE SINK out WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', topic = '{sink_topic}',
                              key = 'campaign_id');
    """)
    return ctx


def polars_ysb(events: pl.DataFrame, *, size_s: int = 10) -> pl.DataFrame:
    views = events.filter(pl.col("event_type") == "view").join(ysb_campaigns(1), on="ad_id")
    windows = views.with_columns(window_start=pl.col("event_time").dt.truncate(f"{size_s}s")).with_columns(
        window_end=pl.col("window_start") + pl.duration(seconds=size_s)
    )
    return windows.group_by(KEYS).agg(pl.len().cast(pl.Int64).alias("views")).sort(KEYS)


def results(broker: KafkaBroker, topic: str) -> pl.DataFrame:
    rows = read_topic(broker.bootstrap, topic)
    if not rows:
        return pl.DataFrame(
            schema={
                "campaign_id": pl.String,
                "window_start": pl.Datetime("ms"),
                "window_end": pl.Datetime("ms"),
                "views": pl.Int64,
            }
        )
    return (
        pl.DataFrame(rows)
        .with_columns(
            pl.col("window_start", "window_end").str.to_datetime(time_unit="ms"), pl.col("views").cast(pl.Int64)
        )
        .select(KEYS + ["views"])
    )


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def rows_read(handle) -> int:
    return sum(p["rows_in"] for p in handle.progress())


def committed(broker: KafkaBroker, topic: str, group: str) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in broker.partitions(topic)], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


# ---------------------------------------------------------------- end to end


@EVERY_EXECUTOR
def test_windowed_count_over_partitions_equals_polars(broker, executor):
    topic, out = f"e2e-{executor}", f"e2e-{executor}-out"
    broker.create_topic(topic, 3)
    broker.create_topic(out, 2)
    events = ysb_events(4000, rate=100)  # 40 seconds of event time
    produce(broker, topic, events)
    ctx = ysb_context(
        broker, topic=topic, sink_topic=out, executor=executor, bounded="true", batch_size="250", group="g"
    )
    handle = ctx.sql(f"INSERT INTO out {YSB_SELECT.format(window=TUMBLE)}")
    assert handle.await_termination(HANG_GUARD_S)
    got = results(broker, out)
    assert got.select(KEYS).is_unique().all()
    assert got.sort(KEYS).equals(polars_ysb(events))
    progress = handle.progress()
    assert len(progress) >= 15  # many micro-batches
    # the consumer lag: what is left to read after each batch, down to nothing
    lags = [p["backlog"]["events"]["lag"] for p in progress if "events" in p["backlog"]]
    assert lags and lags[-1] == 0 and max(lags) > 0  # (not monotonic: a partition counts once it was fetched)
    # every message committed to the group once written: no lag left
    ends = {p: sum(1 for i in range(events.height) if i % 3 == p) for p in range(3)}
    assert committed(broker, topic, "g") == ends


def test_collect_reads_metadata_columns_and_commits_nothing(broker):
    broker.create_topic("meta", 2)
    broker.produce(
        "meta",
        [json.dumps({"v": i}) for i in range(10)],
        keys=[f"k{i}" for i in range(10)],
        timestamps=[1_700_000_000_000 + 1000 * i for i in range(10)],
    )
    ctx = sd.Context(executor="inline")
    ctx.sql(f"""CREATE STREAM s (v BIGINT, kafka_partition BIGINT, kafka_offset BIGINT, kafka_key STRING,
                                 kafka_timestamp TIMESTAMP,
                                 WATERMARK FOR kafka_timestamp AS kafka_timestamp - INTERVAL '1' SECOND)
                WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', topic = 'meta',
                      bounded = 'true', group = 'm')""")
    got = ctx.sql("SELECT v, kafka_partition, kafka_offset, kafka_key, kafka_timestamp FROM s").collect().sort("v")
    expected = pl.DataFrame(
        {
            "v": list(range(10)),
            "kafka_partition": [i % 2 for i in range(10)],
            "kafka_offset": [i // 2 for i in range(10)],
            "kafka_key": [f"k{i}" for i in range(10)],
            "kafka_timestamp": pl.Series([1_700_000_000_000 + 1000 * i for i in range(10)]).cast(pl.Datetime("ms")),
        }
    )
    assert got.equals(expected)
    windows = ctx.sql(
        "SELECT window_start, COUNT(*) AS n FROM s GROUP BY TUMBLE(kafka_timestamp, INTERVAL '5' SECOND)"
    ).collect()
    assert sorted(windows.get_column("n").to_list()) == [5, 5]
    assert all(o < 0 for o in committed(broker, "meta", "m").values())  # collect() keeps nothing durable


def test_malformed_messages_are_dead_letters_naming_partition_and_offset(broker):
    broker.create_topic("bad", 1)
    broker.produce("bad", ['{"id": 1}', "{not json", '{"id": "x"}', "", '{"id": 4}'])
    definition = SourceDef(
        "s",
        "stream",
        Schema.of(("id", T.BIGINT)),
        (("bootstrap_servers", broker.bootstrap), ("bounded", "true"), ("connector", "kafka"), ("topic", "bad")),
    )
    source = KafkaSource(definition)
    source.open(None)
    frames, letters = [], []
    while True:
        batch = source.next_batch(100)
        frames.append(batch.frame)
        letters += batch.dead_letters
        if batch.exhausted:
            break
    source.close()
    assert pl.concat(frames).get_column("id").to_list() == [1, 4]
    assert sorted(d.position for d in letters) == ["bad:0:1", "bad:0:2"]
    assert "x" in next(d.raw for d in letters if d.position == "bad:0:2")


def test_csv_format(broker):
    broker.create_topic("csv", 1)
    broker.produce("csv", ["1,a,2026-01-01T00:00:01", "2,b,1767225602000", "three,c,2026-01-01T00:00:03"])
    ctx = sd.Context(executor="inline")
    ctx.sql(f"""CREATE STREAM s (id BIGINT, name STRING, ts TIMESTAMP)
                WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', topic = 'csv',
                      format = 'csv', bounded = 'true', dead_letter = 'none')""")
    got = ctx.sql("SELECT id, name, ts FROM s").collect()
    assert got.rows() == [(1, "a", datetime(2026, 1, 1, 0, 0, 1)), (2, "b", datetime(2026, 1, 1, 0, 0, 2))]


def test_a_topic_that_does_not_exist_is_a_clear_error_at_start(broker):
    ctx = sd.Context(executor="inline")
    ctx.sql(
        f"CREATE STREAM s (id BIGINT) WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', "
        "topic = 'nowhere', bounded = 'true', retry_seconds = '5')"
    )
    with pytest.raises(DSLError, match="topic 'nowhere' does not exist on Kafka at 127.0.0.1"):
        ctx.sql("SELECT id FROM s").collect()


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "needs a topic option"),
        ({"topic": "x", "format": "xml"}, "format must be one of json, csv"),
        ({"topic": "x", "strat": "earliest"}, "unknown option 'strat' \\(did you mean 'start'"),
        ({"topic": "x", "start": "yesterday"}, "start must be 'earliest', 'latest' or a timestamp"),
        ({"topic": "x", "partitions": "a,b"}, "partitions must list partition numbers"),
        ({"topic": "x", "retry_seconds": "-1"}, "retry_seconds must be a number of seconds >= 0"),
    ],
)
def test_bad_options_are_connector_errors(options, message):
    opts = tuple(sorted({"connector": "kafka", **options}.items()))
    with pytest.raises(ConnectorError, match=message):
        KafkaSource(SourceDef("s", "stream", Schema.of(("id", T.BIGINT)), opts))


def test_sink_writes_each_batch_once_and_remembers_the_last_batch(broker):
    broker.create_topic("idem", 2)
    definition = SinkDef(
        "out", (("bootstrap_servers", broker.bootstrap), ("connector", "kafka"), ("key", "k"), ("topic", "idem"))
    )
    sink = make_sink(definition)
    frame = pl.DataFrame({"k": ["a", "b"], "n": [1, None]})
    assert sink.last_batch_id() is None
    sink.write(3, frame)
    sink.write(3, frame.head(1))  # a replay of batch 3: already written
    sink.write(4, frame.head(1))
    sink.write(5, frame.head(0))  # nothing to write: no marker either
    sink.close()
    again = make_sink(definition)  # a new writer (a restarted query) knows what is committed
    again.write(4, frame)
    assert again.committed_batches() == [3, 4] and again.last_batch_id() == 4
    got = sorted(read_topic(broker.bootstrap, "idem"), key=lambda r: (r["k"], r["n"] or 0))
    assert got == [{"k": "a", "n": 1}, {"k": "a", "n": 1}, {"k": "b", "n": None}]


def test_rows_of_an_attempt_without_a_marker_are_invisible_to_read_topic(broker):
    """A writer that died after its rows and before its marker: the replay's rows count, not the dead ones."""
    broker.create_topic("torn", 1)
    broker.produce("torn", [json.dumps({"n": 1})])  # written by someone else: kept
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(
        "torn", value=json.dumps({"n": 99}), headers=[("sd-query", b"out"), ("sd-batch", b"0"), ("sd-attempt", b"dead")]
    )
    producer.flush(30)
    sink = make_sink(
        SinkDef("out", (("bootstrap_servers", broker.bootstrap), ("connector", "kafka"), ("topic", "torn")))
    )
    sink.write(0, pl.DataFrame({"n": [2]}))
    assert sorted(r["n"] for r in read_topic(broker.bootstrap, "torn")) == [1, 2]


def test_a_replay_reads_exactly_the_logged_ranges_of_every_partition(broker):
    """A source reopened at a checkpoint's offset and given each later batch's logged ends cuts the same
    batches, though one fetch brings far more than a batch (the first message past the end is read again)."""
    broker.create_topic("replay", 3)
    events = ysb_events(3000, rate=100)
    produce(broker, "replay", events)
    definition = SourceDef(
        "s",
        "stream",
        Schema.of(("event_time", T.TIMESTAMP), ("user_id", T.STRING)),
        (
            ("batch_size", "250"),
            ("bootstrap_servers", broker.bootstrap),
            ("bounded", "true"),
            ("connector", "kafka"),
            ("topic", "replay"),
        ),
    )
    first = KafkaSource(definition)
    first.open(None)
    batches = []
    while not (batches and batches[-1].exhausted):
        batches.append(first.next_batch(100))
    first.close()
    assert len(batches) >= 12
    again = KafkaSource(definition)
    again.open(None, batches[2].offset)
    for batch in batches[3:]:
        replayed = again.next_batch(100, until=batch.replay)
        assert replayed.frame.equals(batch.frame) and replayed.replay == batch.replay
        assert replayed.exhausted == batch.exhausted
    again.close()


# ---------------------------------------------------------------- outages


def _live(broker: KafkaBroker, topic: str, **options: str) -> sd.Context:
    ctx = sd.Context(executor="inline", batch_interval="50ms")
    extra = "".join(f", {k} = '{v}'" for k, v in options.items())
    ctx.sql(
        f"CREATE STREAM s (id BIGINT) WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', "
        f"topic = '{topic}'{extra})"
    )
    return ctx


def test_a_broker_that_stays_down_ends_the_query_with_one_clear_error(own_broker, caplog):
    own_broker.create_topic("down", 1)
    seen: list[int] = []
    handle = (
        _live(own_broker, "down", retry_seconds="1")
        .sql("SELECT id FROM s")
        .start(sink=lambda b, f: seen.extend(f.get_column("id").to_list()))
    )
    own_broker.produce("down", ['{"id": 1}'])
    wait_for(lambda: seen == [1] or not handle.is_active, "the first record")
    with caplog.at_level(logging.WARNING, logger="stream_dsl.connectors.kafka"):
        own_broker.stop()
        with pytest.raises(ExecutionError) as info:
            handle.await_termination(HANG_GUARD_S)
    message = str(info.value)
    assert "source 's'" in message and own_broker.bootstrap in message and "gave up after retrying for 1s" in message
    assert isinstance(info.value.__cause__, ConnectorError)
    assert any("unreachable" in r.getMessage() for r in caplog.records)


def test_the_query_waits_while_the_broker_does_not_answer_and_goes_on(own_broker):
    """The broker process paused (SIGSTOP) for a few seconds: no error, and the records after it arrive."""
    own_broker.create_topic("paused", 2)
    seen: list[int] = []
    lock = threading.Lock()

    def sink(batch_id, frame):
        with lock:
            seen.extend(frame.get_column("id").to_list())

    handle = _live(own_broker, "paused", retry_seconds="60").sql("SELECT id FROM s").start(sink=sink)
    own_broker.produce("paused", ['{"id": 1}', '{"id": 2}'])
    wait_for(lambda: len(seen) == 2 or not handle.is_active, "the first records")
    os.kill(own_broker.process.pid, signal.SIGSTOP)
    try:
        time.sleep(3)  # the outage (not a limit: the test passes however long the query takes to notice)
    finally:
        os.kill(own_broker.process.pid, signal.SIGCONT)
    own_broker.produce("paused", ['{"id": 3}', '{"id": 4}'])
    wait_for(lambda: len(seen) == 4 or not handle.is_active, "the records after the outage")
    handle.stop(HANG_GUARD_S)
    assert handle.exception is None and sorted(seen) == [1, 2, 3, 4]


def test_an_unreachable_broker_at_open_is_a_connector_error():
    ctx = sd.Context(executor="inline")
    ctx.sql(
        "CREATE STREAM s (id BIGINT) WITH (connector = 'kafka', bootstrap_servers = '127.0.0.1:1', "
        "topic = 'x', retry_seconds = '1', bounded = 'true')"
    )
    with pytest.raises(DSLError, match="source 's': Kafka at 127.0.0.1:1 is unreachable"):
        ctx.sql("SELECT id FROM s").collect()


# ---------------------------------------------------------------- restart without a checkpoint


@pytest.mark.parametrize(
    ("executor", "splits", "checkpoint"),
    [
        ("inline", "1", False),
        ("bsp", "1", False),
        ("drizzle", "1", False),
        ("inline", "3", False),  # 3 parts of 2 partitions: one part reads nothing
        ("drizzle", "workers", False),
        ("drizzle", "workers", True),
    ],
)
def test_restart_emits_every_window_exactly_once(broker, tmp_path, executor, splits, checkpoint):
    """Stopped mid-stream and started again: without a checkpoint, the group's committed offsets and its progress
    records (one per part of a split stream) let the second run rebuild the open windows and skip the ones the
    first run wrote; with one, the checkpoint's offsets (per part) do."""
    topic = f"restart-{executor}-{splits}{'-ckpt' if checkpoint else ''}"
    broker.create_topic(topic, 2)
    broker.create_topic(f"{topic}-out", 1)
    events = ysb_events(4000, rate=100)
    first, second = events.head(2300), events.tail(1700)
    produce(broker, topic, first)
    query = f"INSERT INTO out {YSB_SELECT.format(window=TUMBLE)}"
    where = str(tmp_path / "ckpt") if checkpoint else None

    def context(**bounded: str) -> sd.Context:
        return ysb_context(
            broker,
            topic=topic,
            sink_topic=f"{topic}-out",
            executor=executor,
            checkpoint_dir=where,
            batch_size="300",
            group="g",
            splits=splits,
            **bounded,
        )

    handle = context().sql(query)
    wait_for(lambda: rows_read(handle) >= first.height or not handle.is_active, "the first part to be read")
    handle.stop(HANG_GUARD_S)
    assert handle.exception is None
    partial = results(broker, f"{topic}-out")
    assert 0 < partial.height < polars_ysb(events).height
    read = sum(max(o, 0) for o in committed(broker, topic, "g").values())
    if checkpoint:  # the checkpoint holds the open windows: what it covers is committed
        assert 0 < read <= first.height
    else:  # the open windows' records were not committed: the group's offsets are behind what was read
        assert 0 < read < first.height
    produce(broker, topic, second)
    again = context(bounded="true").sql(query)
    assert again.await_termination(HANG_GUARD_S)
    assert (again.restored_checkpoint is not None) == checkpoint
    combined = results(broker, f"{topic}-out")
    assert combined.select(KEYS).is_unique().all(), "a window was emitted twice"
    assert combined.sort(KEYS).equals(polars_ysb(events))


# ---------------------------------------------------------------- the command line


def test_gen_ysb_to_kafka_writes_the_generators_events_and_the_query_reads_them(broker):
    import io

    from stream_dsl.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    code = main(
        [
            "gen",
            "ysb",
            "--events",
            "3000",
            "--rate",
            "100",
            "--partitions",
            "2",
            "--to",
            f"kafka://{broker.bootstrap}/gen-ysb",
        ],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    assert "wrote 3000 events to Kafka topic 'gen-ysb' (2 partitions)" in out.getvalue()
    ctx = sd.Context(executor="inline")
    ctx.sql(
        out.getvalue().split("-- to query them:")[1].replace("topic = 'gen-ysb'", "topic = 'gen-ysb', bounded = 'true'")
    )
    got = ctx.sql(YSB_SELECT.format(window=TUMBLE)).collect()
    assert got.sort(KEYS).equals(polars_ysb(ysb_events(3000, rate=100)))


def test_a_sink_topic_that_does_not_exist_is_a_clear_error_and_is_not_created(broker):
    definition = SinkDef(
        "out", (("bootstrap_servers", broker.bootstrap), ("connector", "kafka"), ("topic", "no-sink-topic"))
    )
    for _ in range(2):  # checking must not create it (a producer's metadata request would, on some brokers)
        with pytest.raises(ConnectorError, match="topic 'no-sink-topic' does not exist"):
            make_sink(definition)


# ---------------------------------------------------------------- partitions and starting offsets


def _ids(broker: KafkaBroker, topic: str, **options: str) -> list[int]:
    ctx = sd.Context(executor="inline")
    extra = "".join(f", {k} = '{v}'" for k, v in options.items())
    ctx.sql(
        f"CREATE STREAM s (id BIGINT) WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', "
        f"topic = '{topic}', bounded = 'true'{extra})"
    )
    return sorted(ctx.sql("SELECT id FROM s").collect().get_column("id").to_list())


def test_readers_of_disjoint_partition_lists_together_read_the_topic_once(broker):
    broker.create_topic("split", 3)
    broker.produce("split", [json.dumps({"id": i}) for i in range(30)])
    first, second = _ids(broker, "split", partitions="0,2"), _ids(broker, "split", partitions="split:1")
    assert first == [i for i in range(30) if i % 3 != 1] and second == [i for i in range(30) if i % 3 == 1]
    with pytest.raises(DSLError, match="no partition split:7"):
        _ids(broker, "split", partitions="7")


def test_start_latest_skips_what_the_topic_held_at_open(broker):
    broker.create_topic("late", 1)
    broker.produce("late", [json.dumps({"id": 1})])
    definition = SourceDef(
        "s",
        "stream",
        Schema.of(("id", T.BIGINT)),
        (("bootstrap_servers", broker.bootstrap), ("connector", "kafka"), ("start", "latest"), ("topic", "late")),
    )
    source = KafkaSource(definition)
    source.open(None)
    assert source.next_batch(200).frame.height == 0
    broker.produce("late", [json.dumps({"id": 2})])
    seen: list[int] = []
    deadline = time.monotonic() + HANG_GUARD_S
    while not seen and time.monotonic() < deadline:
        seen += source.next_batch(100).frame.get_column("id").to_list()
    source.close()
    assert seen == [2]


def test_struct_columns_are_written_as_json_objects(broker):
    """A STRUCT column is a nested JSON object in the message value (struct helper)."""
    broker.create_topic("structs", 1)
    sink = make_sink(
        SinkDef("out", (("bootstrap_servers", broker.bootstrap), ("connector", "kafka"), ("topic", "structs")))
    )
    frame = pl.DataFrame({"id": [1, 2], "s": [{"a": 1, "b": "é"}, None]})
    sink.write(0, frame)
    sink.close()
    assert sorted(read_topic(broker.bootstrap, "structs"), key=lambda r: r["id"]) == [
        {"id": 1, "s": {"a": 1, "b": "é"}},
        {"id": 2, "s": None},
    ]
