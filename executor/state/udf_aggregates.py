"""Aggregate UDFs as polars expressions over their pickled state (one BINARY column per aggregate).

An aggregate UDF is `init() -> state`, `update(state, x) -> state`,
`merge(state, state) -> state` and `finish(state) -> value`
(stream_dsl/ir/udfs.py). Its partial state is `init()` updated with a
group's values, pickled by dill into the state column
`udf_state_col(i)`; so it takes the same paths as a built-in aggregate's
state: grouped per batch on the map side (`batch_partial`), shuffled as
Arrow bytes, merged on the reduce side (`merge`), kept in checkpoints, and
read by `finish` when the group is emitted (`final`). NULL values are
skipped (update is not called for them) unless the UDF was registered
with skip_nulls=False. A UDF part that raises stops the query with an
error naming the aggregate and the part (an aggregate has no single row
to send to dead letters).
"""

from __future__ import annotations

import pickle
from functools import partial, reduce
from typing import Any, Callable

import dill  # type: ignore[import-untyped]  # multiprocess's serializer, no stubs
import polars as pl

from stream_dsl.ir.udf_polars import UdfError
from stream_dsl.ir.udfs import PythonAggregate

_STATE = pl.Binary()


def _call(udf: PythonAggregate, part: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as exc:
        shown = ", ".join(_short(a) for a in args)
        raise UdfError(f"aggregate {udf.name}: {part}({shown}) raised {type(exc).__name__}: {exc}") from exc


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _dumps(udf: PythonAggregate, state: Any) -> bytes:
    """The state pickled: by the standard pickle (5x faster) when it can, else by dill (lambdas, closures)."""
    try:
        return pickle.dumps(state, protocol=5)
    except Exception:
        pass
    try:
        return dill.dumps(state, recurse=True)
    except Exception as exc:
        raise UdfError(f"aggregate {udf.name}: its state {_short(state)} cannot be pickled: {exc}") from exc


def _fold(udf: PythonAggregate, values: list[Any]) -> Any:
    state = _call(udf, "init", udf.init)
    for value in values:
        if value is None and udf.skip_nulls:
            continue
        state = _call(udf, "update", udf.update, state, value)
    return state


def _group_state(udf: PythonAggregate, values: pl.Series) -> pl.Series:
    return pl.Series([_dumps(udf, _fold(udf, values.to_list()))], dtype=_STATE)


def _row_states(udf: PythonAggregate, values: pl.Series) -> pl.Series:
    return pl.Series(values.name, [_dumps(udf, _fold(udf, [v])) for v in values.to_list()], dtype=_STATE)


def _merged(udf: PythonAggregate, states: pl.Series) -> pl.Series:
    loaded = [pickle.loads(b) for b in states.to_list() if b is not None]
    if not loaded:
        return pl.Series([_dumps(udf, _call(udf, "init", udf.init))], dtype=_STATE)
    return pl.Series([_dumps(udf, reduce(lambda a, b: _call(udf, "merge", udf.merge, a, b), loaded))], dtype=_STATE)


def _finished(udf: PythonAggregate, states: pl.Series) -> pl.Series:
    values = [None if b is None else _call(udf, "finish", udf.finish, pickle.loads(b)) for b in states.to_list()]
    try:
        return pl.Series(states.name, values, dtype=udf.returns.polars, strict=True)
    except Exception as exc:
        raise UdfError(f"aggregate {udf.name}: finish returned values that are not {udf.returns.value}: {exc}") from exc


def batch_partial(udf: PythonAggregate, x: pl.Expr) -> pl.Expr:
    """A group's partial state from its rows' values (in a group_by's agg)."""
    return x.map_batches(partial(_group_state, udf), return_dtype=_STATE, returns_scalar=True)


def row_partial(udf: PythonAggregate, x: pl.Expr) -> pl.Expr:
    """Each row's own partial state (sessions merge these)."""
    return x.map_batches(partial(_row_states, udf), return_dtype=_STATE, is_elementwise=True)


def merge(udf: PythonAggregate, state: pl.Expr) -> pl.Expr:
    """Partial states of one group merged into one (in a group_by's agg)."""
    return state.map_batches(partial(_merged, udf), return_dtype=_STATE, returns_scalar=True)


def final(udf: PythonAggregate, state: pl.Expr) -> pl.Expr:
    """Each group's value: `finish` of its state."""
    return state.map_batches(partial(_finished, udf), return_dtype=udf.returns.polars, is_elementwise=True)
