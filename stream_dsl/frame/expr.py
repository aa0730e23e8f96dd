"""Expressions of the dataframe API: `sd.col`, `sd.lit`, `sd.when`, aggregates, windows.

An `Expr` wraps an unresolved syntax-tree node (`stream_dsl.sql.ast`), exactly
what the parser makes of the same expression written in the DSL. A Stream
binds it against its schema with the binder's expression binder, so both
front ends build equal plans and report the same errors.

Examples
--------
>>> import stream_dsl as sd
>>> (sd.col("price") * 2 > 10) & sd.col("sku").is_in(["a", "b"])
<Expr price * 2 > 10 AND sku IN ('a', 'b')>
>>> sd.col("price").sum().alias("revenue")
<Expr SUM(price) AS revenue>
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Iterable, cast


from stream_dsl.sql import ast
from stream_dsl.sql.parser import parse_type
from stream_dsl.errors import DSLError
from stream_dsl.bind.typecheck import parse_duration_ms
from stream_dsl.ir.types import DataType, type_from_polars

__all__ = [
    "Expr",
    "col",
    "lit",
    "when",
    "all",
    "count",
    "len",
    "sum",
    "mean",
    "avg",
    "min",
    "max",
    "n_unique",
    "tumble",
    "hop",
    "cumulate",
    "session",
    "sql_expr",
    "to_duration_ms",
    "func",
    "coalesce",
    "greatest",
    "least",
    "concat_ws",
    "now",
]


# ---------------------------------------------------------------- conversions


def to_duration_ms(value: str | int | dt.timedelta, what: str = "duration", *, allow_zero: bool = False) -> int:
    """Milliseconds in '10s', '100ms', '1m', '2 minutes', an int (ms) or a timedelta."""
    if isinstance(value, dt.timedelta):
        ms = value / dt.timedelta(milliseconds=1)
    elif isinstance(value, bool):
        raise DSLError(f"{what} must be a duration like '100ms' or '1s', got {value!r}")
    elif isinstance(value, (int, float)):
        ms = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            ms = int(text)
        elif allow_zero and re.fullmatch(r"0+(\.0*)?\s*[A-Za-z]*", text):
            ms = 0
        else:
            try:
                ms = parse_duration_ms(text)
            except DSLError:
                raise DSLError(f"{what} must be a duration like '100ms', '1s' or '1m', got {value!r}") from None
    else:
        raise DSLError(f"{what} must be a duration like '100ms' or '1s', got {value!r}")
    if ms != int(ms) or ms < 0 or (ms == 0 and not allow_zero):
        raise DSLError(f"{what} must be a positive whole number of milliseconds, got {value!r}")
    return int(ms)


def _interval_node(value: str | int | dt.timedelta, what: str) -> ast.IntervalLit:
    return ast.IntervalLit(f"{to_duration_ms(value, what)}ms", None)


def value_node(value: Any) -> ast.Expr:
    """A Python value (or an Expr) as a syntax-tree node; strings are literals here."""
    if isinstance(value, Expr):
        return value.node
    if value is None:
        return ast.NullLit()
    if isinstance(value, bool):
        return ast.BoolLit(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise DSLError(f"cannot use {value} as a literal")
        return ast.NumberLit(value)
    if isinstance(value, str):
        return ast.StringLit(value)
    if isinstance(value, dt.datetime):
        return ast.TimestampLit(value.isoformat(sep=" "))
    if isinstance(value, dt.date):
        return ast.TimestampLit(dt.datetime(value.year, value.month, value.day).isoformat(sep=" "))
    if isinstance(value, dt.timedelta):
        ms = value / dt.timedelta(milliseconds=1)
        node = ast.IntervalLit(f"{abs(int(ms))}ms", None)
        return ast.UnaryOp("-", node) if ms < 0 else node
    if type(value).__module__.split(".")[0] == "polars":  # pl.col(...) where sd.col(...) was meant
        raise DSLError(
            f"{value} is a polars {type(value).__name__}; stream-dsl expressions are built with sd.col('name'), "
            "sd.lit(value) and sd's functions (polars expressions cannot run on a stream)"
        )
    raise DSLError(f"cannot use a value of type {type(value).__name__} in an expression")


def column_node(value: Any) -> ast.Expr:
    """Like `value_node`, but a string names a column (select, group_by, agg arguments)."""
    if isinstance(value, str):
        return ast.Identifier((value,))
    return value_node(value)


def type_name_of(dtype: Any) -> ast.TypeName:
    """The SQL type as written for a DataType, a type name, a polars dtype or a Python type."""
    if isinstance(dtype, str):
        return parse_type(dtype)
    return written_type(_data_type(dtype))


def written_type(dtype: DataType) -> ast.TypeName:
    """The type as a user would write it (what CAST and a column definition carry)."""
    if dtype.is_list:
        return ast.TypeName("ARRAY", members=(written_type(dtype.element),))
    if dtype.is_struct:
        names, types = zip(*dtype.fields)
        return ast.TypeName("STRUCT", members=tuple(map(written_type, types)), field_names=names)
    if dtype.is_map:
        return ast.TypeName("MAP", members=(written_type(dtype.key), written_type(dtype.map_value)))
    return ast.TypeName(dtype.kind, dtype.params if dtype.is_decimal else ())


def _data_type(dtype: Any) -> DataType:
    if isinstance(dtype, DataType):
        return dtype
    python = {
        bool: DataType.BOOLEAN,
        int: DataType.BIGINT,
        float: DataType.DOUBLE,
        str: DataType.STRING,
        dt.datetime: DataType.TIMESTAMP,
    }
    for py_type, sql_type in python.items():
        if dtype is py_type:
            return sql_type
    try:
        instance = dtype() if isinstance(dtype, type) else dtype
        return type_from_polars(instance)
    except TypeError:
        raise DSLError(f"cannot cast to {dtype!r}; use a SQL type name such as 'BIGINT' or a polars dtype") from None


# ---------------------------------------------------------------- Expr


def _binary(op: str, left: Any, right: Any) -> "Expr":
    return Expr(ast.BinaryOp(op, value_node(left), value_node(right)))


def _by_ddof(name: str, ddof: int) -> str:
    """STDDEV or VAR, sample (ddof=1) or population (ddof=0), as polars' ddof says."""
    if ddof not in (0, 1):
        raise DSLError(f"ddof must be 0 (population) or 1 (sample), got {ddof!r}")
    return f"{name}_{'POP' if ddof == 0 else 'SAMP'}"


