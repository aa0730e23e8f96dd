"""`stream-dsl bench compare`: stream-dsl, plain polars and DuckDB side by side; the README's performance table.

    stream-dsl bench compare [--events N] [--rate R] [--repeat K] [--table FILE] [--plot FILE] [--json FILE]

The measuring is `stream_dsl.bench.compare`; this module parses the options,
prints the table and writes it (markdown), the plot (PNG) and the numbers (JSON).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from stream_dsl.cli.bench import _command_line, _count, _duration_ms, _seconds, _write_json, parse_count
from stream_dsl.cli.common import EXIT_ERROR, EXIT_OK, add_context_options, context_kwargs

__all__ = ["add_compare", "cmd_compare"]


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
            "and bsp; 2 workers over 1 with one polars thread per worker and with polars' default; p99 event "
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
    c.add_argument("--repeat", type=_count, default=3, metavar="K", help="rounds of the scaling runs (default: 3)")
    c.add_argument(
        "--latency-duration",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="length of each paced latency run (default: 5; 0: no latency row)",
    )
    c.add_argument("--latency-batch", default="10ms", metavar="DURATION", help="its batch interval (default: 10ms)")
    c.add_argument("--latency-window", default="1s", metavar="DURATION", help="its tumbling window (default: 1s)")
    c.add_argument("--data-dir", metavar="DIR", help="where the temporary event files go")
    c.add_argument("--table", metavar="FILE", help="write the table as markdown, e.g. docs/bench/compare.md")
    c.add_argument("--plot", metavar="FILE", help="draw the table as a PNG, e.g. docs/bench/compare.png")
    c.add_argument("--json", metavar="FILE", help="write every measurement as JSON")
    add_context_options(c)
    c.set_defaults(handler=cmd_compare)
