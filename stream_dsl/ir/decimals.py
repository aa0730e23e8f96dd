"""DECIMAL(p, s): DuckDB's result types for arithmetic, and exact polars expressions for it and for CASTs.

Types (`arithmetic_type`), as DuckDB: an integer operand counts as
DECIMAL(10,0) (INT) or DECIMAL(19,0) (BIGINT); `+` and `-` keep the larger
scale and one more integer digit than the wider operand; `*` adds the
precisions and the scales; `%` keeps the larger scale and the wider integer
part; `/` divides as DOUBLE; a DOUBLE operand makes the result DOUBLE. The
precision stops at 38 digits.

Values: polars computes decimals exactly but rounds half to even when it drops
digits and keeps only the larger scale in a product. So products are taken at
their full scale, and every rounding (a CAST to fewer decimals or to an
integer) is half away from zero, as DuckDB rounds. A result that does not fit
its type raises `OverflowFailure` (arithmetic) or `CastFailure` (CAST).
"""

from __future__ import annotations

import decimal as _pydecimal

import polars as pl

from stream_dsl.ir.to_polars_checks import CastFailure, OverflowFailure, cast_checked, fail_where
from stream_dsl.ir.types import MAX_DECIMAL_PRECISION, DataType, as_decimal, decimal

T = DataType


def arithmetic_type(op: str, a: DataType, b: DataType) -> DataType:
    """The type of `a op b` where one side is a DECIMAL and neither a DOUBLE (DuckDB's rules)."""
    if op == "/":
        return T.DOUBLE
    a, b = as_decimal(a), as_decimal(b)
    scale = max(a.scale, b.scale)
    digits = max(a.precision - a.scale, b.precision - b.scale)
    if op in ("+", "-"):
        return decimal(min(MAX_DECIMAL_PRECISION, digits + scale + 1), scale)
    if op == "*":
        scale = a.scale + b.scale
        if scale > MAX_DECIMAL_PRECISION:
            raise TypeError(f"the product of {a.value} and {b.value} needs {scale} decimals, more than 38")
        return decimal(min(MAX_DECIMAL_PRECISION, a.precision + b.precision), scale)
    if digits + scale > MAX_DECIMAL_PRECISION:  # DuckDB: a remainder that needs more than 38 digits is a DOUBLE
        return T.DOUBLE
    return decimal(digits + scale, scale)  # %


