"""`stream-dsl bench compare`: stream-dsl side by side with plain polars and DuckDB, as one ratio table.

Every row runs in the same process, one after the other, so a ratio's two
sides see the same machine load:

- YSB throughput over columnar events, ndjson files and parquet files:
  stream-dsl (as fast as it can) against plain polars and DuckDB computing
  the same result over the same events in one batch (`ysb.run_polars`,
  `duckdb_ysb`); each result must equal polars' (else MISMATCH). The
  three run `repeat` rounds on the same files, and the ratio is the median
  of the rounds' ratios, printed with their spread.
- Small batches: ndjson files of 50 events, one file per batch, drizzle
  with groups of 50 against bsp: milliseconds per batch and their ratio.
- Scaling: throughput with 2 workers over 1, with one polars thread per
  worker and with the default, 'auto' (`experiments.worker_scaling`).
- Latency: the paced YSB run at the rate with 10 ms batches, p99 event
  latency of drizzle and of bsp (`latency.run_latency`).

`write_markdown` writes the table the README's performance section is made
of; `plots.compare_plot` draws it. DuckDB is the `test` extra: without it
its column says so and the rest runs.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable, Sequence, TextIO

import polars as pl

from stream_dsl.bench.ysb import (
    RESULT_COLUMNS,
    EngineRun,
    PolarsRun,
    YsbBench,
    compare_results,
    prepared_data,
    run_engine,
    run_polars,
)
from stream_dsl.connectors import generator

__all__ = ["CompareSettings", "Row", "run_compare", "duckdb_ysb", "markdown_table", "write_markdown", "has_duckdb"]

TARGETS = {
    "columnar": "",
    "ndjson": ">= 0.9",
    "parquet": ">= 0.6",
    "small batches": "<= 0.33, <= 1 ms",
    "scaling, 1 thread": ">= 1.7x",
    "scaling, default": ">= 1.0x",
    "latency": "p99 < 50 ms",
}


@dataclass(frozen=True, slots=True)
class CompareSettings:
    """What `run_compare` measures: the YSB size, the small-batch run, the scaling and latency runs."""

    events: int = 2_000_000
    rate: float = 1_000_000
    context: tuple[tuple[str, Any], ...] = ()  # sd.Context arguments of every stream-dsl run
    small_batches: int = 300
    small_rows: int = 50
    small_group: int = 50
    scaling_events: int | None = None  # None: events
    repeat: int = 1
    latency_s: float = 5.0  # length of each paced run (0: no latency row)
    latency_batch_ms: int = 10
    latency_window_ms: int = 1000
    data_dir: str | None = None
    files_per_batch: tuple[int, ...] = (1, 5)  # a row of each file format per value


@dataclass
class Row:
    """One line of the table: what was measured, each system's figure (text), the ratio and its target."""

    name: str
    engine: str
    polars: str = "-"
    duckdb: str = "-"
    ratio: float | None = None
    ratio_text: str = ""
    target: str = ""
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def has_duckdb() -> bool:
    try:
        import duckdb  # noqa: F401
    except ImportError:
        return False
    return True


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else float("inf")