def _call(name: str, *args: Any, distinct: bool = False, star: bool = False) -> "Expr":
    return Expr(ast.FuncCall(name, tuple(value_node(a) for a in args), distinct, star))


class Expr:
    """An expression over the columns of a Stream, polars-style.

    Build one with `sd.col`, `sd.lit`, `sd.when`, operators and methods; a
    Stream method (`filter`, `select`, `with_columns`, `agg`) binds it.
    `alias(name)` names the output column.

    Examples
    --------
    >>> import stream_dsl as sd
    >>> sd.col("amount").cast(sd.Int64).alias("cents")
    <Expr CAST(amount AS BIGINT) AS cents>
    """

    __slots__ = ("node", "name")
    __hash__ = None  # type: ignore[assignment]  # == builds an expression, as in polars

    def __init__(self, node: ast.Expr, name: str | None = None) -> None:
        self.node = node
        self.name = name

    def alias(self, name: str) -> "Expr":
        """The same expression, producing a column called `name`."""
        return Expr(self.node, name)

    def __repr__(self) -> str:
        text = node_text(self.node)
        return f"<Expr {text} AS {self.name}>" if self.name else f"<Expr {text}>"

    def __bool__(self) -> bool:
        raise TypeError("the truth value of an Expr is ambiguous; use & | ~ instead of and, or, not")

    # ------------------------------------------------------------ operators

    def __add__(self, other: Any) -> "Expr":
        return _binary("+", self, other)

    def __radd__(self, other: Any) -> "Expr":
        return _binary("+", other, self)

    def __sub__(self, other: Any) -> "Expr":
        return _binary("-", self, other)

    def __rsub__(self, other: Any) -> "Expr":
        return _binary("-", other, self)

    def __mul__(self, other: Any) -> "Expr":
        return _binary("*", self, other)

    def __rmul__(self, other: Any) -> "Expr":
        return _binary("*", other, self)

    def __truediv__(self, other: Any) -> "Expr":
        return _binary("/", self, other)

    def __rtruediv__(self, other: Any) -> "Expr":
        return _binary("/", other, self)

    def __mod__(self, other: Any) -> "Expr":
        return _binary("%", self, other)

    def __rmod__(self, other: Any) -> "Expr":
        return _binary("%", other, self)

    def __eq__(self, other: Any) -> "Expr":  # type: ignore[override]
        return _binary("=", self, other)

    def __ne__(self, other: Any) -> "Expr":  # type: ignore[override]
        return _binary("<>", self, other)

    def __lt__(self, other: Any) -> "Expr":
        return _binary("<", self, other)

    def __le__(self, other: Any) -> "Expr":
        return _binary("<=", self, other)

    def __gt__(self, other: Any) -> "Expr":
        return _binary(">", self, other)

    def __ge__(self, other: Any) -> "Expr":
        return _binary(">=", self, other)

    def __and__(self, other: Any) -> "Expr":
        return _binary("AND", self, other)

    def __rand__(self, other: Any) -> "Expr":
        return _binary("AND", other, self)

    def __or__(self, other: Any) -> "Expr":
        return _binary("OR", self, other)

    def __ror__(self, other: Any) -> "Expr":
        return _binary("OR", other, self)

    def __invert__(self) -> "Expr":
        return Expr(ast.UnaryOp("NOT", self.node))

    def __neg__(self) -> "Expr":
        return Expr(ast.UnaryOp("-", self.node))

    def __pos__(self) -> "Expr":
        return self

    def eq(self, other: Any) -> "Expr":
        return self == other

    def ne(self, other: Any) -> "Expr":
        return self != other

    def lt(self, other: Any) -> "Expr":
        return self < other

    def le(self, other: Any) -> "Expr":
        return self <= other

    def gt(self, other: Any) -> "Expr":
        return self > other

    def ge(self, other: Any) -> "Expr":
        return self >= other

    def not_(self) -> "Expr":
        return ~self

    # ------------------------------------------------------------ predicates and casts

    def cast(self, dtype: Any) -> "Expr":
        """CAST to a SQL type: `sd.Int64`, `"BIGINT"`, `pl.Float64`, `float`."""
        return Expr(ast.Cast(self.node, type_name_of(dtype)))

    def is_in(self, values: Iterable[Any]) -> "Expr":
        """`x IN (...)`."""
        return Expr(ast.InList(self.node, tuple(value_node(v) for v in values)))

    def is_not_in(self, values: Iterable[Any]) -> "Expr":
        return Expr(ast.InList(self.node, tuple(value_node(v) for v in values), negated=True))

    def is_null(self) -> "Expr":
        return Expr(ast.IsNull(self.node))

    def is_not_null(self) -> "Expr":
        return Expr(ast.IsNull(self.node, negated=True))

    def is_between(self, lower: Any, upper: Any) -> "Expr":
        """`x BETWEEN lower AND upper` (both bounds included)."""
        return Expr(ast.Between(self.node, value_node(lower), value_node(upper)))

    def like(self, pattern: str) -> "Expr":
        """SQL LIKE: `%` matches any run of characters, `_` one character."""
        return Expr(ast.Like(self.node, value_node(pattern)))

    def not_like(self, pattern: str) -> "Expr":
        return Expr(ast.Like(self.node, value_node(pattern), negated=True))

    def fill_null(self, value: Any) -> "Expr":
        """COALESCE(x, value)."""
        return _call("COALESCE", self, value)

    # ------------------------------------------------------------ math

    def abs(self) -> "Expr":
        return _call("ABS", self)

    def sqrt(self) -> "Expr":
        return _call("SQRT", self)

    def floor(self) -> "Expr":
        return _call("FLOOR", self)

    def ceil(self) -> "Expr":
        return _call("CEIL", self)

    def exp(self) -> "Expr":
        return _call("EXP", self)

    def log10(self) -> "Expr":
        return _call("LOG10", self)

    def round(self, decimals: int = 0) -> "Expr":
        """ROUND(x) or ROUND(x, decimals)."""
        return _call("ROUND", self) if decimals == 0 else _call("ROUND", self, decimals)

    def log(self, base: float = math.e) -> "Expr":
        """LN(x), or LOG(x, base)."""
        return _call("LN", self) if base == math.e else _call("LOG", self, base)

    def pow(self, exponent: Any) -> "Expr":
        return _call("POWER", self, exponent)

    __pow__ = pow

    # ------------------------------------------------------------ aggregates

    def count(self) -> "Expr":
        """COUNT(x): the rows where x is not null."""
        return _call("COUNT", self)

    def n_unique(self) -> "Expr":
        """COUNT(DISTINCT x)."""
        return _call("COUNT", self, distinct=True)

    def sum(self) -> "Expr":
        return _call("SUM", self)

    def mean(self) -> "Expr":
        return _call("AVG", self)

    def min(self) -> "Expr":
        return _call("MIN", self)

    def max(self) -> "Expr":
        return _call("MAX", self)

    avg = mean

    def std(self, ddof: int = 1) -> "Expr":
        """STDDEV_SAMP(x), or STDDEV_POP(x) with `ddof=0`."""
        return _call(_by_ddof("STDDEV", ddof), self)

    def var(self, ddof: int = 1) -> "Expr":
        """VAR_SAMP(x), or VAR_POP(x) with `ddof=0`."""
        return _call(_by_ddof("VAR", ddof), self)

    def median(self) -> "Expr":
        return _call("MEDIAN", self)

    def quantile(self, quantile: float, interpolation: str = "linear") -> "Expr":
        """APPROX_PERCENTILE(x, quantile): exact, linearly interpolated (the only interpolation)."""
        if interpolation != "linear":
            raise DSLError("quantile supports interpolation='linear' only")
        return _call("APPROX_PERCENTILE", self, float(quantile))

    def approx_n_unique(self) -> "Expr":
        """APPROX_COUNT_DISTINCT(x) (exact here)."""
        return _call("APPROX_COUNT_DISTINCT", self)

    def first(self) -> "Expr":
        """FIRST_VALUE(x): by event time, ties by arrival."""
        return _call("FIRST_VALUE", self)

    def last(self) -> "Expr":
        """LAST_VALUE(x): by event time, ties by arrival."""
        return _call("LAST_VALUE", self)

    def implode(self) -> "Expr":
        """ARRAY_AGG(x): the values as a list, by event time then arrival."""
        return _call("ARRAY_AGG", self)

    # ------------------------------------------------------------ namespaces

    @property
    def str(self) -> "StringNamespace":
        return StringNamespace(self)

    @property
    def dt(self) -> "DateTimeNamespace":
        return DateTimeNamespace(self)


