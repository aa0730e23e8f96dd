"""The members of a Redis consumer group that read one stream in parts, and what they share in Redis.

A stream read in parts (the option `splits`) is read by one consumer of the
group per part: part i is the consumer `<consumer>-<i>` (an unsplit stream is
the consumer `<consumer>` itself). Redis hands each new entry to exactly one
of them, so the parts together read the stream once.

What the members keep in Redis, next to the stream (all small hashes):
- `<stream>:<group>:progress`: per member the last entry id and newest
  event time it committed (`id:<member>`, `event_ms:<member>`), and the
  names of the members of the run that committed last (`members`). A
  restarted query resumes from the smallest committed event time over those
  members: the watermark the previous run's windows were emitted through.
- `<stream>:<group>:seen`: per member the newest event time it was delivered.
  A member whose read finds nothing new (every entry the stream holds went to
  some member) takes the largest of these as its event time, so an idle
  member never holds the query watermark back.

Members of an earlier run that this run no longer has (fewer parts, or a
split stream read whole again) may still own pending entries: they are
`orphans`, claimed (XCLAIM) into a live member when a query starts afresh.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any, cast

from stream_dsl.connectors.redis_client import entry_text, log, redis
from stream_dsl.errors import ConnectorError

CLAIM_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Members:
    """The consumer names of one run of a query over a stream, and which one this source reads as."""

    consumer: str  # the option `consumer`
    split: tuple[int, int] | None  # (index, count) of this part; None: the stream is read whole

    @property
    def names(self) -> tuple[str, ...]:
        if self.split is None:
            return (self.consumer,)
        return tuple(f"{self.consumer}-{i}" for i in range(self.split[1]))

    @property
    def me(self) -> str:
        return self.consumer if self.split is None else self.names[self.split[0]]

    def is_ours(self, name: str) -> bool:
        """Whether `name` is a member of some run of this query (the consumer, or the consumer and a part)."""
        return re.fullmatch(re.escape(self.consumer) + r"(-\d+)?", name) is not None

    def claims(self, orphan: str) -> bool:
        """Whether this member takes over the entries of `orphan`: by a hash of its name, so every member
        decides alone and the orphans spread over the members."""
        count = 1 if self.split is None else self.split[1]
        index = 0 if self.split is None else self.split[0]
        return zlib.crc32(orphan.encode()) % count == index


def pending_by_consumer(client: "redis.Redis", stream: str, group: str) -> dict[str, int]:
    """Each consumer of the group with its number of pending entries."""
    found: dict[str, int] = {}
    for info in cast("list[dict[Any, Any]]", client.xinfo_consumers(stream, group)):
        name = entry_text(info.get("name") or info.get(b"name"))
        found[name] = int(info.get("pending") or info.get(b"pending") or 0)
    return found


def orphans_of(pending: dict[str, int], members: Members) -> dict[str, int]:
    """Consumers of an earlier run of this query that this run does not have, with pending entries."""
    live = set(members.names)
    return {name: n for name, n in pending.items() if n and name not in live and members.is_ours(name)}


def strangers_of(pending: dict[str, int], members: Members) -> dict[str, int]:
    """Consumers of the group with pending entries whose names are not this query's: left alone."""
    return {name: n for name, n in pending.items() if n and not members.is_ours(name)}


def claim_pending(client: "redis.Redis", stream: str, group: str, orphan: str, into: str) -> int:
    """Move every pending entry of consumer `orphan` to consumer `into` (XCLAIM, ids only); how many moved."""
    moved = 0
    while True:
        pending: list[dict[str, Any]] = client.xpending_range(
            stream, group, min="-", max="+", count=CLAIM_CHUNK, consumername=orphan
        )
        if not pending:
            return moved
        ids = [p["message_id"] for p in pending]
        client.xclaim(stream, group, into, 0, ids, justid=True)
        moved += len(ids)
        if len(pending) < CLAIM_CHUNK:
            return moved


def claim_orphans(client: "redis.Redis", stream: str, group: str, members: Members, what: str) -> int:
    """Take over the pending entries of this query's earlier members that this run does not have (fewer
    parts now, or read whole again), the ones `members.claims`; how many. They are then read first, like
    the member's own pending entries."""
    pending = pending_by_consumer(client, stream, group)
    strangers = strangers_of(pending, members)
    if strangers and (members.split is None or members.split[0] == 0):  # said by one member
        log.warning(
            "%s: group '%s' has consumers with pending entries whose names do not derive from consumer '%s' "
            "(%s); they are not this query's and are left alone",
            what,
            group,
            members.consumer,
            ", ".join(f"{name}: {n}" for name, n in sorted(strangers.items())),
        )
    claimed = 0
    for orphan in sorted(o for o in orphans_of(pending, members) if members.claims(o)):
        moved = claim_pending(client, stream, group, orphan, members.me)
        claimed += moved
        log.warning(
            "%s: consumer '%s' of group '%s' is not read by this query any more: its %d pending entries go to "
            "consumer '%s'",
            what,
            orphan,
            group,
            moved,
            members.me,
        )
    return claimed


def refuse_orphans(client: "redis.Redis", stream: str, group: str, members: Members, what: str) -> None:
    """A query resumed from a checkpoint has the members that wrote it: entries pending for other members of
    this query cannot be fitted into its checkpointed batches, so they are refused, never skipped."""
    mine = {
        o: n for o, n in orphans_of(pending_by_consumer(client, stream, group), members).items() if members.claims(o)
    }
    if mine:
        name, count = sorted(mine.items())[0]
        raise ConnectorError(
            f"{what}: consumer '{name}' of group '{group}' holds {count} pending entries this query, resumed from "
            f"a checkpoint as consumers {', '.join(members.names)}, cannot read; start without the checkpoint "
            "(checkpoint_reset) so they are claimed and read first"
        )


def restored_event_ms(saved: dict[bytes, bytes]) -> int | None:
    """The watermark's event time the run that committed last resumed from: the smallest newest event time
    its members committed (None when one of them never had one: that run's watermark never moved)."""
    if b"members" not in saved and b"event_ms" in saved:  # written before sources were split: one member
        return int(saved[b"event_ms"])
    names = [n for n in entry_text(saved.get(b"members")).split(",") if n]
    values = [saved.get(f"event_ms:{n}".encode()) for n in names]
    if not names or any(v is None for v in values):
        return None
    return min(int(cast(bytes, v)) for v in values)


def committed_ids(saved: dict[bytes, bytes]) -> list[bytes]:
    """The last entry ids the members recorded in the progress hash."""
    return [v for k, v in saved.items() if k.startswith(b"id:") or k == b"id"]


def group_seen_ms(client: "redis.Redis", key: str) -> int | None:
    """The newest event time any member was delivered (the `seen` hash), None before any."""
    values = cast("dict[bytes, bytes]", client.hgetall(key)).values()
    return max((int(v) for v in values), default=None)
