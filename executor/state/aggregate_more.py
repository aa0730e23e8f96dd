"""The polars side of `stream_dsl.ir.aggregates_more`: partial state of a batch or a row, its merge, the value.

Each function returns the expressions of ONE aggregate, number `i`, for
`aggregate_exprs`, which calls them where it builds COUNT's or SUM's.
They work in a group-by and in a plain select (no group keys) alike:
`implode()` makes a list of a group's values in both.

- Variances keep (n, mean, M2) and merge k partial states by Chan et al.:
  n = Σnᵢ, mean = Σnᵢmeanᵢ / n, M2 = ΣM2ᵢ + Σnᵢ(meanᵢ - mean)².
- Ordered aggregates (FIRST_VALUE, LAST_VALUE, ARRAY_AGG, STRING_AGG) keep
  the event time (epoch ms, NULL when ordered by arrival) next to the
  value(s); lists stay sorted by time, stably, so rows of equal time keep
  the order they arrived in (the state's rows before a batch's, and a
  group-by keeps each group's row order). Lists of a group are never
  empty (every partial state row stands for at least one input row): an
  empty list would explode into one NULL.
"""

from __future__ import annotations

import polars as pl

from optimizer.physical.stages import AggSpec
from stream_dsl.ir.aggregates_more import VARIANCES

_F64 = pl.Float64


def _state(i: int, spec: AggSpec) -> list[pl.Expr]:
    return [pl.col(name) for name in spec.state_columns(i)]


def _argument(spec: AggSpec) -> pl.Expr:
    """The argument column; STRING_AGG's as text (a NULL literal's column has polars' Null type)."""
    assert spec.arg is not None  # every aggregate of this module takes an argument
    x = pl.col(spec.arg)
    return x.cast(pl.String) if spec.func == "string_agg" else x


def _time(spec: AggSpec, x: pl.Expr) -> pl.Expr:
    """The ordering time of each row in epoch ms: the spec's time column, or NULL (arrival order) as long as x."""
    if spec.time is not None:
        return pl.col(spec.time).dt.epoch("ms")
    return pl.when(x.is_null() & x.is_not_null()).then(pl.lit(0, dtype=pl.Int64))


def batch_partial(i: int, spec: AggSpec) -> list[pl.Expr]:
    """A group of raw rows as one partial state row."""
    x = _argument(spec)
    names = spec.state_columns(i)
    if spec.func in VARIANCES:
        v = x.cast(_F64)
        return [
            v.count().cast(pl.Int64).alias(names[0]),
            v.mean().alias(names[1]),
            ((v - v.mean()) ** 2).sum().alias(names[2]),
        ]
    if spec.func == "approx_count_distinct":
        return [x.drop_nulls().unique().implode().alias(names[0])]
    if spec.func in ("median", "approx_percentile"):
        return [x.cast(_F64).drop_nulls().implode().alias(names[0])]
    t = _time(spec, x)
    if spec.func == "first_value":
        return [t.min().alias(names[0]), _sorted(x, t).first().alias(names[1])]
    if spec.func == "last_value":
        return [_latest(t).alias(names[0]), _sorted(x, t).last().alias(names[1])]
    return [t.sort(nulls_last=True).implode().alias(names[0]), _sorted(x, t).implode().alias(names[1])]


def row_partial(i: int, spec: AggSpec) -> list[pl.Expr]:
    """Each raw row as its own partial state row."""
    x = _argument(spec)
    names = spec.state_columns(i)
    if spec.func in VARIANCES:
        v = x.cast(_F64)
        return [
            x.is_not_null().cast(pl.Int64).alias(names[0]),
            v.alias(names[1]),
            pl.when(x.is_not_null()).then(pl.lit(0.0, dtype=_F64)).alias(names[2]),
        ]
    if spec.func == "approx_count_distinct":
        return [pl.concat_list([x]).list.drop_nulls().alias(names[0])]
    if spec.func in ("median", "approx_percentile"):
        return [pl.concat_list([x.cast(_F64)]).list.drop_nulls().alias(names[0])]
    t = _time(spec, x)
    if spec.func in ("first_value", "last_value"):
        return [t.alias(names[0]), x.alias(names[1])]
    return [pl.concat_list([t]).alias(names[0]), pl.concat_list([x]).alias(names[1])]


def merge(i: int, spec: AggSpec) -> list[pl.Expr]:
    """How partial state rows of one group combine (in arrival order)."""
    columns = _state(i, spec)
    names = spec.state_columns(i)
    if spec.func in VARIANCES:
        n, mean, m2 = columns
        total = n.sum()
        merged_mean = (n * mean.fill_null(0.0)).sum() / total
        spread = (n * (mean - merged_mean) ** 2).fill_null(0.0).sum()
        return [
            total.alias(names[0]),
            pl.when(total > 0).then(merged_mean).alias(names[1]),
            (m2.fill_null(0.0).sum() + spread).alias(names[2]),
        ]
    if spec.func == "approx_count_distinct":
        return [columns[0].explode().drop_nulls().unique().implode().alias(names[0])]
    if spec.func in ("median", "approx_percentile"):
        return [columns[0].explode().drop_nulls().implode().alias(names[0])]
    t, x = columns
    if spec.func == "first_value":
        return [t.min().alias(names[0]), _sorted(x, t).first().alias(names[1])]
    if spec.func == "last_value":
        return [_latest(t).alias(names[0]), _sorted(x, t).last().alias(names[1])]
    times, values = t.explode(), x.explode()
    return [times.sort(nulls_last=True).implode().alias(names[0]), _sorted(values, times).implode().alias(names[1])]


def _sorted(x: pl.Expr, t: pl.Expr) -> pl.Expr:
    """x by t, stable: equal (or NULL, arrival-ordered) times keep their order; NULL times last (as SQL's ASC)."""
    return x.sort_by(t, maintain_order=True, nulls_last=True)


def _latest(t: pl.Expr) -> pl.Expr:
    """The latest time in `_sorted`'s order: NULL (after every time) if there is one."""
    return pl.when(t.null_count() == 0).then(t.max())


def final_value(i: int, spec: AggSpec) -> pl.Expr:
    """The aggregate's value from its (merged) state columns."""
    columns = _state(i, spec)
    if spec.func in VARIANCES:
        n, _, m2 = columns
        least = 2 if spec.func.endswith("samp") else 1
        variance = m2 / (n - 1 if least == 2 else n).cast(_F64)
        value = variance.sqrt() if spec.func.startswith("stddev") else variance
        return pl.when(n >= least).then(value)
    if spec.func == "approx_count_distinct":
        return columns[0].list.len().fill_null(0).cast(pl.Int64)
    if spec.func in ("median", "approx_percentile"):
        p = 0.5 if spec.func == "median" else float(spec.param)  # type: ignore[arg-type]
        return columns[0].list.eval(pl.element().quantile(p, "linear")).list.first()
    if spec.func in ("first_value", "last_value", "array_agg"):
        return columns[1]
    assert spec.func == "string_agg", spec.func
    strings = columns[1].list.drop_nulls()
    return pl.when(strings.list.len() > 0).then(strings.list.join(str(spec.param)))