class StringNamespace:
    """String functions: `sd.col("name").str.to_uppercase()`."""

    __slots__ = ("_expr",)

    def __init__(self, expr: Expr) -> None:
        self._expr = expr

    def to_uppercase(self) -> Expr:
        return _call("UPPER", self._expr)

    def to_lowercase(self) -> Expr:
        return _call("LOWER", self._expr)

    def len_chars(self) -> Expr:
        return _call("LENGTH", self._expr)

    def strip_chars(self) -> Expr:
        return _call("TRIM", self._expr)

    def strip_chars_start(self) -> Expr:
        return _call("LTRIM", self._expr)

    def strip_chars_end(self) -> Expr:
        return _call("RTRIM", self._expr)

    def join(self, delimiter: str = ",") -> Expr:
        """STRING_AGG(x, delimiter): an aggregate, the non-NULL strings by event time then arrival."""
        return _call("STRING_AGG", self._expr, delimiter)

    def contains(self, pattern: str, *, literal: bool = False) -> Expr:
        """A regex (RE2 syntax) match anywhere, as polars' default: REGEXP_MATCHES; `literal=True`: CONTAINS."""
        return _call("CONTAINS" if literal else "REGEXP_MATCHES", self._expr, pattern)

    def extract(self, pattern: str, group_index: int = 1) -> Expr:
        """REGEXP_EXTRACT(x, pattern, group_index): '' where nothing matches (DuckDB), not NULL as in polars."""
        return _call("REGEXP_EXTRACT", self._expr, pattern, group_index)

    def replace_regex(self, pattern: str, value: str, *, n: int = 1) -> Expr:
        """REGEXP_REPLACE: the first match (n=1) or every one (n=-1); `value` in RE2's syntax (`\\1`)."""
        if n not in (1, -1):
            raise DSLError(f"replace_regex replaces the first match (n=1) or all (n=-1), not n={n!r}")
        return _call("REGEXP_REPLACE", self._expr, pattern, value, *(["g"] if n == -1 else []))

    def split_part(self, by: str, index: int) -> Expr:
        """SPLIT_PART(x, by, index): 1-based, negative from the end, '' past the end."""
        return _call("SPLIT_PART", self._expr, by, index)

    def pad_start(self, length: int, fill_char: str = " ") -> Expr:
        """LPAD(x, length, fill_char); a longer string is cut to `length` (SQL), which polars does not do."""
        return _call("LPAD", self._expr, length, fill_char)

    def pad_end(self, length: int, fill_char: str = " ") -> Expr:
        """RPAD(x, length, fill_char)."""
        return _call("RPAD", self._expr, length, fill_char)

    def reverse(self) -> Expr:
        return _call("REVERSE", self._expr)

    def repeat(self, n: Any) -> Expr:
        """REPEAT(x, n)."""
        return _call("REPEAT", self._expr, n)

    def starts_with(self, prefix: str) -> Expr:
        return _call("STARTS_WITH", self._expr, prefix)

    def ends_with(self, suffix: str) -> Expr:
        return _call("ENDS_WITH", self._expr, suffix)

    def like(self, pattern: str) -> Expr:
        return self._expr.like(pattern)

    def replace_all(self, old: str, new: str) -> Expr:
        """Replace every occurrence of `old` (literal text, not a pattern)."""
        return _call("REPLACE", self._expr, old, new)

    replace = replace_all

    def slice(self, offset: int, length: int | None = None) -> Expr:
        """`length` characters (all when None) from 0-based `offset`: SUBSTRING(x, offset + 1, length)."""
        if not isinstance(offset, int) or offset < 0:
            raise DSLError(f"str.slice needs a non-negative integer offset, got {offset!r}")
        args = (self._expr, offset + 1) if length is None else (self._expr, offset + 1, length)
        return _call("SUBSTRING", *args)

    def concat(self, *others: Any) -> Expr:
        """CONCAT(x, others...)."""
        return _call("CONCAT", self._expr, *others)


