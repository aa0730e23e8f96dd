"""Bound expressions → polars expressions, with exact SQL semantics.

Where polars and SQL disagree, SQL wins (DuckDB is the reference):

- NULL: comparisons and arithmetic with NULL give NULL; AND/OR use
  three-valued logic; `x IN (a, NULL)` is NULL, not FALSE, when x matches
  nothing; CASE treats a NULL condition as false.
- `/` always divides as DOUBLE (IEEE: 1/0 is inf, 0/0 is NaN).
- `%` is the SQL remainder: its sign follows the dividend (-7 % 2 = -1);
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
  in milliseconds.
"""

from __future__ import annotations

import datetime as dt
import re
from contextvars import ContextVar
from functools import partial, singledispatch
from typing import TYPE_CHECKING, Any, Callable

import polars as pl

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

from stream_dsl.ir import expr as E
from stream_dsl.ir.functions import SCALAR_FUNCTIONS
from stream_dsl.ir.types import DataType

T = DataType


class CastFailure(ValueError):
    """A value that a CAST cannot convert; raised while a query runs."""


class OverflowFailure(ArithmeticError):
    """Integer arithmetic whose result does not fit its type; raised while a query runs."""


def compile_expr(e: E.Expr) -> pl.Expr:
    """The polars expression computing `e` (aggregates excluded: see `executor.kernels`)."""
    return _compile(e)


def compile_named(n: E.NamedExpr) -> pl.Expr:
    return _compile(n.expr).alias(n.name)


def compile_predicate(e: E.Expr) -> pl.Expr:
    """A filter predicate: NULL counts as false (WHERE keeps only TRUE rows)."""
    return _compile(e).fill_null(False)


@singledispatch
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
    left, right = _compile(e.left), _compile(e.right)
    if e.op == "AND":
        return _as_bool(left, e.left) & _as_bool(right, e.right)
    if e.op == "OR":
        return _as_bool(left, e.left) | _as_bool(right, e.right)
    if e.op in E.COMPARISONS:
        return _compare(e.op, left, right, e.left.dtype, e.right.dtype)
    if e.op == "||":
        return pl.concat_str([_to_string(left, e.left.dtype), _to_string(right, e.right.dtype)])
    constant = e.right.value if isinstance(e.right, E.Literal) else None
    return _arithmetic(e.op, left, right, e.left.dtype, e.right.dtype, e.dtype, constant)


def _as_bool(x: pl.Expr, e: E.Expr) -> pl.Expr:
    return x.cast(pl.Boolean) if e.dtype is T.NULL else x


