"""Where a Kafka source's group got to, kept in a topic: offsets, event time, and how far it had read.

A query restarted without a checkpoint needs more than the group's committed
offsets: the newest event time it committed (so the windows it emitted are
not emitted again, `restored_max_event_ms`) and how far it had read (the
records between the two are replayed to rebuild open windows). Kafka keeps
a commit's metadata string for this, but not every Kafka-protocol broker
does (tansu drops it), so each commit also appends one JSON record, keyed by
the group and its topics ('group/topic1,topic2'), to the topic `progress_topic` (default 'stream-dsl-progress',
one partition, created if missing). It is written before the group's
offsets are committed (the group's own offsets serve lag tools).

A stream read in parts (`splits`) has one writer per part, each noting only
its own partitions, under its own key ('group/topics#i/n'). Reading merges:
for each partition, the newest record of the group (under any of its keys)
that notes it wins, so parts never hide each other's progress, and a restart
finds every partition's whether the earlier run was split or not, or split
differently (or read other partitions with the option `partitions`).
"""

from __future__ import annotations

import json
from typing import Any

from stream_dsl.connectors.kafka.common import Outage, ck, ensure_topic, producer_config, read_all
from stream_dsl.errors import ConnectorError

DEFAULT_TOPIC = "stream-dsl-progress"
PART_MARK = "#"  # 'group/topics#i/n': the record of part i of n


def part_key(group: str, split: tuple[int, int] | None) -> str:
    """The record key of one reader: the group and its topics, and its part of a split stream."""
    return group if split is None else f"{group}{PART_MARK}{split[0]}/{split[1]}"


def merged(notes: list[dict[str, Any]], parts: list[str]) -> dict[str, Any] | None:
    """One note for partitions `parts` from a group's notes (oldest first): each partition from the newest note
    that has it, and as event time the oldest of those notes' (what all of them had reached); None when no
    note has any of `parts`."""
    newest: dict[str, dict[str, Any]] = {}
    for note in notes:
        for part in note.get("offsets") or {}:
            if part in parts:
                newest[part] = note
    if not newest:
        return None
    sources = list({id(n): n for n in newest.values()}.values())
    times = [n.get("event_ms") for n in sources]
    return {
        "offsets": {p: n["offsets"][p] for p, n in newest.items()},
        "event_ms": None if any(t is None for t in times) else min(int(t) for t in times if t is not None),
        "partition_ms": {p: ms for p, n in newest.items() if (ms := (n.get("partition_ms") or {}).get(p)) is not None},
        "read": {p: e for p, n in newest.items() if (e := (n.get("read") or {}).get(p)) is not None},
    }


class ProgressLog:
    """Appends one reader's progress records and reads its group's (see the module doc)."""

    def __init__(
        self, bootstrap: str, topic: str, group: str, what: str, outage: Outage, split: tuple[int, int] | None = None
    ) -> None:
        """`group`: the consumer group and the topics it reads; `split`: this reader's part of a split stream."""
        self.bootstrap, self.topic, self.group, self.what, self.outage = bootstrap, topic, group, what, outage
        self.key = part_key(group, split)
        self._producer: Any = None

    def load(self, parts: list[str]) -> dict[str, Any] | None:
        """The group's progress for partitions `parts` (`merged`), or None (a new group)."""
        ensure_topic(self.bootstrap, self.topic, self.what, self.outage.seconds)
        notes: list[dict[str, Any]] = []
        for m in read_all(self.bootstrap, self.topic, timeout_s=max(5.0, self.outage.seconds)):
            key = (m.key() or b"").decode("utf-8", "replace")
            if key == self.group or key.startswith(self.group + PART_MARK):
                try:
                    note = json.loads(m.value())
                except (TypeError, ValueError):
                    continue
                if isinstance(note, dict) and isinstance(note.get("offsets"), dict):
                    notes.append(note)
        return merged(notes, parts)

    def save(self, note: dict[str, Any]) -> None:
        if self._producer is None:
            self._producer = ck.Producer(producer_config(self.bootstrap, self.outage))
        failures: list[str] = []
        self._producer.produce(
            self.topic,
            key=self.key,
            value=json.dumps(note),
            on_delivery=lambda error, _: failures.append(error.str()) if error else None,
        )
        left = self._producer.flush(self.outage.seconds + 5)
        if left or any("timed out" in f.lower() for f in failures):  # the producer retried for the outage's time
            raise ConnectorError(
                f"{self.what}: Kafka at {self.bootstrap} is unreachable: gave up after retrying for "
                f"{self.outage.seconds:g}s writing the group's progress to '{self.topic}'; last error: "
                f"{failures[0] if failures else 'not acknowledged'}"
            )
        if failures:
            raise ConnectorError(
                f"{self.what}: Kafka at {self.bootstrap} failed writing the group's progress to "
                f"'{self.topic}': {failures[0]}"
            )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None
