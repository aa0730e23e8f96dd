"""Registering Python UDFs, and calling them from the dataframe API (docs/udfs.md).

>>> import stream_dsl as sd
>>> ctx = sd.Context(executor="inline")
>>> double = ctx.register_function("double_it", lambda x: 2 * x, returns="BIGINT")
>>> double(sd.col("x"))
<Expr DOUBLE_IT(x)>
>>> sd.udf("double_it")(sd.col("x") + 1)
<Expr DOUBLE_IT(x + 1)>
"""

from __future__ import annotations

from typing import Any, Callable, cast

from stream_dsl.errors import DSLError
from stream_dsl.frame.expr import Expr, func
from stream_dsl.ir import udfs


class UdfCaller:
    """What `register_function` and `register_aggregate` return: call it on expressions to use the UDF.

    `caller(sd.col("x"), 2)` is `sd.udf(name)(sd.col("x"), 2)`: strings are
    text literals, as in `sd.func`; name columns with `sd.col`.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any) -> Expr:
        return func(self.name, *args)

    def __repr__(self) -> str:
        return f"<Python UDF {self.name}>"


def udf(name: str) -> UdfCaller:
    """A registered UDF by name, to call on expressions: `sd.udf("score")(sd.col("x"))`."""
    if udfs.scalar(name) is None and udfs.aggregate(name) is None:
        from stream_dsl.errors import did_you_mean

        raise DSLError(f"no Python function '{name}' is registered{did_you_mean(name.lower(), udfs.names())}")
    return UdfCaller(name.lower())


class Functions:
    """`ctx.functions.<name>(...)`: the registered UDFs as attributes."""

    def __getattr__(self, name: str) -> UdfCaller:
        if name.startswith("_"):
            raise AttributeError(name)
        return udf(name)

    def __dir__(self) -> list[str]:
        return udfs.names()


def register_function(
    name: str,
    fn: Callable[..., Any],
    returns: Any,
    *,
    vectorized: bool = False,
    deterministic: bool = True,
    strict: bool = False,
    skip_nulls: bool = True,
) -> UdfCaller:
    """See `Context.register_function`."""
    if not callable(fn):
        raise DSLError(f"function '{name}': expected a callable, got {type(fn).__name__}")
    low, high = udfs.arity(fn)
    udf_ = udfs.PythonFunction(
        name.lower(),
        fn,
        udfs.return_type(returns, name),
        vectorized=vectorized,
        deterministic=deterministic,
        strict=strict,
        skip_nulls=skip_nulls,
        min_args=low,
        max_args=high,
        doc=getattr(fn, "__doc__", None) or "",
    )
    udfs.register_scalar(udf_)
    return UdfCaller(udf_.name)


def register_aggregate(
    name: str,
    init: Any,
    update: Callable[[Any, Any], Any] | None = None,
    merge: Callable[[Any, Any], Any] | None = None,
    finish: Callable[[Any], Any] | None = None,
    *,
    returns: Any,
    skip_nulls: bool = True,
) -> UdfCaller:
    """See `Context.register_aggregate`."""
    parts: tuple[Any, ...]
    if update is None and merge is None and finish is None:  # a class (or object) with the four methods
        obj = init() if isinstance(init, type) else init
        missing = [m for m in ("init", "update", "merge", "finish") if not callable(getattr(obj, m, None))]
        if missing:
            raise DSLError(f"aggregate '{name}': {obj!r} has no {', '.join(missing)} method(s)")
        parts = (obj.init, obj.update, obj.merge, obj.finish)
        doc = getattr(obj, "__doc__", None) or ""
    else:
        parts = (init, update, merge, finish)
        if not all(callable(p) for p in parts):
            raise DSLError(f"aggregate '{name}': init, update, merge and finish must all be callables")
        doc = getattr(init, "__doc__", None) or ""
    init_, update_, merge_, finish_ = cast(tuple[Any, Any, Any, Any], parts)
    agg = udfs.PythonAggregate(
        name.lower(), init_, update_, merge_, finish_, udfs.return_type(returns, name), skip_nulls, doc
    )
    udfs.register_aggregate(agg)
    return UdfCaller(agg.name)
