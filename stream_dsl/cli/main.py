"""The `stream-dsl` command (also `python -m stream_dsl`).

    stream-dsl run FILE.sql        run a script's statements in order (also `run -` and `run -c SQL`)
    stream-dsl explain FILE.sql    explain the script's last query
    stream-dsl gen ysb --events N --out DIR
    stream-dsl repl                the interactive shell (also: `stream-dsl` on a terminal)
    stream-dsl bench ysb           the YSB query on stream-dsl and on plain polars, compared
    stream-dsl bench scheduling    the Drizzle paper's scheduling micro-benchmark
    stream-dsl bench memory        peak memory against the stream's length
    stream-dsl bench plots         measure and draw the PNG plots
    stream-dsl bench recovery      recovery time and latency after a worker kill, per group size
    stream-dsl checkpoints DIR     a query's checkpoints, verified, and which one a restart resumes from
    stream-dsl verify FILE.sql     the last query streamed many ways against one batch (and DuckDB)
    stream-dsl why FILE.sql        run the last query and say where its rows went (why no output)

With no command, `stream-dsl` starts the shell when its input is a
terminal and runs the statements it is given when its input is a pipe or a
file (`stream-dsl < script.sql`), printing their results without a prompt.

Exit codes: 0 success, 1 a query or user error (the message, with the line
and a caret, on stderr; no traceback), 2 bad usage. Subcommands are
registered in `COMMANDS` (name → function adding its parser), so later
commands (repl, bench) slot in without touching the others.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence, TextIO

if TYPE_CHECKING:
    import polars as pl

    from stream_dsl.context import Context

from executor.interrupts import EXIT_SIGINT, EXIT_SIGTERM, Terminated, terminate_gracefully
from stream_dsl.sql import ast
from stream_dsl.errors import DSLError
from stream_dsl.cli.checkpoints import add_checkpoints
from stream_dsl.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_context_options,
    configure_logging,
    context_kwargs,
)
from stream_dsl.cli.status import RESULT_FORMATS, await_with_status, format_result
from stream_dsl.cli.gen import add_gen
from stream_dsl.cli.verify import add_verify
from stream_dsl.cli.why import add_why


def _make_context(args: argparse.Namespace) -> Context:
    import stream_dsl as sd  # the Context sits on top of everything: import it only when needed

    return sd.Context(**context_kwargs(args))


# ------------------------------------------------------------------- scripts


@dataclass(frozen=True, slots=True)
class ScriptStatement:
    """One statement of a script: its syntax tree and its text, padded so positions match the file."""

    node: ast.Statement
    text: str


def _read_script(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise DSLError(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DSLError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def split_script(text: str) -> list[ScriptStatement]:
    """Parse a script and cut it into statements.

    Each statement's text keeps its line and column (it is preceded by blank
    lines and spaces), so an error raised while running it points at the
    right place in the file.
    """
    from stream_dsl.sql.parser import parse

    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column - 1

    result = []
    for node in parse(text):
        span = node.span
        if span is None or span.end_line is None or span.end_column is None:
            raise DSLError("internal error: a statement has no position")
        body = text[offset(span.line, span.column) : offset(span.end_line, span.end_column)]
        padded = "\n" * (span.line - 1) + " " * (span.column - 1) + body
        result.append(ScriptStatement(node, padded))
    return result


def _explain_text(statement: ScriptStatement) -> str:
    """`EXPLAIN <statement>`, keeping the statement's lines where they are in the file."""
    text = statement.text
    if text.startswith("\n"):
        return "EXPLAIN" + text
    return "EXPLAIN " + text.lstrip(" ")


@dataclass(frozen=True, slots=True)
class LastQuery:
    """A script's last query (SELECT or INSERT INTO), bound after the script's definitions ran."""

    ctx: Context
    statement: ScriptStatement
    query: ast.Query  # its syntax tree (an INSERT's SELECT)
    plan: Any  # its logical plan (stream_dsl.ir.plan.Plan)


