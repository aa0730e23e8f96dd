"""STRUCT types as written, field access (`s.f`, `t.s.f`) and struct casts, with DuckDB's rules.

A dotted name resolves as DuckDB resolves it: a table or alias first
(`t.col`), then a column whose STRUCT fields the rest of the name walks
(`s.a.b`). Field names match exactly, else ignoring case, as column names do.
"""

from __future__ import annotations

from typing import Callable, Sequence

from stream_dsl.bind.scope import Scope, match_names
from stream_dsl.errors import BindError, Span, did_you_mean
from stream_dsl.ir import expr as E
from stream_dsl.ir.functions_structs import field_named
from stream_dsl.ir.types import DataType, Schema, struct_of
from stream_dsl.sql import ast
from stream_dsl.sql.unparse import unparse

MAP_REFUSED = (
    "MAP types are not supported yet: polars has no map type, and its JSON reader reads an object only as a "
    "STRUCT of fixed fields; declare the keys you need as a STRUCT(...) (a missing key is NULL)"
)


def resolve_nested_type(written: ast.TypeName, resolve: Callable[[ast.TypeName], DataType]) -> DataType:
    """STRUCT(name type, ...) → a STRUCT type; a duplicate field name is an error at that field; MAP is refused."""
    if written.name == "MAP":
        raise BindError(MAP_REFUSED, span=written.span)
    seen: dict[str, str] = {}
    for name, member in zip(written.field_names, written.members):
        if name.lower() in seen:
            raise BindError(
                f"duplicate field name '{name}' in {unparse(written)}: each field of a STRUCT needs its own name",
                span=member.span or written.span,
            )
        seen[name.lower()] = name
    return struct_of((name, resolve(member)) for name, member in zip(written.field_names, written.members))


def field_access(value: E.Expr, name: str, span: Span | None, written: str | None = None) -> E.Expr:
    """`value.name`: the field of a STRUCT (NULL where the struct is NULL)."""
    shown = written or E.render(value)
    if value.dtype is DataType.NULL:
        return E.Literal(None, DataType.NULL, span=span)
    if not value.dtype.is_struct:
        raise BindError(f"cannot read field '{name}' of {shown}: it is {value.dtype.value}, not a STRUCT", span=span)
    field = field_named(value.dtype, name)
    if field is None:
        names = [f for f, _ in value.dtype.fields]
        hint = did_you_mean(name, names) or f" (its fields: {', '.join(names)})"
        raise BindError(f"{shown} has no field '{name}'{hint}", span=span)
    dtype = dict(value.dtype.fields)[field]
    return E.Func("struct_extract", (value, E.Literal(field, DataType.STRING)), dtype, span=span)


def resolve_path(scope: Scope, parts: Sequence[str], span: Span | None) -> E.Expr:
    """A dotted name: `qualifier.column[.field...]` when the first part is a table or alias that has that
    column, else `column.field[.field...]`; any other name gets the scope's own error."""
    if match_names(parts[0], scope.qualifiers) and len(scope.lookup(parts[:2])) == 1:
        column, fields = scope.resolve(parts[:2], span), parts[2:]
    elif len(scope.lookup(parts[:1])) == 1:
        column, fields = scope.resolve(parts[:1], span), parts[1:]
    else:
        return scope.resolve(parts[:2] if match_names(parts[0], scope.qualifiers) else parts, span)
    value: E.Expr = column
    written = ".".join(parts[: len(parts) - len(fields)])
    for name in fields:
        value = field_access(value, name, span, written)
        written += "." + name
    return value


def check_cast(source: DataType, target: DataType, span: Span | None) -> None:
    """DuckDB casts a STRUCT to a STRUCT by field name (missing ones NULL, extra ones dropped), when at least
    one name matches; casts to or from anything else are refused here."""
    if source is DataType.NULL:
        return
    if not (source.is_struct and target.is_struct):
        raise BindError(f"cannot CAST {source.value} to {target.value}", span=span)
    names = {f.lower() for f, _ in source.fields}
    if not any(f.lower() in names for f, _ in target.fields):
        raise BindError(
            f"cannot CAST {source.value} to {target.value}: a STRUCT cast matches fields by name, and none match",
            span=span,
        )
    sources = dict(source.fields)
    for name, dtype in target.fields:
        found = field_named(source, name)
        if found is not None and (sources[found].is_struct or dtype.is_struct) and sources[found] is not dtype:
            check_cast(sources[found], dtype, span)


def check_sink_columns(sink_name: str, options: tuple[tuple[str, str], ...], schema: Schema, span: Span | None) -> None:
    """A csv sink cannot hold a nested value: say so when the INSERT binds, not at the first batch."""
    if dict(options).get("format", "").lower() != "csv":
        return
    for field in schema:
        if field.dtype.is_nested:
            raise BindError(
                f"sink '{sink_name}' writes csv, which cannot hold the nested column '{field.name}' "
                f"({field.dtype.value}); use format 'ndjson' or 'parquet', or select its fields",
                span=span,
            )
