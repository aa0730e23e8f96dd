"""What the Kafka source and sink share: client settings, topic checks, and waiting out a lost broker.

librdkafka reconnects by itself; what it does not do is give up. `Outage`
notes when the broker became unreachable (from the client's error
callback) and turns an outage longer than `retry_seconds` into one
ConnectorError naming the source or sink, the bootstrap servers and the
last error. Each wait is logged as a warning on 'stream_dsl.connectors.kafka'.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast

from stream_dsl.errors import ConnectorError

try:
    import confluent_kafka as ck
    from confluent_kafka import KafkaError, KafkaException
except ImportError:  # pragma: no cover - the registry turns this into a clear ConnectorError
    raise ImportError(
        "the kafka connector needs the 'confluent-kafka' package (pip install 'stream-dsl[kafka]')"
    ) from None

log = logging.getLogger("stream_dsl.connectors.kafka")
client_log = logging.getLogger("stream_dsl.connectors.kafka.client")  # librdkafka's own log lines, not stderr

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DOWN_CODES = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TRANSPORT,
        KafkaError._RESOLVE,
        KafkaError._TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
    }
)
PROBE_TIMEOUT_S = 1.0


def retry_seconds(value: str | None, what: str) -> float:
    try:
        seconds = float(value) if value is not None else 30.0
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise ConnectorError(f"{what}: option retry_seconds must be a number of seconds >= 0, got '{value}'")
    return seconds


def required(definition: Any, key: str, what: str) -> str:
    value = definition.option(key)
    if not value or not value.strip():
        raise ConnectorError(f"{what}: the kafka connector needs a {key} option")
    return value.strip()


def topic_list(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


@dataclass
class Outage:
    """Tracks whether the broker is reachable (see the module doc)."""

    what: str
    bootstrap: str
    seconds: float
    since: float | None = None
    last_error: str = ""
    retries: int = 0

    def on_error(self, error: KafkaError) -> None:
        """librdkafka's error_cb: a lost broker starts an outage; anything else is only logged."""
        if error.code() in DOWN_CODES:
            if self.since is None:
                self.since = time.monotonic()
                log.warning(
                    "%s: Kafka at %s is unreachable (%s); waiting, giving up after %gs",
                    self.what,
                    self.bootstrap,
                    error.str(),
                    self.seconds,
                )
            self.last_error = error.str()
        else:
            log.warning("%s: Kafka error: %s", self.what, error.str())

    def ok(self) -> None:
        self.since = None

    def check(self, probe: Any) -> None:
        """During an outage: `probe()` (a metadata request) ends it, or after `seconds` raise a ConnectorError."""
        if self.since is None:
            return
        try:
            probe()
            self.ok()
            return
        except KafkaException as e:
            self.last_error = str(e.args[0] if e.args else e)
        waited = time.monotonic() - self.since
        if waited >= self.seconds:
            raise ConnectorError(
                f"{self.what}: Kafka at {self.bootstrap} is unreachable: gave up after retrying "
                f"for {self.seconds:g}s; last error: {self.last_error}"
            )
        self.retries += 1
        log.warning(
            "%s: Kafka at %s is unreachable (%s); waiting, giving up after %gs",
            self.what,
            self.bootstrap,
            self.last_error,
            self.seconds,
        )


def metadata(client: Any, topics: tuple[str, ...], what: str, bootstrap: str, seconds: float) -> dict[str, list[int]]:
    """Every topic's partitions; ConnectorError for a topic that does not exist or a broker that stays away."""
    deadline = time.monotonic() + seconds
    found: dict[str, list[int]] = {}
    for topic in topics:
        while True:
            try:
                meta = client.list_topics(topic, timeout=max(PROBE_TIMEOUT_S, min(5.0, seconds)))
                break
            except KafkaException as e:
                if time.monotonic() >= deadline:
                    raise ConnectorError(
                        f"{what}: Kafka at {bootstrap} is unreachable: gave up after retrying for "
                        f"{seconds:g}s; last error: {e.args[0] if e.args else e}"
                    ) from None
                time.sleep(0.2)
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            reason = "" if info is None or info.error is None else f" ({info.error.str()})"
            if (
                info is not None
                and info.error is not None
                and info.error.code() not in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)
            ):
                raise ConnectorError(f"{what}: Kafka at {bootstrap} cannot describe topic '{topic}'{reason}")
            raise ConnectorError(
                f"{what}: topic '{topic}' does not exist on Kafka at {bootstrap}{reason}; create it first"
            )
        found[topic] = sorted(info.partitions)
    return found


