"""`stream-dsl bench ...`: the benchmark commands (ysb, scheduling, memory, plots).

    stream-dsl bench ysb [--format columnar|json|ndjson|parquet|kafka] [--events N] [--rate R] [--duration S]
                         [--bootstrap HOST:PORT] [--partitions N]
                         [--ablation] [--compare] [--scaling] [--trace FILE] [--plots DIR] [--json FILE]
    stream-dsl bench scheduling [--iterations N] [--group-sizes 1,10,100]
    stream-dsl bench memory [--events 10M,100M]
    stream-dsl bench plots [--out docs/bench] [--from results.json]
    stream-dsl bench recovery [--groups 1,10,100] [--workers 2] [--rate 200000] [--batch-interval 100ms]
                              [--kill-after 3s] [--observe 3s] [--json FILE]
    stream-dsl bench compare [--events N] [--rate R] [--repeat K] [--table FILE] [--plot FILE] [--json FILE]

`stream_dsl.cli.main` registers these parsers in its BENCHMARKS table; the work
is done by `bench_ysb`, `bench_experiments`, `bench_memory`,
`bench_plots`, `stream_dsl.bench.scheduling`, `stream_dsl.bench.recovery` and `stream_dsl.bench.compare`,
imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from typing import Any, Sequence, TextIO

from stream_dsl.cli.common import EXIT_ERROR, EXIT_OK, UsageError, add_context_options, context_kwargs
from stream_dsl.errors import DSLError

__all__ = [
    "add_ysb",
    "add_scheduling",
    "add_memory",
    "add_plots",
    "add_recovery",
    "add_compare",
    "add_watch",
    "parse_count",
]

_SUFFIX = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def parse_count(text: str) -> float:
    """A positive number, with an optional k, M or G suffix: '250k', '1M', '1.5M', '2000000'."""
    raw = text.strip().replace("_", "")
    scale = _SUFFIX.get(raw[-1:].lower(), 1) if raw else 1
    number = raw[:-1] if scale != 1 else raw
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number such as 250k or 1M, got '{text}'") from None
    if not value > 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def _count(text: str) -> int:
    """A positive whole number, with an optional k, M or G suffix: '2M', '500k', '2000000'."""
    value = parse_count(text)
    if value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'")
    return int(value)


def _count_or_zero(text: str) -> int:
    return 0 if text.strip() == "0" else _count(text)


def _counts(text: str) -> list[int]:
    return [_count(part) for part in text.split(",") if part.strip()] or _fail_list(text)


def _rates(text: str) -> list[float]:
    return [parse_count(part) for part in text.split(",") if part.strip()] or _fail_list(text)


def _fail_list(text: str) -> Any:
    raise argparse.ArgumentTypeError(f"expected a comma-separated list such as 1,2 or 250k,1M, got '{text}'")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got '{text}'") from None
    if value < 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a non-negative number of seconds, got '{text}'")
    return value


def _duration_ms(text: str, option: str, *, zero: bool = False) -> int:
    stripped = text.strip()
    if zero and stripped in ("0", "0ms", "0s"):
        return 0
    from stream_dsl.bind import typecheck  # polars: only when parsing a value

    try:
        return typecheck.parse_duration_ms(f"{stripped}ms" if stripped.isdigit() else stripped)
    except DSLError:
        raise UsageError(f"{option}: expected a duration such as 10s or 100ms, got '{text}'") from None


def _command_line(argv: Sequence[str] | None) -> str:
    return "stream-dsl " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))


def _write_json(path: str, data: dict[str, Any]) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, default=str)
    except OSError as e:
        raise DSLError(f"cannot write {path}: {e.strerror or e}") from None


def _plots(data: dict[str, Any], directory: str, out: TextIO, command: str) -> None:
    from stream_dsl.bench.plots import write_plots

    written = write_plots(data, directory, command=command)
    print(f"plots: {', '.join(written) if written else 'nothing to plot'}", file=out)


# ---------------------------------------------------------------------- ysb


def cmd_ysb(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.bench import experiments as X
    from stream_dsl.bench import ysb as B

    bench = B.YsbBench(
        events=args.events,
        rate=args.rate,
        seed=args.seed,
        window_ms=_duration_ms(args.window, "--window"),
        context=tuple(context_kwargs(args).items()),
        format=args.format,
        watermark_delay_ms=_duration_ms(args.watermark_delay, "--watermark-delay", zero=True),
        duration_s=args.duration,
        files=args.files,
        data_dir=args.data_dir,
        bootstrap=args.bootstrap,
        partitions=args.partitions,
        files_per_batch=args.files_per_batch,
    )
    if (bench.format == "kafka") != (args.bootstrap is not None):
        raise UsageError("--format kafka needs --bootstrap HOST:PORT (a Kafka broker), and --bootstrap needs it")
    if args.partitions is not None and bench.format != "kafka":
        raise UsageError("--partitions goes with --format kafka")
    paced = bench.format not in B.PREPARED_FORMATS and bench.duration_s != 0
    if args.compare and not paced:
        raise UsageError("--compare paces the generator: use --format columnar or json, and a --duration above 0")
    if args.rates and not args.scaling:
        raise UsageError("--rates goes with --scaling")
    if args.plots:
        from stream_dsl.bench.plots import pyplot

        pyplot()  # no matplotlib: say so now, not after the runs
    if args.trace:
        from executor.trace import check_trace_path

        check_trace_path(args.trace)
    with B.prepared_data(bench) as events_dir:
        report = B.measure(bench, out, events_dir=events_dir, trace=args.trace, polars=not args.no_polars)
        if args.trace:
            _trace_summary(args.trace, B.latency_trace_path(args.trace) if report.latency else None, out)
        if args.ablation:
            report.extra["ablation"] = X.ablation(bench, out, events_dir=events_dir, done=report.engine)
        if args.compare:
            report.extra["compare"] = X.compare_latency(bench, out)
        if args.scaling:
            rates = (args.rates or [bench.rate * f for f in (0.25, 0.5, 1, 2, 4, 8)]) if paced else []
            report.extra["scaling"] = X.scaling(
                bench, out, workers=args.scaling_workers, rates=rates, events_dir=events_dir, repeat=args.repeat
            )
    data = X.report_dict(report)
    if args.json:
        _write_json(args.json, data)
        print(f"results: {args.json}", file=out)
    if args.plots:
        _plots(data, args.plots, out, _command_line(getattr(args, "argv", None)))
    return EXIT_OK if report.ok else EXIT_ERROR


def _trace_summary(path: str, latency_path: str | None, out: TextIO) -> None:
    from executor.trace import read_trace, render_summary, summarize

    where = f"{path} (throughput run)" + (f" and {latency_path} (latency run)" if latency_path else "")
    print(f"\ntrace: {where}; open in https://ui.perfetto.dev or chrome://tracing", file=out)
    print("where the time went in the throughput run:", file=out)
    for line in render_summary(summarize(read_trace(path))):
        print(f"  {line}", file=out)


def add_ysb(kinds: argparse._SubParsersAction) -> None:
    y = kinds.add_parser(
        "ysb",
        help="the Yahoo Streaming Benchmark against plain polars",
        description=(
            "Run the YSB query (views per campaign per tumbling window) over N events on stream-dsl as fast as "
            "it can (throughput: events/s, worker start-up excluded), then paced to the wall clock at the rate "
            "(latency of each window row: sink write minus the window's end in the generator's clock; p50, p95, "
            "p99), then the same query in plain polars over the same events in one batch; print both "
            "throughputs, their ratio, and whether the results are equal (OK, exit code 0) or not (MISMATCH, "
            "exit code 1). --ablation, --compare and --scaling add experiments; --trace, --json and --plots "
            "keep what was measured."
        ),
    )
    y.add_argument(
        "--events",
        type=_count,
        default=2_000_000,
        metavar="N",
        help="number of events, e.g. 2000000 or 2M (default: 2M)",
    )
    y.add_argument(
        "--rate",
        type=parse_count,
        default=1_000_000,
        metavar="R",
        help="events per second of event time; the paced latency run's input rate (default: 1000000)",
    )
    y.add_argument(
        "--format",
        choices=("columnar", "json", "ndjson", "parquet", "kafka"),
        default="columnar",
        help="the events: the generator's columnar frames, JSON lines decoded per batch, ndjson "
        "or parquet files written to a temporary directory first, or JSON messages loaded into a new Kafka topic "
        "first and read in one part per worker (default: columnar)",
    )
    y.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    y.add_argument("--window", default="10s", metavar="DURATION", help="tumbling window size (default: 10s)")
    y.add_argument(
        "--watermark-delay",
        default="0",
        metavar="DURATION",
        help="how far the watermark trails the newest event (default: 0; the generator emits in order)",
    )
    y.add_argument(
        "--duration",
        type=_seconds,
        metavar="SECONDS",
        help="length of each paced run (default: events / rate; 0: no paced runs)",
    )
    y.add_argument(
        "--files",
        type=_count,
        metavar="K",
        help="ndjson/parquet: number of files, one micro-batch each (default: one per batch interval "
        "of events at the rate)",
    )
    y.add_argument(
        "--files-per-batch",
        type=_count,
        default=1,
        metavar="K",
        help="ndjson/parquet: files read per micro-batch (the source's max_files_per_batch; default: 1)",
    )
    y.add_argument("--data-dir", metavar="DIR", help="ndjson/parquet: where the temporary files go")
    y.add_argument("--bootstrap", metavar="HOST:PORT", help="kafka: the broker the events topic is made on")
    y.add_argument(
        "--partitions",
        type=_count,
        metavar="N",
        help="kafka: the events topic's partitions (default: one per worker)",
    )
    y.add_argument("--no-polars", action="store_true", help="skip the plain polars baseline")
    extra = y.add_argument_group("experiments")
    extra.add_argument(
        "--ablation",
        action="store_true",
        help="also run with the optimizer off (or on): ratios of throughput and shuffle bytes",
    )
    extra.add_argument(
        "--compare", action="store_true", help="latency of drizzle, bsp and drizzle with the optimizer off at the rate"
    )
    extra.add_argument(
        "--scaling",
        action="store_true",
        help="throughput against workers (1, 2; with the default, 'auto' threads per worker and with one), the ratio "
        "2 / 1 workers, and throughput and latency against the input rate",
    )
    extra.add_argument(
        "--scaling-workers",
        type=_counts,
        default=[1, 2],
        metavar="LIST",
        help="worker counts of --scaling (default: 1,2)",
    )
    extra.add_argument(
        "--repeat",
        type=_count,
        default=1,
        metavar="K",
        help="--scaling: rounds over the worker counts; the median and the spread of the ratio (default: 1)",
    )
    extra.add_argument(
        "--rates",
        type=_rates,
        metavar="LIST",
        help="input rates of --scaling, e.g. 250k,500k,1M,2M (default: 0.25x to 8x the rate)",
    )
    keep = y.add_argument_group("output")
    keep.add_argument(
        "--trace", metavar="FILE", help="Chrome trace of the throughput run (and FILE.latency.json of the latency run)"
    )
    keep.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    keep.add_argument("--plots", metavar="DIR", help="draw PNG plots of what was measured into DIR (needs matplotlib)")
    add_context_options(y)
    y.set_defaults(handler=cmd_ysb)


# ---------------------------------------------------------------------- scheduling


def _scheduling(
    iterations: int | None,
    rows: int | None,
    workers: int | None,
    group_sizes: Sequence[int] | None,
    repeat: int | None,
    warmup: int | None,
    transport: str | None = None,
    ray_address: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """run_scheduling_bench with the options given (the others keep its defaults)."""
    from stream_dsl.bench.scheduling import run_scheduling_bench

    given = {
        "rows_per_batch": rows,
        "workers": workers,
        "repeat": repeat,
        "warmup": warmup,
        "group_sizes": None if group_sizes is None else tuple(group_sizes),
        "transport": transport,
        "ray_address": ray_address,
        "source": source,
    }
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if iterations is not None:
        return run_scheduling_bench(iterations, verbose=False, **options)
    return run_scheduling_bench(verbose=False, **options)


def cmd_scheduling(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.bench.scheduling import format_report

    report = _scheduling(
        args.iterations,
        args.rows_per_batch,
        args.workers,
        args.group_sizes,
        args.repeat,
        args.warmup,
        args.transport,
        args.ray_address,
        args.source,
    )
    print(format_report(report), file=out)
    if args.json:
        _write_json(args.json, report)
    return EXIT_OK


def add_scheduling(kinds: argparse._SubParsersAction) -> None:
    s = kinds.add_parser(
        "scheduling",
        help="the Drizzle paper's 2-stage scheduling micro-benchmark",
        description=(
            "Small micro-batches through a map stage, a shuffle and a grouped aggregate: time per iteration "
            "with BSP, with pre-scheduling only (group size 1) and with larger groups, in one run. Options not "
            "given keep the defaults of stream_dsl.bench.scheduling.run_scheduling_bench."
        ),
    )
    s.add_argument("--iterations", type=_count, metavar="N", help="micro-batches")
    s.add_argument("--rows-per-batch", type=_count, metavar="N", help="rows per batch")
    s.add_argument("--workers", type=_count, metavar="N", help="worker processes")
    s.add_argument("--group-sizes", type=_counts, metavar="LIST", help="Drizzle group sizes, e.g. 1,10,100")
    s.add_argument("--repeat", type=_count, metavar="N", help="runs per mode")
    s.add_argument("--warmup", type=_count_or_zero, metavar="N", help="batches run before the measured ones (0: none)")
    s.add_argument("--json", metavar="FILE", help="write the measurements as JSON")
    s.add_argument("--transport", choices=("pipes", "ray"), help="how the driver and the workers talk (default: pipes)")
    s.add_argument("--ray-address", metavar="ADDRESS", help="with --transport ray: 'auto' or host:port of a cluster")
    s.add_argument(
        "--source",
        choices=("memory", "files"),
        help="the batches: in memory, or a parquet file each read by the files source (default: memory)",
    )
    s.set_defaults(handler=cmd_scheduling)


# ---------------------------------------------------------------------- memory


def cmd_memory(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.bench.memory import run_memory

    results = run_memory(args.events, context_kwargs(args), out, rate=args.rate, seed=args.seed)
    if args.json:
        _write_json(args.json, {"memory": results})
    return EXIT_OK


def add_memory(kinds: argparse._SubParsersAction) -> None:
    m = kinds.add_parser(
        "memory",
        help="peak memory of the YSB query against the stream's length",
        description=(
            "Run the YSB query as fast as possible over each number of events, each in a fresh process, and "
            "print the peak resident memory of the driver and the workers (VmHWM) and its growth from the first "
            "size. Memory should be flat in the length of the stream."
        ),
    )
    m.add_argument(
        "--events",
        type=_counts,
        default=[1_000_000, 10_000_000],
        metavar="LIST",
        help="numbers of events, e.g. 10M,100M (default: 1M,10M)",
    )
    m.add_argument("--rate", type=parse_count, default=1_000_000, metavar="R", help="events per second of event time")
    m.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    m.add_argument("--json", metavar="FILE", help="write the measurements as JSON")
    add_context_options(m)
    m.set_defaults(handler=cmd_memory)


# ---------------------------------------------------------------------- plots


def cmd_plots(args: argparse.Namespace, out: TextIO) -> int:
    import os

    from stream_dsl.bench import experiments as X
    from stream_dsl.bench import ysb as B
    from stream_dsl.bench.plots import pyplot

    pyplot()
    command = _command_line(getattr(args, "argv", None))
    if args.source:
        try:
            with open(args.source, encoding="utf-8") as f:
                data: dict[str, Any] = json.load(f)
        except (OSError, ValueError) as e:
            raise DSLError(f"cannot read {args.source}: {e}") from None
        _plots(data, args.out, out, data.get("command") or command)
        return EXIT_OK
    bench = B.YsbBench(
        events=int(args.rate * args.duration),
        rate=args.rate,
        window_ms=_duration_ms(args.window, "--window"),
        context=tuple(context_kwargs(args).items()),
        duration_s=args.duration,
    )
    print(f"bench plots: {X.machine_text(X.machine())}", file=out)
    data = {"command": command, "machine": X.machine(), "bench": X.bench_dict(bench)}
    data["compare"] = X.compare_latency(bench, out)
    rates = args.rates or [bench.rate * f for f in (0.25, 0.5, 1, 2, 4, 8)]
    data["scaling"] = X.scaling(bench.with_context(executor=bench.config.executor), out, workers=(), rates=rates)
    print(f"\nscheduling micro-benchmark, group sizes {','.join(map(str, args.group_sizes))}:", file=out)
    out.flush()
    from stream_dsl.bench.scheduling import format_report

    data["scheduling"] = _scheduling(args.iterations, 50, bench.config.workers, args.group_sizes, args.repeat, None)
    print(format_report(data["scheduling"]), file=out)
    os.makedirs(args.out, exist_ok=True)
    results = os.path.join(args.out, "results.json")
    _write_json(results, data)
    print(f"\nresults: {results}", file=out)
    _plots(data, args.out, out, command)
    return EXIT_OK


def add_plots(kinds: argparse._SubParsersAction) -> None:
    p = kinds.add_parser(
        "plots",
        help="measure and draw the benchmark plots (PNG)",
        description=(
            "Measure, then draw into DIR: latency_cdf.png (YSB event latency of drizzle, bsp and drizzle with "
            "the optimizer off), throughput_vs_rate.png (achieved throughput and p99 latency against the input "
            "rate) and scheduling.png (time per iteration against group size); the numbers go to "
            "DIR/results.json. With --from, redraw from a results file without measuring. Needs matplotlib "
            "(pip install 'stream-dsl[bench]')."
        ),
    )
    p.add_argument("--out", default="docs/bench", metavar="DIR", help="where the PNGs go (default: docs/bench)")
    p.add_argument("--from", dest="source", metavar="FILE", help="redraw from a results.json instead of measuring")
    p.add_argument(
        "--rate",
        type=parse_count,
        default=1_000_000,
        metavar="R",
        help="input rate of the latency runs (default: 1000000)",
    )
    p.add_argument(
        "--duration", type=_seconds, default=20.0, metavar="SECONDS", help="length of each paced run (default: 20)"
    )
    p.add_argument(
        "--window", default="1s", metavar="DURATION", help="tumbling window (default: 1s, so a run closes many windows)"
    )
    p.add_argument(
        "--rates",
        type=_rates,
        metavar="LIST",
        help="input rates of the throughput plot (default: 0.25x to 8x the rate)",
    )
    p.add_argument(
        "--iterations",
        type=_count,
        default=200,
        metavar="N",
        help="micro-batches of the scheduling benchmark (default: 200)",
    )
    p.add_argument(
        "--group-sizes",
        type=_counts,
        default=[1, 2, 5, 10, 20, 50, 100],
        metavar="LIST",
        help="group sizes of the scheduling plot (default: 1,2,5,10,20,50,100)",
    )
    p.add_argument(
        "--repeat",
        type=_count,
        default=3,
        metavar="N",
        help="runs of each scheduling mode, the median counts (default: 3)",
    )
    add_context_options(p)
    p.set_defaults(handler=cmd_plots)


# ---------------------------------------------------------------------- recovery


def _group_sizes(text: str) -> list[int | str]:
    """Group sizes: positive whole numbers or 'auto', comma-separated: '1,10,100', '10,auto'."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    return [("auto" if part.lower() == "auto" else _count(part)) for part in parts] or _fail_list(text)


