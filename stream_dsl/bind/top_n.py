"""ROW_NUMBER() OVER (...) → TopN: window top-N, QUALIFY, and deduplication, as Flink SQL writes them.

The forms that bind (any other use of a window function is refused, at its position):

- a subquery that numbers its rows, filtered by the number in the enclosing WHERE:
  `SELECT ... FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY p ORDER BY o) AS rn FROM x) WHERE rn <= N`
  (also `rn < N`, `rn = 1`, `N >= rn`; other WHERE conditions stay a filter after the ranking);
- the same subquery as a WITH query read by the filtering query (`inline_ranked_ctes`);
- QUALIFY, its shorthand: `SELECT ... FROM x QUALIFY ROW_NUMBER() OVER (...) <= N`, or `QUALIFY rn <= N`
  with `rn` the alias of a ROW_NUMBER() in the select list.

What it means (`TopN.kind`): PARTITION BY window_start, window_end (and keys) over a windowed aggregate
that emits on window close is a top-N per window; any other partition is a deduplication, which keeps
the first row per key (rn = 1, ORDER BY an event-time column ascending). See `executor/state/top_n.py`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Sequence

from stream_dsl.bind.expr import ExprBinder, ast_walk, bind_expr, has_aggregate
from stream_dsl.bind.scope import Scope
from stream_dsl.errors import BindError, Span
from stream_dsl.ir import expr as E
from stream_dsl.ir.column_names import WINDOW_END, WINDOW_START
from stream_dsl.ir.definitions import EMIT_FINAL
from stream_dsl.ir.plan import Aggregate, FinalAggregate, Filter, Plan, Project, SortKey, TopN, project
from stream_dsl.ir.types import DataType, Field, Schema
from stream_dsl.sql import ast

if TYPE_CHECKING:
    from stream_dsl.bind.query import Env

SUPPORTED = (
    "ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) is supported only to keep the first rows of each "
    "partition: number the rows in a subquery and filter the number in the enclosing WHERE "
    "(rn <= N, rn < N or rn = 1), or write QUALIFY ROW_NUMBER() OVER (...) <= N"
)
_NUMBER = "__sd_row_number"  # the TopN's number column when its name would clash with an input column
_RANKED = "__sd_ranked"  # the CTE name the ranked subquery is bound under


def window_calls(node: object) -> list[ast.WindowCall]:
    return [n for n in ast_walk(node) if isinstance(n, ast.WindowCall)]


def _numbered_items(sel: ast.Select) -> list[int]:
    return [i for i, item in enumerate(sel.items) if isinstance(item.expr, ast.WindowCall)]


def _ranked_subquery(sel: ast.Select) -> ast.Select | None:
    """The SELECT of `sel`'s FROM when it is a subquery that numbers its rows."""
    if not isinstance(sel.from_, ast.SubqueryRef):
        return None
    inner: object = sel.from_.query
    if isinstance(inner, ast.Query) and not inner.ctes and inner.limit is None and not inner.order_by:
        inner = inner.body
    return inner if isinstance(inner, ast.Select) and _numbered_items(inner) else None


def uses_row_number(sel: ast.Select) -> bool:
    """Whether `sel` (or the subquery in its FROM) has a window function: then `bind_ranked_select` binds it."""
    if sel.qualify is not None or _ranked_subquery(sel) is not None:
        return True
    parts: list[object] = [i.expr for i in sel.items] + [sel.where, sel.having, *sel.group_by]
    return any(window_calls(p) for p in parts if p is not None)


def bind_ranked_select(sel: ast.Select, env: "Env") -> Plan:
    from stream_dsl.bind.query import bind_select

    inner = _ranked_subquery(sel)
    if inner is not None:
        _refuse_window_calls(sel, [i.expr for i in sel.items] + [sel.where, sel.having, sel.qualify, *sel.group_by])
        assert isinstance(sel.from_, ast.SubqueryRef)  # _ranked_subquery checked
        index = _numbered_items(inner)[0]
        name = inner.items[index].alias
        if name is None:
            raise BindError("name the row number, e.g. ROW_NUMBER() OVER (...) AS rn", span=inner.items[index].span)
        qualifier = sel.from_.alias
        conditions = _conjuncts(sel.where)
        limits = [c for c in conditions if _mentions(c, name, qualifier)]
        if not limits:
            raise BindError(
                f"the row number '{name}' must be filtered in this WHERE (e.g. WHERE {name} <= 3): "
                "a query that numbers every row is a changelog, which is not supported; " + SUPPORTED,
                span=inner.items[index].expr.span,
            )
        if len(limits) > 1:
            raise BindError(f"filter the row number '{name}' once (rn <= N, rn < N or rn = 1)", span=limits[1].span)
        n = _limit(limits[0], lambda e: _is_name(e, name, qualifier))
        plan = _bind_ranked(inner, env, n, limits[0].span)
        rest = [c for c in conditions if c is not limits[0]]
        where = None
        for c in rest:
            where = c if where is None else ast.BinaryOp("AND", where, c, span=c.span)
        scoped = env.with_cte(_RANKED, plan)
        table = ast.TableRef(_RANKED, qualifier, span=sel.from_.span)
        return bind_select(dataclasses.replace(sel, from_=table, where=where), scoped)
    if sel.qualify is None:
        call = next(c for p in [i.expr for i in sel.items] + [sel.where, sel.having] if p for c in window_calls(p))
        raise BindError(SUPPORTED, span=call.span)
    _refuse_window_calls(sel, [sel.where, sel.having, *sel.group_by])
    condition = sel.qualify
    numbered = _numbered_items(sel)
    aliases = [a for i in numbered if (a := sel.items[i].alias) is not None]

    def is_number(e: ast.Expr) -> bool:
        return isinstance(e, ast.WindowCall) or any(_is_name(e, a, None) for a in aliases)

    n = _limit(condition, is_number)
    calls = window_calls(condition) + [e for i in numbered if isinstance(e := sel.items[i].expr, ast.WindowCall)]
    if any(c != calls[0] for c in calls[1:]):
        raise BindError("QUALIFY and the select list must use the same ROW_NUMBER() OVER (...)", span=condition.span)
    return _bind_ranked(dataclasses.replace(sel, qualify=None), env, n, condition.span, calls[0])


