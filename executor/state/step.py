"""What every stateful step shares: `collect` (how one polars query runs; `collect_all` for several at once),
`join_keys`, and `StepOutput`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from executor.state.rows import RowsPart

# polars 2's default engine ('auto': streaming) costs 50-100 us more per small query
ENGINE: Literal["in-memory"] = "in-memory"
SMALL_ROWS = 50_000  # a query over fewer input rows than this skips polars' optimizer (see `collect`)
_LEAN = pl.QueryOptFlags.none(simplify_expression=True)


def collect(lf: pl.LazyFrame, rows: int = 0) -> pl.DataFrame:
    """Run one lazy query of the executor, on `ENGINE`, over about `rows` input rows.

    Below SMALL_ROWS the query runs without polars' plan optimizations
    (the flags polars uses for eager DataFrame methods): the plans are
    already lean (the stream-dsl optimizer pushed filters and pruned
    columns), the input is an in-memory frame, and on a micro-batch the
    optimizer passes (common subexpressions above all) cost more than the
    work; measured on 50-row batches, 20 to 40% of the query. A plan that
    fails so runs again with the optimizer, whose result is the reference.
    """
    if rows < SMALL_ROWS:
        try:
            return lf.collect(engine=ENGINE, optimizations=_LEAN)
        except pl.exceptions.PolarsError:
            pass  # some plans run only optimized (polars 2.1 broadcasts a constant holding a UDF only via CSE)
    return lf.collect(engine=ENGINE)


def collect_all(queries: list[pl.LazyFrame], lean: bool) -> list[pl.DataFrame]:
    """`collect` for several queries in one `pl.collect_all` (they share their common sub-plans): without
    polars' plan optimizations when `lean` (a small input), with them when a lean plan fails or not `lean`."""
    if lean:
        try:
            return pl.collect_all(queries, engine=ENGINE, optimizations=_LEAN)
        except pl.exceptions.PolarsError:
            pass  # as `collect`: some plans run only optimized
    return pl.collect_all(queries, engine=ENGINE)


@dataclass
class StepOutput:
    """What a stateful operator emits for one batch: rows, deleted group keys (changelogs), late rows.

    `frame` is a RowsPart only from an aggregate whose `emits_rows` is set.
    """

    frame: pl.DataFrame | RowsPart
    deletes: pl.DataFrame | None = None
    late: int = 0


def join_keys(
    left: pl.DataFrame, right: pl.DataFrame, on: list[str], how: Literal["inner", "left", "semi", "anti"]
) -> pl.DataFrame:
    """`left.join(right, on=on, how=how)` with NULL = NULL and NaN = NaN, as group keys compare.

    Lazily: polars' eager join of a one-row frame on one float key matches
    no NaN (polars 2.1), so a group whose key is NaN lost its COUNT(DISTINCT).
    """
    return left.lazy().join(right.lazy(), on=on, how=how, nulls_equal=True).collect()
