"""The dataframe API of `stream_dsl.ir.aggregates_more`: `sd.median("x")` is SQL's MEDIAN(x), and so on.

Each function is named as its SQL aggregate (the reference lists its first
docstring line); `sd.Expr` has the polars spellings (`std`, `var`,
`median`, `quantile`, `first`, `last`, `approx_n_unique`, `implode`,
`str.join`).

Examples
--------
>>> import stream_dsl as sd
>>> sd.stddev_samp("price"), sd.approx_percentile("latency_ms", 0.99), sd.string_agg("tag", "|")
(<Expr STDDEV_SAMP(price)>, <Expr APPROX_PERCENTILE(latency_ms, 0.99)>, <Expr STRING_AGG(tag, '|')>)
"""

from __future__ import annotations

from stream_dsl.frame.expr import Expr, column_node, value_node
from stream_dsl.sql import ast


def _agg(name: str, column: str | Expr, *params: object) -> Expr:
    return Expr(ast.FuncCall(name, (column_node(column), *(value_node(p) for p in params))))


def stddev_samp(column: str | Expr) -> Expr:
    """Sample standard deviation (NULL below two values); polars' `std()`."""
    return _agg("STDDEV_SAMP", column)


def stddev_pop(column: str | Expr) -> Expr:
    """Population standard deviation; polars' `std(ddof=0)`."""
    return _agg("STDDEV_POP", column)


def var_samp(column: str | Expr) -> Expr:
    """Sample variance (NULL below two values); polars' `var()`."""
    return _agg("VAR_SAMP", column)


def var_pop(column: str | Expr) -> Expr:
    """Population variance; polars' `var(ddof=0)`."""
    return _agg("VAR_POP", column)


def approx_count_distinct(column: str | Expr) -> Expr:
    """Distinct non-NULL values (exact here); polars' `approx_n_unique()`."""
    return _agg("APPROX_COUNT_DISTINCT", column)


def median(column: str | Expr) -> Expr:
    """The median, the two middle values averaged (exact)."""
    return _agg("MEDIAN", column)


def approx_percentile(column: str | Expr, p: float) -> Expr:
    """The p-quantile, linearly interpolated (exact, DuckDB's quantile_cont); polars' `quantile(p, 'linear')`."""
    return _agg("APPROX_PERCENTILE", column, float(p))


def first_value(column: str | Expr) -> Expr:
    """The value of the earliest row by event time, ties by arrival."""
    return _agg("FIRST_VALUE", column)


def last_value(column: str | Expr) -> Expr:
    """The value of the latest row by event time, ties by arrival."""
    return _agg("LAST_VALUE", column)


def array_agg(column: str | Expr) -> Expr:
    """Every value (NULLs too) as a list, by event time then arrival; polars' `implode()`."""
    return _agg("ARRAY_AGG", column)


def string_agg(column: str | Expr, separator: str = ",") -> Expr:
    """The non-NULL strings joined by `separator`, by event time then arrival; polars' `str.join()`."""
    return _agg("STRING_AGG", column, separator)
