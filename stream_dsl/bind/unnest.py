"""UNNEST: a row per element of a list, in FROM or as a select item (an `Unnest` plan node).

- `FROM s CROSS JOIN UNNEST(s.tags) AS t(tag)`, `FROM s, UNNEST(tags) AS t(tag)`
  (Flink, Trino): each row of `s` once per element of its list, the element
  as `tag`; a row whose list is empty or NULL gives no row. `LEFT JOIN
  UNNEST(...) ON TRUE` keeps it, with a NULL element (Flink). `WITH
  ORDINALITY` adds the 1-based position (named by the second alias column,
  else `ordinality`). Without a column list the element takes the alias's
  name (PostgreSQL), else `unnest`.
- `SELECT UNNEST(tags), x FROM s` (DuckDB): the same rows, the element as a
  select item. One UNNEST per select list, as a whole item.

The list may be any expression over the items before it; one that is not a
column is computed by a projection first.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from stream_dsl.bind.expr import ExprBinder, generated_name, unique_name
from stream_dsl.bind.scope import Scope, ScopeColumn
from stream_dsl.errors import BindError, Span
from stream_dsl.ir import expr as E
from stream_dsl.ir.plan import Plan, Project, Unnest
from stream_dsl.ir.types import DataType, list_of
from stream_dsl.sql import ast

_LIST_COLUMN = "__sd_unnest"


def _list_column(plan: Plan, scope: Scope, node: ast.Expr, text: str | None, span: Span | None) -> tuple[Plan, str]:
    """The plan with the list to unnest as a column of its own, and that column's name."""
    bound = ExprBinder(scope, clause="UNNEST", text=text).bind(node)
    if bound.dtype is DataType.NULL:
        bound = E.Cast(bound, list_of(DataType.NULL), span=bound.span)
    if not bound.dtype.is_list:
        raise BindError(f"UNNEST needs a list, got {bound.dtype.value} in {E.render(bound)}", span=span)
    if isinstance(bound, E.Column):
        return plan, bound.name
    name = unique_name(_LIST_COLUMN, set(plan.schema.names))
    passed = [E.NamedExpr(f.name, E.Column(f.name, f.dtype)) for f in plan.schema]
    return Project(plan, tuple(passed) + (E.NamedExpr(name, bound),), span=span), name


def join_unnest(j: ast.Join, left: Plan, left_scope: Scope, text: str | None) -> tuple[Plan, Scope]:
    """`left CROSS JOIN UNNEST(...)`, `left, UNNEST(...)` or `left LEFT JOIN UNNEST(...) ON TRUE`."""
    u = j.right
    assert isinstance(u, ast.Unnest)
    on_true = isinstance(j.on, ast.BoolLit) and j.on.value is True
    kind = j.kind.split()[0].upper()
    if not (kind == "CROSS" or (kind in ("INNER", "LEFT") and on_true)):
        raise BindError(
            "UNNEST joins as CROSS JOIN UNNEST(...), `, UNNEST(...)` or [LEFT] JOIN UNNEST(...) ON TRUE", span=u.span
        )
    if len(u.columns) > 1 + u.ordinality:
        wanted = "two column names (element, ordinality)" if u.ordinality else "one column name"
        raise BindError(f"UNNEST gives {wanted}, got {len(u.columns)}", span=u.span)
    plan, column = _list_column(left, left_scope, u.expr, text, u.span)
    taken = set(plan.schema.names)
    element_name = u.columns[0] if u.columns else u.alias or "unnest"
    element = unique_name(element_name, taken)
    ordinality_name = (u.columns[1] if len(u.columns) > 1 else "ordinality") if u.ordinality else None
    ordinality = unique_name(ordinality_name, taken) if ordinality_name else None
    node = Unnest(plan, column, element, ordinality, outer=kind == "LEFT", span=u.span)
    quals = (u.alias,) if u.alias else ()
    added = [ScopeColumn(element_name, element, node.schema.dtype(element), quals)]
    if ordinality_name and ordinality:
        added.append(ScopeColumn(ordinality_name, ordinality, DataType.BIGINT, quals))
    return node, left_scope + Scope(tuple(added))


def _is_unnest(node: object) -> bool:
    return isinstance(node, ast.FuncCall) and node.name.upper() == "UNNEST"


def select_unnest(
    items: Sequence[ast.SelectItem], plan: Plan, scope: Scope, text: str | None
) -> tuple[Sequence[ast.SelectItem], Plan, Scope]:
    """`SELECT UNNEST(list), ...`: the plan unnested and the item reading the element (DuckDB)."""
    from stream_dsl.bind.expr import ast_walk

    whole = [i for i, item in enumerate(items) if _is_unnest(item.expr)]
    nested = [n for item in items for n in ast_walk(item.expr) if _is_unnest(n) and n is not item.expr]
    if nested:
        raise BindError("UNNEST must be a whole select item (or in FROM)", span=getattr(nested[0], "span", None))
    if not whole:
        return items, plan, scope
    if len(whole) > 1:
        raise BindError("one UNNEST per select list is supported", span=items[whole[1]].span)
    item = items[whole[0]]
    call = item.expr
    assert isinstance(call, ast.FuncCall)
    if len(call.args) != 1 or call.star or call.distinct:
        raise BindError(f"UNNEST takes one list, got {len(call.args)} argument(s)", span=call.span)
    plan, column = _list_column(plan, scope, call.args[0], text, call.span)
    bound = ExprBinder(scope, text=text).bind(call.args[0])
    name = unique_name("unnest_" + (generated_name(bound) or "list"), set(plan.schema.names))
    node = Unnest(plan, column, name, span=call.span)
    element = ScopeColumn(name, name, node.schema.dtype(name))
    scope = Scope(scope.columns, scope.extras + (element,))  # by name, not by `*`
    reading = replace(item, expr=ast.Identifier((name,), span=call.span), alias=item.alias or name)
    return [reading if i == whole[0] else it for i, it in enumerate(items)], node, scope
