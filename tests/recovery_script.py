"""The fault-tolerance tests' YSB query, and a driver process running it (tests/test_recovery.py kills it).

    python tests/recovery_script.py CHECKPOINT_DIR SINK_DIR [--group-size G] [--executor E] [--pids FILE]

As a script: run `INSERT INTO out <QUERY>` over the bounded generator
stream (read in one part per worker: `splits = 'workers'`, so recovery is
tested with a source stage per worker) on 2 worker processes with CHECKPOINT_DIR, writing to a files sink in
SINK_DIR, until the input ends; then print one JSON line (batches recorded,
the checkpoint it started from, its recoveries). With `--pids FILE` the
worker pids are written to FILE (atomically) once the query started, so a
test that kills this process can watch its workers exit by themselves.
Started again with the same directories it resumes from the newest good
checkpoint. Exit codes: 0 done, 1 the query failed, 3 it did not end within
the hang guard.

As a module: the query's text and `make_context`, so the tests and this
script run exactly the same query.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, ROOT)

import page_cache  # noqa: E402
import stream_dsl as sd  # noqa: E402

RATE = 10_000  # events per second of event time: 1000 events per 100 ms batch
BATCHES = 120  # micro-batches of the bounded stream: kills and restarts still land mid-stream, over several groups
COUNT = RATE * BATCHES // 10
SEED = 7
HANG_GUARD_S = 120.0  # only a hung query waits this long

DDL = f"""CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'generator', kind = 'ysb', rate = '{RATE}', count = '{COUNT}', seed = '{SEED}',
        realtime = 'false', splits = 'workers');
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '{SEED}');"""


def select(window_s: int = 1) -> str:
    """The YSB query (views per campaign per tumbling window); another window size is another query."""
    return f"""SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '{window_s}' SECOND)
EMIT ON WINDOW CLOSE"""


SELECT = select()
INSERT = f"INSERT INTO out {SELECT}"


def make_context(sink_dir: str | os.PathLike | None, *, batches: int = BATCHES, **options: Any) -> sd.Context:
    """A context holding the events (`batches` micro-batches of them), the campaigns and (with `sink_dir`) the
    files sink 'out'.

    `options` are sd.Context's: executor, group_size, checkpoint_dir, heartbeat_timeout, ...
    """
    settings: dict[str, Any] = {"workers": 2, "executor": "drizzle", "group_size": 10, "batch_interval": "100ms"}
    settings.update(options)
    ctx = sd.Context(**settings)
    ctx.sql(DDL.replace(f"count = '{COUNT}'", f"count = '{RATE * batches // 10}'"))
    if sink_dir is not None:
        ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{sink_dir}', format = 'parquet')")
    return ctx


def _write_atomically(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _group_size(text: str) -> int | str:
    return "auto" if text == "auto" else int(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the recovery tests' YSB query as a driver process.")
    parser.add_argument("checkpoint_dir")
    parser.add_argument("sink_dir")
    parser.add_argument("--group-size", type=_group_size, default=10)
    parser.add_argument("--executor", default="drizzle")
    parser.add_argument("--pids", help="write the worker pids (a JSON list) here once the query started")
    args = parser.parse_args(argv)
    page_cache.skip_flush_if_asked()  # as in the test process that started this one
    ctx = make_context(
        args.sink_dir, executor=args.executor, group_size=args.group_size, checkpoint_dir=args.checkpoint_dir
    )
    handle = ctx.sql(INSERT)
    if args.pids:
        _write_atomically(args.pids, list(handle.worker_pids()))
    try:
        if not handle.await_termination(HANG_GUARD_S):
            print(f"the query did not end within {HANG_GUARD_S:.0f}s", file=sys.stderr)
            return 3
    except sd.DSLError as err:
        print(f"the query failed: {err}", file=sys.stderr)
        return 1
    finally:
        handle.stop(HANG_GUARD_S)
    progress = handle.progress()
    summary = {
        "batches": len(progress),
        "first_batch": progress[0]["batch_id"] if progress else None,
        "restored_checkpoint": handle.restored_checkpoint,
        "recoveries": handle.recoveries,
    }
    print(json.dumps(summary, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
