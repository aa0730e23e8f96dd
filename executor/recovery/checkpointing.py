"""Checkpoints and recovery on the driver's side (docs/architecture.md, Fault tolerance).

A continuous query with a `checkpoint_dir` holds that directory's lock for
its life and starts from the newest good checkpoint in it, or from the
beginning when none was ever committed there; when checkpoints were
committed but none is usable now, it refuses to start
(`checkpoint_survey.Survey.decide`) unless the run asked for
`checkpoint_reset`, which archives the old state first. It stops when its
LOCK is deleted or replaced (`CheckpointStore.check_owner`, before every
checkpoint). Every group message asks the workers for a checkpoint part:
after their last task of the group each worker writes its partitions'
states to one file and reports the file's checksum and its sources'
offsets. At the group boundary, once the group's batches are in the sink
and their dead letters written, the driver commits the checkpoint (its
manifest names every part and checksum, written atomically); only then may
the sources release what they read up to that batch.

When a worker dies (or falls silent past the heartbeat timeout) the group
in flight is abandoned and every worker is replaced: a new worker needs a
pipe to and from every other process, which a running process cannot be
handed, and the survivors' state is ahead of the checkpoint anyway, so a
new set of pipes and processes is the simple safe state. Each new worker gets only
its own partitions' state parts from the driver (a worker without state
gets none), opens its sources at the checkpointed offsets, and the
group is replayed from the checkpoint's batch. Sinks are idempotent per
batch id, so batches written again replace what they wrote before, and
the output is exactly once.

`RestorePoint` is where a run (re)starts: a committed checkpoint, or the
query's origin when none was committed yet.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import networkx as nx

from executor.recovery.store import (
    Checkpoint,
    CheckpointStore,
    decode_part,
    encode_part,
    fingerprint,
    read_part_data,
    write_part_data,
)
from executor.multiproc.messages import CheckpointPart, Restore
from executor.multiproc.scheduler import MapId
from executor.state.clocks import SourceClock
from stream_dsl.observe.log import CHECKPOINT, RECOVERY, event

MAX_RECOVERIES_WITHOUT_PROGRESS = 5  # a worker that dies again before any new checkpoint: give up after this many


@dataclass(frozen=True, slots=True)
class RestorePoint:
    """Where a run (re)starts: a committed checkpoint (`checkpoint` its id) or the query's origin (None)."""

    checkpoint: int | None
    directory: str
    next_batch: int
    watermark: int | None
    clocks: dict[int, tuple[int | None, bool]]
    offsets: dict[int, Any] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)
    partitions: dict[MapId, str] = field(default_factory=dict)
    output_rows: int = 0

    @staticmethod
    def of(checkpoint: Checkpoint) -> "RestorePoint":
        return RestorePoint(
            checkpoint.id,
            checkpoint.path,
            checkpoint.next_batch,
            checkpoint.watermark,
            dict(checkpoint.clocks),
            dict(checkpoint.offsets),
            dict(checkpoint.parts),
            dict(checkpoint.partitions),
            checkpoint.output_rows,
        )

    def for_worker(self, hosts: Mapping[MapId, int], worker: int) -> Restore:
        """The part of this point a worker needs: its own partitions' states and its own sources' offsets."""
        partitions = {key: file for key, file in self.partitions.items() if hosts.get(key) == worker}
        offsets = {stage: offset for stage, offset in self.offsets.items() if hosts.get((stage, 0)) == worker}
        return self._restore(partitions, offsets)

    def whole(self) -> Restore:
        """Everything of this point, for a process that runs every task (the inline executor)."""
        return self._restore(dict(self.partitions), dict(self.offsets))

    def _restore(self, partitions: dict[MapId, str], offsets: dict[int, Any]) -> Restore:
        """A Restore with the bytes of the part files that hold `partitions`, checksums verified here."""
        data = {f: read_part_data(os.path.join(self.directory, f), self.parts[f]) for f in set(partitions.values())}
        return Restore(data, partitions, offsets, dict(self.clocks), self.watermark, self.next_batch)


