"""Which columns the watermark bounds, so a window knows whether the watermark closes it.

The rule (README, "Windows and the watermark"): a source's watermark is a
promise about its watermark column only. A window whose time column is
that column, renamed or not, through filters, projections, joins and the
window_start/window_end of an inner window over it, closes when the
watermark passes its end, and rows for closed windows are late. A window
over any other TIMESTAMP column has no watermark: no row is late, and it
closes at the end of the input (a continuous query's EMIT CHANGES shows
its groups as they change).
"""

from __future__ import annotations

from dataclasses import replace
from functools import singledispatch

from stream_dsl.ir.expr import Column
from stream_dsl.ir.definitions import WindowSpec
from stream_dsl.ir.plan import (
    WINDOW_END,
    WINDOW_START,
    Aggregate,
    Distinct,
    FinalAggregate,
    Filter,
    Join,
    Limit,
    PartialAggregate,
    Plan,
    Project,
    Scan,
    Sort,
    TopN,
    Union,
    is_streaming,
    Unnest,
)


def with_watermark(window: WindowSpec | None, time_columns: frozenset[str], time_column: str) -> WindowSpec | None:
    """`window`, marked as closed by the watermark or not: whether `time_column` is one the watermark bounds."""
    if window is None:
        return None
    return replace(window, watermarked=time_column in time_columns)


@singledispatch
def event_time_columns(plan: Plan) -> frozenset[str]:
    """The output columns of `plan` whose values the source's watermark bounds."""
    return frozenset()


@event_time_columns.register
def _(plan: Scan) -> frozenset[str]:
    wm = plan.source.watermark
    return frozenset({wm.column}) if wm is not None and wm.column in plan.schema.names else frozenset()


@event_time_columns.register(Filter)
@event_time_columns.register(Distinct)
@event_time_columns.register(Limit)
@event_time_columns.register(Sort)
@event_time_columns.register(TopN)  # a row leaves a top-n no earlier than the watermark lets it (top_n.py)
def _(plan: Filter | Distinct | Limit | Sort | TopN) -> frozenset[str]:
    return event_time_columns(plan.input)


@event_time_columns.register
def _(plan: Unnest) -> frozenset[str]:
    return event_time_columns(plan.input)  # each element's row keeps its source row's time


@event_time_columns.register
def _(plan: Project) -> frozenset[str]:
    inner = event_time_columns(plan.input)
    return frozenset(n.name for n in plan.exprs if isinstance(n.expr, Column) and n.expr.name in inner)


@event_time_columns.register
def _(plan: Join) -> frozenset[str]:
    if plan.interval is not None:  # pairs come out when their later row arrives: behind the watermark
        return frozenset()
    if is_streaming(plan.left) and is_streaming(plan.right):  # the same for a regular join of two streams
        return frozenset()
    left, right = event_time_columns(plan.left), event_time_columns(plan.right)
    return frozenset(left | {out for c, out in plan.right_columns if c in right})


@event_time_columns.register
def _(plan: Union) -> frozenset[str]:
    names = plan.schema.names
    kept = set(range(len(names)))
    for child in plan.inputs:
        inner = event_time_columns(child)
        kept &= {i for i, c in enumerate(child.schema.names) if c in inner}
    return frozenset(names[i] for i in kept)


@event_time_columns.register(Aggregate)
@event_time_columns.register(PartialAggregate)
def _(plan: Aggregate | PartialAggregate) -> frozenset[str]:
    if plan.window is not None and plan.window.time_column in event_time_columns(plan.input):
        return frozenset({WINDOW_START, WINDOW_END})
    return frozenset()


@event_time_columns.register
def _(plan: FinalAggregate) -> frozenset[str]:
    # The partial rows below carry window_start, bounded when the partial's window was.
    if plan.window is not None and WINDOW_START in event_time_columns(plan.input):
        return frozenset({WINDOW_START, WINDOW_END})
    return frozenset()
