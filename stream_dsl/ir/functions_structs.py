"""STRUCT functions (STRUCT_EXTRACT, STRUCT_PACK) and the polars code of struct field access and casts.

A STRUCT is polars' Struct. Its field types depend on the field a call names,
which the argument types alone cannot say: `typecheck.function` asks `bind_call`
here for those calls.
"""

from __future__ import annotations

from typing import Any, Callable

import polars as pl

from stream_dsl.ir.types import DataType, struct_of

T = DataType


def field_named(dtype: DataType, name: str) -> str | None:
    """The STRUCT field `name` stands for (exact, else the one that matches ignoring case), or None."""
    names = [f for f, _ in dtype.fields]
    if name in names:
        return name
    found = [f for f in names if f.lower() == name.lower()]
    return found[0] if len(found) == 1 else None


def _literal_text(e: pl.Expr) -> str:
    return str(pl.select(e).item())


def _extract(s: pl.Expr, name: pl.Expr) -> pl.Expr:
    return s.struct.field(_literal_text(name))


def _pack(*pairs: pl.Expr) -> pl.Expr:
    """named_struct('a', x, 'b', y): the fields in order (a struct of NULL fields is not NULL)."""
    names = [_literal_text(n) for n in pairs[0::2]]
    values = [v.alias(n) for n, v in zip(names, pairs[1::2])]
    return pl.struct(values)


def cast_struct(x: pl.Expr, source: DataType, target: DataType, cast: Callable[..., pl.Expr]) -> pl.Expr:
    """CAST between STRUCTs by field name, as DuckDB: a target field the source lacks is NULL, extra ones go."""
    sources = dict(source.fields)
    fields = []
    for name, dtype in target.fields:
        found = field_named(source, name)
        if found is None:
            fields.append(pl.lit(None, dtype=dtype.polars).alias(name))
        else:
            fields.append(cast(x.struct.field(found), sources[found], dtype).alias(name))
    return pl.when(x.is_null()).then(None).otherwise(pl.struct(fields)).cast(target.polars)


def _bound_by_the_call(types: list[DataType]) -> DataType:  # `bind_call` gives the type: it needs the names
    return T.NULL


def functions() -> list[Any]:
    from stream_dsl.ir.functions import ScalarFunction  # at call time: functions.py imports this module

    return [
        ScalarFunction(
            "struct_extract",
            ("any", "string"),
            _bound_by_the_call,
            _extract,
            doc="the field of a STRUCT named by a constant string; NULL where the struct is NULL (as s.field)",
            signature="struct_extract(s STRUCT, name STRING constant) -> the field's type",
            example="struct_extract(named_struct('a', 1), 'a') = 1",
            nulls="NULL where the struct or the field is NULL",
        ),
        ScalarFunction(
            "named_struct",
            ("string", "any"),
            _bound_by_the_call,
            _pack,
            variadic=True,
            min_args=2,
            doc="a STRUCT of the given fields, as name/value pairs (the names constant strings)",
            signature="named_struct(name STRING constant, value ANY, ...) -> STRUCT(name type, ...)",
            example="named_struct('a', 1, 'b', 'x') = {'a': 1, 'b': x}",
            nulls="never NULL; a NULL value is a NULL field",
        ),
    ]


ALIASES: dict[str, str] = {"struct_pack": "named_struct"}


def bind_call(name: str, args: list[Any], problem: Callable[[str], Exception]) -> tuple[tuple[Any, ...], DataType]:
    """The arguments and result type of a STRUCT function call, or `problem(message)` raised."""
    from stream_dsl.ir import expr as E

    if name == "struct_extract":
        value, field = args
        if not (isinstance(field, E.Literal) and isinstance(field.value, str)):
            raise problem("STRUCT_EXTRACT: the field name must be a constant string")
        if value.dtype is T.NULL:
            return (value, field), T.NULL
        if not value.dtype.is_struct:
            raise problem(f"STRUCT_EXTRACT needs a STRUCT, got {value.dtype.value}")
        found = field_named(value.dtype, field.value)
        if found is None:
            from stream_dsl.errors import did_you_mean

            names = [f for f, _ in value.dtype.fields]
            hint = did_you_mean(field.value, names) or f" (its fields: {', '.join(names)})"
            raise problem(f"{value.dtype.value} has no field '{field.value}'{hint}")
        return (value, E.Literal(found, T.STRING)), dict(value.dtype.fields)[found]
    if len(args) % 2:
        raise problem("NAMED_STRUCT takes name/value pairs: an even number of arguments")
    names = args[0::2]
    if not all(isinstance(n, E.Literal) and isinstance(n.value, str) for n in names):
        raise problem("NAMED_STRUCT: each field name must be a constant string")
    try:
        dtype = struct_of((n.value, v.dtype) for n, v in zip(names, args[1::2]))
    except TypeError as e:
        raise problem(f"NAMED_STRUCT: {e}") from None
    return tuple(args), dtype


BOUND_HERE = frozenset({"struct_extract", "named_struct"})
