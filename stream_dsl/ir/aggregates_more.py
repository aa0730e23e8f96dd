"""The aggregates beyond COUNT, SUM, AVG, MIN and MAX: their types, partial state, parameters and docs.

Registered into `functions.AGGREGATE_FUNCTIONS` (the binder's table); the
polars side (partial state of a batch or a row, merging, the final value)
is `executor/state/aggregate_more.py`. Semantics are DuckDB's:

- STDDEV_SAMP (STDDEV), STDDEV_POP, VAR_SAMP (VARIANCE), VAR_POP: state
  (count, mean, M2), merged by Chan's parallel formula (numerically stable,
  unlike a sum of squares). SAMP is NULL below two values, POP below one.
- APPROX_COUNT_DISTINCT: EXACT here (error 0), from the set of the group's
  distinct non-NULL values: state grows with the distinct values per group.
- MEDIAN, APPROX_PERCENTILE(x, p) (APPROX_QUANTILE): EXACT interpolated
  quantile (DuckDB's quantile_cont / median), from every non-NULL value of
  the group: state grows with the group's rows.
- FIRST_VALUE, LAST_VALUE, ARRAY_AGG, STRING_AGG(x[, sep]): ordered by
  event time, NULL times last (SQL's ORDER BY t ASC), ties by arrival at
  the group's state. The event time is the window's time column; without
  a window, the input's watermarked column (a stream's WATERMARK FOR
  column, if the query keeps it), else none: arrival order alone. NULL
  values count for FIRST_VALUE, LAST_VALUE and ARRAY_AGG (as DuckDB's
  first/last/array_agg), STRING_AGG skips them. Arrival order is
  deterministic with one worker and one source split; with several, rows
  of equal event time arrive in any order. Without a window the result
  is a changelog: a late-arriving earlier event changes FIRST_VALUE.

All of them split into two phases (partial state is mergeable); MEDIAN,
APPROX_PERCENTILE, ARRAY_AGG and STRING_AGG merge by concatenating lists,
so the partial phase saves no bytes for them, only a shuffle of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from stream_dsl.ir.types import DataType, Field, list_of

T = DataType


@dataclass(frozen=True, slots=True)
class MoreAggregate:
    """`arg`: the argument kind ('numeric', 'string', 'any'); `param`: the second argument, a constant:
    'fraction' (a number in [0, 1]), 'separator' (a string, default ','), or None."""

    name: str
    arg: str
    returns: Callable[[DataType], DataType]
    signature: str
    description: str
    nulls: str
    example: str = ""
    param: str | None = None
    param_required: bool = False
    ordered: bool = False  # by event time, then arrival

    @property
    def state(self) -> str:
        """DESCRIBE FUNCTION's 'state': what a group keeps, and what its partial phase sends."""
        return _STATE[self.name]


def _double(t: DataType) -> DataType:
    return T.DOUBLE


def _same(t: DataType) -> DataType:
    return t