def _span_s(text: str) -> float:
    """A duration in seconds: '3s', '500ms', '1.5s', or a bare number of seconds."""
    stripped = text.strip()
    from stream_dsl.bind import typecheck  # polars: only when parsing a value

    try:
        if stripped.replace(".", "", 1).isdigit():
            return float(stripped)
        return typecheck.parse_duration_ms(stripped) / 1000.0
    except DSLError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 3s or 500ms, got '{text}'") from None


def cmd_recovery(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.bench.recovery import RecoveryBench, all_exact, format_report, run_recovery_bench

    bench = RecoveryBench(
        group_sizes=tuple(args.groups),
        workers=args.workers,
        rate=args.rate,
        batch_interval_ms=_duration_ms(args.batch_interval, "--batch-interval"),
        kill_after_s=args.kill_after,
        observe_s=args.observe,
        window_ms=_duration_ms(args.window, "--window"),
        seed=args.seed,
        executor=args.executor,
        kill_worker=args.kill_worker,
    )
    report = run_recovery_bench(bench, out)
    print(format_report(report), file=out)
    if args.json:
        report["command"] = _command_line(getattr(args, "argv", None))
        _write_json(args.json, report)
        print(f"results: {args.json}", file=out)
    return EXIT_OK if all_exact(report) else EXIT_ERROR


def add_recovery(kinds: argparse._SubParsersAction) -> None:
    r = kinds.add_parser(
        "recovery",
        help="what a worker kill costs: recovery time and latency per group size",
        description=(
            "For each group size: run the YSB query paced to the wall clock into a files sink with a checkpoint "
            "directory, kill one worker (SIGKILL) after the warm-up, and print the time from the kill to its "
            "detection, to the workers restored and to the first batch after the recovery, the batches redone "
            "from the checkpoint, the latency of the batches caught up after the recovery against the steady "
            "state before the kill, and whether the output was exact (every window once, with plain polars' "
            "counts; exit code 1 if not). See executor/bench_recovery.py for the definitions."
        ),
    )
    r.add_argument(
        "--groups",
        type=_group_sizes,
        default=[1, 10, 100],
        metavar="LIST",
        help="group sizes, one run each, e.g. 1,10,100 or 10,auto (default: 1,10,100)",
    )
    r.add_argument("--workers", type=_count, default=2, metavar="N", help="worker processes (default: 2)")
    r.add_argument(
        "--executor", choices=("drizzle", "bsp"), default="drizzle", help="the multiprocess executor (default: drizzle)"
    )
    r.add_argument(
        "--rate",
        type=parse_count,
        default=200_000,
        metavar="R",
        help="events per second, paced to the wall clock (default: 200000)",
    )
    r.add_argument(
        "--batch-interval",
        default="100ms",
        metavar="DURATION",
        help="event time one micro-batch covers (default: 100ms)",
    )
    r.add_argument(
        "--kill-after",
        type=_span_s,
        default=3.0,
        metavar="DURATION",
        help="warm-up: how long after the first batch was recorded the worker is killed (default: 3s)",
    )
    r.add_argument(
        "--observe",
        type=_span_s,
        default=3.0,
        metavar="DURATION",
        help="how long the run goes on after the first batch after the recovery (default: 3s)",
    )
    r.add_argument("--kill-worker", type=int, default=0, metavar="W", help="the worker killed (default: 0)")
    r.add_argument("--window", default="1s", metavar="DURATION", help="tumbling window size (default: 1s)")
    r.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    r.add_argument("--json", metavar="FILE", help="write the measurements as JSON")
    r.set_defaults(handler=cmd_recovery)


# ---------------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.bench import compare as C
    from stream_dsl.bench import experiments as X

    if args.plot:
        from stream_dsl.bench.plots import pyplot

        pyplot()  # no matplotlib: say so now, not after the runs
    settings = C.CompareSettings(
        events=args.events,
        rate=args.rate,
        context=tuple(context_kwargs(args).items()),
        small_batches=args.small_batches,
        small_rows=args.small_rows,
        small_group=args.small_group,
        scaling_events=args.scaling_events,
        repeat=args.repeat,
        latency_s=args.latency_duration,
        latency_batch_ms=_duration_ms(args.latency_batch, "--latency-batch"),
        latency_window_ms=_duration_ms(args.latency_window, "--latency-window"),
        data_dir=args.data_dir,
        files_per_batch=tuple(args.files_per_batch),
    )
    machine = X.machine()
    command = _command_line(getattr(args, "argv", None))
    print(f"bench compare: {X.machine_text(machine)}", file=out)
    if not C.has_duckdb():
        print("  DuckDB is not installed (pip install duckdb): its column is skipped", file=out)
    before = C.load_average()
    rows = C.run_compare(settings, out)
    after = C.load_average()
    load = (
        "" if before is None or after is None else f" (load average {before:.1f} at the start, {after:.1f} at the end)"
    )
    table = C.markdown_table(rows)
    print("\n" + table, file=out, end="")
    data: dict[str, Any] = {"command": command, "machine": machine, "load": [before, after], "rows": C.rows_data(rows)}
    print(f"machine{load or ' load unknown'}", file=out)
    if args.table:
        C.write_markdown(rows, args.table, command=command, machine=X.machine_text(machine), load=load)
        print(f"table: {args.table}", file=out)
    if args.plot:
        from stream_dsl.bench.plots import compare_plot

        compare_plot(data, args.plot, footer=f"{X.machine_text(machine)}{load}; $ {command}")
        print(f"plot: {args.plot}", file=out)
    if args.json:
        _write_json(args.json, data)
        print(f"results: {args.json}", file=out)
    mismatched = [r.name for r in rows if "MISMATCH" in r.note]
    return EXIT_ERROR if mismatched else EXIT_OK


def add_compare(kinds: argparse._SubParsersAction) -> None:
    c = kinds.add_parser(
        "compare",
        help="stream-dsl, plain polars and DuckDB side by side: the ratio table and plot",
        description=(
            "In one run: YSB over columnar events, ndjson and parquet files on stream-dsl, plain polars and "
            "DuckDB (when installed) over the same events; small batches (ndjson files, one per batch) on drizzle "
            "and bsp; 2 workers over 1 with one polars thread per worker and with the default ('auto'); p99 event "
            "latency of drizzle and bsp paced at the rate with small batches. Prints the ratio table; --table "
            "writes it as markdown (the README's performance section), --plot draws it (needs matplotlib). Exit "
            "code 1 when a result differs from polars'."
        ),
    )
    c.add_argument("--events", type=_count, default=2_000_000, metavar="N", help="YSB events (default: 2M)")
    c.add_argument(
        "--rate", type=parse_count, default=1_000_000, metavar="R", help="events/s of event time (default: 1M)"
    )
    c.add_argument("--small-batches", type=_count, default=300, metavar="N", help="small batches (default: 300)")
    c.add_argument("--small-rows", type=_count, default=50, metavar="N", help="events per small batch (default: 50)")
    c.add_argument("--small-group", type=_count, default=50, metavar="G", help="drizzle group size there (default: 50)")
    c.add_argument("--scaling-events", type=_count, metavar="N", help="events of the scaling runs (default: --events)")
    c.add_argument(
        "--repeat",
        type=_count,
        default=3,
        metavar="K",
        help="rounds of the YSB and scaling rows: ratios are their medians (default: 3)",
    )
    c.add_argument(
        "--latency-duration",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="length of each paced latency run (default: 5; 0: no latency row)",
    )
    c.add_argument("--latency-batch", default="10ms", metavar="DURATION", help="its batch interval (default: 10ms)")
    c.add_argument("--latency-window", default="1s", metavar="DURATION", help="its tumbling window (default: 1s)")
    c.add_argument(
        "--files-per-batch",
        type=_counts,
        default=[1, 5],
        metavar="LIST",
        help="files per micro-batch of the ndjson and parquet rows, one row each (default: 1,5)",
    )
    c.add_argument("--data-dir", metavar="DIR", help="where the temporary event files go")
    c.add_argument("--table", metavar="FILE", help="write the table as markdown, e.g. docs/bench/compare.md")
    c.add_argument("--plot", metavar="FILE", help="draw the table as a PNG, e.g. docs/bench/compare.png")
    c.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    add_context_options(c)
    c.set_defaults(handler=cmd_compare)


# ---------------------------------------------------------------------- watch


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.bench.watch_listing import run_watch_bench

    results = run_watch_bench(args.files, context_kwargs(args), out, seconds=args.seconds, data_dir=args.data_dir)
    if args.json:
        _write_json(args.json, {"watch": results, "command": _command_line(getattr(args, "argv", None))})
    return EXIT_OK


def add_watch(kinds: argparse._SubParsersAction) -> None:
    from stream_dsl.bench.watch_listing import DEFAULT_COUNTS

    w = kinds.add_parser(
        "watch",
        help="what an idle micro-batch of a watched directory costs as files accumulate",
        description=(
            "For each number of files: write that many one-row ndjson files, read them with a watch query, "
            "then time the micro-batches that find nothing new (median duration_ms); also the files source's "
            "first listing and a listing after one new file. The idle batch should not grow with the files read."
        ),
    )
    w.add_argument(
        "--files",
        type=_counts,
        default=list(DEFAULT_COUNTS),
        metavar="LIST",
        help="numbers of files, e.g. 1k,5k,20k (default: 1k,5k,20k)",
    )
    w.add_argument("--seconds", type=float, default=2.0, help="how long idle batches are timed (default: 2)")
    w.add_argument("--data-dir", metavar="DIR", help="where the temporary files go")
    w.add_argument("--json", metavar="FILE", help="write the measurements as JSON")
    add_context_options(w)
    w.set_defaults(handler=cmd_watch)
