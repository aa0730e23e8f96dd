"""The worker process's main loop: setup, heartbeat, failure reports and stop, around a `WorkerRunner`."""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from typing import Any

import polars as pl

from executor import kernels
from executor.multiproc.allocator import keep_freed_memory
from executor.multiproc.forkservers import restore_environment
from executor.multiproc.messages import Drained, Failed, Heartbeat, Ready, Setup, Stop
from executor.multiproc.profiling import profiled
from executor.multiproc.runtime import DRIVER, Channel
from executor.multiproc.scheduler import Run
from executor.multiproc.worker import IDLE_POLL_S, WorkerRunner
from stream_dsl.errors import DSLError


DRAIN_S = 10.0  # a released worker waits this long for its peers' Drained before it gives up and exits
WARM_EXIT_S = 120.0  # a released worker that gets no Setup for this long exits (its pool drops it sooner)


def main(channel: Channel) -> None:
    """The worker process: serve queries (Setup, messages until `Stop`) for as long as each ends with
    `Release` (a warm pool, `pool.py`) and the drain after it completes; else exit.

    Ctrl-C is the driver's to handle: a worker ignores SIGINT and is stopped by the driver.
    """
    restore_environment()  # PYTHONPATH as the user set it, not as its fork server's start needed (forkservers.py)
    if threading.current_thread() is threading.main_thread():  # a Ray actor runs it in another thread
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        keep_freed_memory()  # no page faults for every batch's buffers (allocator.py); not in a Ray actor's host
    try:
        warm = False
        while (drained := profiled(_serve_query, channel, WARM_EXIT_S if warm else None)) is not None and _drain(
            channel, drained
        ):
            warm = True
    finally:
        channel.release()


def _serve_query(channel: Channel, give_up_s: float | None = None) -> set[int] | None:
    """One query: set up, then handle messages until `Stop` or `Release` (or the driver is gone).
    When it was released (the process may serve the next query): the peers that drained already."""
    runner: WorkerRunner | None = None
    try:
        setup = _await_setup(channel, give_up_s)
        if setup is None:
            return None
        runner = WorkerRunner(channel, setup)
        _check_polars()
        _start_heartbeat(channel, setup.heartbeat_s, lambda: runner is None or runner.stopped)
        channel.send(DRIVER, Ready(channel.worker, os.getpid()))
        while not runner.stopped:
            if runner.work and not isinstance(runner.work[0], Run):
                runner.step()  # bookkeeping (a report, a timestamp): the inbox is looked at before the next task
                continue
            message = channel.receive(0 if runner.work else IDLE_POLL_S)
            if message is not None:
                runner.handle(message)
            elif runner.work:
                runner.step()
            elif not channel.driver_alive():
                return None
        return runner.drained if runner.released else None
    except BaseException as exc:  # report, then wait to be stopped: the driver ends the query
        _report_failure(channel, exc)
        _await_stop(channel)
        return None
    finally:
        if runner is not None:
            runner.close()


def _drain(channel: Channel, already: set[int]) -> bool:
    """After a Release: tell every peer this process sends nothing more, read until every peer said so
    (`already`: those whose word came during the query; what the ended query still had in the pipes is
    dropped), then tell the driver. False: give up (exit)."""
    peers = [w for w in getattr(channel, "outlets", {}) if w != DRIVER]
    for peer in peers:
        channel.send(peer, Drained(channel.worker))
    waiting, deadline = set(peers) - already, time.monotonic() + DRAIN_S
    while waiting:
        message = channel.receive(IDLE_POLL_S)
        if isinstance(message, Drained):
            waiting.discard(message.worker)
        elif message is None and (not channel.driver_alive() or time.monotonic() > deadline):
            return False
    channel.send(DRIVER, Drained(channel.worker))
    return True


def _start_heartbeat(channel: Channel, every_s: float, stopped: Any) -> None:
    """A daemon thread that tells the driver this process is alive, every `every_s` seconds.

    A thread, so a long task does not look like a hang; a process that is
    stopped (SIGSTOP) or wedged in native code falls silent and the driver's
    heartbeat timeout catches it. It also ends the process at once when the
    driver is gone, even in the middle of a long group: an orphan must not
    go on reading sources that a restarted driver's workers read again.
    """

    def beat() -> None:
        while not stopped():
            if not channel.driver_alive():
                os._exit(3)
            try:
                channel.send(DRIVER, Heartbeat(channel.worker))
            except Exception:
                return
            time.sleep(every_s)

    threading.Thread(target=beat, name="stream-dsl-heartbeat", daemon=True).start()


def _check_polars() -> None:
    """Run a tiny parallel polars query before saying Ready.

    A fork of a process whose polars thread pool was already running hangs
    on its first parallel query. The fork server must never have run one
    (it only imports modules, so modules must not run polars queries at
    import time); if it did, the worker hangs here and the driver gives up
    waiting for Ready with a clear error, instead of hanging in a task.
    """
    pl.DataFrame({"a": [1, 2, 1]}).group_by("a").len()


def _await_setup(channel: Channel, give_up_s: float | None = None) -> Setup | None:
    """The next query's Setup; None on Stop, when the driver is gone, or after `give_up_s` (a warm worker
    nobody came back for: its pool dropped it, or the Context was never collected)."""
    deadline = None if give_up_s is None else time.monotonic() + give_up_s
    while True:
        message = channel.receive(IDLE_POLL_S)
        if isinstance(message, Setup):
            return message
        if isinstance(message, Stop) or (message is None and not channel.driver_alive()):
            return None
        if deadline is not None and time.monotonic() > deadline:
            return None


def _report_failure(channel: Channel, exc: BaseException) -> None:
    if isinstance(exc, DSLError):
        message = str(exc)
    else:
        message = f"worker {channel.worker} failed: {type(exc).__name__}: {kernels.error_text(exc)}"
    try:
        channel.send(DRIVER, Failed(channel.worker, message, traceback.format_exc()))
    except Exception:
        pass


def _await_stop(channel: Channel) -> None:
    while True:
        try:
            message = channel.receive(IDLE_POLL_S)
        except Exception:
            return
        if isinstance(message, Stop) or (message is None and not channel.driver_alive()):
            return
