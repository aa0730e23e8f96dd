"""The pipe transport (`executor/runtime.py`) on its own, with real processes and pipes.

- Framing: any sequence of messages, of any sizes, written by one thread
  while another reads, arrives whole and in order (hypothesis, in process).
- Between processes: every worker sends to every other worker and to the
  driver at the same time; per sender, messages arrive complete and in
  order. With messages many times a pipe's capacity this is also the
  deadlock test: a sender that blocked on a full pipe while its reader
  was sending too would hang both.
- A worker killed while its message is half written: the reader sees the
  pipe end and drops the half; the driver sees the death.
- After shutdown no pipe of the transport is open in the driver.
"""

from __future__ import annotations

import threading
import time

import multiprocess
from hypothesis import given, settings, strategies as st

import transport_probe
from executor.runtime import MultiprocessTransport, _Inlet, _Mailbox, _Outlet, created_resources, open_pipes


def _collect(transport: MultiprocessTransport, count: int, timeout: float = 60.0) -> list:
    got, deadline = [], time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} messages arrived"
        message = transport.receive(0.5)
        if message is not None:
            got.append(message)
    return got


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 3_000_000), min_size=1, max_size=12))
def test_messages_of_any_size_arrive_whole_and_in_order_through_one_pipe(sizes):
    reader, writer = multiprocess.Pipe(duplex=False)
    outlet, inlet = _Outlet(writer), _Inlet(reader)
    messages = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    sender = threading.Thread(target=lambda: [outlet.send(m) for m in messages])
    sender.start()
    mailbox = _Mailbox([inlet])
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


def _run_exchange(workers: int, count: int, size: int) -> None:
    transport = MultiprocessTransport(workers)
    try:
        for w in range(workers):
            transport.start_worker(w, transport_probe.exchange)
        for w in range(workers):
            transport.send(w, {"peers": [p for p in range(workers) if p != w], "count": count, "size": size})
        messages = _collect(transport, workers * count + workers)
        direct = [m for m in messages if isinstance(m, tuple)]
        reports = {m["worker"]: m for m in messages if isinstance(m, dict)}
        for w in range(workers):
            mine = [(seq, data) for sender, seq, data in direct if sender == w]
            assert [seq for seq, _ in mine] == list(range(count))
            assert all(data == transport_probe.payload(w, seq, size) for seq, data in mine)
            assert reports[w]["intact"]
            assert reports[w]["received"] == {p: list(range(count)) for p in range(workers) if p != w}
        for w in range(workers):
            transport.send(w, "stop")
    finally:
        transport.shutdown(timeout=10.0)
    assert set(transport.exit_codes.values()) == {0}


def test_every_worker_sends_every_other_many_small_messages_in_order():
    _run_exchange(workers=3, count=300, size=200)


def test_workers_sending_each_other_messages_larger_than_a_pipe_at_once_do_not_deadlock():
    _run_exchange(workers=2, count=3, size=8 << 20)


def test_a_worker_killed_in_the_middle_of_a_message_leaves_its_reader_running():
    transport = MultiprocessTransport(2)
    try:
        for w in range(2):
            transport.start_worker(w, transport_probe.die_while_sending)
        for w in range(2):
            transport.send(w, "go")
        (report,) = _collect(transport, 1, timeout=30.0)
        assert report == {"worker": 1, "got": ["whole"]}
        assert transport.dead_workers() == [(0, 3)]
        transport.send(0, "stop")  # to a dead worker: dropped, not an error
        transport.send(1, "stop")
    finally:
        transport.shutdown(timeout=10.0)
    assert transport.exit_codes == {0: 3, 1: 0}


def test_shutdown_closes_every_pipe_of_the_transport():
    before = set(created_resources())
    transport = MultiprocessTransport(3)
    for w in range(3):
        transport.start_worker(w, transport_probe.exchange)
    created = set(created_resources()) - before
    assert len(created) == 4 * 3  # a pipe each way between every two of driver and 3 workers
    transport.shutdown(timeout=0.0)
    assert not created & open_pipes()


def test_a_message_to_itself_comes_back_through_the_mailbox():
    transport = MultiprocessTransport(2)
    channel = transport.channel(0)
    channel.send(0, {"to": "me"})
    assert channel.receive(0) == {"to": "me"}
    assert channel.receive(0) is None
    transport.shutdown(timeout=0.0)
