"""`bench ysb --format kafka`: the events as JSON messages in a Kafka topic, read back in one part per worker.

Before the runs, the generator's events (same seed, rate and start) are
loaded into a new topic with `partitions` partitions on the broker at
`bootstrap` (`stream-dsl gen ysb --to kafka://...` does the same; loading is
not timed), round robin, so each partition is in event-time order. The
query reads the topic bounded, with `splits = 'workers'`: each worker reads
its share of the partitions (`connectors/kafka/source.py`), and every run
uses a consumer group of its own, so no run resumes where another
committed. The topic is deleted afterwards. Plain polars parses the same
JSON lines with `pl.read_ndjson` (it has no Kafka reader).
"""

from __future__ import annotations

import io
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from stream_dsl.errors import DSLError

if TYPE_CHECKING:
    from stream_dsl.bench.ysb import YsbBench

TOPIC_PREFIX = "stream-dsl-ysb-"


def partition_count(bench: "YsbBench") -> int:
    """The topic's partitions: `bench.partitions`, else one per worker."""
    return bench.partitions or max(1, int(bench.config.workers))


@contextmanager
def loaded_topic(bench: "YsbBench") -> Iterator[str]:
    """A new topic holding the benchmark's events (deleted after); yields its name."""
    from stream_dsl.bench.ysb import exact_rate, generator_start_ms
    from stream_dsl.cli.gen_kafka import KafkaTarget, produce_ysb

    if not bench.bootstrap:
        raise DSLError("the kafka format needs a broker: give its address with --bootstrap HOST:PORT")
    target = KafkaTarget(bench.bootstrap, f"{TOPIC_PREFIX}{uuid.uuid4().hex[:12]}")
    try:
        produce_ysb(
            target,
            count=bench.events,
            seed=bench.seed,
            rate=exact_rate(bench.rate),
            start_ms=generator_start_ms(),
            partitions=partition_count(bench),
            out=io.StringIO(),
        )
        yield target.topic
    finally:
        _delete(target.bootstrap, target.topic)


def source_options(bench: "YsbBench", topic: str) -> str:
    """The events stream's WITH options: the topic, bounded, one part per worker, a consumer group per run; a
    part's batch is its share of a generator batch (the events of one batch interval at the rate)."""
    per_batch = max(1, int(bench.rate * bench.config.batch_interval_ms / 1000))
    per_part = max(1, -(-per_batch // max(1, int(bench.config.workers))))
    return (
        f"connector = 'kafka', bootstrap_servers = '{bench.bootstrap}', topic = '{topic}', bounded = 'true',\n"
        f"        group = 'stream-dsl-ysb-{uuid.uuid4().hex[:12]}', batch_size = '{per_part}', splits = 'workers'"
    )


def events_text(bench: "YsbBench") -> str:
    return (
        f"JSON messages in a Kafka topic ({partition_count(bench)} partitions at {bench.bootstrap}), "
        "read in one part per worker"
    )


def _delete(bootstrap: str, topic: str) -> None:
    """Drop the benchmark's topic; a broker that cannot is left with it (the name says what it was)."""
    try:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bootstrap})  # held while its future runs: its end cancels it
        futures: Any = admin.delete_topics([topic], operation_timeout=10)
        futures[topic].result(timeout=15)
    except Exception:
        pass
