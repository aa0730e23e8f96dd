"""Ctrl-C and SIGTERM stop a query cleanly: workers exit, temp files and uncommitted checkpoint parts go.

Python turns SIGINT into KeyboardInterrupt in the main thread, but only
between bytecodes: a main thread blocked in an untimed `Thread.join()` (a
script in `QueryHandle.await_termination()`) never sees it, so every wait
here is sliced (`wait_for`). It waits on an Event the query thread sets
when it has closed everything, never on `Thread.join`: a KeyboardInterrupt
inside `join` marks a thread that still runs as stopped (CPython 3.11,
bpo-45274's fix), and the program would exit while the query still closes.

SIGTERM's default action ends the process at once, without `finally`
blocks or exit handlers, leaving worker pipes and `pymp-*` temp dirs
behind; `terminate_gracefully` turns it into `Terminated` (a SystemExit
with code 143, the shell's 128 + 15), which unwinds like Ctrl-C does.
`stream-dsl` installs it; a library does not take over its host's
signals, so a program that wants the same calls it itself. It is
installed only while no one else handles SIGTERM, and only from the main
thread (signal handlers live there).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

WAIT_SLICE_S = 0.1  # how often a waiting main thread looks at pending signals
EXIT_SIGINT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_SIGTERM = 143  # 128 + SIGTERM


class Terminated(SystemExit):
    """SIGTERM arrived: unwind (stopping queries on the way) and exit with 143."""

    def __init__(self) -> None:
        super().__init__(EXIT_SIGTERM)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def terminate_gracefully() -> None:
    """Make SIGTERM raise Terminated in the main thread, unless the program set its own handler."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _raise_terminated)


def wait_for(done: threading.Event, timeout: float | None) -> bool:
    """Wait until `done` is set or `timeout` passes, in slices, so Ctrl-C and SIGTERM reach a waiting main
    thread; whether it is set."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done.is_set():
        left = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, deadline - time.monotonic())
        if left <= 0:
            break
        done.wait(left)
    return done.is_set()
