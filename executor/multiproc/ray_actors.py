"""The actor side of the Ray transport (`ray_transport.py`): mailboxes, senders, the worker and inbox actors.

Kept apart from the driver's side so each stays small. Everything here is
plain Python around `ray` calls: `RayMailbox` puts each sender's batches
back in the order sent (Ray may run a threaded actor's calls out of
order), `RaySender` keeps one batch in flight per destination and queues
behind it, `_Generations` keeps a warm actor's queries apart.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import ray

from executor.multiproc.pipes import dumps, loads
from executor.multiproc.runtime import DRIVER

# ---------------------------------------------------------------- both sides


class RayMailbox:
    """Incoming batches, put back into each sender's order; one condition for waiting readers."""

    def __init__(self, generation: str) -> None:
        self.generation = generation
        self.cond = threading.Condition()
        self.ready: deque[bytes] = deque()
        self.expected: dict[int, int] = {}
        self.held: dict[int, dict[int, list[bytes]]] = {}

    def deliver(self, generation: str, sender: int, seq: int, batch: list[bytes]) -> None:
        if generation != self.generation:
            return  # a stale call of another query's transport
        with self.cond:
            held = self.held.setdefault(sender, {})
            held[seq] = batch
            next_seq = self.expected.get(sender, 0)
            while next_seq in held:
                self.ready.extend(held.pop(next_seq))
                next_seq += 1
            self.expected[sender] = next_seq
            self.cond.notify_all()

    def put_local(self, data: bytes) -> None:
        with self.cond:
            self.ready.append(data)
            self.cond.notify_all()

    def take_one(self, timeout: float) -> bytes | None:
        with self.cond:
            if not self.ready and timeout > 0:
                self.cond.wait_for(lambda: bool(self.ready), timeout)
            return self.ready.popleft() if self.ready else None

    def take_all(self, timeout: float) -> list[bytes]:
        with self.cond:
            if not self.ready and timeout > 0:
                self.cond.wait_for(lambda: bool(self.ready), timeout)
            got = list(self.ready)
            self.ready.clear()
            return got


@dataclass
class _Route:
    """One destination of a sender: the next sequence number, the batch in flight, what waits behind it."""

    target: Any
    seq: int = 0
    in_flight: Any = None
    queued: list[bytes] = field(default_factory=list)


class RaySender:
    """Sends batches of pickled messages to actors' `deliver`, one in flight per destination.

    A message to a destination with nothing in flight goes at once; one
    sent while a batch is in flight waits for it and then goes, with
    everything queued meanwhile, as one batch (a flusher thread sends it).
    """

    def __init__(self, me: int, generation: str, targets: dict[int, Any]) -> None:
        self.me, self.generation = me, generation
        self.lock = threading.Lock()
        self.routes = {dest: _Route(target) for dest, target in targets.items()}
        self.wake = threading.Event()
        self.closed = False
        self.flusher: threading.Thread | None = None

    def send(self, dest: int, data: bytes) -> None:
        with self.lock:
            route = self.routes[dest]
            if self.closed:
                return
            if route.in_flight is None and not route.queued:
                self._fire(route, [data])
                return
            route.queued.append(data)
            if self.flusher is None:
                self.flusher = threading.Thread(target=self._flush_loop, name="stream-dsl-ray-sender", daemon=True)
                self.flusher.start()
        self.wake.set()

    def _fire(self, route: _Route, batch: list[bytes]) -> None:
        route.in_flight = route.target.deliver.remote(self.generation, self.me, route.seq, batch)
        route.seq += 1

    def _flush_loop(self) -> None:
        """Send a queued batch as soon as its predecessor has arrived (waiting on the calls, not a clock)."""
        while not self.closed:
            with self.lock:
                queued = any(r.queued for r in self.routes.values())
            if queued:
                self.flush_ready(wait=0.05)
            else:
                self.wake.wait(0.05)
                self.wake.clear()

    def flush_ready(self, wait: float = 0.0) -> bool:
        """Send every queued batch whose predecessor has arrived; True when nothing is left in flight or queued."""
        with self.lock:
            flying = {id(r.in_flight): r for r in self.routes.values() if r.in_flight is not None}
        if flying:
            refs = [r.in_flight for r in flying.values()]
            if wait > 0:  # until the first arrives, then take every one that has
                ray.wait(refs, num_returns=1, timeout=wait, fetch_local=False)
            done, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=False)
            with self.lock:
                for ref in done:
                    route = flying[id(ref)]
                    if route.in_flight is ref:
                        route.in_flight = None
        with self.lock:
            for route in self.routes.values():
                if route.in_flight is None and route.queued:
                    batch, route.queued = route.queued, []
                    self._fire(route, batch)
            return all(r.in_flight is None and not r.queued for r in self.routes.values())

    def drain(self, timeout: float) -> None:
        """Wait until everything sent has arrived (or `timeout`): a worker's last reports before it ends."""
        deadline = time.monotonic() + timeout
        while not self.flush_ready(wait=0.05) and time.monotonic() < deadline:
            pass

    def close(self) -> None:
        self.closed = True
        self.wake.set()


# ---------------------------------------------------------------- the actors


