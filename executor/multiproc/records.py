"""What the driver does with finished batches: output in batch order, the changelog, progress, checkpoints."""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Callable

import polars as pl

from executor.multiproc.batch_logs import DriverLogs
from executor.multiproc.messages import Commit, OutputMessage
from executor.multiproc.metrics import BatchStats, TaskMetrics, batch_totals, stage_metrics
from executor.multiproc.scheduler import MapId
from executor.multiproc.shuffle import decode
from executor.multiproc.worker import OutputBatch
from executor.query.changelog import ChangelogBuffer
from executor.query.changelog_rows import Part, RowFold, as_frame, unpack
from executor.query.outputs import CollectOutput, QueryOutput
from executor.query.progress import batch_report, sum_sides
from executor.query.release import keep_from
from executor.query.tasks import TaskRunner
from executor.query.watermarks import Clock, WatermarkChain
from executor.recovery.checkpointing import Checkpointing
from optimizer.physical.stages import Stage
from stream_dsl.connectors.base import DeadLetter

OnBatch = Callable[[dict[str, Any]], None] | None


class BatchRecords:
    """The `Driver`'s handling of finished batches (a mixin: the driver's `__init__` sets these fields)."""

    executor: str
    graph: Any
    output: QueryOutput
    runner: TaskRunner
    stages: list[Stage]
    output_tasks: tuple[MapId, ...]
    outputs: dict[int, dict[tuple[int, int], OutputMessage]]
    next_emit: int
    emitted: dict[int, tuple[int, float]]
    done: bool
    batch_id: int
    chain: WatermarkChain
    source_clocks: dict[int, dict[int, Clock]]
    stats: dict[int, BatchStats]
    tasks: dict[int, list[TaskMetrics]]
    state_groups: dict[int, dict[int, int]]
    late_sides: dict[int, dict[int, dict[int, tuple[int, int]]]]  # batch -> worker -> stage -> (left, right)
    retention: dict[int, dict[int, int | None]]
    messages_for: dict[int, float]
    state_hosts: set[int]
    commit: Commit | None
    dead_letters: deque[DeadLetter]
    dead_letter_router: Any
    late_row_router: Any
    changelog: ChangelogBuffer
    changelog_rows: RowFold
    checkpointing: Checkpointing | None
    batch_logs: DriverLogs | None

    # ------------------------------------------------------------ the watermark

    @property
    def watermark(self) -> int | None:
        """The watermark after the last recorded batch."""
        return self.chain.current

    def _take_clocks(self, batch: int) -> dict[int, Clock]:
        return self.source_clocks.pop(batch, {})

    # ------------------------------------------------------------ output

    def _on_outputs(self, message: OutputMessage | OutputBatch) -> None:
        if isinstance(message, OutputBatch):
            if self.batch_logs is not None:
                for entry in message.logged:
                    self.batch_logs.take(entry)
            outputs: tuple[OutputMessage, ...] = message.outputs
        else:
            outputs = (message,)
        for output in outputs:
            if output.batch >= self.next_emit:
                self.outputs[output.batch][(output.stage, output.partition)] = output
        self._emit_ready()

    def _emit_ready(self) -> None:
        """Emit, in batch order, every batch whose output tasks all sent their rows and whose sources' batch
        ends are in the offset logs (a replay must cut it the same way)."""
        while len(self.outputs.get(self.next_emit, ())) == len(self.output_tasks) and (
            self.batch_logs is None or self.batch_logs.covers(self.next_emit)
        ):
            self._emit(self.next_emit, self.outputs.pop(self.next_emit))
            self.next_emit += 1

    def _emit(self, batch: int, parts: dict[tuple[int, int], OutputMessage]) -> None:
        """Hand batch `batch` to the output in (stage, partition) order, as the inline executor does."""
        frames: list[pl.DataFrame] = []
        changed = 0
        for key in sorted(parts):
            message = parts[key]
            if message.upserts is not None:
                upserts = unpack(message.upserts)
                deletes = None if message.deletes is None else unpack(message.deletes)
                self._add_changelog(upserts, deletes)
                changed += upserts.height
            if message.frame is not None:
                frames.append(decode(message.frame))
        rows_out = self.output.emit(batch, frames) + changed if not self.done else 0
        self.emitted[batch] = (rows_out, time.time())
        if self.checkpointing is not None:
            self.checkpointing.batch_written()

    def _add_changelog(self, upserts: Part, deletes: Part | None) -> None:
        """One changelog part, folded by rows when it is small (`changelog_rows`), else by polars."""
        if self.changelog_rows.add(upserts, deletes):
            if self.changelog_rows.full:
                self._rows_to_buffer()
            return
        self._rows_to_buffer()
        if self.changelog.add(as_frame(upserts), as_frame(deletes)):  # type: ignore[arg-type]
            self._flush_changelog()

    def _rows_to_buffer(self) -> None:
        """The parts folded by rows so far become one part of the polars buffer (they came first)."""
        part = self.changelog_rows.take()
        if part is not None and self.changelog.add(*part):
            self._flush_changelog()

    def _flush_changelog(self) -> None:
        self._rows_to_buffer()
        folded = self.changelog.take()
        if folded is not None:
            self.output.apply_changelog(*folded)

    def result(self) -> pl.DataFrame:
        """collect()'s result once the run is over: the appended rows, or the final value of every group."""
        self._flush_changelog()
        assert isinstance(self.output, CollectOutput)  # collect() runs over a CollectOutput (as InlineQuery.result)
        if self.runner.changelog_stage is not None:
            return self.runner.final_changelog(self.output.table, self.graph.graph.get("limit"))
        return self.output.result()

    # ------------------------------------------------------------ progress

    def record(
        self, first: int, last: int, on_batch: OnBatch, group: int, group_size: int, *, checkpoint: bool = True
    ) -> bool:
        """Progress of batches first..last, in order; True when the query is done (input ended or LIMIT).

        With checkpoints, the checkpoint after `last` is committed before its
        progress is reported (not after a cancelled group: `checkpoint=False`).
        """
        for batch in range(first, last + 1):
            if self.done:
                break
            report = self._batch_report(batch, group, group_size)
            self.done = all(c.exhausted for c in self.chain.clocks.values()) or self.output.full
            if self.checkpointing is not None:
                report["recovery_ms"] = self.checkpointing.batch_recorded()
                if checkpoint and (batch == last or self.done):
                    report["checkpoint"] = self._checkpoint(batch, last)
            elif self.output.durable:
                releases, keep = keep_from(self.retention.get(batch, {}), self.state_hosts)
                if releases:
                    self.commit = Commit(batch, keep)
            if on_batch is not None:
                on_batch(report)
        for batch in range(first, last + 1):
            for per_batch in (
                self.stats,
                self.tasks,
                self.state_groups,
                self.late_sides,
                self.retention,
                self.messages_for,
                self.emitted,
            ):
                per_batch.pop(batch, None)
        return self.done

    def _checkpoint(self, batch: int, last: int) -> int | None:
        """Commit the checkpoint of the group ending at `last`, resuming after `batch` (where the input ended,
        or `last`), once the output and dead letters are written; sources may release what it covers.

        With a checkpoint the state no longer needs the sources to keep
        anything they delivered up to here.
        """
        assert self.checkpointing is not None
        if self.next_emit <= batch:  # never happens when every output arrived; then no checkpoint here
            return None
        id = self.checkpointing.commit(
            last,
            next_batch=batch + 1,
            watermark=self.watermark,
            clocks=self.chain.clocks,
            output_rows=self.output.rows_out,
        )
        if id is not None:
            self.commit = Commit(batch, None)
            if self.batch_logs is not None:
                self.batch_logs.committed(batch)
        return id

    @property
    def recoveries(self) -> list[dict[str, Any]]:
        return [] if self.checkpointing is None else self.checkpointing.recoveries

    def restored_info(self) -> dict[str, Any] | None:
        """The checkpoint this run started from (see `Checkpointing.restored_info`), or None."""
        return None if self.checkpointing is None else self.checkpointing.restored_info()

    def _batch_report(self, batch: int, group: int, group_size: int) -> dict[str, Any]:
        stats = self.stats.get(batch, BatchStats())
        step = self.chain.step(batch, self._take_clocks)
        self.batch_id = batch + 1
        self.dead_letters.extend(stats.dead_letters)
        if self.dead_letter_router is not None and stats.dead_letters:
            self.dead_letter_router.write(batch, list(stats.dead_letters))  # after the batch's output, as inline
        if self.late_row_router is not None and stats.facts.routed_late:
            self.late_row_router.write(batch, stats.facts.routed_late)
        tasks = self.tasks.get(batch, [])
        rows_out, emitted_at = self.emitted.get(batch, (0, 0.0))
        started = min((t.started_at for t in tasks), default=emitted_at)
        ended = max([emitted_at] + [t.finished_at for t in tasks])
        stages = stage_metrics(tasks)
        report = batch_report(
            batch_id=batch,
            rows_in=stats.rows_in,
            rows_out=rows_out,
            late_rows=stats.late_rows,
            dead_letters=len(stats.dead_letters),
            watermark=step.current,
            duration_ms=max(0.0, ended - started) * 1000.0,
            latency_ms=max(0.0, (emitted_at or ended) - (stats.pulled_at or started)) * 1000.0,
            state_groups=sum(self.state_groups.get(batch, {}).values()),
            late_sides=sum_sides(self.late_sides.get(batch, {}).values()),
            diagnostics=stats.facts,
            stage_rows={s.id: stats.stage_rows.get(s.id, 0) for s in self.stages},
            shuffled=sorted(stats.shuffled, key=lambda t: (t["stage"], t["task"])),
            reads=[read for _, read in sorted(stats.reads, key=lambda r: r[0])],
            executor=self.executor,
            wall_offsets=[] if stats.wall_offset_ms is None else [stats.wall_offset_ms],
            backlog=stats.backlog,
        )
        report.update(
            {
                "group_id": group,
                "group_size": group_size,
                "driver_messages": self.messages_for.get(batch, 0.0),
                "stages": stages,
                "recoveries": len(self.recoveries),
                "recovery_ms": None,
                "checkpoint": None,
            }
        )
        report.update(batch_totals(stages))
        return report