class DateTimeNamespace:
    """Timestamp functions: `sd.col("ts").dt.hour()`."""

    __slots__ = ("_expr",)

    def __init__(self, expr: Expr) -> None:
        self._expr = expr

    def hour(self) -> Expr:
        return _call("HOUR", self._expr)

    def minute(self) -> Expr:
        return _call("MINUTE", self._expr)

    def second(self) -> Expr:
        return _call("SECOND", self._expr)

    def epoch(self, time_unit: str = "ms") -> Expr:
        if time_unit != "ms":
            raise DSLError("only epoch('ms') is supported")
        return _call("EPOCH_MS", self._expr)

    def year(self) -> Expr:
        return _call("YEAR", self._expr)

    def quarter(self) -> Expr:
        return _call("QUARTER", self._expr)

    def month(self) -> Expr:
        return _call("MONTH", self._expr)

    def day(self) -> Expr:
        return _call("DAY", self._expr)

    def week(self) -> Expr:
        """The ISO week."""
        return _call("WEEK", self._expr)

    def ordinal_day(self) -> Expr:
        return _call("DAYOFYEAR", self._expr)

    def weekday(self) -> Expr:
        """Polars' numbering: Monday 1 to Sunday 7 (SQL's DAYOFWEEK counts Sunday as 0)."""
        return (_call("DAYOFWEEK", self._expr) + 6) % 7 + 1

    def truncate(self, every: str) -> Expr:
        """DATE_TRUNC for one unit: '1y', '1q', '1mo', '1w' (Monday), '1d', '1h', '1m', '1s', '1ms'."""
        unit = _TRUNCATE_UNITS.get(every)
        if unit is None:
            raise DSLError(f"truncate takes one of {', '.join(_TRUNCATE_UNITS)}, got {every!r}")
        return _call("DATE_TRUNC", unit, self._expr)

    def offset_by(self, by: str | int | dt.timedelta) -> Expr:
        """The timestamp plus a duration ('1h', '-30m' as '30m' subtracted: pass a timedelta): x + INTERVAL."""
        if isinstance(by, str) and by.startswith("-"):
            return self._expr - lit(dt.timedelta(milliseconds=to_duration_ms(by[1:], "offset_by")))
        return self._expr + lit(dt.timedelta(milliseconds=to_duration_ms(by, "offset_by")))