def _median(values: Sequence[float]) -> float:
    """The middle value (the upper one of an even count), as the scaling rows take theirs."""
    return sorted(values)[len(values) // 2]


def _m(rate: float) -> str:
    return f"{rate / 1e6:,.2f} M/s"


# ---------------------------------------------------------------- DuckDB


def duckdb_ysb(bench: YsbBench, events_dir: str | None, events: pl.DataFrame | None) -> tuple[float, pl.DataFrame]:
    """The YSB query in DuckDB over the same events (a frame, or the files in `events_dir`): seconds, result.

    A frame is loaded into a DuckDB table first, not timed (through a parquet file: handing a polars frame
    to DuckDB directly needs pyarrow); files are read by the timed query itself, as polars scans them.
    """
    import duckdb

    window = bench.window_ms
    con = duckdb.connect()
    con.execute("CREATE TABLE campaigns (ad_id VARCHAR, campaign_id VARCHAR)")
    con.executemany("INSERT INTO campaigns VALUES (?, ?)", generator.ysb_campaigns(bench.seed).rows())
    if bench.format == "parquet":
        source, epoch = f"read_parquet('{events_dir}/*.parquet')", "epoch_ms(event_time)"
    elif bench.format == "ndjson":
        columns = ", ".join(f"'{name}': 'VARCHAR'" for name in generator.YSB_SCHEMA.names)
        source = f"read_json('{events_dir}/*.ndjson', format = 'newline_delimited', columns = {{{columns}}})"
        epoch = "CAST(event_time AS BIGINT)"
    else:
        assert events is not None
        with tempfile.TemporaryDirectory(prefix="sd-compare-", dir=bench.data_dir) as tmp:
            path = os.path.join(tmp, "events.parquet")
            events.write_parquet(path)
            con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{path}')")
        source, epoch = "events", "epoch_ms(event_time)"
    query = f"""
        SELECT c.campaign_id, ({epoch} // {window}) * {window} AS window_start, count(*) AS views
        FROM {source} AS e JOIN campaigns AS c ON e.ad_id = c.ad_id
        WHERE e.event_type = 'view'
        GROUP BY ALL"""
    started = time.perf_counter()
    rows = con.execute(query).fetchall()
    seconds = time.perf_counter() - started
    con.close()
    result = pl.DataFrame(
        rows, schema={"campaign_id": pl.String, "window_start": pl.Int64, "views": pl.Int64}, orient="row"
    )
    start = pl.col("window_start")
    result = result.with_columns(
        window_start=start.cast(pl.Datetime("ms")), window_end=(start + window).cast(pl.Datetime("ms"))
    )
    return seconds, result.select(RESULT_COLUMNS)


# ---------------------------------------------------------------- rows


def ysb_row(settings: CompareSettings, fmt: str, out: TextIO, files_per_batch: int = 1) -> Row:
    """YSB over one event format: stream-dsl, plain polars and DuckDB on the same events, `settings.repeat`
    rounds of all three; the ratio is the median of the rounds' ratios (one 2M-event run of plain polars
    lasts 50 ms, so a single round's ratio swung by half between runs of the same code)."""
    bench = YsbBench(
        events=settings.events,
        rate=settings.rate,
        context=settings.context,
        format=fmt,
        duration_s=0,
        data_dir=settings.data_dir,
        files_per_batch=files_per_batch,
    )
    engines: list[EngineRun] = []
    references: list[PolarsRun] = []
    ducks: list[tuple[float, pl.DataFrame]] = []
    with prepared_data(bench) as events_dir:
        frame = None
        if has_duckdb() and fmt == "columnar":
            frame = generator.ysb_events(bench.events, seed=bench.seed, rate=bench.rate)
        for _ in range(settings.repeat):  # paired rounds: each round's ratio has both sides under one load
            engines.append(run_engine(bench, events_dir=events_dir))
            references.append(run_polars(bench, events_dir))
            if has_duckdb():
                ducks.append(duckdb_ysb(bench, events_dir, frame))
    engine_rates = [run.events_per_s for run in engines]
    polars_rates = [_rate(bench.events, reference.seconds) for reference in references]
    ratios = sorted(e / p for e, p in zip(engine_rates, polars_rates))
    ratio = _median(ratios)
    problems = []
    for run, reference in zip(engines, references):
        if (difference := compare_results(run.result, reference.result)) is not None:
            problems.append(f"stream-dsl MISMATCH: {difference}")
            break
    data: dict[str, Any] = {
        "engine_events_per_s": _median(engine_rates),
        "polars_events_per_s": _median(polars_rates),
        "ratio": ratio,
        "rounds": ratios,
        "equal": not problems,
    }
    duck_text = "not installed"
    if ducks:
        duck_rates = [_rate(bench.events, seconds) for seconds, _ in ducks]
        duck_text = _m(_median(duck_rates))
        data["duckdb_events_per_s"] = _median(duck_rates)
        data["ratio_duckdb"] = _median([e / d for e, d in zip(engine_rates, duck_rates)])
        if (difference := compare_results(ducks[0][1], references[0].result)) is not None:
            problems.append(f"DuckDB MISMATCH: {difference}")
    notes = [f"rounds {ratios[0]:.2f} to {ratios[-1]:.2f}"] if len(ratios) > 1 else []
    if "ratio_duckdb" in data:
        notes.append(f"vs DuckDB {data['ratio_duckdb']:.2f}")
    files = f", {bench.file_count:,} files, {files_per_batch} per batch" if fmt in ("ndjson", "parquet") else ""
    row = Row(
        name=f"YSB {fmt}, {bench.events:,} events{files}",
        engine=_m(data["engine_events_per_s"]),
        polars=_m(data["polars_events_per_s"]),
        duckdb=duck_text,
        ratio=ratio,
        ratio_text=f"{ratio:.2f}" + (f" ({'; '.join(notes)})" if notes else ""),
        target=TARGETS[fmt],
        note="; ".join(problems) or "results equal",
        data=data,
    )
    _say(row, out)
    return row


def small_batch_row(settings: CompareSettings, out: TextIO) -> Row:
    """ndjson files of `small_rows` events, one per batch: drizzle (groups of `small_group`) against bsp."""
    events = settings.small_batches * settings.small_rows
    bench = YsbBench(
        events=events,
        rate=settings.rate,
        context=settings.context,
        format="ndjson",
        duration_s=0,
        files=settings.small_batches,
        data_dir=settings.data_dir,
        splits=False,  # one file per batch (read in one part per worker, a batch was a file per worker)
    )
    ms: dict[str, float] = {}
    cpu_ms: dict[str, dict[str, float]] = {}
    with prepared_data(bench) as events_dir:
        for label, changes in (
            ("drizzle", {"executor": "drizzle", "group_size": settings.small_group}),
            ("bsp", {"executor": "bsp"}),
        ):
            cpu = time.process_time()
            run = run_engine(bench.with_context(**changes), events_dir=events_dir)
            ms[label] = run.seconds * 1000 / max(1, len(run.progress))
            cpu_ms[label] = {
                "tasks": task_cpu_ms(run.progress),
                "driver": (time.process_time() - cpu) * 1000 / max(1, len(run.progress)),
            }
        reference = run_polars(bench, events_dir)
    ratio = ms["drizzle"] / ms["bsp"] if ms["bsp"] else float("nan")
    row = Row(
        name=f"small batches: {settings.small_batches} ndjson files of {settings.small_rows} events",
        engine=f"drizzle (groups of {settings.small_group}) {ms['drizzle']:.2f} ms/batch, bsp {ms['bsp']:.2f} ms/batch",
        polars=f"{reference.seconds * 1000:.0f} ms for all, one batch",
        ratio=ratio,
        ratio_text=f"drizzle / bsp {ratio:.2f}",
        target=TARGETS["small batches"],
        note="CPU ms/batch, workers' tasks + driver process: "
        + ", ".join(f"{k} {c['tasks']:.2f} + {c['driver']:.2f}" for k, c in cpu_ms.items()),
        data={"ms_per_batch": ms, "ratio": ratio, "polars_seconds": reference.seconds, "cpu_ms_per_batch": cpu_ms},
    )
    _say(row, out)
    return row


def task_cpu_ms(progress: Sequence[dict[str, Any]]) -> float:
    """The workers' CPU time per batch over their tasks (progress stages' cpu_ms): unlike the wall time, what
    another program's load on the machine leaves alone; the driver's own CPU time is not in it."""
    total = sum(m.get("cpu_ms", 0.0) for p in progress for m in p.get("stages", {}).values())
    return total / max(1, len(progress))


def scaling_rows(settings: CompareSettings, out: TextIO) -> list[Row]:
    """2 workers over 1, with one polars thread per worker and with the default ('auto': cores // workers)."""
    from stream_dsl.bench.experiments import worker_scaling
    from stream_dsl.cli.status import phase

    bench = YsbBench(
        events=settings.scaling_events or settings.events,
        rate=settings.rate,
        context=settings.context,
        duration_s=0,
    )
    config = bench.config
    threads: tuple[int | None, ...] = (
        (1, None) if config.executor != "inline" and config.transport == "pipes" else (None,)
    )
    with phase("stream-dsl: 1 and 2 workers"):
        points, ratios = worker_scaling(bench, io.StringIO(), workers=(1, 2), threads=threads, repeat=settings.repeat)
    rows = []
    for r in ratios:
        count = r["worker_threads"]
        mine = [p for p in points if p["worker_threads"] == count]
        label = "1 thread" if count == 1 else "default"
        spread = f" (rounds {r['rounds'][0]:.2f} to {r['rounds'][-1]:.2f})" if len(r["rounds"]) > 1 else ""
        rows.append(
            Row(
                name=f"scaling, {'1 polars thread per worker' if count == 1 else 'default polars threads'}, "
                f"{bench.events:,} events",
                engine=", ".join(f"{p['workers']}w {_m(p['events_per_s'])}" for p in mine),
                ratio=r["ratio"],
                ratio_text=f"2w / 1w {r['ratio']:.2f}x{spread}",
                target=TARGETS[f"scaling, {label}"],
                data={"points": mine, **r},
            )
        )
        _say(rows[-1], out)
    return rows


def latency_row(settings: CompareSettings, out: TextIO) -> Row | None:
    """p99 event latency of drizzle and bsp, paced at the rate, `latency_batch_ms` batches."""
    if settings.latency_s <= 0:
        return None
    from stream_dsl.bench.latency import run_latency

    bench = YsbBench(
        events=int(settings.rate * settings.latency_s),
        rate=settings.rate,
        window_ms=settings.latency_window_ms,
        context=settings.context,
        duration_s=settings.latency_s,
    ).with_context(batch_interval=f"{settings.latency_batch_ms}ms")
    p99: dict[str, float] = {}
    cpu_ms: dict[
        str, float
    ] = {}  # the workers' task CPU per batch: above the batch interval times the cores, no run keeps up
    for executor in ("drizzle", "bsp"):
        run = run_latency(bench.with_context(executor=executor))
        p99[executor] = run.percentiles().get("p99", float("nan"))
        cpu_ms[executor] = task_cpu_ms(run.engine.progress)
    ratio = p99["drizzle"] / p99["bsp"] if p99["bsp"] else float("nan")
    row = Row(
        name=f"latency at {settings.rate:,.0f} events/s, {settings.latency_batch_ms} ms batches, "
        f"{settings.latency_s:g} s runs",
        engine=f"p99 drizzle {p99['drizzle']:,.0f} ms, bsp {p99['bsp']:,.0f} ms",
        ratio=ratio,
        ratio_text=f"drizzle / bsp {ratio:.2f}",
        target=TARGETS["latency"],
        note=f"workers' task CPU per {settings.latency_batch_ms} ms batch: "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu_ms.items()),
        data={"p99_ms": p99, "ratio": ratio, "task_cpu_ms_per_batch": cpu_ms},
    )
    _say(row, out)
    return row


