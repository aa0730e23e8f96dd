"""`stream-dsl bench ysb`: the Yahoo Streaming Benchmark on stream-dsl and on plain polars, in one run.

The query counts the views per campaign per tumbling window:

    SELECT campaign_id, window_start, window_end, COUNT(*) AS views
    FROM events JOIN campaigns USING (ad_id) WHERE event_type = 'view'
    GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)

Two runs of stream-dsl, then plain polars:

- Throughput: N events (`realtime = 'false'`: as fast as it can) from the
  start of the query to its end, worker start-up excluded (it is reported
  separately): events per second.
- Latency, as YSB defines it (`bench_latency`): the same query with the
  generator paced to the wall clock at a fixed rate; for every window row
  reaching the sink, the wall time of the sink write minus the wall time
  at which the generator's clock reached the window's end. Percentiles
  over the rows.
- Polars: the same result computed in one process in one batch over the
  same events, timed in the same run; the ratio is stream-dsl's events per
  second over polars'. The two results must be equal (OK or MISMATCH).

Event formats: `columnar` (the generator's in-memory frames), `json` (JSON
lines made and decoded per batch, as the original benchmark does; polars
parses the same text with `pl.read_ndjson`), `ndjson` and `parquet` (files
written to a temporary directory first, one micro-batch per file; polars
scans the same files), and `kafka` (JSON messages loaded into a new topic
on a broker first, read in one part per worker; polars parses the same JSON
lines: `ysb_kafka.py`). Making the events and writing the files or the
topic is not timed for polars; for stream-dsl the generator's work is part
of its run. Files and topics are not paced: no latency run.

The watermark delay defaults to 0: the generator emits in event-time
order, so no row is late, and a window closes in the batch that passes its
end. With a delay D every window waits D longer.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Iterator, Sequence, TextIO

import polars as pl

from stream_dsl.connectors import generator
from stream_dsl.errors import DSLError
from stream_dsl.ir.expr import format_duration_ms

if TYPE_CHECKING:
    from stream_dsl.bench.latency import LatencyRun

__all__ = [
    "YsbBench",
    "EngineRun",
    "PolarsRun",
    "FORMATS",
    "ysb_statements",
    "polars_ysb",
    "compare_results",
    "run_engine",
    "run_polars",
    "prepared_data",
    "measure",
    "percentile",
    "run",
]

RESULT_COLUMNS = ["campaign_id", "window_start", "window_end", "views"]
FORMATS = ("columnar", "json", "ndjson", "parquet", "kafka")
FILE_FORMATS = ("ndjson", "parquet")
PREPARED_FORMATS = FILE_FORMATS + ("kafka",)  # written before the runs (`prepared_data`), so not paced
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))


@dataclass(frozen=True, slots=True)
class YsbBench:
    """What to run: the data (events, rate, seed, format), the window, and how stream-dsl runs it.

    `duration_s` is the length of the paced latency run (None: the events
    at the rate, events / rate seconds; 0: no latency run). `files` is the
    number of event files of the file formats (None: one per batch
    interval of events at the rate, so a file is a generator batch).
    `bootstrap` and `partitions`: the broker of the kafka format and its
    topic's partitions (None: one per worker).
    """

    events: int = 2_000_000
    rate: float = 1_000_000
    seed: int = 1
    window_ms: int = 10_000
    context: tuple[tuple[str, Any], ...] = ()  # keyword arguments of sd.Context
    format: str = "columnar"
    watermark_delay_ms: int = 0
    duration_s: float | None = None
    files: int | None = None
    data_dir: str | None = None  # where file formats are written (a temporary directory inside it)
    bootstrap: str | None = None
    partitions: int | None = None
    files_per_batch: int = 1  # ndjson/parquet: the files source's max_files_per_batch
    splits: bool = True  # file formats: the files source reads in one part per worker (splits = 'workers')

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise DSLError(f"unknown event format '{self.format}'; choose one of {', '.join(FORMATS)}")

    def with_context(self, **changes: Any) -> "YsbBench":
        """The same benchmark with some sd.Context arguments changed."""
        return replace(self, context=tuple({**dict(self.context), **changes}.items()))

    @property
    def config(self) -> Any:
        import stream_dsl as sd

        return sd.Context(**dict(self.context)).config

    @property
    def latency_events(self) -> int:
        if self.duration_s is None:
            return self.events
        return int(round(self.rate * self.duration_s))

    @property
    def file_count(self) -> int:
        if self.files is not None:
            return max(1, min(self.files, self.events))
        per_batch = max(1, int(self.rate * self.config.batch_interval_ms / 1000))
        return max(1, -(-self.events // per_batch))


@dataclass(frozen=True, slots=True)
class SinkCall:
    """One batch reaching the benchmark's sink: its id, the wall time (Unix seconds) and its rows."""

    batch: int
    at: float
    frame: pl.DataFrame


