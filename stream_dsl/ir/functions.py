"""The function registry: scalar and aggregate functions, their types and polars code.

One entry per function, shared by the binder (name resolution, type rules),
the dataframe API and the executor (`polars` builds the polars expression
from the compiled argument expressions).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import polars as pl

from stream_dsl.ir.types import DataType, decimal

T = DataType
ANY = None  # an argument of any type


@dataclass(frozen=True, slots=True)
class ScalarFunction:
    """`args` lists the accepted argument kinds ('numeric', 'string', 'timestamp', 'any');
    `variadic` repeats the last kind. `returns` maps the argument types to the result type."""

    name: str
    args: tuple[str, ...]
    returns: Callable[[list[DataType]], DataType]
    polars: Callable[..., pl.Expr]
    variadic: bool = False
    min_args: int | None = None
    doc: str = ""
    # For SHOW FUNCTIONS / DESCRIBE FUNCTION: `signature` defaults to one built from `args`.
    signature: str = ""
    example: str = ""
    nulls: str = "NULL if any argument is NULL"
    # Bind-time check of the argument expressions (literal units, valid patterns): an error message or None.
    check: Callable[[list[Any]], str | None] | None = None

    def accepts(self, n: int) -> bool:
        low = len(self.args) if self.min_args is None else self.min_args
        return n >= low if self.variadic else low <= n <= len(self.args)


def _same_as_first(types: list[DataType]) -> DataType:
    return types[0]


def _rounded_type(types: list[DataType]) -> DataType:
    """ROUND keeps an integer's type (DuckDB); a DOUBLE, or a NULL, rounds to DOUBLE."""
    return types[0] if types[0].is_integer else T.DOUBLE


def _const(t: DataType) -> Callable[[list[DataType]], DataType]:
    return lambda types: t


def _common(types: list[DataType]) -> DataType:
    from stream_dsl.ir.types import common_type

    return common_type(types) or types[0]


def _comparable_arguments(args: list[Any]) -> str | None:
    """GREATEST and LEAST compare numbers, strings (by their UTF-8 bytes, as DuckDB) or timestamps, not a mix."""
    from stream_dsl.ir.types import common_type

    types = [a.dtype for a in args]
    if common_type(types) is None or any(t in (T.BOOLEAN, T.INTERVAL) for t in types):
        return "needs arguments of one comparable kind (numbers, strings or timestamps), got " + ", ".join(
            t.value for t in types
        )
    return None


# What TRIM removes: the Unicode space separators (category Zs: ' ', no-break space, ...), as DuckDB does.
SPACES = " \u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u202f\u205f\u3000"


def _substr(s: pl.Expr, start: pl.Expr, length: pl.Expr | None = None) -> pl.Expr:
    """DuckDB's SUBSTRING: positions are 1-based and a negative start counts from the end (-1 is the last
    character); a negative length takes the characters before the start; positions outside the string are
    dropped (start 0 and below count against the length). Any NULL argument gives NULL."""
    chars = s.str.len_chars().cast(pl.Int64)
    first = start.cast(pl.Int64)
    at: pl.Expr = pl.when(first > 0).then(first).when(first < 0).then(chars + first + 1).when(first == 0).then(0)
    low: pl.Expr
    high: pl.Expr
    if length is None:
        low, high = at, chars + 1
    else:
        count = length.cast(pl.Int64)
        low = pl.when(count >= 0).then(at).otherwise(at + count)
        high = pl.when(count >= 0).then(at + count).otherwise(at)
    low = low.clip(lower_bound=1)
    high = pl.when(high > chars + 1).then(chars + 1).otherwise(high)
    return s.str.slice(low - 1, (high - low).clip(lower_bound=0))


def _round(x: pl.Expr, digits: pl.Expr | None = None) -> pl.Expr:
    # SQL rounds half away from zero; polars' default is half to even.
    places = 0 if digits is None else _literal_int(digits)
    x = x.cast(pl.Float64)
    if places is None:  # ROUND(x, NULL): NULL on every row (a bare literal would be one row)
        return pl.repeat(None, pl.len(), dtype=pl.Float64)
    if places < -308:  # 10^-places is not a double: everything finite rounds to 0
        return x * 0.0
    if places < 0:  # round(1234, -2) = 1200: polars rounds to places >= 0 only
        factor = 10.0**-places
        return (x / factor).round(0, mode="half_away_from_zero") * factor
    return x.round(min(places, 400), mode="half_away_from_zero")


