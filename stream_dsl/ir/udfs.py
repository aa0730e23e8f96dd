"""Python UDFs: the registry of user functions, scalar and aggregate, and how they travel to workers.

`Context.register_function` and `Context.register_aggregate` put a
`PythonFunction` or `PythonAggregate` here under its lower-case name. The
binder looks names up here after the built-in functions, and puts the
object itself into the bound expression (`Func.udf`, `Agg.udf`), so the
plan carries its functions: a worker gets them with the stage programs in
the query's one `Setup` message, never per batch or per task.

Messages are pickled with the standard `pickle`, which cannot pickle a
lambda or a closure; so a UDF pickles its callables with `dill` (what
`multiprocess` uses), by value when they cannot be imported by name.
`SERIALIZED` counts those serializations per name (tests check that a
query ships each UDF once per worker, whatever its number of batches).

Names are global to the Python process, like the `python` connector's ids:
registering a name again replaces the function for queries bound later.
"""

from __future__ import annotations

import collections
import inspect
import threading
from dataclasses import dataclass
from typing import Any, Callable

import dill  # type: ignore[import-untyped]  # multiprocess's serializer, no stubs
import polars as pl

from stream_dsl.errors import DSLError
from stream_dsl.ir.types import DataType, type_from_name, type_from_polars

SERIALIZED: collections.Counter[str] = collections.Counter()
_LOCK = threading.Lock()


def _loads(data: bytes) -> Any:
    return dill.loads(data)


def _dumps(name: str, state: dict[str, Any]) -> bytes:
    with _LOCK:
        SERIALIZED[name] += 1
    return dill.dumps(state, recurse=True)


@dataclass(frozen=True, eq=False)
class PythonFunction:
    """A scalar UDF: `fn(a, b, ...)` per row, or `fn(Series, ...) -> Series` per batch when `vectorized`.

    Equality is identity: two registrations are two functions even under one name.
    """

    name: str
    fn: Callable[..., Any]
    returns: DataType
    vectorized: bool = False
    deterministic: bool = True
    strict: bool = False
    skip_nulls: bool = True
    min_args: int = 0
    max_args: int | None = None  # None: any number (*args)
    doc: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (_dumps(self.name, _fields(self)), "scalar"))

    @property
    def signature(self) -> str:
        return f"{self.name}({_parameters(self.fn)}) -> {self.returns.value}"

    def accepts(self, n: int) -> bool:
        return self.min_args <= n and (self.max_args is None or n <= self.max_args)


@dataclass(frozen=True, eq=False)
class PythonAggregate:
    """An aggregate UDF in four parts: `init() -> state`, `update(state, value) -> state`,
    `merge(state, state) -> state` and `finish(state) -> value`. The state must be picklable (by dill)."""

    name: str
    init: Callable[[], Any]
    update: Callable[[Any, Any], Any]
    merge: Callable[[Any, Any], Any]
    finish: Callable[[Any], Any]
    returns: DataType
    skip_nulls: bool = True
    doc: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (_dumps(self.name, _fields(self)), "aggregate"))

    @property
    def signature(self) -> str:
        return f"{self.name}(x ANY) -> {self.returns.value}"


def _fields(udf: PythonFunction | PythonAggregate) -> dict[str, Any]:
    return {f: getattr(udf, f) for f in udf.__dataclass_fields__}


def _restore(data: bytes, kind: str) -> PythonFunction | PythonAggregate:
    state = _loads(data)
    return PythonFunction(**state) if kind == "scalar" else PythonAggregate(**state)


def _parameters(fn: Callable[..., Any]) -> str:
    """`fn`'s parameters as written, annotations bare (`x: int`, even under `from __future__ import annotations`)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return "..."
    return ", ".join(_parameter(p) for p in params)


def _parameter(p: inspect.Parameter) -> str:
    stars = "*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else ""
    text = stars + p.name
    if p.annotation is not p.empty:
        ann = p.annotation
        text += ": " + (ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann)))
    if p.default is not p.empty:
        text += f" = {p.default!r}"
    return text


def arity(fn: Callable[..., Any]) -> tuple[int, int | None]:
    """How many positional arguments `fn` takes: (at least, at most or None for *args)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: any number
        return 0, None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    return len(required), None if variadic else len(positional)


def return_type(returns: Any, name: str) -> DataType:
    """A declared result type: an engine type name ('BIGINT', 'VARCHAR', ...), a DataType or a polars dtype."""
    if isinstance(returns, DataType) and returns not in (DataType.NULL, DataType.HUGEINT, DataType.BINARY):
        return returns
    if isinstance(returns, str):
        found = type_from_name(returns) or {"INTERVAL": DataType.INTERVAL}.get(returns.strip().upper())
        if found is not None:
            return found
    elif isinstance(returns, (pl.DataType, type)) and not isinstance(returns, DataType):
        try:
            return type_from_polars(returns() if isinstance(returns, type) else returns)
        except Exception:
            pass
    raise DSLError(
        f"function '{name}': returns={returns!r} is not a type; give a type name such as 'BIGINT', 'DOUBLE', "
        "'VARCHAR', 'BOOLEAN' or 'TIMESTAMP', or a stream_dsl DataType"
    )


# ---------------------------------------------------------------- the registry

_SCALARS: dict[str, PythonFunction] = {}
_AGGREGATES: dict[str, PythonAggregate] = {}


def _check_name(name: str) -> str:
    from stream_dsl.ir.functions import known_builtin

    key = name.lower()
    if not key.isidentifier():
        raise DSLError(f"a function name must be an identifier, got {name!r}")
    if known_builtin(key):
        raise DSLError(f"'{key}' is a built-in function: give the Python function another name")
    return key


def register_scalar(udf: PythonFunction) -> PythonFunction:
    key = _check_name(udf.name)
    with _LOCK:
        _AGGREGATES.pop(key, None)
        _SCALARS[key] = udf
    return udf


def register_aggregate(udf: PythonAggregate) -> PythonAggregate:
    key = _check_name(udf.name)
    with _LOCK:
        _SCALARS.pop(key, None)
        _AGGREGATES[key] = udf
    return udf


def scalar(name: str) -> PythonFunction | None:
    return _SCALARS.get(name.lower())


def aggregate(name: str) -> PythonAggregate | None:
    return _AGGREGATES.get(name.lower())


def names() -> list[str]:
    return sorted(set(_SCALARS) | set(_AGGREGATES))


def scalars() -> list[PythonFunction]:
    return [_SCALARS[n] for n in sorted(_SCALARS)]


def aggregates() -> list[PythonAggregate]:
    return [_AGGREGATES[n] for n in sorted(_AGGREGATES)]


def unregister(name: str) -> bool:
    """Forget a UDF; whether there was one."""
    with _LOCK:
        return _SCALARS.pop(name.lower(), None) is not None or _AGGREGATES.pop(name.lower(), None) is not None
