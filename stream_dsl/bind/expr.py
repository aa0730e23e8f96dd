"""Syntax-tree expressions → bound, typed expressions (`stream_dsl.ir.expr`).

Every node is built through `stream_dsl.bind.typecheck`, so the DSL and the
dataframe API (whose expressions are syntax-tree nodes too) produce equal
trees and equal type errors. Where aggregates may appear is decided by the
caller: WHERE, GROUP BY and ON forbid them, SELECT and HAVING of an
aggregate query allow them (not nested).
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeGuard

from stream_dsl.sql import ast
from stream_dsl.sql.unparse import unparse
from stream_dsl.ir import dates, expr as E
from stream_dsl.bind import typecheck as tc
from stream_dsl.bind.scope import Scope
from stream_dsl.ir.column_names import is_reserved, reserved_message
from stream_dsl.errors import BindError, Span
from stream_dsl.ir.functions import WINDOW_FUNCTIONS, lookup_aggregate, lookup_scalar
from stream_dsl.ir.types import MAX_DECIMAL_PRECISION, DataType, TYPE_NAMES, decimal, list_of, type_from_name


# ---------------------------------------------------------------- syntax-tree helpers


def ast_children(node: object) -> Iterator[object]:
    """The direct sub-nodes of a syntax-tree expression (not into subqueries)."""
    for f in fields(node):  # type: ignore[arg-type]
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if isinstance(item, tuple):
                yield from (x for x in item if _is_ast_expr(x))
            elif _is_ast_expr(item):
                yield item


def _is_ast_expr(x: object) -> bool:
    return isinstance(x, _AST_EXPRS)


_AST_EXPRS: tuple[type, ...] = typing.get_args(ast.Expr)  # every expression class of the syntax tree


def ast_walk(node: object) -> Iterator[object]:
    yield node
    for child in ast_children(node):
        yield from ast_walk(child)


def is_aggregate_call(node: object) -> bool:
    return isinstance(node, ast.FuncCall) and (
        lookup_aggregate(node.name) is not None or is_python_aggregate(node.name)
    )


def is_python_aggregate(name: str) -> bool:
    """A registered aggregate UDF (stream_dsl/ir/udfs.py) that is not a built-in's name."""
    from stream_dsl.ir import udfs

    return lookup_scalar(name) is None and udfs.aggregate(name) is not None


def is_window_call(node: object) -> TypeGuard[ast.FuncCall]:
    return isinstance(node, ast.FuncCall) and node.name.lower() in WINDOW_FUNCTIONS


def has_aggregate(node: object) -> bool:
    """Whether a syntax-tree expression calls an aggregate function anywhere."""
    return any(is_aggregate_call(n) for n in ast_walk(node))


def first_column_name(node: object) -> str | None:
    """The leftmost column an expression reads (polars names an expression after it)."""
    for n in ast_walk(node):
        if isinstance(n, ast.Identifier):
            return n.parts[-1]
    return None


# ---------------------------------------------------------------- positions


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def _span_at(text: str, offset: int) -> Span:
    before = text[:offset]
    return Span(before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1)


def locate(text: str | None, span: Span | None, pattern: str, *, last: bool = False) -> Span | None:
    """Where `pattern` (its first group, if any) matches inside the text `span` covers; else `span`.

    The syntax tree keeps one position per node; this finds the part of a
    node an error is about (the type in CAST, the name after INSERT INTO).
    """
    if text is None or span is None:
        return span
    lines = text.split("\n")
    if not 1 <= span.line <= len(lines):
        return span
    start = _offset(text, span.line, span.column)
    end = len(text)
    if span.end_line is not None and span.end_column is not None and span.end_line <= len(lines):
        end = _offset(text, span.end_line, span.end_column)
    matches = list(re.compile(pattern, re.IGNORECASE).finditer(text, start, end))
    if not matches:
        return span
    m = matches[-1] if last else matches[0]
    return _span_at(text, m.start(1) if m.groups() else m.start())


# ---------------------------------------------------------------- the binder


