"""Predicate pushdown: move each conjunct of a Filter as close to the source as it stays exact.

A Filter's predicate is split into conjuncts; each one moves down on its
own, and what cannot move stays where it was. Only deterministic conjuncts
without aggregates move. Correctness condition, per node kind:

- Project: `filter(p, project(e, x)) == project(e, filter(p[e], x))`, where
  `p[e]` substitutes each projected column by its expression (only when those
  expressions are deterministic, so computing them twice is the same).
- Join: `filter(p, join(l, r)) == join(filter(p, l), r)` when p uses only
  left columns (INNER, LEFT and CROSS); for an INNER, RIGHT or CROSS join
  also `== join(l, filter(p, r))` when p uses only right columns. Never into
  the side a join pads with NULLs (the right of a LEFT join, the left of a
  RIGHT join, either of a FULL join): that would turn unmatched rows into
  NULL rows instead of removing them. A conjunct on INNER join keys alone is also
  copied to the other side (`l.k = r.k` and `p(l.k)` imply `p(r.k)`) when
  both keys have the same, non-DOUBLE type.
- Union: `filter(p, union(a, b)) == union(filter(p, a), filter(p', b))`,
  p' naming b's columns by position.
- Distinct: `filter(p, distinct(x)) == distinct(filter(p, x))`: p sees a
  whole row, and equal rows pass or fail together.
- Aggregate: `filter(p, agg(k, x)) == agg(k, filter(p, x))` when p uses only
  group keys that are plain input columns (all rows of a group share them);
  never conjuncts on window_start, window_end or aggregate results.
- Scan: `filter(p, scan(s)) == scan(s, predicate=p)`: the executor applies
  `Scan.predicate` exactly, so the Filter goes away. The watermark is
  computed from the rows read, before the scan predicate, so it is the same.
- Sort: `filter(p, sort(x)) == sort(filter(p, x))`: filtering keeps the
  order of the rows it keeps.
- TopN: `filter(p, topn(x)) == topn(filter(p, x))` when p uses only
  partition columns (a partition passes or fails whole); never a conjunct
  on the row number or on other columns (that would change the ranking).
- Limit: nothing moves below it (the first n rows of a filtered result are
  not the filtered first n rows).

Example (before, after):

>>> import stream_dsl as sd
>>> from stream_dsl.ir.plan import render_plan
>>> ctx = sd.Context(check_files=False)  # plans only: the files are not there
>>> ctx.sql("CREATE STREAM s (a BIGINT, b STRING) WITH (connector = 'files', path = 's/', format = 'ndjson')")
>>> ctx.sql("CREATE TABLE t (b STRING, c STRING) WITH (connector = 'files', path = 't.csv', format = 'csv')")
>>> plan = ctx.sql("SELECT * FROM (SELECT a * 2 AS a2, b FROM s) JOIN t USING (b) "
...                "WHERE a2 > 10 AND c = 'x' AND b = 'y'").plan
>>> print(render_plan(plan))
Filter (((a2 > 10) AND (c = 'x')) AND (b = 'y'))
  Join inner on [b = b] right=[c]
    Project a2 := (a * 2), b
      Scan stream s
    Scan table t
>>> print(render_plan(push_down_predicates(plan)))
Join inner on [b = b] right=[c]
  Project a2 := (a * 2), b
    Scan stream s predicate=(((a * 2) > 10) AND (b = 'y'))
  Scan table t predicate=((c = 'x') AND (b = 'y'))
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from stream_dsl.ir.expr import Column, Expr, columns_used, conjoin, conjuncts, rename_columns
from stream_dsl.ir.plan import Aggregate, Distinct, Filter, Join, Plan, Project, Scan, Sort, TopN, Union, Unnest
from stream_dsl.ir.types import DataType

from optimizer.rules.analysis import filtered, movable, same_or_new

Predicates = list[Expr]


def push_down_predicates(plan: Plan) -> Plan:
    """Move every movable conjunct of every Filter as far down as it stays exact (see the module doc)."""
    if isinstance(plan, Filter):
        child = push_down_predicates(plan.input)
        pushed, rest = _sink(child, conjuncts(plan.predicate))
        if pushed is child:
            return same_or_new(plan, (child,))
        return filtered(pushed, rest)
    return same_or_new(plan, (push_down_predicates(c) for c in plan.inputs))


def _sink(node: Plan, predicates: Predicates) -> tuple[Plan, Predicates]:
    """Push `predicates` into or below `node`.

    Returns the new node and the predicates that must still be applied above
    it; the node is the same object when nothing moved.
    """
    movable_here = [p for p in predicates if movable(p)]
    if not movable_here:
        return node, predicates
    stuck = [p for p in predicates if not movable(p)]
    sink = _SINKS.get(type(node))
    if sink is None:  # Limit, and anything unknown: nothing moves below it
        return node, predicates
    new_node, rest = sink(node, movable_here)
    if new_node is node:
        return node, predicates
    return new_node, rest + stuck


def _below(node: Plan, predicates: Predicates) -> Plan:
    """`node` with `predicates` applied: pushed into it as far as they go, a Filter above for the rest."""
    if not predicates:
        return node
    pushed, rest = _sink(node, predicates)
    return filtered(pushed, rest)


def _into_scan(node: Scan, predicates: Predicates) -> tuple[Plan, Predicates]:
    existing = conjuncts(node.predicate) if node.predicate is not None else []
    return replace(node, predicate=conjoin(existing + predicates)), []


def _through_filter(node: Filter, predicates: Predicates) -> tuple[Plan, Predicates]:
    # Filters commute; a predicate that gets below this one makes progress, the others wait above.
    pushed, rest = _sink(node.input, predicates)
    if pushed is node.input:
        return node, predicates
    return replace(node, input=pushed), rest


def _through_project(node: Project, predicates: Predicates) -> tuple[Plan, Predicates]:
    by_name = {n.name: n.expr for n in node.exprs}
    down, rest = [], []
    for p in predicates:
        if all(movable(by_name[c]) for c in columns_used(p)):
            down.append(rename_columns(p, by_name))
        else:
            rest.append(p)
    if not down:
        return node, predicates
    return replace(node, input=_below(node.input, down)), rest


# A predicate on one side's columns goes below the join only if the join never makes that side NULL:
# a RIGHT join's left columns are NULL in its unmatched rows (which the filter may keep), a FULL join's both.
_KEEPS_LEFT_NULLS_AWAY = ("inner", "left", "cross")
_KEEPS_RIGHT_NULLS_AWAY = ("inner", "right", "cross")


def _through_join(node: Join, predicates: Predicates) -> tuple[Plan, Predicates]:
    if node.kind == "full":  # a FULL (interval) join keeps unmatched rows of both sides: nothing goes below it
        return node, predicates
    left_names = set(node.left.schema.names)
    right_of = {out: Column(col, node.right.schema.dtype(col)) for col, out in node.right_columns}
    same_keys = _transferable_keys(node)
    to_left, to_right, rest = [], [], []
    for p in predicates:
        used = columns_used(p)
        if used <= left_names and node.kind in _KEEPS_LEFT_NULLS_AWAY:
            to_left.append(p)
            if used and used <= set(same_keys):
                to_right.append(rename_columns(p, same_keys))
        elif used <= set(right_of) and node.kind in _KEEPS_RIGHT_NULLS_AWAY:
            to_right.append(rename_columns(p, right_of))
        else:
            rest.append(p)
    if not to_left and not to_right:
        return node, predicates
    return replace(node, left=_below(node.left, to_left), right=_below(node.right, to_right)), rest


def _transferable_keys(node: Join) -> dict[str, Expr]:
    """Left key → the right key it equals, for INNER joins on keys of one exact, non-DOUBLE type."""
    if node.kind != "inner":
        return {}
    keys: dict[str, Expr] = {}
    for left, right in zip(node.left_keys, node.right_keys):
        dtype = node.left.schema.dtype(left)
        if dtype is node.right.schema.dtype(right) and dtype not in (DataType.DOUBLE, DataType.NULL):
            keys[left] = Column(right, dtype)
    return keys


def _through_union(node: Union, predicates: Predicates) -> tuple[Plan, Predicates]:
    names = node.schema.names
    inputs = []
    for child in node.inputs:
        by_position = {n: Column(f.name, f.dtype) for n, f in zip(names, child.schema)}
        inputs.append(_below(child, [rename_columns(p, by_position) for p in predicates]))
    return replace(node, inputs=tuple(inputs)), []


def _through_distinct(node: Distinct | Sort, predicates: Predicates) -> tuple[Plan, Predicates]:
    return replace(node, input=_below(node.input, predicates)), []


def _through_aggregate(node: Aggregate, predicates: Predicates) -> tuple[Plan, Predicates]:
    plain_keys = {k.name: k.expr for k in node.keys if isinstance(k.expr, Column)}
    down, rest = [], []
    for p in predicates:
        used = columns_used(p)
        if used and used <= set(plain_keys):
            down.append(rename_columns(p, plain_keys))
        else:
            rest.append(p)
    if not down:
        return node, predicates
    return replace(node, input=_below(node.input, down)), rest


def _through_top_n(node: TopN, predicates: Predicates) -> tuple[Plan, Predicates]:
    partition = set(node.partition_by)
    down = [p for p in predicates if columns_used(p) and columns_used(p) <= partition]
    if not down:
        return node, predicates
    return replace(node, input=_below(node.input, down)), [p for p in predicates if p not in down]


def _through_unnest(node: Unnest, predicates: Predicates) -> tuple[Plan, Predicates]:
    """A predicate on the input's columns holds for every element's row or for none: it goes below."""
    inner = set(node.input.schema.names)
    down = [p for p in predicates if columns_used(p) and columns_used(p) <= inner]
    if not down:
        return node, predicates
    return replace(node, input=_below(node.input, down)), [p for p in predicates if p not in down]


# each sink takes a node of its key's type, which a dict's type cannot say
_SINKS: dict[type, Callable[[Any, Predicates], tuple[Plan, Predicates]]] = {
    Scan: _into_scan,
    Filter: _through_filter,
    Project: _through_project,
    Join: _through_join,
    Union: _through_union,
    Distinct: _through_distinct,
    Aggregate: _through_aggregate,
    Sort: _through_distinct,
    TopN: _through_top_n,
    Unnest: _through_unnest,
}
