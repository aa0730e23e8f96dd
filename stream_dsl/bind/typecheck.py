"""Typed constructors for bound expressions, shared by the binder and the dataframe API.

Each function checks its operands, picks the result type and returns an
`expr` node, or raises `BindError` (with the span, when the caller has one).
Both front ends call these, so the same query gives the same tree and the
same type errors whichever way it was written.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal as PyDecimal
from typing import Any

from stream_dsl.ir import expr as E
from stream_dsl.errors import BindError, Span, did_you_mean
from stream_dsl.ir.aggregates_more import MORE_AGGREGATES, MoreAggregate
from stream_dsl.ir.functions import AGGREGATE_FUNCTIONS, known_function_names, lookup_aggregate, lookup_scalar
from stream_dsl.ir import dates, decimals, functions_arrays, functions_structs, udfs
from stream_dsl.ir.functions_time import FIELDS
from stream_dsl.ir.types import DataType, common_numeric, common_type, comparable

T = DataType


def _fail(message: str, span: Span | None) -> BindError:
    return BindError(message, span=span)


def literal(value: Any, span: Span | None = None) -> E.Literal:
    """A literal from a Python value: int → BIGINT, float → DOUBLE, str → STRING, ..."""
    if value is None:
        return E.Literal(None, T.NULL, span=span)
    if isinstance(value, bool):
        return E.Literal(value, T.BOOLEAN, span=span)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:  # DuckDB would make it a HUGEINT; the nearest type here is DOUBLE
            return E.Literal(float(value), T.DOUBLE, span=span)
        return E.Literal(value, T.BIGINT, span=span)
    if isinstance(value, float):
        return E.Literal(value, T.DOUBLE, span=span)
    if isinstance(value, PyDecimal) and value.is_finite():
        return E.Literal(value, decimals.literal_type(value), span=span)
    if isinstance(value, str):
        return E.Literal(value, T.STRING, span=span)
    if isinstance(value, dt.datetime):
        ms = value.replace(microsecond=value.microsecond // 1000 * 1000)
        return E.Literal(ms.replace(tzinfo=None), T.TIMESTAMP, span=span)
    if isinstance(value, dt.timedelta):
        return E.Literal(value, T.INTERVAL, span=span)
    if isinstance(value, dt.date):  # (a datetime is a TIMESTAMP, above)
        return E.Literal(value, T.DATE, span=span)
    raise _fail(f"cannot use a value of type {type(value).__name__} as a literal", span)


def _coerce_literal_to(e: E.Expr, target: DataType) -> E.Expr:
    """Let a string literal stand for a TIMESTAMP where one is compared (`ts > '2024-01-01'`)."""
    if target is T.TIMESTAMP and isinstance(e, E.Literal) and e.dtype is T.STRING:
        return E.Literal(parse_timestamp(e.value, e.span), T.TIMESTAMP, span=e.span)
    if target is T.DATE and isinstance(e, E.Literal) and e.dtype is T.STRING:
        day = dates.parse_date(e.value)
        if day is None:
            raise _fail(f"invalid DATE literal '{e.value}' (expected e.g. '2024-01-31')", e.span)
        return E.Literal(day, T.DATE, span=e.span)
    return e


def parse_timestamp(text: str, span: Span | None = None) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _fail(
            f"invalid TIMESTAMP literal '{text}' (expected ISO-8601, e.g. '2024-01-01 12:00:00')", span
        ) from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


_UNIT_MS = {
    "MILLISECOND": 1,
    "MS": 1,
    "SECOND": 1000,
    "S": 1000,
    "SEC": 1000,
    "MINUTE": 60_000,
    "MIN": 60_000,
    "M": 60_000,
    "HOUR": 3_600_000,
    "H": 3_600_000,
    "DAY": 86_400_000,
    "D": 86_400_000,
}


def parse_duration_ms(text: str, unit: str | None = None, span: Span | None = None) -> int:
    """Milliseconds in '10' SECOND, '10 seconds', '1.5s', '100ms', '2 minutes'."""
    if unit is not None:
        text = f"{text} {unit}"
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*", text)
    if m:
        name = m.group(2).upper()
        if name not in _UNIT_MS and name.endswith("S"):
            name = name[:-1]
        if name in _UNIT_MS:
            ms = float(m.group(1)) * _UNIT_MS[name]
            if ms == int(ms) and ms > 0:
                return int(ms)
    raise _fail(f"invalid interval '{text.strip()}' (expected e.g. '10' SECOND, '10 seconds' or '100ms')", span)


def interval(ms: int, span: Span | None = None) -> E.Literal:
    return E.Literal(dt.timedelta(milliseconds=ms), T.INTERVAL, span=span)


def binary(op: str, left: E.Expr, right: E.Expr, span: Span | None = None) -> E.Expr:
    """`left op right` with SQL's type rules. `!=` is spelled `<>` in the IR."""
    op = {"!=": "<>", "==": "=", "and": "AND", "or": "OR"}.get(op, op)
    if op in ("AND", "OR"):
        for side in (left, right):
            if side.dtype not in (T.BOOLEAN, T.NULL):
                raise _fail(f"{op} needs BOOLEAN operands, got {side.dtype.value} in {E.render(side)}", span)
        return E.Binary(op, left, right, T.BOOLEAN, span=span)
    if op in E.COMPARISONS:
        left, right = _coerce_literal_to(left, right.dtype), _coerce_literal_to(right, left.dtype)
        if not comparable(left.dtype, right.dtype):
            raise _fail(
                f"cannot compare {left.dtype.value} with {right.dtype.value} in "
                f"{E.render(left)} {op} {E.render(right)}; use CAST",
                span,
            )
        return E.Binary(op, left, right, T.BOOLEAN, span=span)
    if op == "||":
        return E.Binary(op, left, right, T.STRING, span=span)
    if op in E.ARITHMETIC:
        return E.Binary(op, left, right, _arithmetic_type(op, left, right, span), span=span)
    raise _fail(f"unknown operator '{op}'", span)