@dataclass(frozen=True, slots=True)
class EngineRun:
    """One run of stream-dsl: time from start() returning to the end (start-up apart), result, progress."""

    seconds: float
    result: pl.DataFrame
    progress: tuple[dict[str, Any], ...]
    startup_seconds: float = 0.0
    events: int = 0
    writes: tuple[SinkCall, ...] = ()
    trace: dict[str, Any] | None = None

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")

    def total(self, key: str) -> int:
        return sum(int(p.get(key) or 0) for p in self.progress)


@dataclass(frozen=True, slots=True)
class PolarsRun:
    generate_seconds: float
    seconds: float
    result: pl.DataFrame
    note: str = ""


# ---------------------------------------------------------------- the query


def _watermark(delay_ms: int) -> str:
    if delay_ms <= 0:
        return "WATERMARK FOR event_time AS event_time"
    return f"WATERMARK FOR event_time AS event_time - INTERVAL '{delay_ms}' MILLISECOND"


def _source_options(bench: YsbBench, events: int, realtime: bool, events_dir: str | None) -> str:
    if bench.format == "kafka":
        if events_dir is None:
            raise DSLError("the kafka format reads a topic: load it with prepared_data()")
        from stream_dsl.bench.ysb_kafka import source_options

        return source_options(bench, events_dir)
    if bench.format in FILE_FORMATS:
        if events_dir is None:
            raise DSLError(f"the {bench.format} format reads files: prepare them with prepared_data()")
        split = ",\n        splits = 'workers'" if bench.splits else ""
        return (
            f"connector = 'files', path = '{events_dir}', format = '{bench.format}', "
            f"max_files_per_batch = '{bench.files_per_batch}'{split}"
        )
    fmt = ", format = 'json'" if bench.format == "json" else ""
    return (
        f"connector = 'generator', kind = 'ysb', rate = '{bench.rate:g}', count = '{events}',\n"
        f"        seed = '{bench.seed}', realtime = '{'true' if realtime else 'false'}'{fmt}, splits = 'workers'"
    )


def ysb_statements(
    bench: YsbBench, *, events: int | None = None, realtime: bool = False, events_dir: str | None = None
) -> tuple[str, str]:
    """The DDL (events and campaigns) and the YSB query, as DSL text."""
    count = bench.events if events is None else events
    ddl = f"""CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  {_watermark(bench.watermark_delay_ms)}
) WITH ({_source_options(bench, count, realtime, events_dir)});
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '{bench.seed}');"""
    query = f"""SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '{bench.window_ms}' MILLISECOND)
EMIT ON WINDOW CLOSE"""
    return ddl, query


# ---------------------------------------------------------------- data


def exact_rate(rate: float) -> Fraction:
    return Fraction(rate).limit_denominator(1_000_000)


def generator_start_ms() -> int:
    return generator.parse_start_ms(generator.DEFAULT_START)


def write_event_files(directory: str, bench: YsbBench) -> str:
    """The benchmark's events as `bench.file_count` files of `bench.format` under `directory`/events."""
    events_dir = os.path.join(directory, "events")
    os.makedirs(events_dir, exist_ok=True)
    parts, count = bench.file_count, bench.events
    for k in range(parts):
        first, stop = count * k // parts, count * (k + 1) // parts
        frame = generator.ysb_frame(
            first, stop, seed=bench.seed, rate=exact_rate(bench.rate), start_ms=generator_start_ms()
        )
        path = os.path.join(events_dir, f"part-{k:05d}.{bench.format}")
        if bench.format == "parquet":
            frame.write_parquet(path)
        else:
            with open(path, "wb") as f:
                f.write(generator.events_as_json(frame))
    return events_dir