def literal_type(value: _pydecimal.Decimal) -> DataType:
    """The DECIMAL a Python Decimal value is written in: its digits and its decimals."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # a finite value
    scale = max(0, -exponent)
    precision = max(len(digits) + max(0, exponent), scale, 1)
    return decimal(min(precision, MAX_DECIMAL_PRECISION), min(scale, MAX_DECIMAL_PRECISION))


def wide(t: DataType) -> pl.DataType:
    """The polars type a DECIMAL (or an integer) is computed in: all 38 digits, its own scale."""
    return pl.Decimal(MAX_DECIMAL_PRECISION, as_decimal(t).scale)


def arithmetic(op: str, left: pl.Expr, right: pl.Expr, lt: DataType, rt: DataType, result: DataType) -> pl.Expr:
    """`left op right` of exact numbers giving the DECIMAL `result`; raises OverflowFailure beyond it."""
    from stream_dsl.ir.to_polars import sql_remainder

    if op == "*":  # polars keeps the larger scale of a product: give the left side the product's scale
        a, b = left.cast(pl.Decimal(MAX_DECIMAL_PRECISION, result.scale), strict=False), right.cast(wide(rt))
        value = a * b
    else:
        a, b = left.cast(wide(result), strict=False), right.cast(wide(result), strict=False)
        if op == "+":
            value = a + b
        elif op == "-":
            value = a - b
        else:
            value = sql_remainder(a, b, integer=True)
    fitted = value.cast(result.polars, strict=False)
    failed = left.is_not_null() & right.is_not_null() & fitted.is_null()  # an operand or the result did not fit
    if op == "%":
        failed = failed & (right.cast(pl.Float64) != 0)  # x % 0 is NULL
    return fail_where(
        failed.fill_null(False),
        pl.struct(left.cast(pl.String).alias("a"), right.cast(pl.String).alias("b")),
        fitted,
        lambda first, n: OverflowFailure(
            f"decimal overflow: {first['a']} {op} {first['b']} does not fit in {result.value}"
            f" ({n} value{'s' if n > 1 else ''} failed)"
        ),
        result.polars,
    )


def round_half_away(x: pl.Expr, scale: int) -> pl.Expr:
    """A decimal rounded to `scale` decimals, half away from zero (DuckDB's rounding)."""
    return x.round(scale, mode="half_away_from_zero")


def cast_to_decimal(x: pl.Expr, source: DataType, target: DataType) -> pl.Expr:
    """CAST(x AS DECIMAL(p, s)) from a number or text; a value that does not fit raises CastFailure."""
    if source is T.STRING:
        value = from_text(x, target)
    elif source.is_decimal and source.scale > target.scale:
        value = round_half_away(x, target.scale).cast(target.polars, strict=False)
    elif source is T.DOUBLE:  # polars would round half to even
        value = x.round(target.scale, mode="half_away_from_zero").cast(target.polars, strict=False)
    elif source is T.BOOLEAN:
        value = x.cast(pl.Int64).cast(target.polars, strict=False)
    elif source.is_numeric:
        value = x.cast(target.polars, strict=False)
    else:
        raise CastFailure(f"cannot CAST {source.value} to {target.value}")
    return cast_checked(x, value, target)


def from_text(x: pl.Expr, target: DataType) -> pl.Expr:
    """Decimal text ('12.345', '-1e3', ' 7 ') as DECIMAL `target`, NULL where it is no number or does not fit.

    Rounded half away from zero to the target's scale, exactly: that rounding looks at one more digit only, so
    the text is cut after it and read with that digit (polars alone would round half to even as it parses). A
    number whose integer part leaves no room for the extra digit is read at the target's scale."""
    text = x.str.strip_chars()
    reads = []
    if target.scale < MAX_DECIMAL_PRECISION:
        extra = target.scale + 1
        cut = text.str.replace(rf"^([+-]?[0-9]*\.[0-9]{{{extra}}})[0-9]+$", "${1}")
        reads.append(round_half_away(cut.cast(pl.Decimal(MAX_DECIMAL_PRECISION, extra), strict=False), target.scale))
    room = MAX_DECIMAL_PRECISION - (target.precision - target.scale)
    reads.append(text.cast(pl.Decimal(MAX_DECIMAL_PRECISION, room), strict=False))
    return pl.coalesce([read.cast(target.polars, strict=False) for read in reads])


def cast_from_decimal(x: pl.Expr, source: DataType, target: DataType) -> pl.Expr:
    """CAST a DECIMAL to an integer (rounded half away from zero), DOUBLE, BOOLEAN or STRING."""
    if target.is_integer:
        return cast_checked(x, round_half_away(x, 0).cast(target.polars, strict=False), target)
    if target is T.DOUBLE:
        return x.cast(pl.Float64)
    if target is T.BOOLEAN:
        return x.cast(pl.Float64) != 0
    if target is T.STRING:
        if source.precision == source.scale:  # DuckDB writes no integer digit when the type has none: '.50'
            return x.cast(pl.String).str.replace(r"^(-?)0\.", "$1.")
        return x.cast(pl.String)
    raise CastFailure(f"cannot CAST {source.value} to {target.value}")


# ---------------------------------------------------------------- functions of a DECIMAL argument

FUNCTIONS = ("round", "abs", "floor", "ceil", "trunc", "sign")


def function_type(name: str, dtype: DataType, digits: int | None) -> DataType:
    """DuckDB's result type of a rounding function of a DECIMAL: ABS keeps it, SIGN is an integer, FLOOR, CEIL,
    TRUNC and ROUND(x) have no decimals left, ROUND(x, n) keeps n of them (all of them when n >= s)."""
    if name == "abs":
        return dtype
    if name == "sign":
        return T.INT
    kept = 0 if digits is None or digits < 0 else min(digits, dtype.scale)
    if digits is not None and digits < 0 and dtype.scale == 0 and -digits <= dtype.precision:
        return decimal(min(dtype.precision + 1, MAX_DECIMAL_PRECISION), 0)  # 95 to tens is 100: one digit more
    return decimal(dtype.precision, kept)


def function(name: str, x: pl.Expr, source: DataType, digits: int | None, result: DataType) -> pl.Expr:
    """A rounding function of a DECIMAL `x`, exact, rounding half away from zero (see `function_type`)."""
    if name == "abs":
        return x.abs()
    if name == "sign":
        return pl.when(x > 0).then(1).when(x < 0).then(-1).when(x.is_not_null()).then(0).cast(pl.Int32)
    if name == "floor":
        value = x.floor()
    elif name == "ceil":
        value = x.ceil()
    elif name == "trunc":
        value = pl.when(x < 0).then(x.ceil()).otherwise(x.floor())
    elif digits is not None and digits < 0:  # to tens, hundreds: whole numbers, half away from zero
        places = -digits
        if places > source.precision - source.scale:  # |x| < 10^places / 10: it rounds to 0
            value = pl.when(x.is_not_null()).then(pl.lit(0, dtype=result.polars))
        else:  # x / 10^places is exact at scale s + places (at most p), then rounded to a whole number
            factor = pl.lit(10**places, dtype=pl.Decimal(MAX_DECIMAL_PRECISION, 0))
            shifted = x.cast(pl.Decimal(MAX_DECIMAL_PRECISION, source.scale + places)) / factor
            value = round_half_away(shifted, 0) * factor
    else:
        value = round_half_away(x, result.scale)
    fitted = value.cast(result.polars, strict=False)
    return fail_where(
        (value.is_not_null() & fitted.is_null()).fill_null(False),
        x.cast(pl.String),
        fitted,
        lambda first, n: OverflowFailure(
            f"decimal overflow: {name.upper()}({first}) does not fit in {result.value}"
            f" ({n} value{'s' if n > 1 else ''} failed)"
        ),
        result.polars,
    )


# ---------------------------------------------------------------- Python values in, DuckDB's rounding


def read_dtype(dtype: DataType) -> pl.DataType:
    """The polars type Python values of `dtype` are first read in: a DECIMAL with every decimal it has room for,
    so that `narrow_frame` rounds them half away from zero (polars would round half to even)."""
    if not dtype.is_decimal:
        return dtype.polars
    return pl.Decimal(MAX_DECIMAL_PRECISION, MAX_DECIMAL_PRECISION - (dtype.precision - dtype.scale))


def narrow_frame(frame: pl.DataFrame, types: dict[str, DataType]) -> pl.DataFrame:
    """`frame`'s DECIMAL columns (read with `read_dtype`) rounded to their type; a value too large raises."""
    exact = {name: t for name, t in types.items() if t.is_decimal}
    if not exact:
        return frame
    rounded = frame.with_columns(
        round_half_away(pl.col(n), t.scale).cast(t.polars, strict=False) for n, t in exact.items()
    )
    for name, t in exact.items():
        lost = frame.get_column(name).is_not_null() & rounded.get_column(name).is_null()
        if lost.any():
            value = frame.get_column(name).filter(lost)[0]
            raise ValueError(f"column '{name}': {value} does not fit in {t.value}")
    return rounded
