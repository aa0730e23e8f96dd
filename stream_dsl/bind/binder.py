"""The binder: syntax tree + catalog → bound statements and logical plans.

`bind(statement, catalog, text)` resolves every name and type of one
statement. Binding never changes the catalog: the Context applies DDL, so a
script binds each statement against the catalog its predecessors left.
Every BindError points at the offending node (line, column) and, given the
text, renders the line with a caret.

The pieces are split by concern: `binder_scope` (name resolution),
`binder_expr` (expressions), `binder_plans` (joins, unions, aggregates,
shared with the dataframe API) and `binder_query` (queries). This module
binds statements and re-exports the helpers the dataframe API uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from stream_dsl.sql import ast
from stream_dsl.bind.expr import (
    ExprBinder,
    bind_expr,
    bind_predicate,
    generated_name,
    has_aggregate,
    locate,
    output_names,
    resolve_type,
)
from stream_dsl.bind.plans import (
    JoinResult,
    OutputColumn,
    bind_window,
    build_aggregate,
    build_join,
    build_union,
    plan_aggregate_query,
    resolve_emit,
)
from stream_dsl.bind.query import Env, bind_query
from stream_dsl.bind.create_check import check_sink, check_source, infer_fields
from stream_dsl.bind.scope import Scope, ScopeColumn
from stream_dsl.catalog import Catalog
from stream_dsl.ir.column_names import is_reserved, reserved_message
from stream_dsl.errors import BindError, PositionedError, Span, did_you_mean
from stream_dsl.ir.definitions import SinkDef, SourceDef, Watermark
from stream_dsl.ir.plan import Plan
from stream_dsl.bind.typecheck import parse_duration_ms
from stream_dsl.ir.types import DataType, Field, Schema

__all__ = [
    "bind",
    "bind_query_ast",
    "BoundStatement",
    "BoundCreateSource",
    "BoundCreateSink",
    "BoundCreateView",
    "BoundInsert",
    "BoundQuery",
    "BoundExplain",
    "BoundShow",
    "BoundDescribeQuery",
    "BoundStopQuery",
    "BoundDescribe",
    "BoundSet",
    "BoundDrop",
    "SETTINGS",
    "RULE_SETTING_PREFIX",
    "Scope",
    "ScopeColumn",
    "ExprBinder",
    "bind_expr",
    "bind_predicate",
    "bind_window",
    "build_join",
    "build_union",
    "build_aggregate",
    "plan_aggregate_query",
    "resolve_emit",
    "JoinResult",
    "OutputColumn",
    "generated_name",
    "has_aggregate",
    "output_names",
    "resolve_type",
]

# Keys `SET key = value` accepts (the Context converts and validates the values).
SETTINGS = (
    "workers",
    "executor",
    "group_size",
    "batch_interval",
    "optimize",
    "checkpoint_dir",
    "heartbeat_timeout",
    "transport",
    "checkpoint_reset",
    "ray_address",
    "metrics_port",
    "state_ttl",
    "diagnose_every",
)
# `SET optimizer.<rule> = 'false'` switches one optimizer rule off ('true' back on).
RULE_SETTING_PREFIX = "optimizer."


# ---------------------------------------------------------------- bound statements


@dataclass(frozen=True)
class BoundCreateSource:
    source: SourceDef
    replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class BoundCreateSink:
    sink: SinkDef
    replace: bool = False
    if_not_exists: bool = False


@dataclass(frozen=True)
class BoundCreateView:
    name: str
    plan: Plan
    replace: bool = False


@dataclass(frozen=True)
class BoundInsert:
    sink: SinkDef
    plan: Plan


@dataclass(frozen=True)
class BoundQuery:
    plan: Plan


@dataclass(frozen=True)
class BoundExplain:
    statement: "BoundQuery | BoundInsert"
    analyze: bool = False


@dataclass(frozen=True)
class BoundShow:
    """`what` is lower-case: 'streams', 'tables', 'sinks', 'views' or 'functions'."""

    what: str


@dataclass(frozen=True)
class BoundDescribe:
    name: str
    function: bool = False  # DESCRIBE FUNCTION name


@dataclass(frozen=True)
class BoundDescribeQuery:
    """DESCRIBE QUERY name: `span` is where the name is written (the Context checks it)."""

    name: str
    span: Span | None = None


@dataclass(frozen=True)
class BoundStopQuery:
    """STOP QUERY name (or TERMINATE name)."""

    name: str
    span: Span | None = None


@dataclass(frozen=True)
class BoundSet:
    """`key` is lower-case, one of SETTINGS or `optimizer.<rule>`; `value` is the text as written."""

    key: str
    value: str


@dataclass(frozen=True)
class BoundDrop:
    """`kind` is lower-case: 'stream', 'table', 'sink' or 'view'."""

    kind: str
    name: str
    if_exists: bool = False


BoundStatement = Union[
    BoundDescribeQuery,
    BoundStopQuery,
    BoundCreateSource,
    BoundCreateSink,
    BoundCreateView,
    BoundInsert,
    BoundQuery,
    BoundExplain,
    BoundShow,
    BoundDescribe,
    BoundSet,
    BoundDrop,
]


def _describe_function(s: ast.Describe, text: str | None) -> BoundDescribe:
    from stream_dsl.ir.function_docs import all_docs

    names = [d.name for d in all_docs()]
    if s.name.lower() not in names:
        raise BindError(
            f"unknown function '{s.name}'{did_you_mean(s.name.lower(), names)}; SHOW FUNCTIONS lists them",
            span=_name_span(text, s.span, s.name),
        )
    return BoundDescribe(s.name.lower(), function=True)


# ---------------------------------------------------------------- entry points


def bind(statement: ast.Statement, catalog: Catalog, text: str | None = None) -> BoundStatement:
    """Bind one statement; errors carry `text` so they render the line with a caret."""
    try:
        return _bind(statement, catalog, text)
    except PositionedError as err:
        if text is not None:
            err.with_source(text)
        raise


def bind_query_ast(query: ast.Query, catalog: Catalog, text: str | None = None) -> Plan:
    """The logical plan of a query."""
    result = bind(ast.QueryStatement(query), catalog, text)
    assert isinstance(result, BoundQuery)
    return result.plan


def _bind(s: ast.Statement, catalog: Catalog, text: str | None = None) -> BoundStatement:
    env = Env(catalog, text=text)
    if isinstance(s, ast.QueryStatement):
        return BoundQuery(bind_query(s.query, env))
    if isinstance(s, ast.Insert):
        sink = catalog.sink(s.sink, _name_span(text, s.span, s.sink))
        insert = BoundInsert(sink, bind_query(s.query, env))
        from stream_dsl.bind.structs import check_sink_columns

        check_sink_columns(sink.name, sink.options, insert.plan.schema, _name_span(text, s.span, s.sink))  # csv: flat
        return insert
    if isinstance(s, ast.Explain):
        inner = _bind(s.statement, catalog, text)
        assert isinstance(inner, (BoundQuery, BoundInsert))
        return BoundExplain(inner, s.analyze)
    if isinstance(s, ast.CreateSource):
        source = _source_def(s, text)
        check_source(source, s, text, files=catalog.check_files)  # options, path, format (bind/create_check.py)
        return BoundCreateSource(source, s.or_replace, s.if_not_exists)
    if isinstance(s, ast.CreateSink):
        sink = SinkDef(s.name, _options(s.options, s))
        check_sink(sink, s, text, files=catalog.check_files)
        return BoundCreateSink(sink, s.or_replace, s.if_not_exists)
    if isinstance(s, ast.CreateView):
        return BoundCreateView(s.name, bind_query(s.query, env), s.or_replace)
    if isinstance(s, ast.Show):
        return BoundShow(s.what.lower())
    if isinstance(s, ast.Describe) and s.function:
        return _describe_function(s, text)
    if isinstance(s, ast.Describe) and s.query:  # the Context knows its queries
        return BoundDescribeQuery(s.name, _name_span(text, s.span, s.name))
    if isinstance(s, ast.StopQuery):
        return BoundStopQuery(s.name, _name_span(text, s.span, s.name))
    if isinstance(s, ast.Describe):
        catalog.resolve(s.name, _name_span(text, s.span, s.name))  # an unknown name fails here, with suggestions
        return BoundDescribe(s.name)
    if isinstance(s, ast.SetOption):
        key = s.key.lower()
        if key not in SETTINGS and not key.startswith(RULE_SETTING_PREFIX):  # the Context checks the rule's name
            raise BindError(
                f"unknown setting '{s.key}'{did_you_mean(key, SETTINGS)}; settings: {', '.join(SETTINGS)}", span=s.span
            )
        return BoundSet(key, s.value)
    if isinstance(s, ast.Drop):
        return BoundDrop(s.kind.lower(), s.name, s.if_exists)
    raise BindError(f"cannot bind a {type(s).__name__} statement", span=getattr(s, "span", None))


# ---------------------------------------------------------------- DDL


def _options(options: tuple[tuple[str, str], ...], node: object) -> tuple[tuple[str, str], ...]:
    """WITH options: keys lower-cased, sorted; a key given twice is an error."""
    result: dict[str, str] = {}
    for key, value in options:
        k = key.lower()
        if k in result:
            raise BindError(f"option '{k}' is given twice", span=getattr(node, "span", None))
        result[k] = str(value)
    return tuple(sorted(result.items()))


def _source_def(s: ast.CreateSource, text: str | None) -> SourceDef:
    fields: list[Field] = []
    seen: set[str] = set()
    for col in s.columns:
        if col.name in seen:
            raise BindError(f"duplicate column name '{col.name}'", span=col.span)
        if is_reserved(col.name):
            raise BindError(reserved_message(col.name), span=col.span)
        seen.add(col.name)
        fields.append(Field(col.name, resolve_type(col.type_name), not_null=col.not_null))
    if not fields:  # the files connector takes the columns from its files (bind/create_check.py)
        fields = infer_fields(s, _options(s.options, s), text)
    schema = Schema(tuple(fields))
    watermark = _watermark(s.watermark, schema, text) if s.watermark is not None else None
    return SourceDef(s.name, s.kind.lower(), schema, _options(s.options, s), watermark)


def _name_span(text: str | None, span: Span | None, name: str) -> Span | None:
    """Where `name` is written after the keyword(s) a statement starts with."""
    return locate(text, span, rf"\s[\"`]?({re.escape(name)})")


def _watermark(wm: ast.WatermarkDef, schema: Schema, text: str | None) -> Watermark:
    """`WATERMARK FOR ts AS ts - INTERVAL ...` (or `AS ts`) → Watermark(ts, delay_ms)."""
    scope = Scope.from_schema(schema)
    column_span = locate(text, wm.span, rf"\bFOR\s+[\"`]?({re.escape(wm.column)})")
    column = scope.resolve((wm.column,), column_span).name
    if schema.dtype(column) is not DataType.TIMESTAMP:
        raise BindError(
            f"the WATERMARK column '{column}' must be a TIMESTAMP, not {schema.dtype(column).value}", span=column_span
        )
    usage = f"WATERMARK FOR {column} AS {column} - INTERVAL '...' <unit>"
    e = wm.expr
    if isinstance(e, ast.Identifier) and _names_column(e, scope, column):
        return Watermark(column, 0)
    if (
        isinstance(e, ast.BinaryOp)
        and e.op == "-"
        and isinstance(e.left, ast.Identifier)
        and _names_column(e.left, scope, column)
        and isinstance(e.right, ast.IntervalLit)
    ):
        return Watermark(column, parse_duration_ms(e.right.value, e.right.unit, e.right.span))
    raise BindError(f"unsupported watermark expression; write {usage}", span=getattr(e, "span", None) or wm.span)


def _names_column(e: ast.Identifier, scope: Scope, column: str) -> bool:
    return scope.resolve(e.parts[-1:], e.span).name == column
