"""The function registry: scalar and aggregate functions, their types and polars code.

One entry per function, shared by the binder (name resolution, type rules),
the dataframe API and the executor (`polars` builds the polars expression
from the compiled argument expressions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import polars as pl

from stream_dsl.ir.types import DataType

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


# What TRIM removes: the Unicode space separators (category Zs: ' ', no-break space, ...), as DuckDB does.
SPACES = " \u00a0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B)) + "\u202f\u205f\u3000"


def _substr(s: pl.Expr, start: pl.Expr, length: pl.Expr | None = None) -> pl.Expr:
    """SQL positions are 1-based; positions before 1 count against the length (as in SQL)."""
    offset = start.cast(pl.Int64) - 1
    if length is None:
        return s.str.slice(pl.max_horizontal(offset, pl.lit(0)))
    end = offset + length.cast(pl.Int64)
    return s.str.slice(pl.max_horizontal(offset, pl.lit(0)), pl.max_horizontal(end - pl.max_horizontal(offset, 0), 0))


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
            "greatest", ("numeric",), _common, lambda *xs: pl.max_horizontal(list(xs)), variadic=True, min_args=1
        ),
        ScalarFunction(
            "least", ("numeric",), _common, lambda *xs: pl.min_horizontal(list(xs)), variadic=True, min_args=1
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
    ]
}

# Other spellings users bring from other SQL dialects.
FUNCTION_ALIASES = {
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
    "sum": lambda t: T.DOUBLE if t is T.DOUBLE else T.BIGINT,
    "avg": lambda t: T.DOUBLE,
    "min": _argument_type,
    "max": _argument_type,
}
AGGREGATE_ALIASES = {"mean": "avg"}

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
