"""One polars thread per worker by default, started fast (issue 22; executor/multiproc/forkservers.py).

- The thread count a worker's polars actually has (`pl.thread_pool_size()`
  reported from inside it) is max(1, usable cores // workers) by default
  ('auto') for 1, 2 and 3 workers, and an explicit `worker_threads` wins;
  starting workers of one count never changes another's (the driver's
  environment is left as it was).
- A Context's warm workers are kept per (workers, thread count): a query
  with 1 worker, then with 2, then with 1 again gets workers whose polars
  has the right number of threads, and the 1-worker ones are reused.
- `--worker-threads auto` and `worker_threads="auto"` say the default.
- A fork server started for a thread count ends with the process that
  started it, whether it exits or is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import stream_dsl as sd
import transport_probe as probe
from executor.multiproc import forkservers, transports
from executor.multiproc.runtime import MultiprocessTransport
from stream_dsl.config import RunConfig

CORES = min(len(os.sched_getaffinity(0)), pl.thread_pool_size())  # the cores this process may use (and polars sees)
REPO = Path(__file__).resolve().parents[1]


def auto(workers: int) -> int:
    return max(1, CORES // workers)


def reported_threads(transport: MultiprocessTransport) -> list[tuple[int, str | None]]:
    """Start every worker with the probe that reports (polars' thread pool size, POLARS_MAX_THREADS) from inside."""
    return reports(transport, probe.report_threads)


def reports(transport: MultiprocessTransport, main: Any) -> list[tuple]:
    """Start every worker with the probe `main`; what each sent the driver, without its tag."""
    for worker in range(transport.workers):
        transport.start_worker(worker, main)
    got: list[tuple] = []
    for _ in range(24):  # a liveness bound (2 min), not a timing assert: a worker that died fails the test
        if len(got) == transport.workers:
            break
        message = transport.receive(5.0)
        if message is not None:
            got.append(message[1:])
    assert len(got) == transport.workers, f"{transport.workers - len(got)} workers did not report"
    return got


def test_workers_get_cores_over_workers_polars_threads_by_default_and_an_explicit_count_wins(monkeypatch):
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    default = forkservers.default_threads()
    counts = set()
    for workers, setting in [(2, None), (1, None), (3, None), (1, 1), (2, 2), (2, "auto")]:
        transport = transports.configured_factory("pipes", RunConfig(worker_threads=setting))(workers)
        expected = auto(workers) if setting in (None, "auto") else setting
        counts.add(expected)
        try:
            got = reported_threads(transport)
        finally:
            transport.shutdown(message="stop")
        assert [threads for threads, _ in got] == [expected] * workers, (workers, setting)
        # the default server's workers (polars' default count) see this process's environment, unchanged
        assert {env for _, env in got} == {None if expected == default else str(expected)}
        assert "POLARS_MAX_THREADS" not in os.environ
    assert set(forkservers.server_pids()) <= counts - {default}  # one server per other count, none for polars


def test_auto_keeps_a_polars_max_threads_set_in_the_environment(monkeypatch):
    monkeypatch.setenv("POLARS_MAX_THREADS", "7")  # the user's choice: the default server's workers inherit it
    assert forkservers.worker_threads(2) == forkservers.default_threads()
    assert forkservers.worker_threads(2, 3) == 3
    monkeypatch.delenv("POLARS_MAX_THREADS")
    assert [forkservers.worker_threads(n) for n in (1, 2, 3)] == [auto(1), auto(2), auto(3)]


def polars_threads_of(pid: int) -> int:
    """How many polars pool threads process `pid` runs (polars names them 'polars-<i>'), seen from outside."""
    names = [Path(f"/proc/{pid}/task/{t}/comm").read_text().strip() for t in os.listdir(f"/proc/{pid}/task")]
    return sum(1 for name in names if name.startswith("polars-") and name[len("polars-") :].isdigit())


def test_a_contexts_warm_workers_are_kept_per_worker_and_thread_count():
    query = "SELECT ad_id, COUNT(*) AS n FROM events GROUP BY ad_id"
    ddl = (
        "CREATE STREAM events (ad_id STRING, event_time TIMESTAMP) WITH (connector = 'generator', kind = 'ysb', "
        "rate = '1000', count = '500', realtime = 'false')"
    )
    with sd.Context(workers=1, executor="drizzle") as ctx:
        ctx.sql(ddl)
        first = ctx.sql(query).collect().sort("ad_id")
        pool = ctx._worker_pool()
        ctx.sql("SET workers = 2")
        assert ctx.sql(query).collect().sort("ad_id").equals(first)
        ctx.sql("SET workers = 1")
        assert ctx.sql(query).collect().sort("ad_id").equals(first)
        assert pool.reused == 1  # the third query got the first one's worker
        idle = dict(pool._idle)
        assert set(idle) == {(1, auto(1)), (2, auto(2))}
        for (workers, threads), (transport, _) in idle.items():
            assert len(transport.pids) == workers
            assert [polars_threads_of(pid) for pid in transport.pids] == [threads] * workers


OWNER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    import transport_probe as probe
    from executor.multiproc import forkservers
    from executor.multiproc.runtime import MultiprocessTransport

    threads = 1 if forkservers.default_threads() != 1 else 2
    transport = MultiprocessTransport(2, polars_threads=threads)
    for worker in range(2):
        transport.start_worker(worker, probe.report_threads)
    for _ in range(2):
        while transport.receive(5.0) is None:
            pass
    print(*forkservers.server_pids().values(), *transport.pids, flush=True)
    if sys.argv[1] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def running(pid: int) -> bool:
    """Whether `pid` is a process that has not ended (a zombie waiting for its reaper has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("end", ["exit", "kill"])
def test_a_thread_count_fork_server_ends_with_the_process_that_started_it(end):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("POLARS_MAX_THREADS", None)
    owner = subprocess.run(
        [sys.executable, "-c", OWNER, end, str(REPO / "tests")], env=env, capture_output=True, text=True, timeout=120
    )
    assert owner.returncode == (-signal.SIGKILL if end == "kill" else 0), owner.stderr
    pids = [int(p) for p in owner.stdout.split()]
    assert len(pids) == 3  # the fork server and its two workers
    deadline = time.monotonic() + 60  # a liveness bound, not a timing assert: they end within a poll or two
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if running(pid)]


def test_auto_is_the_default_and_can_be_said_on_the_command_line():
    import argparse

    from stream_dsl.cli.common import worker_threads

    assert sd.Context().config.worker_threads is None  # 'auto', resolved where the workers start
    assert sd.Context(worker_threads="auto").config.worker_threads is None
    assert sd.Context(worker_threads=3).config.worker_threads == 3
    assert worker_threads("auto") == "auto" and worker_threads("2") == 2
    with pytest.raises(argparse.ArgumentTypeError, match="positive integer or 'auto'"):
        worker_threads("0")


@pytest.mark.parametrize("threads", [None, 1])
def test_workers_start_with_numpy_ma_imported_by_their_fork_server(threads):
    """polars imports numpy.ma at a process's first Series made from a numpy array (11-14 ms); the fork servers
    preload it, so a worker does not pay it inside its first batch, whatever its thread count."""
    transport = MultiprocessTransport(2, polars_threads=threads)
    try:
        assert reports(transport, probe.report_modules) == [(True,)] * transport.workers  # imported, in each
    finally:
        transport.shutdown()
