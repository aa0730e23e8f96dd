"""`stream-dsl bench ysb`: the Yahoo Streaming Benchmark on stream-dsl and on plain polars, in one run.

stream-dsl runs the YSB query (views per campaign per tumbling window) as a
continuous query over N events of the `generator` source (realtime off, so
it runs as fast as it can) and reports its throughput and the per-batch
latency percentiles from `QueryHandle.progress()`. Plain polars then runs
the same query over the same events in one batch (filter, join, group by
the window), and the two results must be equal: OK, or MISMATCH with what
differs. The ratio is stream-dsl's events per second over polars'. The
events for polars are generated before its clock starts; stream-dsl
generates its own inside the source, so its time includes generation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TextIO

import polars as pl

from stream_dsl.connectors import generator
from stream_dsl.expr import format_duration_ms

__all__ = ["YsbBench", "EngineRun", "PolarsRun", "ysb_statements", "polars_ysb", "compare_results", "run"]

RESULT_COLUMNS = ["campaign_id", "window_start", "window_end", "views"]


@dataclass(frozen=True, slots=True)
class YsbBench:
    """What to run: the data (events, rate, seed), the window, and how stream-dsl runs it."""

    events: int = 2_000_000
    rate: float = 1_000_000
    seed: int = 1
    window_ms: int = 10_000
    context: tuple[tuple[str, Any], ...] = ()  # keyword arguments of sd.Context


@dataclass(frozen=True, slots=True)
class EngineRun:
    seconds: float
    result: pl.DataFrame
    progress: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class PolarsRun:
    generate_seconds: float
    seconds: float
    result: pl.DataFrame


def ysb_statements(bench: YsbBench) -> tuple[str, str]:
    """The DDL (events and campaigns) and the YSB query, as DSL text."""
    ddl = f"""CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'generator', kind = 'ysb', rate = '{bench.rate:g}', count = '{bench.events}',
        seed = '{bench.seed}', realtime = 'false');
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '{bench.seed}');"""
    query = f"""SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '{bench.window_ms}' MILLISECOND)
EMIT ON WINDOW CLOSE"""
    return ddl, query


def run_engine(bench: YsbBench) -> EngineRun:
    """Run the query on stream-dsl to the end of its input; every emitted row is kept."""
    import stream_dsl as sd

    ctx = sd.Context(**dict(bench.context))
    ddl, query = ysb_statements(bench)
    ctx.sql(ddl)
    stream = ctx.sql(query)
    frames: list[pl.DataFrame] = []
    started = time.perf_counter()
    handle = stream.start(sink=lambda batch_id, frame: frames.append(frame))
    try:
        handle.await_termination()
    finally:
        handle.stop()
    seconds = time.perf_counter() - started
    result = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=stream.schema)
    return EngineRun(seconds, result, tuple(handle.progress()))


def polars_ysb(events: pl.DataFrame, campaigns: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """The YSB query in plain polars: views per campaign per [start, start + window) window."""
    window = pl.duration(milliseconds=window_ms)
    return (events.lazy()
            .filter(pl.col("event_type") == "view")
            .join(campaigns.lazy(), on="ad_id")
            .group_by("campaign_id", pl.col("event_time").dt.truncate(f"{window_ms}ms").alias("window_start"))
            .agg(pl.len().alias("views"))
            .with_columns(window_end=pl.col("window_start") + window)
            .select(RESULT_COLUMNS)
            .collect())


def run_polars(bench: YsbBench) -> PolarsRun:
    """Generate the same events, then time the query on them in one batch."""
    started = time.perf_counter()
    events = generator.ysb_events(bench.events, seed=bench.seed, rate=bench.rate)
    campaigns = generator.ysb_campaigns(bench.seed)
    generated = time.perf_counter()
    result = polars_ysb(events, campaigns, bench.window_ms)
    return PolarsRun(generated - started, time.perf_counter() - generated, result)


def _normalized(frame: pl.DataFrame) -> pl.DataFrame:
    return (frame.select(pl.col("campaign_id").cast(pl.String),
                         pl.col("window_start").cast(pl.Datetime("ms")),
                         pl.col("window_end").cast(pl.Datetime("ms")),
                         pl.col("views").cast(pl.Int64))
            .sort("campaign_id", "window_start"))


def compare_results(engine: pl.DataFrame, reference: pl.DataFrame) -> str | None:
    """None when both hold the same rows; else what differs, in one line."""
    a, b = _normalized(engine), _normalized(reference)
    if a.equals(b):
        return None
    only_engine = a.join(b, on=RESULT_COLUMNS, how="anti", nulls_equal=True).height
    only_polars = b.join(a, on=RESULT_COLUMNS, how="anti", nulls_equal=True).height
    return (f"stream-dsl has {a.height} rows, polars {b.height}; {only_engine} rows only in stream-dsl, "
            f"{only_polars} only in polars")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _context_text(context: dict[str, Any]) -> str:
    import stream_dsl as sd

    config = sd.Context(**context).config
    return (f"executor {config.executor}, {config.workers} worker{'s' if config.workers != 1 else ''}, "
            f"group size {config.group_size}, batch interval {format_duration_ms(config.batch_interval_ms)}, "
            f"optimizer {'on' if config.optimize else 'off'}")


def run(bench: YsbBench, out: TextIO) -> bool:
    """Run both, print the report to `out`; True when the results are equal."""
    print(f"bench ysb: {bench.events:,} events at {bench.rate:,.0f} events/s of event time (seed {bench.seed}), "
          f"views per campaign per {format_duration_ms(bench.window_ms)} tumbling window", file=out)
    print(f"  {_context_text(dict(bench.context))}", file=out)
    out.flush()
    engine = run_engine(bench)
    reference = run_polars(bench)
    engine_rate = bench.events / engine.seconds if engine.seconds > 0 else float("inf")
    polars_rate = bench.events / reference.seconds if reference.seconds > 0 else float("inf")
    latencies = [float(p["latency_ms"]) for p in engine.progress if p.get("latency_ms") is not None]
    latency = ("latency " + "  ".join(f"{name} {_percentile(latencies, q):,.1f} ms" for name, q in
                                      (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)))
               if latencies else "latency -")
    print(f"stream-dsl  {engine.seconds:9.3f} s  {engine_rate:>14,.0f} events/s  "
          f"{len(engine.progress):,} batch{'' if len(engine.progress) == 1 else 'es'}  {latency}", file=out)
    print(f"polars      {reference.seconds:9.3f} s  {polars_rate:>14,.0f} events/s  one batch "
          f"(generating the events took {reference.generate_seconds:.3f} s, not counted)", file=out)
    ratio = engine_rate / polars_rate if polars_rate not in (0, float("inf")) else float("nan")
    print(f"ratio       {ratio:9.3f}  (stream-dsl events/s / polars events/s)", file=out)
    difference = compare_results(engine.result, reference.result)
    if difference is None:
        print(f"result      OK ({engine.result.height:,} rows equal)", file=out)
    else:
        print(f"result      MISMATCH: {difference}", file=out)
    return difference is None