def last_query(args: argparse.Namespace, purpose: str) -> LastQuery:
    """Run FILE's definitions (CREATE, SET, DROP) in a new Context and bind its last query, running
    nothing else (what `why` and `verify` start from)."""
    from stream_dsl.bind.binder import BoundInsert, BoundQuery, bind

    statements = split_script(_read_script(args.file))
    queries = [i for i, s in enumerate(statements) if isinstance(s.node, (ast.QueryStatement, ast.Insert))]
    if not queries:
        raise DSLError(f"{args.file} has no query to {purpose} (SELECT or INSERT INTO)")
    ctx = _make_context(args)
    for statement in statements[: queries[-1]]:
        if isinstance(statement.node, _DEFINITIONS):
            ctx.sql(statement.text)
    target = statements[queries[-1]]
    node = target.node
    assert isinstance(node, (ast.QueryStatement, ast.Insert))
    bound = bind(node, ctx.catalog, target.text)
    assert isinstance(bound, (BoundQuery, BoundInsert))
    return LastQuery(ctx, target, node.query, bound.plan)


# -------------------------------------------------------------------- output


def format_table(frame: pl.DataFrame, max_rows: int) -> str:
    return format_result(frame, "table", max_rows)


def _summary(sink: str, totals: dict[str, int], seconds: float) -> str:
    """One line for a finished INSERT from its handle's `totals()`."""
    extra = [
        f"{totals[k]} {label}"
        for k, label in (("late_rows", "late rows"), ("dead_letters", "dead letters"))
        if totals.get(k)
    ]
    tail = f" ({', '.join(extra)})" if extra else ""
    return (
        f"INSERT INTO {sink}: {totals['batches']} batches, {totals['rows_in']} rows in, "
        f"{totals['rows_out']} rows out{tail} in {seconds:.2f}s"
    )


def _show(
    result: Any,
    statement: ScriptStatement,
    out: TextIO,
    max_rows: int,
    started: float | None = None,
    fmt: str = "table",
) -> None:
    """Print what a statement produced: a query's rows (as `fmt`), an INSERT's summary, or text."""
    node = statement.node
    started = time.perf_counter() if started is None else started
    if result is None:
        return
    import polars as pl  # loaded by then: the statement ran; `stream-dsl --help` never gets here

    if isinstance(result, pl.DataFrame):
        print(format_result(result, fmt, max_rows), file=out)
    elif isinstance(result, str):
        print(result, file=out)
    elif hasattr(result, "await_termination"):
        sink = node.sink if isinstance(node, ast.Insert) else "sink"
        try:
            await_with_status(result, out, started)  # Ctrl-C or SIGTERM here stops the query, then goes on up
        except (KeyboardInterrupt, Terminated):
            print(_summary(sink, result.totals(), time.perf_counter() - started) + ", stopped", file=out)
            out.flush()
            raise
        print(_summary(sink, result.totals(), time.perf_counter() - started), file=out)
    elif hasattr(result, "collect"):
        print(format_result(result.collect(), fmt, max_rows), file=out)
    else:
        print(result, file=out)
    out.flush()


def _script_text(args: argparse.Namespace) -> str:
    """The statements `run` was given: `-c TEXT`, a file, or `-` for standard input."""
    if args.command_text is not None:
        if args.file is not None:
            raise UsageError("give either FILE.sql or -c SQL, not both")
        return str(args.command_text)
    if args.file is None:
        raise UsageError("run needs FILE.sql, - (standard input) or -c SQL")
    if args.file == "-":
        return str((getattr(args, "stdin", None) or sys.stdin).read())
    return _read_script(args.file)


def cmd_run(args: argparse.Namespace, out: TextIO) -> int:
    statements = split_script(_script_text(args))
    ctx = _make_context(args)
    for statement in statements:
        started = time.perf_counter()
        _show(ctx.sql(statement.text), statement, out, args.max_rows, started, args.format)
    return EXIT_OK


_QUERIES = (ast.QueryStatement, ast.Insert, ast.Explain)
_DEFINITIONS = (ast.CreateSource, ast.CreateSink, ast.CreateView, ast.SetOption, ast.Drop)


def cmd_explain(args: argparse.Namespace, out: TextIO) -> int:
    statements = split_script(_read_script(args.file))
    queries = [i for i, s in enumerate(statements) if isinstance(s.node, _QUERIES)]
    if not queries:
        raise DSLError(f"{args.file} has no query to explain (SELECT, INSERT INTO or EXPLAIN)")
    last = queries[-1]
    ctx = _make_context(args)
    for statement in statements[:last]:
        if isinstance(statement.node, _DEFINITIONS):  # queries before the last one are not run
            ctx.sql(statement.text)
    target = statements[last]
    if isinstance(target.node, ast.QueryStatement):
        result: Any = ctx.sql(target.text).explain()
    elif isinstance(target.node, ast.Explain):
        result = ctx.sql(target.text)
    else:
        result = ctx.sql(_explain_text(target))
    if not isinstance(result, str) and not hasattr(result, "columns") and hasattr(result, "explain"):
        result = result.explain()
    _show(result, target, out, args.max_rows)
    return EXIT_OK