_TRUNCATE_UNITS = {
    "1y": "year",
    "1q": "quarter",
    "1mo": "month",
    "1w": "week",
    "1d": "day",
    "1h": "hour",
    "1m": "minute",
    "1s": "second",
    "1ms": "millisecond",
}


# ---------------------------------------------------------------- constructors


def col(name: str) -> Expr:
    """A column by name.

    Examples
    --------
    >>> import stream_dsl as sd
    >>> sd.col("price") + 1
    <Expr price + 1>
    """
    if not isinstance(name, str):
        raise DSLError(f"col() takes a column name, got {name!r}")
    return Expr(ast.Identifier((name,)))


def all() -> Expr:  # noqa: A001 - the polars name
    """Every column (`*`), for select."""
    return Expr(ast.Star())


def lit(value: Any) -> Expr:
    """A constant: int → BIGINT, float → DOUBLE, str, bool, None, datetime → TIMESTAMP, timedelta → INTERVAL."""
    return Expr(value_node(value))


def func(name: str, *args: Any) -> Expr:
    """Any scalar function by its SQL name (SHOW FUNCTIONS lists them): `sd.func("date_diff", "day", a, b)`."""
    return _call(name.upper(), *args)


def coalesce(*exprs: Any) -> Expr:
    return _call("COALESCE", *exprs)