def _say(row: Row, out: TextIO) -> None:
    print(
        f"  {row.name}: stream-dsl {row.engine}; polars {row.polars}; DuckDB {row.duckdb}; {row.ratio_text}", file=out
    )
    out.flush()


def run_compare(
    settings: CompareSettings, out: TextIO, *, formats: tuple[str, ...] = ("columnar", "ndjson", "parquet")
) -> list[Row]:
    """Every row of the table, in order; prints each as it is measured."""
    from stream_dsl.cli.status import phase

    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        (f"YSB over {fmt}", partial(lambda f, k: [ysb_row(settings, f, out, k)], fmt, k))
        for fmt in formats
        for k in (settings.files_per_batch if fmt in ("ndjson", "parquet") else (1,))
    ]
    steps.append(("small batches", lambda: [small_batch_row(settings, out)]))
    steps.append(("scaling", lambda: scaling_rows(settings, out)))
    steps.append(("latency", lambda: [r for r in [latency_row(settings, out)] if r is not None]))
    rows: list[Row] = []
    for label, step in steps:
        with phase(f"bench compare: {label}"):
            rows.extend(step())
    return rows


# ---------------------------------------------------------------- the table


def markdown_table(rows: list[Row]) -> str:
    """The rows as a GitHub markdown table."""
    lines = [
        "| measurement | stream-dsl | plain polars | DuckDB | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = f" ({r.note})" if r.note and r.note != "results equal" else ""
        lines.append(f"| {r.name} | {r.engine} | {r.polars} | {r.duckdb} | {r.ratio_text}{note} | {r.target} |")
    return "\n".join(lines) + "\n"


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS does not tell): how busy it was."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def write_markdown(rows: list[Row], path: str, *, command: str, machine: str, load: str = "") -> str:
    """The table with the command and the machine it was measured with, ready to replace the README section."""
    from stream_dsl.errors import DSLError

    text = (
        f"Measured with `{command}` on {machine}{load}. Ratios are stream-dsl over plain polars (events/s) "
        "unless the ratio says otherwise; each ratio's two sides ran in the same run.\n\n" + markdown_table(rows)
    )
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise DSLError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def rows_data(rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {"name": r.name, "ratio": r.ratio, "ratio_text": r.ratio_text, "target": r.target, "note": r.note, **r.data}
        for r in rows
    ]


def tiny(settings: CompareSettings) -> CompareSettings:
    """The same measurements on tiny data (the tests' end-to-end run)."""
    return replace(
        settings,
        events=2_000,
        rate=10_000,
        small_batches=6,
        small_rows=10,
        small_group=3,
        latency_s=0.3,
        latency_batch_ms=50,
        latency_window_ms=100,
    )
