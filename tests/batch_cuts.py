"""Bounded data cut into micro-batches, the way the differential tests feed a memory source."""

from __future__ import annotations

from typing import Iterable

import polars as pl

import stream_dsl as sd
from executor.api import collect
from stream_dsl.config import RunConfig


def cut_into_batches(frame: pl.DataFrame, cuts: Iterable[int]) -> list[pl.DataFrame]:
    """`frame` as consecutive batches that end at the row positions `cuts` (ascending, none past the frame's
    height) and at its last row; a position given twice makes an empty batch, as a source may read one."""
    bounds = [0, *cuts, frame.height]
    return [frame.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]


def collected_over_batches(
    sql: str, frame: pl.DataFrame, cuts: Iterable[int], executor: str, workers: int, optimize: bool
) -> tuple[list[tuple], list[str]]:
    """`sql` over `frame` read as a memory stream `s` cut at `cuts`, collected by `executor`: its rows and its
    columns' type names (the differential properties against DuckDB)."""
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(cut_into_batches(frame, cuts), name="s")
    plan = ctx.sql(sql).plan
    result = collect(plan, RunConfig(workers=workers, executor=executor, optimize=optimize))
    return result.rows(), [f.dtype.value for f in plan.schema]
