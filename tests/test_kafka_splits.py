"""A Kafka stream read in parts (`splits`), against the real broker (tansu): each part reads every n-th partition.

Part i of n reads the partitions at positions i, i + n, ... of the stream's
sorted partitions, so every partition is read by exactly one part, a part
given none is exhausted from the start (it never holds the watermark back),
and the query's result is the unsplit one (and plain polars') on every
executor. Restarts (from the group's progress records, one per part, and
from a checkpoint) are tested in test_kafka.py's restart test, killed
workers and a killed driver in test_kafka_recovery.py, both with split
topics. `bench ysb --format kafka` runs tiny here too.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace

import polars as pl
import pytest

import stream_dsl as sd
from executor.multiproc.metrics import BatchStats
from executor.query.progress import add_backlog
from kafka_broker import KafkaBroker, start_broker, stop_broker
from stream_dsl.bench.ysb_kafka import TOPIC_PREFIX
from stream_dsl.connectors.generator import ysb_events
from stream_dsl.connectors.kafka import KafkaSource
from stream_dsl.connectors.kafka.progress import merged
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Schema
from test_kafka import KEYS, TUMBLE, YSB_COLUMNS, YSB_SELECT, polars_ysb, produce

pytestmark = pytest.mark.kafka

TOPIC = "four"  # 4 partitions, filled once for the module
EVENTS = 3000  # 30 seconds of event time at 100 events a second


@pytest.fixture(scope="module")
def broker():
    srv = start_broker()
    srv.create_topic(TOPIC, 4)
    produce(srv, TOPIC, ysb_events(EVENTS, rate=100))
    yield srv
    stop_broker(srv)


def part(broker: KafkaBroker, split: tuple[int, int] | None, **options: str) -> SourceDef:
    settings = {
        "bootstrap_servers": broker.bootstrap,
        "connector": "kafka",
        "topic": TOPIC,
        "bounded": "true",
        "batch_size": "500",
    }
    settings.update(options)
    definition = SourceDef(
        "s", "stream", Schema.of(("id", T.BIGINT), ("kafka_partition", T.BIGINT)), tuple(sorted(settings.items()))
    )
    return replace(definition, split=split)


def read_part(definition: SourceDef) -> tuple[set[int], int, bool]:
    """The partitions one part read from, its rows, and whether its first batch already said exhausted."""
    source = KafkaSource(definition)
    source.open(None)
    partitions: set[int] = set()
    rows, first = 0, None
    try:
        while True:
            batch = source.next_batch(50)
            first = batch.exhausted if first is None else first
            partitions |= set(batch.frame.get_column("kafka_partition").to_list())
            rows += batch.frame.height
            if batch.exhausted:
                return partitions, rows, bool(first)
    finally:
        source.close()


@pytest.mark.parametrize("splits", [2, 3, 5])
def test_each_partition_is_read_by_exactly_one_part(broker, splits):
    reads = [read_part(part(broker, (i, splits))) for i in range(splits)]
    assert [r[0] for r in reads] == [{p for p in range(4) if p % splits == i} for i in range(splits)]
    assert sum(r[1] for r in reads) == EVENTS
    # a part with no partition (5 parts of 4 partitions) reads nothing and is exhausted from its first batch
    assert [r[2] for r in reads] == [not r[0] for r in reads]


def test_parts_take_turns_over_the_partitions_the_option_partitions_chose(broker):
    chosen = [read_part(part(broker, (i, 2), partitions="3,0,1"))[0] for i in range(2)]
    assert chosen == [{0, 3}, {1}]  # positions 0 and 2 of [0, 1, 3], then position 1


def test_an_unbounded_part_with_no_partition_is_exhausted_so_it_never_holds_the_watermark_back(broker):
    source = KafkaSource(part(broker, (4, 5), bounded="false"))
    source.open(None)
    try:
        batch = source.next_batch(50)
    finally:
        source.close()
    assert batch.exhausted and batch.frame.height == 0


@pytest.mark.parametrize(
    ("executor", "workers", "splits"),
    [("inline", 1, "2"), ("inline", 2, "3"), ("drizzle", 2, "workers"), ("drizzle", 3, "3"), ("bsp", 2, "5")],
)
def test_a_split_topic_gives_the_unsplit_result_on_every_executor(broker, unsplit, executor, workers, splits):
    assert run_ysb(broker, executor, workers, splits).equals(unsplit)  # bsp: 5 parts, one with no partition


@pytest.fixture(scope="module")
def unsplit(broker) -> pl.DataFrame:
    expected = polars_ysb(ysb_events(EVENTS, rate=100))
    assert run_ysb(broker, "inline", 1, "1").equals(expected)
    return expected


def run_ysb(broker: KafkaBroker, executor: str, workers: int, splits: str) -> pl.DataFrame:
    ctx = sd.Context(executor=executor, workers=workers, group_size=4)
    ctx.sql(f"""
        CREATE STREAM events ({YSB_COLUMNS})
          WITH (connector = 'kafka', bootstrap_servers = '{broker.bootstrap}', topic = '{TOPIC}', bounded = 'true',
                batch_size = '200', splits = '{splits}');
        CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
          WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '1');
    """)
    return ctx.sql(YSB_SELECT.format(window=TUMBLE)).collect().sort(KEYS)


def test_progress_records_merge_per_partition_whatever_split_wrote_them():
    whole = {"offsets": {"t:0": 5, "t:1": 6}, "event_ms": 100, "partition_ms": {"t:0": 150, "t:1": 160}, "read": {}}
    part0 = {"offsets": {"t:0": 9}, "event_ms": 300, "partition_ms": {"t:0": 310}, "read": {"t:0": 12}}
    part1 = {"offsets": {"t:1": 8}, "event_ms": 250, "partition_ms": {"t:1": 260}, "read": {}}
    assert merged([whole, part0], ["t:1"]) == {
        "offsets": {"t:1": 6},
        "event_ms": 100,
        "partition_ms": {"t:1": 160},
        "read": {},
    }
    both = merged([whole, part0, part1], ["t:0", "t:1"])
    assert both is not None and both["offsets"] == {"t:0": 9, "t:1": 8} and both["read"] == {"t:0": 12}
    assert both["event_ms"] == 250  # what both parts had reached
    assert merged([whole], ["t:2"]) is None
    assert json.loads(json.dumps(both)) == both


def test_the_parts_backlogs_add_up_to_the_streams():
    """Each part reports its own consumer lag; progress() shows the stream's, whether the parts ran on one worker
    (`add_backlog`) or on several (their batch stats merged at the driver)."""
    one = BatchStats()
    add_backlog(one.backlog, "events", {"lag": 5})
    add_backlog(one.backlog, "events", {"lag": 7})
    other = BatchStats(backlog={"events": {"lag": 30}, "clicks": {"lag": 1}})
    one.merge(other)
    assert one.backlog == {"events": {"lag": 42}, "clicks": {"lag": 1}}


def test_bench_ysb_kafka_loads_a_topic_reads_it_in_parts_and_reports_an_exact_result(broker):
    from stream_dsl.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    args = ["bench", "ysb", "--format", "kafka", "--bootstrap", broker.bootstrap, "--partitions", "3"]
    args += ["--events", "6000", "--rate", "20000", "--window", "100ms", "--workers", "2", "--batch-interval", "50ms"]
    assert main(args, out=out, err=err) == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert "JSON messages in a Kafka topic (3 partitions at " in lines[0], lines[0]
    assert "no latency run (a topic loaded first is not paced)" in lines[1]
    assert re.match(r"stream-dsl +[\d.]+ s +[\d,]+ events/s +[\d,]+ batches +latency -$", lines[2]), lines[2]
    assert re.match(r"polars +[\d.]+ s +[\d,]+ events/s +one batch pl.read_ndjson", lines[3]), lines[3]
    assert re.match(r"ratio +[\d.]+ ", lines[4]) and re.match(r"result +OK \([\d,]+ rows equal\)$", lines[5]), lines
    assert not [t for t in broker_topics(broker) if t.startswith(TOPIC_PREFIX)]  # the topic is deleted after


def test_bench_ysb_kafka_needs_a_broker():
    from stream_dsl.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    assert main(["bench", "ysb", "--format", "kafka", "--events", "10"], out=out, err=err) != 0
    assert "--format kafka needs --bootstrap HOST:PORT" in err.getvalue()


def broker_topics(broker: KafkaBroker) -> list[str]:
    from confluent_kafka.admin import AdminClient

    return list(AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=30).topics)
