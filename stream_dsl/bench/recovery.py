"""`stream-dsl bench recovery`: what losing a worker costs a paced YSB query, for each group size.

For each group size G in turn: the YSB query (views per campaign per
tumbling window) runs on worker processes over the generator paced to the
wall clock at `rate` events/s, into a files sink in a temporary directory,
with a checkpoint directory (a checkpoint at every group boundary).
`kill_after_s` after the first batch was recorded (so the warm-up holds at
least one group and its checkpoint), worker `kill_worker` is killed with
SIGKILL; the run goes on until the first batch after the recovery was
written and `observe_s` more, then stops.

Per G, from the kill: the time to its detection, to the workers restored
and to the first batch written to the sink after the recovery (the
handle's recovery record). The batches redone: from the restored checkpoint's batch to the
one the paced input had reached at the kill (counted in batch intervals
from when the last batch before the kill was recorded; progress is polled
every POLL_S). The latency_ms of progress (a batch's read to its sink
write), p50/p99/max, of the steady state before the kill (its first group,
the warm-up, left out) against the recovery window: the batches recorded
after the recovery up to the one the input had reached when the first of
them was recorded, that is the backlog the outage piled up, read at once
and caught up with (progress is recorded at group boundaries, so with
large groups those latencies arrive when their whole group is done). Last, whether the sink's committed
output is exact: every
(campaign, window) once, with the count plain polars computes from the
same events, for every window up to the last one written.

Not a test: nothing here judges the times.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence, TextIO

import polars as pl

from stream_dsl.errors import DSLError

POLL_S = 0.01  # how often progress is polled while waiting
STARTUP_GUARD_S = 120.0  # the first batch must be recorded by then (worker start-up, the first group)
RECOVERY_GUARD_S = 120.0  # the first batch after the kill must be recorded by then
STOP_GUARD_S = 60.0
HORIZON_S = 3600  # event time the generator could produce: far more than a run lasts
PERCENTILES = (("p50", 0.5), ("p99", 0.99), ("max", 1.0))


@dataclass(frozen=True, slots=True)
class RecoveryBench:
    """What to run: the group sizes, the workers, the paced input and when to kill which worker."""

    group_sizes: tuple[int | str, ...] = (1, 10, 100)
    workers: int = 2
    rate: float = 200_000
    batch_interval_ms: int = 100
    kill_after_s: float = 3.0
    observe_s: float = 3.0
    window_ms: int = 1000
    seed: int = 1
    executor: str = "drizzle"
    kill_worker: int = 0

    def __post_init__(self) -> None:
        if not self.group_sizes:
            raise DSLError("bench recovery: give at least one group size")
        if not 0 <= self.kill_worker < self.workers:
            raise DSLError(
                f"bench recovery: worker {self.kill_worker} cannot be killed: the workers are 0..{self.workers - 1}"
            )
        if self.executor not in ("drizzle", "bsp"):
            raise DSLError(
                f"bench recovery: executor '{self.executor}' has no worker processes to kill; choose drizzle or bsp"
            )
        if self.rate <= 0 or self.kill_after_s < 0 or self.observe_s < 0:
            raise DSLError("bench recovery: the rate must be positive and the durations not negative")


# ---------------------------------------------------------------- one run


class ProgressWatch:
    """Polls a handle's progress and notes when each entry was first seen (time.time())."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.seen_at: list[float] = []

    def poll(self) -> int:
        """Entries recorded so far."""
        count = len(self.handle.progress())
        now = time.time()
        self.seen_at.extend([now] * (count - len(self.seen_at)))
        return count

    def wait(self, condition: Callable[[], bool], guard_s: float, what: str) -> None:
        """Poll until `condition()` holds; a query that failed or ended, or the guard passing, raises."""
        deadline = time.monotonic() + guard_s
        while True:
            self.poll()
            if condition():
                return
            if not self.handle.is_active:
                raise DSLError(
                    f"bench recovery: the query ended while waiting for {what}"
                    + (f": {self.handle.exception}" if self.handle.exception else "")
                )
            if time.monotonic() > deadline:
                raise DSLError(f"bench recovery: no {what} within {guard_s:.0f}s")
            time.sleep(POLL_S)


def ysb_sql(bench: RecoveryBench) -> tuple[str, str]:
    """The DDL (paced generator, campaigns) and the YSB query (bench ysb's), as DSL text."""
    from stream_dsl.bench.ysb import YsbBench, ysb_statements

    ysb = YsbBench(events=int(bench.rate * HORIZON_S), rate=bench.rate, seed=bench.seed, window_ms=bench.window_ms)
    return ysb_statements(ysb, realtime=True)


