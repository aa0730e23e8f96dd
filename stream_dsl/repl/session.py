"""The interactive shell: `stream-dsl repl`.

Two layers. A `Session` runs one input at a time (statements ending at
`;`, or one meta command such as `\\describe events`) against a Context
and writes what it produced to a rich Console; it needs no terminal, so
tests drive it directly. `prompt.run_repl` is the prompt loop around it
(prompt_toolkit: multi-line editing, highlighting, completion, history);
`run_piped` feeds it the inputs of a script or a pipe without a prompt.

Errors are printed as their one message with the line and caret, never a
traceback, and the session goes on. Ctrl-C cancels the running query (or
the input being typed), Ctrl-D or `\\q` leaves.

>>> from rich.console import Console
>>> session = Session(console=Console(width=60, color_system=None))
>>> session.execute("SELEC 1;")  # doctest: +ELLIPSIS
error: line 1, col 1: ...
True
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Iterable

import polars as pl
from rich.console import Console
from rich.text import Text

from stream_dsl.sql import ast
from stream_dsl.sql.unparse import unparse
from stream_dsl.errors import DSLError, did_you_mean
from stream_dsl.ir.expr import format_duration_ms
from stream_dsl.repl.input import is_blank, is_meta, is_quit, split_inputs
from stream_dsl.repl.lexer import META_COMMANDS
from stream_dsl.repl.live import LatestResults, follow, is_bounded, output_keys
from stream_dsl.bind.binder import RULE_SETTING_PREFIX, SETTINGS
from stream_dsl.repl.render import FORMATS, frame_csv, frame_json, frame_view
from stream_dsl.secrets import mask_options

__all__ = ["Session", "run_piped"]

MAX_INCLUDE_DEPTH = 16

_ALIASES = {"\\?": "\\help", "\\h": "\\help", "\\d": "\\describe", "\\quit": "\\q", "\\exit": "\\q", "\\include": "\\i"}


class Session:
    """One REPL session: a Context, output settings, and `execute(text)` for each input.

    Parameters
    ----------
    ctx : Context, optional
        Where statements run (a new default Context when None).
    console : rich Console
        Where results go.
    err_console : rich Console, optional
        Where errors and notices go (default: `console`).
    fmt : 'table', 'csv' or 'json'
        How results are printed (`\\format` changes it).
    live : bool, optional
        Redraw a continuous query's latest results in place (default: when
        `console` is a terminal); otherwise print each batch as it comes.
    background : bool, optional
        Run a continuous INSERT INTO as a named query in the background and
        give the prompt back, as ksqlDB's persistent queries (default: when
        live); otherwise wait for it, showing its status.
    """

    def __init__(
        self,
        ctx: Any = None,
        console: Console | None = None,
        *,
        err_console: Console | None = None,
        fmt: str = "table",
        timing: bool = False,
        max_rows: int = 40,
        live: bool | None = None,
        refresh_seconds: float = 0.25,
        background: bool | None = None,
    ) -> None:
        if ctx is None:
            from stream_dsl.context import Context

            ctx = Context()
        self.ctx = ctx
        self.console = console or Console()
        self.err_console = err_console or self.console
        self.fmt = _check_format(fmt)
        self.timing = timing
        self.max_rows = max_rows
        self.live = self.console.is_terminal if live is None else live
        self.refresh_seconds = refresh_seconds
        self.background = self.live if background is None else background  # INSERT INTO runs as a named query
        self.pager = True  # results taller than the terminal go through $PAGER (`\\pager off`)
        self.errors = 0
        self.handle: Any = None  # the continuous query running now, if any
        self.input_guard: Callable[[], ContextManager[Any]] | None = None  # held while a query is followed
        self._cancel = threading.Event()
        self._depth = 0

    # ------------------------------------------------------------ entry points

    def execute(self, text: str, *, first_line: int = 1) -> bool:
        """Run one input: statements, or one meta command. Returns False when the user asked to quit.

        `first_line` is where the input starts in its file, so error
        positions match the file.
        """
        if is_blank(text):
            return True
        if is_quit(text):
            return False
        started = time.perf_counter()
        keep_going = True
        try:
            if is_meta(text):
                keep_going = self._meta(text.strip())
            else:
                self._statements(text, first_line)
        except DSLError as err:
            self._error(str(err))
        except KeyboardInterrupt:
            self._notice("cancelled")
        except RecursionError:
            self._error("statement nested too deeply")
        except Exception as err:  # a bug, not a user mistake: one line, and the session goes on
            self._error(f"internal error: {type(err).__name__}: {err}")
        finally:
            if self.handle is not None:  # interrupted before the query was followed: do not leave it running
                self.handle.stop()
                self.handle = None
            self._cancel.clear()
        if self.timing and keep_going and not is_meta(text):
            self._notice(f"Time: {(time.perf_counter() - started) * 1000:,.3f} ms")
        return keep_going

    def stop_background(self) -> None:
        """Leaving the shell: stop the queries still running in the background (each after its batch)."""
        for handle in list(getattr(self.ctx, "queries", [])):
            self._notice(f"stopping query {handle.name}")
            handle.stop()

    def cancel(self) -> None:
        """Stop the continuous query being shown (callable from another thread, like Ctrl-C)."""
        self._cancel.set()

    # ------------------------------------------------------------ statements

    def _statements(self, text: str, first_line: int) -> None:
        from stream_dsl.cli.main import split_script

        for statement in split_script("\n" * (first_line - 1) + text):
            self._statement(statement.node, statement.text)

    def _statement(self, node: ast.Statement, text: str) -> None:
        result = self.ctx.sql(text)
        if result is None:
            self._notice(_done(node))
        elif isinstance(result, pl.DataFrame):
            self.show_frame(result)
        elif isinstance(result, str):
            self._text(result)
        elif hasattr(result, "collect") and hasattr(result, "plan"):
            self._query(result)
        elif hasattr(result, "await_termination") and self.background:
            sink = node.sink if isinstance(node, ast.Insert) else "sink"
            self._notice(
                f"INSERT INTO {sink}: running in the background as query {result.name} "
                f"(SHOW QUERIES lists it, DESCRIBE QUERY {result.name} shows its progress, STOP QUERY {result.name} "
                "stops it)"
            )
        elif hasattr(result, "await_termination"):
            self.handle = result
            sink = node.sink if isinstance(node, ast.Insert) else "sink"
            self._notice(f"INSERT INTO {sink}: running (Ctrl-C stops)")
            self._follow(result, None)
        else:
            self._text(str(result))

    def _query(self, stream: Any) -> None:
        """A bounded query prints its final table; a continuous one is followed live until stopped."""
        if is_bounded(stream.plan):
            self.show_frame(stream.collect())
            return
        mode, keys = output_keys(stream.plan, stream.columns)
        results = LatestResults(mode, keys, keep=max(self.max_rows, 100), stream=not self.live)
        self.handle = stream.start(sink=results)  # an object: its `writes` says what it takes
        self._follow(self.handle, results)

    def _follow(self, handle: Any, results: LatestResults | None) -> None:
        with self.input_guard() if self.input_guard is not None else nullcontext():
            follow(
                handle,
                self.console,
                results=results,
                live=self.live,
                fmt=self.fmt,
                max_rows=self.max_rows,
                refresh_seconds=self.refresh_seconds,
                cancel=self._cancel,
                status_console=self.err_console,
            )

    # ------------------------------------------------------------ output

    def show_frame(self, frame: pl.DataFrame, *, types: bool = True) -> None:
        """Print a result in the session's format (`types`: show each column's type under its name)."""
        if self.fmt == "csv":
            self.console.out(frame_csv(frame), highlight=False, end="")
        elif self.fmt == "json":
            self.console.out(frame_json(frame), highlight=False, end="")
        else:
            view = frame_view(frame, max_rows=self.max_rows, width=self.console.width, types=types)
            shown = frame.height if self.max_rows < 0 else min(frame.height, self.max_rows)
            if self.pager and self.console.is_terminal and shown + 6 > self.console.height:
                with self.console.pager(styles=True):  # taller than the terminal: $PAGER (less) scrolls it
                    self.console.print(view)
            else:
                self.console.print(view)

    def _text(self, text: str) -> None:
        self.console.print(Text(text), soft_wrap=True)

    def _notice(self, text: str) -> None:
        self.err_console.print(Text(text, style="dim"), soft_wrap=True)

    def _error(self, message: str) -> None:
        self.errors += 1
        self.err_console.print(Text(f"error: {message}", style="red"), soft_wrap=True)

    # ------------------------------------------------------------ meta commands

    def _meta(self, text: str) -> bool:
        command, _, argument = text.partition(" ")
        name = _ALIASES.get(command.lower(), command.lower())
        handler: Callable[[str], bool | None] | None = getattr(self, "_meta_" + name[1:], None)
        if name not in META_COMMANDS or handler is None:
            known = list(META_COMMANDS) + list(_ALIASES)
            raise DSLError(f"unknown command '{command}'{did_you_mean(command, known)}; \\help lists the commands")
        return handler(argument.strip()) is not False

    def _meta_help(self, argument: str) -> None:
        lines = ["Statements end with ';' (Enter adds a line until then). Meta commands:"]
        for name, (hint, doc) in META_COMMANDS.items():
            lines.append(f"  {(name + ' ' + hint).strip():<26} {doc}")
        lines += [
            "Statements: CREATE STREAM/TABLE/SINK/VIEW, SELECT, INSERT INTO (in the background), EXPLAIN, "
            "SHOW [QUERIES], DESCRIBE [QUERY], STOP QUERY, SET, DROP.",
            "A SELECT over bounded sources prints its result; over a stream it shows the latest results "
            "live until Ctrl-C.",
            "Tab completes keywords, functions and names; Ctrl-C cancels, Ctrl-D quits.",
        ]
        self._text("\n".join(lines))

    def _meta_q(self, argument: str) -> bool:
        return False

    def _meta_streams(self, argument: str) -> None:
        self.show_frame(self._relations("stream"), types=False)

    def _meta_tables(self, argument: str) -> None:
        self.show_frame(self._relations("table"), types=False)

    def _meta_sinks(self, argument: str) -> None:
        sinks = self.ctx.catalog.sinks
        options = [
            ", ".join(f"{k} = '{v}'" for k, v in mask_options(s.options) if k != "connector") for s in sinks.values()
        ]
        self.show_frame(
            pl.DataFrame(
                {"name": list(sinks), "connector": [s.option("connector") for s in sinks.values()], "options": options},
                schema={"name": pl.String, "connector": pl.String, "options": pl.String},
            ),
            types=False,
        )

    def _relations(self, kind: str) -> pl.DataFrame:
        from stream_dsl.ir.plan import is_streaming

        catalog = self.ctx.catalog
        rows = [
            (
                n,
                s.kind,
                s.option("connector") or "",
                str(s.schema),
                f"{s.watermark.column} - {format_duration_ms(s.watermark.delay_ms)}" if s.watermark else "",
            )
            for n, s in catalog.sources.items()
            if s.kind == kind
        ]
        rows += [
            (n, "view", "", str(p.schema), "")
            for n, p in catalog.views.items()
            if is_streaming(p) == (kind == "stream")
        ]
        names = ("name", "kind", "connector", "columns", "watermark")
        return pl.DataFrame(rows, schema={n: pl.String for n in names}, orient="row")

    def _meta_describe(self, argument: str) -> None:
        if not argument:
            raise DSLError("\\describe needs a name: \\describe NAME")
        name = argument.rstrip(";").strip().strip('"`')
        catalog = self.ctx.catalog
        if name in catalog.sinks or name.lower() in {s.lower() for s in catalog.sinks}:
            sink = catalog.sink(name)
            options = mask_options(sink.options)
            self.show_frame(
                pl.DataFrame(
                    {"option": [k for k, _ in options], "value": [v for _, v in options]},
                    schema={"option": pl.String, "value": pl.String},
                ),
                types=False,
            )
            return
        schema = catalog.resolve(name).schema
        self.show_frame(
            pl.DataFrame(
                {"column": list(schema.names), "type": [f.dtype.value for f in schema]},
                schema={"column": pl.String, "type": pl.String},
            ),
            types=False,
        )

    def _meta_explain(self, argument: str) -> None:
        from stream_dsl.cli.main import _explain_text, split_script

        if not argument:
            raise DSLError("\\explain needs a query: \\explain SELECT ...")
        statements = split_script(argument)
        if len(statements) != 1:
            raise DSLError(f"\\explain takes one query, got {len(statements)} statements")
        statement = statements[0]
        node = statement.node
        if isinstance(node, ast.QueryStatement):
            result: Any = self.ctx.sql(statement.text).explain()
        elif isinstance(node, ast.Explain):
            result = self.ctx.sql(statement.text)
        elif isinstance(node, ast.Insert):
            result = self.ctx.sql(_explain_text(statement))
        else:
            raise DSLError("\\explain takes a query: SELECT ... or INSERT INTO ... SELECT ...")
        self._text(str(result))

    def _meta_set(self, argument: str) -> None:
        parts = argument.split(None, 1)
        config = self.ctx.config
        values = setting_values(config)
        if not parts:
            self.show_frame(
                pl.DataFrame({"setting": list(values), "value": [str(v) for v in values.values()]}), types=False
            )
            return
        key = parts[0].lower()
        if key.startswith(RULE_SETTING_PREFIX):  # a rule switch: the Context checks the name
            values[key] = str(key[len(RULE_SETTING_PREFIX) :] not in config.disabled_rules).lower()
        elif key not in SETTINGS:
            raise DSLError(
                f"unknown setting '{parts[0]}'{did_you_mean(parts[0], SETTINGS)}; settings: {', '.join(SETTINGS)}"
            )
        if len(parts) == 1:
            self._text(f"{key} = {values[key]}")
            return
        value = parts[1].strip().rstrip(";").strip().strip("'\"")
        self.ctx.sql(unparse(ast.SetOption(key, value)))
        self._notice(f"{key} = {value}")

    def _meta_why(self, argument: str) -> None:
        self._text(self.ctx.query(argument or None).why())

    def _meta_timing(self, argument: str) -> None:
        self.timing = _on_off(argument, not self.timing, "\\timing")
        self._notice(f"timing is {'on' if self.timing else 'off'}")

    def _meta_pager(self, argument: str) -> None:
        self.pager = _on_off(argument, not self.pager, "\\pager")
        self._notice(f"pager is {'on' if self.pager else 'off'}")

    def _meta_format(self, argument: str) -> None:
        if argument:
            self.fmt = _check_format(argument.lower())
        self._notice(f"format is {self.fmt}")

    def _meta_i(self, argument: str) -> bool:
        from stream_dsl.cli.main import _read_script

        path = os.path.expanduser(argument.strip().strip("'\""))
        if not path:
            raise DSLError("\\i needs a file: \\i FILE.sql")
        if self._depth >= MAX_INCLUDE_DEPTH:
            raise DSLError(f"\\i nested more than {MAX_INCLUDE_DEPTH} deep (does {path} include itself?)")
        lines = _read_script(path).splitlines(keepends=True)
        self._depth += 1
        try:
            for first_line, text in split_inputs(lines):
                errors = self.errors
                if not self.execute(text, first_line=first_line):
                    return False
                if self.errors > errors:
                    self._notice(f"stopped running {path} at the error above")
                    break
        finally:
            self._depth -= 1
        return True


def setting_values(config: Any) -> dict[str, str]:
    """Every SET key (the binder's SETTINGS, and the switched-off rules) with its value now, as SET takes it."""
    shown = {
        "batch_interval": f"{config.batch_interval_ms}ms",
        "heartbeat_timeout": f"{config.heartbeat_timeout:g}s",
        "state_ttl": "" if config.state_ttl_ms is None else f"{config.state_ttl_ms}ms",
    }
    values = {}
    for key in SETTINGS:
        value = shown[key] if key in shown else getattr(config, key, None)
        values[key] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    values.update({f"{RULE_SETTING_PREFIX}{rule}": "false" for rule in sorted(config.disabled_rules)})
    return values


def _done(node: ast.Statement) -> str:
    """What a statement that returns nothing did, in a few words."""
    if isinstance(node, ast.CreateSource):
        return f"created {node.kind.lower()} {node.name}"
    if isinstance(node, ast.CreateSink):
        return f"created sink {node.name}"
    if isinstance(node, ast.CreateView):
        return f"created view {node.name}"
    if isinstance(node, ast.Drop):
        return f"dropped {node.kind.lower()} {node.name}"
    if isinstance(node, ast.SetOption):
        return f"{node.key} = {node.value}"
    return "ok"


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DSLError(f"unknown format '{fmt}'{did_you_mean(fmt, FORMATS)}; formats: {', '.join(FORMATS)}")
    return fmt


def _on_off(argument: str, default: bool, command: str) -> bool:
    word = argument.strip().lower()
    if not word:
        return default
    if word in ("on", "true", "1", "yes"):
        return True
    if word in ("off", "false", "0", "no"):
        return False
    raise DSLError(f"{command} takes on or off, got '{argument}'")


# ---------------------------------------------------------------- without a prompt


def run_piped(session: Session, lines: Iterable[str], *, bail: bool = False) -> int:
    """Run the inputs read from `lines` (a pipe or a script) with no prompt; 1 if any failed, else 0.

    Inputs run as soon as they are complete, so a slow producer is followed
    as it writes. With `bail` the first error stops the run.
    """
    for first_line, text in split_inputs(lines):
        errors = session.errors
        if not session.execute(text, first_line=first_line):
            break
        if bail and session.errors > errors:
            break
    return 1 if session.errors else 0
