"""Fault tolerance (docs/architecture.md; issue 8): checkpoints, worker and driver failures, exactly-once output.

Every test runs the YSB query of tests/recovery_script.py (views per
campaign per 1-second window over a bounded, unpaced generator stream of
120 micro-batches) into a files sink with a checkpoint directory, breaks
something while it runs, lets it finish, and compares the sink's committed
output with the same query's result on the inline executor: every
(campaign, window) row exactly once, with the same count.

What breaks: worker processes killed (SIGKILL) at random moments, several
times per run, for group sizes 1, 10 and 'auto' and the BSP executor; the
driver process killed and the program started again; the newest checkpoint
corrupted (a flipped byte in a state part file, or a truncated manifest);
a half-written checkpoint directory; a changed query on an old checkpoint
directory; a worker stopped (SIGSTOP) until the heartbeat timeout.

Nothing is timed: every wait polls a condition and gives up only after a
hang guard, so a broken recovery fails the test instead of hanging it.
Processes are signalled by pid and only those the test's queries started.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import polars as pl
import pytest

import recovery_script as R
from stream_dsl.connectors import files
from stream_dsl.errors import CheckpointError, DSLError

HANG_GUARD_S = 120.0  # only a hung recovery waits this long
POLL_S = 0.005
SCRIPT = Path(R.__file__).resolve()
KEYS = ["campaign_id", "window_start"]
CHECKPOINT = re.compile(r"ckpt-(\d{8})")


# ---------------------------------------------------------------- helpers


def wait_until(condition: Callable[[], Any], what: str, guard_s: float = HANG_GUARD_S) -> Any:
    """Poll `condition` until it is truthy (and return it); fail, naming `what`, after the hang guard."""
    deadline = time.monotonic() + guard_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {guard_s:.0f}s")
        time.sleep(POLL_S)


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie waiting to be reaped does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def checkpoint_ids(checkpoint_dir: Path) -> list[int]:
    """Ids of the checkpoints that have a manifest (written ones), oldest first."""
    base = checkpoint_dir / "checkpoints"
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    found = (CHECKPOINT.fullmatch(name) for name in names)
    return sorted(int(m.group(1)) for m in found if m and (base / m.group(0) / "manifest.json").is_file())


def checkpoint_path(checkpoint_dir: Path, checkpoint: int) -> Path:
    return checkpoint_dir / "checkpoints" / f"ckpt-{checkpoint:08d}"


def position(handle: Any) -> int:
    """The id of the batch recorded last (-1 before the first); it goes back when a recovery replays."""
    last = handle.last_progress
    return -1 if last is None else int(last["batch_id"])


def normalized(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("campaign_id").cast(pl.String),
        pl.col("window_start").cast(pl.Datetime("ms")),
        pl.col("window_end").cast(pl.Datetime("ms")),
        pl.col("views").cast(pl.Int64),
    ).sort(KEYS)


def assert_exact(sink_dir: Path, expected: pl.DataFrame) -> None:
    """The sink's committed output holds every expected row exactly once, and nothing else."""
    out = files.read_committed(str(sink_dir))
    assert out.height > 0, "the sink committed no rows"
    repeated = out.group_by(KEYS).len().filter(pl.col("len") > 1)
    assert repeated.height == 0, f"{repeated.height} windows written more than once, e.g. {repeated.head(3).rows()}"
    got = normalized(out)
    if not got.equals(expected):
        missing = expected.join(got, on=got.columns, how="anti").height
        extra = got.join(expected, on=got.columns, how="anti").height
        raise AssertionError(
            f"output differs from the run without failures: {got.height} rows, expected "
            f"{expected.height}; {missing} expected rows missing, {extra} rows not expected"
        )


def start(tmp_path: Path, **options: Any) -> Any:
    """The INSERT INTO on a fresh context with the test's checkpoint and sink directories."""
    options.setdefault("checkpoint_dir", str(tmp_path / "ckpt"))
    return R.make_context(tmp_path / "out", **options).sql(R.INSERT)


def finish(handle: Any) -> None:
    """Wait for the query to reach the end of its input (a failure re-raises)."""
    try:
        assert handle.await_termination(HANG_GUARD_S), f"the query did not end within {HANG_GUARD_S:.0f}s"
    finally:
        handle.stop(HANG_GUARD_S)