def load_states(
    data: Mapping[str, bytes], partitions: Mapping[MapId, str], stateful: Mapping[int, Any]
) -> dict[MapId, Any]:
    """The operator states of `partitions` ((stage, partition) -> part file) from the parts' bytes (`data`,
    by file); `stateful` gives each stage's stateful operator."""
    states: dict[MapId, Any] = {}
    for file in sorted(set(partitions.values())):
        ops = {key: stateful[key[0]] for key, name in partitions.items() if name == file}
        states.update(decode_part(data[file], file, ops))
    return states


def checkpoint_part(
    id: int, worker: int, name: str, states: Mapping[MapId, Any], offsets: dict[int, Any]
) -> CheckpointPart:
    """One process's share of checkpoint `id`: its operator states as the bytes of part `name` (none when it
    holds no state) and its sources' offsets; `Checkpointing.take` writes it."""
    data = encode_part(states) if states else None
    return CheckpointPart(id, worker, name if states else None, None, tuple(sorted(states)), offsets, data)


def clocks_of(clocks: Mapping[int, SourceClock]) -> dict[int, tuple[int | None, bool]]:
    return {stage: (clock.max_event_ms, clock.exhausted) for stage, clock in clocks.items()}


@dataclass
class Gathering:
    """A checkpoint the workers are writing: its id and directory, the parts asked for and those in."""

    id: int
    directory: str
    requested: set[int] = field(default_factory=set)  # the workers asked for a part
    parts: dict[int, CheckpointPart] = field(default_factory=dict)  # worker -> its part


