"""Queries → logical plans: FROM (tables, views, CTEs, subqueries, joins),
WHERE, SELECT, GROUP BY / HAVING / windows / EMIT, DISTINCT, UNION, LIMIT.

The shared pieces (joins, unions, aggregation) are in `binder_plans`, so
the dataframe API builds the same plans through the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from stream_dsl.sql import ast
from stream_dsl.ir import expr as E
from stream_dsl.bind.expr import (
    ExprBinder,
    bind_expr,
    bind_predicate,
    has_aggregate,
    is_window_call,
    locate,
    output_names,
)
from stream_dsl.bind.plans import (
    OutputColumn,
    bind_window,
    build_join,
    build_union,
    plan_aggregate_query,
    right_output_names,
)
from stream_dsl.bind.join_names import outer_using_scope, qualified_name
from stream_dsl.bind.scope import Scope, match_names
from stream_dsl.bind.window_tvf import as_group_by_window, window_rows
from stream_dsl.bind.unnest import join_unnest, select_unnest
from stream_dsl.catalog import Catalog
from stream_dsl.errors import BindError, Span, did_you_mean
from stream_dsl.ir.definitions import EMIT_CHANGES, EMIT_FINAL, WindowSpec
from stream_dsl.ir.plan import Distinct, Filter, Limit, Plan, Sort, SortKey, project
from stream_dsl.ir.plan import Project
from stream_dsl.ir.plan import is_streaming
from stream_dsl.ir.changelog_plans import WINDOW_OVER_CHANGELOG, is_changelog
from stream_dsl.ir.interval import IntervalBounds
from stream_dsl.bind.interval_join import equal_time_bound, split_interval
from stream_dsl.ir.types import DataType

_EMIT = {"WINDOW CLOSE": EMIT_FINAL, "CHANGES": EMIT_CHANGES}


@dataclass(frozen=True)
class Env:
    """What names in FROM can refer to: the catalog, and the CTEs in scope (innermost last)."""

    catalog: Catalog
    ctes: tuple[tuple[str, Plan], ...] = ()
    text: str | None = None  # the statement text, so errors can point inside a node

    def with_cte(self, name: str, plan: Plan) -> "Env":
        return Env(self.catalog, self.ctes + ((name, plan),), self.text)

    def relation(self, name: str, span: Span | None) -> Plan:
        """A CTE (the innermost of that name) or else the catalog's stream, table or view."""
        names = [n for n, _ in self.ctes]
        found = match_names(name, reversed(names))
        if found:
            return next(p for n, p in reversed(self.ctes) if n == found[0])
        return self.catalog.resolve(name, span)


# ---------------------------------------------------------------- queries


def bind_query(query: ast.Query | ast.Select | ast.SetOp, env: Env) -> Plan:
    """Bind a full query (WITH, body, LIMIT), a lone SELECT, or a set operation."""
    if isinstance(query, ast.Select):
        return bind_select(query, env)
    if isinstance(query, ast.SetOp):
        return _bind_set_op(query, env)
    from stream_dsl.bind.top_n import inline_ranked_ctes  # it binds through this module

    query = inline_ranked_ctes(query)
    seen: set[str] = set()
    for name, cte in query.ctes:
        if name.lower() in seen:
            raise BindError(f"WITH defines '{name}' twice", span=cte.span)
        seen.add(name.lower())
        env = env.with_cte(name, bind_query(cte, env))
    plan = bind_query(query.body, env)
    if query.order_by:
        plan = Sort(plan, tuple(_sort_key(item, plan) for item in query.order_by), span=query.span)
    if query.limit is not None:
        plan = Limit(plan, query.limit, span=query.span)
    return plan


