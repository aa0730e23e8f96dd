"""What every transport must do, as tests parametrized by a transport factory.

A test module subclasses `TransportConformance` and provides a fixture
`transport_factory` (tests/test_transport_conformance.py runs it for every
registered transport). The worker programs are in tests/transport_probe.py.

- Ordering, per pair: driver -> worker, worker -> driver and worker ->
  worker, many numbered messages sent at once; each receiver sees each
  sender's messages in the order sent, intact.
- Messages of several MiB both ways at once, worker to worker and with the
  driver: a sender that waited for its reader while that reader was
  sending too would hang both (the bounded waits then fail the test).
- A worker SIGKILLed in the middle of a message: the driver and the other
  worker keep running and never see part of it.
- Death detection names the worker and its exit code.
- shutdown (a stop message; workers exit 0; stragglers are ended) and
  abort (kill now), both idempotent.
- Every test ends with nothing left behind: no worker process running, no
  pipe open in the driver, no `pymp-*` temp dir, beyond the process-wide
  helpers the first transport starts (a fork server, a flusher thread).

Every wait is bounded: past its deadline the test fails saying what did
not arrive. No test asserts on speed.
"""

from __future__ import annotations

import glob
import hashlib
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import transport_probe as probe

from executor.multiproc import forkservers
from executor.multiproc.runtime import DRIVER, PRELOAD, MultiprocessTransport, Transport
from executor.multiproc.transports import TransportFactory

WAIT_S = 120.0  # a bound for things that take well under a second on an idle machine; the machine may be loaded
MOST_WORKERS = 3  # the most workers a test here starts
MiB = 1 << 20


# ---------------------------------------------------------------- what a run leaves behind


def open_pipes() -> set[str]:
    """The pipes this process has open, as /proc/self/fd names them ('pipe:[inode]')."""
    names = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            name = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if name.startswith("pipe:"):
            names.add(name)
    return names


def temp_dirs() -> set[str]:
    """multiprocess's temp dirs (`pymp-*`) in the temp dir (private to this test run: see conftest)."""
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "pymp-*")))


def process_identity(pid: int) -> str | None:
    """The start time of process `pid` while it runs (a zombie has ended), None once it is gone.

    With the pid it names one process even if the pid is reused later.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in "ZXx" else fields[19]


@dataclass
class Snapshot:
    pipes: set[str]
    temp_dirs: set[str]

    @classmethod
    def now(cls) -> Snapshot:
        return cls(open_pipes(), temp_dirs())

    def leftovers(self, workers: dict[int, str | None]) -> list[str]:
        """What is left now that was not before: running workers (pid -> identity), pipes, temp dirs."""
        problems = [
            f"worker process {pid} is still running"
            for pid, identity in sorted(workers.items())
            if identity is not None and process_identity(pid) == identity
        ]
        if pipes := open_pipes() - self.pipes:
            problems.append(f"{len(pipes)} pipes left open in the driver: {sorted(pipes)}")
        if dirs := temp_dirs() - self.temp_dirs:
            problems.append(f"temp dirs left behind: {sorted(dirs)}")
        return problems


_warmed: set[int] = set()


def warm_up(factory: TransportFactory) -> None:
    """Run one transport once, so the process-wide helpers it starts exist before anything is counted; for
    pipes also the fork servers of the polars thread counts the tests' worker counts get (`forkservers.py`)."""
    if id(factory) in _warmed:
        return
    transport = factory(1)
    if isinstance(transport, MultiprocessTransport):
        for threads in {forkservers.worker_threads(workers) for workers in range(1, MOST_WORKERS + 1)}:
            if threads != forkservers.default_threads():
                forkservers.server(threads, PRELOAD).ensure_running()
    try:
        transport.start_worker(0, probe.exchange)
        size = 4 * MiB  # more than a pipe holds: the driver's flusher starts too
        transport.send(0, {"to": [DRIVER], "count": 1, "sizes": [size], "expect": {DRIVER: 1}})
        transport.send(0, (DRIVER, 0, probe.payload(DRIVER, 0, size)))
        collect(transport, 2, "warm-up messages")
        transport.shutdown(timeout=WAIT_S, message="stop")
    finally:
        transport.abort()
    _warmed.add(id(factory))