def _literal_int(e: pl.Expr) -> int:
    """Read an integer constant out of a literal polars expression (ROUND digits)."""
    return pl.select(e).item()


def _replace(s: pl.Expr, old: pl.Expr, new: pl.Expr) -> pl.Expr:
    """Every `old` in `s` replaced; an empty `old` leaves `s` as it is, as in DuckDB and PostgreSQL.

    Polars replaces only a constant pattern: one that varies by row goes through Python's str.replace.
    """
    if (
        old.meta.is_literal()
        and new.meta.is_literal()
        and _literal_value(old) is not None
        and _literal_value(new) is not None
    ):
        if _literal_value(old) == "":
            return s
        return s.str.replace_all(old, new, literal=True)

    def each_row(rows: pl.Series) -> pl.Series:
        out = [
            None
            if None in (r["s"], r["old"], r["new"])
            else r["s"]
            if r["old"] == ""
            else r["s"].replace(r["old"], r["new"])
            for r in rows.to_list()
        ]
        return pl.Series(rows.name, out, dtype=pl.String)

    return pl.struct(s.alias("s"), old.alias("old"), new.alias("new")).map_batches(
        each_row, return_dtype=pl.String, is_elementwise=True
    )


def _literal_value(e: pl.Expr) -> object:
    """The value of a literal polars expression."""
    return pl.select(e).item()


def _log(first: pl.Expr, second: pl.Expr | None = None) -> pl.Expr:
    """LOG(x) is base 10 and LOG(b, x) takes the base first, as in PostgreSQL and DuckDB."""
    if second is None:
        return first.cast(pl.Float64).log10()
    return second.cast(pl.Float64).log() / first.cast(pl.Float64).log()


def _trunc(x: pl.Expr) -> pl.Expr:
    """Toward zero; infinities and NaN stay as they are (DuckDB's trunc of a DOUBLE)."""
    return pl.when(x < 0).then(x.ceil()).otherwise(x.floor())


def _sign(x: pl.Expr) -> pl.Expr:
    """DuckDB: an INT (TINYINT there) of -1, 0 or 1; NaN and -0.0 give 0."""
    return pl.when(x > 0).then(1).when(x < 0).then(-1).when(x.is_not_null()).then(0).cast(pl.Int32)


