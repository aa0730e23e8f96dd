"""The physical regular stream-stream join: both streams hash-shuffled on the join key into one stateful stage.

The sibling of the interval join (`interval_join.py`), with the same shared frame
layout (its module doc) so the stateful stage reads one exchange like any other:

    left rows:  left columns,  NULLs for the right columns, SIDE_COLUMN false, JOIN_KEY columns, ROW_TIME
    right rows: NULLs for the left columns, right columns,  SIDE_COLUMN true,  JOIN_KEY columns, ROW_TIME

ROW_TIME is the row's event time, the side's watermark column (NULL when the side has
none): what `SET state_ttl` measures a kept row's age by. Without a TTL, or on a side
whose rows have no watermark column, the state holds every row until the end of input
(Flink allows this too): `describe()` says so, and `executor/query/checks.py` warns when
such a query runs over unbounded input. An outer join's output is a retract changelog
(CHANGELOG_OP on every row, `optimizer/physical/changelog.py`): the pipes after it carry
the column, and what consumes them takes retractions. A join whose input is a changelog
takes it too (`changelog_input`, `executor/state/stream_join_changelog.py`): its output
is then a retract changelog whatever its kind. `StreamJoinOp` is the stateful operator (its
state: `executor/state/stream_join.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from optimizer.physical.interval_join import SIDE_COLUMN, join_key, side_columns
from stream_dsl.ir.expr import Column, Literal, NamedExpr, format_duration_ms
from stream_dsl.ir.types import DataType, Field, Schema

if TYPE_CHECKING:
    from optimizer.physical.lower import Fragment, _Lowering
    from stream_dsl.ir.plan import Join

ROW_TIME = "__sd_row_time"  # a row's event time (its side's watermark column), for the state TTL


@dataclass(frozen=True, slots=True)
class StreamJoinOp:
    """A regular (unbounded) stream-stream equi-join's state: every row of each side per key.

    `kind` is 'inner', 'left', 'right' or 'full'. Input: the shared layout (module doc);
    `left_columns` and `right_columns` are the output names of each side's columns,
    `left_time` and `right_time` the watermark columns the TTL reads (None: that side has
    none, its rows stay), `ttl_ms` the state TTL (None: rows stay until the end of input).
    Output: `output`, the join's schema; an outer join's is a retract changelog.
    """

    kind: str
    keys: tuple[str, ...]
    left_columns: tuple[str, ...]
    right_columns: tuple[str, ...]
    left_time: str | None
    right_time: str | None
    ttl_ms: int | None
    output: Schema
    changelog_input: bool = False  # rows carry CHANGELOG_OP (`changelog_lowering.consumer`)

    @property
    def retracts(self) -> bool:
        """Whether the output is a retract changelog: an outer row comes out NULL-padded and is retracted later,
        and a changelog input's retractions retract the pairs they made."""
        return self.kind != "inner" or self.changelog_input

    @property
    def bounded(self) -> bool:
        """Whether the TTL bounds the state of both sides (each has a watermark column and a TTL is set)."""
        return self.ttl_ms is not None and self.left_time is not None and self.right_time is not None

    def describe(self) -> str:
        text = f"StreamJoin {self.kind} on [{', '.join(self.keys)}]"
        if self.ttl_ms is not None:
            text += f" ttl={format_duration_ms(self.ttl_ms)}"
        if not self.bounded:
            text += " state=unbounded (" + _unbounded_reason(self) + ")"
        text += " input=retract" if self.changelog_input else ""
        return text + (" output=retract" if self.retracts else "")


def _unbounded_reason(op: StreamJoinOp) -> str:
    if op.ttl_ms is None:
        return "no state_ttl: rows stay until the end of input"
    side = "left" if op.left_time is None else "right"
    return f"the {side} side has no watermark column: its rows stay until the end of input"


def lower_stream_join(lowering: "_Lowering", node: "Join", left_time: str | None, right_time: str | None) -> "Fragment":
    """Both sides projected to the shared layout, then one hash exchange into the StreamJoinOp's stage."""
    from optimizer.physical.lower import _add, _key_type
    from optimizer.physical.stages import ProjectOp

    left_schema, right_schema = node.left.schema, node.right.schema
    right_out = dict(node.right_columns)
    pairs = zip(node.left_keys, node.right_keys)
    key_types = [_key_type(left_schema.dtype(lk), right_schema.dtype(rk)) for lk, rk in pairs]
    layout = Schema(
        node.schema.fields
        + (Field(SIDE_COLUMN, DataType.BOOLEAN),)
        + tuple(Field(join_key(i), t) for i, t in enumerate(key_types))
        + (Field(ROW_TIME, DataType.TIMESTAMP),)
    )

    def side(keys: tuple[str, ...], schema: Schema, right: bool, time: str | None) -> tuple[NamedExpr, ...]:
        exprs = side_columns(left_schema, right_schema, right_out, right, keys, schema, key_types)
        row_time = Literal(None, DataType.TIMESTAMP) if time is None else Column(time, DataType.TIMESTAMP)
        exprs.append(NamedExpr(ROW_TIME, row_time))
        return tuple(exprs)

    op = StreamJoinOp(
        node.kind,
        tuple(join_key(i) for i in range(len(key_types))),
        left_schema.names,
        tuple(out for _, out in node.right_columns),
        left_time,
        right_time,
        lowering.state_ttl_ms,
        node.schema,
    )
    left = _add(lowering.lower(node.left), ProjectOp(side(node.left_keys, left_schema, False, left_time)), layout)
    right = _add(lowering.lower(node.right), ProjectOp(side(node.right_keys, right_schema, True, right_time)), layout)
    joined = lowering.exchange(left + right, op.keys, op, node.schema)
    # an outer join's rows carry CHANGELOG_OP: the operators after it keep it, its consumers take retractions
    # (the exchange gives the op changelog_input when an input is a changelog: then it retracts too)
    retracts = any(isinstance(p.stateful, StreamJoinOp) and p.stateful.retracts for p in joined)
    return tuple(replace(pipe, retract=True) for pipe in joined) if retracts else joined
