"""What a source may release, and when: after a batch's output is written, its dead letters, then commits.

The order per batch (every executor): the sink write, then the batch's dead
letters to their targets, then `commit_source(source, offset, keep_from_ms)`
for every source, so a record is released (a Redis entry acknowledged) only
once everything it produced is durable.

Sources replay what they did not release, so without a state checkpoint a
restarted query rebuilds its operator state from those records. Which ones
operator state still needs is `retention_ms`: the earliest event time an
open window holds (a row older than every open window's start belongs only
to windows that were emitted). State that never expires (a non-windowed
aggregate, DISTINCT, a top-N or deduplication holding rows or keys) needs
everything, and so does a window over a column other than the sources'
watermark column (we could not tell which records it holds).

On restart, the query resumes from the watermark the previous run
committed (see `executor/query/watermarks.py` and `restart.py`), so
windows already emitted are not emitted again; `base.next_batch_id`
continues the batch ids after the sink's last committed batch. With a
checkpoint, the checkpoint's watermark and batch id take precedence.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, cast

import networkx as nx

from executor.state.distinct import DistinctState
from executor.state.interval_join import IntervalJoinState
from executor.state.stream_join import StreamJoinState
from executor.state.operators import AggregateState
from executor.state.top_n import TopNState
from stream_dsl.ir.column_names import WINDOW_START
from optimizer.physical.stages import ScanOp
from stream_dsl.connectors.base import KEEP_ALL, commit_source
from stream_dsl.connectors.dead_letters import DeadLetterRouter, open_dead_letters
from stream_dsl.ir.definitions import SourceDef

WS = WINDOW_START


def _state_start_ms(state: Any, watermark_columns: set[str]) -> int | None:
    """The earliest event time one operator state still holds rows from (KEEP_ALL: all of them)."""
    if isinstance(state, DistinctState):
        return None if state.seen is None or not state.seen.height else KEEP_ALL
    if isinstance(state, TopNState):  # waiting rows or remembered keys: rebuilt only from every record
        return None if not state.open_groups else KEEP_ALL
    if isinstance(state, IntervalJoinState):
        return state.earliest_ms() if state.op.watermarked else (KEEP_ALL if state.open_groups else None)
    if isinstance(state, StreamJoinState):
        return state.retention_ms(KEEP_ALL)
    if not isinstance(state, AggregateState):
        return KEEP_ALL
    if not state.open_groups:  # not `state.state`: a state in a Python dict would build a frame per batch
        return None
    window = state.op.window
    if window is None or window.time_column not in watermark_columns:
        return KEEP_ALL
    if state.small is not None:
        value = state.small.earliest_window_start()
    else:
        frame = state.state
        if frame is None or WS not in frame.columns:
            return KEEP_ALL
        value = cast("int | None", frame.get_column(WS).min())  # WS holds Int64 window starts
    return KEEP_ALL if value is None else int(value)


def retention_ms(states: Iterable[Any], watermark_columns: set[str]) -> int | None:
    """Event time from which rows may still be needed by operator state; None when no state holds rows."""
    horizon: int | None = None
    for state in states:
        start = _state_start_ms(state, watermark_columns)
        if start is not None:
            horizon = start if horizon is None else min(horizon, start)
    return horizon


def commit_sources(readers: Iterable[Any], keep_from_ms: int | None) -> None:
    """Commit every reader's source at its current offset (readers: `query.readers.Reader`)."""
    for reader in readers:
        commit_source(reader.source, reader.offset, keep_from_ms)


def keep_from(retentions: Mapping[int, int | None], holders: Iterable[int]) -> tuple[bool, int | None]:
    """Whether a batch's sources may release what they read, and from which event time they must keep records.

    `retentions`: `retention_ms` after the batch, from each process that
    reported one; `holders`: every process that hosts operator state. A
    holder that did not report (its tasks of the batch never ran: a stop in
    the middle of a group) may hold rows of open windows, so then nothing
    is released: (False, None). Otherwise (True, the earliest event time any
    state still needs, None when no state holds rows).
    """
    if any(h not in retentions for h in holders):
        return False, None
    kept = [ms for ms in retentions.values() if ms is not None]
    return True, (min(kept) if kept else None)


def scan_sources(graph: nx.DiGraph) -> list[SourceDef]:
    """The sources a stage DAG reads, each once, in stage order."""
    found: dict[str, SourceDef] = {}
    for node in sorted(graph.nodes):
        head = graph.nodes[node]["stage"].head
        if isinstance(head, ScanOp):
            found.setdefault(head.source.name, head.source)
    return list(found.values())


def dead_letter_router(
    graph: nx.DiGraph,
    *,
    catalog: Any = None,
    checkpoint_dir: str | None = None,
    sink: Any = None,
    query_name: str | None = None,
    use_default: bool = True,
) -> DeadLetterRouter:
    """Where the bad records of a query's sources go (see `connectors/dead_letters.py`)."""
    return open_dead_letters(
        scan_sources(graph),
        catalog=catalog,
        checkpoint_dir=checkpoint_dir,
        sink=sink,
        query_name=query_name,
        use_default=use_default,
    )