def _arithmetic_type(op: str, left: E.Expr, right: E.Expr, span: Span | None) -> DataType:
    lt, rt = left.dtype, right.dtype
    if lt is T.TIMESTAMP and rt is T.INTERVAL and op in "+-":
        return T.TIMESTAMP
    if lt is T.INTERVAL and rt is T.TIMESTAMP and op == "+":
        return T.TIMESTAMP
    if lt is T.TIMESTAMP and rt is T.TIMESTAMP and op == "-":
        return T.INTERVAL
    if lt is T.INTERVAL and rt is T.INTERVAL and op in "+-":
        return T.INTERVAL
    if T.DATE in (lt, rt):
        dated = dates.arithmetic_type(op, lt, rt)
        if dated is None:
            raise _fail(
                f"operator {op} is not defined for {lt.value} and {rt.value} in "
                f"{E.render(left)} {op} {E.render(right)}",
                span,
            )
        return dated
    numeric = common_numeric(lt, rt)
    if numeric is None:
        raise _fail(
            f"operator {op} needs numbers, got {lt.value} and {rt.value} in {E.render(left)} {op} {E.render(right)}",
            span,
        )
    if numeric.is_decimal:
        try:
            return decimals.arithmetic_type(
                op, lt if lt is not T.NULL else numeric, rt if rt is not T.NULL else numeric
            )
        except TypeError as err:
            raise _fail(f"{err} in {E.render(left)} {op} {E.render(right)}", span) from None
    if op == "/":
        return T.DOUBLE
    return T.BIGINT if numeric is T.NULL else numeric


def negate(operand: E.Expr, span: Span | None = None) -> E.Expr:
    if operand.dtype not in (T.BIGINT, T.INT, T.DOUBLE, T.INTERVAL, T.NULL) and not operand.dtype.is_decimal:
        raise _fail(f"cannot negate a {operand.dtype.value}", span)
    if isinstance(operand, E.Literal) and operand.value is not None:
        if operand.dtype is T.BIGINT:
            return literal(-operand.value, span)  # -(-2^63) is beyond BIGINT: a DOUBLE, as any such literal
        if operand.dtype is not T.INT:
            return E.Literal(-operand.value, operand.dtype, span=span)
    return E.Unary("-", operand, operand.dtype, span=span)