@contextmanager
def running(
    factory: TransportFactory,
    mains: list[Callable[..., None]],
    before_start: Callable[[Transport], None] | None = None,
) -> Iterator[Transport]:
    """A transport with a worker running each of `mains`; afterwards (the test shut it down) nothing may be left.

    `before_start(transport)` runs before any worker starts (where the driver shares data).
    """
    warm_up(factory)
    before = Snapshot.now()
    transport = factory(len(mains))
    try:
        if before_start is not None:
            before_start(transport)
        for worker, main in enumerate(mains):
            transport.start_worker(worker, main)
        workers = {pid: process_identity(pid) for pid in transport.pids}
        yield transport
        problems = before.leftovers(workers)
    finally:
        transport.abort()  # a no-op unless the test failed before shutting down
    assert not problems, "; ".join(problems)


# ---------------------------------------------------------------- bounded waits


def collect(transport: Transport, count: int, what: str, *, dead_ok: bool = False) -> list[Any]:
    """The next `count` messages to the driver; fails if they do not come within WAIT_S or a worker dies."""
    got: list[Any] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < count:
        message = transport.receive(0.2)
        if message is not None:
            got.append(message)
            continue
        if not dead_ok and (dead := transport.dead_workers()):
            pytest.fail(f"{len(got)} of {count} {what} arrived, then workers died: {dead}")
        if time.monotonic() > deadline:
            pytest.fail(f"only {len(got)} of {count} {what} arrived within {WAIT_S:.0f}s")
    return got


def drain(transport: Transport, quiet: float = 0.5) -> list[Any]:
    """What arrives until nothing has for `quiet` seconds (receive may return early while a worker is dead)."""
    got: list[Any] = []
    last = time.monotonic()
    while time.monotonic() - last < quiet:
        message = transport.receive(0.1)
        if message is not None:
            got.append(message)
            last = time.monotonic()
    return got


def wait_until(transport: Transport, condition: Callable[[], Any], what: str) -> list[Any]:
    """Receive until `condition()` holds (fail after WAIT_S); what arrived meanwhile."""
    got: list[Any] = []
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT_S:.0f}s; meanwhile: {got}")
        if (message := transport.receive(0.1)) is not None:
            got.append(message)
    return got


def ping(transport: Transport, workers: list[int], n: int = 0) -> dict[int, int]:
    """Every one of `workers` answers a ping: worker -> its pid."""
    for worker in workers:
        transport.send(worker, ("ping", n))
    pongs = collect(transport, len(workers), "pongs", dead_ok=True)
    assert sorted((w, k) for _, w, k, _ in pongs) == [(w, n) for w in sorted(workers)]
    return {w: pid for _, w, _, pid in pongs}


# ---------------------------------------------------------------- the suite


def exchange(factory: TransportFactory, workers: int, count: int, sizes: list[int]) -> None:
    """Every process sends every other `count` numbered messages at once; all arrive intact and in order.

    Message `seq` is `sizes[seq % len(sizes)]` bytes, so small and large
    messages follow each other in every stream.
    """
    with running(factory, [probe.exchange] * workers) as transport:
        for w in range(workers):
            peers = [p for p in range(workers) if p != w]
            transport.send(
                w,
                {
                    "to": peers + [DRIVER],
                    "count": count,
                    "sizes": sizes,
                    "expect": {s: count for s in peers + [DRIVER]},
                },
            )
        for seq in range(count):
            for w in range(workers):
                transport.send(w, (DRIVER, seq, probe.payload(DRIVER, seq, probe.size_of(sizes, seq))))
        messages = collect(transport, workers * count + workers, "messages")
        direct = [m for m in messages if isinstance(m, tuple)]
        reports = {m["worker"]: m for m in messages if isinstance(m, dict)}
        for w in range(workers):
            mine = [(seq, data) for sender, seq, data in direct if sender == w]
            assert [seq for seq, _ in mine] == list(range(count)), f"worker {w} -> driver out of order"
            assert all(data == probe.payload(w, seq, probe.size_of(sizes, seq)) for seq, data in mine), (
                f"worker {w} -> driver: a damaged message"
            )
            assert reports[w]["received"] == {s: list(range(count)) for s in range(DRIVER, workers) if s != w}
            assert reports[w]["intact"], f"worker {w} received a damaged message"
        transport.shutdown(timeout=WAIT_S, message="stop")
        assert transport.exit_codes == {w: 0 for w in range(workers)}