def stop_midway(handle: Any, checkpoint_dir: Path, checkpoints: int) -> list[int]:
    """Let the query write `checkpoints` checkpoints, then stop it; the checkpoint ids written."""
    try:
        wait_until(
            lambda: len(checkpoint_ids(checkpoint_dir)) >= checkpoints or not handle.is_active,
            f"{checkpoints} checkpoints",
        )
        assert handle.is_active, "the query ended before it could be stopped midway"
    finally:
        handle.stop(HANG_GUARD_S)
    assert not handle.is_active
    if handle.exception is not None:
        raise handle.exception
    ids = checkpoint_ids(checkpoint_dir)
    assert len(ids) >= checkpoints
    return ids


def recovered(handle: Any, count: int) -> Callable[[], bool]:
    """Recovery number `count` recorded its first batch (or the query is over)."""

    def check() -> bool:
        recoveries = handle.recoveries
        done = len(recoveries) >= count and recoveries[count - 1]["first_batch_at"] is not None
        return done or not handle.is_active

    return check


def release(pid: int) -> None:
    """A process the test stopped: wake and end it if the driver did not."""
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            if alive(pid):
                os.kill(pid, sig)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def expected() -> pl.DataFrame:
    return reference_output()


def reference_output(batches: int = R.BATCHES) -> pl.DataFrame:
    """The query's result without failures: the inline executor over the same bounded stream (`batches` long)."""
    from stream_dsl.bench.ysb import polars_ysb
    from stream_dsl.connectors import generator

    result = normalized(R.make_context(None, batches=batches, executor="inline", workers=1).sql(R.SELECT).collect())
    # the reference itself, checked against plain polars over the same events
    events = generator.ysb_events(R.RATE * batches // 10, seed=R.SEED, rate=R.RATE)
    assert result.equals(normalized(polars_ysb(events, generator.ysb_campaigns(R.SEED), 1000)))
    assert result.height == batches // 10 * 100  # a window per second of event time, 100 campaigns
    return result


# ---------------------------------------------------------------- workers killed at random moments


@pytest.mark.parametrize(
    "executor, group_size, kills",
    [
        ("drizzle", 1, 3),
        ("drizzle", 10, 3),
        ("drizzle", "auto", 1),
        ("bsp", 1, 1),
    ],
)
def test_killed_workers_are_replaced_and_the_output_is_exact(tmp_path, expected, executor, group_size, kills):
    rng = random.Random(f"{executor}-{group_size}")
    handle = start(tmp_path, executor=executor, group_size=group_size)
    seen_pids: set[int] = set(handle.worker_pids())
    killed: list[tuple[int, int]] = []  # (worker, pid) of each kill that hit the running query
    try:
        width = R.BATCHES * 6 // 10 // kills  # kill moments spread over 10%..70% of the run
        for k in range(kills):
            lo = R.BATCHES // 10 + k * width
            threshold = rng.randrange(lo, lo + width - 5)
            wait_until(lambda: position(handle) >= threshold or not handle.is_active, f"batch {threshold}")
            time.sleep(rng.uniform(0.0, 0.05))
            pids = handle.worker_pids()
            worker = rng.randrange(len(pids))
            if not handle.is_active:
                break
            os.kill(pids[worker], signal.SIGKILL)
            killed.append((worker, pids[worker]))
            wait_until(recovered(handle, len(killed)), f"recovery {len(killed)} (worker {worker} killed)")
            assert pids[worker] not in handle.worker_pids() or not handle.is_active
            seen_pids.update(handle.worker_pids())
        finish(handle)
    finally:
        handle.stop(HANG_GUARD_S)
    assert len(killed) == kills, "the query ended before every kill"
    recoveries = handle.recoveries
    assert len(recoveries) == len(killed)
    for (worker, _pid), r in zip(killed, recoveries):
        assert (r["worker"], r["reason"]) == (worker, "exited"), r
        assert r["exit_code"] in (-signal.SIGKILL, 128 + signal.SIGKILL), r
        assert r["checkpoint"] is None or isinstance(r["checkpoint"], int), r
        assert r["detected_at"] <= r["restored_at"] <= r["first_batch_at"], r
        assert r["recovery_ms"] == pytest.approx((r["first_batch_at"] - r["detected_at"]) * 1000.0, abs=1.0)
        assert isinstance(r["resumed_batch"], int) and r["resumed_batch"] >= 0, r
    progress = handle.progress()
    assert progress[-1]["recoveries"] == len(killed)
    assert sum(p["recovery_ms"] is not None for p in progress) == len(killed)
    assert any(p["checkpoint"] is not None for p in progress)
    assert_exact(tmp_path / "out", expected)
    wait_until(lambda: not any(alive(p) for p in seen_pids), "every worker process to exit after the query")


def test_a_stuck_worker_is_replaced_after_the_heartbeat_timeout(tmp_path, expected):
    handle = start(tmp_path, heartbeat_timeout=2.0)
    stopped: int | None = None
    try:
        wait_until(lambda: position(handle) >= R.BATCHES // 5 or not handle.is_active, "a fifth of the batches")
        assert handle.is_active, "the query ended before a worker could be stopped"
        stopped = handle.worker_pids()[1]
        os.kill(stopped, signal.SIGSTOP)
        wait_until(recovered(handle, 1), "the recovery of the stopped worker")
        finish(handle)
    finally:
        handle.stop(HANG_GUARD_S)
        if stopped is not None:
            release(stopped)
    [r] = handle.recoveries
    assert (r["worker"], r["reason"]) == (1, "heartbeat timeout"), r
    assert not alive(stopped), "the driver left the stuck worker running"
    assert_exact(tmp_path / "out", expected)


# ---------------------------------------------------------------- the driver killed


EVERY_EXECUTOR = pytest.mark.parametrize("executor", ["inline", "bsp", "drizzle"])


def _script(tmp_path: Path, run: str, pids: Path, executor: str = "drizzle") -> subprocess.Popen:
    """tests/recovery_script.py on the test's directories, its output in files (a pipe nobody reads could block)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([R.ROOT, os.environ.get("PYTHONPATH", "")]))
    with open(tmp_path / f"{run}.stdout", "wb") as out, open(tmp_path / f"{run}.stderr", "wb") as err:
        return subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                str(tmp_path / "ckpt"),
                str(tmp_path / "out"),
                "--pids",
                str(pids),
                "--executor",
                executor,
            ],
            cwd=R.ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )


def _stderr(tmp_path: Path, run: str) -> str:
    return (tmp_path / f"{run}.stderr").read_text(errors="replace")[-3000:]


@EVERY_EXECUTOR
def test_a_killed_driver_resumes_from_its_checkpoint_when_started_again(tmp_path, expected, executor):
    pids_file = tmp_path / "pids.json"
    first = _script(tmp_path, "first", pids_file, executor)
    try:
        wait_until(
            lambda: (
                first.poll() is not None
                or (
                    pids_file.exists()
                    and checkpoint_ids(tmp_path / "ckpt")
                    and len(files.committed_batches(str(tmp_path / "out"))) >= 5
                )
            ),
            "a checkpoint and 5 committed batches",
        )
        assert first.poll() is None, f"the first run ended before it was killed:\n{_stderr(tmp_path, 'first')}"
        workers = json.loads(pids_file.read_text())
        os.kill(first.pid, signal.SIGKILL)
        first.wait(HANG_GUARD_S)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(HANG_GUARD_S)
    written = checkpoint_ids(tmp_path / "ckpt")
    assert (tmp_path / "first.stdout").read_text() == "", "the first run got to the end before it was killed"
    wait_until(lambda: not any(alive(p) for p in workers), "the killed driver's workers to exit by themselves")

    second = _script(tmp_path, "second", pids_file, executor)
    try:
        assert second.wait(HANG_GUARD_S) == 0, f"the second run failed:\n{_stderr(tmp_path, 'second')}"
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(HANG_GUARD_S)
    summary = json.loads((tmp_path / "second.stdout").read_text().strip().splitlines()[-1])
    restored = summary["restored_checkpoint"]
    assert restored is not None and restored["id"] == written[-1], summary
    assert summary["first_batch"] == restored["next_batch"] > 0, summary
    assert_exact(tmp_path / "out", expected)


# ---------------------------------------------------------------- damaged checkpoints


def _flip_bytes(checkpoint: Path) -> None:
    """Flip a few bytes in the middle of the checkpoint's largest state part file."""
    parts = list(checkpoint.glob("*.state"))
    assert parts, f"no *.state part files in {checkpoint}: {os.listdir(checkpoint)}"
    part = max(parts, key=lambda p: p.stat().st_size)
    data = bytearray(part.read_bytes())
    assert data, f"{part} is empty: nothing to corrupt"
    middle = len(data) // 2
    for i in range(middle, min(middle + 8, len(data))):
        data[i] ^= 0xFF
    part.write_bytes(bytes(data))


def _truncate_manifest(checkpoint: Path) -> None:
    manifest = checkpoint / "manifest.json"
    text = manifest.read_bytes()
    manifest.write_bytes(text[: len(text) // 2])


@EVERY_EXECUTOR
def test_corrupt_newest_checkpoints_are_skipped_for_the_newest_good_one(tmp_path, expected, executor):
    """A truncated manifest (the newest checkpoint) and a flipped byte in a state part file (the one before) are
    each skipped, named in `skipped`, and the restart resumes from the checkpoint before them. One run for both
    damages (they were two parametrizations of one test, each a stop, a restart and a whole run)."""
    # groups of 7 batches end inside 10-batch windows: the checkpoint restored holds a window half counted
    ids = stop_midway(start(tmp_path, group_size=7, executor=executor), tmp_path / "ckpt", 3)
    newest, previous, good = ids[-1], ids[-2], ids[-3]
    _truncate_manifest(checkpoint_path(tmp_path / "ckpt", newest))
    _flip_bytes(checkpoint_path(tmp_path / "ckpt", previous))
    handle = start(tmp_path, group_size=7, executor=executor)
    finish(handle)
    restored = handle.restored_checkpoint
    assert restored is not None and restored["id"] == good, restored
    for damaged in (newest, previous):
        named = re.compile(rf"ckpt-0*{damaged}\b|checkpoint {damaged}\b")
        assert any(named.search(reason) for reason in restored["skipped"]), (damaged, restored)
    assert handle.progress()[0]["batch_id"] == restored["next_batch"]
    assert_exact(tmp_path / "out", expected)


@EVERY_EXECUTOR
def test_a_changed_query_is_refused_and_a_half_written_checkpoint_ignored(tmp_path, expected, executor):
    checkpoint_dir = tmp_path / "ckpt"
    ids = stop_midway(start(tmp_path, executor=executor), checkpoint_dir, 2)
    committed = files.committed_batches(str(tmp_path / "out"))

    changed = R.make_context(tmp_path / "out", checkpoint_dir=str(checkpoint_dir), executor=executor)
    with pytest.raises(CheckpointError) as refused:
        handle = changed.sql(f"INSERT INTO out {R.select(window_s=2)}")
        handle.stop(HANG_GUARD_S)
    message = str(refused.value)
    assert isinstance(refused.value, DSLError) and "checkpoint" in message.lower()
    assert str(checkpoint_dir) in message, message
    assert files.committed_batches(str(tmp_path / "out")) == committed  # the refused query wrote nothing
    assert checkpoint_ids(checkpoint_dir) == ids  # nor touched the checkpoints

    begun = [int(m.group(1)) for m in map(CHECKPOINT.fullmatch, os.listdir(checkpoint_dir / "checkpoints")) if m]
    half = checkpoint_path(checkpoint_dir, max(begun) + 1)  # a crash before its manifest was written
    half.mkdir()
    (half / "worker-0.state").write_bytes(b"\x00" * 64)
    ctx = R.make_context(tmp_path / "out", executor=executor)
    handle = ctx.sql(R.SELECT).start("out", checkpoint_dir=str(checkpoint_dir))  # per query this time
    finish(handle)
    restored = handle.restored_checkpoint
    assert restored is not None and restored["id"] == ids[-1], restored
    assert_exact(tmp_path / "out", expected)


@EVERY_EXECUTOR
def test_every_executor_resumes_from_its_checkpoints_after_a_stop(tmp_path, expected, executor):
    """Checkpoints every group of 7 batches (every batch for bsp); two stops and restarts, then the output is
    exact."""
    restored = []
    group = 1 if executor == "bsp" else 7
    for _ in range(2):
        stop_midway(start(tmp_path, executor=executor, group_size=7), tmp_path / "ckpt", len(restored) + 2)
        handle = start(tmp_path, executor=executor, group_size=7)
        restored.append(handle.restored_checkpoint)
        if len(restored) == 1:
            handle.stop(HANG_GUARD_S)
    finish(handle)
    assert all(r is not None and r["next_batch"] % group == 0 for r in restored), restored
    assert handle.progress()[0]["batch_id"] == restored[-1]["next_batch"]
    assert_exact(tmp_path / "out", expected)


# ---------------------------------------------------------------- bench recovery


def _entry(batch: int, group: int, recoveries: int, latency: float) -> dict[str, Any]:
    return {"batch_id": batch, "group_id": group, "recoveries": recoveries, "latency_ms": latency}


def test_bench_summary_splits_steady_state_and_recovery_window():
    from stream_dsl.bench.recovery import summarize

    # groups of 2 batches of 100 ms; batch 5 recorded at 105.0, the kill at 105.25 (input at batch 7),
    # the checkpoint after batch 5, the first batch after the recovery at 105.93 (input at batch 14)
    progress = [_entry(b, b // 2, 0, 10.0 + b) for b in range(6)] + [
        _entry(6, 3, 1, 50.0),
        _entry(7, 3, 1, 40.0),
        _entry(14, 7, 1, 30.0),
        _entry(15, 7, 1, 1.0),
    ]
    seen_at = [100.0 + i for i in range(5)] + [105.0, 105.93, 105.93, 106.5, 106.5]
    recovery = {
        "detected_at": 105.5,
        "restored_at": 105.75,
        "first_batch_at": 105.93,
        "reason": "exited",
        "checkpoint": 3,
        "resumed_batch": 6,
    }
    s = summarize(progress, seen_at, recovery, killed_at=105.25, interval_ms=100)
    assert (s["detect_ms"], s["restored_ms"], s["first_batch_ms"]) == pytest.approx((250.0, 500.0, 680.0))
    assert (s["last_batch_before_kill"], s["input_batch_at_kill"], s["redone"]) == (5, 7, 2)
    assert (s["backlog_end"], s["batches"]) == (14, 10)
    assert s["steady"] == {"p50": 14.0, "p99": 15.0, "max": 15.0, "batches": 4}  # the first group left out
    assert s["recovery_window"] == {"p50": 40.0, "p99": 50.0, "max": 50.0, "batches": 3}  # batches 6, 7, 14


def test_bench_output_check_finds_repeated_and_wrong_windows():
    from stream_dsl.bench.recovery import RecoveryBench, check_output, reference_windows
    from stream_dsl.connectors import generator

    bench = RecoveryBench(group_sizes=(10,), rate=5000, window_ms=1000)
    end_ms = generator.parse_start_ms(generator.DEFAULT_START) + 7000
    exact = reference_windows(bench, end_ms, chunk_events=12_000)  # in chunks of two windows
    assert exact.get_column("window_start").n_unique() == 7 and exact.height == 700
    whole = reference_windows(bench, end_ms, chunk_events=10**9)
    assert normalized(exact).equals(normalized(whole))
    assert check_output(exact, bench)[0] is True
    assert check_output(exact.head(0), bench) == (None, "no window closed")
    assert check_output(pl.concat([exact, exact.tail(1)]), bench)[0] is False
    wrong = exact.with_columns(views=pl.when(pl.int_range(pl.len()) == 3).then(0).otherwise(pl.col("views")))
    assert check_output(wrong, bench)[0] is False
    assert check_output(exact.slice(1), bench)[0] is False  # a window row missing


def test_bench_recovery_runs_tiny_and_reports_an_exact_output(tmp_path):
    from stream_dsl.cli import main as cli

    results = tmp_path / "recovery.json"
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        [
            "bench",
            "recovery",
            "--groups",
            "10",
            "--rate",
            "20k",
            "--kill-after",
            "0.5s",
            "--observe",
            "0.5s",
            "--json",
            str(results),
        ],
        out=out,
        err=err,
    )
    assert code == 0, out.getvalue() + err.getvalue()
    text = out.getvalue()
    assert re.search(r"^\s+10(\s+[\d,]+){3}\s+\d+\s.*\bexact$", text, re.M), text
    [run] = json.loads(results.read_text())["runs"]
    assert run["exact"] is True and run["recoveries"] == 1 and run["reason"] == "exited", run
    assert run["first_batch_ms"] >= run["restored_ms"] >= run["detect_ms"] > 0, run
    assert run["steady"]["batches"] > 0 and run["recovery_window"]["batches"] > 0, run


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_collect_neither_reads_nor_writes_checkpoints(tmp_path, expected, executor):
    """collect()'s result lives in memory: a checkpoint could not bring it back, so it keeps none."""
    ids = stop_midway(start(tmp_path), tmp_path / "ckpt", 2)
    ctx = R.make_context(tmp_path / "out", executor=executor, checkpoint_dir=str(tmp_path / "ckpt"))
    assert normalized(ctx.sql(R.SELECT).collect()).equals(expected)  # from the start, not from a checkpoint
    assert checkpoint_ids(tmp_path / "ckpt") == ids
