"""The state of a RIGHT or FULL join's second half: which table rows some stream row matched.

Input per batch: the TABLE_ROW numbers of the table rows the batch's stream rows matched. At the end of
input (the watermark reaches +inf) the table rows never matched come out once, with NULLs for the stream
side (`optimizer/physical/outer_joins.py` has the semantics and the design). The state is the set of
matched numbers, at most one per table row, and whether the end was already emitted; the table itself is
the query's broadcast table, which the task runner hands over (`table`), and is not part of a snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from executor.state.clocks import WM_INF
from executor.state.step import StepOutput
from optimizer.physical.stages import TABLE_ROW, UnmatchedRowsOp
from stream_dsl.ir.column_names import join_table_col


@dataclass
class UnmatchedState:
    """The matched table rows of one RIGHT or FULL join (it has one partition)."""

    op: UnmatchedRowsOp
    matched: pl.DataFrame | None = None  # one column, TABLE_ROW, each number once
    emitted: bool = False
    table: pl.DataFrame | None = field(default=None, repr=False)  # the prepared broadcast table

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        if rows.height:
            ids = rows.select(pl.col(TABLE_ROW).cast(pl.Int64))
            both = ids if self.matched is None else pl.concat([self.matched, ids])
            self.matched = both.unique(maintain_order=True)
        if self.emitted or wm_new is None or wm_new < WM_INF:
            return StepOutput(pl.DataFrame(schema=self.op.schema.to_polars()))
        self.emitted = True
        return StepOutput(self._unmatched())

    def _unmatched(self) -> pl.DataFrame:
        if self.table is None:
            raise RuntimeError(f"{self.op.describe()}: the broadcast table {self.op.table_id} was not handed over")
        rows = self.table
        if self.matched is not None and self.matched.height:
            numbers = join_table_col(TABLE_ROW)
            rows = rows.filter(~pl.col(numbers).is_in(self.matched.get_column(TABLE_ROW).implode()))
        dtypes = self.op.schema.to_polars()
        columns = [
            pl.lit(None, dtype=dtypes[name]).alias(name)
            if side == "stream"
            else pl.col(join_table_col(column)).cast(dtypes[name]).alias(name)
            for side, column, name in self.op.output
        ]
        # with_columns: NULLs alone (no table column kept) still get one row per table row, as select would not
        return rows.with_columns(columns).select([name for _, _, name in self.op.output])
