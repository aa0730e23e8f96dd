"""Writing routed late rows (`stream_dsl/ir/late_rows.py`) to their sink, once per batch.

The executors collect a batch's late rows from its aggregate tasks (in any
order across partitions); the router sorts them, so a batch written again
after a recovery is the same frame, and writes them under the batch id,
after the batch's output, as dead letters are.
"""

from __future__ import annotations

from typing import Any, Sequence

import networkx as nx
import polars as pl

from stream_dsl.connectors.base import Sink
from stream_dsl.errors import ConnectorError, did_you_mean
from stream_dsl.ir.late_rows import BATCH_COLUMN


class LateRowRouter:
    """One sink for a query's late rows."""

    def __init__(self, name: str, sink: Sink) -> None:
        self.name = name
        self.sink = sink

    def write(self, batch_id: int, frames: Sequence[pl.DataFrame]) -> None:
        rows = pl.concat(list(frames), how="vertical_relaxed") if len(frames) > 1 else frames[0]
        if not rows.height:
            return
        rows = rows.sort(rows.columns, nulls_last=True).with_columns(
            pl.lit(batch_id, dtype=pl.Int64).alias(BATCH_COLUMN)
        )
        self.sink.write(batch_id, rows)

    def close(self) -> None:
        self.sink.close()


def late_row_router(graph: nx.DiGraph, catalog: Any) -> LateRowRouter | None:
    """The router for the aggregates of a stage graph that route late rows (None: none does)."""
    from optimizer.physical.lower import stage_order
    from optimizer.physical.stages import AggregateOp
    from stream_dsl.connectors import open_sink

    names = {s.stateful.late_sink for s in stage_order(graph) if isinstance(s.stateful, AggregateOp)} - {None}
    if not names:
        return None
    name = sorted(n for n in names if n is not None)[0]
    sinks = dict(getattr(catalog, "sinks", {}) or {}) if catalog is not None else {}
    by_lower = {n.lower(): n for n in sinks}
    if name.lower() not in by_lower:
        raise ConnectorError(f"late_rows '{name}' is not a sink in the catalog{did_you_mean(name, list(sinks))}")
    return LateRowRouter(name, open_sink(sinks[by_lower[name.lower()]]))
