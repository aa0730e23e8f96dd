"""The transport registry (`executor/transports.py`): names to factories, lazy registration, friendly errors."""

from __future__ import annotations

import doctest
import sys
import types

import pytest

from executor.multiproc import transports
from executor.multiproc.runtime import MultiprocessTransport
from executor.multiproc.transports import LazyFactory, register_transport, transport_factory
from stream_dsl.errors import DSLError


@pytest.fixture
def registry(monkeypatch):
    """The registry, restored after the test."""
    monkeypatch.setattr(transports, "TRANSPORTS", dict(transports.TRANSPORTS))
    return transports.TRANSPORTS


def test_the_module_examples_run():
    result = doctest.testmod(transports, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 2 and result.failed == 0


def test_pipes_is_the_default_and_builds_the_multiprocess_transport():
    assert transport_factory(transports.DEFAULT_TRANSPORT) is MultiprocessTransport


def test_an_unknown_name_lists_the_known_ones_and_suggests_the_closest(registry):
    register_transport("ray", "not_installed_anywhere:RayTransport")
    with pytest.raises(DSLError) as caught:
        transport_factory("rya")
    assert str(caught.value) == "unknown transport 'rya' (did you mean 'ray'?); choose one of: pipes, ray"
    with pytest.raises(DSLError) as caught:
        transport_factory("zeromq")
    assert str(caught.value) == "unknown transport 'zeromq'; choose one of: pipes, ray"


def test_a_lazy_transport_is_imported_only_when_chosen(registry, monkeypatch):
    module = types.ModuleType("fake_transport_module")
    module.FakeTransport = lambda workers: ("fake", workers)  # type: ignore[attr-defined]
    register_transport("fake", "fake_transport_module:FakeTransport")
    assert isinstance(registry["fake"], LazyFactory)
    assert "fake" in transports.known_transports()
    monkeypatch.setitem(sys.modules, "fake_transport_module", module)
    factory = transport_factory("fake")
    assert factory is module.FakeTransport
    assert registry["fake"](3) == ("fake", 3)


def test_a_lazy_transport_whose_module_is_missing_fails_when_chosen_with_the_reason(registry):
    register_transport("ray", "not_installed_anywhere:RayTransport")
    with pytest.raises(
        DSLError,
        match=r"transport 'ray' cannot be loaded from not_installed_anywhere:RayTransport: "
        r"No module named 'not_installed_anywhere'",
    ):
        transport_factory("ray")


def test_a_factory_registered_directly_is_returned_as_is(registry):
    def factory(workers: int) -> MultiprocessTransport:
        return MultiprocessTransport(workers)

    register_transport("mine", factory)
    assert transport_factory("mine") is factory
    with pytest.raises(ValueError, match="module:attribute"):
        register_transport("bad", "no_colon_here")


def test_a_context_runs_on_the_transport_it_names_and_refuses_an_unknown_one():
    import polars as pl

    import stream_dsl as sd

    ctx = sd.Context(executor="bsp", workers=2)
    ctx.from_polars([pl.DataFrame({"v": [1, 2]})], name="s")
    ctx.sql("SET transport = 'pipes'")
    assert ctx.config.transport == "pipes"
    assert ctx.sql("SELECT v FROM s").collect()["v"].sort().to_list() == [1, 2]
    ctx.sql("SET transport = 'pipe'")
    with pytest.raises(DSLError, match=r"unknown transport 'pipe' \(did you mean 'pipes'\?\)"):
        ctx.sql("SELECT v FROM s").collect()


def test_ray_is_registered_lazily_and_its_factory_is_bound_to_the_run_s_ray_address():
    """Naming 'ray' imports nothing until chosen; chosen, the driver's factory carries ray_address (and warm actors)."""
    from stream_dsl.config import RunConfig

    assert isinstance(transports.TRANSPORTS["ray"], LazyFactory)
    assert transports.configured_factory("pipes", RunConfig()) is MultiprocessTransport
    ray_transport = pytest.importorskip("executor.multiproc.ray_transport")
    made = []
    factory = ray_transport.RayTransport.from_config(RunConfig(transport="ray", ray_address="127.0.0.2:1234"))
    original = ray_transport.RayTransport.__init__
    try:
        ray_transport.RayTransport.__init__ = lambda self, workers, **kw: made.append((workers, kw))
        factory(3)
    finally:
        ray_transport.RayTransport.__init__ = original
    assert made == [(3, {"address": "127.0.0.2:1234", "warm": True})]


def test_ray_address_is_set_on_a_context_with_set_and_on_the_command_line():
    import stream_dsl as sd
    from stream_dsl.cli.main import context_kwargs, build_parser

    ctx = sd.Context(transport="ray", ray_address="auto")
    assert (ctx.config.transport, ctx.config.ray_address) == ("ray", "auto")
    ctx.sql("SET ray_address = '127.0.0.2:6379'")
    assert ctx.config.ray_address == "127.0.0.2:6379"
    ctx.sql("SET ray_address = 'local'")
    assert ctx.config.ray_address is None
    with pytest.raises(DSLError, match="ray_address"):
        sd.Context(ray_address="")
    args = build_parser().parse_args(["run", "x.sql", "--transport", "ray", "--ray-address", "auto"])
    assert context_kwargs(args) == {"transport": "ray", "ray_address": "auto"}
