"""Constant folding and expression simplification.

Correctness condition: for every row r, `eval(fold(e), r) == eval(e, r)` with
the same type, including NULL (three-valued logic) — except that a folded
expression may no longer raise an error the original would have raised
(`FALSE AND CAST('x' AS INT)` is FALSE).

- An operator whose operands are all literals is evaluated once, by the same
  polars code the executor runs (`stream_dsl.ir.to_polars`), so folding can never
  disagree with running. When that evaluation fails (`CAST('x' AS INT)`) the
  expression is kept and the error, if any, happens at run time as before.
- Boolean identities that hold in three-valued logic: `x AND TRUE` → x,
  `x AND FALSE` → FALSE, `x OR FALSE` → x, `x OR TRUE` → TRUE, `x AND x` → x,
  `NOT NOT x` → x, `NOT (x IS NULL)` → `x IS NOT NULL` (and IN, LIKE).
- An arithmetic, comparison or `||` operand that is the NULL literal makes
  the whole result NULL (of the operation's type).
- CASE: WHEN branches whose condition is the literal FALSE or NULL go; a
  literal TRUE condition ends the CASE there.
- `x + 0`, `x - 0`, `x * 1` for integers, `x * 1` and `x / 1` for DOUBLE.
- `(a + b) IS NULL` → `a IS NULL OR b IS NULL` (also - and *, and IS NOT
  NULL with AND): the arithmetic, which may overflow, is not computed.
- `-x < c` → `x > -c` (any comparison, either side) for an integer x and an
  integer literal c: the negation of x, which overflows at the type's
  minimum, is never computed (DuckDB moves constants so too).
- A Filter or Scan predicate that folds to TRUE is left for `merge_filters`
  (Filter) or dropped (Scan).

Example (before, after):

>>> import stream_dsl as sd
>>> from stream_dsl.ir.plan import render_plan
>>> ctx = sd.Context(check_files=False)  # plans only: the files are not there
>>> ctx.sql("CREATE STREAM s (a BIGINT, b STRING, ok BOOLEAN) "
...         "WITH (connector = 'files', path = 's/', format = 'ndjson')")
>>> plan = ctx.sql("SELECT b, a * (2 + 3) AS x FROM s WHERE ok AND 1 < 2 AND NOT NOT (b = 'v')").plan
>>> print(render_plan(plan))
Project b, x := (a * (2 + 3))
  Filter ((ok AND (1 < 2)) AND (NOT (NOT (b = 'v'))))
    Scan stream s
>>> print(render_plan(fold_constants(plan)))
Project b, x := (a * 5)
  Filter (ok AND (b = 'v'))
    Scan stream s
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import polars as pl

from stream_dsl.ir import expr as E
from stream_dsl.ir.to_polars import compile_expr
from stream_dsl.ir.plan import Aggregate, Filter, Plan, Project, Scan
from stream_dsl.ir.types import INTEGER_BOUNDS, DataType

from optimizer.rules.analysis import is_deterministic, is_false, is_null_literal, is_true, transform_up

T = DataType
_FALSE = E.Literal(False, T.BOOLEAN)
_TRUE = E.Literal(True, T.BOOLEAN)
_NEGATED_BY_FLAG = (E.IsNull, E.InList, E.Like)


def fold_constants(plan: Plan) -> Plan:
    """Simplify every expression of the plan (see the module doc for what and why it is exact)."""
    return transform_up(plan, _fold_node)


def _fold_node(node: Plan) -> Plan:
    if isinstance(node, Filter):
        predicate = fold(node.predicate)
        return node if predicate is node.predicate else replace(node, predicate=predicate)
    if isinstance(node, Scan) and node.predicate is not None:
        predicate = fold(node.predicate)
        if is_true(predicate):
            return replace(node, predicate=None)
        return node if predicate is node.predicate else replace(node, predicate=predicate)
    if isinstance(node, Project):
        exprs = _fold_named(node.exprs)
        return node if exprs is node.exprs else replace(node, exprs=exprs)
    if isinstance(node, Aggregate):
        keys, aggs = _fold_named(node.keys), _fold_named(node.aggs)
        if keys is node.keys and aggs is node.aggs:
            return node
        return replace(node, keys=keys, aggs=aggs)
    return node


def _fold_named(items: tuple[E.NamedExpr, ...]) -> tuple[E.NamedExpr, ...]:
    folded = tuple(E.NamedExpr(n.name, fold(n.expr)) for n in items)
    return items if all(new.expr is old.expr for new, old in zip(folded, items)) else folded


def fold(e: E.Expr) -> E.Expr:
    """The simplified expression; `e` itself (the same object) when nothing simplifies.

    >>> from stream_dsl.bind.typecheck import binary, literal
    >>> E.render(fold(binary("+", literal(1), binary("*", literal(2), literal(3)))))
    '7'
    >>> from stream_dsl.ir.expr import Column
    >>> x = Column("x", T.BOOLEAN)
    >>> E.render(fold(binary("AND", x, literal(None))))  # NULL AND x is not foldable: x may be FALSE
    '(x AND NULL)'
    """
    result = E.transform(e, _simplify)
    return e if result == e else result


def _simplify(e: E.Expr) -> E.Expr:
    """One node, whose children are already simplified."""
    if isinstance(e, (E.Literal, E.Column, E.Agg)):
        return e
    children = E.children(e)
    # A Python UDF is never called at plan time: it runs with the query, where its failures become dead letters.
    python = isinstance(e, E.Func) and e.udf is not None
    if all(isinstance(c, E.Literal) for c in children) and is_deterministic(e) and not python:
        value = _evaluate(e)
        if value is not _FAILED:
            return E.Literal(value, e.dtype, span=e.span)
    if isinstance(e, E.Binary):
        return _binary(e)
    if isinstance(e, E.Unary) and e.op == "NOT":
        return _not(e)
    if isinstance(e, E.Case):
        return _case(e)
    if isinstance(e, E.IsNull):
        return _is_null_of_arithmetic(e)
    if isinstance(e, E.Cast) and e.expr.dtype is e.dtype:
        return e.expr
    return e


def _binary(e: E.Binary) -> E.Expr:
    left, right = e.left, e.right
    if e.op == "AND":
        if is_false(left) or is_false(right):
            return replace(_FALSE, span=e.span)
        for this, other in ((left, right), (right, left)):
            if is_true(this) and other.dtype is T.BOOLEAN:
                return other
        if left == right and left.dtype is T.BOOLEAN and is_deterministic(left):
            return left
        return e
    if e.op == "OR":
        if is_true(left) or is_true(right):
            return replace(_TRUE, span=e.span)
        for this, other in ((left, right), (right, left)):
            if is_false(this) and other.dtype is T.BOOLEAN:
                return other
        if left == right and left.dtype is T.BOOLEAN and is_deterministic(left):
            return left
        return e
    # Comparison, arithmetic and || of a NULL are NULL whatever the other side is.
    if is_null_literal(left) or is_null_literal(right):
        return E.Literal(None, e.dtype, span=e.span)
    if e.op in E.COMPARISONS:
        return _negation_across(e)
    return _arithmetic_identity(e)


def _negation_across(e: E.Binary) -> E.Expr:
    """`-x op c` → `x mirrored(op) -c` for an integer x and an integer literal c (either side), as DuckDB moves
    constants: the same truth for every x, and x's negation (which overflows at the type's minimum) is gone."""
    for negated, constant, op in ((e.left, e.right, e.op), (e.right, e.left, E.MIRRORED[e.op])):
        if (
            isinstance(negated, E.Unary)
            and negated.op == "-"
            and negated.dtype.is_integer
            and isinstance(constant, E.Literal)
            and isinstance(constant.value, int)
            and not isinstance(constant.value, bool)
            and constant.dtype.is_integer
            and INTEGER_BOUNDS[constant.dtype][0] <= -constant.value <= INTEGER_BOUNDS[constant.dtype][1]
        ):
            flipped = E.Literal(-constant.value, constant.dtype, span=constant.span)
            return E.Binary(E.MIRRORED[op], negated.operand, flipped, e.dtype, e.span)
    return e


def _arithmetic_identity(e: E.Binary) -> E.Expr:
    """`x + 0`, `x - 0`, `x * 1` (integers; `* 1` and `/ 1` also for DOUBLE) when the type stays."""

    def is_number(x: E.Expr, n: int) -> bool:
        return isinstance(x, E.Literal) and x.dtype.is_numeric and x.value == n and not isinstance(x.value, bool)

    left, right = e.left, e.right
    candidates: list[E.Expr] = []
    if e.op == "+" and e.dtype.is_integer:
        candidates = [left] if is_number(right, 0) else [right] if is_number(left, 0) else []
    elif e.op == "-" and e.dtype.is_integer and is_number(right, 0):
        candidates = [left]
    elif e.op == "*" and e.dtype.is_numeric:
        candidates = [left] if is_number(right, 1) else [right] if is_number(left, 1) else []
    elif e.op == "/" and is_number(right, 1):
        candidates = [left]
    for x in candidates:
        if x.dtype is e.dtype:
            return x
    return e


def _is_null_of_arithmetic(e: E.IsNull) -> E.Expr:
    """`(a + b) IS NULL` → `a IS NULL OR b IS NULL` (+, - and *: NULL exactly when an operand is), so the sum,
    which may overflow, is never computed (DuckDB rewrites it so too); IS NOT NULL → AND of IS NOT NULL."""
    inner = e.expr
    if not (isinstance(inner, E.Binary) and inner.op in ("+", "-", "*") and inner.dtype is not T.NULL):
        return e
    left, right = (_simplify(E.IsNull(x, e.negated, span=e.span)) for x in (inner.left, inner.right))
    return _simplify(E.Binary("AND" if e.negated else "OR", left, right, T.BOOLEAN, e.span))  # `0 IS NULL`: gone


def _not(e: E.Unary) -> E.Expr:
    inner = e.operand
    if isinstance(inner, E.Unary) and inner.op == "NOT" and inner.operand.dtype is T.BOOLEAN:
        return inner.operand
    if isinstance(inner, _NEGATED_BY_FLAG):
        # Each compiles its negated form as NOT of the plain one, so the flip is exact.
        return replace(inner, negated=not inner.negated, span=e.span)
    return e


def _case(e: E.Case) -> E.Expr:
    whens: list[tuple[E.Expr, E.Expr]] = []
    else_ = e.else_
    for cond, value in e.whens:
        if is_true(cond):
            else_ = value
            break
        if is_false(cond) or is_null_literal(cond):
            continue  # a NULL condition counts as false
        whens.append((cond, value))
    if not whens:
        widened = _as_type(else_, e.dtype)
        if widened is not None:
            return widened
        # Widening this value would need a checked CAST; a one-branch CASE widens for free.
        whens, else_ = [(_TRUE, else_)], E.Literal(None, T.NULL)
    if len(whens) == len(e.whens) and else_ is e.else_:
        return e
    return E.Case(tuple(whens), else_, e.dtype, span=e.span)


def _as_type(value: E.Expr, dtype: DataType) -> E.Expr | None:
    """A CASE branch as the whole CASE's type (a branch may be narrower: INT in a BIGINT CASE, NULL).

    None when only a run-time integer CAST could widen it (exact, but slower than the CASE).
    """
    if value.dtype is dtype:
        return value
    if is_null_literal(value):
        return E.Literal(None, dtype, span=value.span)
    widened = E.Cast(value, dtype, span=value.span)
    if isinstance(value, E.Literal):
        return _simplify(widened)
    if dtype is T.DOUBLE or value.dtype is T.NULL:
        return widened
    return None


# ---------------------------------------------------------------- evaluation

_FAILED = object()
_ONE_ROW = pl.DataFrame({"__sd_row": [0]})


def _evaluate(e: E.Expr) -> Any:
    """The value of a column-free expression as the executor computes it, or _FAILED.

    Not cached: a cache keyed by expression equality would confuse 0.0 with
    -0.0 (equal, and equally hashed), and `1 / -0.0` is not `1 / 0.0`.
    """
    try:
        compiled = compile_expr(e)
        if e.dtype is not T.NULL:
            compiled = compiled.cast(e.dtype.polars)
        value = _ONE_ROW.select(compiled.alias("v")).item()  # one row: a constant's checks run once
        return value.to_list() if isinstance(value, pl.Series) else value  # a list's value: a Python list
    except Exception:  # any failure: leave the expression to run (and fail, if it must) as written
        return _FAILED