def _sort_key(item: ast.OrderItem, plan: Plan) -> SortKey:
    """An ORDER BY item as an output column: named (`views`, an alias) or by position (`2`)."""
    names = plan.schema.names
    e = item.expr
    if isinstance(e, ast.NumberLit) and isinstance(e.value, int):
        if not 1 <= e.value <= len(names):
            raise BindError(f"ORDER BY position {e.value} is not in the select list (1 to {len(names)})", span=e.span)
        column = names[e.value - 1]
    elif isinstance(e, ast.Identifier) and len(e.parts) == 1:
        found = match_names(e.parts[0], names)
        if len(found) != 1:
            raise BindError(
                f"ORDER BY '{e.parts[0]}' is not an output column of the query"
                f"{did_you_mean(e.parts[0], names)}; ORDER BY names output columns "
                f"({', '.join(names)}) by name or position",
                span=e.span,
            )
        column = found[0]
    else:
        raise BindError(
            "ORDER BY names an output column of the query, by name (or alias) or position; "
            "to sort by an expression, select it with an alias",
            span=item.span,
        )
    return SortKey(column, item.descending, item.nulls_first)


def _bind_set_op(op: ast.SetOp, env: Env) -> Plan:
    left, right = bind_query(op.left, env), bind_query(op.right, env)
    return build_union([left, right], distinct=not op.all, span=op.span)


# ---------------------------------------------------------------- SELECT


def bind_select(sel: ast.Select, env: Env) -> Plan:
    sel = as_group_by_window(sel)  # a window TVF grouped by its windows is the GROUP BY window form
    from stream_dsl.bind.top_n import bind_ranked_select, uses_row_number  # it binds through this module

    if uses_row_number(sel):
        return bind_ranked_select(sel, env)
    if sel.from_ is None:  # one row, as in DuckDB (bind/no_from.py)
        from stream_dsl.bind.no_from import one_row_relation

        plan, scope = one_row_relation(sel)
    else:
        plan, scope = bind_from(sel.from_, env)
    if sel.where is not None:
        plan = Filter(plan, bind_predicate(sel.where, scope, "WHERE", env.text), span=sel.where.span)
    aggregating = bool(sel.group_by) or sel.having is not None or any(has_aggregate(item.expr) for item in sel.items)
    if aggregating:
        plan = _bind_aggregation(sel, plan, scope, env.text)
    else:
        if sel.emit is not None:
            raise BindError(
                f"EMIT {sel.emit} needs an aggregation (GROUP BY or an aggregate function); "
                "a query without one emits every row as it arrives",
                span=_emit_span(sel, env.text),
            )
        items, plan, scope = select_unnest(sel.items, plan, scope, env.text)  # SELECT UNNEST(list)
        outputs = select_outputs(items, ExprBinder(scope, clause="SELECT", text=env.text), scope)
        plan = project(plan, [E.NamedExpr(o.name, o.expr) for o in outputs], span=sel.span)
    if sel.distinct:
        plan = Distinct(plan, span=sel.span)
    return plan


def select_outputs(items: Sequence[ast.SelectItem], binder: ExprBinder, scope: Scope) -> list[OutputColumn]:
    """Bind the select list: stars expand in order; every output gets a unique name.

    A column keeps the name the query knows it by (`r.k` is `k`, even when
    its plan column is `k_right`), as in DuckDB. DuckDB may repeat a name
    (`SELECT *` over a self join); a polars frame may not, so a later column
    whose name is taken is named by its alias, `r.k` (`join_names.py`).
    """
    bound: list[tuple[str | None, E.Expr, Span | None]] = []
    hints: list[str | None] = []
    alternates: list[str | None] = []
    visible = {c.column: c for c in scope.columns + scope.extras}
    for item in items:
        columns: list[E.Expr] = []
        if isinstance(item.expr, ast.Star):
            columns.extend(scope.expand_star(item.expr.qualifier, item.expr.span))
        else:
            columns.append(binder.bind(item.expr))
        for e in columns:
            seen = visible.get(e.name) if isinstance(e, E.Column) and item.alias is None else None
            bound.append((item.alias, e, item.span))
            hints.append(seen.name if seen is not None else None)
            alternates.append(qualified_name(seen) if seen is not None else None)
    names = output_names(bound, hints, alternates)
    return [OutputColumn(n, e) for n, (_, e, _) in zip(names, bound)]


def _emit_span(sel: ast.Select, text: str | None) -> Span | None:
    return locate(text, sel.span, r"\bEMIT\b", last=True)


