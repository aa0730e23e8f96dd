"""The optimizer benchmark: the YSB query over files, with the optimizer on and off, in one run.

`run_optimizer_bench()` writes `events` Yahoo Streaming Benchmark events
as ndjson files (event_time as epoch milliseconds, as the original
benchmark does; `files_count` files read one per micro-batch) and the
campaigns as a csv file into a temporary directory, then runs the YSB query

    SELECT campaign_id, window_start, window_end, COUNT(*) AS views
    FROM events JOIN campaigns USING (ad_id) WHERE event_type = 'view'
    GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)

over them to the end with the optimizer off, then on (each `repeat`
times, the best time counts), checks that both results are equal, and
prints the times and the ratio. Writing the files is not timed; reading
and decoding them is (that is where projection pushdown saves).

With the optimizer on, the scan decodes 3 of the 7 columns with the filter
applied while reading, each map task counts views per (ad, window) before
the broadcast join, and the shuffle carries those counts instead of one
row per view. Run it as `python -m optimizer.bench [events] [executor]
[workers]`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from fractions import Fraction
from typing import Any

import polars as pl

import stream_dsl as sd
from stream_dsl.config import RunConfig
from stream_dsl.connectors import generator

QUERY = """SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)"""

RESULT_ORDER = ["campaign_id", "window_start"]


def write_ysb_files(directory: str, events: int, files_count: int, *, rate: int = 1_000_000,
                    seed: int = 1) -> tuple[str, str]:
    """YSB events as ndjson files under `directory`/events and the campaigns as `directory`/campaigns.csv."""
    events_dir = os.path.join(directory, "events")
    os.makedirs(events_dir, exist_ok=True)
    start_ms = generator.parse_start_ms(generator.DEFAULT_START)
    per_file = -(-events // files_count)
    exact_rate = Fraction(rate)
    for i, first in enumerate(range(0, events, per_file)):
        frame = generator.ysb_frame(first, min(first + per_file, events), seed=seed, rate=exact_rate,
                                    start_ms=start_ms)
        with open(os.path.join(events_dir, f"part-{i:05d}.ndjson"), "wb") as f:
            f.write(generator.events_as_json(frame))
    campaigns = os.path.join(directory, "campaigns.csv")
    generator.ysb_campaigns(seed).write_csv(campaigns)
    return events_dir, campaigns


def ysb_ddl(events_dir: str, campaigns: str) -> str:
    return f"""
CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'files', path = '{events_dir}', format = 'ndjson', max_files_per_batch = '1');
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'files', path = '{campaigns}', format = 'csv');
"""


def _collect(ctx: sd.Context) -> tuple[pl.DataFrame, str]:
    """Run the query to the end; returns the result and the executor that really ran it."""
    stream = ctx.sql(QUERY)
    config = ctx.config
    if config.executor != "inline":
        try:
            from executor import multiproc_api
        except ImportError:
            pass
        else:
            return multiproc_api.collect(stream.plan, config, ctx.catalog), config.executor
    return stream.collect(), "inline"


def _time_run(ddl: str, optimize: bool, executor: str, workers: int, repeat: int) -> tuple[float, pl.DataFrame, str]:
    best, result, ran = float("inf"), pl.DataFrame(), executor
    for _ in range(repeat):
        ctx = sd.Context(executor=executor, workers=workers, optimize=optimize)
        ctx.sql(ddl)
        started = time.perf_counter()
        result, ran = _collect(ctx)
        best = min(best, time.perf_counter() - started)
    return best, result.sort(RESULT_ORDER), ran


def run_optimizer_bench(events: int = 2_000_000, executor: str = "inline", workers: int = 2, *,
                        files_count: int = 20, repeat: int = 1, directory: str | None = None,
                        out: Any = None) -> dict[str, Any]:
    """Time the YSB query over `events` events in files with the optimizer off and on (see the module doc).

    Returns events, executor (the one that ran), workers, seconds_off,
    seconds_on, ratio (off / on), result_rows and equal (both results the
    same); prints a summary to `out` (stdout by default).
    """
    RunConfig(executor=executor, workers=workers)  # validates both, before writing any file
    out = out or sys.stdout
    with tempfile.TemporaryDirectory(prefix="sd-optbench-", dir=directory) as tmp:
        started = time.perf_counter()
        ddl = ysb_ddl(*write_ysb_files(tmp, events, files_count))
        written = time.perf_counter() - started
        off, off_result, ran = _time_run(ddl, False, executor, workers, repeat)
        on, on_result, _ = _time_run(ddl, True, executor, workers, repeat)
        plan_text = sd.Context(executor=executor, workers=workers).sql(ddl + QUERY).explain()
    equal = off_result.equals(on_result)
    report = {
        "events": events, "executor": ran, "workers": workers, "files": files_count,
        "seconds_off": off, "seconds_on": on, "ratio": off / on if on else float("inf"),
        "result_rows": on_result.height, "equal": equal, "write_seconds": written,
    }
    print(f"YSB over {events:,} events in {files_count} ndjson files, executor={ran} workers={workers} "
          f"(files written in {written:.1f}s, not timed)", file=out)
    print(f"  optimizer off: {off:.2f}s  ({events / off:,.0f} events/s)", file=out)
    print(f"  optimizer on:  {on:.2f}s  ({events / on:,.0f} events/s)", file=out)
    print(f"  ratio off/on:  {report['ratio']:.2f}x   results {'equal' if equal else 'DIFFER'} "
          f"({on_result.height} rows)", file=out)
    if not equal:
        print("  the optimizer changed the result: this is a bug", file=out)
    report["plan"] = plan_text
    return report


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    events = int(args[0].replace("_", "")) if args else 2_000_000
    executor = args[1] if len(args) > 1 else "inline"
    workers = int(args[2]) if len(args) > 2 else 2
    report = run_optimizer_bench(events, executor, workers)
    return 0 if report["equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
