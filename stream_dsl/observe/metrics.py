"""A Prometheus `/metrics` endpoint for the queries of a Context, on loopback (prometheus_client).

`Context(metrics_port=9108)` (or `SET metrics_port = '9108'`) serves, on
127.0.0.1 only (metrics name the queries and sources: nothing leaves the
machine unless a scraper on it forwards them), one series per query,
labelled `query` (its name, or the start of its id):

- `stream_dsl_batches_total`, `stream_dsl_rows_in_total`, `stream_dsl_rows_out_total`,
  `stream_dsl_late_rows_total`, `stream_dsl_dead_letters_total`, `stream_dsl_recoveries_total`;
- `stream_dsl_batch_duration_seconds` and `stream_dsl_event_latency_seconds` (histograms);
- `stream_dsl_event_lag_seconds` (a paced source: how far event time trails the wall clock),
  `stream_dsl_watermark_seconds` (Unix time), `stream_dsl_checkpoint_age_seconds` (since the last
  committed checkpoint; NaN before the first), `stream_dsl_query_up` (1 while running).

They are fed by the progress dicts (the exporter is a listener), so they
say exactly what `QueryHandle.progress()` says. prometheus_client is the
optional extra `stream-dsl[metrics]`.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from typing import Any

from stream_dsl.errors import DSLError

LOOPBACK = "127.0.0.1"
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COUNTED = {
    "batches": "micro-batches finished",
    "rows_in": "rows the sources delivered",
    "rows_out": "rows written to the sink",
    "late_rows": "rows dropped as late (behind the watermark)",
    "dead_letters": "records that could not be read, sent to dead letters",
}


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise DSLError("metrics_port needs prometheus_client: pip install 'stream-dsl[metrics]'") from None
    return prometheus_client


class MetricsExporter:
    """The metrics of one Context's queries, served on LOOPBACK:`port` (0: a free port, see `port`)."""

    def __init__(self, port: int) -> None:
        client = _client()
        self.registry = client.CollectorRegistry(auto_describe=True)
        labels = ("query",)
        self.counters = {
            key: client.Counter(f"stream_dsl_{key}", text, labels, registry=self.registry)
            for key, text in COUNTED.items()
        }
        self.recoveries = client.Counter(
            "stream_dsl_recoveries", "workers lost and replaced", labels, registry=self.registry
        )
        self.duration = client.Histogram(
            "stream_dsl_batch_duration_seconds",
            "time a micro-batch took",
            labels,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.latency = client.Histogram(
            "stream_dsl_event_latency_seconds",
            "from reading a batch to writing its output",
            labels,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.lag = client.Gauge(
            "stream_dsl_event_lag_seconds", "event time behind the wall clock", labels, registry=self.registry
        )
        self.watermark = client.Gauge(
            "stream_dsl_watermark_seconds", "the watermark, Unix time", labels, registry=self.registry
        )
        self.checkpoint_age = client.Gauge(
            "stream_dsl_checkpoint_age_seconds", "since the last checkpoint commit", labels, registry=self.registry
        )
        self.up = client.Gauge("stream_dsl_query_up", "1 while the query runs", labels, registry=self.registry)
        self._recoveries: dict[str, int] = {}
        self._checkpointed: dict[str, float] = {}
        self._lock = threading.Lock()
        try:
            self.server, self.thread = client.start_http_server(port, addr=LOOPBACK, registry=self.registry)
        except OSError as exc:
            raise DSLError(
                f"metrics_port {port}: cannot serve metrics on {LOOPBACK}:{port}: {exc.strerror or exc}"
            ) from None

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/metrics"

    def track(self, handle: Any) -> None:
        """A query started: its `up` and checkpoint age follow the handle."""
        label = handle.label
        for counter in (*self.counters.values(), self.recoveries):
            counter.labels(label)  # every series exists from the start, at 0
        self.up.labels(label).set_function(lambda: 1.0 if handle.is_active else 0.0)
        self.checkpoint_age.labels(label).set_function(lambda: self._age(label))

    def _age(self, label: str) -> float:
        with self._lock:
            committed = self._checkpointed.get(label)
        return math.nan if committed is None else time.time() - committed

    def observe(self, progress: dict[str, Any]) -> None:
        """A batch's progress dict (a Context listener)."""
        label = str(progress.get("query_name") or str(progress.get("query_id", ""))[:8])
        self.counters["batches"].labels(label).inc()
        for key in list(COUNTED)[1:]:
            self.counters[key].labels(label).inc(int(progress.get(key) or 0))
        self.duration.labels(label).observe(float(progress.get("duration_ms") or 0.0) / 1000.0)
        if progress.get("latency_ms") is not None:
            self.latency.labels(label).observe(float(progress["latency_ms"]) / 1000.0)
        if progress.get("event_lag_ms") is not None:
            self.lag.labels(label).set(float(progress["event_lag_ms"]) / 1000.0)
        watermark = progress.get("watermark")
        if isinstance(watermark, dt.datetime):
            self.watermark.labels(label).set(watermark.replace(tzinfo=dt.timezone.utc).timestamp())
        recoveries = int(progress.get("recoveries") or 0)
        with self._lock:
            seen = self._recoveries.get(label, 0)
            self._recoveries[label] = max(seen, recoveries)
            if progress.get("checkpoint") is not None:
                self._checkpointed[label] = float(progress.get("timestamp") or time.time())
        if recoveries > seen:
            self.recoveries.labels(label).inc(recoveries - seen)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