_STATS = "NULLs skipped; NULL over no values"
_ORDER = "by event time (the window's, else the stream's WATERMARK column; none: arrival), ties by arrival"
_MORE = [
    MoreAggregate(
        "stddev_samp",
        "numeric",
        _double,
        "stddev_samp(x NUMERIC) -> DOUBLE",
        "sample standard deviation",
        _STATS + " or one value",
        "stddev_samp(x) over 1, 2, 3, 4 = 1.2909944487358056",
    ),
    MoreAggregate(
        "stddev_pop",
        "numeric",
        _double,
        "stddev_pop(x NUMERIC) -> DOUBLE",
        "population standard deviation",
        _STATS,
        "stddev_pop(x) over 1, 2, 3, 4 = 1.118033988749895",
    ),
    MoreAggregate(
        "var_samp",
        "numeric",
        _double,
        "var_samp(x NUMERIC) -> DOUBLE",
        "sample variance",
        _STATS + " or one value",
        "var_samp(x) over 1, 2, 3, 4 = 1.6666666666666667",
    ),
    MoreAggregate(
        "var_pop",
        "numeric",
        _double,
        "var_pop(x NUMERIC) -> DOUBLE",
        "population variance",
        _STATS,
        "var_pop(x) over 1, 2, 3, 4 = 1.25",
    ),
    MoreAggregate(
        "approx_count_distinct",
        "any",
        lambda t: T.BIGINT,
        "approx_count_distinct(x ANY) -> BIGINT",
        "distinct non-NULL values; exact here (error 0), its state holds each group's distinct values",
        "NULLs not counted; 0 over no values",
        "approx_count_distinct(x) over 1, 2, 2, NULL = 2",
    ),
    MoreAggregate(
        "median",
        "numeric",
        _double,
        "median(x NUMERIC) -> DOUBLE",
        "the middle value, the two middle ones averaged (exact; state holds every value of the group)",
        _STATS,
        "median(x) over 1, 2, 4, 9 = 3.0",
    ),
    MoreAggregate(
        "approx_percentile",
        "numeric",
        _double,
        "approx_percentile(x NUMERIC, p DOUBLE constant in [0, 1]) -> DOUBLE",
        "the p-quantile, interpolated (exact, as DuckDB's quantile_cont; state holds every value)",
        _STATS,
        "approx_percentile(x, 0.25) over 1, 2, 3, 4, 5, 6 = 2.25",
        param="fraction",
        param_required=True,
    ),
    MoreAggregate(
        "first_value",
        "any",
        _same,
        "first_value(x ANY) -> same type",
        "x of the first row " + _ORDER,
        "a NULL x counts (the result is NULL if the first row's x is)",
        "first_value(x) over 3, NULL, 5 = 3",
        ordered=True,
    ),
    MoreAggregate(
        "last_value",
        "any",
        _same,
        "last_value(x ANY) -> same type",
        "x of the last row " + _ORDER,
        "a NULL x counts (the result is NULL if the last row's x is)",
        "last_value(x) over 3, 5, NULL = NULL",
        ordered=True,
    ),
    MoreAggregate(
        "array_agg",
        "any",
        list_of,
        "array_agg(x ANY) -> list of x's type (e.g. BIGINT[])",
        "every x as a list, " + _ORDER,
        "NULL values are kept in the list",
        "array_agg(x) over 3, NULL, 5 = [3, NULL, 5]",
        ordered=True,
    ),
    MoreAggregate(
        "string_agg",
        "string",
        lambda t: T.STRING,
        "string_agg(x STRING[, sep STRING constant = ',']) -> STRING",
        "the strings joined by sep, " + _ORDER,
        "NULLs skipped; NULL over no values",
        "string_agg(x, '-') over 'a', NULL, 'b' = 'a-b'",
        param="separator",
        ordered=True,
    ),
]
_VARIANCE_STATE = "count, mean and M2 (Chan's merge); two-phase: one state row per group and task"
_LIST_STATE = "two-phase, but the partial phase sends every value (as lists)"
_STATE = {
    "stddev_samp": _VARIANCE_STATE,
    "stddev_pop": _VARIANCE_STATE,
    "var_samp": _VARIANCE_STATE,
    "var_pop": _VARIANCE_STATE,
    "approx_count_distinct": "the set of distinct values; two-phase: each task's distinct values per group",
    "median": "every non-NULL value; " + _LIST_STATE,
    "approx_percentile": "every non-NULL value; " + _LIST_STATE,
    "first_value": "the first row's time and value; two-phase: one per group and task",
    "last_value": "the last row's time and value; two-phase: one per group and task",
    "array_agg": "every value with its time; " + _LIST_STATE,
    "string_agg": "every value with its time; " + _LIST_STATE,
}
MORE_AGGREGATES: dict[str, MoreAggregate] = {a.name: a for a in _MORE}
MORE_ALIASES = {
    "stddev": "stddev_samp",
    "variance": "var_samp",
    "approx_quantile": "approx_percentile",
    "first": "first_value",
    "last": "last_value",
    "listagg": "string_agg",
    "group_concat": "string_agg",
}
VARIANCES = ("stddev_samp", "stddev_pop", "var_samp", "var_pop")


def is_more(func: str) -> bool:
    """Whether `func` is one of this module's aggregates (not COUNT, SUM, AVG, MIN, MAX)."""
    return func in MORE_AGGREGATES


def is_ordered(func: str) -> bool:
    """Whether `func` depends on the order of rows (event time, then arrival)."""
    return func in MORE_AGGREGATES and MORE_AGGREGATES[func].ordered


def state_fields(i: int, func: str, dtype: DataType, arg_dtype: DataType | None) -> tuple[Field, ...]:
    """The partial state columns of aggregate number `i`, a `func` of this module (see the module doc).

    Each name is RESERVED_PREFIX, a letter code of its own, then `i`.
    """
    arg = arg_dtype or T.NULL
    if func in VARIANCES:
        return (Field(f"__sd_vn{i}", T.BIGINT), Field(f"__sd_vm{i}", T.DOUBLE), Field(f"__sd_vq{i}", T.DOUBLE))
    if func == "approx_count_distinct":
        return (Field(f"__sd_set{i}", list_of(arg)),)
    if func in ("median", "approx_percentile"):
        return (Field(f"__sd_vals{i}", T.LIST_DOUBLE),)
    if func in ("first_value", "last_value"):
        return (Field(f"__sd_ft{i}", T.BIGINT), Field(f"__sd_fx{i}", dtype))
    assert func in ("array_agg", "string_agg"), func
    values = list_of(T.STRING if func == "string_agg" else arg)
    return (Field(f"__sd_lt{i}", T.LIST_BIGINT), Field(f"__sd_lx{i}", values))


def describe_merge(func: str, columns: tuple[str, ...]) -> str:
    """How a final aggregate merges the state (EXPLAIN)."""
    if func in VARIANCES:
        return f"chan_merge({', '.join(columns)})"
    if func == "approx_count_distinct":
        return f"union({columns[0]})"
    if func in ("first_value", "last_value"):
        return f"{'earliest' if func == 'first_value' else 'latest'}({columns[1]} by {columns[0]})"
    return f"concat({columns[-1]})"
