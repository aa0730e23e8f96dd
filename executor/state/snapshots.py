"""Checkpoint snapshots of operator state: plain picklable values (frames as Arrow IPC), and back."""

from __future__ import annotations

import io
from typing import Any

import polars as pl

from executor.state import changelog_states
from executor.state.distinct import DistinctState
from executor.state.top_n import TopNState
from executor.state.interval_join import IntervalJoinState
from optimizer.physical.interval_join import IntervalJoinOp
from executor.state.stream_join import StreamJoinState
from executor.state.stream_join_changelog import restore_stream_join
from optimizer.physical.stream_join import StreamJoinOp
from executor.state.operators import AggregateState
from executor.state.small import SmallAggregate
from executor.state.unmatched import UnmatchedState
from optimizer.physical.changelog import RetractAggregateOp, RetractDistinctOp
from optimizer.physical.stages import AggregateOp, DistinctOp, TopNOp, UnmatchedRowsOp


def snapshot_state(
    state: AggregateState | DistinctState | TopNState | IntervalJoinState | StreamJoinState | UnmatchedState,
) -> dict[str, Any]:
    """Everything the state holds, picklable (frames as Arrow IPC bytes), no reference to the op.

    What stepping changes is all there: the polars state rows, the COUNT(DISTINCT) sets, whether the
    state may still go to the Python dict, and the dict itself (with the schema of the rows it took),
    so a restored state stays in the dict: the same outputs in the same row order, at the same cost.
    The snapshot is a copy (stepping the state further does not change it). The dict holds only ints,
    strings, booleans, None and naive datetimes (`state_small`'s plain types).
    """
    changelog = changelog_states.snapshot(state, snapshot_state)
    if changelog is not None:
        return changelog
    if isinstance(state, DistinctState):
        return {"kind": "distinct", "seen": _ipc(state.seen)}
    if isinstance(state, TopNState):
        return {
            "kind": "top_n",
            "pending": _ipc(state.pending),
            "seen": _ipc(state.seen),
            "duplicates": state.duplicates,
        }
    if isinstance(state, IntervalJoinState):
        return {
            "kind": "interval_join",
            "left": _ipc(state.left),
            "right": _ipc(state.right),
            "late": [state.late_left, state.late_right],
        }
    if isinstance(state, StreamJoinState):
        return state.snapshot()
    if isinstance(state, UnmatchedState):  # the table is the query's broadcast table, not state
        return {"kind": "unmatched", "matched": _ipc(state.matched), "emitted": state.emitted}
    small = state.small
    return {
        "kind": "aggregate",
        "frame": _ipc(state._frame),
        "distinct": {i: _ipc(sets) for i, sets in state.distinct.items()},
        "may_be_small": state._may_be_small,
        "small": None
        if small is None
        else {
            "schema": _ipc(pl.DataFrame(schema=small.schema)),
            "table": {key: list(values) for key, values in small.table.items()},
        },
    }


def restore_state(
    op: AggregateOp | DistinctOp | TopNOp | IntervalJoinOp | StreamJoinOp | UnmatchedRowsOp, snapshot: dict[str, Any]
) -> AggregateState | DistinctState | TopNState | IntervalJoinState | StreamJoinState | UnmatchedState:
    """A state equal in behavior to the snapshotted one: stepping it further gives the same outputs.

    `op` must be the operator the snapshot was taken from (the same query's plan); a snapshot of the
    other kind of state, or one this operator could not have made, raises ValueError.
    """
    kind = snapshot.get("kind")
    if isinstance(op, (RetractAggregateOp, RetractDistinctOp)) or getattr(op, "retract", False):
        return changelog_states.restore(op, snapshot, restore_state)
    if isinstance(op, IntervalJoinOp):
        if kind != "interval_join":
            raise ValueError(f"a {kind!r} state snapshot cannot restore {op.describe()}")
        joined = IntervalJoinState(op)
        joined.left, joined.right = _from_ipc(snapshot["left"]), _from_ipc(snapshot["right"])
        joined.late_left, joined.late_right = (int(n) for n in snapshot["late"])
        return joined
    if isinstance(op, StreamJoinOp):
        return restore_stream_join(op, snapshot)
    if isinstance(op, UnmatchedRowsOp):
        if kind != "unmatched":
            raise ValueError(f"a {kind!r} state snapshot cannot restore {op.describe()}")
        return UnmatchedState(op, _from_ipc(snapshot["matched"]), bool(snapshot["emitted"]))
    if isinstance(op, DistinctOp):
        if kind != "distinct":
            raise ValueError(f"a {kind!r} state snapshot cannot restore {op.describe()}")
        return DistinctState(op, _from_ipc(snapshot["seen"]))
    if isinstance(op, TopNOp):
        if kind != "top_n":
            raise ValueError(f"a {kind!r} state snapshot cannot restore {op.describe()}")
        return TopNState(op, _from_ipc(snapshot["pending"]), _from_ipc(snapshot["seen"]), int(snapshot["duplicates"]))
    if kind != "aggregate":
        raise ValueError(f"a {kind!r} state snapshot cannot restore {op.describe()}")
    state = AggregateState(op)
    distinct = {int(i): _from_ipc(sets) for i, sets in snapshot["distinct"].items()}
    if not set(distinct) <= {i for i, _ in state._distinct_aggs}:
        raise ValueError(f"the snapshot has COUNT(DISTINCT) sets {sorted(distinct)} that {op.describe()} has not")
    state._frame = _from_ipc(snapshot["frame"])
    state.distinct = distinct  # type: ignore[assignment]
    state._may_be_small = bool(snapshot["may_be_small"])
    small = snapshot["small"]
    if small is not None:
        if not state.fused or state._frame is not None:
            raise ValueError(f"the snapshot holds a Python-dict state that {op.describe()} cannot have")
        state.small = SmallAggregate(op, _from_ipc(small["schema"]).schema)  # type: ignore[union-attr]
        state.small.table = {tuple(key): list(values) for key, values in small["table"].items()}
    return state


def _ipc(frame: pl.DataFrame | None) -> bytes | None:
    return None if frame is None else frame.write_ipc(None).getvalue()


def _from_ipc(data: bytes | None) -> pl.DataFrame | None:
    return None if data is None else pl.read_ipc(io.BytesIO(data))
