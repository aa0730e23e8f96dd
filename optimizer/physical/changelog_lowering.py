"""Lowering with changelogs: which form each pipe's rows take, and turning a pipe into retract form.

`lower.py` calls these where rows meet a consumer: an exchange into a stateful
stage (`consumer`), a UNION ALL, and the query output (`output_form`). A pipe
whose rows carry CHANGELOG_OP is `retract`; a pipe ending in a changelog
aggregate that still emits upserts is `changelog`. See `changelog.py` for the forms.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from optimizer.physical.changelog import MarkAppendOp, RetractAggregateOp, RetractDistinctOp, op_passthrough, refusal
from optimizer.physical.stages import AggregateOp, BroadcastJoinOp, DistinctOp, ProjectOp
from optimizer.physical.stream_join import StreamJoinOp
from stream_dsl.errors import PlanError
from stream_dsl.ir.column_names import CHANGELOG_OP, WINDOW_END
from stream_dsl.ir.expr import Column

if TYPE_CHECKING:
    from optimizer.physical.lower import _Pipe


def carry(op: Any) -> Any:
    """A narrow operator over retract rows, changed to keep CHANGELOG_OP (filters keep every column already)."""
    if isinstance(op, ProjectOp) and all(n.name != CHANGELOG_OP for n in op.exprs):
        return replace(op, exprs=op.exprs + (op_passthrough(),))
    if isinstance(op, BroadcastJoinOp) and all(name != CHANGELOG_OP for _, _, name in op.output):
        return replace(op, output=op.output + (("stream", CHANGELOG_OP, CHANGELOG_OP),))
    return op


def as_retract(pipe: "_Pipe") -> "_Pipe":
    """`pipe` with CHANGELOG_OP on its rows: an upsert aggregate emits -old/+new instead; append rows get +1."""
    if pipe.retract:
        return pipe
    if pipe.changelog:
        stateful = replace(pipe.stateful, retract=True)  # type: ignore[type-var]
        return replace(pipe, stateful=stateful, post=tuple(carry(op) for op in pipe.post), retract=True)
    marked = pipe.add(MarkAppendOp(), pipe.schema)
    return replace(marked, retract=True)


def consumer(op: Any, ttl_ms: int | None) -> Any:
    """The stateful operator that takes a changelog in `op`'s place, or a PlanError saying why none can."""
    reason = refusal(op)
    if reason is not None:
        raise PlanError(reason)
    if isinstance(op, AggregateOp) and not op.final:
        return RetractAggregateOp(op.keys, op.aggs, op.output, ttl_ms=ttl_ms)
    if isinstance(op, DistinctOp):
        return RetractDistinctOp(op.columns, ttl_ms)
    if isinstance(op, StreamJoinOp):  # a regular join of two streams: multisets per side (stream_join_changelog)
        return replace(op, changelog_input=True)
    return None


def keys_survive(pipe: "_Pipe") -> bool:
    """Whether an upsert pipe's group keys reach the output (renamed or not; else the output takes retractions).

    A window's end need not: its start decides it for TUMBLE, HOP and SESSION (a key's sessions never
    overlap), as the upsert sinks key such rows (`executor/query/sink_modes.upsert_keys`)."""
    stateful = pipe.stateful
    keys = tuple(getattr(stateful, "group_keys", ()))
    window = getattr(stateful, "window", None)
    if window is not None and window.kind != "cumulate":
        keys = tuple(k for k in keys if k != WINDOW_END)
    names = {k: k for k in keys}  # each key's name so far
    for op in pipe.post:
        if isinstance(op, ProjectOp):
            copies = {n.expr.name: n.name for n in op.exprs if isinstance(n.expr, Column)}
            if not all(name in copies for name in names.values()):
                return False
            names = {k: copies[name] for k, name in names.items()}
    return True
