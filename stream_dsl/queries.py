"""The continuous queries of one Context: names, the running ones, waiting for any to end, listeners.

What Spark's `spark.streams` is: `Context.queries` lists the running
queries, `await_any_termination` waits for one to end, and listeners hear
every progress dict of every query. A name is unique among the running
queries, so a query is found by it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any, Callable

import polars as pl

from stream_dsl.errors import BindError, DSLError, did_you_mean

Listener = Callable[[dict[str, Any]], Any]
LOG = logging.getLogger("stream_dsl.queries")
QUERY_COLUMNS = {
    "name": pl.String,
    "status": pl.String,
    "sink": pl.String,
    "batches": pl.Int64,
    "rows_in": pl.Int64,
    "rows_out": pl.Int64,
    "late_rows": pl.Int64,
    "dead_letters": pl.Int64,
    "lag_ms": pl.Float64,
    "last_error": pl.String,
}
POLL_S = 0.05  # how often await_any checks its queries (a QueryHandle has no callback for its end)


class Queries:
    """The QueryHandles a Context started, and its progress listeners."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.listeners: list[Listener] = []
        self.sinks: dict[int, str] = {}  # id(handle) -> what it writes to, for SHOW QUERIES
        self._numbers = itertools.count(1)
        self.exporter: Any = None  # the Prometheus exporter (observe/metrics.py), with metrics_port
        self.started = False  # whether any query was started (awaiting none at all would never end)
        self._returned: set[int] = set()  # ids of ended handles await_any already returned or forgot
        self._lock = threading.Lock()

    def check_name(self, name: str | None) -> None:
        """A query may not take the name of a running one."""
        if name is not None and any(h.name == name for h in self.active()):
            raise DSLError(f"a query named '{name}' is already running; stop it first or choose another name")

    def notifier(self, extra: Listener | None) -> Listener:
        """What a new query calls with each progress dict: the Context's listeners (as they are at that
        batch, so one added later hears it too), then its own. A listener that raises is logged and the
        query goes on."""
        if extra is not None and not callable(extra):
            raise DSLError(f"on_progress is a function (progress dict), got {type(extra).__name__}")

        def notify(progress: dict[str, Any]) -> None:
            exporter = [self.exporter.observe] if self.exporter is not None else []
            for listener in [*exporter, *self.listeners, *([extra] if extra is not None else [])]:
                try:
                    listener(progress)
                except Exception:
                    LOG.exception("progress listener %r failed on query %s", listener, progress.get("query_name"))

        return notify

    def next_name(self) -> str:
        """A name for a query started without one: q1, q2, ... (skipping names in use)."""
        while True:
            name = f"q{next(self._numbers)}"
            if not any(h.name == name for h in self.handles):
                return name

    def add(self, handle: Any, sink: Any = None) -> Any:
        with self._lock:
            self.handles.append(handle)
            self.sinks[id(handle)] = _sink_label(sink)
            self.started = True
        if self.exporter is not None:
            self.exporter.track(handle)
        return handle

    def serve_metrics(self, port: int | None) -> None:
        """Serve the queries' metrics on `port` (None: stop serving); a port already served stays as it is."""
        if self.exporter is not None and port is not None and port in (0, self.exporter.port):
            return
        if self.exporter is not None:
            self.exporter.close()
            self.exporter = None
        if port is None:
            return
        from stream_dsl.observe.metrics import MetricsExporter

        self.exporter = MetricsExporter(port)
        for handle in self.active():
            self.exporter.track(handle)

    def active(self) -> list[Any]:
        with self._lock:
            return [h for h in self.handles if h.is_active]

    def await_any(self, timeout: float | None) -> Any:
        """The first query that ended and was not returned yet, waiting for one (None after `timeout`)."""
        with self._lock:
            if not self.started:
                raise DSLError("no query was started in this Context")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                ended = [h for h in self.handles if not h.is_active and id(h) not in self._returned]
                if ended:
                    self._returned.add(id(ended[0]))
            if ended:
                handle = ended[0]
                if handle.exception is not None:
                    raise handle.exception
                return handle
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(POLL_S)

    def named(self, name: str, span: Any = None) -> Any:
        """The newest query called `name` (BindError at `span`, with the names there are, if none)."""
        with self._lock:
            found = [h for h in self.handles if h.name == name]
            names = sorted({h.name for h in self.handles if h.name})
        if not found:
            listed = ", ".join(names) if names else "none (INSERT INTO starts one)"
            raise BindError(f"no query named '{name}'{did_you_mean(name, names)}; queries: {listed}", span=span)
        return found[-1]

    def stop(self, name: str, span: Any = None) -> None:
        """STOP QUERY: stop it after its current batch and wait for it (what it wrote stays consistent)."""
        self.named(name, span).stop()

    def table(self) -> pl.DataFrame:
        """SHOW QUERIES: every query of the Context, oldest first, with its totals and its state now."""
        with self._lock:
            handles = list(self.handles)
        rows = [self._row(h) for h in handles]
        return pl.DataFrame(rows, schema=QUERY_COLUMNS, orient="row")

    def _row(self, handle: Any) -> tuple:
        totals, last = handle.totals(), handle.last_progress or {}
        error = handle.exception
        return (
            handle.name,
            handle.status,
            self.sinks.get(id(handle), ""),
            totals["batches"],
            totals["rows_in"],
            totals["rows_out"],
            totals["late_rows"],
            totals["dead_letters"],
            last.get("event_lag_ms"),
            None if error is None else str(error).splitlines()[0],
        )

    def describe(self, name: str, span: Any = None) -> pl.DataFrame:
        """DESCRIBE QUERY: one query's settings and progress, as (property, value) rows."""
        handle = self.named(name, span)
        row = dict(zip(QUERY_COLUMNS, self._row(handle)))
        last = handle.last_progress or {}
        config = getattr(handle._query, "config", None)
        facts = {
            **row,
            "id": handle.id,
            "executor": None if config is None else f"{config.executor}, {config.workers} workers",
            "watermark": last.get("watermark"),
            "last_batch": last.get("batch_id"),
            "last_batch_ms": last.get("duration_ms"),
            "latency_ms": last.get("latency_ms"),
            "state_groups": last.get("state_groups"),
            "recoveries": len(handle.recoveries),
            "restored_checkpoint": (handle.restored_checkpoint or {}).get("id"),
            "checkpoint_dir": None if config is None else config.checkpoint_dir,
        }
        return pl.DataFrame(
            {"property": list(facts), "value": ["" if v is None else str(v) for v in facts.values()]},
            schema={"property": pl.String, "value": pl.String},
        )

    def reset_terminated(self) -> None:
        with self._lock:
            self.handles = [h for h in self.handles if h.is_active]
            self._returned = set()


def _sink_label(sink: Any) -> str:
    """What a query writes to, in a few words: a sink's name, 'console', or a function's name."""
    if sink is None:
        return "console"
    if isinstance(sink, str):
        return sink
    name = getattr(sink, "name", None)
    if isinstance(name, str):
        return name
    return getattr(sink, "__name__", type(sink).__name__)