SCALAR_FUNCTIONS: dict[str, ScalarFunction] = {
    f.name: f
    for f in [
        ScalarFunction("upper", ("string",), _const(T.STRING), lambda s: s.str.to_uppercase(), doc="upper-case"),
        ScalarFunction("lower", ("string",), _const(T.STRING), lambda s: s.str.to_lowercase(), doc="lower-case"),
        ScalarFunction(
            "length",
            ("string",),
            _const(T.BIGINT),
            lambda s: s.str.len_chars().cast(pl.Int64),
            doc="number of characters",
        ),
        # TRIM removes spaces only, not tabs or newlines (polars' default strips all whitespace).
        ScalarFunction("trim", ("string",), _const(T.STRING), lambda s: s.str.strip_chars(SPACES), doc="strip spaces"),
        ScalarFunction("ltrim", ("string",), _const(T.STRING), lambda s: s.str.strip_chars_start(SPACES)),
        ScalarFunction("rtrim", ("string",), _const(T.STRING), lambda s: s.str.strip_chars_end(SPACES)),
        ScalarFunction(
            "substring",
            ("string", "numeric", "numeric"),
            _const(T.STRING),
            _substr,
            min_args=2,
            doc="substring(s, start[, length]), 1-based",
        ),
        ScalarFunction(
            "replace",
            ("string", "string", "string"),
            _const(T.STRING),
            _replace,
            doc="replace(s, from, to); an empty `from` replaces nothing",
        ),
        ScalarFunction(
            "concat",
            ("any",),
            _const(T.STRING),
            lambda *xs: pl.concat_str([x.cast(pl.String) for x in xs], ignore_nulls=True),
            variadic=True,
            min_args=1,
            doc="concatenation; NULL arguments are skipped",
        ),
        ScalarFunction("starts_with", ("string", "string"), _const(T.BOOLEAN), lambda s, p: s.str.starts_with(p)),
        ScalarFunction("ends_with", ("string", "string"), _const(T.BOOLEAN), lambda s, p: s.str.ends_with(p)),
        ScalarFunction(
            "contains", ("string", "string"), _const(T.BOOLEAN), lambda s, p: s.str.contains(p, literal=True)
        ),
        ScalarFunction("abs", ("numeric",), _same_as_first, lambda x: x.abs()),
        ScalarFunction("round", ("numeric", "numeric"), _rounded_type, _round, min_args=1),
        ScalarFunction("floor", ("numeric",), _const(T.DOUBLE), lambda x: x.cast(pl.Float64).floor()),
        ScalarFunction("ceil", ("numeric",), _const(T.DOUBLE), lambda x: x.cast(pl.Float64).ceil()),
        ScalarFunction("sqrt", ("numeric",), _const(T.DOUBLE), lambda x: x.cast(pl.Float64).sqrt()),
        ScalarFunction("exp", ("numeric",), _const(T.DOUBLE), lambda x: x.cast(pl.Float64).exp()),
        ScalarFunction("ln", ("numeric",), _const(T.DOUBLE), lambda x: x.cast(pl.Float64).log()),
        ScalarFunction("log10", ("numeric",), _const(T.DOUBLE), lambda x: x.cast(pl.Float64).log10()),
        ScalarFunction("log", ("numeric", "numeric"), _const(T.DOUBLE), _log, min_args=1),
        ScalarFunction(
            "power", ("numeric", "numeric"), _const(T.DOUBLE), lambda x, y: x.cast(pl.Float64).pow(y.cast(pl.Float64))
        ),
        ScalarFunction("coalesce", ("any",), _common, lambda *xs: pl.coalesce(list(xs)), variadic=True, min_args=1),
        ScalarFunction(
            "greatest",
            ("any",),
            _common,
            lambda *xs: pl.max_horizontal(list(xs)),
            variadic=True,
            min_args=1,
            check=_comparable_arguments,
        ),
        ScalarFunction(
            "least",
            ("any",),
            _common,
            lambda *xs: pl.min_horizontal(list(xs)),
            variadic=True,
            min_args=1,
            check=_comparable_arguments,
        ),
        ScalarFunction("nullif", ("any", "any"), _same_as_first, lambda a, b: pl.when(a == b).then(None).otherwise(a)),
        ScalarFunction(
            "epoch_ms",
            ("timestamp",),
            _const(T.BIGINT),
            lambda t: t.dt.epoch("ms"),
            doc="milliseconds since 1970-01-01",
        ),
        ScalarFunction(
            "to_timestamp_ms", ("numeric",), _const(T.TIMESTAMP), lambda x: x.cast(pl.Int64).cast(pl.Datetime("ms"))
        ),
        ScalarFunction("hour", ("timestamp",), _const(T.BIGINT), lambda t: t.dt.hour().cast(pl.Int64)),
        ScalarFunction("minute", ("timestamp",), _const(T.BIGINT), lambda t: t.dt.minute().cast(pl.Int64)),
        ScalarFunction("second", ("timestamp",), _const(T.BIGINT), lambda t: t.dt.second().cast(pl.Int64)),
        ScalarFunction(
            "trunc",
            ("numeric",),
            _same_as_first,
            _trunc,
            doc="the number with its fraction dropped (toward zero); an integer stays as it is",
            example="trunc(-2.7) = -2.0",
        ),
        ScalarFunction(
            "sign",
            ("numeric",),
            _const(T.INT),
            _sign,
            doc="-1, 0 or 1 by the sign of the number (0 for -0.0 and NaN)",
            example="sign(-3.5) = -1",
        ),
    ]
}


