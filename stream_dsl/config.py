"""Run settings of a context or a single query, as one immutable record."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from stream_dsl.errors import DSLError

EXECUTORS = ("drizzle", "bsp", "inline")
_PLUGGED: set[str] = set()  # executors added with executor.api.register_executor (e.g. a test's faulty one)


def allow_executor(name: str) -> None:
    """Accept `name` as an executor (`executor.api.register_executor` calls this)."""
    _PLUGGED.add(name)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """How a query runs. `batch_interval_ms` is the event time one micro-batch covers."""

    workers: int = 2
    executor: str = "drizzle"
    group_size: int | str = 10
    batch_interval_ms: int = 100
    optimize: bool = True
    checkpoint_dir: str | None = None
    heartbeat_timeout: float = 30.0  # seconds a worker may stay silent before it counts as dead
    transport: str = "pipes"  # how the driver and the workers talk (executor/transports.py)
    checkpoint_reset: bool = False  # start a query over on purpose: its checkpoint_dir's old state is archived
    # Optimizer rules switched off by name (optimizer.rules.RULE_NAMES): `SET optimizer.<rule> = 'false'`.
    disabled_rules: frozenset[str] = frozenset()
    ray_address: str | None = None  # transport 'ray': None starts a local Ray; "auto" or "host:port" joins one
    metrics_port: int | None = None  # serve Prometheus metrics on 127.0.0.1:port (0: any free port)
    # collect() of bounded input this small runs in-process (`executor.api.collect`); None: always `executor`.
    # The Context sets it when no executor was asked for: starting workers costs more than such a query.
    small_collect_rows: int | None = None
    # How long (event time, behind the watermark) a deduplication remembers a key (None: forever); `SET state_ttl`.
    state_ttl_ms: int | None = None
    # Count rows into and out of every operator on every n-th batch (0: never), for `why`: counting adds outputs
    # to the stage's fused query (executor/query/fused_counts.py). `stream-dsl why` counts every batch (1).
    diagnose_every: int = 10
    # polars threads in each worker process (POLARS_MAX_THREADS there; pipes transport). None (or 'auto', which
    # becomes None): max(1, usable cores // workers), resolved where the workers start (executor/multiproc/forkservers)
    worker_threads: int | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS and self.executor not in _PLUGGED:
            raise DSLError(f"unknown executor '{self.executor}'; choose one of {', '.join(EXECUTORS)}")
        if not isinstance(self.workers, int) or self.workers < 1:
            raise DSLError(f"workers must be a positive integer, got {self.workers!r}")
        if self.group_size != "auto" and (not isinstance(self.group_size, int) or self.group_size < 1):
            raise DSLError(f"group_size must be a positive integer or 'auto', got {self.group_size!r}")
        if not isinstance(self.heartbeat_timeout, (int, float)) or self.heartbeat_timeout <= 0:
            raise DSLError(f"heartbeat_timeout must be a positive number of seconds, got {self.heartbeat_timeout!r}")
        if not isinstance(self.transport, str) or not self.transport:
            raise DSLError(f"transport must be a transport's name, got {self.transport!r}")
        if not isinstance(self.disabled_rules, frozenset):
            object.__setattr__(self, "disabled_rules", frozenset(self.disabled_rules))
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address):
            raise DSLError(f"ray_address must be 'auto' or a cluster's address, got {self.ray_address!r}")
        if self.metrics_port is not None and (
            not isinstance(self.metrics_port, int)
            or isinstance(self.metrics_port, bool)
            or not 0 <= self.metrics_port <= 65535
        ):
            raise DSLError(f"metrics_port must be a port number (0 for any free one), got {self.metrics_port!r}")
        if self.worker_threads == "auto":
            object.__setattr__(self, "worker_threads", None)
        if self.worker_threads is not None and (
            not isinstance(self.worker_threads, int) or isinstance(self.worker_threads, bool) or self.worker_threads < 1
        ):
            raise DSLError(f"worker_threads must be a positive integer or 'auto', got {self.worker_threads!r}")
        if self.state_ttl_ms is not None and self.state_ttl_ms < 1:
            raise DSLError("state_ttl must be a positive duration")
        if not isinstance(self.diagnose_every, int) or self.diagnose_every < 0:
            raise DSLError(f"diagnose_every must be 0 (never) or a positive integer, got {self.diagnose_every!r}")
        if self.batch_interval_ms < 1:
            raise DSLError("batch_interval must be at least 1ms")

    def with_options(self, **changes: Any) -> "RunConfig":  # Any: __post_init__ checks the values
        return replace(self, **changes)
