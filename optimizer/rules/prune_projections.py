"""Projection pruning: every node computes, and every source reads, only the columns used above it.

Each node is asked for the set of its output columns its parent uses, and
in turn asks its inputs for what it needs to produce those: a Filter adds
its predicate's columns, a Join its keys, an Aggregate its keys, arguments
and window column. Unused Project outputs, unused aggregates and unused
right-side join columns go; `Scan.columns` narrows to what is asked for.

Correctness condition: `project(c, x) == project(c, prune(x, c))` for the
columns c the parent uses: the columns kept are computed exactly as before,
row for row. What is never dropped:
- the source's watermark column (the watermark follows it, windowed or not);
- the columns of a Scan's own predicate (applied when the source is read);
- join keys, group keys, window time columns;
- any column under a Distinct (which rows are distinct depends on all) or a
  TopN (its ties are broken by every column);
- at least one column of every input, so row counts (COUNT(*)) survive;
- the plan's output: same names, types and order (a Project restores them
  if an input keeps extra columns).
A Project that passes its input through unchanged is removed.

Example (before, after):

>>> import stream_dsl as sd
>>> from stream_dsl.ir.plan import render_plan
>>> ctx = sd.Context(check_files=False)  # plans only: the files are not there
>>> ctx.sql("CREATE STREAM s (a BIGINT, b STRING, c DOUBLE, ts TIMESTAMP, "
...         "WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
...         "WITH (connector = 'files', path = 's/', format = 'ndjson')")
>>> plan = ctx.sql("SELECT b FROM (SELECT b, c * 2 AS c2 FROM s WHERE a > 0)").plan
>>> print(render_plan(plan))
Project b
  Project b, c2 := (c * 2)
    Filter (a > 0)
      Scan stream s watermark=ts-1s
>>> print(render_plan(prune_projections(plan)))
Project b
  Filter (a > 0)
    Scan stream s columns=[a, b, ts] watermark=ts-1s
"""

from __future__ import annotations

from dataclasses import replace
from typing import AbstractSet

from stream_dsl.ir.late_rows import late_rows_sink
from stream_dsl.ir.expr import Column, NamedExpr, columns_used
from stream_dsl.ir.plan import (
    Aggregate,
    Distinct,
    Filter,
    FinalAggregate,
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
    project,
    Unnest,
)

from optimizer.event_time import event_time_columns
from optimizer.rules.analysis import is_identity_project, same_or_new, select

Names = AbstractSet[str]


def prune_projections(plan: Plan) -> Plan:
    """Drop every column nobody above uses; the output schema stays exactly the same."""
    pruned = _prune(plan, frozenset(plan.schema.names))
    if pruned is plan:
        return plan
    return select(pruned, plan.schema)


def _prune(node: Plan, required: Names) -> Plan:
    """`node` computing at least the columns `required` (a superset is fine; the parent selects).

    The result's columns are the original's, in their order, less the pruned
    ones; their types do not change.
    """
    if not required and node.schema.names:  # (an aggregate of no keys and no aggregates has no columns)
        required = {_cheapest_column(node)}
    if isinstance(node, Scan):
        return _prune_scan(node, required)
    if isinstance(node, Filter):
        return same_or_new(node, (_prune(node.input, set(required) | columns_used(node.predicate)),))
    if isinstance(node, Limit):
        return same_or_new(node, (_prune(node.input, required),))
    if isinstance(node, Sort):
        return same_or_new(node, (_prune(node.input, set(required) | {k.column for k in node.keys}),))
    if isinstance(node, (Distinct, TopN)):
        return same_or_new(node, (_prune_exact(node.input, node.input.schema.names),))
    if isinstance(node, Unnest):  # the list column stays: it makes the rows
        return same_or_new(node, (_prune(node.input, (set(required) & set(node.input.schema.names)) | {node.column}),))
    if isinstance(node, Project):
        return _prune_project(node, required)
    if isinstance(node, Join):
        return _prune_join(node, required)
    if isinstance(node, Aggregate):
        return _prune_aggregate(node, required)
    if isinstance(node, Union):
        return _prune_union(node, required)
    if isinstance(node, (PartialAggregate, FinalAggregate)):
        return _prune_two_phase(node)
    raise TypeError(f"prune_projections does not know plan node {type(node).__name__}")


