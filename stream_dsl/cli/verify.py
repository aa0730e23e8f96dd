"""`stream-dsl verify FILE.sql`: the script's last query, streamed many ways, against one batch.

The script's definitions (CREATE, SET) run first; the last query (SELECT or
INSERT INTO, whose sink is never written) is verified by `stream_dsl.verify`.
Exit code 0 when every run equals the single-batch run (and DuckDB, where it
runs the query), 1 at the first difference, printed with its rows and setting.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from stream_dsl.cli.common import EXIT_ERROR, EXIT_OK, add_context_options
from stream_dsl.sql import ast


def _ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    from stream_dsl.config import EXECUTORS

    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in EXECUTORS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"executors are {', '.join(EXECUTORS)}; got {text!r}")
    return names


def _query_text(text: str, query: ast.Query) -> str | None:
    """The query's own text (an INSERT's SELECT), for DuckDB."""
    span = query.span
    if span is None or span.end_line is None or span.end_column is None:
        return None
    lines = text.split("\n")
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1 : span.end_column - 1]
    body = [lines[span.line - 1][span.column - 1 :]] + lines[span.line : span.end_line - 1]
    return "\n".join(body + [lines[span.end_line - 1][: span.end_column - 1]])


def cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.cli.main import last_query
    from stream_dsl.verify import Setting, verify

    query = last_query(args, "verify")
    ctx = query.ctx

    def progress(setting: Setting) -> None:
        if args.verbose:
            out.write(f"  running {setting.describe()}\n")

    outcome = verify(
        query.plan,
        catalog=ctx.catalog,
        config=ctx.config,
        sql=_query_text(query.statement.text, query.query),
        executors=args.executors,
        workers=args.worker_counts,
        seeds=args.seeds,
        on_run=progress,
    )
    out.write(f"{outcome}\n")
    return EXIT_OK if outcome.ok else EXIT_ERROR


def add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check that a script's last query streams to the same result as one batch",
        description=(
            "Define the streams, tables and sinks of FILE, read the streams its last query reads (they must "
            "be bounded), then run the query over the same rows with random micro-batch splits, on each "
            "executor, with 1 and 2 workers, the optimizer on and off, and compare each result with a "
            "single-batch run (and with DuckDB, when installed and the query is plain SQL). Prints the first "
            "difference with its rows and setting; exit code 1 then. An INSERT's sink is not written."
        ),
    )
    p.add_argument("file", metavar="FILE.sql")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="random micro-batch splits (default: 3)")
    p.add_argument(
        "--executors", type=_names, default=["inline", "drizzle", "bsp"], metavar="LIST", help="default: all three"
    )
    p.add_argument(
        "--worker-counts", type=_ints, default=[1, 2], metavar="LIST", help="worker counts to run with (default: 1,2)"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="print each setting as it runs")
    add_context_options(p)
    p.set_defaults(handler=cmd_verify, max_rows=100)