class TransportConformance:
    """Subclass in a test module that provides the fixture `transport_factory`."""

    pytestmark: ClassVar[list[pytest.MarkDecorator]] = [pytest.mark.multiprocess]

    def test_each_sender_s_messages_arrive_in_order_on_every_pair(self, transport_factory):
        exchange(transport_factory, workers=3, count=300, sizes=[200])

    def test_small_and_large_messages_interleaved_arrive_whole_and_in_order(self, transport_factory):
        exchange(transport_factory, workers=2, count=40, sizes=[0, 1, 300, 70_000, 3 * MiB // 2, 5])

    def test_messages_of_several_mib_both_ways_at_once_do_not_deadlock(self, transport_factory):
        exchange(transport_factory, workers=2, count=3, sizes=[8 * MiB])

    def test_a_peer_killed_mid_message_leaves_the_others_running_and_sees_no_part_of_it(self, transport_factory):
        with running(transport_factory, [probe.die_mid_message] * 2) as transport:
            for w in range(2):
                transport.send(w, "go")
            got = wait_until(transport, transport.dead_workers, "worker 0's death")
            assert transport.dead_workers() == [(0, -signal.SIGKILL)]
            transport.send(1, "report")
            while not any(isinstance(m, dict) for m in got):
                got += collect(transport, 1, "worker 1's report", dead_ok=True)
            got += drain(transport)
            whole_or_none = ("whole", ("bytes", probe.BIG, True))  # a transport may also deliver it whole
            from_0 = [probe.describe(m) for m in got if not isinstance(m, dict)]
            assert from_0[:1] == ["whole"] and all(m in whole_or_none for m in from_0), from_0
            (report,) = [m for m in got if isinstance(m, dict)]
            assert report["got"][:1] == ["whole"] and all(m in whole_or_none for m in report["got"]), report
            ping(transport, [1])
            transport.send(1, ("send", 0, probe.BIG))  # a worker's message to a dead one: dropped, not an error
            assert collect(transport, 1, "worker 1's answer", dead_ok=True) == [("pong", 1, -1, report["pid"])]
            transport.send(0, "stop")  # the driver's to a dead worker: dropped, not an error
            transport.shutdown(timeout=WAIT_S, message="stop")
            assert transport.exit_codes == {0: -signal.SIGKILL, 1: 0}

    def test_a_dead_worker_is_named_with_its_exit_code(self, transport_factory):
        with running(transport_factory, [probe.serve] * 3) as transport:
            pids = ping(transport, [0, 1, 2])
            assert transport.pids == [pids[w] for w in range(3)]
            transport.send(1, ("exit", 7))
            assert wait_until(transport, transport.dead_workers, "worker 1's death") == []
            assert transport.dead_workers() == [(1, 7)]
            assert [transport.is_alive(w) for w in range(3)] == [True, False, True]
            os.kill(pids[2], signal.SIGKILL)
            assert wait_until(transport, lambda: len(transport.dead_workers()) == 2, "worker 2's death") == []
            assert transport.dead_workers() == [(1, 7), (2, -signal.SIGKILL)]
            transport.send(1, ("ping", 1))  # to dead workers: dropped, not an error
            transport.send(2, ("ping", 1))
            ping(transport, [0], n=2)
            transport.shutdown(timeout=WAIT_S, message="stop")
            assert transport.exit_codes == {0: 0, 1: 7, 2: -signal.SIGKILL}

    def test_data_shared_before_the_start_reaches_every_worker_whole(self, transport_factory):
        blob = os.urandom(3 * MiB // 2)
        handles: list[Any] = []
        with running(transport_factory, [probe.serve] * 3, lambda t: handles.append(t.share(blob))) as transport:
            for worker in range(3):
                transport.send(worker, ("unshare", handles[0]))
            digest = hashlib.sha256(blob).hexdigest()
            got = collect(transport, 3, "shared data")
            assert sorted(got) == [("unshared", w, len(blob), digest) for w in range(3)]
            transport.shutdown(timeout=WAIT_S, message="stop")

    def test_shutdown_asks_every_worker_to_stop_and_they_exit_0_idempotently(self, transport_factory):
        with running(transport_factory, [probe.serve] * 2) as transport:
            transport.shutdown(timeout=WAIT_S, message="stop")
            assert transport.exit_codes == {0: 0, 1: 0}
            transport.shutdown(timeout=WAIT_S, message="stop")
            transport.abort()
            assert transport.exit_codes == {0: 0, 1: 0}
            assert not any(transport.is_alive(w) for w in range(2))
            transport.send(0, "late")  # every worker is gone: dropped, not an error
            assert transport.receive(0.0) is None

    def test_shutdown_ends_a_worker_that_ignores_the_stop_message(self, transport_factory):
        with running(transport_factory, [probe.serve, probe.stubborn]) as transport:
            ping(transport, [0])
            transport.shutdown(timeout=5.0, message="stop")
            assert transport.exit_codes[0] == 0
            assert transport.exit_codes[1] not in (0, None)

    def test_abort_kills_every_worker_now_with_messages_in_flight_idempotently(self, transport_factory):
        with running(transport_factory, [probe.serve, probe.stubborn]) as transport:
            ping(transport, [0])
            for seq in range(3):  # the stubborn worker reads none of them: they wait in the transport
                transport.send(1, (DRIVER, seq, probe.payload(DRIVER, seq, 8 * MiB)))
            transport.abort()
            assert transport.exit_codes == {0: -signal.SIGKILL, 1: -signal.SIGKILL}
            transport.abort()
            transport.shutdown(timeout=WAIT_S, message="stop")
            assert transport.exit_codes == {0: -signal.SIGKILL, 1: -signal.SIGKILL}
            transport.send(1, "late")  # every worker is gone: dropped, not an error
            assert transport.receive(0.0) is None

    @pytest.mark.parametrize("end", ["shutdown", "abort"])
    def test_a_transport_whose_workers_never_started_leaves_nothing(self, transport_factory, end):
        warm_up(transport_factory)
        before = Snapshot.now()
        transport = transport_factory(3)
        getattr(transport, end)()
        assert transport.pids == []
        assert not before.leftovers({})

    def test_the_leftover_check_sees_a_running_worker_an_open_pipe_and_a_temp_dir(self, transport_factory):
        warm_up(transport_factory)
        before = Snapshot.now()
        transport = transport_factory(1)
        read, write = os.pipe()
        made = tempfile.mkdtemp(prefix="pymp-")
        try:
            transport.start_worker(0, probe.serve)
            pids = ping(transport, [0])
            problems = before.leftovers({pids[0]: process_identity(pids[0])})
            assert problems[0] == f"worker process {pids[0]} is still running"
            assert f"pipe:[{os.fstat(read).st_ino}]" in problems[1]
            assert problems[2] == f"temp dirs left behind: {[made]}"
        finally:
            transport.abort()
            os.close(read)
            os.close(write)
            os.rmdir(made)
        assert not before.leftovers({pids[0]: process_identity(pids[0])})
