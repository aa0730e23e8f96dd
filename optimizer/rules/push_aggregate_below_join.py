"""Push a partial aggregate below a join with a static table (the Yahoo Streaming Benchmark case).

YSB counts views per campaign and window, but the events carry ad ids: the
plan joins every event with the campaigns table and then groups. When the
aggregate's arguments come from the stream side only, the partial
aggregate can run before the join, grouped by the join key (and the
stream-side columns the group keys use, and the window): the join then
runs on a few rows per ad and window instead of one per event, and the
final aggregate, after the shuffle on the original keys, merges them.

Correctness condition: `partial(k, join(s, t)) ≍ join(partial(k', s), t)`
where k' = the stream-side join keys ∪ the stream-side columns the group
keys k use ∪ the window, and ≍ means "the final aggregate merges both to
the same result". All rows of a k' group share the join key, so they
match the same table rows: the join copies the whole group's partial
state once per matching row, exactly as it copied each of its rows
(COUNT, SUM and the non-NULL counts add up over the copies, MIN and MAX
do not change, and an unmatched group of an INNER join is dropped as
each of its rows was, of a LEFT join kept with NULLs as each was); each
k' group lies within one k group, since k is computed from k' columns and
table columns that the join key determines. Needed: the join is with a
static table (the stream on the left), every aggregate argument, the
COUNT(DISTINCT) argument and the window's time column are stream-side
columns. Joins already between the final and the partial are crossed
(the partial then keeps moving down a chain of joins) when the partial's
keys are plain columns that keep their names.

Cost guard (`optimizer.cost`): push only when the stream side's rows per
batch are at least `min_reduction` (4) times the partial's groups per
batch under the new keys (the join key usually has more values than the
original keys), or when either is unknown (the documented default).

Example (before, after):

>>> import stream_dsl as sd
>>> from stream_dsl.ir.plan import render_plan
>>> from optimizer.rules.split_aggregates import split_aggregates
>>> ctx = sd.Context(check_files=False)  # plans only: the files are not there
>>> ctx.sql("CREATE STREAM events (ad_id STRING, event_time TIMESTAMP) "
...         "WITH (connector = 'files', path = 'e/', format = 'ndjson', ndv = 'ad_id=1000', rows_per_batch = '100000')")
>>> ctx.sql("CREATE TABLE campaigns (ad_id STRING, campaign_id STRING) "
...         "WITH (connector = 'files', path = 'c.csv', format = 'csv')")
>>> plan = split_aggregates(ctx.sql("SELECT campaign_id, window_start, COUNT(*) AS views "
...     "FROM events JOIN campaigns USING (ad_id) GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)").plan)
>>> print(render_plan(plan))
Project campaign_id, window_start, views
  FinalAggregate keys=[campaign_id] window=TUMBLE(event_time, 10s) aggs=[views := count(*)] emit=final
    PartialAggregate keys=[campaign_id] window=TUMBLE(event_time, 10s) aggs=[views := count(*)]
      Join inner on [ad_id = ad_id] right=[campaign_id]
        Scan stream events
        Scan table campaigns
>>> print(render_plan(push_aggregate_below_join(plan)))
Project campaign_id, window_start, views
  FinalAggregate keys=[campaign_id] window=TUMBLE(event_time, 10s) aggs=[views := count(*)] emit=final
    Join inner on [ad_id = ad_id] right=[campaign_id]
      PartialAggregate keys=[ad_id] window=TUMBLE(event_time, 10s) aggs=[views := count(*)]
        Scan stream events
      Scan table campaigns
"""

from __future__ import annotations

from dataclasses import replace

from stream_dsl.errors import PlanError
from stream_dsl.ir.expr import Column, NamedExpr, columns_used, rename_columns
from stream_dsl.ir.partial_state import distinct_argument
from stream_dsl.ir.plan import FinalAggregate, Join, PartialAggregate, Plan, Project, is_streaming

from optimizer.cost import DEFAULT_MODEL, CostModel, estimate
from optimizer.rules.analysis import is_deterministic, transform_up


