"""Bound expressions: the typed expression IR shared by both front ends.

Every node knows its SQL type (`dtype`). Columns are referenced by their
unique name in the input schema of the plan node that holds the expression.
Sugar is removed before it reaches here (BETWEEN becomes two comparisons,
`CASE x WHEN` becomes `CASE WHEN x = ...`), so the DSL and the dataframe
API build equal trees. `render` gives the one canonical text of a node.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Union

from stream_dsl.errors import Span
from stream_dsl.ir.dispatch import MissingCase, node_pass
from stream_dsl.ir.types import DataType

_SPAN = field(default=None, compare=False, repr=False)

COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")
# The comparison with its operands swapped: `a < b` is `b > a`.
MIRRORED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
ARITHMETIC = ("+", "-", "*", "/", "%")
LOGICAL = ("AND", "OR")
BINARY_OPS = COMPARISONS + ARITHMETIC + LOGICAL + ("||",)
AGG_FUNCS = ("count", "sum", "avg", "min", "max")


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    dtype: DataType
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant. TIMESTAMP values are naive `datetime`, INTERVAL values `timedelta`."""

    value: Any
    dtype: DataType
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: "Expr"
    right: "Expr"
    dtype: DataType
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Unary:
    """`op` is 'NOT' or '-'."""

    op: str
    operand: "Expr"
    dtype: DataType
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Cast:
    expr: "Expr"
    dtype: DataType
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Case:
    """Searched CASE: the first true condition picks its value; `else_` otherwise (NULL literal if absent)."""

    whens: tuple[tuple["Expr", "Expr"], ...]
    else_: "Expr"
    dtype: DataType
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class InList:
    expr: "Expr"
    items: tuple["Expr", ...]
    negated: bool = False
    dtype: DataType = DataType.BOOLEAN
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Like:
    """SQL LIKE with a constant pattern (`%` any run, `_` one character)."""

    expr: "Expr"
    pattern: str
    negated: bool = False
    dtype: DataType = DataType.BOOLEAN
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class IsNull:
    expr: "Expr"
    negated: bool = False
    dtype: DataType = DataType.BOOLEAN
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Func:
    """A scalar function from `stream_dsl.ir.functions`, by its canonical lower-case name."""

    name: str
    args: tuple["Expr", ...]
    dtype: DataType
    span: Span | None = _SPAN
    udf: Any = None  # a Python UDF (`stream_dsl.ir.udfs.PythonFunction`): the plan carries it to the workers


@dataclass(frozen=True, slots=True)
class Agg:
    """An aggregate: `func` in AGG_FUNCS; `arg` None means COUNT(*)."""

    func: str
    arg: "Expr | None"
    dtype: DataType
    distinct: bool = False
    span: Span | None = _SPAN
    param: float | str | None = None  # a constant second argument: APPROX_PERCENTILE's p, STRING_AGG's separator
    udf: Any = None  # an aggregate UDF (`stream_dsl.ir.udfs.PythonAggregate`), `func` its name


Expr = Union[Column, Literal, Binary, Unary, Cast, Case, InList, Like, IsNull, Func, Agg]


@dataclass(frozen=True, slots=True)
class NamedExpr:
    """An expression and the output column name it produces."""

    name: str
    expr: Expr


# ---------------------------------------------------------------- traversal
# Two passes (see stream_dsl.ir.dispatch) that every generic walk builds on:
# `children` reads a node's sub-expressions, `with_children` rebuilds it over
# new ones, in the same order. A new node class needs one case in each.


