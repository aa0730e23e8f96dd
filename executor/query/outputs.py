"""Where a query's rows go: a sink (each batch once per batch id), collect()'s result, or a worker's capture.

Every executor hands a batch's rows to one of these, in batch order. A
changelog (a non-windowed aggregate, EMIT CHANGES) reaches collect()'s
output as upserts and deletes, folded into the final table by group key.
A retract output (`retract`, from OutputWrite.retract) hands on frames with
CHANGELOG_OP rows (+1 add, -1 remove), which collect() folds as a multiset
(`retract_rows`).
"""

from __future__ import annotations


import networkx as nx
import polars as pl

from executor import kernels
from executor.query.retract_rows import RetractTable
from executor.query.sink_modes import sink_records
from executor.state.rows import RowsPart
from stream_dsl.connectors.base import Sink, next_batch_id
from stream_dsl.errors import DSLError, ExecutionError, PlanError
from stream_dsl.ir.column_names import CHANGELOG_OP
from stream_dsl.ir.plan import SortKey
from stream_dsl.ir.types import Schema


class QueryOutput:
    """Where a query's result goes; `rows_out` counts rows handed on."""

    changelog_collects = False  # whether changelog emissions arrive before post-operators (collect())
    takes_rows = False  # whether apply_changelog takes a RowsPart for upserts (`executor.state.rows`)
    durable = False  # whether emitted rows are written somewhere lasting (then sources may commit)

    def __init__(self, schema: Schema, limit: int | None) -> None:
        self.schema = schema
        self.limit = limit
        self.rows_out = 0
        self.group_keys: list[str] = []  # a changelog's group columns, set by the query
        self.order: tuple[SortKey, ...] = ()  # ORDER BY: a result sorted whole, a continuous query's batches each
        self.order_limit: int | None = None  # LIMIT after ORDER BY: the sorted result's first rows
        self.retract = False  # rows come with CHANGELOG_OP (+1/-1), set by the query (OutputWrite.retract)

    def ordered(self, graph: nx.DiGraph) -> "QueryOutput":
        """Take the lowered query's ORDER BY (and the LIMIT that follows it); returns self."""
        self.order, self.order_limit = tuple(graph.graph.get("order", ())), graph.graph.get("order_limit")
        return self

    @property
    def full(self) -> bool:  # a retract stream's later rows may remove earlier ones: its LIMIT cuts the result
        return self.limit is not None and self.rows_out >= self.limit and not self.retract

    def _take(self, frame: pl.DataFrame) -> pl.DataFrame:
        if self.retract:  # the operations ride along; LIMIT applies to the folded result
            ops = frame.get_column(CHANGELOG_OP) if CHANGELOG_OP in frame.columns else None
            frame = kernels.conform(frame, self.schema)
            frame = frame if ops is None else frame.with_columns(ops.cast(pl.Int8))
            self.rows_out += frame.height
            return frame
        frame = kernels.conform(frame, self.schema)
        if self.limit is not None:
            frame = frame.head(max(self.limit - self.rows_out, 0))
        self.rows_out += frame.height
        return frame

    def emit(self, batch_id: int, frames: list[pl.DataFrame]) -> int:
        raise NotImplementedError

    def apply_changelog(self, upserts: pl.DataFrame, deletes: pl.DataFrame | None) -> None:
        raise NotImplementedError


