"""Refusals every executor makes when a query opens: plans that could never emit, collect() that could never end."""

from __future__ import annotations

from typing import Mapping

import networkx as nx

from executor.query.readers import Reader, is_bounded
from optimizer.physical.interval_join import IntervalJoinOp
from optimizer.physical.stream_join import StreamJoinOp
from optimizer.physical.stages import AggregateOp, Stage, TopNOp, UnmatchedRowsOp
from stream_dsl.errors import PlanError


def check_can_emit(graph: nx.DiGraph, readers: Mapping[int, Reader]) -> None:
    """Refuse a windowed EMIT final over an unbounded stream that has no watermark: it could never emit."""
    for node in graph.nodes:
        stage: Stage = graph.nodes[node]["stage"]
        op = stage.stateful
        upstream = upstream_readers(graph, node, readers)
        unbounded = [r for r in upstream if not is_bounded(r)]
        if isinstance(op, TopNOp) and op.kind == "dedup" and not op.watermarked:
            _check_dedup_can_emit(op, unbounded)
        if isinstance(op, IntervalJoinOp):
            _check_interval_join(op, unbounded)
            continue
        if isinstance(op, StreamJoinOp):
            warn_unbounded_join_state(op, unbounded)
            continue
        if not isinstance(op, AggregateOp) or op.window is None or op.changelog:
            continue
        if unbounded and not any(r.clock.delay_ms is not None for r in upstream):
            name = unbounded[0].scan.source.name
            raise PlanError(
                f"the windowed aggregate over unbounded stream '{name}' emits on window close, but '{name}' "
                f"has no watermark, so no window would ever close; add a WATERMARK clause to the stream "
                f"(e.g. WATERMARK FOR {op.window.time_column} AS {op.window.time_column} - INTERVAL '1' SECOND) "
                f"or use EMIT CHANGES"
            )
        if unbounded and not op.window.watermarked:
            raise PlanError(
                f"the windowed aggregate over {op.window.time_column} emits on window close, but "
                f"{op.window.time_column} is not the watermark column of unbounded stream "
                f"'{unbounded[0].scan.source.name}', so no window would ever close; window over the watermark "
                f"column or use EMIT CHANGES"
            )


def upstream_readers(graph: nx.DiGraph, node: int, readers: Mapping[int, Reader]) -> list[Reader]:
    """The readers of the sources stage `node` reads from, directly or not."""
    return [readers[a] for a in nx.ancestors(graph, node) if a in readers]


def _check_dedup_can_emit(op: TopNOp, unbounded: list[Reader]) -> None:
    """A deduplication decides a key's first row when the watermark passes it: without one, only at the end."""
    if unbounded:
        name = unbounded[0].scan.source.name
        raise PlanError(
            f"the deduplication (ROW_NUMBER() ... = 1) orders by {op.time_column}, which is not the watermark "
            f"column of unbounded stream '{name}', so no key's first row would ever be decided; order by the "
            f"stream's watermark column (add a WATERMARK clause, e.g. WATERMARK FOR {op.time_column} AS "
            f"{op.time_column} - INTERVAL '1' SECOND)"
        )


def _check_interval_join(op: IntervalJoinOp, unbounded: list[Reader]) -> None:
    """Refuse an interval join over unbounded input whose time columns the watermark does not bound: its state
    would grow forever (it drops rows only as the watermark passes their interval)."""
    if not unbounded or op.watermarked:
        return
    left, right = op.bounds.left_time, op.bounds.right_time
    raise PlanError(
        f"the interval join over unbounded stream '{unbounded[0].scan.source.name}' keeps rows until the watermark "
        f"passes their interval, but the watermark does not bound its time columns ({left} and {right}); declare "
        f"a WATERMARK on each joined stream's time column (e.g. WATERMARK FOR {left} AS {left} - INTERVAL '1' "
        f"SECOND) and bound the join by those columns"
    )


def warn_unbounded_join_state(op: StreamJoinOp, unbounded: list[Reader]) -> None:
    """Warn (not refuse, as Flink does not) when a join of two unbounded streams keeps every row for ever."""
    if unbounded and not op.bounded:
        import warnings

        name = unbounded[0].scan.source.name
        warnings.warn(
            f"the join of two streams over unbounded stream '{name}' keeps its rows for ever, so its state grows "
            f"without end; SET state_ttl (e.g. SET state_ttl = '1 hour') and give both streams a WATERMARK, so "
            f"rows older than the TTL behind the watermark are dropped",
            StreamJoinStateWarning,
            stacklevel=2,
        )


class StreamJoinStateWarning(UserWarning):
    """A join of two unbounded streams whose state nothing bounds (no state_ttl, or a side without a watermark)."""


def check_bounded(readers: Mapping[int, Reader], limit: int | None, changelog: bool, ordered: bool = False) -> None:
    """collect() must end: every source bounded, or a LIMIT on appended rows (not after ORDER BY)."""
    if limit is not None and not changelog:
        return
    for reader in readers.values():
        if not is_bounded(reader):
            name = reader.scan.source.name
            why = (
                "ORDER BY needs the whole result, so its LIMIT cannot end the stream; bound the source"
                if ordered
                else "use start() for a continuous query, add a LIMIT, or bound the source"
            )
            raise PlanError(
                f"collect() needs bounded input, but stream '{name}' is unbounded; {why} (e.g. a generator 'count')"
            )


def check_outer_joins(graph: nx.DiGraph, readers: Mapping[int, Reader]) -> None:
    """Refuse a RIGHT or FULL join of an unbounded stream with a table: its unmatched table rows come out at
    the end of input, which never comes (`optimizer/physical/outer_joins.py`)."""
    for node in graph.nodes:
        op = graph.nodes[node]["stage"].stateful
        if not isinstance(op, UnmatchedRowsOp):
            continue
        unbounded = [r for r in upstream_readers(graph, node, readers) if not is_bounded(r)]
        if unbounded:
            name = unbounded[0].scan.source.name
            raise PlanError(
                f"a {op.kind.upper()} JOIN of stream '{name}' with a table emits the table rows no stream row "
                f"matched at the end of input, but '{name}' is unbounded, so they would never come out; "
                f"write it as a LEFT JOIN from the stream (stream LEFT JOIN table) or an inner join, "
                f"or bound the source (e.g. a generator 'count')"
            )
