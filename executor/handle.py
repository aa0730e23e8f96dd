"""QueryHandle: a continuous query running in the background.

The micro-batch loop runs in a daemon thread. `progress()` lists one dict
per finished micro-batch (batch_id, rows_in, rows_out, late_rows,
dead_letters, watermark, duration_ms, latency_ms, ..., and the query's
`query_name` and `query_id`, the `timestamp` it was recorded at and
`rows_in_per_s` over the batch's duration). A failure inside the
loop ends the query; `await_termination()` re-raises it as an
ExecutionError naming the operator. A query over bounded sources ends by
itself when its input is done.

A query may run for months: the handle keeps the newest `PROGRESS_KEPT`
progress dicts (and the executors the newest `query.readers.DEAD_LETTERS_KEPT`
dead letters; all of them went to their target), as Spark keeps its recent
progress; `totals()` sums every batch.

One handle class for every executor: it drives the executor's QueryRun
(`executor/api.py`) and never re-implements its loop.
"""

from __future__ import annotations

import copy
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import networkx as nx

from executor import kernels
from executor.interrupts import wait_for
from stream_dsl.observe.log import QUERY, DeadLetterBursts, current_query, event
from stream_dsl.observe.why import RECENT, WhyTotals, explain, suggested_delay_ms
from stream_dsl.connectors.base import DeadLetter, Sink
from stream_dsl.errors import DSLError, ExecutionError


PROGRESS_KEPT = 10_000  # progress dicts a handle keeps (a few KB each)
TOTALS = ("batches", "rows_in", "rows_out", "late_rows", "dead_letters")