@dataclass(frozen=True, slots=True)
class ExprBinder:
    """Binds expressions against `scope`.

    `aggregates` allows aggregate calls (SELECT and HAVING of an aggregate
    query); `clause` names the place in error messages ("WHERE"); `text`,
    the query text if known, lets errors point inside a node.
    """

    scope: Scope
    aggregates: bool = False
    clause: str = "this expression"
    nested: bool = False
    text: str | None = None

    def bind(self, node: ast.Expr) -> E.Expr:
        method = _DISPATCH.get(type(node))
        if method is None:
            raise BindError(f"cannot use {type(node).__name__} as an expression", span=_span(node))
        return method(self, node)

    def _all(self, nodes: Iterable[ast.Expr]) -> list[E.Expr]:
        return [self.bind(n) for n in nodes]

    # ------------------------------------------------------------ leaves

    def _identifier(self, node: ast.Identifier) -> E.Expr:
        if len(node.parts) > 1:  # t.col, or a STRUCT column's field s.f (bind/structs.py)
            from stream_dsl.bind.structs import resolve_path

            return resolve_path(self.scope, node.parts, node.span)
        return self.scope.resolve(node.parts, node.span)

    def _star(self, node: ast.Star) -> E.Expr:
        raise BindError("'*' is only allowed in a select list or COUNT(*)", span=node.span)

    def _number(self, node: ast.NumberLit) -> E.Expr:
        return tc.literal(node.value, node.span)

    def _string(self, node: ast.StringLit) -> E.Expr:
        return tc.literal(node.value, node.span)

    def _bool(self, node: ast.BoolLit) -> E.Expr:
        return tc.literal(bool(node.value), node.span)

    def _null(self, node: ast.NullLit) -> E.Expr:
        return tc.literal(None, node.span)

    def _interval(self, node: ast.IntervalLit) -> E.Expr:
        return tc.interval(tc.parse_duration_ms(node.value, node.unit, node.span), node.span)

    def _timestamp(self, node: ast.TimestampLit) -> E.Expr:
        return tc.literal(tc.parse_timestamp(node.value, node.span), node.span)

    def _date(self, node: ast.DateLit) -> E.Expr:
        value = dates.parse_date(node.value)
        if value is None:
            raise BindError(f"invalid DATE literal '{node.value}' (expected e.g. '2024-01-31')", span=node.span)
        return tc.literal(value, node.span)

    # ------------------------------------------------------------ operators

    def _binary(self, node: ast.BinaryOp) -> E.Expr:
        return tc.binary(node.op, self.bind(node.left), self.bind(node.right), node.span)

    def _unary(self, node: ast.UnaryOp) -> E.Expr:
        op = node.op.upper()
        if op == "-" and isinstance(node.operand, ast.NumberLit) and isinstance(node.operand.value, int):
            return tc.literal(-node.operand.value, node.span)  # -9223372036854775808 is a BIGINT
        operand = self.bind(node.operand)
        if op == "NOT":
            return tc.not_(operand, node.span)
        if op == "-":
            return tc.negate(operand, node.span)
        if not (operand.dtype.is_numeric or operand.dtype in (DataType.INTERVAL, DataType.NULL)):
            raise BindError(f"unary + needs a number, got {operand.dtype.value}", span=node.span)
        return operand

    def _case(self, node: ast.Case) -> E.Expr:
        operand = self.bind(node.operand) if node.operand is not None else None
        whens = []
        for cond, value in node.whens:
            bound = self.bind(cond)
            if operand is not None:
                bound = tc.binary("=", operand, bound, _span(cond))
            whens.append((bound, self.bind(value)))
        else_ = self.bind(node.else_) if node.else_ is not None else None
        return tc.case(whens, else_, node.span)

    def _cast(self, node: ast.Cast) -> E.Expr:
        operand = self.bind(node.expr)
        return tc.cast(operand, resolve_type(node.type_name), node.span)

    def _in_list(self, node: ast.InList) -> E.Expr:
        return tc.in_list(self.bind(node.expr), self._all(node.items), node.negated, node.span)

    def _between(self, node: ast.Between) -> E.Expr:
        return tc.between(self.bind(node.expr), self.bind(node.low), self.bind(node.high), node.negated, node.span)

    def _like(self, node: ast.Like) -> E.Expr:
        return tc.like(self.bind(node.expr), self.bind(node.pattern), node.negated, node.span)

    def _is_null(self, node: ast.IsNull) -> E.Expr:
        return tc.is_null(self.bind(node.expr), node.negated, node.span)

    # ------------------------------------------------------------ calls

    def _call(self, node: ast.FuncCall) -> E.Expr:
        if is_window_call(node):
            raise BindError(f"{node.name.upper()} is a window: it is only allowed in GROUP BY", span=node.span)
        if is_aggregate_call(node):
            return self._aggregate(node)
        if node.star:
            raise BindError(f"{node.name.upper()}(*) is not allowed; only COUNT(*)", span=node.span)
        if node.distinct:
            raise BindError(f"DISTINCT is only allowed in COUNT, not in {node.name.upper()}", span=node.span)
        return tc.function(node.name.lower(), self._all(node.args), node.span)

    def _window_call(self, node: ast.WindowCall) -> E.Expr:
        """Window functions bind only in the top-N and deduplication forms (`bind.top_n`), never as values."""
        from stream_dsl.bind.top_n import SUPPORTED

        raise BindError(SUPPORTED, span=node.span)

    def _aggregate(self, node: ast.FuncCall) -> E.Expr:
        name = node.name.upper()
        if self.nested:
            raise BindError("aggregate functions cannot be nested", span=node.span)
        if not self.aggregates:
            raise BindError(f"aggregate functions are not allowed in {self.clause} ({name})", span=node.span)
        if node.star:
            return tc.aggregate(node.name.lower(), None, node.distinct, node.span)
        low, high = tc.aggregate_arity(node.name.lower())
        if not low <= len(node.args) <= high:
            words = {1: "one argument", 2: "two arguments"}
            many = f"exactly {words[low]}" if low == high else "one or two arguments"
            raise BindError(f"{name} takes {many}, got {len(node.args)}", span=node.span)
        inner = ExprBinder(
            self.scope.without_extras(), aggregates=False, clause=f"{name}()", nested=True, text=self.text
        )
        params = [inner.bind(a) for a in node.args[1:]]
        return tc.aggregate(node.name.lower(), inner.bind(node.args[0]), node.distinct, node.span, params)


