"""A driver process running YSB from a Kafka topic into a Kafka topic or a files sink (tests/test_kafka_recovery.py
kills it).

    python tests/kafka_recovery_script.py BOOTSTRAP TOPIC CHECKPOINT_DIR SINK [--executor E] [--pids FILE]
                                          [--splits N|workers]

SINK is 'kafka:<topic>' or 'files:<dir>'; `--splits` reads the topic in parts
(default 1). The source is bounded: the query
ends once every partition was read to its end. Started again with the same
directories it resumes from the newest good checkpoint. Prints one JSON
line at the end (batches, first batch id, restored checkpoint, recoveries).
Exit codes: 0 done, 1 the query failed, 3 it did not end within the hang guard.
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

HANG_GUARD_S = 120.0
SEED = 7
SELECT = """SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '1' SECOND)"""


def make_context(bootstrap: str, topic: str, sink: str | None, splits: str = "1", **options: Any) -> sd.Context:
    settings: dict[str, Any] = {"workers": 2, "executor": "drizzle", "group_size": 4, "batch_interval": "50ms"}
    settings.update(options)
    ctx = sd.Context(**settings)
    ctx.sql(f"""CREATE STREAM events (
      user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
      event_type STRING, event_time TIMESTAMP, ip_address STRING,
      WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
    ) WITH (connector = 'kafka', bootstrap_servers = '{bootstrap}', topic = '{topic}', group = 'ysb',
            bounded = 'true', batch_size = '250', splits = '{splits}');
    CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
      WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '{SEED}');""")
    if sink is not None:
        kind, _, where = sink.partition(":")
        if kind == "kafka":
            ctx.sql(
                f"CREATE SINK out WITH (connector = 'kafka', bootstrap_servers = '{bootstrap}', topic = '{where}', "
                "key = 'campaign_id')"
            )
        else:
            ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{where}', format = 'parquet')")
    return ctx


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("checkpoint_dir")
    parser.add_argument("sink")
    parser.add_argument("--executor", default="drizzle")
    parser.add_argument("--pids")
    parser.add_argument("--splits", default="1")
    args = parser.parse_args(argv)
    page_cache.skip_flush_if_asked()  # as in the test process that started this one
    ctx = make_context(
        args.bootstrap,
        args.topic,
        args.sink,
        splits=args.splits,
        executor=args.executor,
        checkpoint_dir=args.checkpoint_dir,
    )
    handle = ctx.sql(f"INSERT INTO out {SELECT}")
    if args.pids:
        tmp = f"{args.pids}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(list(handle.worker_pids()), f)
        os.replace(tmp, args.pids)
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