def client_config(bootstrap: str, outage: Outage, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "error_cb": outage.on_error,
        "allow.auto.create.topics": False,
        "logger": client_log,
        **extra,
    }


def producer_config(bootstrap: str, outage: Outage) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "error_cb": outage.on_error,
        "linger.ms": 5,
        "enable.idempotence": False,
        "acks": "all",
        "message.timeout.ms": max(5000, int(outage.seconds * 1000)),
        "logger": client_log,
    }


__all__ = [
    "ck",
    "KafkaError",
    "KafkaException",
    "Outage",
    "metadata",
    "client_config",
    "producer_config",
    "retry_seconds",
    "required",
    "topic_list",
    "DEFAULT_BOOTSTRAP",
    "log",
]


def admin_client(bootstrap: str) -> Any:
    """For metadata: a consumer that asks the broker not to create topics. (A producer's or an admin
    client's metadata request for a missing topic makes some brokers, tansu among them, create it.)"""
    return ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "stream-dsl-metadata",
            "logger": client_log,
            "allow.auto.create.topics": False,
        }
    )


def topic_partitions(bootstrap: str, topics: tuple[str, ...], what: str, seconds: float) -> dict[str, list[int]]:
    """`metadata` through a short-lived client that creates no topic (see `admin_client`)."""
    client = admin_client(bootstrap)
    try:
        return metadata(client, topics, what, bootstrap, seconds)
    finally:
        client.close()


def ensure_topic(bootstrap: str, topic: str, what: str, seconds: float) -> None:
    """Create `topic` (one partition) unless it exists: the sink's markers, the source's progress."""
    from confluent_kafka.admin import AdminClient, NewTopic

    # the stubs allow only scalar settings, but the client takes a logging.Logger as "logger" (as `client_config`)
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": client_log})  # type: ignore[dict-item]
    try:
        topic_partitions(bootstrap, (topic,), what, seconds)
        return
    except ConnectorError as e:
        if "does not exist" not in str(e):
            raise
    future = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        future[topic].result(timeout=max(5.0, seconds))
    except Exception as e:  # created meanwhile by another writer is fine
        if "TOPIC_ALREADY_EXISTS" not in str(e) and "already exists" not in str(e).lower():
            raise ConnectorError(f"{what}: cannot create the topic '{topic}' on Kafka at {bootstrap}: {e}") from None


def read_all(bootstrap: str, topic: str, *, timeout_s: float = 30.0) -> list[Any]:
    """Every message of `topic` (all partitions, from the start to the end as of now)."""
    outage = Outage(f"topic '{topic}'", bootstrap, timeout_s)
    consumer = ck.Consumer(
        client_config(
            bootstrap,
            outage,
            {
                "group.id": f"stream-dsl-reader-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 50,
            },
        )
    )
    try:
        parts = metadata(consumer, (topic,), f"topic '{topic}'", bootstrap, timeout_s)[topic]
        consumer.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in parts])
        ended: set[int] = set()
        found: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(ended) < len(parts):
            if time.monotonic() > deadline:
                raise ConnectorError(f"topic '{topic}': could not read to its end within {timeout_s:g}s")
            for m in consumer.consume(1000, 0.1):
                if (error := m.error()) is None:
                    found.append(m)
                    ended.discard(m.partition())
                elif error.code() == KafkaError._PARTITION_EOF:
                    ended.add(cast(int, m.partition()))  # a partition's EOF event names it; the stubs say int | None
        return found
    finally:
        consumer.close()