class SinkOutput(QueryOutput):
    """Each batch's rows (appended rows, or a changelog's changed groups) written once per batch id."""

    durable = True

    def __init__(self, schema: Schema, limit: int | None, sink: Sink) -> None:
        super().__init__(schema, limit)
        self.sink = sink
        self.upsert_keys: list[str] | None = None  # a changelog to an upsert sink: its key columns (`sink_modes`)

    def first_batch_id(self) -> int:
        """Where a new run's batch ids start: after the sink's last committed batch."""
        return next_batch_id(self.sink)

    def emit(self, batch_id: int, frames: list[pl.DataFrame]) -> int:
        frames = [f for f in frames if f.height]
        if not frames:
            return 0
        frame = pl.concat(frames, how="diagonal_relaxed")
        if CHANGELOG_OP in frame.columns:  # a changelog's upserts and deletes for an upsert sink (`sink_modes`)
            frame = sink_records(
                frame, self._take, self.schema, lambda f: kernels.sort_rows(f, self.order), retract=self.retract
            )
        else:
            frame = kernels.sort_rows(self._take(frame), self.order)
        if frame.height:
            try:
                self.sink.write(batch_id, frame)
            except DSLError:
                raise
            except Exception as exc:
                raise ExecutionError(f"Output to sink {type(self.sink).__name__}: {kernels.error_text(exc)}") from exc
        return frame.height


class CollectOutput(QueryOutput):
    """Accumulates the result for collect(): appended rows, or the final value per changelog group."""

    changelog_collects = True

    def __init__(self, schema: Schema, limit: int | None) -> None:
        super().__init__(schema, limit)
        self.frames: list[pl.DataFrame] = []
        self.table: pl.DataFrame | None = None
        self.retracted = RetractTable()  # a retract output's rows, folded as they come

    def emit(self, batch_id: int, frames: list[pl.DataFrame]) -> int:
        taken = [self._take(f) for f in frames if f.height]
        if self.retract:
            for frame in taken:
                self.retracted.add(frame)
        else:
            self.frames += [f for f in taken if f.height]
        return sum(f.height for f in taken)

    def apply_changelog(self, upserts: pl.DataFrame, deletes: pl.DataFrame | None) -> None:
        keys = self.group_keys
        table = self.table
        if deletes is not None and deletes.height and table is not None:
            table = _anti(table, deletes, keys)
        if upserts.height:
            table = (
                upserts if table is None else pl.concat([_anti(table, upserts, keys), upserts], how="diagonal_relaxed")
            )
        self.table = table

    def result(self) -> pl.DataFrame:
        if self.retract:  # the rows whose operations sum to a positive count
            rows = self.retracted.rows()
            if rows is None:
                return kernels.empty_frame(self.schema)
            result = kernels.sort_rows(kernels.conform(rows, self.schema), self.order, self.order_limit)
            return result if self.limit is None else result.head(self.limit)
        if not self.frames:
            return kernels.empty_frame(self.schema)
        result = kernels.conform(pl.concat(self.frames, how="diagonal_relaxed"), self.schema)
        return kernels.sort_rows(result, self.order, self.order_limit)


def _anti(table: pl.DataFrame, other: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    if not keys:
        return table.clear()
    return table.join(other.select(keys).unique(), on=keys, how="anti", nulls_equal=True)


class CapturedOutput(QueryOutput):
    """Stands in for the query output inside a worker: keeps a changelog step's upserts and deletes.

    Takes upserts as rows: the worker sends small parts to the driver as rows (`changelog_rows.pack`).
    """

    takes_rows = True

    def __init__(self, collects: bool) -> None:
        super().__init__(schema=None, limit=None)  # type: ignore[arg-type]
        self.changelog_collects = collects
        self.captured: tuple[pl.DataFrame | RowsPart, pl.DataFrame | None] | None = None

    def apply_changelog(self, upserts: pl.DataFrame | RowsPart, deletes: pl.DataFrame | None) -> None:
        self.captured = (upserts, deletes)


def check_sorted_output(output: QueryOutput) -> None:
    """A continuous query sorts each batch; ORDER BY ... LIMIT would need the whole unbounded result."""
    if output.durable and output.order_limit is not None:
        raise PlanError(
            "ORDER BY with LIMIT needs the whole result: run it with collect() over bounded input "
            "(a continuous query sorts each micro-batch's rows, and a LIMIT without ORDER BY "
            "ends it after that many rows)"
        )