# each method takes a node of its key's type, which a dict's type cannot say
_DISPATCH: dict[type, Callable[[ExprBinder, Any], E.Expr]] = {
    ast.Identifier: ExprBinder._identifier,
    ast.Star: ExprBinder._star,
    ast.NumberLit: ExprBinder._number,
    ast.StringLit: ExprBinder._string,
    ast.BoolLit: ExprBinder._bool,
    ast.NullLit: ExprBinder._null,
    ast.IntervalLit: ExprBinder._interval,
    ast.TimestampLit: ExprBinder._timestamp,
    ast.DateLit: ExprBinder._date,
    ast.BinaryOp: ExprBinder._binary,
    ast.UnaryOp: ExprBinder._unary,
    ast.FuncCall: ExprBinder._call,
    ast.Case: ExprBinder._case,
    ast.Cast: ExprBinder._cast,
    ast.InList: ExprBinder._in_list,
    ast.Between: ExprBinder._between,
    ast.Like: ExprBinder._like,
    ast.IsNull: ExprBinder._is_null,
    ast.WindowCall: ExprBinder._window_call,
}


def _span(node: object) -> Span | None:
    return getattr(node, "span", None)


def bind_expr(
    node: ast.Expr, scope: Scope, *, aggregates: bool = False, clause: str = "this expression", text: str | None = None
) -> E.Expr:
    """Bind one syntax-tree expression against `scope` (see `ExprBinder`)."""
    return ExprBinder(scope, aggregates, clause, text=text).bind(node)


def bind_predicate(node: ast.Expr, scope: Scope, clause: str, text: str | None = None) -> E.Expr:
    """A condition (WHERE, ON, filter): it must be BOOLEAN and free of aggregates."""
    return require_boolean(bind_expr(node, scope, clause=clause, text=text), clause, _span(node))


def require_boolean(e: E.Expr, clause: str, span: Span | None) -> E.Expr:
    if e.dtype not in (DataType.BOOLEAN, DataType.NULL):
        raise BindError(f"{clause} needs a BOOLEAN condition, got {e.dtype.value} in {E.render(e)}", span=span)
    return e


