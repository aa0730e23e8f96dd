"""`stream-dsl gen ysb --to kafka://HOST:PORT/TOPIC`: YSB events as JSON messages into a Kafka topic.

The topic is created with `--partitions` partitions when it does not exist;
events go round robin over its partitions (each partition in event-time
order, which the kafka source's per-partition event time expects). The
events are the generator connector's for the same seed, rate and start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from stream_dsl.errors import DSLError

CHUNK = 100_000


@dataclass(frozen=True)
class KafkaTarget:
    bootstrap: str
    topic: str


def parse_target(url: str) -> KafkaTarget:
    """'kafka://127.0.0.1:9092/events' → (bootstrap '127.0.0.1:9092', topic 'events')."""
    parts = urlsplit(url)
    topic = parts.path.strip("/")
    if parts.scheme != "kafka" or not parts.netloc or not topic or "/" in topic:
        raise DSLError(f"--to must look like kafka://HOST:PORT/TOPIC, got '{url}'")
    return KafkaTarget(parts.netloc, topic)


def produce_ysb(
    target: KafkaTarget, *, count: int, seed: int, rate: Any, start_ms: int, partitions: int, out: TextIO
) -> int:
    """Write `count` YSB events into the topic; returns how many partitions it has."""
    try:
        from confluent_kafka import Producer
    except ImportError:
        raise DSLError("--to kafka:// needs the 'confluent-kafka' package (pip install 'stream-dsl[kafka]')") from None
    from stream_dsl.connectors import generator
    from stream_dsl.connectors.kafka.common import Outage, producer_config, topic_partitions

    what = f"topic '{target.topic}'"
    outage = Outage(what, target.bootstrap, 30.0)
    producer = Producer(producer_config(target.bootstrap, outage))
    try:
        found = topic_partitions(target.bootstrap, (target.topic,), what, 10.0)[target.topic]
    except DSLError as e:
        if "does not exist" not in str(e):
            raise
        _create(target, partitions)
        found = topic_partitions(target.bootstrap, (target.topic,), what, 10.0)[target.topic]
    failures: list[str] = []

    def delivered(error: Any, _: Any) -> None:
        if error is not None:
            failures.append(error.str())

    for lo in range(0, count, CHUNK):
        frame = generator.ysb_frame(lo, min(lo + CHUNK, count), seed=seed, rate=rate, start_ms=start_ms)
        for i, line in enumerate(generator.events_as_json(frame).splitlines()):
            while True:
                try:
                    producer.produce(
                        target.topic, value=line, partition=found[(lo + i) % len(found)], on_delivery=delivered
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.flush(60)
        if failures:
            raise DSLError(f"writing to {what} on {target.bootstrap} failed: {failures[0]}")
    if producer.flush(60):
        raise DSLError(f"writing to {what} on {target.bootstrap}: messages not acknowledged")
    return len(found)


def _create(target: KafkaTarget, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": target.bootstrap})
    future = admin.create_topics([NewTopic(target.topic, num_partitions=partitions, replication_factor=1)])
    try:
        future[target.topic].result(timeout=30)
    except Exception as e:
        if "already exists" not in str(e).lower() and "TOPIC_ALREADY_EXISTS" not in str(e):
            raise DSLError(f"cannot create topic '{target.topic}' on {target.bootstrap}: {e}") from None


def print_query(target: KafkaTarget, count: int, partitions: int, seed: int, columns: str, out: TextIO) -> None:
    print(
        f"wrote {count} events to Kafka topic '{target.topic}' ({partitions} partitions) at {target.bootstrap}",
        file=out,
    )
    print("\n-- to query them:", file=out)
    print(
        f"CREATE STREAM events ({columns},\n  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)\n"
        f"  WITH (connector = 'kafka', bootstrap_servers = '{target.bootstrap}', topic = '{target.topic}');",
        file=out,
    )
    print(
        f"CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)\n"
        f"  WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '{seed}');",
        file=out,
    )