@node_pass("expr")
def children(e: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `e`, in a fixed order."""
    raise MissingCase(children, e)


@node_pass("expr")
def with_children(e: Expr, new: tuple[Expr, ...]) -> Expr:
    """`e` over `new` sub-expressions (in `children`'s order); `e` itself when they are the same objects."""
    raise MissingCase(with_children, e)


def _same(old: tuple[Expr, ...], new: tuple[Expr, ...]) -> bool:
    if len(old) != len(new):
        raise ValueError(f"expected {len(old)} sub-expressions, got {len(new)}")
    return all(a is b for a, b in zip(old, new))


@children.register(Column)
@children.register(Literal)
def _(e: Column | Literal) -> tuple[Expr, ...]:
    return ()


@with_children.register(Column)
@with_children.register(Literal)
def _(e: Column | Literal, new: tuple[Expr, ...]) -> Expr:
    _same((), new)
    return e


@children.register
def _(e: Binary) -> tuple[Expr, ...]:
    return (e.left, e.right)


@with_children.register
def _(e: Binary, new: tuple[Expr, ...]) -> Expr:
    return e if _same(children(e), new) else replace(e, left=new[0], right=new[1])


@children.register
def _(e: Unary) -> tuple[Expr, ...]:
    return (e.operand,)


@with_children.register
def _(e: Unary, new: tuple[Expr, ...]) -> Expr:
    return e if _same(children(e), new) else replace(e, operand=new[0])


@children.register(Cast)
@children.register(Like)
@children.register(IsNull)
def _(e: Cast | Like | IsNull) -> tuple[Expr, ...]:
    return (e.expr,)


@with_children.register(Cast)
@with_children.register(Like)
@with_children.register(IsNull)
def _(e: Cast | Like | IsNull, new: tuple[Expr, ...]) -> Expr:
    return e if _same(children(e), new) else replace(e, expr=new[0])


@children.register
def _(e: Case) -> tuple[Expr, ...]:
    return tuple(x for pair in e.whens for x in pair) + (e.else_,)


@with_children.register
def _(e: Case, new: tuple[Expr, ...]) -> Expr:
    if _same(children(e), new):
        return e
    return replace(e, whens=tuple((new[i], new[i + 1]) for i in range(0, len(new) - 1, 2)), else_=new[-1])


@children.register
def _(e: InList) -> tuple[Expr, ...]:
    return (e.expr,) + e.items


@with_children.register
def _(e: InList, new: tuple[Expr, ...]) -> Expr:
    return e if _same(children(e), new) else replace(e, expr=new[0], items=tuple(new[1:]))


@children.register
def _(e: Func) -> tuple[Expr, ...]:
    return e.args


@with_children.register
def _(e: Func, new: tuple[Expr, ...]) -> Expr:
    return e if _same(children(e), new) else replace(e, args=tuple(new))


@children.register
def _(e: Agg) -> tuple[Expr, ...]:
    return () if e.arg is None else (e.arg,)


@with_children.register
def _(e: Agg, new: tuple[Expr, ...]) -> Expr:
    return e if _same(children(e), new) else replace(e, arg=new[0])


def walk(e: Expr) -> Iterator[Expr]:
    """Every node of `e`, parents before children."""
    yield e
    for c in children(e):
        yield from walk(c)


def columns_used(e: Expr) -> set[str]:
    return {n.name for n in walk(e) if isinstance(n, Column)}


def contains_agg(e: Expr) -> bool:
    return any(isinstance(n, Agg) for n in walk(e))


def transform(e: Expr, fn: Callable[[Expr], Expr]) -> Expr:
    """Rebuild `e` bottom-up, applying `fn` to every node after its children."""
    return fn(with_children(e, tuple(transform(c, fn) for c in children(e))))


def rename_columns(e: Expr, mapping: Mapping[str, Expr]) -> Expr:
    """Replace column references by the expressions `mapping` gives for their names."""
    return transform(e, lambda n: mapping.get(n.name, n) if isinstance(n, Column) else n)


def conjuncts(e: Expr) -> list[Expr]:
    """Split `a AND b AND c` into [a, b, c]."""
    if isinstance(e, Binary) and e.op == "AND":
        return conjuncts(e.left) + conjuncts(e.right)
    return [e]


def conjoin(parts: list[Expr]) -> Expr | None:
    """Join predicates with AND (left-deep), or None when there are none."""
    if not parts:
        return None
    result = parts[0]
    for p in parts[1:]:
        result = Binary("AND", result, p, DataType.BOOLEAN)
    return result


# ---------------------------------------------------------------- rendering


def render_literal(value: Any, dtype: DataType) -> str:
    if value is None:
        return "NULL"
    if dtype is DataType.STRING:
        return "'" + str(value).replace("'", "''") + "'"
    if dtype is DataType.BOOLEAN:
        return "TRUE" if value else "FALSE"
    if dtype is DataType.TIMESTAMP:
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if dtype is DataType.INTERVAL:
        return f"INTERVAL '{format_duration_ms(int(value / dt.timedelta(milliseconds=1)))}'"
    if dtype.is_list:
        return "[" + ", ".join(render_literal(v, dtype.element) for v in value) + "]"
    if dtype.is_decimal:
        return f"CAST('{value}' AS {dtype.value})"
    if dtype is DataType.DATE:
        return f"CAST('{value.isoformat()}' AS DATE)"
    return repr(value)


def format_duration_ms(ms: int) -> str:
    """Short, exact text for a duration: 10s, 1m, 1500ms, 2h, 1d."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def quote_name(name: str) -> str:
    """A column name as query text: bare when it is a plain identifier, else double-quoted."""
    return name if name.isidentifier() else '"' + name.replace('"', '""') + '"'


@node_pass("expr")
def render(e: Expr) -> str:
    """Canonical text of an expression (fully parenthesized binary operations)."""
    raise MissingCase(render, e)


@render.register
def _(e: Column) -> str:
    return quote_name(e.name)


@render.register
def _(e: Literal) -> str:
    return render_literal(e.value, e.dtype)


@render.register
def _(e: Binary) -> str:
    return f"({render(e.left)} {e.op} {render(e.right)})"


@render.register
def _(e: Unary) -> str:
    return f"(NOT {render(e.operand)})" if e.op == "NOT" else f"(-{render(e.operand)})"


@render.register
def _(e: Cast) -> str:
    return f"CAST({render(e.expr)} AS {e.dtype.value})"


@render.register
def _(e: Case) -> str:
    whens = " ".join(f"WHEN {render(c)} THEN {render(v)}" for c, v in e.whens)
    return f"CASE {whens} ELSE {render(e.else_)} END"


@render.register
def _(e: InList) -> str:
    items = ", ".join(render(i) for i in e.items)
    return f"({render(e.expr)} {'NOT IN' if e.negated else 'IN'} ({items}))"


@render.register
def _(e: Like) -> str:
    return f"({render(e.expr)} {'NOT LIKE' if e.negated else 'LIKE'} {render_literal(e.pattern, DataType.STRING)})"


@render.register
def _(e: IsNull) -> str:
    return f"({render(e.expr)} IS {'NOT NULL' if e.negated else 'NULL'})"


@render.register
def _(e: Func) -> str:
    return f"{e.name}({', '.join(render(a) for a in e.args)})"


@render.register
def _(e: Agg) -> str:
    if e.arg is None:
        return f"{e.func}(*)"
    param = "" if e.param is None else ", " + render_literal(e.param, _param_type(e.param))
    return f"{e.func}({'DISTINCT ' if e.distinct else ''}{render(e.arg)}{param})"


def _param_type(value: float | str) -> DataType:
    return DataType.STRING if isinstance(value, str) else DataType.DOUBLE


def render_named(n: NamedExpr) -> str:
    """`name := expr`, or just `name` for a column passed through under its own name."""
    if isinstance(n.expr, Column) and n.expr.name == n.name:
        return render(n.expr)
    return f"{quote_name(n.name)} := {render(n.expr)}"
