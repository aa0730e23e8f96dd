"""`stream-dsl gen`: write generated data sets (YSB events and campaigns) to files or a Kafka topic."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import polars as pl

from stream_dsl.cli.status import progress_bar
from stream_dsl.cli.common import EXIT_OK, UsageError, non_negative_int, positive_int
from stream_dsl.errors import DSLError


def _clear_parts(directory: str) -> None:
    """Remove event files of an earlier run, so a smaller --files does not leave stale ones."""
    for name in os.listdir(directory):
        if name.startswith("part-") and name.endswith((".ndjson", ".csv", ".parquet")):
            os.remove(os.path.join(directory, name))


def _write_events(
    path: str, first: int, stop: int, fmt: str, *, seed: int, rate: Any, start_ms: int, chunk: int = 1_000_000
) -> None:
    """Events [first, stop) into one file, written in chunks (text formats) and renamed into place."""
    from stream_dsl.connectors import files, generator

    def events(lo: int, hi: int) -> pl.DataFrame:
        return generator.ysb_frame(lo, hi, seed=seed, rate=rate, start_ms=start_ms)

    if fmt == "parquet":
        files.write_frame(events(first, stop), path, "parquet")
        return
    import tempfile

    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(dir=directory or ".", prefix=f".{name}.", suffix=".tmp")  # exclusive, unpredictable
    try:
        with os.fdopen(fd, "wb") as f:
            for lo in range(first, max(stop, first + 1), chunk):
                frame = events(lo, min(lo + chunk, stop))
                if fmt == "ndjson":
                    f.write(generator.events_as_json(frame))
                else:
                    text = files.for_text_format(frame, "csv").write_csv(include_header=lo == first)
                    f.write(text.encode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def cmd_gen_ysb(args: argparse.Namespace, out: TextIO) -> int:
    from fractions import Fraction

    from stream_dsl.connectors import files, generator

    try:
        start_ms = generator.parse_start_ms(args.start)
    except DSLError as e:
        raise UsageError(f"--start: {e}") from None
    rate = Fraction(args.rate).limit_denominator(1_000_000)
    columns = ", ".join(f"{f.name} {f.dtype.value}" for f in generator.YSB_SCHEMA)
    if args.to is not None:
        from stream_dsl.cli import gen_kafka

        target = gen_kafka.parse_target(args.to)
        partitions = gen_kafka.produce_ysb(
            target, count=args.events, seed=args.seed, rate=rate, start_ms=start_ms, partitions=args.partitions, out=out
        )
        gen_kafka.print_query(target, args.events, partitions, args.seed, columns, out)
        return EXIT_OK
    if args.out is None:
        raise UsageError("gen ysb needs --out DIR (files) or --to kafka://HOST:PORT/TOPIC")
    count, parts = args.events, min(args.files, max(args.events, 1))
    events_dir = os.path.join(args.out, "events")
    ext = files.SINK_EXTENSION[args.format]
    try:
        os.makedirs(events_dir, exist_ok=True)
        _clear_parts(events_dir)
        with progress_bar(parts, f"writing {count:,} events", getattr(args, "err", None)) as advance:
            for k in range(parts):
                first, stop = count * k // parts, count * (k + 1) // parts
                _write_events(
                    os.path.join(events_dir, f"part-{k:05d}.{ext}"),
                    first,
                    stop,
                    args.format,
                    seed=args.seed,
                    rate=rate,
                    start_ms=start_ms,
                )
                advance(1)
        campaigns = os.path.join(args.out, "campaigns.csv")
        files.write_frame(generator.ysb_campaigns(args.seed), campaigns, "csv")
    except OSError as e:
        raise DSLError(f"cannot write to {args.out}: {e.strerror or e}") from None
    print(
        f"wrote {count} events in {parts} {args.format} file(s) to {events_dir}/ "
        f"and 1000 ads of 100 campaigns to {campaigns}",
        file=out,
    )
    print("\n-- to query them:", file=out)
    print(
        f"CREATE STREAM events ({columns},\n  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND)\n"
        f"  WITH (connector = 'files', path = '{events_dir}', format = '{args.format}');",
        file=out,
    )
    print(
        f"CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)\n"
        f"  WITH (connector = 'files', path = '{campaigns}', format = 'csv');",
        file=out,
    )
    return EXIT_OK


def add_gen(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gen", help="generate data sets", description="Generate data sets to files.")
    kinds = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    y = kinds.add_parser(
        "ysb",
        help="Yahoo Streaming Benchmark events and campaigns",
        description=(
            "Write N YSB events into DIR/events/ (split into K files, replacing earlier part files) and the "
            "ad → campaign mapping into DIR/campaigns.csv. The events are the ones the generator "
            "connector emits for the same seed, rate and start."
        ),
    )
    y.add_argument("--events", type=non_negative_int, required=True, metavar="N", help="number of events")
    y.add_argument("--out", metavar="DIR", help="output directory")
    y.add_argument(
        "--to",
        metavar="kafka://HOST:PORT/TOPIC",
        help="write the events as JSON messages into this Kafka topic instead (created if missing)",
    )
    y.add_argument(
        "--partitions",
        type=positive_int,
        default=3,
        metavar="P",
        help="partitions of a topic --to creates (default: 3)",
    )
    y.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    y.add_argument(
        "--format",
        choices=("ndjson", "csv", "parquet"),
        default="ndjson",
        help="file format of the events (default: ndjson)",
    )
    y.add_argument("--files", type=positive_int, default=1, metavar="K", help="number of event files (default: 1)")
    y.add_argument(
        "--rate", type=_rate, default=1_000_000, metavar="R", help="events per second of event time (default: 1000000)"
    )
    y.add_argument(
        "--start",
        default="2026-01-01T00:00:00",
        metavar="TIMESTAMP",
        help="event time of the first event (default: 2026-01-01T00:00:00)",
    )
    y.set_defaults(handler=cmd_gen_ysb)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value
