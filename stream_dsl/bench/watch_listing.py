"""`stream-dsl bench watch`: what an idle micro-batch of a watched directory costs as files accumulate.

For each count N: N one-row ndjson files are written to a new directory,
a query reads it with `watch = 'true'` (`realtime = 'false'`: a batch with
nothing new does not wait for the batch interval), and once all N rows
are in, the batches that find nothing new are timed for `seconds`: the
median of their `duration_ms` (the whole micro-batch: listing, reading
nothing, running the stages, emitting, and the pause a continuous query
takes after a batch that found nothing, min(batch interval, 100 ms):
`query.restart.idle_pause`, so that an idle query does not spin) and of
their tasks' CPU time (`cpu_ms` of the workers' tasks: the batch's own
cost, without the pause; the inline executor does not measure it). The listing is incremental
(`connectors/file_listing.py`), so this should not grow with N. Two more
numbers per N, from the source alone: the first listing of the directory
(N new files, sorted) and a listing after one more file arrived (a
scandir over N names, all seen but one), in milliseconds.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any, Sequence, TextIO

DEFAULT_COUNTS = (1_000, 5_000, 20_000)
WAIT_FOR_ROWS_S = 300.0  # only to stop waiting when something is broken


def write_files(directory: str, count: int) -> None:
    for i in range(count):
        with open(os.path.join(directory, f"f-{i:08d}.ndjson"), "w") as f:
            f.write(f'{{"k": {i}}}\n')


def source_listing_ms(directory: str) -> tuple[float, float]:
    """The source's first listing of `directory`, and a listing after one new file arrived (ms)."""
    from stream_dsl.connectors.file_listing import Listing
    from stream_dsl.connectors.files import FileOptions
    from stream_dsl.ir.definitions import SourceDef
    from stream_dsl.ir.types import DataType, Schema

    options = (("connector", "files"), ("format", "ndjson"), ("path", directory), ("watch", "true"))
    listing = Listing(FileOptions.parse(SourceDef("s", "stream", Schema.of(("k", DataType.BIGINT)), options)), "s")
    started = time.perf_counter()
    listing.new_files()
    first = time.perf_counter() - started
    with open(os.path.join(directory, "g-new.ndjson"), "w") as f:
        f.write('{"k": -1}\n')
    started = time.perf_counter()
    found = listing.new_files()
    again = time.perf_counter() - started
    os.remove(os.path.join(directory, "g-new.ndjson"))
    assert len(found) == 1, found
    return first * 1000.0, again * 1000.0


def idle_batches(directory: str, count: int, context: dict[str, Any], seconds: float) -> list[dict[str, Any]]:
    """The progress of the batches of a watch query over `directory` that found nothing new, for `seconds`
    after all `count` rows were read."""
    import stream_dsl as sd

    ctx = sd.Context(**context)
    ctx.sql(
        f"CREATE STREAM s (k BIGINT) WITH (connector = 'files', path = '{directory}', format = 'ndjson', "
        "watch = 'true', realtime = 'false')"
    )
    handle = ctx.sql("SELECT k FROM s").start(sink=lambda batch_id, frame: None)
    try:
        deadline = time.monotonic() + WAIT_FOR_ROWS_S
        while sum(p["rows_in"] for p in handle.progress()) < count:
            if time.monotonic() > deadline or not handle.is_active:
                raise RuntimeError(f"the watch query read {sum(p['rows_in'] for p in handle.progress())} of {count}")
            time.sleep(0.05)
        first = len(handle.progress())
        time.sleep(seconds)
        reports = handle.progress()[first:]
    finally:
        handle.stop()
    return [p for p in reports if p["rows_in"] == 0]


def _tasks_cpu_ms(report: dict[str, Any]) -> float | None:
    """The CPU time of a batch's tasks (its stages' `cpu_ms`); None where the executor does not measure it."""
    stages = [m for m in report.get("stages", {}).values() if "cpu_ms" in m]
    return sum(m["cpu_ms"] for m in stages) if stages else None


def run_watch_bench(
    counts: Sequence[int], context: dict[str, Any], out: TextIO, *, seconds: float = 2.0, data_dir: str | None = None
) -> list[dict[str, Any]]:
    """Measure each count (module doc); print one line each; return the measurements."""
    from stream_dsl.bench.ysb import context_text

    print(
        f"bench watch: idle micro-batches of a watched directory of one-row ndjson files; "
        f"{context_text(context, optimizer=False)}",
        file=out,
    )
    print(
        f"{'files read':>10}  {'idle batch ms (median)':>22}  {'its tasks CPU ms':>16}  {'idle batches':>12}  "
        f"{'first listing ms':>16}  {'listing, 1 new ms':>17}",
        file=out,
    )
    results = []
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="sd-watch-", dir=data_dir) as directory:
            write_files(directory, count)
            first, again = source_listing_ms(directory)
            idle = idle_batches(directory, count, context, seconds)
        median = statistics.median(p["duration_ms"] for p in idle) if idle else float("nan")
        cpu = [c for c in map(_tasks_cpu_ms, idle) if c is not None]
        cpu_median = statistics.median(cpu) if cpu else None
        results.append(
            {"files": count, "idle_batch_ms": median, "idle_batch_tasks_cpu_ms": cpu_median}
            | {"idle_batches": len(idle), "first_listing_ms": first, "listing_one_new_ms": again}
        )
        cpu_text = "-" if cpu_median is None else f"{cpu_median:.3f}"
        print(
            f"{count:>10,}  {median:>22.3f}  {cpu_text:>16}  {len(idle):>12,}  {first:>16.3f}  {again:>17.3f}",
            file=out,
        )
        out.flush()
    return results
