"""Bounded data cut into micro-batches, the way the differential tests feed a memory source."""

from __future__ import annotations

from typing import Iterable

import polars as pl


def cut_into_batches(frame: pl.DataFrame, cuts: Iterable[int]) -> list[pl.DataFrame]:
    """`frame` as consecutive batches that end at the row positions `cuts` (ascending, none past the frame's
    height) and at its last row; a position given twice makes an empty batch, as a source may read one."""
    bounds = [0, *cuts, frame.height]
    return [frame.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]
