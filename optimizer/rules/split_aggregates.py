"""Two-phase aggregation: split an Aggregate into a partial one before the shuffle and a final one after it.

The PartialAggregate runs in every map task, fused with the operators
before it, and folds the task's rows into one row of partial state per
group (and TUMBLE window): a row count, COUNT's count, SUM's and AVG's sum
and non-NULL count, MIN's and MAX's value. The FinalAggregate, after the
hash exchange on the group keys, merges those rows into its state exactly
as it merges its own: counts and sums add up, MIN and MAX take theirs.

Correctness condition: `agg(k, x) == final(k, partial(k, x_1) ∪ ... ∪
partial(k, x_n))` for any split of x into batches and tasks. It holds for
COUNT, SUM, MIN, MAX and AVG (kept as a sum and a count; SUM of only NULLs
stays NULL because the non-NULL count stays 0, COUNT of nothing is 0).
COUNT(DISTINCT x) is split only by grouping the partial on x too, so the
final still sees every distinct value (all DISTINCT counts of the
aggregate must share that one argument, else it stays single-phase).
Windows: a TUMBLE window is assigned on the map side, and the final drops
the partial rows of windows that had closed and counts the input rows
they stand for as late, so results and late_rows are unchanged. HOP,
CUMULATE and SESSION stay single-phase: a HOP or CUMULATE row counts as
late once even when only some of its windows closed, which per-window
partial rows cannot tell apart, and it would be copied into size/slide
(max_size/step) partial rows anyway; a
SESSION's extent depends on the gaps between events across batches and
tasks, known only where the state is.

Cost guard (`optimizer.cost`): split only when a map task's rows per batch
are at least `min_reduction` (4) times its groups per batch, or when
either is unknown (the documented default: assume it pays).

Example (before, after):

>>> import stream_dsl as sd
>>> from stream_dsl.ir.plan import render_plan
>>> ctx = sd.Context()
>>> ctx.sql("CREATE STREAM s (k STRING, v BIGINT, ts TIMESTAMP) "
...         "WITH (connector = 'files', path = 's/', format = 'ndjson', ndv = 'k=10', rows_per_batch = '10000')")
>>> plan = ctx.sql("SELECT k, window_start, window_end, COUNT(*) AS n, AVG(v) AS a FROM s "
...                "GROUP BY k, TUMBLE(ts, INTERVAL '1' MINUTE)").plan
>>> print(render_plan(plan))
Aggregate keys=[k] window=TUMBLE(ts, 1m) aggs=[n := count(*), a := avg(v)] emit=final
  Scan stream s
>>> print(render_plan(split_aggregates(plan)))
FinalAggregate keys=[k] window=TUMBLE(ts, 1m) aggs=[n := count(*), a := avg(v)] emit=final
  PartialAggregate keys=[k] window=TUMBLE(ts, 1m) aggs=[n := count(*), a := avg(v)]
    Scan stream s

When nearly every row is its own group, the split does not pay and the plan stays:

>>> ctx.sql("CREATE STREAM u (id BIGINT, v BIGINT) "
...         "WITH (connector = 'files', path = 'u/', format = 'ndjson', ndv = 'id=5000', rows_per_batch = '10000')")
>>> per_id = ctx.sql("SELECT id, SUM(v) AS total FROM u GROUP BY id").plan
>>> split_aggregates(per_id) is per_id
True
"""

from __future__ import annotations

from stream_dsl.ir.late_rows import late_rows_sink
from stream_dsl.ir.expr import Column, NamedExpr
from stream_dsl.errors import PlanError
from stream_dsl.ir.partial_state import distinct_argument
from stream_dsl.ir.plan import Aggregate, FinalAggregate, PartialAggregate, Plan

from optimizer.cost import DEFAULT_MODEL, CostModel, estimate
from optimizer.rules.analysis import transform_up


def split_aggregates(plan: Plan, model: CostModel = DEFAULT_MODEL) -> Plan:
    """Replace every splittable Aggregate whose split pays by a FinalAggregate over a PartialAggregate."""
    return transform_up(plan, lambda node: _split(node, model) if isinstance(node, Aggregate) else node)


def splittable(node: Aggregate) -> bool:
    """Whether the aggregate has an exact two-phase form (see the module doc)."""
    if node.window is not None and node.window.kind != "tumble":
        return False
    if node.window is not None and late_rows_sink(node.input) is not None:
        return False  # the late rows are routed from the aggregate's input rows, which partials fold away
    try:
        distinct_argument(node.aggs)
    except PlanError:  # DISTINCT counts of different arguments
        return False
    return True


def _split(node: Aggregate, model: CostModel) -> Plan:
    if not splittable(node):
        return node
    distinct = distinct_argument(node.aggs)
    guess = estimate(
        node.input, (k.expr for k in node.keys), node.window, model, extra=() if distinct is None else (distinct,)
    )
    if not guess.pays(model):
        return node
    partial = PartialAggregate(node.input, node.keys, node.aggs, node.window, span=node.span)
    keys = tuple(NamedExpr(k.name, Column(k.name, k.expr.dtype)) for k in node.keys)
    return FinalAggregate(partial, keys, node.aggs, node.window, node.emit, span=node.span)