# ----------------------------------------------------------------------- repl


def input_kind(stream: Any) -> str:
    """'terminal' (a person types), 'data' (a pipe, a file, an in-memory text) or 'none' (nothing to read)."""
    try:
        if stream.isatty():
            return "terminal"
    except (AttributeError, OSError, ValueError):
        return "none"
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (AttributeError, OSError, ValueError):
        readable = getattr(stream, "readable", None)
        try:
            return "data" if readable is not None and readable() else "none"
        except (OSError, ValueError):
            return "none"
    return "data" if stat.S_ISFIFO(mode) or stat.S_ISREG(mode) or stat.S_ISSOCK(mode) else "none"


def _console(stream: TextIO) -> Any:
    """A rich Console on `stream`; off a terminal, wide enough that tables are rarely cut."""
    from rich.console import Console

    try:
        terminal = stream.isatty()
    except (AttributeError, OSError, ValueError):
        terminal = False
    if terminal:
        return Console(file=stream)
    columns = os.environ.get("COLUMNS", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else 200
    return Console(file=stream, width=width, color_system=None, force_terminal=False, force_interactive=False)


RC_FILE = "~/.stream_dslrc"  # statements a shell runs first (as psql's ~/.psqlrc); $STREAM_DSL_RC overrides it


def cmd_repl(args: argparse.Namespace, out: TextIO) -> int:
    from stream_dsl.repl import prompt, session as repl

    stdin = getattr(args, "stdin", None) or sys.stdin
    err = getattr(args, "err", None) or sys.stderr
    ctx = _make_context(args)
    options = {"fmt": args.format, "timing": args.timing, "max_rows": args.max_rows}
    interactive = input_kind(stdin) == "terminal" and args.command_text is None and args.file is None
    if interactive:
        session = repl.Session(ctx, _console(out), **options)
    else:
        session = repl.Session(ctx, _console(out), err_console=_console(err), live=False, **options)
    for path in _startup_files(args):
        if not session.execute(f"\\i {path}"):
            return EXIT_OK
    if args.command_text is not None:  # -c: these statements, then exit
        session.execute(args.command_text)
        return EXIT_ERROR if session.errors else EXIT_OK
    if args.file is not None:  # -f: this file, then exit
        session.execute(f"\\i {args.file}")
        return EXIT_ERROR if session.errors else EXIT_OK
    if interactive:
        return prompt.run_repl(session, history=args.history)
    return repl.run_piped(session, iter(stdin.readline, ""), bail=args.bail)


def _startup_files(args: argparse.Namespace) -> list[str]:
    """The startup file (unless --no-rc; skipped when it does not exist), then -i FILE."""
    files = []
    if not args.no_rc:
        rc = os.path.expanduser(os.environ.get("STREAM_DSL_RC", RC_FILE))
        if os.path.isfile(rc):
            files.append(rc)
    if args.init is not None:
        files.append(args.init)
    return files


# ---------------------------------------------------------------------- bench


def _bench(name: str) -> Callable[[argparse._SubParsersAction], None]:
    """Adds `bench NAME`'s parser from stream_dsl.cli.bench (imported when the parser is built)."""

    def add(kinds: argparse._SubParsersAction) -> None:
        from stream_dsl.cli import bench as cli_bench

        getattr(cli_bench, f"add_{name}")(kinds)

    return add


# --------------------------------------------------------------------- parser


def _version() -> str:
    """The package's version, from its one source (`stream_dsl/version.py`)."""
    from stream_dsl.version import __version__

    return __version__


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a script of statements",
        description=(
            "Run the statements of FILE (or of standard input, '-', or of -c SQL) in order. A SELECT prints "
            "its result (it must read bounded sources); an INSERT INTO waits for its query to finish, with a "
            "live status line on a terminal, and prints a summary. Ctrl-C stops a running query cleanly."
        ),
    )
    p.add_argument("file", metavar="FILE.sql", nargs="?", help="the script; - reads it from standard input")
    p.add_argument("-c", dest="command_text", metavar="SQL", help="run these statements instead of a file")
    p.add_argument(
        "--format",
        choices=RESULT_FORMATS,
        default="table",
        help="how a SELECT's rows are printed: table, csv, json (an array) or ndjson (default: table)",
    )
    add_context_options(p)
    p.add_argument(
        "--max-rows", type=int, default=100, metavar="N", help="rows of a result to print (default: 100; -1 prints all)"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start continuous queries from the beginning on purpose: the old state of their "
        "checkpoint_dir is moved to its archive/ first (SET checkpoint_reset = 'true')",
    )
    p.set_defaults(handler=cmd_run)


