"""Window table functions in FROM, from parse tree to `ast.WindowTVF`: Flink's argument lists, checked.

`TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))`, `HOP(..., slide, size)`,
`CUMULATE(..., step, max_size)` and `SESSION(TABLE t [PARTITION BY k],
DESCRIPTOR(ts), gap)`, with arguments by position or by Flink's names
(`DATA => TABLE t, TIMECOL => DESCRIPTOR(ts), SIZE => ...`). Named
arguments are put in their places here, so the AST (and its unparsed
text) has one form. The binder (`bind.window_tvf`) gives them meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from stream_dsl.errors import ParseError, Span
from stream_dsl.sql import ast

# Flink's parameter names, in order: the table, its time column, then the durations.
PARAMETERS = {
    "TUMBLE": ("DATA", "TIMECOL", "SIZE"),
    "HOP": ("DATA", "TIMECOL", "SLIDE", "SIZE"),
    "CUMULATE": ("DATA", "TIMECOL", "STEP", "SIZE"),
    "SESSION": ("DATA", "TIMECOL", "GAP"),
}


@dataclass(frozen=True)
class TableArg:
    """`TABLE t` or `TABLE (query)`, with SESSION's PARTITION BY keys."""

    table: ast.TableRef | ast.SubqueryRef
    partition_by: tuple[ast.Identifier, ...]
    span: Span | None


@dataclass(frozen=True)
class DescriptorArg:
    """`DESCRIPTOR(ts)`: the time column."""

    column: ast.Identifier
    span: Span | None


@dataclass(frozen=True)
class NamedArg:
    """`name => value`."""

    name: str
    value: Any
    span: Span | None


def _usage(kind: str) -> str:
    names = PARAMETERS[kind]
    sizes = ", ".join(n.lower() for n in names[2:])
    partition = " [PARTITION BY key]" if kind == "SESSION" else ""
    return f"{kind}(TABLE t{partition}, DESCRIPTOR(time_column), {sizes})"


def _span_of(value: Any) -> Span | None:
    return getattr(value, "span", None)


def build_window_tvf(
    kind: str,
    kind_span: Span,
    args: list[Any],
    alias: str | None,
    span: Span | None,
    error: Callable[[str, Span | None], ParseError],
) -> ast.WindowTVF:
    """The parsed arguments (`TableArg`, `DescriptorArg`, `NamedArg` or expressions) → a checked WindowTVF."""
    kind = kind.upper()
    if kind not in PARAMETERS:
        raise error(f"unknown window table function '{kind}': use TUMBLE, HOP, CUMULATE or SESSION", kind_span)
    names = PARAMETERS[kind]
    values = _in_place(kind, names, args, span, error)
    table, descriptor, sizes = values[0], values[1], values[2:]
    if not isinstance(table, TableArg):
        raise error(f"the first argument of {kind} is a table: {_usage(kind)}", _span_of(table))
    if not isinstance(descriptor, DescriptorArg):
        raise error(f"the second argument of {kind} is DESCRIPTOR(time_column): {_usage(kind)}", _span_of(descriptor))
    for size in sizes:
        if isinstance(size, (TableArg, DescriptorArg)):
            raise error(f"{kind} takes one table and one DESCRIPTOR: {_usage(kind)}", size.span)
    if table.partition_by and kind != "SESSION":
        raise error(f"only SESSION takes PARTITION BY; {kind} windows are the same for every key", table.span)
    return ast.WindowTVF(
        kind=kind,
        table=table.table,
        time_column=descriptor.column,
        sizes=tuple(sizes),
        partition_by=table.partition_by,
        alias=alias,
        span=span,
    )


def _in_place(
    kind: str,
    names: tuple[str, ...],
    args: list[Any],
    span: Span | None,
    error: Callable[[str, Span | None], ParseError],
) -> list[Any]:
    """The argument values in parameter order, from positions then names (Flink's rule: no position after a name)."""
    values: dict[str, Any] = {}
    named = False
    for i, arg in enumerate(args):
        if isinstance(arg, NamedArg):
            named = True
            wanted = arg.name.upper()
            if wanted == "OFFSET":
                raise error(f"{kind}'s OFFSET is not supported: windows are aligned to the epoch", arg.span)
            if wanted not in names:
                raise error(f"{kind} has no parameter '{arg.name}': it takes {', '.join(names)}", arg.span)
            if wanted in values:
                raise error(f"{kind}'s {wanted} is given twice", arg.span)
            values[wanted] = arg.value
            continue
        if named:
            raise error(f"a positional argument of {kind} cannot follow a named one", _span_of(arg))
        if i >= len(names):
            raise error(f"{kind} takes {len(names)} arguments: {_usage(kind)}", _span_of(arg) or span)
        values[names[i]] = arg
    missing = [n for n in names if n not in values]
    if missing:
        raise error(f"{kind} is missing {', '.join(missing)}: {_usage(kind)}", span)
    return [values[n] for n in names]