def _refuse_window_calls(sel: ast.Select, parts: Sequence[object]) -> None:
    for p in parts:
        if p is not None:
            for call in window_calls(p):
                raise BindError(SUPPORTED, span=call.span)


def _conjuncts(e: ast.Expr | None) -> list[ast.Expr]:
    if e is None:
        return []
    if isinstance(e, ast.BinaryOp) and e.op == "AND":
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def _is_name(e: object, name: str, qualifier: str | None) -> bool:
    if not isinstance(e, ast.Identifier):
        return False
    parts = tuple(p.lower() for p in e.parts)
    return parts == (name.lower(),) or (qualifier is not None and parts == (qualifier.lower(), name.lower()))


def _mentions(e: ast.Expr, name: str, qualifier: str | None) -> bool:
    return any(_is_name(n, name, qualifier) for n in ast_walk(e))


_FLIPPED = {"<=": ">=", "<": ">", "=": "=", ">=": "<=", ">": "<"}


def _limit(condition: ast.Expr, is_number: Callable[[ast.Expr], bool]) -> int:
    """N of `rn <= N`, `rn < N + 1`... (`rn = 1` is 1); anything else on the number is refused."""
    problem = "filter the row number with rn <= N, rn < N or rn = 1, N a positive whole number"
    if not isinstance(condition, ast.BinaryOp) or condition.op not in _FLIPPED:
        raise BindError(problem, span=condition.span)
    op, left, right = condition.op, condition.left, condition.right
    if is_number(right) and not is_number(left):
        op, left, right = _FLIPPED[op], right, left
    if not is_number(left) or not isinstance(right, ast.NumberLit) or not isinstance(right.value, int):
        raise BindError(problem, span=condition.span)
    value = right.value
    n = {"<=": value, "<": value - 1, "=": 1 if value == 1 else 0}.get(op, 0)
    if n < 1:
        raise BindError(problem, span=condition.span)
    return n