class QueryHandle:
    """Control and progress of one running query (stop, await_termination, progress)."""

    def __init__(
        self, run: Any, sink: Sink, name: str | None = None, on_progress: Callable[[dict[str, Any]], Any] | None = None
    ) -> None:
        self.name = name
        self.id = uuid.uuid4().hex  # this run's id (a restart from a checkpoint is a new run)
        self._on_progress = on_progress
        self._bursts = DeadLetterBursts(self.label)
        self._query = run  # the executor's QueryRun (executor/api.py)
        self._sink = sink
        self._progress: deque[dict[str, Any]] = deque(maxlen=PROGRESS_KEPT)
        self._totals = dict.fromkeys(TOTALS, 0)  # over every batch, however many progress dicts are kept
        self._why = WhyTotals()  # what every batch did per operator, added up (`why`)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._exception: ExecutionError | None = None
        self._finished = threading.Event()  # set once the loop ended and everything is closed
        self._thread = threading.Thread(target=self._run, name=f"stream-dsl-{name or 'query'}", daemon=True)

    @property
    def label(self) -> str:
        """How logs and metrics name the query: its name, or the start of its id."""
        return self.name or self.id[:8]

    def _start(self) -> "QueryHandle":
        self._thread.start()
        return self

    def _record(self, report: dict[str, Any]) -> None:
        """A finished batch's progress: kept, counted, stamped with the query and handed to `on_progress`."""
        duration_s = float(report.get("duration_ms") or 0.0) / 1000.0
        report["query_name"], report["query_id"], report["timestamp"] = self.name, self.id, time.time()
        report["rows_in_per_s"] = report.get("rows_in", 0) / duration_s if duration_s > 0 else None
        with self._lock:
            self._progress.append(report)
            self._totals["batches"] += 1
            for key in TOTALS[1:]:
                self._totals[key] += int(report.get(key) or 0)
            self._why.add(report)
        dead = int(report.get("dead_letters") or 0)
        if dead:
            latest = self._query.dead_letters[-1] if self._query.dead_letters else None
            self._bursts.saw(int(report.get("batch_id", -1)), dead, getattr(latest, "reason", None))
        if self._on_progress is not None:
            self._on_progress(dict(report))

    def _run(self) -> None:
        current_query.set(self.label)
        config = getattr(self._query, "config", None)
        event(
            QUERY,
            logging.INFO,
            f"query {self.label} started"
            + ("" if config is None else f" ({config.executor}, {config.workers} workers)"),
            query_id=self.id,
        )
        try:
            self._query.run(self._record, self._stop.is_set, idle_sleep=True)
        except ExecutionError as exc:
            self._exception = exc
        except DSLError as exc:
            self._exception = _as_execution_error(exc)
        except Exception as exc:
            self._exception = _as_execution_error(exc)
        finally:
            self._query.close()
            try:
                self._sink.close()
            except Exception as exc:
                if self._exception is None:
                    self._exception = _as_execution_error(exc, "closing the sink")
            finally:
                self._log_end()
                self._finished.set()

    def _log_end(self) -> None:
        batches = self._totals["batches"]
        if self._exception is not None:
            event(QUERY, logging.ERROR, f"query {self.label} failed after {batches} batches: {self._exception}")
        else:
            how = "was stopped" if self._stop.is_set() else "ended"
            event(QUERY, logging.INFO, f"query {self.label} {how} after {batches} batches", batches=batches)

    # ------------------------------------------------------------ public

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to stop after the current batch and wait for it (up to `timeout` seconds)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            wait_for(self._finished, timeout)

    def await_termination(self, timeout: float | None = None) -> bool:
        """Wait until the query ends (True) or `timeout` passes (False); re-raise a failure.

        Ctrl-C (KeyboardInterrupt) or SIGTERM while waiting stops the query
        first (its workers exit, what it wrote stays consistent), then goes on up.
        """
        try:
            finished = wait_for(self._finished, timeout)
        except BaseException:
            self.stop()
            raise
        if self._exception is not None:
            raise self._exception
        return finished

    @property
    def is_active(self) -> bool:
        return self._thread.is_alive() and not self._finished.is_set()

    @property
    def status(self) -> str:
        """'running', 'stopped' (by stop()), 'finished' (its input ended) or 'failed'."""
        if self.is_active:
            return "running"
        if self._exception is not None:
            return "failed"
        return "stopped" if self._stop.is_set() else "finished"

    @property
    def exception(self) -> ExecutionError | None:
        return self._exception

    def progress(self) -> list[dict[str, Any]]:
        """One dict per finished micro-batch, oldest first (the newest PROGRESS_KEPT)."""
        with self._lock:
            return [dict(p) for p in self._progress]

    def recent_progress(self, count: int) -> list[dict[str, Any]]:
        """The newest `count` progress dicts, oldest first (a status line needs no more)."""
        with self._lock:
            newest = list(itertools.islice(reversed(self._progress), count))  # not a copy of all 10,000
        return [dict(p) for p in reversed(newest)]

    def totals(self) -> dict[str, int]:
        """Batches, rows_in, rows_out, late_rows and dead_letters summed over every batch so far."""
        with self._lock:
            return dict(self._totals)

    def why(self) -> str:
        """Why the query prints nothing, or little: where rows went per operator (last batches and in
        total), the next moment output is due, late rows and dead letters, and a watermark delay that
        would have kept the late rows (`stream_dsl/observe/why.py`). Works while it runs and after."""
        with self._lock:
            reports = [dict(p) for p in itertools.islice(reversed(self._progress), RECENT)][::-1]
            totals = copy.deepcopy(self._why)
            rows = dict(self._totals)
        return explain(
            self.stages,
            reports,
            totals,
            name=f"query {self.label}",
            status=self.status,
            totals_rows=rows,
            dead_letters=self.dead_letters,
        )

    def suggested_watermark_delay(self, keep: float = 0.99) -> int | None:
        """The watermark delay in ms that would have kept `keep` of the late rows so far (None: no late
        rows, or none that any delay up to a day keeps)."""
        from stream_dsl.observe.why import watermark_delays

        with self._lock:
            lateness = list(self._why.lateness)
        delays = watermark_delays(self.stages)
        return suggested_delay_ms(lateness, max(delays.values()) if delays else 0, keep)

    @property
    def batches(self) -> int:
        return self._totals["batches"]

    @property
    def last_progress(self) -> dict[str, Any] | None:
        with self._lock:
            return dict(self._progress[-1]) if self._progress else None

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The records the sources could not read (also counted per batch in progress)."""
        return list(self._query.dead_letters)

    def worker_pids(self) -> list[int]:
        """The process ids of the query's workers now (none for the inline executor; new ones after a recovery)."""
        return list(self._query.worker_pids)

    @property
    def recoveries(self) -> list[dict[str, Any]]:
        """One dict per recovery from a lost worker (see executor/recovery.py); the inline executor has none."""
        return [dict(r) for r in self._query.recoveries]

    @property
    def restored_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint this run started from: {"id", "next_batch", "skipped"}, or None."""
        return self._query.restored_info()

    @property
    def stages(self) -> nx.DiGraph:
        """The query's stage DAG (networkx.DiGraph)."""
        return self._query.graph

    def __repr__(self) -> str:
        state = "active" if self.is_active else ("failed" if self._exception else "stopped")
        return f"<QueryHandle {self.name or ''} {state}, {self.batches} batches>"


def _as_execution_error(exc: BaseException, where: str = "query") -> ExecutionError:
    error = ExecutionError(f"{where} failed: {kernels.error_text(exc)}")
    error.__cause__ = exc
    return error
