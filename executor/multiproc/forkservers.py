"""Workers with their own polars thread count, forked from a fork server of their own (started fast).

Polars sizes its thread pool once, when it is imported: POLARS_MAX_THREADS
is read then (set later, even in a forked child before any query, it
changes nothing). The pipes transport's workers are forked from
multiprocess's fork server, which has imported polars with this process's
setting, so they all get polars' default (one thread per core). With N
workers on N cores those pools compete: a task costs 20-40% more CPU with
2 polars threads than with 1 (docs/performance.md). A fresh `spawn`
interpreter per worker, started with POLARS_MAX_THREADS set, costs about a
second per worker; a fork from a server that has imported everything costs
milliseconds.

So a worker with another thread count is forked from one more fork server,
a `multiprocess.forkserver.ForkServer` of its own per thread count: started
lazily, once per process, with POLARS_MAX_THREADS set in its environment
(only while it is spawned: this process's environment, and so the default
server's and other Contexts' settings, are left as they were), preloading
what the default one does. Its workers are ordinary `forkserver` processes
(`ThreadsProcess`); only the server that forks them differs, so a child
needs nothing new (the server's `main` is multiprocess's own).

Like the default server, one exits with this process: it reads the end of
an "alive" pipe whose write ends only this process and the workers forked
from it hold, so it stops when all of them are gone (also after a SIGKILL);
it is not a worker and is never handed a query.

Every server, multiprocess's own included (`start_default_server`), is
spawned with an environment that makes it import stream-dsl's packages
from where this process did, whatever folders the working directory holds
(`_server_environment`).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from multiprocess import forkserver, popen_forkserver, resource_tracker, spawn, util
from multiprocess.context import ForkServerProcess, reduction, set_spawning_popen

_servers: dict[int, "ThreadsForkServer"] = {}  # polars threads -> its fork server (this process's)
_servers_lock = threading.Lock()
_environment_lock = threading.Lock()  # one server spawn at a time with the environment changed


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, as `taskset` or a container's cpuset set it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """The polars threads of a worker forked from the default fork server: this process's own count (both read
    this process's environment when they import polars)."""
    import polars as pl

    return pl.thread_pool_size()


