"""The Ray transport's bookkeeping without a cluster: batch order per sender, generations of warm actors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("ray")  # the module imports ray; its cluster tests are in tests/test_ray.py

from executor.multiproc.ray_transport import RayMailbox, RayWorker  # noqa: E402

pytestmark = [pytest.mark.ray]


@st.composite
def deliveries(draw):
    """Batches of 3 senders, numbered per sender, in an order Ray's thread pool might run the calls."""
    calls = []
    for sender in range(3):
        for seq in range(draw(st.integers(0, 6))):
            batch = [f"{sender}/{seq}/{i}".encode() for i in range(draw(st.integers(1, 3)))]
            calls.append((sender, seq, batch))
    return draw(st.permutations(calls))


@given(deliveries())
@settings(max_examples=200, deadline=None)
def test_each_sender_s_batches_are_read_in_the_order_sent_whatever_order_they_arrive_in(calls):
    mailbox = RayMailbox("g")
    for sender, seq, batch in calls:
        mailbox.deliver("g", sender, seq, batch)
    got = mailbox.take_all(0)
    for sender in range(3):
        mine = [m for m in got if m.startswith(f"{sender}/".encode())]
        expected = [m for _, _, b in sorted(c for c in calls if c[0] == sender) for m in b]
        assert mine == expected
    assert len(got) == sum(len(b) for _, _, b in calls)


def test_a_batch_of_another_generation_is_dropped():
    mailbox = RayMailbox("new")
    mailbox.deliver("old", 0, 0, [b"stale"])
    mailbox.deliver("new", 0, 0, [b"fresh"])
    assert mailbox.take_all(0) == [b"fresh"]


def test_a_warm_actor_keeps_an_early_batch_of_its_next_query_and_drops_the_last_query_s(monkeypatch):
    monkeypatch.setenv("POLARS_MAX_THREADS", "1")
    actor = RayWorker(0, "q1", 1.0)
    actor.deliver("q1", 1, 0, [b"q1 before"])
    assert actor.begin(0, "q1").take_all(0) == [b"q1 before"]
    actor.deliver("q2", 1, 0, [b"q2 early"])  # a peer of the next query started first
    mailbox = actor.begin(1, "q2")
    actor.deliver("q1", 1, 1, [b"q1 late"])  # a stale call of the last query
    actor.deliver("q2", 1, 1, [b"q2 on time"])
    assert mailbox.take_all(0) == [b"q2 early", b"q2 on time"]
    assert actor.worker == 1 and set(actor.generations.mailboxes) == {"q2"}
