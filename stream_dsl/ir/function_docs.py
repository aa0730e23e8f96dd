"""What SHOW FUNCTIONS and DESCRIBE FUNCTION print, read from the function registry itself.

Every row comes from `SCALAR_FUNCTIONS`, `AGGREGATE_FUNCTIONS`,
`WINDOW_FUNCTIONS` or an alias table of `stream_dsl.ir.functions`, so a
function is listed exactly when the binder accepts its name.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import polars as pl

from stream_dsl.ir.functions import (
    AGGREGATE_ALIASES,
    AGGREGATE_FUNCTIONS,
    FUNCTION_ALIASES,
    SCALAR_FUNCTIONS,
    WINDOW_FUNCTIONS,
    ScalarFunction,
)
from stream_dsl.ir.aggregates_more import MORE_AGGREGATES
from stream_dsl.ir.types import DataType, list_of

T = DataType


@dataclass(frozen=True)
class FunctionDoc:
    name: str
    kind: str  # 'scalar', 'aggregate' or 'window'
    signature: str
    description: str
    example: str = ""
    nulls: str = ""
    alias_of: str | None = None
    state: str = ""  # an aggregate's state per group, and how it splits into two phases
    docstring: str = ""  # a Python UDF's docstring, whole (DESCRIBE FUNCTION)


_AGGREGATES = {
    "count": ("count(*) | count([DISTINCT] x ANY) -> BIGINT", "rows, or non-NULL values of x", "NULLs not counted"),
    "sum": (
        "sum(x NUMERIC) -> BIGINT | DOUBLE | DECIMAL(38, s) of a DECIMAL(p, s)",
        "the sum",
        "NULLs skipped; NULL over no values",
    ),
    "avg": ("avg(x NUMERIC) -> DOUBLE", "the mean", "NULLs skipped; NULL over no values"),
    "min": ("min(x ANY) -> same type", "the smallest value", "NULLs skipped; NULL over no values"),
    "max": ("max(x ANY) -> same type", "the largest value", "NULLs skipped; NULL over no values"),
}
_MORE = list(MORE_AGGREGATES.values())
_WINDOWS = {
    "tumble": ("tumble(ts TIMESTAMP, size INTERVAL)", "fixed, non-overlapping windows (in GROUP BY)"),
    "hop": ("hop(ts TIMESTAMP, slide INTERVAL, size INTERVAL)", "sliding windows (in GROUP BY)"),
    "session": ("session(ts TIMESTAMP, gap INTERVAL)", "windows closed by a gap in activity (in GROUP BY)"),
    "cumulate": (
        "cumulate(ts TIMESTAMP, step INTERVAL, max_size INTERVAL)",
        "windows growing by step from a common start up to max_size (in GROUP BY)",
    ),
}
_UNNEST = FunctionDoc(
    "unnest",
    "table",
    "unnest(a T[]) -> a row per element, T (FROM s CROSS JOIN UNNEST(a) AS t(x), or a whole select item)",
    "a row per element of the list: the row's other columns repeated (bind/unnest.py)",
    "SELECT k, x FROM s CROSS JOIN UNNEST(s.tags) WITH ORDINALITY AS t(x, i); SELECT UNNEST([1, 2])",
    "an empty or NULL list gives no row; LEFT JOIN UNNEST(a) ON TRUE gives one row with a NULL element",
)
_KIND_NAMES = {
    "numeric": "NUMERIC",
    "string": "STRING",
    "timestamp": "TIMESTAMP",
    "integer": "BIGINT",
    "interval": "INTERVAL",
    "any": "ANY",
    "list": "T[]",
}
_SAMPLE = {
    "numeric": T.DOUBLE,
    "string": T.STRING,
    "timestamp": T.TIMESTAMP,
    "integer": T.BIGINT,
    "interval": T.INTERVAL,
    "any": T.STRING,
    "list": list_of(T.STRING),
}


def signature(fn: ScalarFunction) -> str:
    if fn.signature:
        return fn.signature
    low = len(fn.args) if fn.min_args is None else fn.min_args
    kinds = [_KIND_NAMES[k] for k in fn.args]
    shown = ", ".join(kinds[:low])
    if len(kinds) > low:
        shown += ("[, " if low else "[") + ", ".join(kinds[low:]) + "]"
    if fn.variadic:
        shown += ", ..."
    as_double = fn.returns([_SAMPLE[k] for k in fn.args] or [T.NULL])
    as_bigint = fn.returns([T.BIGINT if k == "numeric" else _SAMPLE[k] for k in fn.args] or [T.NULL])
    result = as_double.value if as_double is as_bigint else "same type as the argument"
    return f"{fn.name}({shown}) -> {result}"


def _scalar(fn: ScalarFunction) -> FunctionDoc:
    return FunctionDoc(fn.name, "scalar", signature(fn), fn.doc or fn.name, fn.example, fn.nulls)


def all_docs() -> list[FunctionDoc]:
    """Every name the binder accepts as a function: scalars, aggregates, windows and their aliases."""
    docs = [_scalar(f) for f in SCALAR_FUNCTIONS.values()]
    docs += [FunctionDoc(n, "aggregate", sig, desc, nulls=nulls) for n, (sig, desc, nulls) in _AGGREGATES.items()]
    docs += [
        FunctionDoc(a.name, "aggregate", a.signature, a.description, a.example, a.nulls, state=a.state) for a in _MORE
    ]
    docs += [FunctionDoc(n, "window", sig, desc) for n, (sig, desc) in _WINDOWS.items()]
    docs.append(_UNNEST)
    by_name = {d.name: d for d in docs}
    for alias, target in (FUNCTION_ALIASES | AGGREGATE_ALIASES).items():
        doc = by_name[target]
        docs.append(
            FunctionDoc(
                alias, doc.kind, doc.signature, f"the same as {target}", doc.example, doc.nulls, target, doc.state
            )
        )
    assert set(AGGREGATE_FUNCTIONS) == set(_AGGREGATES) | set(MORE_AGGREGATES)
    assert set(WINDOW_FUNCTIONS) == set(_WINDOWS)
    return sorted(docs + python_docs(), key=lambda d: d.name)


def python_docs() -> list[FunctionDoc]:
    """The registered Python UDFs (`stream_dsl.ir.udfs`), of kind 'python scalar' or 'python aggregate'."""
    from stream_dsl.ir import udfs

    docs = []
    for fn in udfs.scalars():
        how = "vectorized over polars Series" if fn.vectorized else "called once per row"
        flags = "" if fn.deterministic else ", not deterministic"
        text = _first_line(fn.doc) or f"Python function {fn.name}"
        nulls = "NULL if any argument is NULL (not called)" if fn.skip_nulls and not fn.vectorized else "as fn does"
        docs.append(
            FunctionDoc(fn.name, "python scalar", fn.signature, f"{text} ({how}{flags})", "", nulls, docstring=fn.doc)
        )
    for agg in udfs.aggregates():
        text = _first_line(agg.doc) or f"Python aggregate {agg.name}"
        nulls = "NULLs skipped (update not called)" if agg.skip_nulls else "update sees NULLs"
        docs.append(FunctionDoc(agg.name, "python aggregate", agg.signature, text, "", nulls, docstring=agg.doc))
    return docs


def _first_line(doc: str) -> str:
    return doc.strip().splitlines()[0].strip() if doc.strip() else ""


def find(name: str) -> FunctionDoc | None:
    return next((d for d in all_docs() if d.name == name.lower()), None)


def show_functions() -> pl.DataFrame:
    """SHOW FUNCTIONS: one row per name, with its kind, signature and one line of description."""
    docs = all_docs()
    return pl.DataFrame(
        {
            "name": [d.name for d in docs],
            "kind": [d.kind for d in docs],
            "signature": [d.signature for d in docs],
            "description": [d.description for d in docs],
        },
        schema={"name": pl.String, "kind": pl.String, "signature": pl.String, "description": pl.String},
    )


def describe_function(name: str) -> pl.DataFrame:
    """DESCRIBE FUNCTION f: a (property, value) row each for its signature, description, example, NULLs."""
    doc = find(name)
    assert doc is not None, name  # the binder checked the name
    rows = [
        ("name", doc.name),
        ("kind", doc.kind),
        ("signature", doc.signature),
        ("description", doc.description),
        ("example", doc.example),
        ("nulls", doc.nulls),
    ]
    if doc.state:
        rows.append(("state", doc.state))
    if doc.alias_of:
        rows.append(("alias of", doc.alias_of))
    if doc.kind.startswith("python"):
        rows.append(("docstring", inspect.cleandoc(doc.docstring)))
    return pl.DataFrame(
        {"property": [r[0] for r in rows], "value": [r[1] for r in rows]},
        schema={"property": pl.String, "value": pl.String},
    )
