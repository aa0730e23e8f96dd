"""Sources and sinks from Python, without SQL text: what `Context.read_*` and `Stream.sink_*` build.

A reader builds exactly the definition `CREATE STREAM name (...) WITH
(...)` would: the binder's own statement path checks names, types and
duplicate options, and the watermark is the one `from_polars` sets. A
writer builds the `CREATE SINK` definition the same way. Options are
Python values (True, 10, "1s"); they become the strings SQL would carry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
from typing import Any, Iterator, Mapping

from stream_dsl.bind.binder import BoundCreateSink, BoundCreateSource, bind, resolve_type
from stream_dsl.catalog import Catalog
from stream_dsl.errors import BindError, ConnectorError, DSLError, ParseError
from stream_dsl.frame.expr import to_duration_ms, type_name_of
from stream_dsl.ir.definitions import SinkDef, SourceDef, Watermark
from stream_dsl.ir.types import DataType, Field, Schema
from stream_dsl.sql import ast


@contextlib.contextmanager
def naming_arguments() -> Iterator[None]:
    """CREATE's option errors (`bind/create_check.py`) as the API's: ConnectorErrors naming the argument."""
    try:
        yield
    except BindError as e:
        key = getattr(e, "option", None)
        if key is None:
            raise
        message = re.sub(rf"\boption '?{re.escape(key)}'?", f"argument {key}=", e.message)
        message = message.replace("; declare the columns", "; pass schema=")
        raise ConnectorError(message if f"argument {key}=" in message else f"argument {key}=: {message}") from None


def option_text(value: Any) -> str:
    """A Python option value as its WITH-clause string: booleans as 'true'/'false', durations in ms."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.timedelta):
        return f"{int(value / dt.timedelta(milliseconds=1))}ms"
    if isinstance(value, (list, tuple)):
        return ",".join(option_text(v) for v in value)
    return str(value)


def option_pairs(options: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """The options given (None means not given), as (key, string) pairs."""
    return tuple((key, option_text(value)) for key, value in options.items() if value is not None)


def sql_type(value: Any) -> DataType:
    """A schema entry: DataType, SQL type name, polars dtype or Python type."""
    if isinstance(value, DataType):
        return value
    try:
        return resolve_type(type_name_of(value))
    except (BindError, ParseError):
        raise DSLError(f"unknown type '{value}'") from None


def schema_of(columns: Mapping[str, Any]) -> Schema:
    """A schema from column -> SQL type name, DataType, polars dtype or Python type."""
    fields = tuple(Field(name, sql_type(value)) for name, value in columns.items())
    if not fields:
        raise DSLError("a schema needs at least one column")
    return Schema(fields)


def source_definition(
    catalog: Catalog,
    name: str,
    schema: Schema | None,
    options: Mapping[str, Any],
    *,
    kind: str = "stream",
    watermark: str | None = None,
    watermark_delay: str | int | dt.timedelta = "0s",
) -> SourceDef:
    """The definition CREATE STREAM (or TABLE) `name` with these columns and options would bind to.

    `schema` None: the columns the files connector infers from its first file (as CREATE without columns).
    """
    columns = tuple(ast.ColumnDef(f.name, type_name_of(f.dtype), f.not_null) for f in schema or ())
    with naming_arguments():
        bound = bind(ast.CreateSource(kind.upper(), name, columns, None, option_pairs(options)), catalog)
    assert isinstance(bound, BoundCreateSource)
    definition = bound.source
    if watermark is None:
        return definition
    return dataclasses.replace(
        definition,
        watermark=watermark_of(
            watermark, to_duration_ms(watermark_delay, "watermark_delay", allow_zero=True), definition.schema
        ),
    )


def watermark_of(column: str, delay_ms: int, schema: Schema) -> Watermark:
    """The watermark following TIMESTAMP `column`, `delay_ms` behind its newest value."""
    if column not in schema:
        raise BindError(f"unknown watermark column '{column}'; columns: {', '.join(schema.names)}")
    if schema.dtype(column) is not DataType.TIMESTAMP:
        raise BindError(f"the watermark column '{column}' must be a TIMESTAMP, not {schema.dtype(column).value}")
    return Watermark(column, delay_ms)


def sink_definition(catalog: Catalog, name: str, options: Mapping[str, Any]) -> SinkDef:
    """The definition CREATE SINK `name` WITH (options) would bind to."""
    with naming_arguments():
        bound = bind(ast.CreateSink(name, option_pairs(options)), catalog)
    assert isinstance(bound, BoundCreateSink)
    return bound.sink
