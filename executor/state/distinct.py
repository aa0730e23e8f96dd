"""The state of a DISTINCT: every row seen so far, so a row is emitted the first time only."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from executor.state.step import StepOutput, join_keys
from optimizer.physical.stages import DistinctOp


@dataclass
class DistinctState:
    """Every row seen so far by one partition of a DISTINCT."""

    op: DistinctOp
    seen: pl.DataFrame | None = field(default=None)

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        fresh = rows.unique(maintain_order=True)
        if self.seen is not None and fresh.height:
            fresh = join_keys(fresh, self.seen, list(self.op.columns), "anti")
        if fresh.height:
            self.seen = fresh if self.seen is None else pl.concat([self.seen, fresh], how="diagonal_relaxed")
        return StepOutput(fresh)