def _bind_aggregation(sel: ast.Select, plan: Plan, scope: Scope, text: str | None) -> Plan:
    keys, window = _bind_group_by(sel, scope, text)
    if window is not None and is_changelog(plan):
        at = next((n for n in sel.group_by if is_window_call(_group_target(n, sel.items, scope))), sel)
        raise BindError(WINDOW_OVER_CHANGELOG, span=at.span)
    select_scope = scope.with_window_columns() if window is not None else scope
    binder = ExprBinder(select_scope, aggregates=True, clause="SELECT", text=text)
    outputs = select_outputs(sel.items, binder, select_scope)
    having = None
    if sel.having is not None:
        condition = _with_aliases(sel.having, sel.items, select_scope)
        having = ExprBinder(select_scope, aggregates=True, clause="HAVING", text=text).bind(condition)
    emit = _EMIT[sel.emit] if sel.emit is not None else None
    return plan_aggregate_query(
        plan, keys, window, outputs, having, emit, span=sel.span, emit_span=_emit_span(sel, text)
    )


def _bind_group_by(sel: ast.Select, scope: Scope, text: str | None) -> tuple[list[E.Expr], WindowSpec | None]:
    """GROUP BY items → key expressions and at most one window.

    An item may be an expression over the input, a select alias (when no
    input column has that name) or a 1-based position in the select list.
    """
    keys: list[E.Expr] = []
    window: WindowSpec | None = None
    for node in sel.group_by:
        target = _group_target(node, sel.items, scope)
        if is_window_call(target):
            if window is not None:
                raise BindError("only one window (TUMBLE, HOP or SESSION) is allowed per GROUP BY", span=node.span)
            window = bind_window(target, scope)
            continue
        if has_aggregate(target):
            raise BindError("aggregate functions are not allowed in GROUP BY", span=node.span)
        keys.append(bind_expr(target, scope, clause="GROUP BY", text=text))
    return keys, window


def _with_aliases(node: Any, items: Sequence[ast.SelectItem], scope: Scope) -> Any:
    """`node` with each name that is no input column but a select alias replaced by the aliased expression.

    So `HAVING n > 1` works for `COUNT(*) AS n`, as in DuckDB and MySQL (an input column of that name wins).
    """
    if isinstance(node, ast.Identifier):
        if len(node.parts) == 1 and not scope.lookup(node.parts):
            found = match_names(node.parts[0], [i.alias for i in items if i.alias is not None])
            if len(found) == 1:
                return next(i.expr for i in items if i.alias == found[0])
        return node
    return ast.rebuild(node, lambda n: _with_aliases(n, items, scope), keep=(ast.Select,))


def _group_target(node: ast.Expr, items: Sequence[ast.SelectItem], scope: Scope) -> ast.Expr:
    """The expression a GROUP BY item stands for (resolving positions and select aliases)."""
    if isinstance(node, ast.NumberLit) and isinstance(node.value, int):  # GROUP BY 2.5 groups by a constant
        if not 1 <= node.value <= len(items):
            raise BindError(
                f"GROUP BY position {node.value} is not in the select list (1 to {len(items)})", span=node.span
            )
        item = items[node.value - 1]
        if isinstance(item.expr, ast.Star):
            raise BindError(f"GROUP BY position {node.value} refers to '*'", span=node.span)
        if has_aggregate(item.expr):
            raise BindError(f"GROUP BY position {node.value} refers to an aggregate", span=node.span)
        return item.expr
    if isinstance(node, ast.Identifier) and len(node.parts) == 1 and not scope.lookup(node.parts):
        aliases = [i.alias for i in items if i.alias is not None]
        found = match_names(node.parts[0], aliases)
        if len(found) == 1:
            item = next(i for i in items if i.alias == found[0])
            if has_aggregate(item.expr):
                raise BindError(f"GROUP BY '{node.parts[0]}' refers to an aggregate", span=node.span)
            return item.expr
    return node


# ---------------------------------------------------------------- FROM