def _prune_exact(node: Plan, names: tuple[str, ...]) -> Plan:
    """`node` computing exactly `names`, in that order (for parents that read columns by position)."""
    return select(_prune(node, frozenset(names)), node.schema.select(names))


def _cheapest_column(node: Plan) -> str:
    """The one column to keep when a parent uses none but needs the rows (COUNT(*), SELECT 1)."""
    if isinstance(node, Scan):
        if node.source.watermark is not None:
            return node.source.watermark.column
        if node.predicate is not None and columns_used(node.predicate):
            return sorted(columns_used(node.predicate))[0]
    if isinstance(node, Project):
        for n in node.exprs:
            if isinstance(n.expr, Column):
                return n.name
    return node.schema.names[0]


def _prune_scan(node: Scan, required: Names) -> Plan:
    keep = set(required)
    if node.predicate is not None:
        keep |= columns_used(node.predicate)
    if node.source.watermark is not None:
        keep.add(node.source.watermark.column)
    current = node.schema.names
    columns = tuple(c for c in current if c in keep)
    if columns == current:
        return node
    return replace(node, columns=columns)


def _prune_project(node: Project, required: Names) -> Plan:
    kept = tuple(n for n in node.exprs if n.name in required)
    child = _prune(node.input, _named_columns(kept))
    if child is node.input and kept == node.exprs and not is_identity_project(node):
        return node
    return project(child, kept, span=node.span)


def _prune_join(node: Join, required: Names) -> Plan:
    left_needed = (set(required) & set(node.left.schema.names)) | set(node.left_keys)
    timed = node.interval
    right_columns = tuple(
        (c, out) for c, out in node.right_columns if out in required or (timed is not None and c == timed.right_time)
    )
    right_needed = {c for c, _ in right_columns} | set(node.right_keys)
    if timed is not None:
        left_needed.add(timed.left_time)
    if timed is None and is_streaming(node.left) and is_streaming(node.right):  # the state TTL reads these
        left_needed |= event_time_columns(node.left)
        right_needed |= event_time_columns(node.right)
    left, right = _prune(node.left, left_needed), _prune(node.right, right_needed)
    if left is node.left and right is node.right and right_columns == node.right_columns:
        return node
    return replace(node, left=left, right=right, right_columns=right_columns)


def _prune_aggregate(node: Aggregate, required: Names) -> Plan:
    # Keys and the window define the groups: they stay. An aggregate needs at least one output.
    aggs = tuple(a for a in node.aggs if a.name in required) or node.aggs[:1]
    needed = _named_columns(node.keys + aggs)
    if node.window is not None:
        needed.add(node.window.time_column)
        if late_rows_sink(node.input) is not None:  # routed late rows carry every column of the input
            needed |= set(node.input.schema.names)
    child = _prune(node.input, needed)
    if child is node.input and aggs == node.aggs:
        return node
    return replace(node, input=child, aggs=aggs)


def _prune_two_phase(node: PartialAggregate | FinalAggregate) -> Plan:
    # The two phases of a split aggregate agree on their state columns by position: nothing of theirs goes.
    needed = _named_columns(node.keys)
    if isinstance(node, PartialAggregate):
        needed |= _named_columns(node.aggs)
        if node.window is not None:
            needed.add(node.window.time_column)
    else:
        needed |= set(node.state_columns)
    return same_or_new(node, (_prune(node.input, needed),))


def _prune_union(node: Union, required: Names) -> Plan:
    # Inputs line up by position, so every input must produce exactly the kept positions.
    positions = [i for i, name in enumerate(node.schema.names) if name in required]
    inputs = []
    for child in node.inputs:
        names = tuple(child.schema.names[i] for i in positions)
        inputs.append(_prune_exact(child, names))
    return same_or_new(node, inputs)


def _named_columns(items: tuple[NamedExpr, ...]) -> set[str]:
    used: set[str] = set()
    for n in items:
        used |= columns_used(n.expr)
    return used