def push_aggregate_below_join(plan: Plan, model: CostModel = DEFAULT_MODEL) -> Plan:
    """Move each partial aggregate below the joins with static tables under it, while valid and paying."""

    def push_all(node: Plan) -> Plan:
        if not isinstance(node, FinalAggregate):
            return node
        while True:
            pushed = _push_once(node, model)
            if pushed is node:
                return node
            node = pushed

    return transform_up(plan, push_all)


def _push_once(final: FinalAggregate, model: CostModel) -> FinalAggregate:
    chain: list[Join] = []  # joins the partial already went below, outermost first
    node = final.input
    while isinstance(node, Join):
        chain.append(node)
        node = node.left
    if not isinstance(node, PartialAggregate):
        return final
    partial = _through_project(node)
    join = partial.input
    if not isinstance(join, Join) or not _static_right(join):
        return final
    if chain and not all(isinstance(k.expr, Column) and k.expr.name == k.name for k in partial.keys):
        return final  # the joins above read the partial's key columns by name
    new_partial = _below(partial, join)
    if new_partial is None:
        return final
    distinct = distinct_argument(partial.aggs)
    # Over the join: the stream side's rows, and a stream key's ndv bounded by the table's when unknown.
    guess = estimate(
        join, (k.expr for k in new_partial.keys), partial.window, model, extra=() if distinct is None else (distinct,)
    )
    if not guess.pays(model):
        return final
    try:
        rebuilt: Plan = replace(join, left=new_partial)
        for outer in reversed(chain):
            rebuilt = replace(outer, left=rebuilt)
        keys = final.keys
        if not chain:  # the final computes the group keys from the columns the join brings back
            by_name = {k.name: k.expr for k in partial.keys}
            keys = tuple(NamedExpr(k.name, rename_columns(k.expr, by_name)) for k in final.keys)
        return replace(final, input=rebuilt, keys=keys)
    except PlanError:  # e.g. a table column named like a partial column (window_start)
        return final


def _static_right(join: Join) -> bool:
    """A stream joined with a table, each stream row giving its own output rows (not RIGHT, FULL or CROSS)."""
    return join.kind in ("inner", "left") and is_streaming(join.left) and not is_streaming(join.right)


def _below(partial: PartialAggregate, join: Join) -> PartialAggregate | None:
    """The partial over the join's stream side, keyed by join keys and the stream columns its keys use."""
    stream = join.left.schema
    needed: set[str] = set()
    for n in partial.aggs:
        needed |= columns_used(n.expr)
    if partial.window is not None:
        needed.add(partial.window.time_column)
    if not needed <= set(stream.names):
        return None
    key_columns = list(join.left_keys)
    for k in partial.keys:
        key_columns += sorted(c for c in columns_used(k.expr) if c in stream.names)
    key_columns = list(dict.fromkeys(key_columns))
    keys = tuple(NamedExpr(c, Column(c, stream.dtype(c))) for c in key_columns)
    try:
        return PartialAggregate(join.left, keys, partial.aggs, partial.window, span=partial.span)
    except PlanError:
        return None


def _through_project(partial: PartialAggregate) -> PartialAggregate:
    """A partial over a Project, rewritten to read the Project's input (when its window column is plain)."""
    project = partial.input
    if not isinstance(project, Project) or not all(is_deterministic(n.expr) for n in project.exprs):
        return partial  # a non-deterministic value (a UDF's) inlined twice would be computed twice
    by_name = {n.name: n.expr for n in project.exprs}
    window = partial.window
    if window is not None:
        time = by_name.get(window.time_column)
        if not isinstance(time, Column):
            return partial
        window = replace(window, time_column=time.name)
    keys = tuple(NamedExpr(k.name, rename_columns(k.expr, by_name)) for k in partial.keys)
    aggs = tuple(NamedExpr(a.name, rename_columns(a.expr, by_name)) for a in partial.aggs)
    return PartialAggregate(project.input, keys, aggs, window, span=partial.span)
