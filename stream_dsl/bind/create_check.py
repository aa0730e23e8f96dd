"""CREATE STREAM/TABLE/SINK checks its connector's options when it runs, not when a query first reads it.

The connector module declares its options once (`OPTION_SPECS`, see `connectors/option_specs.py`);
this module checks the WITH clause against them and points the BindError at the option at fault:

- an unknown connector or option, with "did you mean";
- a required option missing (at the WITH);
- a value of the wrong type (at the value);
- the connector's own checks (`check_at_create(definition, role)`: a files source's path exists and
  its format reads the first file).

A CREATE STREAM of the files connector without a column list takes its columns from the first file
(`infer_fields`: parquet's footer, or a sample of ndjson and csv rows, as `ctx.read_files` does).
A connector without declarations (memory, one registered by a user) is checked when a query opens it.
The BindError of an option carries `option` (its key), so the dataframe API can name its argument.
"""

from __future__ import annotations

import re
import polars as pl

from stream_dsl.connectors import CONNECTORS, connector_module
from stream_dsl.connectors.option_specs import OptionError, check_options, connector_specs
from stream_dsl.errors import BindError, ConnectorError, Span, did_you_mean
from stream_dsl.ir.column_names import is_reserved
from stream_dsl.ir.definitions import SinkDef, SourceDef
from stream_dsl.ir.types import DataType, Field, Schema, type_from_polars
from stream_dsl.sql import ast

Node = ast.CreateSource | ast.CreateSink


def check_source(definition: SourceDef, node: ast.CreateSource, text: str | None, *, files: bool = True) -> None:
    """BindError at the option at fault when the stream's or table's options do not suit its connector.

    `files`: run the connector's own checks too (they read its path; `Context(check_files=False)` skips them).
    """
    _check(definition, "table" if definition.kind == "table" else "source", node, text, files)


def check_sink(definition: SinkDef, node: ast.CreateSink, text: str | None, *, files: bool = True) -> None:
    _check(definition, "sink", node, text, files)


def _check(definition: SourceDef | SinkDef, role: str, node: Node, text: str | None, files: bool) -> None:
    name = definition.option("connector")
    if name is None:
        return  # a definition for planning only (the executor refuses to read it)
    what = f"{'stream' if role == 'source' else role} '{definition.name}'"
    if name.lower() not in CONNECTORS:
        known = sorted(n for n in CONNECTORS if n != "one_row")  # one_row: SELECT without FROM's, internal
        raise _error(
            f"unknown connector '{name}'{did_you_mean(name, known)}; known connectors: {', '.join(known)}",
            "connector",
            True,
            node,
            text,
        )
    try:
        module = connector_module(name, what)
    except ConnectorError:
        return  # not installed here (kafka without its client): the query that reads it says so
    specs = connector_specs(module, role)
    if specs is None:
        return
    try:
        check_options(definition.options, specs, what=what)
        hook = getattr(module, "check_at_create", None) if files else None
        if hook is not None:
            hook(definition, role)
    except OptionError as e:
        raise _error(e.message, e.key, e.at_value, node, text) from None


def _error(message: str, key: str | None, at_value: bool, node: Node, text: str | None) -> BindError:
    err = BindError(message, span=option_span(text, node.span, key, at_value=at_value))
    err.option = key  # type: ignore[attr-defined]  # read by frame/io.py to name the API's argument
    return err


def option_span(text: str | None, span: Span | None, key: str | None, *, at_value: bool = False) -> Span | None:
    """Where option `key` (its value, with `at_value`) is written in the WITH clause; the WITH for None."""
    from stream_dsl.bind.expr import locate

    if key is None:
        return locate(text, span, r"\b(WITH)\s*\(", last=True)
    quote = "['\"`]?"
    if at_value:
        return locate(text, span, rf"[(,]\s*{quote}{re.escape(key)}{quote}\s*=\s*(\S)", last=True)
    return locate(text, span, rf"[(,]\s*{quote}({re.escape(key)}){quote}\s*=", last=True)


# ---------------------------------------------------------------- schema inference


def infer_fields(node: ast.CreateSource, options: tuple[tuple[str, str], ...], text: str | None) -> list[Field]:
    """The columns of a CREATE without a column list, from its files (the files connector only).

    polars infers the types (parquet: the footer; ndjson and csv: the first `files.INFER_ROWS` rows), mapped
    onto the engine's (`type_from_polars`); an all-NULL sample column is STRING. A type the engine lacks
    (a list, a struct) is a BindError naming the column, with what to write instead.
    """
    from stream_dsl.connectors.files import infer_schema

    kind = node.kind.lower()
    connector = (dict(options).get("connector") or "").lower()
    if connector != "files":
        raise BindError(
            f"CREATE {node.kind} {node.name} needs at least one column "
            "(only the files connector takes its columns from its files)",
            span=node.span,
        )
    probe = SourceDef(node.name, kind, _PROBE, options)
    check_source(probe, node, text)  # a misspelled option or a missing file is reported as such first
    try:
        found: dict[str, pl.DataType] = infer_schema(probe)
    except ConnectorError as e:
        raise _error(str(e).replace("; pass schema=", "; declare the columns"), "path", True, node, text) from None
    fields: list[Field] = []
    lacking: list[str] = []
    for column, dtype in found.items():
        mapped = _engine_type(dtype)
        if mapped is None:
            lacking.append(f"'{column}' ({dtype})")
        elif is_reserved(column):
            raise BindError(f"the files have a column '{column}', a name reserved for the engine", span=node.span)
        else:
            fields.append(Field(column, mapped))
    if lacking:
        declared = ", ".join(f"{f.name} {f.dtype.value}" for f in fields) or "..."
        raise BindError(
            f"CREATE {node.kind} {node.name}: the files have column(s) {', '.join(lacking)} of a type the engine "
            f"has no counterpart for; declare the columns instead, without them: "
            f"CREATE {node.kind} {node.name} ({declared}) WITH (...)",
            span=node.span,
        )
    return fields


_PROBE = Schema((Field("_", DataType.STRING),))  # a placeholder column: the options are checked before inference


def _engine_type(dtype: pl.DataType) -> DataType | None:
    if dtype == pl.Null:
        return DataType.STRING
    try:
        found = type_from_polars(dtype)
    except TypeError:
        return None
    return None if found is DataType.NULL else found