def greatest(*exprs: Any) -> Expr:
    """The largest of the arguments, NULLs ignored (polars: max_horizontal)."""
    return _call("GREATEST", *exprs)


def least(*exprs: Any) -> Expr:
    """The smallest of the arguments, NULLs ignored (polars: min_horizontal)."""
    return _call("LEAST", *exprs)


def concat_ws(separator: str, *exprs: Any) -> Expr:
    """The arguments as text joined by `separator`, NULLs skipped (polars: concat_str(separator, ignore_nulls))."""
    return _call("CONCAT_WS", separator, *exprs)


def now() -> Expr:
    """NOW(): the clock in UTC, read once per micro-batch and task."""
    return _call("NOW")


def sql_expr(text: str) -> Expr:
    """An expression written in the DSL: `sd.sql_expr("price * 2 > 10")`."""
    from stream_dsl.sql.parser import parse_expression

    return Expr(parse_expression(text))


class When:
    """`sd.when(cond).then(value)`: the start of a CASE expression."""

    __slots__ = ("_whens",)

    def __init__(self, whens: tuple[tuple[ast.Expr, ast.Expr], ...], condition: Any) -> None:
        self._whens = whens + ((value_node(condition), None),)

    def then(self, value: Any) -> "Then":
        cond = self._whens[-1][0]
        done = cast("tuple[tuple[ast.Expr, ast.Expr], ...]", self._whens[:-1])  # only the last waits for its value
        return Then(done + ((cond, value_node(value)),))