def _add_explain(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain",
        help="explain a script's last query",
        description=(
            "Define the streams, tables and sinks of FILE, then print the logical, optimized and stage "
            "plans of its last query (SELECT or INSERT INTO) without running it."
        ),
    )
    p.add_argument("file", metavar="FILE.sql")
    add_context_options(p)
    p.set_defaults(handler=cmd_explain, max_rows=100)


def _add_repl(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "repl",
        help="the interactive shell",
        description=(
            "An interactive shell: statements end with ';' (Enter adds a line until then), meta commands "
            "start with a backslash (\\help lists them). A SELECT over bounded sources prints its result; "
            "over a stream it shows the latest results live until Ctrl-C. When the input is not a terminal "
            "(a pipe or a file), the statements are run without a prompt and their results printed; the exit "
            "code is 1 if any of them failed."
        ),
    )
    add_context_options(p)
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="how results are printed (default: table; \\format changes it)",
    )
    p.add_argument("--timing", action="store_true", help="print how long each statement took")
    p.add_argument(
        "--max-rows",
        type=int,
        default=40,
        metavar="N",
        help="rows of a result shown in a table (default: 40; -1 shows all)",
    )
    p.add_argument(
        "--history", metavar="FILE", help="history file (default: $STREAM_DSL_HISTORY or ~/.stream_dsl_history)"
    )
    p.add_argument("--bail", action="store_true", help="without a terminal: stop at the first error")
    p.add_argument("-c", dest="command_text", metavar="SQL", help="run these statements (or a \\command) and exit")
    p.add_argument("-f", dest="file", metavar="FILE", help="run the statements of FILE and exit")
    p.add_argument("-i", dest="init", metavar="FILE", help="run the statements of FILE first, then go on")
    p.add_argument("--no-rc", action="store_true", help=f"do not run the startup file ({RC_FILE}, or $STREAM_DSL_RC)")
    p.set_defaults(handler=cmd_repl)


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks", description="Benchmarks: commands that measure, not tests.")
    kinds = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for add in BENCHMARKS.values():
        add(kinds)


# `stream-dsl bench NAME`: name → function adding its parser (other benchmarks slot in here).
BENCHMARKS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "ysb": _bench("ysb"),
    "scheduling": _bench("scheduling"),
    "memory": _bench("memory"),
    "plots": _bench("plots"),
    "recovery": _bench("recovery"),
}

COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "run": _add_run,
    "explain": _add_explain,
    "gen": add_gen,
    "repl": _add_repl,
    "bench": _add_bench,
    "checkpoints": add_checkpoints,
    "verify": add_verify,
    "why": add_why,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-dsl",
        description="Continuous queries over streams: a SQL-like language on polars, with Drizzle scheduling.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    add_context_options(parser, top=True)  # before the command too: `stream-dsl --workers 4 run f.sql`
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS.values():
        add(sub)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 bad usage).

    `stdin` is where `repl` (and no command) reads statements from.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    stdin = stdin or sys.stdin
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a usage error argparse already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        if input_kind(stdin) == "none":  # nothing to read, nobody typing: say what there is
            parser.print_help(out)
            return EXIT_OK
        args = parser.parse_args(["repl"])
    args.stdin, args.err = stdin, err
    args.argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging(args)
    terminate_gracefully()
    try:
        return args.handler(args, out)
    except UsageError as e:
        print(parser.format_usage().rstrip("\n"), file=err)
        print(f"{parser.prog}: error: {e}", file=err)
        return EXIT_USAGE
    except DSLError as e:
        print(f"error: {e}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_SIGINT
    except Terminated:
        print("terminated", file=err)
        return EXIT_SIGTERM
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug, not a user error: say so, with the traceback for the report
        print(f"internal error: {type(e).__name__}: {e}", file=err)
        traceback.print_exc(file=err)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