_COMPARE = {
    "=": lambda a, b: a == b, "<>": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _compare(op: str, left: pl.Expr, right: pl.Expr, lt: DataType, rt: DataType) -> pl.Expr:
    if T.NULL in (lt, rt):
        return pl.lit(None, dtype=pl.Boolean)
    if lt.is_numeric and rt.is_numeric and lt is not rt:
        wide = pl.Float64 if T.DOUBLE in (lt, rt) else pl.Int64
        left, right = left.cast(wide), right.cast(wide)
    return _COMPARE[op](left, right)


def _arithmetic(op: str, left: pl.Expr, right: pl.Expr, lt: DataType, rt: DataType,
                result: DataType, constant: object = None) -> pl.Expr:
    """`left op right`; `constant`: the right operand's value when it is a literal."""
    if result is T.TIMESTAMP or result is T.INTERVAL:
        return _temporal(op, left, right, lt, rt, result)
    if T.NULL in (lt, rt):
        return pl.lit(None, dtype=result.polars)
    if op == "/":
        return left.cast(pl.Float64) / right.cast(pl.Float64)
    target = result.polars
    left, right = left.cast(target), right.cast(target)
    if op in ("+", "-", "*"):
        return _checked_arithmetic(op, left, right, result) if result.is_integer else _OPS[op](left, right)
    if op == "%":
        return sql_remainder(left, right, integer=result.is_integer, divisor=constant)
    raise TypeError(f"unknown arithmetic operator {op}")


_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_INT64_MIN = -(2**63)


def _checked_arithmetic(op: str, a: pl.Expr, b: pl.Expr, result: DataType) -> pl.Expr:
    """Integer `a op b` that raises OverflowFailure instead of wrapping around.

    INT is computed in 64 bits and range-checked; BIGINT, which polars wraps,
    is checked from the operands' and result's signs (+, -) or by dividing
    the product back (*).
    """
    if result is T.INT:
        wide = _OPS[op](a.cast(pl.Int64), b.cast(pl.Int64))
        failed = (wide < -(2**31)) | (wide > 2**31 - 1)
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
    return _fail_where(failed.fill_null(False), pl.struct(a.alias("a"), b.alias("b")), value,
                       lambda first, n: OverflowFailure(
                           f"integer overflow: {first['a']} {op} {first['b']} does not fit in {result.value}"
                           f" ({n} value{'s' if n > 1 else ''} failed)"), result.polars)


def sql_remainder(a: pl.Expr, b: pl.Expr, *, integer: bool, divisor: object = None) -> pl.Expr:
    """`a % b` whose sign follows the dividend (polars' `%` follows the divisor).

    `divisor`: b's value when it is a constant. A nonzero one (`x % 7`)
    leaves one condition of the three, the sign of `a`: a third less work
    for polars in a small map task's query.
    """
    m = a % b
    if isinstance(divisor, (int, float)) and not isinstance(divisor, bool) and divisor != 0 and divisor == divisor:
        return pl.when((m != 0) & ((a < 0) if divisor > 0 else (a >= 0))).then(m - b).otherwise(m)
    fixed = pl.when((m != 0) & ((a < 0) != (b < 0))).then(m - b).otherwise(m)
    if integer:
        return pl.when(b == 0).then(None).otherwise(fixed)
    # IEEE: x % 0.0 is NaN, as in DuckDB.
    return pl.when(b == 0).then(float("nan")).otherwise(fixed)


def _temporal(op: str, left: pl.Expr, right: pl.Expr, lt: DataType, rt: DataType, result: DataType) -> pl.Expr:
    def ms(x: pl.Expr, t: DataType) -> pl.Expr:
        if t is T.TIMESTAMP:
            return x.cast(pl.Datetime("ms")).dt.epoch("ms")
        if t is T.INTERVAL:
            return x.cast(pl.Duration("ms")).dt.total_milliseconds()
        return x.cast(pl.Int64)

    a, b = ms(left, lt), ms(right, rt)
    value = a + b if op == "+" else a - b
    return value.cast(pl.Datetime("ms") if result is T.TIMESTAMP else pl.Duration("ms"))


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
    smallest = -(2**31) if dtype is T.INT else _INT64_MIN
    return _fail_where((x == smallest).fill_null(False), x, -x,
                       lambda first, n: OverflowFailure(
                           f"integer overflow: -({first}) does not fit in {dtype.value}"
                           f" ({n} value{'s' if n > 1 else ''} failed)"), dtype.polars)


@_compile.register
def _(e: E.IsNull) -> pl.Expr:
    inner = _compile(e.expr)
    return inner.is_not_null() if e.negated else inner.is_null()


@_compile.register
def _(e: E.Case) -> pl.Expr:
    target = e.dtype.polars
    conditions = [_as_bool(_compile(cond), cond).fill_null(False) for cond, _ in e.whens]
    earlier = pl.lit(False)
    values: list[pl.Expr] = []
    for condition, (_, value) in zip(conditions, e.whens):
        values.append(_guarded(condition & ~earlier, partial(_cast_value, value, e.dtype)))
        earlier = earlier | condition
    otherwise = _guarded(~earlier, lambda: _cast_value(e.else_, e.dtype))
    chain: Then | ChainedThen = pl.when(conditions[0]).then(values[0])
    for condition, compiled in zip(conditions[1:], values[1:]):
        chain = chain.when(condition).then(compiled)
    return chain.otherwise(otherwise).cast(target)


# While a CASE branch compiles: the conditions under which its value is used (per thread and task).
_GUARDS: ContextVar[tuple[pl.Expr, ...]] = ContextVar("stream_dsl_case_guards", default=())


def _guarded(guard: pl.Expr, build: Callable[[], pl.Expr]) -> pl.Expr:
    """`build()` compiled knowing its value is used only where `guard` holds (see `_fail_where`)."""
    token = _GUARDS.set(_GUARDS.get() + (guard,))
    try:
        return build()
    finally:
        _GUARDS.reset(token)


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
        result = pl.lit(None, dtype=pl.Boolean) if e.items else pl.lit(False)
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
    matched = _compile(e.expr).str.contains(like_to_regex(e.pattern))
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
    fn = SCALAR_FUNCTIONS[e.name]
    args = [_typed_null(_compile(a), a, fn.args[min(i, len(fn.args) - 1)]) for i, a in enumerate(e.args)]
    result = fn.polars(*args)
    return result if e.dtype is T.NULL else result.cast(e.dtype.polars)


_NULL_AS: dict[str, pl.DataType | type[pl.DataType]] = {
    "string": pl.String, "numeric": pl.Float64, "timestamp": pl.Datetime("ms")}


def _typed_null(compiled: pl.Expr, e: E.Expr, kind: str) -> pl.Expr:
    """A NULL argument typed as the function expects, so string and date functions accept it."""
    if e.dtype is T.NULL and kind in _NULL_AS:
        return compiled.cast(_NULL_AS[kind])
    return compiled


@_compile.register
def _(e: E.Agg) -> pl.Expr:
    raise TypeError(f"aggregate {E.render(e)} outside an Aggregate node")


# ---------------------------------------------------------------- CAST


@_compile.register
def _(e: E.Cast) -> pl.Expr:
    return cast(_compile(e.expr), e.expr.dtype, e.dtype)


def cast(x: pl.Expr, source: DataType, target: DataType) -> pl.Expr:
    """CAST(x AS target) from `source`, with SQL conversion rules (see the module doc)."""
    if source is target:
        return x
    if source is T.NULL:
        return pl.lit(None, dtype=target.polars)
    if target is T.STRING:
        return _to_string(x, source)
    if source is T.STRING:
        return _from_string(x, target)
    if target.is_integer:
        if source is T.DOUBLE:
            x = x.round(0, mode="half_to_even")
        elif source is T.TIMESTAMP:
            x = x.dt.epoch("ms")
        elif source is T.INTERVAL:
            x = x.dt.total_milliseconds()
        return _checked_cast(x, target)
    if target is T.DOUBLE:
        if source is T.TIMESTAMP:
            return x.dt.epoch("ms").cast(pl.Float64)
        return x.cast(pl.Float64)
    if target is T.BOOLEAN:
        if source.is_numeric:
            return x != 0
        raise CastFailure(f"cannot CAST {source.value} to BOOLEAN")
    if target is T.TIMESTAMP:
        if source.is_numeric:
            # A number is read as epoch milliseconds.
            return x.cast(pl.Int64).cast(pl.Datetime("ms"))
        raise CastFailure(f"cannot CAST {source.value} to TIMESTAMP")
    raise CastFailure(f"cannot CAST {source.value} to {target.value}")


def _checked_cast(x: pl.Expr, target: DataType) -> pl.Expr:
    """A numeric cast that fails loudly on overflow instead of wrapping or nulling."""
    converted = x.cast(target.polars, strict=False)
    return _cast_checked(x.is_not_null() & converted.is_null(), x, converted, target)


def _cast_checked(failed: pl.Expr, original: pl.Expr, value: pl.Expr, target: DataType) -> pl.Expr:
    """`value`, but raise CastFailure naming the first input of a row that `failed`."""
    return _fail_where(failed, original.cast(pl.String), value,
                       lambda first, n: CastFailure(f"cannot CAST '{first}' to {target.value} "
                                                    f"({n} value{'s' if n > 1 else ''} failed)"), target.polars)


def _to_string(x: pl.Expr, source: DataType) -> pl.Expr:
    if source is T.STRING:
        return x
    if source is T.NULL:
        return pl.lit(None, dtype=pl.String)
    if source is T.TIMESTAMP:
        whole = x.dt.strftime("%Y-%m-%d %H:%M:%S")
        fraction = x.dt.strftime("%Y-%m-%d %H:%M:%S%.3f").str.replace(r"0+$", "")
        return pl.when(x.dt.millisecond() != 0).then(fraction).otherwise(whole)
    if source is T.INTERVAL:
        return x.dt.total_milliseconds().cast(pl.String) + pl.lit(" ms")
    return x.cast(pl.String)


_TRUE = ("true", "t", "yes", "y", "1", "on")
_FALSE = ("false", "f", "no", "n", "0", "off")
_TS_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def _from_string(x: pl.Expr, target: DataType) -> pl.Expr:
    s = x.str.strip_chars()
    if target.is_integer:
        as_int = s.cast(pl.Int64, strict=False)
        as_float = s.cast(pl.Float64, strict=False).round(0, mode="half_away_from_zero")
        value = pl.coalesce(as_int, as_float.cast(pl.Int64, strict=False)).cast(target.polars, strict=False)
    elif target is T.DOUBLE:
        value = s.cast(pl.Float64, strict=False)
    elif target is T.BOOLEAN:
        low = s.str.to_lowercase()
        value = pl.when(low.is_in(_TRUE)).then(True).when(low.is_in(_FALSE)).then(False).otherwise(None)
    elif target is T.TIMESTAMP:
        value = parse_timestamp(s)
    else:
        raise CastFailure(f"cannot CAST STRING to {target.value}")
    return _cast_checked(x.is_not_null() & value.is_null(), x, value, target)


def parse_timestamp(s: pl.Expr) -> pl.Expr:
    """ISO-8601 text (date, date time, optional fraction, 'T', 'Z' or ±hh:mm) or epoch ms → Datetime('ms')."""
    norm = s.str.replace("T", " ", literal=True)
    offset = norm.str.extract(r"([+-]\d{2}):?(\d{2})$", 0)
    body = norm.str.replace(r"(Z|[+-]\d{2}:?\d{2})$", "")
    parsed = pl.coalesce([body.str.to_datetime(f, time_unit="ms", strict=False) for f in _TS_FORMATS])
    sign = pl.when(offset.str.starts_with("-")).then(-1).otherwise(1)
    hours = offset.str.slice(1, 2).cast(pl.Int64, strict=False)
    minutes = norm.str.extract(r"[+-]\d{2}:?(\d{2})$", 1).cast(pl.Int64, strict=False)
    shift_ms = (sign * (hours * 60 + minutes) * 60_000).fill_null(0)
    utc = (parsed.dt.epoch("ms") - shift_ms).cast(pl.Datetime("ms"))
    epoch = pl.when(s.str.contains(r"^-?\d{9,}$")).then(s.cast(pl.Int64, strict=False).cast(pl.Datetime("ms")))
    return pl.coalesce(utc, epoch)


def _fail_where(failed: pl.Expr, shown: pl.Expr, value: pl.Expr, error: Callable[[Any, int], Exception],
                dtype: pl.DataType) -> pl.Expr:
    """`value`, but raise `error(first shown value, rows)` when any row `failed` (polars has no raise).

    Inside CASE branches only the rows the branches pick count (`_guarded`).
    """
    for guard in _GUARDS.get():
        failed = failed & guard
    bad = pl.when(failed).then(shown).otherwise(None)

    def check(series: pl.Series) -> pl.Series:
        rest = series.drop_nulls()
        if len(rest):
            raise error(rest[0], len(rest))
        return pl.Series(series.name, [None] * len(series), dtype=dtype)

    return pl.coalesce(value, bad.map_batches(check, return_dtype=dtype))
