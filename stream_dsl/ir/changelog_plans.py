"""Which logical plans produce a changelog: rows that later rows replace or retract.

A non-windowed aggregate or one with EMIT CHANGES does, and so does every
node above one that passes its rows on (filters, projections, joins with a
static table, DISTINCT, UNION ALL). A windowed aggregate with EMIT ON WINDOW
CLOSE emits each row once: append-only. Rules that would be exact only over
append-only input (the two-phase split of an aggregate) ask `is_changelog`,
and the binder refuses a window over a changelog where the user wrote it
(`WINDOW_OVER_CHANGELOG`; the planner says the same for plans built otherwise).
"""

from __future__ import annotations

from stream_dsl.ir.plan import Aggregate, FinalAggregate, Join, PartialAggregate, Plan, is_streaming
from stream_dsl.ir.definitions import EMIT_CHANGES


def is_changelog(plan: Plan) -> bool:
    """Whether `plan`'s rows may later be replaced or retracted (module doc)."""
    if isinstance(plan, (Aggregate, FinalAggregate)):
        return plan.window is None or plan.emit == EMIT_CHANGES
    if isinstance(plan, PartialAggregate):
        return False  # its FinalAggregate decides
    if isinstance(plan, Join) and stream_join_retracts(plan):
        return True
    return any(is_changelog(child) for child in plan.inputs)


def stream_join_retracts(node: Join) -> bool:
    """Whether a join is a regular outer join of two streams, whose NULL-padded rows are retracted later."""
    return node.interval is None and node.kind != "inner" and is_streaming(node.left) and is_streaming(node.right)


WINDOW_OVER_CHANGELOG = (
    "a windowed aggregate over a changelog (a non-windowed aggregate or EMIT CHANGES, whose rows are "
    "later replaced) is not supported: a row's window is fixed when it arrives, and a changelog row "
    "may be retracted later; aggregate the changelog without a window, or window append-only input "
    "(e.g. a windowed aggregate with EMIT ON WINDOW CLOSE)"
)
