"""Outer join simplification: a LEFT JOIN under a filter that no unmatched row can pass is an INNER JOIN.

Correctness condition: `filter(p, left_join(l, r)) == filter(p, join(l, r))`
when some conjunct of p is NULL-rejecting on r's columns: it is NULL (or
FALSE) whenever every column r contributes is NULL. The rows a LEFT JOIN adds
to an INNER one are exactly those, with every r column NULL, so p removes
them all. A conjunct rejects NULLs when it is strict in an r column: a
comparison, LIKE, IN, arithmetic, CAST or a NULL-propagating function with
such an operand (never IS NULL, COALESCE, CASE, OR, GREATEST or LEAST,
which can make something of a NULL).

Why: the INNER join lets predicate pushdown move r's conjuncts into r, and
a condition is then never evaluated for a row the join drops (as DuckDB
and every SQL optimizer do; `WHERE abs(u.w) > CAST(s.x AS BIGINT)` over an
unmatched row no longer raises for a CAST the result does not need).

Example (before, after):

>>> import stream_dsl as sd
>>> from stream_dsl.ir.plan import render_plan
>>> ctx = sd.Context(check_files=False)  # plans only: the files are not there
>>> ctx.sql("CREATE STREAM s (a BIGINT, b STRING) WITH (connector = 'files', path = 's/', format = 'ndjson')")
>>> ctx.sql("CREATE TABLE t (b STRING, c BIGINT) WITH (connector = 'files', path = 't.csv', format = 'csv')")
>>> plan = ctx.sql("SELECT * FROM s LEFT JOIN t USING (b) WHERE c + 1 > a").plan
>>> print(render_plan(plan))
Filter ((c + 1) > a)
  Join left on [b = b] right=[c]
    Scan stream s
    Scan table t
>>> print(render_plan(simplify_outer_joins(plan)))
Filter ((c + 1) > a)
  Join inner on [b = b] right=[c]
    Scan stream s
    Scan table t
"""

from __future__ import annotations

from dataclasses import replace

from stream_dsl.ir import expr as E
from stream_dsl.ir.plan import Filter, Join, Plan

from optimizer.rules.analysis import transform_up

# Scalar functions that are NULL whenever an argument is (so a NULL operand makes the result NULL).
STRICT_FUNCTIONS = frozenset(
    {"abs", "round", "floor", "ceil", "sqrt", "exp", "ln", "log10", "log", "power", "upper", "lower", "length"}
)
_STRICT_BINARY = frozenset({"+", "-", "*", "/", "%", "||", *E.COMPARISONS})


def simplify_outer_joins(plan: Plan) -> Plan:
    """Every LEFT JOIN directly under a Filter with a NULL-rejecting conjunct on its right columns is INNER."""
    return transform_up(plan, _simplify)


def _simplify(node: Plan) -> Plan:
    if not isinstance(node, Filter) or not isinstance(node.input, Join) or node.input.kind != "left":
        return node
    join = node.input
    right = {out for _, out in join.right_columns}
    if not any(strict_in(c, right) for c in E.conjuncts(node.predicate)):
        return node
    return replace(node, input=replace(join, kind="inner"))


def strict_in(e: E.Expr, columns: set[str]) -> bool:
    """Whether `e` is NULL whenever every one of `columns` is NULL (a sufficient, syntactic test)."""
    if isinstance(e, E.Column):
        return e.name in columns
    if isinstance(e, E.Binary):
        if e.op in _STRICT_BINARY:
            return strict_in(e.left, columns) or strict_in(e.right, columns)
        return e.op == "AND" and strict_in(e.left, columns) and strict_in(e.right, columns)
    if isinstance(e, E.Unary):
        return e.op in ("-", "+", "NOT") and strict_in(e.operand, columns)
    if isinstance(e, E.Cast):
        return strict_in(e.expr, columns)
    if isinstance(e, (E.Like, E.InList)):
        return strict_in(e.expr, columns)
    if isinstance(e, E.Func):
        return e.name in STRICT_FUNCTIONS and any(strict_in(a, columns) for a in e.args)
    return False