@contextmanager
def prepared_data(bench: YsbBench) -> Iterator[str | None]:
    """For the file formats: the events written to a temporary directory (removed after); for kafka: the name of
    a new topic holding them (deleted after); else None. The runs take it as `events_dir`."""
    if bench.format == "kafka":
        from stream_dsl.bench.ysb_kafka import loaded_topic

        with loaded_topic(bench) as topic:
            yield topic
        return
    if bench.format not in FILE_FORMATS:
        yield None
        return
    try:
        with tempfile.TemporaryDirectory(prefix="sd-ysb-", dir=bench.data_dir) as tmp:
            yield write_event_files(tmp, bench)
    except OSError as e:
        raise DSLError(f"cannot write the benchmark's files: {e.strerror or e}") from None


# ---------------------------------------------------------------- stream-dsl


def run_engine(
    bench: YsbBench,
    *,
    realtime: bool = False,
    events: int | None = None,
    trace: str | None = None,
    events_dir: str | None = None,
) -> EngineRun:
    """Run the query on stream-dsl to the end of its input; every emitted row is kept with its write time."""
    import stream_dsl as sd

    count = bench.events if events is None else events
    ctx = sd.Context(**dict(bench.context))
    ddl, query = ysb_statements(bench, events=count, realtime=realtime, events_dir=events_dir)
    ctx.sql(ddl)
    stream = ctx.sql(query)
    writes: list[SinkCall] = []

    def sink(batch_id: int, frame: pl.DataFrame) -> None:
        writes.append(SinkCall(batch_id, time.time(), frame))

    begun = time.perf_counter()
    handle = stream.start(sink=sink, trace=trace) if trace else stream.start(sink=sink)
    started = time.perf_counter()
    try:
        handle.await_termination()
    finally:
        handle.stop()
    seconds = time.perf_counter() - started
    frames = [w.frame for w in writes]
    result = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(schema=stream.schema)
    loaded = _load_trace(trace) if trace else None
    return EngineRun(seconds, result, tuple(handle.progress()), started - begun, count, tuple(writes), loaded)


def _load_trace(path: str) -> dict[str, Any] | None:
    from executor.trace import read_trace

    return read_trace(path) if os.path.exists(path) else None


# ---------------------------------------------------------------- plain polars


def polars_ysb(events: pl.DataFrame | pl.LazyFrame, campaigns: pl.DataFrame, window_ms: int) -> pl.DataFrame:
    """The YSB query in plain polars: views per campaign per [start, start + window) window."""
    window = pl.duration(milliseconds=window_ms)
    return (
        events.lazy()
        .filter(pl.col("event_type") == "view")
        .join(campaigns.lazy(), on="ad_id")
        .group_by("campaign_id", pl.col("event_time").dt.truncate(f"{window_ms}ms").alias("window_start"))
        .agg(pl.len().alias("views"))
        .with_columns(window_end=pl.col("window_start") + window)
        .select(RESULT_COLUMNS)
        .collect()
    )


_TEXT_SCHEMA = {name: pl.String for name in generator.YSB_SCHEMA.names}
_EPOCH_TEXT = pl.col("event_time").cast(pl.Int64).cast(pl.Datetime("ms"))


def parse_json_events(text: bytes) -> pl.DataFrame:
    """JSON lines of events (event_time as epoch milliseconds text) parsed by polars."""
    return pl.read_ndjson(io.BytesIO(text), schema=_TEXT_SCHEMA).with_columns(_EPOCH_TEXT)


def scan_event_files(events_dir: str, fmt: str) -> pl.LazyFrame:
    """The event files as one polars LazyFrame (polars pushes the filter and the columns into the scan)."""
    pattern = os.path.join(events_dir, f"*.{fmt}")
    if fmt == "parquet":
        return pl.scan_parquet(pattern)
    return pl.scan_ndjson(pattern, schema=_TEXT_SCHEMA).with_columns(_EPOCH_TEXT)


