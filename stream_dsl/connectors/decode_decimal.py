"""DECIMAL columns read exactly: from JSON numbers as their text, never through a float.

Polars reads a JSON number as a float (or refuses it for a Decimal column),
which loses digits beyond 15 or so. So the numbers of DECIMAL columns are
quoted in the text first (`"x": 12.345` becomes `"x": "12.345"`), read as
strings and converted by `decimals.from_text` with DuckDB's rounding.
"""

from __future__ import annotations

import re

import polars as pl

from stream_dsl.ir import decimals
from stream_dsl.ir.types import DataType

_NUMBER = rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"


def decimal_columns(read_schema: dict[str, pl.DataType]) -> list[str]:
    return [name for name, dtype in read_schema.items() if isinstance(dtype, pl.Decimal)]


def quote_numbers(data: bytes, names: list[str]) -> bytes:
    """`data` with the JSON numbers of keys `names` written as strings (a key inside a string is left alone)."""
    keys = b"|".join(re.escape(name.encode()) for name in names)
    pattern = re.compile(rb'((?<!\\)"(?:' + keys + rb')"\s*:\s*)(' + _NUMBER + rb")(?=\s*[,}])")
    return pattern.sub(rb'\1"\2"', data)


def as_text_schema(read_schema: dict[str, pl.DataType]) -> dict[str, pl.DataType]:
    return {name: pl.String() if isinstance(dtype, pl.Decimal) else dtype for name, dtype in read_schema.items()}


def from_text(values: pl.Series, dtype: DataType) -> pl.Series:
    """Text → DECIMAL exactly (NULL where it is not a number or does not fit)."""
    return values.to_frame().select(decimals.from_text(pl.col(values.name), dtype)).to_series().alias(values.name)