def not_(operand: E.Expr, span: Span | None = None) -> E.Expr:
    if operand.dtype not in (T.BOOLEAN, T.NULL):
        raise _fail(f"NOT needs a BOOLEAN, got {operand.dtype.value}", span)
    return E.Unary("NOT", operand, T.BOOLEAN, span=span)


def cast(operand: E.Expr, target: DataType, span: Span | None = None) -> E.Expr:
    if operand.dtype is target:
        return operand
    if target in (T.INTERVAL, T.NULL):
        raise _fail(f"cannot CAST to {target.value}", span)
    problem = functions_arrays.cast_problem(operand.dtype, target)  # lists: element by element
    if problem:
        raise _fail(problem, span)
    if operand.dtype.is_struct or target.is_struct:  # by field name, as DuckDB (bind/structs.py)
        from stream_dsl.bind.structs import check_cast

        check_cast(operand.dtype, target, span)
    return E.Cast(operand, target, span=span)


def case(whens: list[tuple[E.Expr, E.Expr]], else_: E.Expr | None, span: Span | None = None) -> E.Expr:
    """Searched CASE; a simple CASE is passed in already as `operand = value` conditions."""
    for cond, _ in whens:
        if cond.dtype not in (T.BOOLEAN, T.NULL):
            raise _fail(f"a WHEN condition must be BOOLEAN, got {cond.dtype.value}", span)
    values = [v for _, v in whens] + ([else_] if else_ is not None else [])
    result = common_type(v.dtype for v in values)
    if result is None:
        raise _fail("CASE branches have incompatible types: " + ", ".join(v.dtype.value for v in values), span)
    else_ = else_ if else_ is not None else E.Literal(None, T.NULL)
    return E.Case(tuple(whens), else_, result, span=span)


def in_list(operand: E.Expr, items: list[E.Expr], negated: bool = False, span: Span | None = None) -> E.Expr:
    items = [_coerce_literal_to(i, operand.dtype) for i in items]
    for item in items:
        if not comparable(operand.dtype, item.dtype):
            raise _fail(
                f"IN list item {E.render(item)} ({item.dtype.value}) cannot be compared with {operand.dtype.value}",
                span,
            )
    return E.InList(operand, tuple(items), negated, span=span)


def between(operand: E.Expr, low: E.Expr, high: E.Expr, negated: bool = False, span: Span | None = None) -> E.Expr:
    """`x BETWEEN a AND b` is `x >= a AND x <= b` in the IR."""
    both = binary("AND", binary(">=", operand, low, span), binary("<=", operand, high, span), span)
    return not_(both, span) if negated else both


def like(operand: E.Expr, pattern: E.Expr, negated: bool = False, span: Span | None = None) -> E.Expr:
    if operand.dtype not in (T.STRING, T.NULL):
        raise _fail(f"LIKE needs a STRING, got {operand.dtype.value}", span)
    if not (isinstance(pattern, E.Literal) and pattern.dtype is T.STRING):
        raise _fail("the LIKE pattern must be a string literal", span)
    return E.Like(operand, pattern.value, negated, span=span)


def is_null(operand: E.Expr, negated: bool = False, span: Span | None = None) -> E.Expr:
    return E.IsNull(operand, negated, span=span)


_KIND_OK = {
    "numeric": lambda t: t.is_numeric or t is T.NULL,
    "string": lambda t: t in (T.STRING, T.NULL),
    "timestamp": lambda t: t in (T.TIMESTAMP, T.NULL),
    "integer": lambda t: t.is_integer or t is T.NULL,
    "interval": lambda t: t in (T.INTERVAL, T.NULL),
    "any": lambda t: True,
    "list": lambda t: t.is_list or t is T.NULL,
}


