"""`stream-dsl run`'s live status line for a continuous INSERT, and its result formats.

On a terminal the line (the REPL's: batches, rows in and per second, rows
out, watermark, latency, lag, late rows, dead letters, recoveries) is
redrawn four times a second until the query ends; off a terminal nothing
is drawn, and the summary line alone is printed at the end.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

if TYPE_CHECKING:
    import polars as pl

REFRESH_S = 0.25
RESULT_FORMATS = ("table", "csv", "json", "ndjson")


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def await_with_status(handle: Any, out: TextIO, started: float) -> None:
    """Wait for `handle`'s query to end, drawing its status line on a terminal (Ctrl-C stops the query)."""
    if not is_terminal(out):
        handle.await_termination()
        return
    from rich.console import Console
    from rich.live import Live

    from stream_dsl.repl.render import query_status, status_text

    with Live(console=Console(file=out), refresh_per_second=1 / REFRESH_S, transient=True) as live:
        while not handle.await_termination(REFRESH_S):
            status = query_status(
                handle.recent_progress(10),
                time.perf_counter() - started,
                totals=handle.totals(),
                recoveries=len(handle.recoveries),
            )
            live.update(status_text(status))


def format_result(frame: pl.DataFrame, fmt: str, max_rows: int) -> str:
    """A SELECT's rows as `fmt`: a table (at most `max_rows`; -1 all), CSV, a JSON array or JSON lines."""
    from stream_dsl.repl.render import frame_csv, frame_json

    if fmt == "csv":
        return frame_csv(frame).rstrip("\n")
    if fmt == "ndjson":
        return frame_json(frame).rstrip("\n")
    if fmt == "json":
        lines = frame_json(frame).splitlines()
        return json.dumps([json.loads(line) for line in lines], indent=None, ensure_ascii=False)
    from stream_dsl.connectors.console import format_frame

    return format_frame(frame, max_rows)


@contextmanager
def progress_bar(total: int, description: str, stream: TextIO | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on `stream` (stderr) while the block runs, when it is a terminal; yields `advance(n)`."""
    stream = stream or sys.stderr
    if not is_terminal(stream):
        yield _no_progress
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream), transient=True) as progress:
        task = progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            progress.advance(task, n)

        yield advance


def _no_progress(n: int = 1) -> None:
    """`progress_bar`'s advance off a terminal: nothing to draw."""


@contextmanager
def phase(description: str, stream: TextIO | None = None) -> Iterator[None]:
    """A spinner naming what runs now, on `stream` (stderr) when it is a terminal (a benchmark's phases)."""
    stream = stream or sys.stderr
    if not is_terminal(stream):
        yield
        return
    from rich.console import Console

    with Console(file=stream).status(description):
        yield