def resolve_type(written: ast.TypeName) -> DataType:
    """A type as written → DataType, or a BindError at the part of it that names no type the engine has."""
    if written.name == "ARRAY":
        return list_of(resolve_type(written.members[0]))
    if written.name in ("STRUCT", "MAP"):
        from stream_dsl.bind.structs import resolve_nested_type

        return resolve_nested_type(written, resolve_type)
    if written.name in ("DECIMAL", "NUMERIC") and written.numbers:
        return _decimal_type(written)
    dtype = type_from_name(written.name)
    if dtype is None:
        known = ", ".join(sorted(TYPE_NAMES))
        raise BindError(f"unknown type '{written.name}'; known types: {known}", span=written.span)
    return dtype


def _decimal_type(written: ast.TypeName) -> DataType:
    """DECIMAL(p) or DECIMAL(p, s), with DuckDB's limits: 1 <= p <= 38, 0 <= s <= p."""
    if len(written.numbers) > 2:
        raise BindError(f"{written.name} takes a precision and a scale, got {unparse(written)}", span=written.span)
    precision, scale = written.numbers[0], written.numbers[1] if len(written.numbers) > 1 else 0
    if not 1 <= precision <= MAX_DECIMAL_PRECISION:
        raise BindError(
            f"{written.name} precision must be between 1 and {MAX_DECIMAL_PRECISION}, got {precision}",
            span=written.span,
        )
    if scale > precision:
        raise BindError(
            f"{written.name} scale cannot be greater than the precision, got {unparse(written)}", span=written.span
        )
    return decimal(precision, scale)


# ---------------------------------------------------------------- output names


def generated_name(e: E.Expr) -> str | None:
    """A readable name for an unnamed output: `count`, `sum_price`, `upper_name`, or None."""
    if isinstance(e, E.Column):
        return e.name
    if isinstance(e, E.Cast):
        return generated_name(e.expr)
    if isinstance(e, E.Func) and e.name == "struct_extract" and isinstance(e.args[1], E.Literal):
        return str(e.args[1].value)  # s.f is named f, as in DuckDB
    if isinstance(e, E.Agg):
        base = f"{e.func}_distinct" if e.distinct else e.func
        inner = generated_name(e.arg) if e.arg is not None else None
        return f"{base}_{inner}" if inner else base
    if isinstance(e, E.Func):
        parts = [generated_name(a) for a in e.args if not isinstance(a, E.Literal)]
        return "_".join([e.name] + [p for p in parts if p])
    return None


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_2`, `base_3`, ... whichever is free first; records it in `taken`."""
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def output_names(
    items: Sequence[tuple[str | None, E.Expr, Span | None]],
    hints: Sequence[str | None] | None = None,
    alternates: Sequence[str | None] | None = None,
) -> list[str]:
    """Names for select outputs given as (alias, bound expression, span).

    Aliases are kept as written (two equal aliases are an error); other
    outputs get `hints[i]` when given (a column's visible name), else their
    column name or a generated one (`_col{position}` as a last resort),
    de-duplicated with suffixes; an output whose hint is taken gets
    `alternates[i]` (a column's `alias.name`) first, when that is free.
    """
    taken: set[str] = set()
    for alias, _, span in items:
        if alias is None:
            continue
        if alias in taken:
            raise BindError(f"duplicate output column name '{alias}'; give each column a different alias", span=span)
        if is_reserved(alias):
            raise BindError(reserved_message(alias, "output column"), span=span)
        taken.add(alias)
    names = []
    owners: dict[str, E.Expr] = {}  # which output took each name: the same column twice is `url`, `url_2`
    for i, (alias, e, _) in enumerate(items):
        hint = hints[i] if hints is not None else None
        alternate = alternates[i] if alternates is not None else None
        if alias is None and hint in taken and owners.get(hint) != e and alternate is not None:
            hint = alternate if alternate not in taken else hint
        names.append(alias if alias is not None else unique_name(hint or generated_name(e) or f"_col{i + 1}", taken))
        owners.setdefault(names[-1], e)
    return names


def rebuild(e: E.Expr, fn: Callable[[E.Expr], E.Expr]) -> E.Expr:
    """`e` with `fn` applied to each direct child (the top-down counterpart of `expr.transform`)."""
    return E.with_children(e, tuple(fn(c) for c in E.children(e)))
