"""stream-dsl: continuous queries over unbounded streams, in a SQL-like DSL or a polars-style API.

>>> import stream_dsl as sd
>>> ctx = sd.Context(workers=2, executor="drizzle", group_size=10, batch_interval="100ms")

See `Context` for the entry point and `Stream` for the dataframe API;
docs/language.md describes the language and docs/architecture.md the design.
"""

from stream_dsl.context import Context
from stream_dsl.dataframe import GroupBy, Stream, Table
from stream_dsl.dataframe_expr import (Expr, all, avg, col, count, hop, len, lit, max, mean, min, n_unique, session,
                                       sql_expr, sum, tumble, when)
from stream_dsl.errors import (BindError, CatalogError, ConnectorError, DSLError, ExecutionError, ParseError,
                               PlanError, PositionedError)
from stream_dsl.types import DataType
from stream_dsl.version import __version__

# SQL type names, and the polars-style names of the same types.
BIGINT = DataType.BIGINT
INT = DataType.INT
DOUBLE = DataType.DOUBLE
STRING = DataType.STRING
BOOLEAN = DataType.BOOLEAN
TIMESTAMP = DataType.TIMESTAMP
INTERVAL = DataType.INTERVAL
Int64 = BIGINT
Int32 = INT
Float64 = DOUBLE
String = Utf8 = STRING
Boolean = BOOLEAN
Datetime = TIMESTAMP
Duration = INTERVAL

__all__ = [
    "Context", "Stream", "Table", "GroupBy", "Expr",
    "col", "lit", "when", "all", "count", "len", "sum", "mean", "avg", "min", "max", "n_unique",
    "tumble", "hop", "session", "sql_expr",
    "DSLError", "PositionedError", "ParseError", "BindError", "CatalogError", "ConnectorError", "ExecutionError",
    "PlanError",
    "DataType", "BIGINT", "INT", "DOUBLE", "STRING", "BOOLEAN", "TIMESTAMP", "INTERVAL",
    "Int64", "Int32", "Float64", "String", "Utf8", "Boolean", "Datetime", "Duration",
    "__version__",
]
