"""Which transport the workers of a query talk over: a registry of names to transport factories.

The driver is handed a `TransportFactory` instead of building the pipe
transport itself, so another runtime (Ray actors) plugs in without a
change to the driver. A factory takes the number of workers and returns a
`Transport` (`executor/runtime.py` states what one must do;
tests/transport_conformance.py checks it):

>>> transport_factory("pipes") is MultiprocessTransport
True
>>> transport_factory("pipe")
Traceback (most recent call last):
...
stream_dsl.errors.DSLError: unknown transport 'pipe' (did you mean 'pipes'?); choose one of: pipes, ray

A transport whose module needs a heavy or optional dependency registers
itself by name, imported only when it is chosen:
`register_transport("ray", "executor.multiproc.ray_transport:RayTransport")`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from executor.multiproc.runtime import MultiprocessTransport, Transport
from stream_dsl.errors import DSLError, did_you_mean

TransportFactory = Callable[[int], Transport]  # the number of workers -> a transport, no worker started yet

DEFAULT_TRANSPORT = "pipes"


@dataclass(frozen=True)
class LazyFactory:
    """A factory named by "module:attribute", imported the first time it is used (not when registered)."""

    target: str

    def resolve(self) -> TransportFactory:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def __call__(self, workers: int) -> Transport:
        return self.resolve()(workers)


TRANSPORTS: dict[str, TransportFactory] = {"pipes": MultiprocessTransport}


def register_transport(name: str, factory: TransportFactory | str) -> None:
    """Make `name` choosable; `factory` may be "module:attribute" so its module is imported only when chosen.

    Registering a name again replaces its factory.
    """
    if isinstance(factory, str):
        if ":" not in factory:
            raise ValueError(f"a lazy transport factory is 'module:attribute', not {factory!r}")
        factory = LazyFactory(factory)
    TRANSPORTS[name] = factory


def known_transports() -> list[str]:
    """The registered transport names, sorted."""
    return sorted(TRANSPORTS)


def transport_factory(name: str) -> TransportFactory:
    """The factory registered as `name` (a lazy one imported now, so a missing dependency shows here)."""
    factory = TRANSPORTS.get(name)
    if factory is None:
        raise DSLError(
            f"unknown transport '{name}'{did_you_mean(name, TRANSPORTS)}; "
            f"choose one of: {', '.join(known_transports())}"
        )
    if isinstance(factory, LazyFactory):
        try:
            return factory.resolve()
        except (ImportError, AttributeError) as exc:
            raise DSLError(f"transport '{name}' cannot be loaded from {factory.target}: {exc}") from exc
    return factory


def configured_factory(name: str, config: object) -> TransportFactory:
    """The factory for `name`, bound to a run's settings when it takes any (`from_config`: Ray's address)."""
    factory = transport_factory(name)
    from_config = getattr(factory, "from_config", None)
    return from_config(config) if from_config is not None else factory


register_transport("ray", "executor.multiproc.ray_transport:RayTransport")
