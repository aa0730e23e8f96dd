"""The small-frame paths of `executor/kernels.py` give what the one-query paths give.

Small micro-batches skip polars' thread pool: a projection runs one
expression per query (`select_serially`) and a partitioned frame is split
by masks, column by column (`split_partitions`). The differential suite
checks both paths against DuckDB (tests/test_differential.py); here they
are compared with polars' own one-query answers on random frames,
including the cases where the serial path must decline.
"""

from __future__ import annotations

from unittest import mock

import polars as pl
from hypothesis import given, settings, strategies as st

from executor import kernels
from executor.kernels import CopiedColumn, select_serially, split_partitions
from optimizer.physical.stages import PARTITION_COLUMN
from budget import examples


@st.composite
def frames(draw, partitions: int | None = None):
    n = draw(st.integers(0, 60))
    columns = {
        "i": draw(st.lists(st.one_of(st.none(), st.integers(-(2**40), 2**40)), min_size=n, max_size=n)),
        "s": draw(st.lists(st.one_of(st.none(), st.text(alphabet="ab", max_size=2)), min_size=n, max_size=n)),
    }
    schema = {"i": pl.Int64, "s": pl.String}
    if partitions is not None:
        columns[PARTITION_COLUMN] = draw(st.lists(st.integers(0, partitions - 1), min_size=n, max_size=n))
        schema[PARTITION_COLUMN] = pl.UInt32
    return pl.DataFrame(columns, schema=schema)


@settings(max_examples=examples(100), deadline=None)
@given(frames(partitions=5), st.sampled_from(["i", "s"]))
def test_splitting_by_masks_gives_partition_by_parts_in_row_order(frame, first):
    frame = frame.select(first, pl.exclude(first))  # the partition column anywhere but first
    by_masks = split_partitions(frame)
    with mock.patch.object(kernels, "SPLIT_BY_MASKS", 0):
        by_partition_by = split_partitions(frame)
    assert by_masks.keys() == by_partition_by.keys()
    for k, part in by_partition_by.items():
        assert by_masks[k].equals(part)
        assert by_masks[k].columns == [c for c in frame.columns if c != PARTITION_COLUMN]
    assert sum(p.height for p in by_masks.values()) == frame.height


@settings(max_examples=examples(100), deadline=None)
@given(frames())
def test_a_serial_projection_is_the_one_query_projection(frame):
    exprs = [
        pl.col("s").alias("key"),
        (pl.col("i") % 7 - pl.col("i").abs()).alias("x"),
        pl.col("s").str.len_chars().alias("n"),
        (pl.struct("s").hash(seed=0) % 3).cast(pl.UInt32).alias("p"),
    ]
    items = [CopiedColumn("s", None, "key"), CopiedColumn("i", pl.Float64, "f")] + exprs[1:]
    expected = frame.select([exprs[0], pl.col("i").cast(pl.Float64).alias("f")] + exprs[1:])
    assert select_serially(frame, items).equals(expected)


def test_a_serial_projection_declines_what_is_not_one_value_per_row():
    frame = pl.DataFrame({"i": [1, 2, 3]})
    assert select_serially(frame, [pl.col("i").sum()]) is None  # one value for the frame
    assert select_serially(frame, [pl.lit(1)]) is None
    assert select_serially(frame, []) is None
    assert select_serially(frame, [pl.col("i").alias("a"), pl.col("i").alias("b")]).shape == (3, 2)
