"""Following a continuous query in the REPL: its latest results and its status, until it ends or is stopped.

A SELECT over bounded sources is collected and printed once; anything else
runs as a continuous query whose sink is a `LatestResults` buffer. On a
terminal the REPL redraws a rich `Live` table of the latest results with a
status line (batches, rows per second, watermark, latency) a few times per
second; elsewhere (a pipe) it prints each batch's rows as they arrive, in
the session's format. Ctrl-C (or `cancel`) stops the query after its
current batch, and the session goes on.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from stream_dsl.connectors import open_source
from stream_dsl.connectors.upserts import DELETE_OP, INSERT_OP, LATEST, OP_COLUMN, UPSERT_OP, fold_retractions
from stream_dsl.connectors.upserts import UPSERT as SINK_UPSERT
from stream_dsl.errors import DSLError
from stream_dsl.ir.plan import Limit, Plan, Project, scans
from stream_dsl.repl.render import QueryStatus, frame_csv, frame_json, frame_view, live_view, query_status, status_text

__all__ = ["is_bounded", "output_keys", "LatestResults", "follow", "APPEND", "UPSERT", "REPLACE", "RETRACT"]

APPEND, UPSERT, REPLACE, RETRACT = "append", "upsert", "replace", "retract"


def is_bounded(plan: Plan) -> bool:
    """Whether `collect()` ends: a LIMIT on top, or every stream the plan reads is bounded.

    Each stream's connector object is created (not opened, nothing read) and
    asked for its `bounded` property; static tables are always bounded.
    """
    top = plan
    while isinstance(top, Project):
        top = top.input
    if isinstance(top, Limit):
        return True
    for scan in scans(plan):
        if scan.source.kind != "stream":
            continue
        source = open_source(scan.source)
        try:
            if not getattr(source, "bounded", True):
                return False
        finally:
            try:
                source.close()
            except Exception:
                pass
    return True


def output_keys(plan: Plan, columns: list[str]) -> tuple[str, tuple[str, ...]]:
    """How a continuous query's output batches combine into its latest results.

    Append-only queries (no aggregate, or windows emitted once on close)
    keep adding rows: APPEND. A changelog (a non-windowed aggregate, EMIT
    CHANGES) sends each changed group's new row: UPSERT by its group keys,
    or REPLACE (show the latest batch) when the output does not keep them.
    A changelog whose rows are taken back whole (its keys dropped, an outer
    join of two streams) is RETRACT: its insert and delete records fold as a
    multiset.
    """
    from optimizer.physical.lower import lower
    from optimizer.physical.stages import OutputWrite

    graph = lower(plan, 1)
    for node in graph.nodes:
        terminal = graph.nodes[node]["stage"].terminal
        if isinstance(terminal, OutputWrite) and terminal.retract:
            return RETRACT, ()
        if isinstance(terminal, OutputWrite) and terminal.changelog:
            keys = tuple(terminal.group_keys)
            return (UPSERT, keys) if set(keys) <= set(columns) else (REPLACE, ())
    return APPEND, ()


@dataclass
class LatestResults:
    """The latest results of a continuous query; `write` is its sink, called from the query's thread.

    APPEND keeps the last `keep` rows; UPSERT keeps the newest row of each
    group; REPLACE the latest non-empty batch; RETRACT the rows inserted
    more often than deleted. `pending` holds batches not
    yet printed (for output that streams rather than redraws).
    """

    mode: str = APPEND
    keys: tuple[str, ...] = ()
    keep: int = 1000
    stream: bool = False
    frame: pl.DataFrame | None = None
    total_rows: int = 0
    pending: list[tuple[int, pl.DataFrame]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def writes(self) -> str:
        """What the view takes: upsert records by its keys (deletes shown too), else each batch's rows."""
        return SINK_UPSERT if self.mode in (UPSERT, RETRACT) else LATEST

    def close(self) -> None:
        pass

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        with self._lock:
            self.frame = self._merge(frame)
            self.total_rows = self.frame.height if self.mode != APPEND else self.total_rows + frame.height
            if self.stream:
                self.pending.append((batch_id, frame))

    def _merge(self, frame: pl.DataFrame) -> pl.DataFrame:
        current = self.frame
        if self.mode == RETRACT and OP_COLUMN in frame.columns:  # insert/delete records of whole rows
            held = [] if current is None else [current.with_columns(pl.lit(INSERT_OP).alias(OP_COLUMN))]
            return fold_retractions(pl.concat([*held, frame], how="diagonal_relaxed"))
        if current is None or self.mode == REPLACE or (self.mode == UPSERT and not self.keys):
            if OP_COLUMN in frame.columns:
                frame = frame.filter(pl.col(OP_COLUMN) != DELETE_OP).drop(OP_COLUMN)
            return frame.tail(self.keep) if self.mode == APPEND else frame
        if self.mode == APPEND:
            return pl.concat([current, frame], how="diagonal_relaxed").tail(self.keep)
        if OP_COLUMN in frame.columns:  # upsert records: the newest row per key, deleted keys gone
            both = pl.concat([current.with_columns(pl.lit(UPSERT_OP).alias(OP_COLUMN)), frame], how="diagonal_relaxed")
            both = both.group_by(list(self.keys), maintain_order=True).agg(pl.all().last())
            return both.filter(pl.col(OP_COLUMN) != DELETE_OP).select(current.columns)
        both = pl.concat([current, frame], how="diagonal_relaxed")
        keys = list(self.keys)
        if len(keys) == both.width:
            return both.unique(subset=keys, keep="first", maintain_order=True)
        # each group keeps the place it first appeared in, with its newest values
        return both.group_by(keys, maintain_order=True).agg(pl.all().last()).select(both.columns)

    def snapshot(self) -> tuple[pl.DataFrame | None, int]:
        with self._lock:
            return self.frame, self.total_rows

    def take_pending(self) -> list[tuple[int, pl.DataFrame]]:
        with self._lock:
            pending, self.pending = self.pending, []
            return pending