def run_group(bench: RecoveryBench, group_size: int | str) -> dict[str, Any]:
    """One paced run with group size `group_size`, one worker killed; what `summarize` says, and the output check."""
    import stream_dsl as sd
    from stream_dsl.connectors.files_sink import read_committed

    with tempfile.TemporaryDirectory(prefix="sd-recovery-") as tmp:
        sink_dir = os.path.join(tmp, "out")
        ctx = sd.Context(
            workers=bench.workers,
            executor=bench.executor,
            group_size=group_size,
            batch_interval=bench.batch_interval_ms,
            checkpoint_dir=os.path.join(tmp, "checkpoints"),
        )
        ddl, query = ysb_sql(bench)
        ctx.sql(ddl)
        ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{sink_dir}', format = 'parquet')")
        handle = ctx.sql(f"INSERT INTO out {query}")
        watch = ProgressWatch(handle)
        try:
            watch.wait(lambda: bool(watch.seen_at), STARTUP_GUARD_S, "first batch")
            kill_at = time.monotonic() + bench.kill_after_s
            watch.wait(lambda: time.monotonic() >= kill_at, bench.kill_after_s + STARTUP_GUARD_S, "warm-up")
            victim = handle.worker_pids()[bench.kill_worker]
            killed_at = time.time()
            os.kill(victim, signal.SIGKILL)

            def back() -> bool:
                recoveries = handle.recoveries
                return bool(recoveries) and recoveries[-1]["first_batch_at"] is not None

            watch.wait(back, RECOVERY_GUARD_S, "batch after the recovery")
            until = handle.recoveries[-1]["first_batch_at"] + bench.observe_s
            watch.wait(lambda: time.time() >= until, bench.observe_s + RECOVERY_GUARD_S, "end of the observation")
        finally:
            handle.stop(STOP_GUARD_S)
        if handle.exception is not None:
            raise DSLError(f"bench recovery: the query failed: {handle.exception}")
        watch.poll()
        result = summarize(
            handle.progress(), watch.seen_at, handle.recoveries[0], killed_at, ctx.config.batch_interval_ms
        )
        exact, detail = check_output(read_committed(sink_dir), bench)
    result.update(
        group_size=group_size,
        killed_worker=bench.kill_worker,
        recoveries=len(handle.recoveries),
        exact=exact,
        output=detail,
    )
    return result