# Descriptions (and signatures where the argument kinds do not say it) for SHOW FUNCTIONS / DESCRIBE FUNCTION.
_DOCS: dict[str, tuple[str, str, str]] = {  # name: (description, example, signature)
    "upper": ("upper-case", "upper('abc') = 'ABC'", ""),
    "lower": ("lower-case", "lower('ABC') = 'abc'", ""),
    "ltrim": ("leading spaces removed", "ltrim('  a ') = 'a '", ""),
    "rtrim": ("trailing spaces removed", "rtrim('  a ') = '  a'", ""),
    "trim": ("leading and trailing spaces removed (not tabs or newlines)", "trim('  a ') = 'a'", ""),
    "starts_with": ("whether the string starts with the prefix", "starts_with('abc', 'ab') = true", ""),
    "ends_with": ("whether the string ends with the suffix", "ends_with('abc', 'bc') = true", ""),
    "contains": ("whether the string contains the text (not a pattern)", "contains('a.c', '.') = true", ""),
    "abs": ("absolute value", "abs(-3) = 3", ""),
    "round": (
        "rounded half away from zero to the digits (negative: tens, hundreds)",
        "round(2.345, 2) = 2.35; round(1250, -2) = 1300",
        "round(x NUMERIC[, digits BIGINT literal]) -> BIGINT for an integer, else DOUBLE",
    ),
    "floor": ("the largest whole number not above x", "floor(-2.5) = -3.0", ""),
    "ceil": ("the smallest whole number not below x", "ceil(-2.5) = -2.0", ""),
    "sqrt": ("square root (NaN below 0)", "sqrt(16) = 4.0", ""),
    "exp": ("e to the power x", "exp(1) = 2.718281828459045", ""),
    "ln": ("natural logarithm (-inf at 0, NaN below)", "ln(1) = 0.0", ""),
    "log10": ("base-10 logarithm", "log10(1000) = 3.0", ""),
    "log": ("LOG(x) is base 10; LOG(b, x) is base b", "log(100) = 2.0; log(2, 8) = 3.0", ""),
    "power": ("x to the power y", "power(2, 10) = 1024.0", ""),
    "coalesce": (
        "the first argument that is not NULL",
        "coalesce(NULL, 2, 3) = 2",
        "coalesce(x ANY, ...) -> the arguments' common type",
    ),
    "greatest": (
        "the largest argument; NULLs are ignored (NaN is above every number)",
        "greatest(1, NULL, 3) = 3",
        "greatest(x ANY, ...) -> the arguments' common type (numbers, strings or timestamps)",
    ),
    "least": (
        "the smallest argument; NULLs are ignored",
        "least(4, 2.5) = 2.5",
        "least(x ANY, ...) -> the arguments' common type (numbers, strings or timestamps)",
    ),
    "nullif": ("NULL when a = b, else a", "nullif(1, 1) = NULL", "nullif(a ANY, b ANY) -> the type of a"),
    "to_timestamp_ms": ("epoch milliseconds to a TIMESTAMP", "to_timestamp_ms(1704067200000) = 2024-01-01", ""),
    "epoch_ms": ("milliseconds since 1970-01-01", "epoch_ms(TIMESTAMP '1970-01-01 00:00:01') = 1000", ""),
    "hour": ("the hour, 0 to 23", "hour(TIMESTAMP '2024-03-04 13:05:07') = 13", ""),
    "minute": ("the minute, 0 to 59", "minute(TIMESTAMP '2024-03-04 13:05:07') = 5", ""),
    "second": ("the second, 0 to 59 (without the fraction)", "second(TIMESTAMP '2024-03-04 13:05:07.5') = 7", ""),
    "length": ("number of characters", "length('héllo') = 5", ""),
    "substring": (
        "substring(s, start[, length]), 1-based; a negative start counts from the end",
        "substring('hello', 2, 3) = 'ell', substring('hello', -3) = 'llo'",
        "",
    ),
    "replace": ("every `from` replaced by `to` (text, not a pattern)", "replace('a-b-c', '-', '+') = 'a+b+c'", ""),
    "concat": ("the arguments as text, joined; NULLs are skipped", "concat('a', NULL, 1) = 'a1'", ""),
}
for _name, (_doc, _example, _signature) in _DOCS.items():
    _fn = SCALAR_FUNCTIONS[_name]
    SCALAR_FUNCTIONS[_name] = replace(_fn, doc=_doc, example=_example, signature=_signature or _fn.signature)