@dataclass
class _Printer:
    """Prints streamed batches in a format: a table per batch, or csv/JSON lines (csv header once)."""

    console: Console
    fmt: str
    max_rows: int
    header_done: bool = False

    def batch(self, batch_id: int, frame: pl.DataFrame) -> None:
        if not frame.height:
            return
        if self.fmt == "csv":
            self.console.out(frame_csv(frame, header=not self.header_done), highlight=False, end="")
            self.header_done = True
        elif self.fmt == "json":
            self.console.out(frame_json(frame), highlight=False, end="")
        else:
            self.console.print(
                frame_view(frame, max_rows=self.max_rows, width=self.console.width, title=f"batch {batch_id}")
            )


def follow(
    handle: Any,
    console: Console,
    *,
    results: LatestResults | None = None,
    live: bool = True,
    fmt: str = "table",
    max_rows: int = 40,
    refresh_seconds: float = 0.25,
    cancel: threading.Event | None = None,
    status_console: Console | None = None,
) -> QueryStatus:
    """Show a running query until it ends, Ctrl-C, or `cancel` is set; then stop it and return its status.

    `results` is the query's sink buffer (None for an INSERT, whose rows go
    elsewhere: only the status shows). A failure of the query is raised, as
    the DSLError the handle reports, after the final view is drawn.
    """
    return _Follower(
        handle, console, results, fmt, max_rows, refresh_seconds, cancel or threading.Event(), status_console or console
    ).run(live)


@dataclass
class _Follower:
    handle: Any
    console: Console
    results: LatestResults | None
    fmt: str
    max_rows: int
    refresh_seconds: float
    cancel: threading.Event
    status_console: Console
    started: float = field(default_factory=time.perf_counter)
    failure: DSLError | None = None
    display: Live | None = None
    printer: _Printer | None = None

    def __post_init__(self) -> None:
        self.printer = _Printer(self.console, self.fmt, self.max_rows)

    def run(self, live: bool) -> QueryStatus:
        if live:
            with Live(self.view("running"), console=self.console, auto_refresh=False) as self.display:
                state = self.wait()
                self.display.update(self.view(state), refresh=True)
        else:
            state = self.wait()
            self.drain()
            self.status_console.print(status_text(self.status(state)))
        if self.failure is not None:
            raise self.failure
        return self.status(state)

    def wait(self) -> str:
        """Poll until the query ends ('finished'), fails, or is stopped; the query is stopped in any case."""
        try:
            while not self.cancel.is_set():
                if self.handle.await_termination(self.refresh_seconds):
                    return "finished"
                self.drain()
                if self.display is not None:
                    self.display.update(self.view("running"), refresh=True)
            return "stopped"
        except KeyboardInterrupt:
            return "stopped"
        except DSLError as err:
            self.failure = err
            return "failed"
        finally:
            self.handle.stop()

    def status(self, state: str) -> QueryStatus:
        handle = self.handle
        recent = handle.recent_progress(10) if hasattr(handle, "recent_progress") else handle.progress()[-10:]
        return query_status(recent, time.perf_counter() - self.started, state, handle.totals(), len(handle.recoveries))

    def view(self, state: str) -> Any:
        status = self.status(state)
        if self.results is None or self.results.stream:
            return status_text(status)
        frame, total = self.results.snapshot()
        if self.results.mode != APPEND:  # the table is the current result: the status counts its rows too
            status = dataclasses.replace(status, result_rows=total)
        rows = self.max_rows if self.max_rows >= 0 else total
        rows = max(3, min(rows, self.console.height - 10))  # the status line stays on screen
        if frame is not None and self.results.mode == APPEND:
            frame = frame.tail(rows)  # the newest rows
        if frame is not None and self.fmt != "table":  # \format csv or json: the latest rows in that format
            text = frame_csv(frame.head(rows)) if self.fmt == "csv" else frame_json(frame.head(rows))
            return Group(Text(text.rstrip("\n")), status_text(status))
        return live_view(frame, status, max_rows=rows, width=self.console.width, total_rows=total)

    def drain(self) -> None:
        if self.results is not None and self.results.stream and self.printer is not None:
            for batch_id, frame in self.results.take_pending():
                self.printer.batch(batch_id, frame)