def bind_from(item: ast.FromItem, env: Env) -> tuple[Plan, Scope]:
    """A FROM item → its plan and the columns it makes visible."""
    if isinstance(item, ast.TableRef):
        plan = env.relation(item.name, item.span)
        return plan, Scope.from_schema(plan.schema, item.alias or item.name)
    if isinstance(item, ast.SubqueryRef):
        plan = bind_query(item.query, env)
        return plan, Scope.from_schema(plan.schema, item.alias)
    if isinstance(item, ast.Join) and isinstance(item.right, ast.Unnest):  # bind/unnest.py
        return join_unnest(item, *bind_from(item.left, env), env.text)
    if isinstance(item, ast.Unnest):
        raise BindError(
            "UNNEST in FROM follows the stream it unnests: FROM s CROSS JOIN UNNEST(s.list)", span=item.span
        )
    if isinstance(item, ast.Join):
        return _bind_join(item, env)
    if isinstance(item, ast.WindowTVF):
        return window_rows(item, *bind_from(item.table, env))
    raise BindError(f"cannot use {type(item).__name__} in FROM", span=getattr(item, "span", None))


_UNSUPPORTED_JOINS: dict[str, str] = {}  # join keywords refused with a reason (RIGHT, FULL and CROSS now run)


def _bind_join(j: ast.Join, env: Env) -> tuple[Plan, Scope]:
    if j.kind in _UNSUPPORTED_JOINS and not (j.kind in ("RIGHT", "FULL") and j.on is not None):
        raise BindError(_UNSUPPORTED_JOINS[j.kind], span=j.span)
    left, left_scope = bind_from(j.left, env)
    right, right_scope = bind_from(j.right, env)
    kind = j.kind.split()[0].lower()
    if kind == "cross":
        return _bind_cross(j, left, left_scope, right, right_scope)
    if j.using is not None:
        return _bind_using(j, kind, left, left_scope, right, right_scope, env.text)
    return _bind_on(j, kind, left, left_scope, right, right_scope, env.text)


def _bind_using(
    j: ast.Join, kind: str, left: Plan, left_scope: Scope, right: Plan, right_scope: Scope, text: str | None
) -> tuple[Plan, Scope]:
    assert j.using is not None  # the caller picks USING joins
    left_keys: list[str] = []
    right_keys: list[str] = []
    for name in j.using:
        for side, scope, keys in (("left", left_scope, left_keys), ("right", right_scope, right_keys)):
            found = scope.lookup((name,))
            if len(found) != 1:
                problem = "is not a column of" if not found else "is ambiguous in"
                span = locate(text, j.span, rf"USING\s*\([^)]*?(?<![\w])[\"`]?({re.escape(name)})\b", last=True)
                raise BindError(f"USING column '{name}' {problem} the {side} side", span=span)
            keys.append(found[0].column)
    result = build_join(left, right, kind, left_keys, right_keys, keep_right_keys=False, span=_join_span(j))
    if result.own_keys:
        return result.plan, outer_using_scope(left_scope, right_scope, result.right_names, result.own_keys)
    scope = left_scope + right_scope.renamed(result.right_names)
    right_quals = tuple(right_scope.qualifiers)
    for key in left_keys:
        scope = scope.merge_using(key, right_quals)
    return result.plan, scope