def worker_threads(workers: int, setting: int | None = None) -> int:
    """Polars threads per worker: `setting` when given (RunConfig.worker_threads), else 'auto':
    max(1, usable cores // workers), so workers do not compete for cores and one worker keeps them all.
    A POLARS_MAX_THREADS in this process's environment is the user's choice: 'auto' then keeps it."""
    if setting is not None:
        return setting
    default = default_threads()
    if os.environ.get("POLARS_MAX_THREADS"):
        return default
    cores = min(usable_cores(), default)  # polars' own count also heeds a container's CPU quota
    return max(1, cores // max(1, workers))


PACKAGES = ("stream_dsl", "optimizer", "executor")  # stream-dsl's top-level packages
RESTORE_VARIABLE = "STREAM_DSL_SERVER_RESTORE"  # the variables a server's start changed, as they were (JSON)


def package_roots() -> list[str]:
    """The directories this process imports stream-dsl's packages from (a checkout, or site-packages)."""
    roots: list[str] = []
    for name in PACKAGES:
        location = getattr(importlib.import_module(name), "__file__", None)
        root = None if location is None else os.path.dirname(os.path.dirname(os.path.abspath(location)))
        if root is not None and root not in roots:
            roots.append(root)
    return roots


@contextmanager
def _server_environment(threads: int | None) -> Iterator[None]:
    """This process's environment, for the block, as a fork server being spawned must read it.

    - POLARS_MAX_THREADS=`threads` (None: left as it is).
    - The import path. multiprocess starts a server with `python -c`, whose
      first import path entry is the working directory, and the server
      preloads the executor's modules before this process's import path
      applies (multiprocess's `forkserver.main` ignores its `sys_path`). So a
      folder named `executor`, `optimizer` or `stream_dsl` in the directory
      a query was started from was imported instead of stream-dsl's own, and
      every worker died (or a checkout's workers ran another checkout's
      code). PYTHONSAFEPATH drops that entry (Python 3.11 and later), and
      PYTHONPATH puts first where this process found stream-dsl's packages.

    Workers put PYTHONPATH and PYTHONSAFEPATH back (`restore_environment`).
    """
    inherited = os.environ.get("PYTHONPATH")
    changes = {"PYTHONSAFEPATH": "1", "PYTHONPATH": os.pathsep.join([*package_roots(), *filter(None, [inherited])])}
    if threads is not None:
        changes["POLARS_MAX_THREADS"] = str(threads)
    with _environment_lock:
        before = {name: os.environ.get(name) for name in [*changes, RESTORE_VARIABLE]}
        os.environ[RESTORE_VARIABLE] = json.dumps({name: before[name] for name in ("PYTHONSAFEPATH", "PYTHONPATH")})
        os.environ.update(changes)
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def restore_environment() -> None:
    """In a worker: PYTHONPATH and PYTHONSAFEPATH as they were before its fork server's start changed them, so a
    program a UDF starts sees the user's settings. (POLARS_MAX_THREADS stays: it is the worker's own count.)"""
    saved = os.environ.pop(RESTORE_VARIABLE, None)
    if saved is None:  # not forked from a server started here (a Ray actor)
        return
    for name, value in json.loads(saved).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def start_default_server() -> None:
    """multiprocess's own fork server (its preload set before), started if it is not running, in the environment
    a server needs (`_server_environment`)."""
    resource_tracker.ensure_running()  # shared with every server: started outside the changed environment
    with _server_environment(None):
        forkserver.ensure_running()


class ThreadsForkServer(forkserver.ForkServer):
    """A fork server whose polars has `threads` threads: spawned with POLARS_MAX_THREADS set, then it preloads."""

    def __init__(self, threads: int, preload: list[str]) -> None:
        super().__init__()
        self.threads = threads
        self.set_forkserver_preload(preload)

    def ensure_running(self) -> None:
        resource_tracker.ensure_running()  # shared with the default server: started outside the changed environment
        with _server_environment(self.threads):
            super().ensure_running()

    @property
    def pid(self) -> int | None:
        return self._forkserver_pid


def server(threads: int, preload: list[str]) -> ThreadsForkServer:
    """This process's fork server for workers with `threads` polars threads (made once; started by its first
    fork, and again by the next one if it died)."""
    with _servers_lock:
        found = _servers.get(threads)
        if found is None:
            found = _servers[threads] = ThreadsForkServer(threads, preload)
        return found


def server_pids() -> dict[int, int]:
    """Polars threads -> the process id of its running fork server (for leak checks)."""
    with _servers_lock:
        return {threads: s.pid for threads, s in _servers.items() if s.pid is not None}


class _Popen(popen_forkserver.Popen):
    """`popen_forkserver.Popen` asking `server` to fork instead of multiprocess's module-wide fork server."""

    def __init__(self, process_obj: Any, server: ThreadsForkServer) -> None:
        self._server = server
        super().__init__(process_obj)

    def _launch(self, process_obj: Any) -> None:  # popen_forkserver.Popen._launch (multiprocess 0.70), one call changed
        prep_data = spawn.get_preparation_data(process_obj._name)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = self._server.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class ThreadsProcess(ForkServerProcess):
    """A `forkserver` process forked from the server for its `polars_threads` (`server` made it before)."""

    def __init__(self, polars_threads: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.polars_threads = polars_threads

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj, _servers[process_obj.polars_threads])


def process(threads: int, preload: list[str], **kwargs: Any) -> ThreadsProcess:
    """A worker process (`multiprocess.Process` arguments) to be forked from the server for `threads`."""
    server(threads, preload)
    return ThreadsProcess(threads, **kwargs)
