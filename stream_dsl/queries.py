"""The continuous queries of one Context: names, the running ones, waiting for any to end, listeners.

What Spark's `spark.streams` is: `Context.queries` lists the running
queries, `await_any_termination` waits for one to end, and listeners hear
every progress dict of every query. A name is unique among the running
queries, so a query is found by it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from stream_dsl.errors import DSLError

Listener = Callable[[dict[str, Any]], Any]
LOG = logging.getLogger("stream_dsl.queries")
POLL_S = 0.05  # how often await_any checks its queries (a QueryHandle has no callback for its end)


class Queries:
    """The QueryHandles a Context started, and its progress listeners."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.listeners: list[Listener] = []
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

    def add(self, handle: Any) -> Any:
        with self._lock:
            self.handles.append(handle)
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

    def reset_terminated(self) -> None:
        with self._lock:
            self.handles = [h for h in self.handles if h.is_active]
            self._returned = set()
