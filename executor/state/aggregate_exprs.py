"""The polars expressions of aggregate state: a batch's or a row's partial state, merging it, the final value."""

from __future__ import annotations

import polars as pl

from executor.state import aggregate_more as more
from executor.state import udf_aggregates
from optimizer.physical.stages import AggSpec
from stream_dsl.ir.aggregates_more import is_more
from stream_dsl.ir import column_names as names
from stream_dsl.ir.column_names import PARTIAL_ROWS
from stream_dsl.ir.partial_state import sum_type
from stream_dsl.ir.types import DataType

_ROWS = PARTIAL_ROWS


def _sum_type(spec: AggSpec) -> pl.DataType:
    return sum_type(spec.func, spec.dtype, spec.arg_dtype).polars


def _partial_names(i: int, spec: AggSpec) -> list[tuple[str, str]]:
    """(state column, how it merges) for aggregate `i`: counts and sums add up, MIN and MAX take theirs."""
    how = spec.func if spec.func in ("min", "max") else "sum"
    return [(name, how) for name in spec.state_columns(i)]


def batch_partials(aggs: tuple[AggSpec, ...]) -> list[pl.Expr]:
    """Aggregations of a batch's rows into partial state, per group."""
    out = [pl.len().cast(pl.Int64).alias(_ROWS)]
    for i, spec in enumerate(aggs):
        x = pl.col(spec.arg) if spec.arg is not None else None
        if is_more(spec.func):
            out += more.batch_partial(i, spec)
        elif spec.udf is not None:  # an aggregate UDF (udf_aggregates.py)
            assert x is not None  # an aggregate UDF takes one argument
            out.append(udf_aggregates.batch_partial(spec.udf, x).alias(names.udf_state_col(i)))
        elif spec.func == "count":
            if not spec.distinct:
                out.append((pl.len() if x is None else x.count()).cast(pl.Int64).alias(names.count_col(i)))
        elif spec.func in ("sum", "avg"):
            assert x is not None  # only COUNT(*) has no argument
            out += [
                checked_sum(x.cast(_sum_type(spec)), _sum_type(spec) == pl.Int64).alias(names.sum_col(i)),
                x.count().cast(pl.Int64).alias(names.nonnull_col(i)),
            ]
        else:
            assert x is not None  # only COUNT(*) has no argument
            extreme = _extreme(x.cast(spec.dtype.polars), spec.func, spec.dtype)
            out.append(extreme.alias(names.extreme_col(spec.func, i)))
    return out


def _extreme(x: pl.Expr, func: str, dtype: DataType) -> pl.Expr:
    """MIN or MAX; NaN is above every DOUBLE, as in DuckDB (polars' max skips it, so MAX takes nan_max)."""
    return x.nan_max() if func == "max" and dtype is DataType.DOUBLE else getattr(x, func)()


def row_partials(aggs: tuple[AggSpec, ...]) -> list[pl.Expr]:
    """The partial state of each single row (sessions merge these with existing sessions)."""
    out = [pl.lit(1, dtype=pl.Int64).alias(_ROWS)]
    for i, spec in enumerate(aggs):
        x = pl.col(spec.arg) if spec.arg is not None else None
        if is_more(spec.func):
            out += more.row_partial(i, spec)
        elif spec.udf is not None:  # an aggregate UDF (udf_aggregates.py)
            assert x is not None  # an aggregate UDF takes one argument
            out.append(udf_aggregates.row_partial(spec.udf, x).alias(names.udf_state_col(i)))
        elif spec.func == "count":
            if not spec.distinct:
                value = pl.lit(1, dtype=pl.Int64) if x is None else x.is_not_null().cast(pl.Int64)
                out.append(value.alias(names.count_col(i)))
        elif spec.func in ("sum", "avg"):
            assert x is not None  # only COUNT(*) has no argument
            out += [
                x.cast(_sum_type(spec)).fill_null(0).alias(names.sum_col(i)),
                x.is_not_null().cast(pl.Int64).alias(names.nonnull_col(i)),
            ]
        else:
            assert x is not None  # only COUNT(*) has no argument
            out.append(x.cast(spec.dtype.polars).alias(names.extreme_col(spec.func, i)))
    return out


def merge_partials(aggs: tuple[AggSpec, ...]) -> list[pl.Expr]:
    """How partial state rows of one group combine."""
    out = [pl.col(_ROWS).sum()]
    for i, spec in enumerate(aggs):
        if is_more(spec.func):
            out += more.merge(i, spec)
            continue
        if spec.udf is not None:  # an aggregate UDF (udf_aggregates.py)
            name = names.udf_state_col(i)
            out.append(udf_aggregates.merge(spec.udf, pl.col(name)).alias(name))
            continue
        for name, how in _partial_names(i, spec):
            integer_sum = name == names.sum_col(i) and _sum_type(spec) == pl.Int64
            if integer_sum:
                out.append(checked_sum(pl.col(name), True).alias(name))
            elif how in ("min", "max"):
                out.append(_extreme(pl.col(name), how, spec.dtype).alias(name))
            else:
                out.append(getattr(pl.col(name), how)())
    return out


def checked_sum(x: pl.Expr, integer: bool) -> pl.Expr:
    """SUM that raises instead of wrapping: an integer sum is taken in Int128 and cast back to Int64 strictly.

    Polars wraps an Int64 sum around silently; SQL engines raise (DuckDB
    widens). Every partial and merged sum is checked, so the state never
    holds a wrapped value.
    """
    return x.cast(pl.Int128).sum().cast(pl.Int64) if integer else x.sum()


def final_value(i: int, spec: AggSpec) -> pl.Expr:
    """Aggregate `i`'s output value from its state columns (SQL NULLs: no non-null values is NULL, COUNT 0)."""
    if is_more(spec.func):
        return more.final_value(i, spec)
    if spec.udf is not None:  # an aggregate UDF (udf_aggregates.py)
        return udf_aggregates.final(spec.udf, pl.col(names.udf_state_col(i)))
    if spec.func == "count":
        return pl.col(names.distinct_count_col(i)).fill_null(0) if spec.distinct else pl.col(names.count_col(i))
    total, nonnull = pl.col(names.sum_col(i)), pl.col(names.nonnull_col(i))
    if spec.func == "sum":
        return pl.when(nonnull > 0).then(total).otherwise(None)
    if spec.func == "avg":
        return pl.when(nonnull > 0).then(total.cast(pl.Float64) / nonnull).otherwise(None)
    return pl.col(names.extreme_col(spec.func, i))