# ---------------------------------------------------------------- what a run measured


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p99 and max by nearest rank (None without values)."""
    ordered = sorted(values)
    if not ordered:
        return {name: None for name, _ in PERCENTILES}
    return {name: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for name, q in PERCENTILES}


def summarize(
    progress: Sequence[dict[str, Any]],
    seen_at: Sequence[float],
    recovery: dict[str, Any],
    killed_at: float,
    interval_ms: int,
) -> dict[str, Any]:
    """The recovery's times (ms from the kill), the batches redone, and latency_ms before and during it.

    `progress` is the handle's, `seen_at[i]` when entry i was first seen,
    `recovery` the handle's record of the recovery, `killed_at` the kill's
    time.time(), `interval_ms` the batch interval. Entries whose
    `recoveries` count is 0 came before the recovery. Where the paced
    input was at a moment is counted in batch intervals from when the last
    batch before the kill was recorded (`input_at`).
    """
    before = [(i, p) for i, p in enumerate(progress) if not p.get("recoveries")]
    after = [p for p in progress if p.get("recoveries")]
    last_before = max((p["batch_id"] for _, p in before), default=-1)
    last_seen = seen_at[before[-1][0]] if before and before[-1][0] < len(seen_at) else killed_at

    def input_at(t: float) -> int:
        return last_before + max(0, int((t - last_seen) * 1000.0 // interval_ms))

    steady = [p for _, p in before if p.get("group_id") != before[0][1].get("group_id")] if before else []
    steady = steady or [p for _, p in before]  # one group only: the warm-up is all there is
    resumed = int(recovery.get("resumed_batch") or 0)
    detected, restored, first = recovery["detected_at"], recovery.get("restored_at"), recovery.get("first_batch_at")
    backlog_end = input_at(first) if first is not None else max((p["batch_id"] for p in after), default=-1)
    window = [p for p in after if p["batch_id"] <= backlog_end]

    def since_kill(t: float | None) -> float | None:
        return None if t is None else (t - killed_at) * 1000.0

    return {
        "detect_ms": since_kill(detected),
        "restored_ms": since_kill(restored),
        "first_batch_ms": since_kill(first),
        "reason": recovery.get("reason"),
        "checkpoint": recovery.get("checkpoint"),
        "resumed_batch": resumed,
        "last_batch_before_kill": last_before,
        "input_batch_at_kill": input_at(killed_at),
        "redone": max(0, input_at(killed_at) + 1 - resumed),
        "backlog_end": backlog_end,
        "batches": len(progress),
        "steady": dict(percentiles([p["latency_ms"] for p in steady]), batches=len(steady)),
        "recovery_window": dict(percentiles([p["latency_ms"] for p in window]), batches=len(window)),
    }


def check_output(frame: pl.DataFrame, bench: RecoveryBench) -> tuple[bool | None, str]:
    """Whether the committed output is exact (None: no window closed), and in words.

    Exact: no (campaign, window) twice, and the rows equal plain polars'
    over the generator's events up to the end of the last window written,
    computed a few windows at a time (a window's count needs only its own
    events).
    """
    if frame.height == 0:
        return None, "no window closed"
    from stream_dsl.bench.ysb import compare_results

    repeated = frame.group_by("campaign_id", "window_start").len().filter(pl.col("len") > 1).height
    if repeated:
        return False, f"{repeated} windows written more than once"
    reference = reference_windows(bench, _epoch_ms(frame.get_column("window_end").max()))
    difference = compare_results(frame, reference)
    windows = frame.get_column("window_start").n_unique()
    return difference is None, difference or f"{frame.height} rows, {windows} windows, each once and exact"


def reference_windows(bench: RecoveryBench, end_ms: int, chunk_events: int = 1_000_000) -> pl.DataFrame:
    """Plain polars' YSB result over the generator's events before `end_ms` (epoch ms, a window end)."""
    from fractions import Fraction

    from stream_dsl.bench.ysb import polars_ysb
    from stream_dsl.connectors import generator

    rate = Fraction(bench.rate).limit_denominator(1_000_000)
    start_ms = generator.parse_start_ms(generator.DEFAULT_START)
    campaigns = generator.campaigns_frame(bench.seed)
    windows_per_chunk = max(1, int(chunk_events * 1000 / bench.rate / bench.window_ms))
    step = windows_per_chunk * bench.window_ms
    first_window = start_ms - start_ms % bench.window_ms  # windows are aligned to the epoch
    parts = []
    for lo_ms in range(first_window, end_ms, step):
        hi_ms = min(lo_ms + step, end_ms)
        first = generator.first_event_at(max(lo_ms - start_ms, 0), rate)
        stop = generator.first_event_at(hi_ms - start_ms, rate)
        if stop > first:
            events = generator.ysb_frame(
                first,
                stop,
                seed=bench.seed,
                rate=rate,
                start_ms=start_ms,
                columns=("ad_id", "event_type", "event_time"),
            )
            parts.append(polars_ysb(events, campaigns, bench.window_ms))
    if not parts:
        return pl.DataFrame(
            schema={
                "campaign_id": pl.String,
                "window_start": pl.Datetime("ms"),
                "window_end": pl.Datetime("ms"),
                "views": pl.Int64,
            }
        )
    return pl.concat(parts)


def _epoch_ms(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int((value.replace(tzinfo=None) - dt.datetime(1970, 1, 1)) / dt.timedelta(milliseconds=1))
    return int(value)


# ---------------------------------------------------------------- all group sizes


def run_recovery_bench(bench: RecoveryBench, out: TextIO | None = None) -> dict[str, Any]:
    """Every group size of `bench` in turn; {"bench": settings, "runs": [one dict per group size]}."""
    runs = []
    for g in bench.group_sizes:
        if out is not None:
            print(f"group size {g}: running ...", file=out, flush=True)
        runs.append(run_group(bench, g))
    return {"bench": asdict(bench), "runs": runs}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _latency(stats: dict[str, Any]) -> str:
    return " / ".join(_ms(stats[name]) for name, _ in PERCENTILES) + f" ({stats['batches']})"


def format_report(report: dict[str, Any]) -> str:
    """A table: per group size, the recovery's times, batches redone, latency before and during, exactness."""
    b = report["bench"]
    lines = [
        f"recovery: YSB paced at {b['rate']:,.0f} events/s, {b['batch_interval_ms']} ms batches, "
        f"{b['window_ms']} ms windows, {b['workers']} workers ({b['executor']}); worker {b['kill_worker']} "
        f"killed (SIGKILL) {b['kill_after_s']:g} s after the first batch",
        "times in ms from the kill; latency_ms p50 / p99 / max (batches) of the steady state before the kill "
        "and of the backlog caught up after it",
        f"{'group':>6} {'detected':>9} {'restored':>9} {'1st batch':>10} {'redone':>7}   "
        f"{'steady latency':<24} {'recovery latency':<24} output",
    ]
    for r in report["runs"]:
        verdict = {True: "exact", False: "NOT EXACT", None: "-"}[r["exact"]]
        lines.append(
            f"{str(r['group_size']):>6} {_ms(r['detect_ms']):>9} {_ms(r['restored_ms']):>9} "
            f"{_ms(r['first_batch_ms']):>10} {r['redone']:>7}   {_latency(r['steady']):<24} "
            f"{_latency(r['recovery_window']):<24} {verdict}"
        )
    lines.append("")
    for r in report["runs"]:
        checkpoint = "none (from the start)" if r["checkpoint"] is None else r["checkpoint"]
        lines.append(
            f"  group {r['group_size']}: {r['reason']}; checkpoint {checkpoint}, resumed at batch "
            f"{r['resumed_batch']}, the input was at batch {r['input_batch_at_kill']} at the kill and at "
            f"{r['backlog_end']} at the first batch after it; {r['batches']} batches recorded; "
            f"{r['output']}"
        )
    return "\n".join(lines)


def all_exact(report: dict[str, Any]) -> bool:
    """No run wrote a window twice or a wrong count (a run that closed no window does not count against)."""
    return all(r["exact"] is not False for r in report["runs"])


if __name__ == "__main__":
    print(format_report(run_recovery_bench(RecoveryBench(), out=None)))
