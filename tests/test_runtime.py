"""What is particular to the pipe transport (`executor/runtime.py`); the rest is in the conformance suite.

What every transport must do (ordering per pair, large messages both
ways, a peer killed mid-message, deaths, shutdown, abort, nothing left
behind) is checked for the pipe transport by
tests/test_transport_conformance.py. Here, in one process:

- Framing: any sequence of messages, of any sizes, written by one thread
  while another reads, arrives whole and in order (hypothesis).
- A pipe that ends in the middle of a message (its writer died) ends its
  reader, and the half message is dropped.
- A worker's message to itself comes back through its own mailbox.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

import multiprocess
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.multiproc.pipes import _LENGTH, Inlet, Mailbox, Outlet
from executor.multiproc.runtime import MultiprocessTransport
from budget import examples


@settings(max_examples=examples(40), deadline=None)
@given(st.lists(st.integers(0, 3_000_000), min_size=1, max_size=12))
def test_messages_of_any_size_arrive_whole_and_in_order_through_one_pipe(sizes):
    reader, writer = multiprocess.Pipe(duplex=False)
    outlet, inlet = Outlet(writer), Inlet(reader)
    messages = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    sender = threading.Thread(target=lambda: [outlet.send(m) for m in messages])
    sender.start()
    mailbox = Mailbox([inlet])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < len(messages) and time.monotonic() < deadline:
        mailbox._poll(0.1)
        got.extend(mailbox.ready)
        mailbox.ready.clear()
    sender.join()
    outlet.close()
    mailbox.close()
    assert [len(m) for m in got] == sizes
    assert got == messages


def test_a_pipe_that_ends_in_the_middle_of_a_message_ends_its_reader_and_drops_the_half():
    reader, writer = multiprocess.Pipe(duplex=False)
    inlet = Inlet(reader)
    whole, half = b"whole", b"x" * 1000
    os.write(writer.fileno(), _LENGTH.pack(len(whole)) + whole + _LENGTH.pack(2 * len(half)) + half)
    writer.close()
    got: deque[bytes] = deque()
    inlet.pump(got)
    inlet.pump(got)
    assert list(got) == [whole]
    assert inlet.ended
    inlet.close()


def test_a_message_to_itself_comes_back_through_the_mailbox():
    transport = MultiprocessTransport(2)
    channel = transport.channel(0)
    channel.send(0, {"to": "me"})
    assert channel.receive(0) == {"to": "me"}
    assert channel.receive(0) is None
    transport.shutdown(timeout=0.0)