class Checkpointing:
    """One query's checkpoints: the store, the parts of the checkpoints being gathered, and the recoveries.

    A checkpoint is gathered per group, keyed by the group's last batch:
    with a group sent ahead (`DrizzlePolicy.ahead`) the workers may write
    the next group's parts before this group's checkpoint is committed.
    """

    def __init__(self, root: str, query: str) -> None:
        self.store = CheckpointStore(root, fingerprint(query), query)
        self.gathering: dict[int, Gathering] = {}  # by the batch the checkpoint comes after
        self.discarded: list[Gathering] = []  # never complete; their directories go with `abandon` (ids stay unique)
        self.restored: Checkpoint | None = None  # the checkpoint this run started from
        self.last: RestorePoint | None = None  # the newest committed checkpoint (or the origin)
        self.recoveries: list[dict[str, Any]] = []
        self._without_progress = 0
        self._reported = 0  # recoveries whose time a progress report carried

    @property
    def offset_log(self) -> str:
        """The directory of this query's batch offset logs (`offset_log.py`): per query fingerprint."""
        return os.path.join(self.store.root, "offsets", self.store.fingerprint[:16])

    @staticmethod
    def for_graph(root: str, graph: nx.DiGraph) -> "Checkpointing":
        from optimizer.explain import render_stages

        return Checkpointing(root, render_stages(graph))

    def open(self) -> Checkpoint | None:
        """Take the directory's lock; the newest good checkpoint, if any (CheckpointError: a different query's,
        another format's, or none usable where checkpoints were committed)."""
        self.store.lock()
        try:
            self.restored = self.store.latest()
        except BaseException:
            self.store.unlock()
            raise
        return self.restored

    def close(self) -> None:
        """At the end of the query (its workers stopped): drop what was never committed, then unlock."""
        self.abandon()
        self.store.unlock()

    def restored_info(self) -> dict[str, Any] | None:
        """What `QueryHandle.restored_checkpoint` shows."""
        if self.restored is None:
            return None
        return {"id": self.restored.id, "next_batch": self.restored.next_batch, "skipped": list(self.store.skipped)}

    # ------------------------------------------------------------ gathering and committing

    def request(self, worker: int, after: int) -> int:
        """The id of the checkpoint after batch `after` (one per group), which `worker` is asked for a part of."""
        gathering = self.gathering.get(after)
        if gathering is None:
            gathering = self.gathering[after] = Gathering(*self.store.begin())
        gathering.requested.add(worker)
        return gathering.id

    def take(self, part: CheckpointPart) -> None:
        """A worker's part of a checkpoint being gathered: its state part is written into the checkpoint now."""
        for gathering in self.gathering.values():
            if gathering.id == part.id:
                if part.file is not None and part.data is not None:
                    sha = write_part_data(gathering.directory, part.file, part.data)
                    part = dataclasses.replace(part, sha256=sha, data=None)
                gathering.parts[part.worker] = part

    def commit(
        self, after: int, *, next_batch: int, watermark: int | None, clocks: Mapping[int, SourceClock], output_rows: int
    ) -> int | None:
        """Write the manifest of the checkpoint after batch `after` (resuming at `next_batch`); its id."""
        gathering = self.gathering.pop(after, None)
        for older in [a for a in self.gathering if a < after]:  # a cancelled group's: never complete now
            self.discarded.append(self.gathering.pop(older))
        if gathering is None or not gathering.requested <= set(gathering.parts):
            if gathering is not None:  # a part missing (a cancelled group): none is written
                self.discarded.append(gathering)
            return None
        id, directory = gathering.id, gathering.directory
        parts: dict[str, str] = {}
        partitions: dict[MapId, str] = {}
        offsets: dict[int, Any] = {}
        for part in gathering.parts.values():
            if part.file is not None and part.sha256 is not None:
                parts[part.file] = part.sha256
                partitions.update({tuple(key): part.file for key in part.partitions})  # type: ignore[misc]
            offsets.update(part.offsets)
        states = clocks_of(clocks)
        self.store.commit(
            id,
            next_batch=next_batch,
            watermark=watermark,
            clocks=states,
            offsets=offsets,
            parts=parts,
            partitions=partitions,
            output_rows=output_rows,
        )
        self.last = RestorePoint(id, directory, next_batch, watermark, states, offsets, parts, partitions, output_rows)
        self._without_progress = 0
        event(
            CHECKPOINT,
            logging.INFO,
            f"checkpoint {id} committed; a restart resumes at batch {next_batch}",
            checkpoint=id,
            next_batch=next_batch,
            checkpoint_dir=self.store.root,
        )
        return id

    def abandon(self) -> None:
        """The groups in flight are lost (their workers stopped): their half-gathered checkpoints are removed.

        The newest may be a group sent ahead past the end of the input: left
        behind, `stream-dsl checkpoints` would list it as uncommitted. Those
        of cancelled groups (`discarded`) go too; they stay until here so
        that no checkpoint id is given twice while the query runs.
        """
        for gathering in [*self.gathering.values(), *self.discarded]:
            shutil.rmtree(gathering.directory, ignore_errors=True)
        self.gathering, self.discarded = {}, []

    # ------------------------------------------------------------ recoveries

    def recovering(self, worker: int, exit_code: int | None, reason: str, resumed_batch: int) -> dict[str, Any]:
        """Log a recovery as it begins; raises when workers keep dying before any progress."""
        self._without_progress += 1
        entry = {
            "worker": worker,
            "exit_code": exit_code,
            "reason": reason,
            "detected_at": time.time(),
            "checkpoint": None if self.last is None else self.last.checkpoint,
            "resumed_batch": resumed_batch,
            "restored_at": None,
            "first_batch_at": None,
            "recovery_ms": None,
        }
        self.recoveries.append(entry)
        return entry

    @property
    def gave_up(self) -> bool:
        return self._without_progress > MAX_RECOVERIES_WITHOUT_PROGRESS

    def batch_written(self) -> None:
        """A batch's output was handed to the sink: the first one after a recovery ends it."""
        if self.recoveries and self.recoveries[-1]["first_batch_at"] is None:
            entry = self.recoveries[-1]
            entry["first_batch_at"] = time.time()
            entry["recovery_ms"] = (entry["first_batch_at"] - entry["detected_at"]) * 1000.0
            event(
                RECOVERY,
                logging.INFO,
                f"recovered: the first batch after losing worker {entry['worker']} was written "
                f"{entry['recovery_ms']:.0f} ms after the loss was detected",
                recovery_ms=entry["recovery_ms"],
            )

    def batch_recorded(self) -> float | None:
        """A batch's progress is reported: the last recovery's time, on the first report after it, else None."""
        if not self.recoveries or self._reported == len(self.recoveries):
            return None
        self.batch_written()  # in case its output had not arrived (it always has by now)
        self._reported = len(self.recoveries)
        return self.recoveries[-1]["recovery_ms"]
