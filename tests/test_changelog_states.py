"""The changelog states' checkpoints: a restored state steps on exactly as the one it was taken from."""

from __future__ import annotations

import pickle

import polars as pl
import pytest

from executor.state.changelog_states import Retracting, RetractAggregateState, RetractDistinctState
from executor.state.operators import make_state
from executor.state.snapshots import restore_state, snapshot_state
from optimizer.physical.changelog import RetractAggregateOp, RetractDistinctOp
from optimizer.physical.stages import AggregateOp, AggSpec, ROW_COLUMN
from stream_dsl.ir.column_names import CHANGELOG_OP
from stream_dsl.ir.types import DataType, Field, Schema

KV = Schema((Field("k", DataType.STRING), Field("v", DataType.BIGINT)))
AGGS = (
    AggSpec("n", "count", None, DataType.BIGINT),
    AggSpec("lo", "min", "v", DataType.BIGINT, arg_dtype=DataType.BIGINT),
    AggSpec("s", "sum", "v", DataType.BIGINT, arg_dtype=DataType.BIGINT),
    AggSpec("dv", "count", "v", DataType.BIGINT, distinct=True, arg_dtype=DataType.BIGINT),
)
OUT = Schema((Field("k", DataType.STRING),) + tuple(Field(a.name, DataType.BIGINT) for a in AGGS))


def _rows(k: list[str], v: list[int], op: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {"k": k, "v": v, CHANGELOG_OP: op, ROW_COLUMN: k},
        schema={"k": pl.String, "v": pl.Int64, CHANGELOG_OP: pl.Int8, ROW_COLUMN: pl.String},
    )


CASES = {
    "retracting_aggregate": (
        AggregateOp(("k",), (AggSpec("n", "count", None, DataType.BIGINT),), None, "changes",
                    Schema((Field("k", DataType.STRING), Field("n", DataType.BIGINT))), retract=True),
        Retracting,
    ),
    "retract_aggregate": (RetractAggregateOp(("k",), AGGS, OUT, retract=True), Retracting),
    "retract_aggregate_upsert": (RetractAggregateOp(("k",), AGGS, OUT), RetractAggregateState),
    "retract_distinct": (RetractDistinctOp(("k", "v")), RetractDistinctState),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_a_restored_state_emits_what_the_original_emits(name):
    op, kind = CASES[name]
    state = make_state(op)
    assert isinstance(state, kind)
    first = _rows(["a", "a", "b", "c"], [1, 2, 2, 5], [1, 1, 1, 1])
    second = _rows(["a", "b", "c", "c"], [1, 2, 5, 7], [-1, -1, -1, 1])
    state.step(first, None, 10)
    restored = restore_state(op, pickle.loads(pickle.dumps(snapshot_state(state))))
    assert isinstance(restored, kind)
    for rows in (second, first, second):
        ours, theirs = state.step(rows, 10, 20), restored.step(rows, 10, 20)
        assert sorted(ours.frame.rows(), key=repr) == sorted(theirs.frame.rows(), key=repr)  # a join may reorder
        assert (ours.deletes is None) == (theirs.deletes is None)
    assert restored.open_groups == state.open_groups > 0


def test_a_snapshot_of_another_kind_is_refused():
    op, _ = CASES["retract_distinct"]
    other = snapshot_state(make_state(CASES["retract_aggregate_upsert"][0]))
    with pytest.raises(ValueError, match="cannot restore"):
        restore_state(op, other)
