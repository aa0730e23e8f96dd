"""Merge a map task's partial rows per final group before the shuffle, when a join made its groups coarser.

A split aggregate pre-aggregates each map task's rows (`PartialAggregateOp`)
and the reduce task merges the partial rows per group. When the map
pre-aggregates on finer keys than the final aggregate groups on (YSB: per
ad before the join with the campaigns table, per campaign after it), every
reduce task merged about 1,000 partial rows per map task and batch into
100 groups: a fixed cost per reduce partition that a second worker pays
again (docs/performance.md, "What a second worker buys"). Here the map task
merges its partial rows per final group inside its own polars query (one
more node, no more queries), with the very expressions the reduce merges
them with (`merge_partials`), so the reduce task and the shuffle get one
row per group and window instead.

Exact by construction: merging is associative and the merged rows keep
their group and window, so the reduce's result, its late-row count (the
PARTIAL_ROWS of a closed window, summed) and every emitted row are those
of merging the uncombined rows. Only where that holds is a pipeline
combined: a final AggregateOp fed by nothing but the exchange, with no
late-row sink, no COUNT(DISTINCT), no aggregate UDF or list state, and no
integer SUM (a combined partial sum could overflow BIGINT where the reduce's
total would not).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Mapping, Sequence

import polars as pl

from executor import kernels
from executor.state.aggregate_exprs import merge_partials
from executor.state.step import collect
from optimizer.physical.stages import AggregateOp, PartialAggregateOp, ReadOp, ShuffleWrite, Stage
from stream_dsl.ir.aggregates_more import is_more
from stream_dsl.ir.column_names import PARTIAL_ROWS
from stream_dsl.ir.partial_state import sum_type
from stream_dsl.ir.types import DataType

_MERGEABLE = ("count", "sum", "avg", "min", "max")


@dataclass(frozen=True)
class CombinedPipeline(kernels.Pipeline):
    """A map stage's pipeline whose output is merged per `groups` (then partitioned, as before)."""

    groups: tuple[str, ...] = ()
    final: AggregateOp | None = None
    columns: tuple[str, ...] = ()  # the output's columns in the exchange's order

    @functools.cached_property
    def _merge(self) -> list[pl.Expr]:
        assert self.final is not None  # set by `combined`
        return merge_partials(self.final.aggs)

    merges = True

    def finish(self, lf: pl.LazyFrame, partition: bool) -> pl.LazyFrame:
        lf = self._merged(lf)
        return lf.with_columns(self._partition) if partition else lf

    def counted_by_operator(
        self, frame: pl.DataFrame, tables: kernels.Tables, partition: bool
    ) -> tuple[dict[int, pl.DataFrame], list[int]]:
        """The operators one at a time (their rows counted, for `why`), then the merge: a sampled batch sends what
        the others do (a reduce state that sees more rows than fit its Python dict moves to polars for good)."""
        parts, rows = super().counted_by_operator(frame, tables, partition=False)
        return self.as_parts(collect(self._merged(parts[0].lazy()), parts[0].height), partition), rows

    def _merged(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        carried = [] if self.carry is None else [self.carry]
        return lf.group_by([*self.groups, *carried]).agg(self._merge).select([*self.columns, *carried])

    def _collect_serially(self, frame: pl.DataFrame, tables: kernels.Tables, partition: bool) -> pl.DataFrame | None:
        return None  # the merge runs in the one query, whatever the input's size

    def _over(
        self, lf: pl.LazyFrame, steps: tuple[kernels.Step, ...], tables: kernels.Tables, partition: bool
    ) -> pl.LazyFrame:
        for step in steps:
            lf = step(lf, tables)
        return self.finish(lf, partition)


def combinable(map_stage: Stage, stages: Mapping[int, Stage]) -> tuple[AggregateOp, tuple[str, ...]] | None:
    """The final aggregate `map_stage` shuffles its partial rows to, and the exchange's columns, if the rows may
    be merged before the shuffle."""
    terminal = map_stage.terminal
    if map_stage.stateful is not None or not isinstance(terminal, ShuffleWrite):
        return None
    partials = [op for op in map_stage.operators if isinstance(op, PartialAggregateOp)]
    reduce = stages.get(terminal.target)
    if len(partials) != 1 or reduce is None or len(reduce.operators) != 1:
        return None
    final, read = reduce.stateful, reduce.head
    if type(final) is not AggregateOp or not final.final or final.late_sink is not None:
        return None
    if not isinstance(read, ReadOp) or partials[0].distinct or partials[0].group_columns == final.group_keys:
        return None  # nothing to merge: the map already grouped on the final keys
    if not all(_mergeable(a.func, a.dtype, a.arg_dtype, a.distinct, a.udf) for a in final.aggs):
        return None
    state = [name for i, a in enumerate(final.aggs) for name in a.state_columns(i)]
    if set(read.schema.names) != {*final.group_keys, PARTIAL_ROWS, *state}:
        return None
    return final, tuple(read.schema.names)


def _mergeable(func: str, dtype: DataType, arg_dtype: DataType | None, distinct: bool, udf: object) -> bool:
    if func not in _MERGEABLE or distinct or udf is not None or is_more(func):
        return False
    return func not in ("sum", "avg") or sum_type(func, dtype, arg_dtype) is DataType.DOUBLE


def combined(stages: Sequence[Stage], pipes: dict[int, kernels.Pipeline]) -> dict[int, kernels.Pipeline]:
    """`pipes` with the map stages' pipelines that may merge their partial rows (`combinable`) doing so."""
    by_id = {s.id: s for s in stages}
    out = dict(pipes)
    for stage in stages:
        found = combinable(stage, by_id)
        pipe = pipes.get(stage.id)
        if found is None or pipe is None or type(pipe) is not kernels.Pipeline:
            continue
        final, columns = found
        out[stage.id] = CombinedPipeline(
            pipe.ops,
            pipe.steps,
            pipe.partition_keys,
            pipe.partitions,
            pipe.where,
            groups=final.group_keys,
            final=final,
            columns=columns,
        )
    return out