SCALAR_FUNCTIONS["concat"] = replace(SCALAR_FUNCTIONS["concat"], nulls="NULL arguments are skipped")
SCALAR_FUNCTIONS["coalesce"] = replace(SCALAR_FUNCTIONS["coalesce"], nulls="NULL only when every argument is")
SCALAR_FUNCTIONS["greatest"] = replace(SCALAR_FUNCTIONS["greatest"], nulls="NULLs are ignored; NULL if all are")
SCALAR_FUNCTIONS["least"] = replace(SCALAR_FUNCTIONS["least"], nulls="NULLs are ignored; NULL if all are")
SCALAR_FUNCTIONS["nullif"] = replace(SCALAR_FUNCTIONS["nullif"], nulls="NULL when a is NULL or a = b")
# What a DECIMAL(p, s) argument gives (stream_dsl/ir/decimals.py `function_type`, DuckDB's types).
for _name, _signature in {
    "round": "round(x NUMERIC[, digits BIGINT literal]) -> BIGINT for an integer, DECIMAL(p, min(digits, s)) "
    "for a DECIMAL(p, s), else DOUBLE",
    "abs": "abs(x NUMERIC) -> same type as the argument",
    "floor": "floor(x NUMERIC) -> DECIMAL(p, 0) for a DECIMAL(p, s), else DOUBLE",
    "ceil": "ceil(x NUMERIC) -> DECIMAL(p, 0) for a DECIMAL(p, s), else DOUBLE",
    "trunc": "trunc(x NUMERIC) -> an integer keeps its type, DECIMAL(p, 0) for a DECIMAL(p, s), else DOUBLE",
}.items():
    SCALAR_FUNCTIONS[_name] = replace(SCALAR_FUNCTIONS[_name], signature=_signature)


# The functions of stream_dsl.ir.functions_time and functions_text.
def _more_functions() -> list[ScalarFunction]:
    from stream_dsl.ir import dates

    return (
        functions_time.functions()
        + functions_text.functions()
        + functions_arrays.functions()
        + dates.functions()
        + functions_structs.functions()
    )


from stream_dsl.ir import functions_arrays, functions_text, functions_time  # noqa: E402 (they build ScalarFunctions)
from stream_dsl.ir import functions_structs  # noqa: E402 (it builds ScalarFunctions)

SCALAR_FUNCTIONS |= {f.name: f for f in _more_functions()}

# Other spellings users bring from other SQL dialects.
FUNCTION_ALIASES = {
    **functions_time.ALIASES,
    **functions_text.ALIASES,
    **functions_arrays.ALIASES,
    **functions_structs.ALIASES,
    "substr": "substring",
    "char_length": "length",
    "len": "length",
    "ceiling": "ceil",
    "pow": "power",
    "ifnull": "coalesce",
    "ucase": "upper",
    "lcase": "lower",
}


def _argument_type(t: DataType | None) -> DataType:
    assert t is not None  # only COUNT takes no argument
    return t


# Aggregates: name -> result type given the argument type (None for COUNT(*)).
AGGREGATE_FUNCTIONS: dict[str, Callable[[DataType | None], DataType]] = {
    "count": lambda t: T.BIGINT,
    "sum": lambda t: (
        T.DOUBLE if t is T.DOUBLE else decimal(38, t.scale) if t is not None and t.is_decimal else T.BIGINT
    ),
    "avg": lambda t: T.DOUBLE,
    "min": _argument_type,
    "max": _argument_type,
}
AGGREGATE_ALIASES = {"mean": "avg"}

from stream_dsl.ir.aggregates_more import MORE_AGGREGATES, MORE_ALIASES  # noqa: E402 (registered here)


def _more_type(returns: Callable[[DataType], DataType]) -> Callable[[DataType | None], DataType]:
    """Every aggregate of `aggregates_more` takes an argument (no `(*)` form)."""
    return lambda t: returns(_argument_type(t))


AGGREGATE_FUNCTIONS |= {a.name: _more_type(a.returns) for a in MORE_AGGREGATES.values()}
AGGREGATE_ALIASES |= MORE_ALIASES

# Window functions valid only in GROUP BY.
WINDOW_FUNCTIONS = ("tumble", "hop", "cumulate", "session")


def lookup_scalar(name: str) -> ScalarFunction | None:
    key = name.lower()
    return SCALAR_FUNCTIONS.get(FUNCTION_ALIASES.get(key, key))


def lookup_aggregate(name: str) -> str | None:
    key = name.lower()
    key = AGGREGATE_ALIASES.get(key, key)
    return key if key in AGGREGATE_FUNCTIONS else None


def known_function_names() -> list[str]:
    return sorted(
        set(SCALAR_FUNCTIONS)
        | set(FUNCTION_ALIASES)
        | set(AGGREGATE_FUNCTIONS)
        | set(AGGREGATE_ALIASES)
        | set(WINDOW_FUNCTIONS)
    )


def known_builtin(name: str) -> bool:
    """Whether `name` is a built-in function (or an alias, or a window) of any kind."""
    return name.lower() in set(known_function_names())