class _Generations:
    """The mailboxes of an actor that serves one query after another, one per generation.

    A batch may arrive before its generation's query starts here (a peer
    started first), so a mailbox is made on first use; `begin` retires
    every other generation, whose batches are dropped from then on: a
    stale call cannot reach the new query.
    """

    def __init__(self, generation: str) -> None:
        self.lock = threading.Lock()
        self.mailboxes: dict[str, RayMailbox] = {generation: RayMailbox(generation)}
        self.retired: set[str] = set()

    def mailbox(self, generation: str) -> RayMailbox | None:
        with self.lock:
            if generation in self.retired:
                return None
            return self.mailboxes.setdefault(generation, RayMailbox(generation))

    def begin(self, generation: str) -> RayMailbox:
        with self.lock:
            self.retired.update(g for g in self.mailboxes if g != generation)
            self.mailboxes = {generation: self.mailboxes.get(generation) or RayMailbox(generation)}
            return self.mailboxes[generation]

    def deliver(self, generation: str, sender: int, seq: int, batch: list[bytes]) -> None:
        mailbox = self.mailbox(generation)
        if mailbox is not None:
            mailbox.deliver(generation, sender, seq, batch)


class RayInbox:
    """The driver's inbox, an actor on the driver's node: workers deliver to it, the driver fetches in batches.

    Kept warm like the workers (`begin` starts the next query's generation).
    """

    def __init__(self, generation: str) -> None:
        self.generations = _Generations(generation)
        self.exits: dict[tuple[str, int], int] = {}

    def where(self) -> tuple[int, str, str]:
        return os.getpid(), socket.gethostname(), ray.get_runtime_context().get_node_id()

    def begin(self, generation: str) -> None:
        self.generations.begin(generation)

    def deliver(self, generation: str, sender: int, seq: int, batch: list[bytes]) -> None:
        self.generations.deliver(generation, sender, seq, batch)

    def fetch(self, generation: str, timeout: float) -> list[bytes]:
        mailbox = self.generations.mailbox(generation)
        return [] if mailbox is None else mailbox.take_all(timeout)

    def exiting(self, generation: str, worker: int, code: int) -> None:
        self.exits[(generation, worker)] = code

    def exit_codes(self, generation: str) -> dict[int, int]:
        return {w: code for (g, w), code in self.exits.items() if g == generation}


class RayChannel:
    """A worker's end, inside its actor: its mailbox and a sender to every other worker and the driver."""

    def __init__(
        self, worker: int, mailbox: RayMailbox, sender: RaySender, shared: dict[str, Any] | None = None
    ) -> None:
        self.worker = worker
        self.mailbox = mailbox
        self.sender = sender
        self.shared = shared or {}  # handle -> object reference (`RayTransport.share`)
        self.stopped = False

    def receive(self, timeout: float) -> Any | None:
        data = self.mailbox.take_one(timeout)
        return None if data is None else loads(data)

    def send(self, worker: int, message: Any) -> None:
        if worker == self.worker:
            self.mailbox.put_local(dumps(message))
        else:
            self.sender.send(worker, dumps(message))

    def driver_alive(self) -> bool:
        """Ray ends a job's actors when its driver ends; so the driver counts as alive until the transport says."""
        return not self.stopped

    def release(self, timeout: float = 2.0) -> None:
        self.sender.drain(timeout)
        self.sender.close()

    def unshare(self, handle: Any) -> bytes:
        return ray.get(self.shared[handle])


class RayWorker:
    """One worker's actor: `run` runs its main; `deliver` fills the mailbox of a generation meanwhile.

    A warm actor serves one query after another (`RayTransport(warm=True)`),
    each a new generation (`_Generations`).
    """

    def __init__(self, worker: int, generation: str, cpus: float) -> None:
        os.environ.setdefault("POLARS_MAX_THREADS", str(max(1, int(cpus))))
        self.worker, self.generation = worker, generation
        self.generations = _Generations(generation)
        self.channel: RayChannel | None = None

    def where(self) -> tuple[int, str, str]:
        """(pid, host name, Ray node id): which process, on which machine."""
        return os.getpid(), socket.gethostname(), ray.get_runtime_context().get_node_id()

    def deliver(self, generation: str, sender: int, seq: int, batch: list[bytes]) -> None:
        self.generations.deliver(generation, sender, seq, batch)

    def begin(self, worker: int, generation: str) -> RayMailbox:
        """Serve `generation` as `worker` from now on; its mailbox."""
        self.worker, self.generation = worker, generation
        return self.generations.begin(generation)

    def run(
        self,
        main: Callable[..., None],
        peers: dict[int, Any],
        inbox: Any,
        worker: int | None = None,
        generation: str | None = None,
        shared: dict[str, Any] | None = None,
    ) -> int:
        """Run `main(channel)` as `worker` of `generation`; 0 when it returns.

        An `os._exit(code)` in it reports `code` to the inbox first.
        """
        worker = self.worker if worker is None else worker
        generation = self.generation if generation is None else generation
        mailbox = self.begin(worker, generation)
        sender = RaySender(worker, generation, {**peers, DRIVER: inbox})
        self.channel = RayChannel(worker, mailbox, sender, shared)
        _report_exits(generation, worker, inbox)
        main(self.channel)
        return 0


def _report_exits(generation: str, worker: int, inbox: Any) -> None:
    """Make `os._exit(code)` in this actor tell the inbox its code first (Ray does not report exit codes)."""
    original = getattr(os._exit, "__wrapped__", os._exit)

    def _exit(code: int) -> None:
        try:
            ray.get(inbox.exiting.remote(generation, worker, code), timeout=5.0)
        except Exception:
            pass
        original(code)

    _exit.__wrapped__ = original  # type: ignore[attr-defined]
    os._exit = _exit  # type: ignore[assignment]
