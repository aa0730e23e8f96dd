"""CAST to and from list types: element by element with the scalar rules of `to_polars_cast`.

An element that does not convert fails the cast as a scalar would (CastFailure:
the row goes to dead letters, or the query stops in strict mode). A list as
STRING is DuckDB's text: `[1, 2, NULL]`. A STRING cannot be cast to a list
here (DuckDB parses its own list syntax, `'[1, 2]'::INT[]`): not supported.
"""

from __future__ import annotations

import polars as pl

from stream_dsl.ir.to_polars_checks import CastFailure
from stream_dsl.ir.types import DataType

T = DataType


def cast_list(x: pl.Expr, source: DataType, target: DataType) -> pl.Expr:
    from stream_dsl.ir.to_polars_cast import cast, to_string

    if source.is_list and target.is_list:
        if source.element is T.NULL:
            return x.cast(target.polars)
        return x.list.eval(cast(pl.element(), source.element, target.element))
    if source.is_list and target is T.STRING:
        texts = x.list.eval(to_string(pl.element(), source.element).fill_null("NULL"))
        return pl.concat_str([pl.lit("["), texts.list.join(", "), pl.lit("]")])
    raise CastFailure(f"cannot CAST {source.value} to {target.value}")
