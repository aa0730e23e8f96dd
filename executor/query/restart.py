"""Where a query starts: from its newest good checkpoint, or after what its sink and sources already hold.

Every executor opens a query through `open_query`, which decides once:

- with a checkpoint directory (a continuous query with a durable output),
  the newest good checkpoint: its operator states, source offsets, clocks,
  watermark and next batch id (`executor/recovery.py`);
- without one, a restarted query continues its batch ids after the sink's
  last committed batch, and resumes from the watermark its sources
  committed (`Source.restored_max_event_ms`; the chain in
  `watermarks.py` applies it), so the windows the previous run emitted
  are not emitted again; sources that read from the start again cannot,
  and a warning says so (`warn_of_a_start_over`).

It also reads the broadcast tables once and refuses queries that could
never emit or, for collect(), never end (`checks.py`), with the sources
opened where the executor reads them from the checkpointed offsets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import networkx as nx
import polars as pl

from executor import kernels
from executor.query.checks import check_bounded, check_can_emit, check_outer_joins
from executor.query.outputs import QueryOutput
from executor.query.readers import Reader, open_reader
from executor.query.tasks import TaskRunner, changelog_stage
from executor.query.watermarks import WatermarkChain
from executor.multiproc.messages import Restore
from executor.recovery.checkpointing import Checkpointing, RestorePoint, load_states
from optimizer.physical.lower import stage_order
from optimizer.physical.stages import broadcast_tables
from stream_dsl.config import RunConfig
from stream_dsl.connectors.base import replays_from_start, restored_max_event_ms
from stream_dsl.observe.log import QUERY, event

TableReader = Callable[[Any, RunConfig], pl.DataFrame]  # (a table's plan, config) -> its rows


@dataclass
class QueryStart:
    """What an executor starts a query from (see the module doc)."""

    tables: dict[str, pl.DataFrame]
    first_batch: int = 0
    checkpointing: Checkpointing | None = None  # with a checkpoint directory
    restore: RestorePoint | None = None  # the newest good checkpoint, if any
    restored: dict[int, int] = field(default_factory=dict)  # source stage -> newest event time it committed
    readers: dict[int, Reader] = field(default_factory=dict)  # every source, opened where the query starts


def read_tables(graph: nx.DiGraph, config: RunConfig, read: TableReader) -> dict[str, pl.DataFrame]:
    """The broadcast join tables, each read once (by `read`: the inline executor's collect)."""
    tables: dict[str, pl.DataFrame] = {}
    for stage in stage_order(graph):
        for op in broadcast_tables(stage):
            if op.table_id not in tables:
                tables[op.table_id] = kernels.prepare_table(op, read(op.table, config.with_options(workers=1)))
    return tables


def open_checkpoints(
    checkpoint_dir: str | None, graph: nx.DiGraph, output: QueryOutput
) -> tuple[Checkpointing | None, RestorePoint | None]:
    """With a checkpoint directory and a durable output: lock it; the newest good checkpoint's RestorePoint."""
    if checkpoint_dir is None or not output.durable:
        return None, None
    checkpointing = Checkpointing.for_graph(checkpoint_dir, graph)
    checkpoint = checkpointing.open()
    return checkpointing, None if checkpoint is None else RestorePoint.of(checkpoint)


def open_readers(graph: nx.DiGraph, *, realtime: bool, restore: RestorePoint | None) -> dict[int, Reader]:
    """Every source stage's reader, at the checkpointed offsets when there is a checkpoint."""
    readers: dict[int, Reader] = {}
    try:
        for stage in stage_order(graph):
            if stage.is_source:
                readers[stage.id] = open_reader(stage, realtime=realtime, restore=restore)
    except BaseException:
        close_readers(readers)
        raise
    return readers


def close_readers(readers: dict[int, Reader]) -> None:
    for reader in readers.values():
        reader.close()


def open_query(
    graph: nx.DiGraph,
    config: RunConfig,
    output: QueryOutput,
    read_table: TableReader,
    *,
    realtime: bool,
    bounded: bool = False,
) -> QueryStart:
    """Tables, checkpoints and the start point of a query, with its sources opened and checked.

    `bounded`: collect(), which must end. The readers stay open: the inline
    executor reads from them; a multiprocess driver closes them again (its
    workers open their own).
    """
    start = QueryStart(read_tables(graph, config, read_table))
    start.checkpointing, start.restore = open_checkpoints(config.checkpoint_dir, graph, output)
    try:
        start.readers = open_readers(graph, realtime=realtime, restore=start.restore)
        check_can_emit(graph, start.readers)
        check_outer_joins(graph, start.readers)
        if bounded:
            changelog = changelog_stage(stage_order(graph)) is not None
            check_bounded(start.readers, graph.graph.get("limit"), changelog, bool(output.order))
        if start.restore is not None:
            start.first_batch = start.restore.next_batch
        elif output.durable:
            start.first_batch = first_batch_id(output)
            if start.first_batch:
                warn_of_a_start_over(start.readers, start.first_batch, sink_name(output))
            start.restored = {
                stage: ms
                for stage, reader in start.readers.items()
                if (ms := restored_max_event_ms(reader.source)) is not None
            }
    except BaseException:
        close_readers(start.readers)
        if start.checkpointing is not None:
            start.checkpointing.close()
        raise
    return start


def warn_of_a_start_over(readers: dict[int, Reader], first_batch: int, sink: str | None = None) -> None:
    """A sink that holds an earlier run's batches, fed again without a checkpoint by sources that read from the
    start: that run's rows may be written a second time. Allowed (a run over new input appends after the last
    one), but never silent: one warning names the streams and how to resume instead."""
    names = sorted({r.scan.source.name for r in readers.values() if replays_from_start(r.source)})
    if not names:
        return
    streams = ", ".join(f"'{name}'" for name in names)
    event(
        QUERY,
        logging.WARNING,
        f"{'the sink' if sink is None else f'sink {sink!r}'} holds batches up to {first_batch - 1} from an earlier "
        "run, and without a checkpoint "
        f"stream{'s' if len(names) > 1 else ''} {streams} {'are' if len(names) > 1 else 'is'} read from the "
        "start again: rows that run wrote may be written again. A checkpoint directory (checkpoint_dir, "
        "SET checkpoint_dir) makes a restart resume where the last run stopped.",
        first_batch=first_batch,
        streams=names,
        sink=sink,
    )


def sink_name(output: QueryOutput) -> str | None:
    """The name of the sink a query writes to, as its CREATE SINK gave it (None: a function or a test's sink)."""
    definition = getattr(getattr(output, "sink", None), "definition", None)
    name = getattr(definition, "name", None)
    return name if isinstance(name, str) else None


def restore_from(point: Restore, runner: TaskRunner, chain: WatermarkChain) -> None:
    """Start from a checkpoint (`RestorePoint.for_worker`, or `whole` in one process): the states of the
    partitions this process hosts, and the watermark chain as it was after the checkpoint's last batch."""
    stateful = {stage.id: stage.stateful for stage in runner.stages}
    runner.states.update(load_states(point.data, point.partitions, stateful))
    chain.restore(point.clocks, point.next_batch, point.watermark)


def idle_pause(config: RunConfig, paced: bool) -> None:
    """A continuous query whose sources had nothing: unpaced ones wait a little before the next batch
    (paced ones wait for the wall clock themselves)."""
    if not paced:
        time.sleep(min(config.batch_interval_ms, 100) / 1000.0)


def first_batch_id(output: QueryOutput) -> int:
    """A restarted query's first batch id: after the last one its sink committed (0 for a new sink)."""
    first = getattr(output, "first_batch_id", None)
    return first() if callable(first) else 0
