"""Bound expressions → polars expressions, with exact SQL semantics.

Where polars and SQL disagree, SQL wins (DuckDB is the reference):

- NULL: comparisons and arithmetic with NULL give NULL; AND/OR use
  three-valued logic; `x IN (a, NULL)` is NULL, not FALSE, when x matches
  nothing; CASE treats a NULL condition as false.
- `/` always divides as DOUBLE (IEEE: 1/0 is inf, 0/0 is NaN).
- `%` is the SQL remainder: its sign follows the dividend (-7 % 2 = -1);
  a DOUBLE remainder is C's exact fmod (10 % 0.1 = 0.0999...), NaN for x % 0.0;
  an integer remainder by zero is NULL.
- LIKE: `%` any run, `_` one character, everything else literal (regex
  metacharacters are escaped); no escape character, as in DuckDB.
- `||` concatenates text; any NULL operand gives NULL.
- CAST: DOUBLE → integer rounds half to even (as DuckDB and PostgreSQL do),
  decimal text → integer half away from zero ('2.5' → 3); STRING → TIMESTAMP
  reads ISO-8601 ('2024-01-01', '2024-01-01 12:00:00.5', 'T' and 'Z' or a
  UTC offset allowed) or epoch milliseconds; TIMESTAMP → STRING writes
  '2024-01-01 12:00:00' (with '.5' or '.123' when there are milliseconds); a value
  that does not convert raises `CastFailure` when the query runs, which the
  executor reports as an ExecutionError naming the operator. Only the rows
  that use the value count: a CAST in a CASE branch fails only for the rows
  whose condition picks that branch (polars computes every branch on every
  row, so the branch's condition guards the check).
- Integer `+`, `-` and `*` whose result does not fit the type (INT or
  BIGINT) raise `OverflowFailure` naming the operands, as DuckDB and
  PostgreSQL do; polars would wrap around silently. So does a unary minus
  of the type's smallest value.
- TIMESTAMP ± INTERVAL, TIMESTAMP - TIMESTAMP and INTERVAL ± INTERVAL work
  in milliseconds. A TIMESTAMP is one of the years 1 to 9999 (Python's
  datetime, which results are read into): a CAST to one outside raises
  CastFailure, arithmetic that leaves them OverflowFailure.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from stream_dsl.ir import dates, decimals
from stream_dsl.ir import expr as E
from stream_dsl.ir.dispatch import node_pass
from stream_dsl.ir.functions import SCALAR_FUNCTIONS
from stream_dsl.ir.types import INTEGER_BOUNDS, DataType, common_decimal
from stream_dsl.ir.to_polars_cast import (
    TIMESTAMP_MAX_MS,
    TIMESTAMP_MIN_MS,
    cast,
    epoch_ms_to_timestamp,
    in_timestamp_range,
    parse_timestamp,
)
from stream_dsl.ir.to_polars_cast import to_string as _to_string
from stream_dsl.ir.to_polars_checks import CastFailure, OverflowFailure
from stream_dsl.ir.to_polars_checks import fail_where as _fail_where
from stream_dsl.ir.to_polars_checks import guarded as _guarded

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

T = DataType


def compile_expr(e: E.Expr) -> pl.Expr:
    """The polars expression computing `e` (aggregates excluded: see `executor.kernels`)."""
    return _compile(e)


def compile_named(n: E.NamedExpr) -> pl.Expr:
    return _compile(n.expr).alias(n.name)


def compile_predicate(e: E.Expr) -> pl.Expr:
    """A filter predicate: NULL counts as false (WHERE keeps only TRUE rows).

    Conjuncts count in order: a conjunct's checks run only for rows every
    earlier one kept (NULL AND x drops the row whatever x is, so x is not
    needed there). Those that cannot fail (`can_fail`) go first, in their
    written order, then the others, as DuckDB runs a filter's cheap terms
    first.
    """
    kept, result = pl.lit(True), None
    parts = sorted(E.conjuncts(e), key=can_fail)  # stable: each group keeps the written order
    # A constant conjunct that is FALSE decides every row first, as DuckDB's folding does (7 <= 0.5 AND ...);
    # as a guard it raises nothing (one that fails to compute is NULL there, and raises in its turn below).
    for part in parts:
        if not E.columns_used(part):
            quiet = _guarded(pl.lit(False), lambda: _as_bool(_compile(part), part))  # noqa: B023 (called at once)
            kept = kept & quiet.fill_null(True)
    for part in parts:
        if _never_true(part):  # drops every row whatever it reads: nothing in it is needed (DuckDB folds it)
            value: pl.Expr = pl.lit(False)
        else:
            value = _guarded(kept, lambda: _as_bool(_compile(part), part).fill_null(False))  # noqa: B023
        result = value if result is None else result & value
        kept = kept & value
    return result if result is not None else pl.lit(True)


def _never_true(e: E.Expr) -> bool:
    """`x NOT IN (..., NULL, ...)`: FALSE where x is in the list, NULL elsewhere, so never TRUE."""
    return isinstance(e, E.InList) and e.negated and any(isinstance(i, E.Literal) and i.value is None for i in e.items)


@node_pass("expr")
def _compile(e: object) -> pl.Expr:
    raise TypeError(f"cannot compile {type(e).__name__} to polars: {e!r}")


@_compile.register
def _(e: E.Column) -> pl.Expr:
    return pl.col(e.name)


@_compile.register
def _(e: E.Literal) -> pl.Expr:
    return literal(e.value, e.dtype)


def literal(value: object, dtype: DataType) -> pl.Expr:
    """A typed polars literal (a bare `None` keeps the Null type so it widens freely)."""
    if value is None:
        return pl.lit(None) if dtype is T.NULL else pl.lit(None, dtype=dtype.polars)
    if dtype is T.TIMESTAMP and isinstance(value, dt.datetime):
        return pl.lit(value, dtype=pl.Datetime("ms"))
    if dtype is T.INTERVAL and isinstance(value, dt.timedelta):
        return pl.lit(value, dtype=pl.Duration("ms"))
    return pl.lit(value, dtype=dtype.polars)


# ---------------------------------------------------------------- operators


@_compile.register
def _(e: E.Binary) -> pl.Expr:
    if e.op in ("AND", "OR"):
        # The second side decides only rows the first does not (not FALSE for AND, not TRUE for OR): its checks
        # count for those rows only. A side that cannot fail goes first (AND and OR commute), as DuckDB orders
        # a conjunction's cheap terms first: `d BETWEEN CAST(s AS DOUBLE) AND i` casts only where d <= i.
        if can_fail(e.left) and not can_fail(e.right):
            e = E.Binary(e.op, e.right, e.left, e.dtype, e.span)
        left = _as_bool(_compile(e.left), e.left)
        needed = left.fill_null(True) if e.op == "AND" else ~left.fill_null(False)
        right = _guarded(needed, lambda: _as_bool(_compile(e.right), e.right))
        return left & right if e.op == "AND" else left | right
    left, right = _compile(e.left), _compile(e.right)
    if e.op in ("+", "-") and e.dtype is T.DOUBLE and (_is_zero(e.left) or (e.op == "+" and _is_zero(e.right))):
        # Polars folds 0.0 + x and 0.0 - x to x and -x, which keep a -0.0 that IEEE makes +0.0.
        value = _arithmetic(e.op, left, right, e.left.dtype, e.right.dtype, e.dtype)
        return pl.when(value == 0).then(pl.lit(0.0)).otherwise(value)
    if e.op in E.COMPARISONS:
        return _compare(e.op, left, right, e.left.dtype, e.right.dtype)
    if e.op == "||":
        return pl.concat_str([_to_string(left, e.left.dtype), _to_string(right, e.right.dtype)])
    constant = e.right.value if isinstance(e.right, E.Literal) else None
    return _arithmetic(e.op, left, right, e.left.dtype, e.right.dtype, e.dtype, constant)


def can_fail(e: E.Expr) -> bool:
    """Whether `e` holds what usually raises for a row: a CAST, integer or time arithmetic (overflow), ROUND
    or ABS of an integer, TO_TIMESTAMP(_MS), LPAD/RPAD. Only an evaluation order depends on it (`_(e: E.Binary)`)."""
    for node in E.walk(e):
        if isinstance(node, E.Cast):
            return True
        if isinstance(node, E.Binary) and node.op in ("+", "-", "*", "/", "%"):
            if node.dtype.is_integer or node.dtype in (T.TIMESTAMP, T.INTERVAL):
                return True
        if isinstance(node, E.Unary) and node.op == "-" and node.dtype.is_integer:
            return True
        if isinstance(node, E.Func) and (node.name in _FUNCTIONS_THAT_RAISE or node.udf is not None):
            return True
    return False


_FUNCTIONS_THAT_RAISE = ("round", "abs", "to_timestamp_ms", "to_timestamp", "lpad", "rpad")


def _is_zero(e: E.Expr) -> bool:
    return (
        isinstance(e, E.Literal)
        and isinstance(e.value, (int, float))
        and not isinstance(e.value, bool)
        and e.value == 0
    )


def _as_bool(x: pl.Expr, e: E.Expr) -> pl.Expr:
    return x.cast(pl.Boolean) if e.dtype is T.NULL else x


_COMPARE = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _null_rows(dtype: pl.DataType) -> pl.Expr:
    """NULL on every row: a bare literal would be one row, and a projection of only such columns one row long."""
    return pl.repeat(None, pl.len(), dtype=dtype)


def _compare(op: str, left: pl.Expr, right: pl.Expr, lt: DataType, rt: DataType) -> pl.Expr:
    if T.NULL in (lt, rt):
        return _null_rows(pl.Boolean())
    if right.meta.root_names() and not left.meta.root_names():
        # `constant < x` as `x > constant`: polars 2.1 gives a one-row result when a constant on the left
        # meets a column a left join filled with NULLs (all rows unmatched); on the right it does not.
        left, right, lt, rt, op = right, left, rt, lt, E.MIRRORED[op]
    if {lt, rt} == {T.DATE, T.TIMESTAMP}:  # the DATE's midnight
        left, right = left.cast(pl.Datetime("ms")), right.cast(pl.Datetime("ms"))
    elif (lt.is_decimal or rt.is_decimal) and T.DOUBLE not in (lt, rt):  # exact, at the larger scale
        exact = common_decimal(lt, rt).polars
        left, right = left.cast(exact), right.cast(exact)
    elif lt.is_numeric and rt.is_numeric and lt is not rt:
        wide = pl.Float64 if T.DOUBLE in (lt, rt) else pl.Int64
        left, right = left.cast(wide), right.cast(wide)
    return _COMPARE[op](left, right)


def _arithmetic(
    op: str, left: pl.Expr, right: pl.Expr, lt: DataType, rt: DataType, result: DataType, constant: object = None
) -> pl.Expr:
    """`left op right`; `constant`: the right operand's value when it is a literal."""
    if T.DATE in (lt, rt):
        return dates.arithmetic(op, left, right, lt, rt, result)
    if result is T.TIMESTAMP or result is T.INTERVAL:
        return _temporal(op, left, right, lt, rt, result)
    if T.NULL in (lt, rt):
        return _null_rows(result.polars)
    if op == "/":
        return left.cast(pl.Float64) / right.cast(pl.Float64)
    if result.is_decimal:
        return decimals.arithmetic(op, left, right, lt, rt, result)
    target = result.polars
    left, right = left.cast(target), right.cast(target)
    if op in ("+", "-", "*"):
        return _checked_arithmetic(op, left, right, result) if result.is_integer else _OPS[op](left, right)
    if op == "%":
        return sql_remainder(left, right, integer=result.is_integer, divisor=constant)
    raise TypeError(f"unknown arithmetic operator {op}")


