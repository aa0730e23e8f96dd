"""Where a Kafka source's group got to, kept in a topic: offsets, event time, and how far it had read.

A query restarted without a checkpoint needs more than the group's committed
offsets: the newest event time it committed (so the windows it emitted are
not emitted again, `restored_max_event_ms`) and how far it had read (the
records between the two are replayed to rebuild open windows). Kafka keeps
a commit's metadata string for this, but not every Kafka-protocol broker
does (tansu drops it), so each commit also appends one JSON record, keyed by
the group and its topics ('group/topic1,topic2'), to the topic `progress_topic` (default 'stream-dsl-progress',
one partition, created if missing). It is written before the group's
offsets are committed, and on open the newest record of the group wins
(the group's own offsets serve lag tools).
"""

from __future__ import annotations

import json
from typing import Any

from stream_dsl.connectors.kafka.common import Outage, ck, ensure_topic, producer_config, read_all
from stream_dsl.errors import ConnectorError

DEFAULT_TOPIC = "stream-dsl-progress"


class ProgressLog:
    """Appends and reads one group's progress records (see the module doc)."""

    def __init__(self, bootstrap: str, topic: str, group: str, what: str, outage: Outage) -> None:
        """`group`: the record key, the consumer group and the topics it reads."""
        self.bootstrap, self.topic, self.group, self.what, self.outage = bootstrap, topic, group, what, outage
        self._producer: Any = None

    def load(self) -> dict[str, Any] | None:
        """The group's newest progress record, or None (a new group)."""
        ensure_topic(self.bootstrap, self.topic, self.what, self.outage.seconds)
        found = None
        for m in read_all(self.bootstrap, self.topic, timeout_s=max(5.0, self.outage.seconds)):
            if (m.key() or b"").decode("utf-8", "replace") == self.group:
                try:
                    found = json.loads(m.value())
                except (TypeError, ValueError):
                    continue
        return found if isinstance(found, dict) else None

    def save(self, note: dict[str, Any]) -> None:
        if self._producer is None:
            self._producer = ck.Producer(producer_config(self.bootstrap, self.outage))
        failures: list[str] = []
        self._producer.produce(
            self.topic,
            key=self.group,
            value=json.dumps(note),
            on_delivery=lambda error, _: failures.append(error.str()) if error else None,
        )
        left = self._producer.flush(self.outage.seconds + 5)
        if failures or left:
            raise ConnectorError(
                f"{self.what}: Kafka at {self.bootstrap} failed writing the group's progress to "
                f"'{self.topic}': {failures[0] if failures else 'not acknowledged'}"
            )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