def run_polars(bench: YsbBench, events_dir: str | None = None) -> PolarsRun:
    """Make the same events (not timed), then time plain polars over them in one batch."""
    started = time.perf_counter()
    campaigns = generator.ysb_campaigns(bench.seed)
    if bench.format in FILE_FORMATS:
        if events_dir is None:
            raise DSLError(f"the {bench.format} format reads files: prepare them with prepared_data()")
        generated = time.perf_counter()
        result = polars_ysb(scan_event_files(events_dir, bench.format), campaigns, bench.window_ms)
        return PolarsRun(
            generated - started,
            time.perf_counter() - generated,
            result,
            f"over the same {bench.file_count:,} {bench.format} files (writing them is not counted)",
        )
    events = generator.ysb_events(bench.events, seed=bench.seed, rate=bench.rate)
    if bench.format in ("json", "kafka"):
        text = generator.events_as_json(events)
        generated = time.perf_counter()
        result = polars_ysb(parse_json_events(text), campaigns, bench.window_ms)
        return PolarsRun(
            generated - started,
            time.perf_counter() - generated,
            result,
            f"pl.read_ndjson over the same JSON lines (making them took {generated - started:.3f} s, not counted)",
        )
    generated = time.perf_counter()
    result = polars_ysb(events, campaigns, bench.window_ms)
    return PolarsRun(
        generated - started,
        time.perf_counter() - generated,
        result,
        f"(generating the events took {generated - started:.3f} s, not counted)",
    )


def _normalized(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("campaign_id").cast(pl.String),
        pl.col("window_start").cast(pl.Datetime("ms")),
        pl.col("window_end").cast(pl.Datetime("ms")),
        pl.col("views").cast(pl.Int64),
    ).sort("campaign_id", "window_start")


def compare_results(engine: pl.DataFrame, reference: pl.DataFrame) -> str | None:
    """None when both hold the same rows; else what differs, in one line."""
    a, b = _normalized(engine), _normalized(reference)
    if a.equals(b):
        return None
    only_engine = a.join(b, on=RESULT_COLUMNS, how="anti", nulls_equal=True).height
    only_polars = b.join(a, on=RESULT_COLUMNS, how="anti", nulls_equal=True).height
    return (
        f"stream-dsl has {a.height} rows, polars {b.height}; {only_engine} rows only in stream-dsl, "
        f"{only_polars} only in polars"
    )


# ---------------------------------------------------------------- the report


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile by nearest rank on the sorted values (q=1: the maximum)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def latency_text(latency: LatencyRun | None) -> str:
    if latency is None or not latency.latencies_ms:
        return "latency -"
    return "latency " + "  ".join(f"{name} {value:,.1f} ms" for name, value in latency.percentiles().items())


def context_text(context: dict[str, Any], *, optimizer: bool = True) -> str:
    """How stream-dsl runs, in words: 'executor drizzle, 2 workers, group size 10, ...'."""
    import stream_dsl as sd

    config = sd.Context(**context).config
    text = (
        f"executor {config.executor}, {config.workers} worker{'s' if config.workers != 1 else ''}, "
        f"group size {config.group_size}, batch interval {format_duration_ms(config.batch_interval_ms)}"
    )
    return text + (f", optimizer {'on' if config.optimize else 'off'}" if optimizer else "")


def _events_text(bench: YsbBench) -> str:
    if bench.format == "kafka":
        from stream_dsl.bench.ysb_kafka import events_text

        return events_text(bench)
    return {
        "columnar": "columnar events from the generator",
        "json": "JSON lines from the generator, decoded per batch",
        "ndjson": f"ndjson files ({bench.file_count:,}, {_per_batch(bench)})",
        "parquet": f"parquet files ({bench.file_count:,}, {_per_batch(bench)})",
    }[bench.format]


def _per_batch(bench: YsbBench) -> str:
    return "one per micro-batch" if bench.files_per_batch == 1 else f"{bench.files_per_batch} per micro-batch"


