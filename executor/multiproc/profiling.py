"""An opt-in profiler for worker processes: `STREAM_DSL_PROFILE=DIR` writes one cProfile file per query served.

The driver's own time is easy to profile from the outside; a worker's is
not (it is a forked process), and a per-batch fixed cost has to be found in
both. Off unless the variable is set: then each query a worker serves is
profiled and dumped to DIR/worker-<pid>-<n>.prof (read it with `pstats`).
`STREAM_DSL_PROFILE_CLOCK=cpu` times it by process CPU instead of the wall
clock, which a loaded machine inflates.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")

PROFILE_ENV = "STREAM_DSL_PROFILE"
_served = itertools.count()


def profiled(run: Callable[..., T], *args: Any) -> T:
    """`run(*args)`, under cProfile when STREAM_DSL_PROFILE names a directory."""
    directory = os.environ.get(PROFILE_ENV)
    if not directory:
        return run(*args)
    import cProfile

    cpu_clock = os.environ.get(PROFILE_ENV + "_CLOCK") == "cpu"
    profile = cProfile.Profile(time.process_time) if cpu_clock else cProfile.Profile()
    try:
        return profile.runcall(run, *args)
    finally:
        os.makedirs(directory, exist_ok=True)
        profile.dump_stats(os.path.join(directory, f"worker-{os.getpid()}-{next(_served)}.prof"))
