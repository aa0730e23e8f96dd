"""Python UDF calls as polars expressions, and what becomes of a row whose call raises.

A row-wise UDF runs once per row (`fn(a, b)`), a vectorized one once per
batch (`fn(Series, Series) -> Series`), both inside the task's polars
query (`map_batches` with the declared return type). A row whose call
raises, or returns a value that is not of the declared type:

- by default gets NULL as the function's value and becomes a dead letter
  (source 'udf:<name>', the function and its argument values, the
  exception); the query goes on. The executor takes the letters after each
  task (`take_letters`) and writes them with the batch's other dead letters.
- with `strict=True`, stops the query with a `UdfError` naming the
  function, the row and the exception.

A vectorized function that raises is called again one row at a time (a
Series of one value each) to find the rows that fail; the others keep their
values. Inside a CASE branch (or after a WHERE conjunct, AND/OR, COALESCE:
`to_polars_checks.GUARDS`) a UDF runs only for the rows that use its value,
so `CASE WHEN x <> 0 THEN inverse(x) END` never calls `inverse(0)`.
"""

from __future__ import annotations

import json
import threading
from functools import partial
from typing import Any, Sequence

import polars as pl

from stream_dsl.connectors.base import DeadLetter
from stream_dsl.errors import ExecutionError
from stream_dsl.ir.to_polars_checks import GUARDS
from stream_dsl.ir.udfs import PythonFunction

LETTER_SOURCE = "udf:"  # a UDF's dead letters have the source 'udf:<name>'
_LETTERS: list[DeadLetter] = []
_LOCK = threading.Lock()


class UdfError(ExecutionError):
    """A strict UDF raised (or returned a value of the wrong type) for a row; or an aggregate UDF raised."""

    def __str__(self) -> str:  # without what polars appends when the error passes through its query
        return super().__str__().split("\n\nThis error occurred")[0]


def take_letters() -> list[DeadLetter]:
    """The dead letters UDF calls made since the last call (each task's executor takes them after the task)."""
    with _LOCK:
        taken = list(_LETTERS)
        _LETTERS.clear()
    return taken


def compile_call(udf: PythonFunction, args: Sequence[pl.Expr], labels: Sequence[str]) -> pl.Expr:
    """The polars expression calling `udf` on `args` (`labels`: the arguments as query text, for messages)."""
    # One call per row even when every argument is a constant (seq(), f(1)): polars would call a function of
    # constants (a `repeat` included) once and broadcast the value; a column of row numbers it cannot.
    use = pl.repeat(True, pl.len()) if any(a.meta.root_names() for a in args) else pl.int_range(pl.len()) >= 0
    for guard in GUARDS.get():
        use = use & guard.fill_null(False)
    fields = [a.alias(f"a{i}") for i, a in enumerate(args)] + [use.alias("use")]
    run = _run_vectorized if udf.vectorized else _run_rows
    return pl.struct(fields).map_batches(
        partial(run, udf, tuple(labels)), return_dtype=udf.returns.polars, is_elementwise=True
    )


def _columns(batch: pl.Series, n: int) -> tuple[list[pl.Series], list[bool]]:
    frame = batch.struct.unnest()
    return [frame.get_column(f"a{i}") for i in range(n)], frame.get_column("use").fill_null(False).to_list()


def _run_rows(udf: PythonFunction, labels: tuple[str, ...], batch: pl.Series) -> pl.Series:
    columns, use = _columns(batch, len(labels))
    rows = list(zip(*(c.to_list() for c in columns))) if columns else [()] * len(use)
    fn, skip = udf.fn, udf.skip_nulls
    out: list[Any] = []
    append = out.append
    for used, args in zip(use, rows):
        if not used or (skip and None in args):
            append(None)
            continue
        try:
            append(fn(*args))
        except Exception as exc:
            _failed(udf, labels, list(args), f"{type(exc).__name__}: {exc}", exc)
            append(None)
    return _typed(udf, labels, out, rows, batch.name)


def _run_vectorized(udf: PythonFunction, labels: tuple[str, ...], batch: pl.Series) -> pl.Series:
    columns, use = _columns(batch, len(labels))
    rows = [i for i, u in enumerate(use) if u]
    dtype = udf.returns.polars
    if not rows:
        return pl.Series(batch.name, [None] * len(use), dtype=dtype)
    picked = columns if len(rows) == len(use) else [c.gather(rows) for c in columns]
    try:
        result = _call_vectorized(udf, picked, len(rows))
    except Exception:
        if udf.strict and len(rows) == 1:
            raise
        result = _row_by_row(udf, labels, picked)
    if len(rows) == len(use):
        return result.rename(batch.name)
    out: list[Any] = [None] * len(use)
    for i, value in zip(rows, result.to_list()):
        out[i] = value
    return pl.Series(batch.name, out, dtype=dtype)


def _call_vectorized(udf: PythonFunction, columns: list[pl.Series], n: int) -> pl.Series:
    result = udf.fn(*columns)
    if not isinstance(result, pl.Series):
        result = pl.Series(list(result) if not isinstance(result, (str, bytes)) else [result])
    if len(result) != n:
        raise UdfError(f"vectorized function {udf.name} returned {len(result)} values for {n} rows")
    return result.cast(udf.returns.polars, strict=True)


def _row_by_row(udf: PythonFunction, labels: tuple[str, ...], columns: list[pl.Series]) -> pl.Series:
    """A vectorized call that failed, again one row at a time: the failing rows become dead letters."""
    out: list[Any] = []
    for row in range(len(columns[0]) if columns else 0):
        one = [c.slice(row, 1) for c in columns]
        try:
            out.append(_call_vectorized(udf, one, 1)[0])
        except UdfError:
            raise
        except Exception as exc:
            _failed(udf, labels, [c[0] for c in one], f"{type(exc).__name__}: {exc}", exc)
            out.append(None)
    return pl.Series("", out, dtype=udf.returns.polars)


def _typed(
    udf: PythonFunction, labels: tuple[str, ...], values: list[Any], args: list[tuple[Any, ...]], name: str
) -> pl.Series:
    """The values as a Series of the declared type; a value that is not of it fails its row."""
    dtype = udf.returns.polars
    try:
        return pl.Series(name, values, dtype=dtype, strict=True)
    except Exception:
        pass
    for row, value in enumerate(values):
        if value is None:
            continue
        try:
            pl.Series("", [value], dtype=dtype, strict=True)
        except Exception:
            reason = f"returned {value!r} ({type(value).__name__}), not a {udf.returns.value}"
            _failed(udf, labels, list(args[row]), reason, None)
            values[row] = None
    return pl.Series(name, values, dtype=dtype, strict=True)


def _failed(udf: PythonFunction, labels: tuple[str, ...], args: list[Any], reason: str, exc: Exception | None) -> None:
    row = _row_text(labels, args)
    if udf.strict:
        raise UdfError(f"function {udf.name} failed for the row {row}: {reason}") from exc
    letter = DeadLetter(LETTER_SOURCE + udf.name, f"function {udf.name}", row, f"{udf.name} {_lower_first(reason)}")
    with _LOCK:
        _LETTERS.append(letter)


def _lower_first(reason: str) -> str:
    return reason if reason.startswith("returned") else "raised " + reason


def _row_text(labels: tuple[str, ...], args: list[Any]) -> str:
    """The argument values as a JSON object, keyed by the arguments' query text."""
    return json.dumps(dict(zip(_unique(labels), args)), default=repr, ensure_ascii=False)


def _unique(labels: tuple[str, ...]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return out