def function(name: str, args: list[E.Expr], span: Span | None = None) -> E.Expr:
    """A scalar function call by any of its names."""
    fn = lookup_scalar(name)
    if fn is None and udfs.scalar(name) is not None:
        return python_function(udfs.scalar(name), args, span)
    if fn is None:
        if lookup_aggregate(name) or udfs.aggregate(name):
            raise _fail(f"aggregate function {name.upper()} is not allowed here", span)
        if name.lower() == "unnest":
            raise _fail(functions_arrays.UNNEST_PLACES, span)
        known = known_function_names() + udfs.names()
        raise _fail(f"unknown function '{name}'{did_you_mean(name.lower(), known)}", span)
    if not fn.accepts(len(args)):
        raise _fail(f"function {fn.name} does not take {len(args)} argument(s)", span)
    if fn.name == "list_element" and args and args[0].dtype.is_struct:  # s['f'] is s.f, as in DuckDB
        return function("struct_extract", args, span)
    adjusted, args = functions_arrays.adjust(fn.name, list(args), span)  # lists: LEN, element types
    fn = lookup_scalar(adjusted) or fn
    args = [  # a DATE is its midnight to the time functions, as in DuckDB (YEAR, DATE_TRUNC, STRFTIME, ...)
        cast(a, T.TIMESTAMP, span)
        if a.dtype is T.DATE and fn.args and fn.args[min(i, len(fn.args) - 1)] == "timestamp"
        else a
        for i, a in enumerate(args)
    ]
    for i, arg in enumerate(args):
        kind = fn.args[min(i, len(fn.args) - 1)]
        if not _KIND_OK[kind](arg.dtype):
            raise _fail(f"argument {i + 1} of {fn.name} must be {kind}, got {arg.dtype.value}", span)
    if fn.name == "round" and len(args) == 2 and (E.columns_used(args[1]) or args[1].dtype is DataType.DOUBLE):
        raise _fail("ROUND's second argument, the decimal places, must be an integer constant", span)
    problem = fn.check(args) if fn.check is not None else None
    if problem:
        raise _fail(f"{fn.name.upper()}: {problem}", span)
    if args and args[0].dtype.is_decimal and fn.name in decimals.FUNCTIONS:
        result = decimals.function_type(fn.name, args[0].dtype, _constant_digits(args))
        return E.Func(fn.name, tuple(args), result, span=span)
    if fn.name == "date_part":  # EXTRACT(field FROM ts) and DATE_PART('field', ts) are the field's function
        assert isinstance(args[0], E.Literal)
        return function(FIELDS[args[0].value.lower()], args[1:], span)
    if fn.name == "date_add":
        return binary("+", args[0], args[1], span)
    if fn.name in functions_structs.BOUND_HERE:  # the result type depends on the field names given
        struct_args, dtype = functions_structs.bind_call(fn.name, args, lambda message: _fail(message, span))
        return E.Func(fn.name, struct_args, dtype, span=span)
    return E.Func(fn.name, tuple(args), fn.returns([a.dtype for a in args]), span=span)


def _constant_digits(args: list[E.Expr]) -> int | None:
    """ROUND's decimal places when given as a constant (a NULL one counts as none)."""
    if len(args) < 2 or not isinstance(args[1], E.Literal) or args[1].value is None:
        return None
    return int(args[1].value)


def python_function(udf: Any, args: list[E.Expr], span: Span | None = None) -> E.Expr:
    """A call of a Python UDF (`stream_dsl.ir.udfs`): any argument types, the number its function takes."""
    if not udf.accepts(len(args)):
        wanted = str(udf.min_args) if udf.max_args == udf.min_args else f"{udf.min_args} or more"
        if udf.max_args is not None and udf.max_args != udf.min_args:
            wanted = f"{udf.min_args} to {udf.max_args}"
        raise _fail(f"function {udf.name} takes {wanted} argument(s), got {len(args)}", span)
    return E.Func(udf.name, tuple(args), udf.returns, span=span, udf=udf)


