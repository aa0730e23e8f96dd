"""The latency run of `bench ysb`: event latency as the Yahoo Streaming Benchmark defines it.

The generator is paced to the wall clock at a fixed rate (its clock is the
wall clock since the source opened). For every window row reaching the
sink: the wall time of the sink write minus the wall time at which the
generator's clock reached the window's end. The source's open time is the
start of the query's first task (the first batch's read), taken from the
run's Chrome trace (executor/trace.py), so it is measured where the source
runs, on a worker.

With 100 ms batches a window closes in the batch after the one holding its
last events (the watermark passes its end only with newer events), so the
latency includes up to one batch interval before the processing. The rows
counted are those of the windows the watermark closed while the stream
ran; the end of a bounded input closes the rest at once, and those count
only when nothing closed before.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

import polars as pl

from stream_dsl.bench.ysb import (
    PREPARED_FORMATS,
    PERCENTILES,
    EngineRun,
    SinkCall,
    YsbBench,
    exact_rate,
    generator_start_ms,
    percentile,
    run_engine,
)
from stream_dsl.connectors import generator
from stream_dsl.errors import DSLError

__all__ = ["LatencyRun", "run_latency", "window_latencies_ms", "input_end_ms", "source_opened_at"]


@dataclass(frozen=True, slots=True)
class LatencyRun:
    """A paced run and the latency of each window row (ms), oldest write first.

    The rows are those of the windows the watermark closed while the stream
    ran (the steady state of an unbounded stream). The end of a bounded
    input closes the remaining windows at once, without waiting for a next
    batch; their rows count only when no window closed before
    (`closed_by` says which).
    """

    engine: EngineRun
    rate: float
    latencies_ms: tuple[float, ...]
    windows: int  # distinct windows among the rows
    closed_by: str = "watermark"  # or "end of input"

    def percentiles(self) -> dict[str, float]:
        return {name: percentile(self.latencies_ms, q) for name, q in PERCENTILES} if self.latencies_ms else {}


def input_end_ms(events: int, rate: float, interval_ms: int) -> int:
    """Event-time offset the generator's clock reaches with its last batch: the end of that batch's interval."""
    if events <= 0:
        return 0
    last = int(generator.event_offsets_ms(events - 1, events, exact_rate(rate))[0])
    return (last // interval_ms + 1) * interval_ms


def source_opened_at(trace: dict[str, Any]) -> float | None:
    """Unix time the source opened: the start of the query's first task (the first batch's read)."""
    starts = [
        e["ts"] for e in trace.get("traceEvents", ()) if e.get("ph") == "X" and e.get("cat") in ("task", "skipped")
    ]
    if not starts:
        return None
    return trace["otherData"]["t0_unix_s"] + min(starts) / 1e6


def window_latencies_ms(writes: Sequence[SinkCall], opened_at: float, *, start_ms: int, end_ms: int) -> list[float]:
    """Per window row: its sink write time minus the wall time the generator's clock reached the window's end.

    The generator's clock is `opened_at` plus event-time offset; a window
    that ends after the input (`end_ms`, an offset) counts from the end of the input.
    """
    out: list[float] = []
    for w in writes:
        if not w.frame.height:
            continue
        window_end = w.frame.get_column("window_end").cast(pl.Datetime("ms")).dt.epoch("ms")
        ends = (window_end - start_ms).clip(upper_bound=end_ms)
        written_ms = (w.at - opened_at) * 1000.0
        out.extend(written_ms - float(e) for e in ends.to_list())
    return out


def run_latency(bench: YsbBench, *, rate: float | None = None, trace: str | None = None) -> LatencyRun:
    """The paced run: `bench.latency_events` events at `rate` (default bench.rate) events per second."""
    if bench.format in PREPARED_FORMATS:
        raise DSLError("the latency run paces the generator: use the columnar or json format")
    paced = bench if rate is None else replace(bench, rate=rate)
    duration_s = bench.duration_s or bench.events / bench.rate
    events = bench.latency_events if rate is None else int(round(rate * duration_s))
    with _trace_file(trace) as path:
        engine = run_engine(paced, realtime=True, events=events, trace=path)
    opened = source_opened_at(engine.trace or {})
    if opened is None:
        return LatencyRun(engine, paced.rate, (), 0)
    end = input_end_ms(events, paced.rate, paced.config.batch_interval_ms)
    last = max((p["batch_id"] for p in engine.progress), default=-1)  # the batch the end of the input closed
    steady = [w for w in engine.writes if w.batch != last]
    writes, closed_by = (steady, "watermark") if steady else (list(engine.writes), "end of input")
    latencies = window_latencies_ms(writes, opened, start_ms=generator_start_ms(), end_ms=end)
    windows = len({v for w in writes for v in w.frame.get_column("window_end").to_list()})
    return LatencyRun(engine, paced.rate, tuple(latencies), windows, closed_by)


@contextmanager
def _trace_file(path: str | None) -> Iterator[str]:
    """`path`, or a temporary file removed afterwards: the latency run always needs its trace."""
    if path is not None:
        yield path
        return
    fd, tmp = tempfile.mkstemp(prefix="sd-trace-", suffix=".json")
    os.close(fd)
    os.remove(tmp)
    try:
        yield tmp
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