def _bind_ranked(
    sel: ast.Select, env: "Env", n: int, limit_span: Span | None, call: ast.WindowCall | None = None
) -> Plan:
    """A SELECT whose list numbers its rows (or whose QUALIFY does, `call`), keeping the first `n` per partition."""
    from stream_dsl.bind.query import bind_from, select_outputs

    numbered = _numbered_items(sel)
    if len(numbered) > 1:
        raise BindError("number the rows once per SELECT", span=sel.items[numbered[1]].span)
    if call is None:
        call = sel.items[numbered[0]].expr  # type: ignore[assignment]
    assert isinstance(call, ast.WindowCall)
    for item in sel.items:
        if not isinstance(item.expr, ast.WindowCall) and window_calls(item.expr):
            raise BindError(SUPPORTED, span=window_calls(item.expr)[0].span)
    if call.func.name != "ROW_NUMBER" or call.func.args or call.func.star or call.func.distinct:
        raise BindError(
            f"{call.func.name}() OVER (...) is not supported; only ROW_NUMBER() (top-N and deduplication)",
            span=call.func.span,
        )
    if sel.group_by or sel.having is not None or any(has_aggregate(i.expr) for i in sel.items) or sel.distinct:
        raise BindError(
            "ROW_NUMBER() cannot number the rows of an aggregation in the same SELECT: "
            "aggregate in a subquery, then number its rows in the SELECT around it",
            span=call.span,
        )
    if sel.emit is not None:
        raise BindError("EMIT belongs to the aggregation, not to ROW_NUMBER()", span=sel.span)
    if sel.from_ is None:
        raise BindError("SELECT needs a FROM clause: a query reads a stream or a table", span=sel.span)
    plan, scope = bind_from(sel.from_, env)
    if sel.where is not None:
        from stream_dsl.bind.expr import bind_predicate

        plan = Filter(plan, bind_predicate(sel.where, scope, "WHERE", env.text), span=sel.where.span)
    partition = tuple(_column(e, scope, "PARTITION BY", env.text) for e in call.partition_by)
    order = tuple(
        SortKey(_column(o.expr, scope, "ORDER BY", env.text), o.descending, o.nulls_first) for o in call.order_by
    )
    if not order:
        raise BindError("ROW_NUMBER() needs ORDER BY inside OVER (...): which rows come first", span=call.span)
    windowed = {WINDOW_START, WINDOW_END} <= set(partition)
    if windowed:
        if not closes_windows(plan):
            raise BindError(
                "a top-N per window (PARTITION BY window_start, window_end) needs the rows of a windowed "
                "aggregate that emits on window close (GROUP BY TUMBLE/HOP/SESSION(...) in a subquery)",
                span=call.span,
            )
    else:
        if n != 1:
            raise BindError(
                "without windows only the first row per key is kept (rn = 1, deduplication): a top-N over a "
                "whole stream changes as rows arrive; PARTITION BY window_start, window_end to rank per window",
                span=limit_span,
            )
        first = call.order_by[0]
        if plan.schema.dtype(order[0].column) is not DataType.TIMESTAMP or first.descending:
            raise BindError(
                "deduplication keeps the first row per key: ORDER BY an event-time (TIMESTAMP) column ASC. "
                "Keeping the last row (DESC) would retract rows already emitted; it is supported per window "
                "only (PARTITION BY window_start, window_end, ...)",
                span=first.span,
            )
    numbered_name = sel.items[numbered[0]].alias if numbered else None
    number = None
    if numbered:
        number = numbered_name if numbered_name and numbered_name not in plan.schema.names else _NUMBER
    top = TopN(plan, partition, order, n, number, span=call.span)
    extra = Scope.from_schema(Schema((Field(number or _NUMBER, DataType.BIGINT),)), None)
    items = [
        dataclasses.replace(item, expr=ast.Identifier((number or _NUMBER,), span=item.expr.span), alias=item.alias)
        if isinstance(item.expr, ast.WindowCall)
        else item
        for item in sel.items
    ]
    binder = ExprBinder(scope + extra, clause="SELECT", text=env.text)
    outputs = select_outputs(items, binder, scope)
    return project(top, [E.NamedExpr(o.name, o.expr) for o in outputs], span=sel.span)


def _column(node: ast.Expr, scope: Scope, clause: str, text: str | None) -> str:
    e = bind_expr(node, scope, clause=f"{clause} of ROW_NUMBER()", text=text)
    if not isinstance(e, E.Column):
        raise BindError(
            f"{clause} of ROW_NUMBER() takes columns; compute '{E.render(e)}' in a subquery first", span=node.span
        )
    return e.name


def closes_windows(plan: Plan) -> bool:
    """Whether `plan`'s window_start and window_end come from a windowed aggregate emitting on window close."""
    node = plan
    while True:
        if isinstance(node, (Aggregate, FinalAggregate)):
            return node.window is not None and node.emit == EMIT_FINAL
        if isinstance(node, Filter):
            node = node.input
        elif isinstance(node, Project):
            passed = {n.name for n in node.exprs if isinstance(n.expr, E.Column) and n.expr.name == n.name}
            if not {WINDOW_START, WINDOW_END} <= passed:
                return False
            node = node.input
        else:
            return False


# ---------------------------------------------------------------- WITH r AS (... ROW_NUMBER() ...) ... FROM r


def _numbers_rows(query: object) -> bool:
    """A query that is one SELECT numbering its rows (no QUALIFY): it binds only with the filter around it."""
    if isinstance(query, ast.Query) and not query.ctes and query.limit is None and not query.order_by:
        query = query.body
    return isinstance(query, ast.Select) and query.qualify is None and bool(_numbered_items(query))


def inline_ranked_ctes(query: ast.Query) -> ast.Query:
    """`query` with each WITH query that numbers its rows written as a subquery where it is used.

    So `WITH r AS (SELECT *, ROW_NUMBER() OVER (...) AS rn FROM x) SELECT * FROM r WHERE rn <= 3` binds as the
    subquery form (the number needs the filter of the query that reads it).
    """
    ranked = [(name, cte) for name, cte in query.ctes if _numbers_rows(cte)]
    if not ranked:
        return query
    ctes = []
    for name, cte in query.ctes:
        for other, ranked_cte in ranked:
            if other != name:
                cte = _substitute(cte, other, ranked_cte)
        ctes.append((name, cte))
    body = query.body
    for name, cte in ranked:
        body = _substitute(body, name, cte)
    kept = tuple((n, c) for n, c in ctes if not any(n == r for r, _ in ranked))
    return dataclasses.replace(query, body=body, ctes=kept)


def _substitute(node: object, name: str, cte: ast.Query) -> Any:
    """`node` with every FROM reference to `name` replaced by the subquery `cte` (not where a WITH shadows it)."""
    if isinstance(node, ast.TableRef):
        if node.name.lower() == name.lower():
            return ast.SubqueryRef(cte, node.alias or node.name, span=node.span)
        return node
    if isinstance(node, ast.Query) and any(n.lower() == name.lower() for n, _ in node.ctes):
        return node
    return ast.rebuild(node, lambda n: _substitute(n, name, cte))
