"""The two-phase aggregation state layout: which state columns a partial aggregate emits, per aggregate."""

from __future__ import annotations

from stream_dsl.errors import PlanError
from stream_dsl.ir.aggregates_more import is_more, state_fields as more_state_fields
from stream_dsl.ir.column_names import count_col, extreme_col, nonnull_col, sum_col, udf_state_col
from stream_dsl.ir.expr import Agg, Expr, NamedExpr
from stream_dsl.ir.types import DataType, Field, decimal

# A partial aggregate adds PARTIAL_ROWS, PARTIAL_DISTINCT and the state columns (`stream_dsl.ir.column_names`).


def state_fields(
    i: int, func: str, dtype: DataType, distinct: bool = False, arg_dtype: DataType | None = None, udf: object = None
) -> tuple[Field, ...]:
    """The partial state columns of aggregate number `i` (`func` producing `dtype`), named by position.

    COUNT: `count_col(i)`; SUM and AVG: a sum `sum_col(i)` and a non-NULL count
    `nonnull_col(i)` (so a SUM of only NULLs stays NULL); MIN, MAX:
    `extreme_col(func, i)`; COUNT(DISTINCT x): none (x is a partial group column).
    These are the names `executor/state.py` keeps its per-group state in.
    An aggregate UDF (`udf`): its pickled state, `udf_state_col(i)` (BINARY).
    """
    if udf is not None:
        return (Field(udf_state_col(i), DataType.BINARY),)
    if is_more(func):
        return more_state_fields(i, func, dtype, arg_dtype)
    if func == "count":
        return () if distinct else (Field(count_col(i), DataType.BIGINT),)
    if func in ("sum", "avg"):
        total = sum_type(func, dtype, arg_dtype)
        return (Field(sum_col(i), total), Field(nonnull_col(i), DataType.BIGINT))
    return (Field(extreme_col(func, i), dtype),)


def sum_type(func: str, dtype: DataType, arg_dtype: DataType | None) -> DataType:
    """The type of a SUM's or an AVG's partial sum.

    A SUM sums in its result type (BIGINT raises when the total leaves it).
    An AVG over integers sums exactly in HUGEINT, as DuckDB does, so that
    large values cancelling across batches give the exact mean whatever the
    micro-batch cuts; an AVG over DOUBLE sums in DOUBLE.
    """
    if arg_dtype is not None and arg_dtype.is_decimal:  # exact: DECIMAL(38, s), as DuckDB's SUM
        return decimal(38, arg_dtype.scale)
    if func == "avg":
        return DataType.HUGEINT if arg_dtype is not None and arg_dtype.is_integer else DataType.DOUBLE
    return DataType.DOUBLE if dtype is DataType.DOUBLE else DataType.BIGINT


def partial_state_fields(aggs: tuple[NamedExpr, ...]) -> tuple[Field, ...]:
    """The state columns a partial aggregate emits for `aggs` (see `state_fields`)."""
    fields: list[Field] = []
    for i, named in enumerate(aggs):
        agg = named.expr
        assert isinstance(agg, Agg)
        arg_dtype = agg.arg.dtype if agg.arg is not None else None
        fields += state_fields(i, agg.func, agg.dtype, agg.distinct, arg_dtype, agg.udf)
    return tuple(fields)


def distinct_argument(aggs: tuple[NamedExpr, ...]) -> Expr | None:
    """The one argument every COUNT(DISTINCT ...) of `aggs` shares, or None when there is none.

    Raises PlanError when two distinct counts take different arguments: a
    partial aggregate groups on the argument, so there can be only one.
    """
    args = {n.expr.arg for n in aggs if isinstance(n.expr, Agg) and n.expr.distinct}
    if len(args) > 1:
        raise PlanError("a partial aggregate supports COUNT(DISTINCT x) of one argument only")
    return next(iter(args), None)
