"""Workers import stream-dsl's packages from where the driver did, whatever the working directory holds
(executor/multiproc/forkservers.py, `_server_environment`).

A fork server starts as `python -c`, whose import path begins with the
working directory, and it preloads the executor before the driver's import
path applies. A user's folder named `executor` (or `optimizer`,
`stream_dsl`) in the directory a query was started from was imported in
its place, and every worker died. Each case runs a query on drizzle in a
fresh interpreter (fork servers are started once per process) whose
working directory holds such folders; a UDF reports, from inside the
workers, which `executor` they imported and the environment they see.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

JOB = textwrap.dedent(
    """
    import json, os, sys
    import polars as pl
    import executor
    import stream_dsl as sd

    default = pl.thread_pool_size()  # the default fork server's count; any other has a server of its own
    threads = default if sys.argv[1] == "default" else (1 if default != 1 else 2)
    ctx = sd.Context(workers=2, executor="drizzle", worker_threads=threads)

    def seen(ad_id):
        module = sys.modules["executor"].__file__
        return json.dumps([module, os.environ.get("PYTHONSAFEPATH"), os.environ.get("PYTHONPATH")])

    ctx.register_function("seen", seen, "VARCHAR")
    ctx.sql(
        "CREATE STREAM events (ad_id STRING, event_time TIMESTAMP) WITH (connector = 'generator', kind = 'ysb', "
        "rate = '1000', count = '200', splits = 'workers')"
    )
    out = ctx.sql("SELECT seen(ad_id) AS seen, COUNT(*) AS n FROM events GROUP BY seen(ad_id)").collect()
    driver = [executor.__file__, os.environ.get("PYTHONSAFEPATH"), os.environ.get("PYTHONPATH")]
    print(json.dumps({"driver": driver, "workers": [[json.loads(s), n] for s, n in out.rows()]}))
    """
)


@pytest.fixture
def shadowed(tmp_path: Path) -> Path:
    """A working directory with a user's own packages named like stream-dsl's."""
    where = tmp_path / "project"
    for name in ("executor", "optimizer", "stream_dsl"):
        (where / name).mkdir(parents=True)
        (where / name / "__init__.py").write_text("")
    return where


@pytest.mark.parametrize("server", ["default", "own thread count"])
def test_workers_import_the_drivers_stream_dsl_not_the_working_directorys(shadowed, tmp_path, server):
    job = tmp_path / "job.py"  # outside the working directory: the driver's own path does not hold the folders
    job.write_text(JOB)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTHONSAFEPATH", None)
    run = subprocess.run(
        [sys.executable, str(job), server.split()[0]],
        cwd=shadowed,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    driver_module, _, _ = report["driver"]
    assert Path(driver_module).resolve() == REPO / "executor" / "__init__.py"
    # every event went through a worker, each of which imported the driver's executor and sees the user's environment
    assert report["workers"] == [[[driver_module, None, str(REPO)], 200]]
