"""The syntax tree: what the parser produces and the binder consumes.

Nodes are immutable and keep their position in the query text (`span`,
excluded from equality), so the binder can point at the offending token.
Names are kept as written (identifiers unquoted, keywords upper-cased);
resolving them is the binder's job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from stream_dsl.errors import Span

_SPAN = field(default=None, compare=False, repr=False)


# ---------------------------------------------------------------- expressions


@dataclass(frozen=True, slots=True)
class Identifier:
    """A possibly qualified name: `price`, `e.price`."""

    parts: tuple[str, ...]
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Star:
    """`*` or `t.*` in a select list."""

    qualifier: str | None = None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class NumberLit:
    """A numeric literal; `value` is an int or a float as written."""

    value: int | float
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class StringLit:
    value: str
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class BoolLit:
    value: bool
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class NullLit:
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class IntervalLit:
    """`INTERVAL '10' SECOND` (value '10', unit 'SECOND') or `INTERVAL '10 seconds'` (unit None)."""

    value: str
    unit: str | None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class TimestampLit:
    """`TIMESTAMP '2024-01-01 00:00:00'`."""

    value: str
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class DateLit:
    """`DATE '2024-01-31'`."""

    value: str
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class BinaryOp:
    """`op` is one of + - * / % || = <> < <= > >= AND OR (`!=` is parsed as `<>`)."""

    op: str
    left: "Expr"
    right: "Expr"
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class UnaryOp:
    """`op` is NOT, - or +."""

    op: str
    operand: "Expr"
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class FuncCall:
    """A function call: `upper(x)`, `COUNT(*)` (star), `COUNT(DISTINCT x)` (distinct).

    `name` is upper-cased. Window functions TUMBLE/HOP/SESSION are FuncCalls too.
    """

    name: str
    args: tuple["Expr", ...]
    distinct: bool = False
    star: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Case:
    """`CASE [operand] WHEN a THEN b ... [ELSE c] END`."""

    operand: "Expr | None"
    whens: tuple[tuple["Expr", "Expr"], ...]
    else_: "Expr | None"
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class TypeName:
    """A type as written. `name` is upper-cased (DOUBLE PRECISION is one name; every spelling of a list type is
    ARRAY, of a row type STRUCT); `numbers` its parameters (DECIMAL(10, 2)); `members` an ARRAY's element, a
    MAP's key and value or a STRUCT's field types, whose names are `field_names`."""

    name: str
    numbers: tuple[int, ...] = ()
    members: tuple["TypeName", ...] = ()
    field_names: tuple[str, ...] = ()
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Cast:
    """`CAST(expr AS type)` or `expr::type`."""

    expr: "Expr"
    type_name: TypeName
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class InList:
    expr: "Expr"
    items: tuple["Expr", ...]
    negated: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Between:
    expr: "Expr"
    low: "Expr"
    high: "Expr"
    negated: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Like:
    expr: "Expr"
    pattern: "Expr"
    negated: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class IsNull:
    expr: "Expr"
    negated: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class WindowCall:
    """`func OVER (PARTITION BY ... ORDER BY ...)`: binds only as ROW_NUMBER() in a top-N or dedup filter."""

    func: FuncCall
    partition_by: tuple["Expr", ...] = ()
    order_by: tuple["OrderItem", ...] = ()
    span: Span | None = _SPAN


Expr = Union[
    Identifier,
    Star,
    NumberLit,
    StringLit,
    BoolLit,
    NullLit,
    IntervalLit,
    TimestampLit,
    DateLit,
    BinaryOp,
    UnaryOp,
    FuncCall,
    Case,
    Cast,
    InList,
    Between,
    Like,
    IsNull,
    WindowCall,
]


# ---------------------------------------------------------------- queries


@dataclass(frozen=True, slots=True)
class SelectItem:
    expr: Expr
    alias: str | None = None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class TableRef:
    """A named stream, table or view in FROM, with an optional alias."""

    name: str
    alias: str | None = None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class SubqueryRef:
    query: "Query"
    alias: str | None = None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Join:
    """`kind` is 'INNER', 'LEFT', 'RIGHT', 'FULL' or 'CROSS'; exactly one of `on` and `using` is set,
    neither for CROSS."""

    left: "FromItem"
    right: "FromItem"
    kind: str
    on: Expr | None = None
    using: tuple[str, ...] | None = None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class WindowTVF:
    """A window table function in FROM: `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND)) [AS w]`.

    `kind` is 'TUMBLE', 'HOP', 'CUMULATE' or 'SESSION'; `sizes` are its
    durations in the GROUP BY form's order (HOP: slide, size; CUMULATE:
    step, max size), named arguments already put in place. `partition_by`
    (SESSION only) are the keys that sessions are per.
    """

    kind: str
    table: Union[TableRef, SubqueryRef]
    time_column: "Identifier"
    sizes: tuple[Expr, ...]
    partition_by: tuple["Identifier", ...] = ()
    alias: str | None = None
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Unnest:
    """`UNNEST(list) [WITH ORDINALITY] [AS alias(element[, ordinality])]` in FROM, joined to the items
    before it (CROSS JOIN, a comma, or LEFT JOIN ... ON TRUE): a row per element (bind/unnest.py)."""

    expr: Expr
    alias: str | None = None
    columns: tuple[str, ...] = ()
    ordinality: bool = False
    span: Span | None = _SPAN


FromItem = Union[TableRef, SubqueryRef, Join, WindowTVF, Unnest]


@dataclass(frozen=True, slots=True)
class Select:
    """One SELECT block. `emit` is 'WINDOW CLOSE', 'CHANGES' or None."""

    items: tuple[SelectItem, ...]
    from_: FromItem | None = None
    where: Expr | None = None
    group_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    distinct: bool = False
    emit: str | None = None
    span: Span | None = _SPAN
    qualify: Expr | None = None


@dataclass(frozen=True, slots=True)
class SetOp:
    """`left UNION [ALL] right`; `all` False means UNION (distinct)."""

    left: "QueryBody"
    right: "QueryBody"
    all: bool = True
    span: Span | None = _SPAN


QueryBody = Union[Select, SetOp, "Query"]


@dataclass(frozen=True, slots=True)
class OrderItem:
    """One ORDER BY item: an output column (by name or position), its direction, where NULLs go."""

    expr: Expr
    descending: bool = False
    nulls_first: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Query:
    """A full query: optional WITH clauses, a body, an optional ORDER BY, an optional LIMIT."""

    body: QueryBody
    ctes: tuple[tuple[str, "Query"], ...] = ()
    limit: int | None = None
    span: Span | None = _SPAN
    order_by: tuple[OrderItem, ...] = ()


# ---------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class ColumnDef:
    name: str
    type_name: TypeName
    not_null: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class WatermarkDef:
    """`WATERMARK FOR column AS expr` (expr is usually `column - INTERVAL ...`)."""

    column: str
    expr: Expr
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class CreateSource:
    """CREATE STREAM or CREATE TABLE (`kind` 'STREAM' or 'TABLE')."""

    kind: str
    name: str
    columns: tuple[ColumnDef, ...]
    watermark: WatermarkDef | None = None
    options: tuple[tuple[str, str], ...] = ()
    if_not_exists: bool = False
    or_replace: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class CreateSink:
    name: str
    options: tuple[tuple[str, str], ...] = ()
    if_not_exists: bool = False
    or_replace: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class CreateView:
    """`CREATE VIEW name AS query` or `CREATE STREAM name AS query`: a named query."""

    name: str
    query: Query
    or_replace: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Insert:
    sink: str
    query: Query
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class QueryStatement:
    query: Query
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Explain:
    statement: QueryStatement | Insert
    analyze: bool = False
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Show:
    """`what` is 'STREAMS', 'TABLES', 'SINKS', 'VIEWS', 'FUNCTIONS' or 'QUERIES'."""

    what: str
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Describe:
    name: str
    span: Span | None = _SPAN
    function: bool = False  # DESCRIBE FUNCTION name
    query: bool = False  # DESCRIBE QUERY name (a running or ended continuous query of the Context)


@dataclass(frozen=True, slots=True)
class StopQuery:
    """`STOP QUERY name` (ksqlDB's `TERMINATE name` too): stop a continuous query of the Context."""

    name: str
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class SetOption:
    """`SET key = 'value'` (also `SET key = 10`, `SET key TO value`); value kept as text."""

    key: str
    value: str
    span: Span | None = _SPAN


@dataclass(frozen=True, slots=True)
class Drop:
    """`kind` is 'STREAM', 'TABLE', 'SINK' or 'VIEW'."""

    kind: str
    name: str
    if_exists: bool = False
    span: Span | None = _SPAN


Statement = Union[
    CreateSource, CreateSink, CreateView, Insert, QueryStatement, Explain, Show, Describe, StopQuery, SetOption, Drop
]


def rebuild(node: Any, rewrite: Callable[[Any], Any], keep: tuple[type, ...] = ()) -> Any:
    """`node` with `rewrite` applied to each element of a tuple, or to each field of a syntax-tree node (a
    new node only when a field changed); anything else, and nodes of the `keep` types, as they are.

    The walk step of the binder's tree rewrites, which handle their own nodes and leave the rest to this.
    """
    if isinstance(node, tuple):
        return tuple(rewrite(n) for n in node)
    if not dataclasses.is_dataclass(node) or isinstance(node, (type, *keep)):
        return node
    fields: Any = node  # a syntax-tree node (is_dataclass also admits classes, excluded above)
    changes = {}
    for f in dataclasses.fields(fields):
        value = getattr(node, f.name)
        new = rewrite(value)
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(fields, **changes) if changes else node
