"""Ctrl-C and SIGTERM stop a query cleanly, in real processes: `stream-dsl run`, a script, collect().

Each test starts a real Python process, waits until its query is running,
signals it by pid, and checks what a user would: the exit code (130 for
SIGINT, 143 for SIGTERM), the run summary, every process the run started
gone, no `pymp-*` temp dir left in the run's own TMPDIR, and no checkpoint
directory without its manifest. Waits are bounded by a hang guard only;
nothing is timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 120.0

STREAM = """CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'generator', kind = 'ysb', rate = '20000');
"""
QUERY = "SELECT ad_id, window_start, COUNT(*) AS n FROM events GROUP BY ad_id, TUMBLE(event_time, INTERVAL '1' SECOND)"

pytestmark = pytest.mark.multiprocess


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (workers are the fork server's children, not the driver's)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def launch(tmp_path: Path, argv: list[str]) -> tuple[subprocess.Popen, Path]:
    temp = Path(tempfile.mkdtemp(prefix="sig-"))  # short: the fork server's socket path lives in it
    env = dict(os.environ, TMPDIR=str(temp), PYTHONPATH=str(ROOT))
    out = tmp_path / "stdout"
    with open(out, "wb") as stdout, open(tmp_path / "stderr", "wb") as stderr:
        process = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    return process, temp


def interrupt(process: subprocess.Popen, started: Callable[[], bool], signum: int, log: Path) -> set[int]:
    """Signal `process` once `started()`; returns the processes it had started by then."""
    wait_until(lambda: started() or process.poll() is not None, "the query to run")
    assert process.poll() is None, f"the run ended before it was signalled:\n{log.read_text()[-3000:]}"
    children = descendants(process.pid)
    os.kill(process.pid, signum)
    try:
        process.wait(HANG_GUARD_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return children


def assert_clean(children: set[int], temp: Path, checkpoint_dir: Path | None = None) -> None:
    wait_until(lambda: not any(alive(p) for p in children), "every process the run started to exit")
    assert not list(temp.glob("pymp-*")), f"temp dirs left behind: {os.listdir(temp)}"
    if checkpoint_dir is not None and (checkpoint_dir / "checkpoints").exists():
        for checkpoint in (checkpoint_dir / "checkpoints").iterdir():
            assert (checkpoint / "manifest.json").is_file(), f"an uncommitted checkpoint was left: {checkpoint}"


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
def test_run_stops_on_a_signal_with_its_exit_code_and_summary(tmp_path, executor, signum, code):
    out_dir, checkpoint_dir = tmp_path / "out", tmp_path / "ckpt"
    script = tmp_path / "q.sql"
    script.write_text(
        STREAM + f"CREATE SINK out WITH (connector = 'files', path = '{out_dir}', format = 'ndjson');\n"
        f"SET checkpoint_dir = '{checkpoint_dir}';\nINSERT INTO out {QUERY};\n"
    )
    process, temp = launch(
        tmp_path, ["-m", "stream_dsl", "run", str(script), "--executor", executor, "--group-size", "2"]
    )
    children = interrupt(process, lambda: (out_dir / "_committed").exists(), signum, tmp_path / "stderr")
    assert process.returncode == code, (tmp_path / "stderr").read_text()[-2000:]
    assert "INSERT INTO out:" in (tmp_path / "stdout").read_text() and "stopped" in (tmp_path / "stdout").read_text()
    assert_clean(children, temp, checkpoint_dir)


AWAITING = """
import sys
import stream_dsl as sd
ctx = sd.Context(executor=sys.argv[1])
ctx.sql('''{stream}''')
handle = ctx.sql('''{query}''').start(sink=lambda batch_id, frame: print("batch", batch_id, flush=True))
handle.await_termination()
"""

COLLECTING = """
import sys
import stream_dsl as sd
ctx = sd.Context(executor=sys.argv[1])
ctx.sql('''{stream}'''.replace("rate = '20000'", "rate = '20000', count = '2000000000'"))
print("collecting", flush=True)
ctx.sql('''{query}''').collect()
"""


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
@pytest.mark.parametrize(
    "program, ready", [(AWAITING, "batch"), (COLLECTING, "collecting")], ids=["await_termination", "collect"]
)
def test_ctrl_c_stops_a_script_blocked_in_a_query(tmp_path, executor, program, ready):
    source = tmp_path / "script.py"
    source.write_text(program.format(stream=STREAM, query=QUERY))
    process, temp = launch(tmp_path, [str(source), executor])
    children = interrupt(
        process, lambda: ready in (tmp_path / "stdout").read_text(), signal.SIGINT, tmp_path / "stderr"
    )
    assert process.returncode != 0 and "KeyboardInterrupt" in (tmp_path / "stderr").read_text()
    assert_clean(children, temp)


def test_a_script_that_asks_for_it_is_stopped_by_sigterm_with_exit_code_143(tmp_path):
    """The library leaves SIGTERM alone unless the program opts in (a host such as a test runner keeps its own)."""
    source = tmp_path / "script.py"
    opted_in = "from executor.interrupts import terminate_gracefully\nterminate_gracefully()\n"
    source.write_text(opted_in + AWAITING.format(stream=STREAM, query=QUERY))
    process, temp = launch(tmp_path, [str(source), "drizzle"])
    children = interrupt(
        process, lambda: "batch" in (tmp_path / "stdout").read_text(), signal.SIGTERM, tmp_path / "stderr"
    )
    assert process.returncode == 143, (tmp_path / "stderr").read_text()[-2000:]
    assert_clean(children, temp)
