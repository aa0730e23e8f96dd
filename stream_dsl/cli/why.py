"""`stream-dsl why FILE.sql`: run the script's last query and say where its rows went.

The definitions (CREATE, SET) run first; the last query (SELECT, or INSERT
INTO's SELECT: its sink is not written) runs with every batch counted per
operator (`SET diagnose_every = 1`) to the end of bounded input, or for
`--seconds` over endless input, and then `QueryHandle.why()` is printed:
rows per operator, late rows with a suggested watermark delay, dead letters,
and when the next output is due.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from stream_dsl.cli.common import EXIT_OK, add_context_options


def cmd_why(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.cli.main import last_query
    from stream_dsl.frame.stream import wrap

    query = last_query(args, "explain")
    ctx = query.ctx
    ctx.config = ctx.config.with_options(diagnose_every=1)
    handle = wrap(ctx, query.plan).start(lambda batch, frame: None, name="why")
    try:
        handle.await_termination(args.seconds)
    finally:
        handle.stop()
    out.write(handle.why() + "\n")
    return EXIT_OK


def add_why(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "why",
        help="run a script's last query and say why it prints nothing (or little)",
        description=(
            "Define the streams, tables and sinks of FILE, run its last query (an INSERT's sink is not "
            "written) with every batch counted per operator, then print where the rows went: filtered out, "
            "unmatched in a join, held in open windows, late (with the watermark delay that would have kept "
            "them), dead letters; and when the next output is due."
        ),
    )
    p.add_argument("file", metavar="FILE.sql")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds (for endless input; default: run to the end of bounded input)",
    )
    add_context_options(p)
    p.set_defaults(handler=cmd_why, max_rows=100)