_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_INT64_MIN = INTEGER_BOUNDS[T.BIGINT][0]


def _checked_arithmetic(op: str, a: pl.Expr, b: pl.Expr, result: DataType) -> pl.Expr:
    """Integer `a op b` that raises OverflowFailure instead of wrapping around.

    INT is computed in 64 bits and range-checked; BIGINT, which polars wraps,
    is checked from the operands' and result's signs (+, -) or by dividing
    the product back (*).
    """
    if result is T.INT:
        wide = _OPS[op](a.cast(pl.Int64), b.cast(pl.Int64))
        low, high = INTEGER_BOUNDS[T.INT]
        failed = (wide < low) | (wide > high)
        value = wide.cast(pl.Int32, strict=False)
    else:
        value = _OPS[op](a, b)
        if op == "+":
            failed = ((a ^ value) & (b ^ value)) < 0
        elif op == "-":
            failed = ((a ^ b) & (a ^ value)) < 0
        else:
            divisor = pl.when((a == 0) | (a == -1)).then(1).otherwise(a)
            failed = pl.when(a == -1).then(b == _INT64_MIN).otherwise((a != 0) & (value // divisor != b))
    return _fail_where(
        failed.fill_null(False),
        pl.struct(a.alias("a"), b.alias("b")),
        value,
        lambda first, n: OverflowFailure(
            f"integer overflow: {first['a']} {op} {first['b']} does not fit in {result.value}"
            f" ({n} value{'s' if n > 1 else ''} failed)"
        ),
        result.polars,
    )


def sql_remainder(a: pl.Expr, b: pl.Expr, *, integer: bool, divisor: object = None) -> pl.Expr:
    """`a % b` whose sign follows the dividend (polars' `%` follows the divisor).

    `divisor`: b's value when it is a constant. A nonzero one (`x % 7`)
    leaves one condition of the three, the sign of `a`: a third less work
    for polars in a small map task's query. DOUBLE operands take C's exact
    `fmod`, as DuckDB does (polars' float `%` rounds: 10 % 0.1 would be 0).
    """
    if not integer:
        return _fmod(a, b)
    m = a % b
    if isinstance(divisor, int) and not isinstance(divisor, bool) and divisor != 0:
        return pl.when((m != 0) & ((a < 0) if divisor > 0 else (a >= 0))).then(m - b).otherwise(m)
    fixed = pl.when((m != 0) & ((a < 0) != (b < 0))).then(m - b).otherwise(m)
    return pl.when(b == 0).then(None).otherwise(fixed)


def _fmod(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """IEEE fmod: exact, the dividend's sign; x % 0.0 and inf % x are NaN; NULL stays NULL."""

    def fmod(columns: Sequence[pl.Series]) -> pl.Series:
        x, y = (c.cast(pl.Float64).to_numpy() for c in columns)
        with np.errstate(all="ignore"):
            return pl.Series(columns[0].name, np.fmod(x, y), dtype=pl.Float64)

    value = pl.map_batches([a, b], fmod, return_dtype=pl.Float64, is_elementwise=True)
    return pl.when(a.is_null() | b.is_null()).then(None).otherwise(value)


def _temporal(op: str, left: pl.Expr, right: pl.Expr, lt: DataType, rt: DataType, result: DataType) -> pl.Expr:
    def ms(x: pl.Expr, t: DataType) -> pl.Expr:
        if t is T.TIMESTAMP:
            return x.cast(pl.Datetime("ms")).dt.epoch("ms")
        if t is T.INTERVAL:
            return x.cast(pl.Duration("ms")).dt.total_milliseconds()
        return x.cast(pl.Int64)

    a, b = ms(left, lt), ms(right, rt)
    value = _checked_arithmetic(op, a, b, T.BIGINT)
    if result is T.INTERVAL:
        return value.cast(pl.Duration("ms"))
    return _fail_where(
        (~in_timestamp_range(value)).fill_null(False),
        value,
        value.cast(pl.Datetime("ms")),
        lambda first, n: OverflowFailure(
            f"timestamp out of range: {first} ms since 1970 is not "
            f"in years 1 to 9999 ({n} value{'s' if n > 1 else ''} failed)"
        ),
        pl.Datetime("ms"),
    )


@_compile.register
def _(e: E.Unary) -> pl.Expr:
    operand = _compile(e.operand)
    if e.op == "NOT":
        return ~_as_bool(operand, e.operand)
    if e.dtype is T.NULL:
        return operand
    if e.dtype in (T.INT, T.BIGINT):
        return _checked_negation(operand.cast(e.dtype.polars), e.dtype)
    return -operand


def _checked_negation(x: pl.Expr, dtype: DataType) -> pl.Expr:
    """Integer `-x` that raises OverflowFailure for the type's smallest value, whose negation polars wraps to itself."""
    smallest = INTEGER_BOUNDS[dtype][0]
    return _fail_where(
        (x == smallest).fill_null(False),
        x,
        -x,
        lambda first, n: OverflowFailure(
            f"integer overflow: -({first}) does not fit in {dtype.value} ({n} value{'s' if n > 1 else ''} failed)"
        ),
        dtype.polars,
    )


@_compile.register
def _(e: E.IsNull) -> pl.Expr:
    inner = _compile(e.expr)
    return inner.is_not_null() if e.negated else inner.is_null()


@_compile.register
def _(e: E.Case) -> pl.Expr:
    target = e.dtype.polars
    conditions = []
    earlier = pl.lit(False)
    values = []
    for cond, value in e.whens:
        # A condition counts only where no earlier one held: a later WHEN's CAST fails only for rows it decides.
        condition = _guarded(~earlier, lambda: _as_bool(_compile(cond), cond).fill_null(False))  # noqa: B023 (called at once)
        conditions.append(condition)
        values.append(_guarded(condition & ~earlier, lambda: _cast_value(value, e.dtype)))  # noqa: B023 (called at once)
        earlier = earlier | condition
    otherwise = _guarded(~earlier, lambda: _cast_value(e.else_, e.dtype))
    chain: Then | ChainedThen = pl.when(conditions[0]).then(values[0])
    for condition, branch in zip(conditions[1:], values[1:]):
        chain = chain.when(condition).then(branch)
    return chain.otherwise(_row_shaped(otherwise)).cast(target)


def _row_shaped(x: pl.Expr) -> pl.Expr:
    """`x`, one value per row even when it is a constant.

    Polars 2.1 gives a when/then whose branches are all constants one row,
    even when its condition reads columns through another such when/then
    (CASE WHEN 'B' = nullif('a', k) THEN NULL ELSE 'B' END), and the
    projection then fails on the length.
    """
    # `first()`: a constant built of checks (a guarded CAST) is not a scalar to `repeat` until it is one value
    return pl.repeat(x.first(), pl.len()) if not x.meta.root_names() else x


def _cast_value(e: E.Expr, target: DataType) -> pl.Expr:
    """A branch value widened to the CASE type (a NULL literal takes the type directly)."""
    compiled = _compile(e)
    if target is T.NULL or e.dtype is target:
        return compiled
    return compiled.cast(target.polars)


@_compile.register
def _(e: E.InList) -> pl.Expr:
    x = _compile(e.expr)
    if e.expr.dtype is T.NULL or not e.items:
        result = _null_rows(pl.Boolean()) if e.items else pl.lit(False)
    elif all(isinstance(i, E.Literal) and i.value is not None for i in e.items) and _same_kind(e):
        literals = [i for i in e.items if isinstance(i, E.Literal)]  # all of them
        values = pl.Series([i.value for i in literals], dtype=e.expr.dtype.polars)
        result = pl.when(x.is_null()).then(None).otherwise(x.is_in(pl.lit(values).implode()))
    else:
        # SQL: OR of equalities, so a NULL item makes a non-match NULL.
        any_equal: pl.Expr | None = None
        for item in e.items:
            eq = _compare("=", x, _compile(item), e.expr.dtype, item.dtype)
            any_equal = eq if any_equal is None else any_equal | eq
        assert any_equal is not None  # e.items is not empty here
        result = any_equal
    return ~result if e.negated else result


def _same_kind(e: E.InList) -> bool:
    return all(i.dtype is e.expr.dtype for i in e.items)


@_compile.register
def _(e: E.Like) -> pl.Expr:
    text = _compile(e.expr)
    if e.expr.dtype is T.NULL:
        text = text.cast(pl.String)  # NULL LIKE p is NULL
    matched = text.str.contains(like_to_regex(e.pattern))
    return ~matched if e.negated else matched


def like_to_regex(pattern: str) -> str:
    """A LIKE pattern as an anchored regex: `%` → `.*`, `_` → `.`, the rest literal."""
    parts = []
    for ch in pattern:
        if ch == "%":
            parts.append(".*")
        elif ch == "_":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return "(?s)^" + "".join(parts) + "$"


@_compile.register
def _(e: E.Func) -> pl.Expr:
    if e.udf is not None:  # a Python UDF (stream_dsl/ir/udf_polars.py)
        from stream_dsl.ir.udf_polars import compile_call

        return compile_call(e.udf, [_compile(a) for a in e.args], [E.render(a) for a in e.args])
    fn = SCALAR_FUNCTIONS[e.name]
    if e.name in ("greatest", "least") and e.dtype is T.DOUBLE:
        return _nan_extreme(e.name, [_compile(a).cast(pl.Float64) for a in e.args])
    if e.name == "coalesce":
        return _coalesce(e)
    if e.name == "nullif":
        a, b = (_typed_null(_compile(x), x, "any") for x in e.args)
        result = pl.when(a == b).then(None).otherwise(_row_shaped(a))
        return result if e.dtype is T.NULL else result.cast(e.dtype.polars)
    if e.name == "to_timestamp_ms":
        return epoch_ms_to_timestamp(_compile(e.args[0]))
    if e.args and e.args[0].dtype.is_decimal and e.name in decimals.FUNCTIONS:
        digits = e.args[1].value if len(e.args) > 1 and isinstance(e.args[1], E.Literal) else None
        return decimals.function(e.name, _compile(e.args[0]), e.args[0].dtype, digits, e.dtype)
    if e.name == "round" and e.dtype.is_integer:
        return _round_integer(_compile(e.args[0]), e.args[1] if len(e.args) > 1 else None, e.dtype)
    if e.name in ("concat", "concat_ws"):  # each argument as CAST(x AS STRING) writes it (a TIMESTAMP without '.000')
        return fn.polars(*(_to_string(_compile(a), a.dtype) for a in e.args))
    args = [_typed_null(_compile(a), a, fn.args[min(i, len(fn.args) - 1)], e.dtype) for i, a in enumerate(e.args)]
    result = fn.polars(*args)
    return result if e.dtype is T.NULL else result.cast(e.dtype.polars)


def _round_integer(x: pl.Expr, digits: E.Expr | None, result: DataType) -> pl.Expr:
    """ROUND of an integer stays an integer of its type, as in DuckDB: to negative places (tens, hundreds)
    half away from zero, computed in Int128; a result outside the type is an overflow error."""
    places = 0 if digits is None else pl.select(_compile(digits)).item()
    if places is None:  # ROUND(x, NULL)
        return _null_rows(result.polars)
    if places >= 0:
        return x
    if places < -38:  # 10^-places exceeds every integer: everything rounds to 0
        return pl.when(x.is_null()).then(None).otherwise(pl.lit(0, dtype=result.polars))
    factor = 10**-places
    wide = x.cast(pl.Int128)
    magnitude = (wide.abs() + factor // 2) // factor * factor
    value = pl.when(wide < 0).then(pl.lit(0, dtype=pl.Int128) - magnitude).otherwise(magnitude)
    low, high = INTEGER_BOUNDS[result]
    return _fail_where(
        ((value < low) | (value > high)).fill_null(False),
        x,
        value.cast(result.polars, strict=False),
        lambda first, n: OverflowFailure(
            f"integer overflow: ROUND({first}, {places}) does not fit in {result.value}"
            f" ({n} value{'s' if n > 1 else ''} failed)"
        ),
        result.polars,
    )


def _coalesce(e: E.Func) -> pl.Expr:
    """COALESCE: an argument's checks count only where every earlier one is NULL (it is not needed elsewhere)."""
    args, earlier_null = [], pl.lit(True)
    for a in e.args:
        compiled = _guarded(earlier_null, lambda: _compile(a))  # noqa: B023 (called at once)
        if a.dtype is not T.NULL and a.dtype is not e.dtype and e.dtype is not T.NULL:
            compiled = compiled.cast(e.dtype.polars)
        args.append(compiled)
        earlier_null = earlier_null & compiled.is_null()
    result = pl.coalesce(args)
    return result if e.dtype is T.NULL else result.cast(e.dtype.polars)


def _nan_extreme(name: str, xs: list[pl.Expr]) -> pl.Expr:
    """GREATEST or LEAST of DOUBLEs skipping NULLs, with NaN above every number as in DuckDB.

    Polars' max_horizontal skips NaN; min_horizontal already gives NaN only when nothing else is there.
    """
    if name == "least":
        return pl.min_horizontal(xs)
    return pl.when(pl.any_horizontal([x.is_nan() for x in xs])).then(float("nan")).otherwise(pl.max_horizontal(xs))


_NULL_AS = {"string": pl.String(), "numeric": pl.Float64(), "timestamp": pl.Datetime("ms")}


def _typed_null(compiled: pl.Expr, e: E.Expr, kind: str, result: DataType = T.NULL) -> pl.Expr:
    """A NULL argument typed as the function expects, so string and date functions accept it.

    A numeric one takes the function's numeric result type (LEAST(NULL, i) stays BIGINT, where a DOUBLE
    NULL would widen i to DOUBLE and lose its low digits)."""
    if e.dtype is T.NULL and kind == "numeric" and result.is_numeric:
        return compiled.cast(result.polars)
    if e.dtype is T.NULL and kind in _NULL_AS:
        return compiled.cast(_NULL_AS[kind])
    return compiled


@_compile.register
def _(e: E.Agg) -> pl.Expr:
    raise TypeError(f"aggregate {E.render(e)} outside an Aggregate node")


# ---------------------------------------------------------------- CAST (stream_dsl/ir/to_polars_cast.py)


@_compile.register
def _(e: E.Cast) -> pl.Expr:
    return cast(_compile(e.expr), e.expr.dtype, e.dtype)


__all__ = [
    "CastFailure",
    "OverflowFailure",
    "TIMESTAMP_MAX_MS",
    "TIMESTAMP_MIN_MS",
    "cast",
    "compile_expr",
    "compile_named",
    "compile_predicate",
    "epoch_ms_to_timestamp",
    "in_timestamp_range",
    "like_to_regex",
    "literal",
    "parse_timestamp",
    "sql_remainder",
]
