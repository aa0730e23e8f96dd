"""stream-dsl: continuous queries over unbounded streams, in a SQL-like DSL or a polars-style API.

>>> import stream_dsl as sd
>>> ctx = sd.Context(workers=2, executor="drizzle", group_size=10, batch_interval="100ms")

See `Context` for the entry point and `Stream` for the dataframe API;
docs/language.md describes the language and docs/architecture.md the design.
"""

import importlib
from typing import TYPE_CHECKING, Any


# Public names, loaded when first used (PEP 562): `import stream_dsl` stays cheap, and `stream-dsl --help` or the
# scheduler's state machine never load polars or lark through it.
_EXPORTS = {
    "Context": "stream_dsl.context",
    **dict.fromkeys(("GroupBy", "Stream", "Table"), "stream_dsl.frame.stream"),
    **dict.fromkeys(
        (
            "Expr",
            "all",
            "avg",
            "col",
            "count",
            "cumulate",
            "hop",
            "len",
            "lit",
            "max",
            "mean",
            "min",
            "n_unique",
            "session",
            "sql_expr",
            "sum",
            "tumble",
            "when",
            "func",
            "coalesce",
            "greatest",
            "least",
            "concat_ws",
            "now",
        ),
        "stream_dsl.frame.expr",
    ),
    **dict.fromkeys(
        (
            "BindError",
            "CatalogError",
            "ConnectorError",
            "DSLError",
            "ExecutionError",
            "ParseError",
            "PlanError",
            "PositionedError",
        ),
        "stream_dsl.errors",
    ),
    "DataType": "stream_dsl.ir.types",
    **dict.fromkeys(
        (
            "stddev_samp",
            "stddev_pop",
            "var_samp",
            "var_pop",
            "approx_count_distinct",
            "median",
            "approx_percentile",
            "first_value",
            "last_value",
            "array_agg",
            "string_agg",
        ),
        "stream_dsl.frame.aggregates",
    ),
    "udf": "stream_dsl.frame.udf",
}
# SQL type names, and the polars-style names of the same types.
_TYPES = {
    "BIGINT": "BIGINT",
    "INT": "INT",
    "DOUBLE": "DOUBLE",
    "STRING": "STRING",
    "BOOLEAN": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMP",
    "INTERVAL": "INTERVAL",
    "Int64": "BIGINT",
    "Int32": "INT",
    "Float64": "DOUBLE",
    "String": "STRING",
    "Utf8": "STRING",
    "Boolean": "BOOLEAN",
    "Datetime": "TIMESTAMP",
    "Duration": "INTERVAL",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # read from the installed metadata, which costs more than `--help` may
        from stream_dsl.version import __version__ as value
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _TYPES:
        value = getattr(__getattr__("DataType"), _TYPES[name])
    else:
        raise AttributeError(f"module 'stream_dsl' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_TYPES) | {"__version__"})


if TYPE_CHECKING:  # what the names above are, for type checkers and editors
    from stream_dsl.context import Context
    from stream_dsl.errors import (
        BindError,
        CatalogError,
        ConnectorError,
        DSLError,
        ExecutionError,
        ParseError,
        PlanError,
        PositionedError,
    )
    from stream_dsl.frame.expr import (
        Expr,
        all,
        avg,
        col,
        count,
        cumulate,
        hop,
        len,
        lit,
        max,
        mean,
        min,
        n_unique,
        session,
        sql_expr,
        sum,
        tumble,
        when,
    )
    from stream_dsl.frame.aggregates import (
        stddev_samp,
        stddev_pop,
        var_samp,
        var_pop,
        approx_count_distinct,
        median,
        approx_percentile,
        first_value,
        last_value,
        array_agg,
        string_agg,
    )
    from stream_dsl.frame.stream import GroupBy, Stream, Table
    from stream_dsl.ir.types import DataType

__all__ = [
    "Context",
    "Stream",
    "Table",
    "GroupBy",
    "Expr",
    "col",
    "lit",
    "when",
    "all",
    "count",
    "len",
    "sum",
    "mean",
    "avg",
    "min",
    "max",
    "n_unique",
    "stddev_samp",
    "stddev_pop",
    "var_samp",
    "var_pop",
    "approx_count_distinct",
    "median",
    "approx_percentile",
    "first_value",
    "last_value",
    "array_agg",
    "string_agg",
    "tumble",
    "hop",
    "cumulate",
    "session",
    "sql_expr",
    "DSLError",
    "PositionedError",
    "ParseError",
    "BindError",
    "CatalogError",
    "ConnectorError",
    "ExecutionError",
    "PlanError",
    "DataType",
    "BIGINT",
    "INT",
    "DOUBLE",
    "STRING",
    "BOOLEAN",
    "TIMESTAMP",
    "INTERVAL",
    "Int64",
    "Int32",
    "Float64",
    "String",
    "Utf8",
    "Boolean",
    "Datetime",
    "Duration",
    "__version__",
]
