"""The physical interval join: both streams hash-shuffled on the join key into one stateful stage.

Each side's pipeline ends in a projection to ONE frame layout shared by both sides,
so the stateful stage reads one exchange like any other (`ReadOp`, `concat_inputs`):

    left rows:  left columns,  NULLs for the right columns, SIDE_COLUMN false, JOIN_KEY columns
    right rows: NULLs for the left columns, right columns,  SIDE_COLUMN true,  JOIN_KEY columns

(column names are the join's output names, so no two clash). The JOIN_KEY columns are
the equi-join keys cast to the type each pair is compared in; the exchange hashes them,
so rows of both sides with equal keys meet in the same partition, on the same worker.
`IntervalJoinOp` is the stateful operator (its state: `executor/state/interval_join.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from stream_dsl.ir.expr import Cast, Column, Expr, Literal, NamedExpr
from stream_dsl.ir.interval import IntervalBounds
from stream_dsl.ir.types import Field, Schema, DataType

if TYPE_CHECKING:
    from optimizer.physical.lower import Fragment, _Lowering
    from stream_dsl.ir.plan import Join

SIDE_COLUMN = "__sd_side"  # true on rows of the right input
RIGHT_TIME = "__sd_rtime"  # the right time column, when the output does not keep it (a USING key)


def join_key(i: int) -> str:
    """The shuffle column of equi-join key pair number `i`."""
    return f"__sd_jk{i}"


@dataclass(frozen=True, slots=True)
class IntervalJoinOp:
    """A stream-stream interval join's state: rows of each side per key, matched while their interval is open.

    `kind` is 'inner', 'left' or 'full'. Input: the shared layout (module doc); `left_columns`
    and `right_columns` are the output names of each side's columns, `left_time` and
    `right_time` the output names of the bounded time columns, `bounds` the bound
    (`right_time - left_time`), `watermarked` whether the watermark bounds both time
    columns (if not, only the end of input drops state). Output: `output`, the join's schema.
    """

    kind: str
    keys: tuple[str, ...]
    left_columns: tuple[str, ...]
    right_columns: tuple[str, ...]
    left_time: str
    right_time: str
    bounds: IntervalBounds
    watermarked: bool
    output: Schema

    def describe(self) -> str:
        bound = self.bounds.describe(self.right_time)
        text = f"IntervalJoin {self.kind} on [{', '.join(self.keys)}] within [{bound}]"
        return text + ("" if self.watermarked else " watermark=none (end of input only)")


def side_columns(
    left_schema: Schema,
    right_schema: Schema,
    right_out: dict[str, str],
    right: bool,
    keys: tuple[str, ...],
    schema: Schema,
    key_types: Sequence[DataType],
) -> list[NamedExpr]:
    """One input's rows in the join stage's common shape, for the joins of two streams (interval and
    regular): both sides' output columns (the other side's NULL), SIDE_COLUMN, and the keys cast to their
    common types."""
    exprs: list[NamedExpr] = []
    for f in left_schema:
        exprs.append(NamedExpr(f.name, Literal(None, f.dtype) if right else Column(f.name, f.dtype)))
    for f in right_schema:
        if f.name in right_out:
            value = Column(f.name, f.dtype) if right else Literal(None, f.dtype)
            exprs.append(NamedExpr(right_out[f.name], value))
    exprs.append(NamedExpr(SIDE_COLUMN, Literal(right, DataType.BOOLEAN)))
    for i, (key, dtype) in enumerate(zip(keys, key_types)):
        column: Expr = Column(key, schema.dtype(key))
        exprs.append(NamedExpr(join_key(i), column if schema.dtype(key) is dtype else Cast(column, dtype)))
    return exprs


def lower_interval_join(lowering: "_Lowering", node: "Join", watermarked: bool) -> "Fragment":
    """Both sides projected to the shared layout, then one hash exchange into the IntervalJoinOp's stage."""
    from optimizer.physical.lower import _add, _key_type
    from optimizer.physical.stages import ProjectOp

    assert node.interval is not None  # only interval joins get here
    left_schema, right_schema = node.left.schema, node.right.schema
    right_out = dict(node.right_columns)
    pairs = zip(node.left_keys, node.right_keys)
    key_types = [_key_type(left_schema.dtype(lk), right_schema.dtype(rk)) for lk, rk in pairs]
    bounds = node.interval
    hidden_time = bounds.right_time not in right_out  # a USING key: carried in a column of its own
    layout = Schema(
        node.schema.fields
        + (Field(SIDE_COLUMN, DataType.BOOLEAN),)
        + tuple(Field(join_key(i), t) for i, t in enumerate(key_types))
        + ((Field(RIGHT_TIME, DataType.TIMESTAMP),) if hidden_time else ())
    )

    def side(keys: tuple[str, ...], schema: Schema, right: bool) -> tuple[NamedExpr, ...]:
        exprs = side_columns(left_schema, right_schema, right_out, right, keys, schema, key_types)
        if hidden_time:
            time = Column(bounds.right_time, DataType.TIMESTAMP) if right else Literal(None, DataType.TIMESTAMP)
            exprs.append(NamedExpr(RIGHT_TIME, time))
        return tuple(exprs)

    op = IntervalJoinOp(
        node.kind,
        tuple(join_key(i) for i in range(len(key_types))),
        left_schema.names,
        tuple(out for _, out in node.right_columns),
        bounds.left_time,
        RIGHT_TIME if hidden_time else right_out[bounds.right_time],
        bounds,
        watermarked,
        node.schema,
    )
    left = _add(lowering.lower(node.left), ProjectOp(side(node.left_keys, left_schema, False)), layout)
    right = _add(lowering.lower(node.right), ProjectOp(side(node.right_keys, right_schema, True)), layout)
    return lowering.exchange(left + right, op.keys, op, node.schema)