def python_aggregate(udf: Any, arg: E.Expr | None, distinct: bool, span: Span | None) -> E.Agg:
    """A call of an aggregate UDF: one argument of any type, no DISTINCT."""
    if arg is None:
        raise _fail(f"{udf.name.upper()}(*) is not allowed; only COUNT(*)", span)
    if E.contains_agg(arg):
        raise _fail("aggregate functions cannot be nested", span)
    if distinct:
        raise _fail(f"DISTINCT is supported in COUNT only, not in {udf.name.upper()}", span)
    return E.Agg(udf.name, arg, udf.returns, False, span=span, udf=udf)


def aggregate_arity(name: str) -> tuple[int, int]:
    """How many arguments an aggregate takes (min, max): a second one is a constant parameter."""
    func = lookup_aggregate(name)
    more = MORE_AGGREGATES.get(func or "")
    if more is None or more.param is None:
        return (1, 1)
    return (2 if more.param_required else 1, 2)


def aggregate(
    name: str,
    arg: E.Expr | None,
    distinct: bool = False,
    span: Span | None = None,
    params: list[E.Expr] | None = None,
) -> E.Agg:
    """An aggregate call; `arg` None is COUNT(*); `params`: the constant arguments after the first."""
    func = lookup_aggregate(name)
    if func is None and udfs.aggregate(name) is not None:
        return python_aggregate(udfs.aggregate(name), arg, distinct, span)
    if func in MORE_AGGREGATES and arg is not None:
        return more_aggregate(MORE_AGGREGATES[func], arg, distinct, span, params or [])
    if func is None:
        raise _fail(f"unknown aggregate function '{name}'{did_you_mean(name.lower(), AGGREGATE_FUNCTIONS)}", span)
    if arg is None and func != "count":
        raise _fail(f"{func.upper()}(*) is not allowed; only COUNT(*)", span)
    if arg is not None:
        if E.contains_agg(arg):
            raise _fail("aggregate functions cannot be nested", span)
        if func in ("sum", "avg") and not (arg.dtype.is_numeric or arg.dtype is T.NULL):
            raise _fail(f"{func.upper()} needs a number, got {arg.dtype.value}", span)
    if distinct and func != "count":
        raise _fail(f"DISTINCT is supported in COUNT only, not in {func.upper()}", span)
    return E.Agg(func, arg, AGGREGATE_FUNCTIONS[func](arg.dtype if arg is not None else None), distinct, span=span)


def more_aggregate(info: MoreAggregate, arg: E.Expr, distinct: bool, span: Span | None, params: list[E.Expr]) -> E.Agg:
    """One of `ir.aggregates_more`'s aggregates: argument kind and the constant parameter checked."""
    name = info.name.upper()
    if E.contains_agg(arg):
        raise _fail("aggregate functions cannot be nested", span)
    if distinct:
        raise _fail(f"DISTINCT is supported in COUNT only, not in {name}", span)
    if not _KIND_OK[info.arg](arg.dtype):
        raise _fail(
            f"{name} needs {'a number' if info.arg == 'numeric' else 'a ' + info.arg}, got {arg.dtype.value}", span
        )
    if arg.dtype.is_list:
        raise _fail(f"{name} of a list ({arg.dtype.value}) is not supported", span)
    param: float | str | None = "," if info.param == "separator" else None
    if params:
        given = params[0]
        if not isinstance(given, E.Literal) or given.value is None:
            raise _fail(f"{name}'s second argument must be a constant", span)
        if info.param == "fraction":
            if not given.dtype.is_numeric or not 0 <= float(given.value) <= 1:
                raise _fail(f"{name}'s second argument must be a number from 0 to 1, got {E.render(given)}", span)
            param = float(given.value)
        else:
            if given.dtype is not T.STRING:
                raise _fail(f"{name}'s separator must be a string, got {E.render(given)}", span)
            param = str(given.value)
    return E.Agg(info.name, arg, info.returns(arg.dtype), False, span=span, param=param)