def _latency_note(bench: YsbBench, latency: LatencyRun | None) -> str:
    if bench.format in PREPARED_FORMATS:
        return f"no latency run ({'a topic loaded first is' if bench.format == 'kafka' else 'files are'} not paced)"
    if latency is None:
        return "no latency run (--duration 0)"
    seconds = latency.engine.events / latency.rate
    return (
        f"latency over {len(latency.latencies_ms):,} window rows ({latency.windows} windows closed by the "
        f"{latency.closed_by}) of a {seconds:,.1f} s run paced at {latency.rate:,.0f} events/s, late rows "
        f"{latency.engine.total('late_rows')}"
    )


@dataclass
class Report:
    """Everything one `bench ysb` measured (what --plots and --json use)."""

    bench: YsbBench
    engine: EngineRun
    latency: LatencyRun | None
    polars: PolarsRun | None
    difference: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.difference is None


def measure(
    bench: YsbBench, out: TextIO, *, events_dir: str | None = None, trace: str | None = None, polars: bool = True
) -> Report:
    """The throughput run, the latency run and the polars baseline; prints the report to `out`.

    File formats read `events_dir` (see `prepared_data`).
    """
    print(
        f"bench ysb: {bench.events:,} events at {bench.rate:,.0f} events/s of event time (seed {bench.seed}), "
        f"views per campaign per {format_duration_ms(bench.window_ms)} tumbling window; {_events_text(bench)}",
        file=out,
    )
    out.flush()
    from stream_dsl.bench.latency import run_latency
    from stream_dsl.cli.status import phase

    with phase("stream-dsl: the throughput run"):
        engine = run_engine(bench, trace=trace, events_dir=events_dir)
    latency = None
    if bench.format not in PREPARED_FORMATS and bench.latency_events > 0:
        with phase(f"stream-dsl: the latency run, paced at {bench.rate:,.0f} events/s"):
            latency = run_latency(bench, trace=latency_trace_path(trace))
    with phase("plain polars over the same events"):
        reference = run_polars(bench, events_dir) if polars else None
    delay = format_duration_ms(bench.watermark_delay_ms) if bench.watermark_delay_ms else "0"
    print(
        f"  {context_text(dict(bench.context))}, watermark delay {delay}; worker start-up "
        f"{engine.startup_seconds:.3f} s (not counted); {_latency_note(bench, latency)}",
        file=out,
    )
    batches = len(engine.progress)
    print(
        f"stream-dsl  {engine.seconds:9.3f} s  {engine.events_per_s:>14,.0f} events/s  "
        f"{batches:,} batch{'' if batches == 1 else 'es'}  {latency_text(latency)}",
        file=out,
    )
    difference = None
    if reference is not None:
        polars_rate = bench.events / reference.seconds if reference.seconds > 0 else float("inf")
        print(
            f"polars      {reference.seconds:9.3f} s  {polars_rate:>14,.0f} events/s  one batch {reference.note}",
            file=out,
        )
        ratio = engine.events_per_s / polars_rate if polars_rate not in (0, float("inf")) else float("nan")
        print(f"ratio       {ratio:9.3f}  (stream-dsl events/s / polars events/s)", file=out)
        difference = compare_results(engine.result, reference.result)
        if difference is None:
            print(f"result      OK ({engine.result.height:,} rows equal)", file=out)
        else:
            print(f"result      MISMATCH: {difference}", file=out)
    else:
        print("polars      skipped", file=out)
    return Report(bench, engine, latency, reference, difference)


def latency_trace_path(trace: str | None) -> str | None:
    """Where the latency run's trace goes when the throughput run's goes to `trace`: FILE.latency.json."""
    if trace is None:
        return None
    stem, ext = os.path.splitext(trace)
    return f"{stem}.latency{ext or '.json'}"


def run(bench: YsbBench, out: TextIO) -> bool:
    """Run both, print the report to `out`; True when the results are equal."""
    with prepared_data(bench) as events_dir:
        return measure(bench, out, events_dir=events_dir).ok