class Then(Expr):
    """A CASE with its branches so far; use it as is (NULL otherwise) or chain `.when` / `.otherwise`."""

    __slots__ = ("_branches",)

    def __init__(self, whens: tuple[tuple[ast.Expr, ast.Expr], ...]) -> None:
        super().__init__(ast.Case(None, whens, None))
        self._branches = whens

    def when(self, condition: Any) -> When:
        return When(self._branches, condition)

    def otherwise(self, value: Any) -> Expr:
        return Expr(ast.Case(None, self._branches, value_node(value)))


def when(condition: Any) -> When:
    """CASE WHEN ... THEN ... ELSE ... END, polars-style.

    Examples
    --------
    >>> import stream_dsl as sd
    >>> sd.when(sd.col("amount") > 100).then("high").otherwise("low").alias("band")
    <Expr CASE WHEN amount > 100 THEN 'high' ELSE 'low' END AS band>
    """
    return When((), condition)


def count(column: str | Expr | None = None) -> Expr:
    """COUNT(*), or COUNT(column) when given."""
    if column is None:
        return Expr(ast.FuncCall("COUNT", (), star=True))
    return Expr(column_node(column)).count()


len = count  # noqa: A001 - polars spells COUNT(*) pl.len()


def sum(column: str | Expr) -> Expr:  # noqa: A001
    return Expr(column_node(column)).sum()


def mean(column: str | Expr) -> Expr:
    return Expr(column_node(column)).mean()


avg = mean


def min(column: str | Expr) -> Expr:  # noqa: A001
    return Expr(column_node(column)).min()


def max(column: str | Expr) -> Expr:  # noqa: A001
    return Expr(column_node(column)).max()


def n_unique(column: str | Expr) -> Expr:
    return Expr(column_node(column)).n_unique()


# ---------------------------------------------------------------- windows


def tumble(column: str | Expr, size: str | int | dt.timedelta) -> Expr:
    """Fixed, non-overlapping windows of `size` over a TIMESTAMP column, for `group_by`.

    Examples
    --------
    >>> import stream_dsl as sd
    >>> sd.tumble("event_time", "10s")
    <Expr TUMBLE(event_time, INTERVAL '10000ms')>
    """
    return Expr(ast.FuncCall("TUMBLE", (column_node(column), _interval_node(size, "window size"))))


def hop(column: str | Expr, slide: str | int | dt.timedelta, size: str | int | dt.timedelta) -> Expr:
    """Overlapping windows of `size`, one starting every `slide`, for `group_by`."""
    return Expr(
        ast.FuncCall(
            "HOP", (column_node(column), _interval_node(slide, "window slide"), _interval_node(size, "window size"))
        )
    )


def cumulate(column: str | Expr, step: str | int | dt.timedelta, size: str | int | dt.timedelta) -> Expr:
    """Growing windows for `group_by`: every `step`, a window from the start of the current `size` period.

    The windows [start, start + step), [start, start + 2 * step), ..., [start,
    start + size) share their start (a multiple of `size`); each is emitted
    when the watermark passes its end. `size` must be a multiple of `step`.

    Examples
    --------
    >>> import stream_dsl as sd
    >>> sd.cumulate("event_time", step="1s", size="10s")
    <Expr CUMULATE(event_time, INTERVAL '1000ms', INTERVAL '10000ms')>
    """
    return Expr(
        ast.FuncCall(
            "CUMULATE", (column_node(column), _interval_node(step, "window step"), _interval_node(size, "window size"))
        )
    )


def session(column: str | Expr, gap: str | int | dt.timedelta) -> Expr:
    """Session windows that close after `gap` without events, for `group_by`."""
    return Expr(ast.FuncCall("SESSION", (column_node(column), _interval_node(gap, "session gap"))))


# ---------------------------------------------------------------- display


def node_text(node: Any) -> str:
    """SQL text of a syntax-tree expression (for repr): the one unparser's."""
    from stream_dsl.sql.unparse import unparse

    return unparse(node)
