"""The Ray transport: workers as Ray actors, possibly on other machines, under the unchanged drivers.

Chosen by name ("ray", `executor/multiproc/transports.py`); this module is
imported only then, so Ray stays an optional extra (`stream-dsl[ray]`).
It keeps the guarantees of `Transport` and `Channel` (`runtime.py`;
tests/transport_conformance.py checks them):

- Every worker is a threaded actor. One thread runs the worker's `main`
  (a long actor call whose end is the worker's end); the others take
  `deliver` calls: batches of pickled messages from one sender.
- Messages go straight from sender to receiver (a map output goes actor to
  actor, never through the driver). Ray may run a threaded actor's calls
  out of order, so every batch carries the sender's sequence number and
  the receiver puts batches back in order. A sender never waits: while
  its previous batch to a receiver is in flight, what it sends next is
  queued and goes as one batch when that one has arrived (`RaySender`).
- What workers send the driver goes to an inbox actor on the driver's
  node; the driver fetches it in batches with a long poll.
- Every transport has a generation (a fresh id): a batch of another
  generation is dropped, so a stale call of an earlier query's actors
  cannot deliver into this one's inboxes.
- A worker's death is the end of its `main` call with an actor error;
  the driver waits on those calls together with its inbox, so a death is
  seen at once. Ray does not report exit codes: a worker that exits
  through `os._exit(code)` reports the code first; a death without one
  reads as SIGKILL (-9).

The actors and their bookkeeping are in `ray_actors.py`; this module is
the driver's side. Workers are placed with Ray's SPREAD strategy (across nodes), ask for
`CPUS_PER_WORKER` CPUs and set POLARS_MAX_THREADS from them before polars
is imported. Code reaches the actors as the installed package; when this
process starts the Ray job (`ray.init`) it also puts the directories of
its own import path on the workers' (`code_search_path`), so a checkout
run from its directory and test modules work as they do on pipes.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sys
import time
import uuid
from collections import deque
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from executor.multiproc.ray_actors import RayInbox, RayMailbox, RaySender, RayWorker  # noqa: F401  (tests use RayMailbox)
from executor.multiproc.pipes import dumps, loads
from executor.multiproc.runtime import DRIVER
from stream_dsl.errors import DSLError

CPUS_PER_WORKER = 1.0
LOCAL_CPUS = 64  # logical CPUs of a Ray instance this process starts itself: workers are never left pending
LONG_POLL_S = 0.5  # how long one inbox fetch waits for a message at most
START_TIMEOUT_S = 120.0
_KILLED = -signal.SIGKILL


# ---------------------------------------------------------------- the job


def connect(address: str | None = None, *, node_ip_address: str | None = None) -> None:
    """Join a Ray cluster (`address`: "auto", "host:port", "ray://...") or start a local one (None); once.

    `node_ip_address`: the address this process is known by in the cluster
    (the tests' clusters listen on 127.0.0.2 and 127.0.0.3).
    """
    if ray.is_initialized():
        current = ray.get_runtime_context().gcs_address
        if address not in (None, "auto") and not address.startswith("ray://") and address != current:
            raise DSLError(
                f"this process is connected to the Ray cluster at {current}, not {address}; "
                f"one process joins one cluster"
            )
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    options: dict[str, Any] = {
        "ignore_reinit_error": True,
        "logging_level": "WARNING",
        "log_to_driver": False,
        "job_config": ray.job_config.JobConfig(code_search_path=_code_search_path()),
    }
    if address is None:
        options.update(num_cpus=max(LOCAL_CPUS, os.cpu_count() or 1), include_dashboard=False)
    else:
        options["address"] = address
    if node_ip_address is not None:
        options["_node_ip_address"] = node_ip_address
    ray.init(**options)


def _code_search_path() -> list[str]:
    """The directories of this process's import path that are not the installed Python's (checkouts, tests)."""
    prefixes = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix})
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [root] + [os.path.abspath(p or os.getcwd()) for p in sys.path]
    keep = []
    for path in paths:
        if os.path.isdir(path) and not os.path.realpath(path).startswith(prefixes) and path not in keep:
            keep.append(path)
    return keep


_generations = itertools.count()
_warm: dict[tuple[str, float | None], list[Any]] = {}  # (Ray job, CPUs per worker; None: inboxes) -> idle
# actors, kept by this process


def _job_key(cpus: float | None) -> tuple[str, float | None]:
    return ray.get_runtime_context().get_job_id(), cpus


def _take_warm(count: int, cpus: float | None, timeout: float = 5.0) -> list[Any]:
    """Up to `count` idle actors of earlier queries that still answer (one on a lost node does not)."""
    idle = _warm.get(_job_key(cpus), [])
    taken, idle[:] = idle[:count], idle[count:]
    if not taken:
        return []
    asked = {a.where.remote(): a for a in taken}
    done, _ = ray.wait(list(asked), num_returns=len(asked), timeout=timeout)
    alive = []
    for ref in done:
        try:
            ray.get(ref)
            alive.append(asked[ref])
        except ray.exceptions.RayError:
            pass
    for ref, actor in asked.items():
        if asked[ref] not in alive:
            ray.kill(actor, no_restart=True)
    return alive


def drop_warm_actors() -> None:
    """End every idle actor this process keeps (they also end with the Ray job)."""
    for idle in _warm.values():
        for actor in idle:
            ray.kill(actor, no_restart=True)
        idle.clear()


# ---------------------------------------------------------------- the driver's side


class RayTransport:
    """Workers as Ray actors (see the module doc); made per query by the driver, like the pipe transport."""

    def __init__(
        self, workers: int, address: str | None = None, cpus_per_worker: float = CPUS_PER_WORKER, warm: bool = False
    ) -> None:
        connect(address)
        self.workers = workers
        self.warm = warm  # after a clean shutdown the actors wait for the next query instead of ending
        self.cpus = cpus_per_worker
        self.generation = f"{uuid.uuid4().hex[:8]}-{next(_generations)}"
        self.sent = 0
        self.exit_codes: dict[int, int | None] = {}
        self.actors: dict[int, Any] = {}
        self.runs: dict[int, Any] = {}
        self.ended: dict[int, int | None] = {}  # worker -> exit code, once its run has ended
        self.errors: dict[int, str] = {}  # worker -> why its run ended, when not by returning
        self._places: dict[int, tuple[int, str, str]] = {}
        self._shared: dict[str, Any] = {}  # handle -> object reference (`share`)
        self._buffer: deque[bytes] = deque()
        self._fetch: Any = None
        self._closed = False
        self._worker_options: dict[str, Any] = {"num_cpus": cpus_per_worker, "max_concurrency": 8, "max_restarts": 0}
        self._worker_class = ray.remote(RayWorker).options(scheduling_strategy="SPREAD", **self._worker_options)
        reused = _take_warm(workers, cpus_per_worker) if warm else []
        self.reused = len(reused)
        self._made = reused + [
            self._worker_class.remote(w, self.generation, cpus_per_worker) for w in range(len(reused), workers)
        ]
        inboxes = _take_warm(1, None) if warm else []
        if inboxes:
            self.inbox = inboxes[0]
        else:
            here = ray.get_runtime_context().get_node_id()
            self.inbox = (
                ray.remote(RayInbox)
                .options(
                    num_cpus=0,
                    max_concurrency=4,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
                )
                .remote(self.generation)
            )
        self.inbox.begin.remote(self.generation)
        self._sender = RaySender(DRIVER, self.generation, {w: a for w, a in enumerate(self._made)})

    @classmethod
    def from_config(cls, config: Any) -> Callable[[int], "RayTransport"]:
        """The factory for a RunConfig: its `ray_address`."""
        address = getattr(config, "ray_address", None)
        return lambda workers: cls(workers, address=address, warm=True)

    # -------------------------------------------------------- Transport

    def share(self, data: bytes) -> Any:
        """Put `data` into the object store once; the handle names it, and each worker's `run` gets the
        references (Ray tracks them as borrowed there, so they stay valid while the workers use them)."""
        key = f"shared-{len(self._shared)}"
        self._shared[key] = ray.put(data)
        return key

    def keep_local(self, workers: set[int]) -> None:
        """Replace the actors of `workers` that run on another node by ones pinned to the driver's node."""
        here = ray.get_runtime_context().get_node_id()
        moved = False
        for worker in sorted(workers):
            if ray.get(self._made[worker].where.remote(), timeout=START_TIMEOUT_S)[2] == here:
                continue
            ray.kill(self._made[worker], no_restart=True)
            pinned = NodeAffinitySchedulingStrategy(here, soft=False)
            self._made[worker] = (
                ray.remote(RayWorker)
                .options(scheduling_strategy=pinned, **self._worker_options)
                .remote(worker, self.generation, self.cpus)
            )
            self._places.pop(worker, None)
            moved = True
        if moved:  # no message was sent yet: route to the new actors
            self._sender.close()
            self._sender = RaySender(DRIVER, self.generation, {w: a for w, a in enumerate(self._made)})

    def start_worker(self, worker: int, main: Callable[..., None]) -> None:
        actor = self._made[worker]
        self.actors[worker] = actor
        peers = {w: a for w, a in enumerate(self._made) if w != worker}
        self.runs[worker] = actor.run.remote(main, peers, self.inbox, worker, self.generation, self._shared)

    def send(self, worker: int, message: Any) -> None:
        if self._closed or worker in self.ended:
            return
        self._sender.send(worker, dumps(message))
        self.sent += 1

    def receive(self, timeout: float) -> Any | None:
        if self._buffer:
            return loads(self._buffer.popleft())
        if self._closed:
            return None
        if self._fetch is None:
            self._fetch = self.inbox.fetch.remote(self.generation, min(LONG_POLL_S, max(timeout, 0.0)))
        running = [ref for w, ref in self.runs.items() if w not in self.ended]
        done, _ = ray.wait([self._fetch, *running], num_returns=1, timeout=timeout, fetch_local=True)
        if self._fetch in done:
            ref, self._fetch = self._fetch, None
            try:
                self._buffer.extend(ray.get(ref))
            except ray.exceptions.RayError:
                pass  # the inbox is gone (the transport is being closed)
        return loads(self._buffer.popleft()) if self._buffer else None

    def is_alive(self, worker: int) -> bool:
        return worker in self.runs and not self._ended(worker)

    def dead_workers(self) -> list[tuple[int, int | None]]:
        return [(w, self.ended[w]) for w in sorted(self.runs) if self._ended(w)]

    @property
    def pids(self) -> list[int]:
        return [self._place(w)[0] for w in sorted(self.actors)]

    def node_of(self, worker: int) -> str:
        """The Ray node id worker `worker` runs on (tests place workers on different nodes)."""
        return self._place(worker)[2]

    def shutdown(self, timeout: float = 2.0, message: Any = None) -> None:
        if self._closed:
            return
        if message is not None:
            for worker in self.runs:
                if not self._ended(worker):
                    self.send(worker, message)
        self._sender.drain(min(timeout, 2.0))
        running = [ref for w, ref in self.runs.items() if not self._ended(w)]
        if running:
            ray.wait(running, num_returns=len(running), timeout=timeout)
        self._finish(kill_running=True, keep_clean=self.warm)

    def abort(self) -> None:
        if self._closed:
            return
        for worker in self.runs:
            if not self._ended(worker):
                self.ended[worker] = _KILLED
        self._finish(kill_running=True)

    # -------------------------------------------------------- internals

    def _ended(self, worker: int) -> bool:
        """Whether worker `worker`'s run has ended; the first time seen, its exit code is settled."""
        if worker in self.ended:
            return True
        ref = self.runs.get(worker)
        if ref is None:
            return False
        done, _ = ray.wait([ref], timeout=0, fetch_local=True)
        if not done:
            return False
        try:
            self.ended[worker] = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # main raised: a process would exit with 1
            self.errors[worker] = str(exc)
            self.ended[worker] = 1
        except ray.exceptions.RayError as exc:  # the actor died
            self.errors[worker] = str(exc)
            self.ended[worker] = self._reported_exit(worker)
        return True

    def _reported_exit(self, worker: int) -> int:
        try:
            return ray.get(self.inbox.exit_codes.remote(self.generation), timeout=10.0).get(worker, _KILLED)
        except ray.exceptions.RayError:
            return _KILLED

    def _place(self, worker: int) -> tuple[int, str, str]:
        if worker not in self._places:
            self._places[worker] = ray.get(self.actors[worker].where.remote(), timeout=START_TIMEOUT_S)
        return self._places[worker]

    def _learn_places(self, timeout: float = 10.0) -> None:
        """Where the started workers that still answer run (to wait for their processes after the kill)."""
        asked = {w: self.actors[w].where.remote() for w in self.actors if w not in self._places}
        if not asked:
            return
        done, _ = ray.wait(list(asked.values()), num_returns=len(asked), timeout=timeout)
        for worker, ref in asked.items():
            if ref in done:
                try:
                    self._places[worker] = ray.get(ref)
                except ray.exceptions.RayError:
                    pass

    def _finish(self, *, kill_running: bool, keep_clean: bool = False) -> None:
        """Kill every actor (stragglers count as SIGKILLed), the inbox too; wait until local processes are gone.

        With `keep_clean`, the actors whose main returned (exit code 0) are
        kept warm for the next transport of this process instead.
        """
        self._closed = True
        self._sender.close()
        for worker in self.runs:
            if not self._ended(worker) and kill_running:
                self.ended[worker] = _KILLED
        self.exit_codes = {w: self.ended.get(w) for w in sorted(self.runs)}
        self._learn_places()
        kept = {w for w, code in self.exit_codes.items() if keep_clean and code == 0}
        local = {
            w: self._places[w][0] for w in self._places if self._places[w][1] == socket.gethostname() and w not in kept
        }
        for worker, actor in enumerate(self._made):
            if worker in kept:
                _warm.setdefault(_job_key(self.cpus), []).append(actor)
            else:
                ray.kill(actor, no_restart=True)
        if keep_clean:
            _warm.setdefault(_job_key(None), []).append(self.inbox)
        else:
            ray.kill(self.inbox, no_restart=True)
        _wait_gone(list(local.values()), timeout=10.0)
        self._buffer.clear()
        self._fetch = None


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait until the processes `pids` (of this machine) have ended, or `timeout`."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if state in "ZXx":
                break
            time.sleep(0.01)
