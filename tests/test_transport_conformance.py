"""Every registered transport passes the conformance suite (tests/transport_conformance.py).

A transport that needs a service or an optional package gets its marker
here, so `-m "not ray"` leaves it out. The Ray transport runs on the
two-node loopback cluster of tests/ray_cluster.py.
"""

from __future__ import annotations

import pytest

from executor.multiproc.transports import known_transports
from executor.multiproc.transports import transport_factory as factory_of
from stream_dsl.errors import DSLError

pytest.register_assert_rewrite("transport_conformance")  # its asserts explain themselves, as in a test module

from ray_cluster import ray_or_skip  # noqa: E402 (after its assert rewriting is registered)
from transport_conformance import TransportConformance  # noqa: E402 (after its assert rewriting is registered)

MARKS: dict[str, list[pytest.MarkDecorator]] = {"ray": [pytest.mark.ray]}

pytestmark = [pytest.mark.multiprocess]


@pytest.fixture(scope="module", params=[pytest.param(name, marks=MARKS.get(name, [])) for name in known_transports()])
def transport_factory(request):
    """The factory registered under the name; a lazily registered one whose package is missing is skipped."""
    if request.param == "ray":
        ray_or_skip()
        request.getfixturevalue("ray_cluster")  # this process joins the test cluster: no local Ray is started
    try:
        return factory_of(request.param)
    except DSLError as exc:
        pytest.skip(str(exc))


class TestTransportConformance(TransportConformance):
    pass
