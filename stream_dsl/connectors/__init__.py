"""The connector registry: a connector name → the module that implements it.

Modules are imported lazily, the first time a query uses them. A module
exposes any of `make_source(definition) -> Source`, `make_table(definition)
-> TableSource` and `make_sink(definition) -> Sink` (see `base.py`); the
`connector` option of a SourceDef or SinkDef picks the module.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Callable

from stream_dsl.connectors.base import Sink, Source, TableSource
from stream_dsl.errors import ConnectorError, did_you_mean
from stream_dsl.ir.definitions import SinkDef, SourceDef

# the connectors stream-dsl ships (worker fork servers import them once: `executor/multiproc/runtime.py`)
BUILT_IN_CONNECTORS: dict[str, str] = {
    "memory": "stream_dsl.connectors.memory",
    "files": "stream_dsl.connectors.files",
    "generator": "stream_dsl.connectors.generator",
    "console": "stream_dsl.connectors.console",
    "redis": "stream_dsl.connectors.redis_streams",
    "kafka": "stream_dsl.connectors.kafka",
    "socket": "stream_dsl.connectors.socket_source",
    "python": "stream_dsl.connectors.python_io",
    "one_row": "stream_dsl.connectors.one_row",  # the relation of a SELECT without FROM
}
CONNECTORS: dict[str, str] = dict(BUILT_IN_CONNECTORS)


def register_connector(name: str, module: str) -> None:
    """Make `connector = 'name'` load `module` (an import path)."""
    CONNECTORS[name] = module


def connector_module(name: str | None, what: str) -> ModuleType:
    """The module for connector `name`; ConnectorError naming the known ones when there is none."""
    known = ", ".join(sorted(CONNECTORS))
    if not name:
        raise ConnectorError(f"{what} has no 'connector' option; known connectors: {known}")
    path = CONNECTORS.get(name.lower())
    if path is None:
        raise ConnectorError(
            f"unknown connector '{name}' for {what}{did_you_mean(name, CONNECTORS)}; known connectors: {known}"
        )
    try:
        return importlib.import_module(path)
    except ImportError as exc:
        raise ConnectorError(
            f"connector '{name}' for {what} is not available ({exc}); known connectors: {known}"
        ) from exc


def _factory(module: ModuleType, attr: str, name: str | None, what: str) -> Callable[[Any], Any]:
    factory = getattr(module, attr, None)
    if factory is None:
        raise ConnectorError(
            f"connector '{name}' cannot be used for {what} (it has no {attr}); "
            f"known connectors: {', '.join(sorted(CONNECTORS))}"
        )
    return factory


def open_source(definition: SourceDef) -> Source:
    """The Source reading stream `definition` (not yet opened)."""
    name = definition.option("connector")
    what = f"stream '{definition.name}'"
    module = connector_module(name, what)
    if definition.option("splits") is not None and not getattr(module, "SPLITS", False):
        raise ConnectorError(f"{what}: the {name} connector cannot be read in parts; remove the option splits")
    return _factory(module, "make_source", name, what)(definition)


def open_table(definition: SourceDef) -> TableSource:
    """The TableSource reading table `definition`."""
    name = definition.option("connector")
    what = f"table '{definition.name}'"
    return _factory(connector_module(name, what), "make_table", name, what)(definition)


def open_sink(definition: SinkDef) -> Sink:
    """The Sink writing to `definition`."""
    name = definition.option("connector")
    what = f"sink '{definition.name}'"
    return _factory(connector_module(name, what), "make_sink", name, what)(definition)
