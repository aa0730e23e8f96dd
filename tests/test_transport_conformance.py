"""Every registered transport passes the conformance suite (tests/transport_conformance.py).

A transport that needs a service or an optional package gets its marker
here, so `-m "not ray"` leaves it out: add `"ray": [pytest.mark.ray]`
when the Ray transport registers itself.
"""

from __future__ import annotations

import pytest

from executor.multiproc.transports import known_transports
from executor.multiproc.transports import transport_factory as factory_of
from stream_dsl.errors import DSLError

pytest.register_assert_rewrite("transport_conformance")  # its asserts explain themselves, as in a test module

from transport_conformance import TransportConformance  # noqa: E402 (after its assert rewriting is registered)

MARKS: dict[str, list[pytest.MarkDecorator]] = {}

pytestmark = [pytest.mark.multiprocess]


@pytest.fixture(scope="module", params=[pytest.param(name, marks=MARKS.get(name, [])) for name in known_transports()])
def transport_factory(request):
    """The factory registered under the name; a lazily registered one whose package is missing is skipped."""
    try:
        return factory_of(request.param)
    except DSLError as exc:
        pytest.skip(str(exc))


class TestTransportConformance(TransportConformance):
    pass
