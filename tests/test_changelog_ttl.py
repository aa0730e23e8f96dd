"""`SET state_ttl` bounds the state of operators over changelogs; the state size is in progress()."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

import stream_dsl as sd
from executor.state.changelog_states import RetractAggregateState, RetractDistinctState
from optimizer.physical.changelog import RetractAggregateOp, RetractDistinctOp
from optimizer.physical.stages import AggSpec
from stream_dsl.ir.column_names import CHANGELOG_OP
from stream_dsl.ir.types import DataType, Field, Schema

BASE = dt.datetime(2024, 1, 1)


def _batches(n: int = 40) -> list[pl.DataFrame]:
    """Ten new keys per second of event time: every group is updated in one batch only."""
    return [
        pl.DataFrame(
            {
                "k": [f"k{b}-{j}" for j in range(10)],
                "ts": [BASE + dt.timedelta(seconds=b, milliseconds=j) for j in range(10)],
            },
            schema={"k": pl.String, "ts": pl.Datetime("ms")},
        )
        for b in range(n)
    ]


@pytest.mark.parametrize("query", [
    "SELECT DISTINCT k FROM (SELECT k, COUNT(*) AS c FROM s GROUP BY k) AS x",
    "SELECT k, SUM(c) AS total, MAX(c) AS top FROM (SELECT k, COUNT(*) AS c FROM s GROUP BY k) AS x GROUP BY k",
])  # fmt: skip
def test_state_size_is_in_progress_and_the_ttl_bounds_the_changelog_consumer(query):
    sizes = {}
    for ttl in (None, "3s"):
        ctx = sd.Context(executor="inline", workers=2, state_ttl=ttl)
        ctx.from_polars(_batches(), name="s", watermark="ts", watermark_delay="0s")
        handle = ctx.sql(query).start(sink=lambda batch_id, frame: None)
        assert handle.await_termination(120)
        sizes[ttl] = [p["state_groups"] for p in handle.progress()]
    # the inner aggregate keeps its 10 groups a batch either way; the consumer's grow only without a TTL
    unbounded, bounded = sizes[None], sizes["3s"]
    assert unbounded[-1] >= 2 * 400 - 20
    # the consumer holds ~4 seconds of groups (an aggregate: its sums and its MAX's multiset, 2 rows a group)
    assert max(b - 10 * i for i, b in enumerate(bounded[:-1], start=1)) <= 2 * 10 * 5
    assert bounded[-1] < unbounded[-1] - 300


def test_an_expired_group_starts_again_from_its_next_rows():
    agg = RetractAggregateOp(
        ("k",), (AggSpec("n", "count", None, DataType.BIGINT),),
        Schema((Field("k", DataType.STRING), Field("n", DataType.BIGINT))), ttl_ms=1_000,
    )  # fmt: skip
    state = RetractAggregateState(agg)
    rows = pl.DataFrame({"k": ["a", "a"], CHANGELOG_OP: [1, 1]}, schema={"k": pl.String, CHANGELOG_OP: pl.Int8})
    assert state.step(rows, None, 0).frame.rows() == [("a", 2)]
    assert state.step(rows.clear(), 0, 500).frame.height == 0 and state.open_groups == 1
    state.step(rows.clear(), 500, 1_001)  # more than the TTL since "a" changed: dropped, without output
    assert state.open_groups == 0
    assert state.step(rows.head(1), 1_001, 1_100).frame.rows() == [("a", 1)]


def test_distinct_under_a_ttl_never_counts_below_zero():
    state = RetractDistinctState(RetractDistinctOp(("k",), ttl_ms=1_000))
    plus = pl.DataFrame({"k": ["a"], CHANGELOG_OP: [1]}, schema={"k": pl.String, CHANGELOG_OP: pl.Int8})
    minus = plus.with_columns(pl.lit(-1, dtype=pl.Int8).alias(CHANGELOG_OP))
    assert state.step(plus, None, 0).frame.rows() == [("a", 1)]
    state.step(plus.clear(), 0, 2_000)
    assert state.open_groups == 0
    assert state.step(minus, 2_000, 2_100).frame.height == 0  # a retraction of a forgotten row: dropped
    assert state.step(plus, 2_100, 2_200).frame.rows() == [("a", 1)]
