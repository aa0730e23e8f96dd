"""`stream-dsl checkpoints`: list a query's checkpoints, verified, and say what a restart does with them."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

from stream_dsl.cli.common import EXIT_ERROR, EXIT_OK
from stream_dsl.errors import DSLError


def cmd_checkpoints(args: argparse.Namespace, out: TextIO) -> int:
    """List a checkpoint_dir's checkpoints, newest first, each verified, and what a restart does with them
    (the restart's own decision: `checkpoint_survey.Survey.decide`); exit 1 unless a restart resumes."""
    import datetime as dt
    import json

    from executor.recovery.survey import lock_holder, survey
    from executor.state.clocks import WM_INF, watermark_datetime

    def watermark(ms: int | None) -> str | None:
        return None if ms is None else "end of input" if ms >= WM_INF else str(watermark_datetime(ms))

    if not os.path.isdir(args.dir):
        raise DSLError(f"no checkpoint directory '{args.dir}'")
    found = survey(args.dir, every=True)
    holder, decision = lock_holder(args.dir), found.decide()
    rows = []
    for info in found.infos:
        c = info.checkpoint
        rows.append(
            {
                "id": info.id,
                "state": info.state,
                "reason": info.reason,
                "bytes": info.bytes,
                "next_batch": None if c is None else c.next_batch,
                "watermark": None if c is None else watermark(c.watermark),
                "created": None if c is None else dt.datetime.fromtimestamp(c.created_at).isoformat(" ", "seconds"),
            }
        )
    resume = decision.checkpoint if decision.action == "resume" else None
    restart = {
        "action": decision.action,
        "checkpoint": None if resume is None else resume.id,
        "next_batch": None if resume is None else resume.next_batch,
        "message": decision.message,
    }
    if args.json:
        print(
            json.dumps({"dir": args.dir, "locked_by": holder, "checkpoints": rows, "restart": restart}, indent=1),
            file=out,
        )
    else:
        print(f"{args.dir}: " + (f"in use by a running query (pid {holder})" if holder else "not in use"), file=out)
        if not rows:
            print("no checkpoints", file=out)
        for r in rows:
            detail = (
                f"next batch {r['next_batch']}, watermark {r['watermark'] or '-'}, {r['created']}"
                if r["state"] == "ok"
                else r["reason"]
            )
            print(f"  ckpt-{r['id']:08d}  {r['state']:<12}  {r['bytes']:>10,} bytes  {detail}", file=out)
        if resume is not None:
            print(f"a restart resumes from ckpt-{resume.id:08d} (batch {resume.next_batch})", file=out)
        elif decision.action == "fresh":
            print("a restart starts from the beginning (no checkpoint was ever committed here)", file=out)
        else:
            print("a restart refuses to start:\n" + decision.message, file=out)
    return EXIT_OK if resume is not None else EXIT_ERROR


def add_checkpoints(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "checkpoints",
        help="list and verify a query's checkpoints",
        description=(
            "List the checkpoints under a query's checkpoint_dir, newest first, each verified against its "
            "checksums (ok; uncommitted: begun but never committed; damaged: why; incompatible: another format), "
            "whether a running query holds the directory, and what a restart does: resume from a checkpoint, "
            "start from the beginning, or refuse (and why). Read-only. Exit code 1 unless a restart resumes."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="the query's checkpoint_dir")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(handler=cmd_checkpoints)
