"""Errors a query raises while it runs, and how compiled expressions raise them (polars has no raise).

A check is a `fail_where`: the value, plus a UDF that raises when any row
failed. Checks count only for rows that use the value: `guarded` records
the conditions under which an expression's value is used (a CASE branch,
the right side of AND/OR, a later WHERE conjunct, a later COALESCE
argument), and a check over constants counts only when some row exists.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Callable

import polars as pl

from stream_dsl.ir.types import DataType


class CastFailure(ValueError):
    """A value that a CAST cannot convert; raised while a query runs."""


class OverflowFailure(ArithmeticError):
    """Integer arithmetic whose result does not fit its type; raised while a query runs."""


# While a CASE branch compiles: the conditions under which its value is used (per thread and task).
GUARDS: ContextVar[tuple[pl.Expr, ...]] = ContextVar("stream_dsl_case_guards", default=())


def guarded(guard: pl.Expr, build: Callable[[], pl.Expr]) -> pl.Expr:
    """`build()` compiled knowing its value is used only where `guard` holds (see `fail_where`)."""
    token = GUARDS.set(GUARDS.get() + (guard,))
    try:
        return build()
    finally:
        GUARDS.reset(token)


def fail_where(
    failed: pl.Expr, shown: pl.Expr, value: pl.Expr, error: Callable[[Any, int], Exception], dtype: pl.DataType
) -> pl.Expr:
    """`value`, but raise `error(first shown value, rows)` when any row `failed` (polars has no raise).

    Inside CASE branches only the rows the branches pick count (`guarded`).
    """
    for guard in GUARDS.get():
        failed = failed & guard
    if not failed.meta.root_names():
        # Constant operands: the value fails only if some row uses it (not over no rows, as in DuckDB).
        failed = failed & pl.repeat(True, pl.len())
    bad = pl.when(failed).then(shown).otherwise(None)

    def check(series: pl.Series) -> pl.Series:
        rest = series.drop_nulls()
        if len(rest):
            raise error(rest[0], len(rest))
        return pl.Series(series.name, [None] * len(series), dtype=dtype)

    # elementwise: over constant operands the check is a constant too, which polars then broadcasts.
    return pl.coalesce(value, bad.map_batches(check, return_dtype=dtype, is_elementwise=True))


def cast_checked(original: pl.Expr, value: pl.Expr, target: DataType) -> pl.Expr:
    """`value`, the CAST of `original` to `target`, but raise CastFailure naming the first input that was not
    NULL and did not convert (every CAST's one failure rule and message)."""
    return fail_where(
        original.is_not_null() & value.is_null(),
        original.cast(pl.String),
        value,
        lambda first, n: CastFailure(
            f"cannot CAST '{first}' to {target.value} ({n} value{'s' if n > 1 else ''} failed)"
        ),
        target.polars,
    )