def _bind_on(
    j: ast.Join, kind: str, left: Plan, left_scope: Scope, right: Plan, right_scope: Scope, text: str | None
) -> tuple[Plan, Scope]:
    assert j.on is not None  # a join has exactly one of ON and USING
    names = right_output_names(left.schema.names, right.schema.names)
    scope = left_scope + right_scope.renamed(names)
    condition = bind_predicate(j.on, scope, "JOIN ... ON", text)
    left_cols = set(left.schema.names)
    original = {out: col for col, out in names.items()}
    left_keys, right_keys, others = [], [], []
    for part in E.conjuncts(condition):
        pair = _key_pair(part, left_cols, original)
        if pair is None:
            others.append(part)
        else:
            left_keys.append(pair[0])
            right_keys.append(pair[1])
    if not left_keys:
        raise BindError(
            "JOIN ... ON needs an equality between a column of each side, e.g. ON a.id = b.id", span=j.on.span
        )
    bounds = None
    if is_streaming(left) and is_streaming(right):  # an interval join (bind/interval_join.py), or a regular one
        equal_time_bound(left, right, left_keys, right_keys, j.on.span)  # refuses half a window join, at ON
        bounds, others = split_interval(others, left_cols, original, j.on.span)
        if kind in ("right", "full") and others:
            raise BindError(
                f"a {kind.upper()} JOIN of two streams takes key equalities and the time bound in ON only; "
                "filter its inputs in subqueries",
                span=others[0].span or j.on.span,
            )
    elif kind in ("right", "full") and others:
        raise BindError(
            f"{kind.upper()} JOIN ... ON supports only equalities between a column of each side; "
            "filter the table in a subquery for other conditions",
            span=others[0].span or j.on.span,
        )
    guard = None
    if kind == "left" and others:
        on_left = [p for p in others if E.columns_used(p) <= left_cols]
        on_right = [p for p in others if p not in on_left]
        for part in on_right:
            if not E.columns_used(part) <= set(original):
                raise BindError(
                    "LEFT JOIN ... ON supports equalities and conditions on one side at a time",
                    span=part.span or j.on.span,
                )
        if on_right:
            back = {out: E.Column(col, right.schema.dtype(col)) for out, col in original.items()}
            right_condition = E.conjoin(on_right)
            assert right_condition is not None  # `on_right` is not empty
            right = Filter(right, E.rename_columns(right_condition, back), span=j.on.span)
        guard = E.conjoin(on_left) if on_left else None
        others = []
    if guard is not None:
        plan = _left_join_guarded(left, right, left_keys, right_keys, guard, j, bounds)
    else:
        plan = build_join(left, right, kind, left_keys, right_keys, span=_join_span(j), interval=bounds).plan
    if others:
        extra = E.conjoin(others)
        assert extra is not None  # `others` is not empty
        plan = Filter(plan, extra, span=j.on.span)
    return plan, scope


def _bind_cross(j: ast.Join, left: Plan, left_scope: Scope, right: Plan, right_scope: Scope) -> tuple[Plan, Scope]:
    """`a CROSS JOIN b`: every pair of rows (one side must be a table, which is broadcast)."""
    result = build_join(left, right, "cross", (), (), span=_join_span(j))
    return result.plan, left_scope + right_scope.renamed(result.right_names)


def _left_join_guarded(
    left: Plan,
    right: Plan,
    left_keys: list[str],
    right_keys: list[str],
    guard: E.Expr,
    j: ast.Join,
    interval: IntervalBounds | None = None,
) -> Plan:
    """`left LEFT JOIN right ON keys AND guard(left)`: a left row failing `guard` matches nothing, and stays.

    Its join keys are made NULL (`CASE WHEN guard THEN key END`), and a NULL
    key matches no row, so the row comes out once with NULLs on the right,
    as in SQL; the guarded keys are then projected away.
    """
    assert j.on is not None  # the guard is part of the ON clause
    fields = left.schema.fields
    guarded = [f"__sd_on{i}" for i in range(len(left_keys))]
    keys = [
        E.NamedExpr(
            g,
            E.Case(((guard, E.Column(k, left.schema.dtype(k))),), E.Literal(None, DataType.NULL), left.schema.dtype(k)),
        )
        for g, k in zip(guarded, left_keys)
    ]
    widened = Project(
        left, tuple(E.NamedExpr(f.name, E.Column(f.name, f.dtype)) for f in fields) + tuple(keys), span=j.on.span
    )
    joined = build_join(widened, right, "left", guarded, right_keys, span=_join_span(j), interval=interval).plan
    return Project(
        joined,
        tuple(E.NamedExpr(f.name, E.Column(f.name, f.dtype)) for f in joined.schema if f.name not in guarded),
        span=j.on.span,
    )


def _join_span(j: ast.Join) -> Span | None:
    """Where a join's errors point: its right side, the item being joined."""
    return getattr(j.right, "span", None) or j.span


def _key_pair(e: E.Expr, left_cols: set[str], right_original: dict[str, str]) -> tuple[str, str] | None:
    """(left column, right column) if `e` is `left = right` (either way round), else None."""
    if not (isinstance(e, E.Binary) and e.op == "=" and isinstance(e.left, E.Column) and isinstance(e.right, E.Column)):
        return None
    a, b = e.left.name, e.right.name
    if a in left_cols and b in right_original:
        return a, right_original[b]
    if b in left_cols and a in right_original:
        return b, right_original[a]
    return None
