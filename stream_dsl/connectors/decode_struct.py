"""Convert a column read from a file (parquet struct, JSON object) into a declared STRUCT, field by field.

As DuckDB reads nested data: fields match by name (exact, else ignoring case), a
field the record lacks is NULL, extra ones are ignored, and a field value that
does not convert makes the whole record a dead letter (as a scalar column's does).
"""

from __future__ import annotations

from typing import Callable

import polars as pl

from stream_dsl.ir.types import DataType

Convert = Callable[[pl.Series, DataType], pl.Series]  # a scalar column as a type, NULL where it does not convert


def _match(name: str, names: list[str]) -> str | None:
    if name in names:
        return name
    found = [n for n in names if n.lower() == name.lower()]
    return found[0] if len(found) == 1 else None


def convert_struct(s: pl.Series, dtype: DataType, convert: Convert) -> tuple[pl.Series, pl.Series]:
    """`s` as the STRUCT `dtype`, and per row whether some value in it failed to convert."""
    if not isinstance(s.dtype, pl.Struct):
        return pl.Series(s.name, [None] * len(s), dtype=dtype.polars), s.is_not_null()
    names = [f.name for f in s.dtype.fields]
    failed = pl.Series([False] * len(s))
    fields = []
    for name, field_type in dtype.fields:
        found = _match(name, names)
        if found is None:
            fields.append(pl.Series(name, [None] * len(s), dtype=field_type.polars))
            continue
        raw = s.struct.field(found)
        if field_type.is_struct:
            converted, bad = convert_struct(raw, field_type, convert)
        else:
            converted = convert(raw, field_type)
            bad = converted.is_null() & raw.is_not_null()
        failed = failed | bad.fill_null(False)
        fields.append(converted.alias(name))
    packed = pl.DataFrame(fields).select(pl.struct(pl.all()).alias(s.name)).to_series() if fields else s
    packed = pl.select(pl.when(s.is_not_null()).then(packed).otherwise(None).alias(s.name)).to_series()
    return packed.cast(dtype.polars), failed & s.is_not_null()


def struct_problem(value: object, dtype: DataType, convert: Convert) -> str:
    """Why one struct value does not convert: the (nested) field that fails and its value."""
    if not isinstance(value, dict):
        return f"expected {dtype.value}, got {value!r}"
    for name, field_type in dtype.fields:
        found = _match(name, list(value))
        if found is None or value[found] is None:
            continue
        inner = value[found]
        if field_type.is_struct:
            if not isinstance(inner, dict):
                return f"field '{name}': expected {field_type.value}, got {inner!r}"
            one = pl.Series([inner])
            if convert_struct(one, field_type, convert)[1].any():
                return f"field '{name}': " + struct_problem(inner, field_type, convert)
            continue
        if convert(pl.Series([inner]), field_type).is_null().any():
            return f"field '{name}': cannot convert {inner!r} to {field_type.value}"
    return f"cannot convert {value!r} to {dtype.value}"
