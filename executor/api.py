"""The executor's entry points: `collect` (run bounded input to the end) and `start` (continuous).

Both optimize the plan when `config.optimize` is on, lower it to stages
and run it. Every executor name ('drizzle', 'bsp', 'inline') runs on the
inline executor for now; the multiprocess executors plug in through
`EXECUTORS` with the same two functions.
"""

from __future__ import annotations

from typing import Any, Callable

import polars as pl

import optimizer
from executor import kernels
from executor.commits import dead_letter_router
from executor.handle import QueryHandle
from executor.inline import SinkOutput, build_query, collect_plan
from executor.trace import recorder_for
from stream_dsl.catalog import Catalog
from stream_dsl.config import RunConfig
from stream_dsl.connectors import open_sink
from stream_dsl.connectors.base import Sink
from stream_dsl.errors import ConnectorError
from stream_dsl.plan import Plan, SinkDef

SinkLike = str | SinkDef | Sink | Callable[[int, pl.DataFrame], Any] | None

CONSOLE = SinkDef("console", (("connector", "console"),))


def _prepare(plan: Plan, config: RunConfig | None) -> tuple[Plan, RunConfig]:
    config = config or RunConfig()
    if config.optimize:
        plan = optimizer.optimize(plan, config)
    return plan, config


def _multiprocess(config: RunConfig | None) -> Any:
    """The worker-process executors ('drizzle', 'bsp'), or None for 'inline'.

    Imported lazily: multiproc_api builds on this module.
    """
    if config is None or config.executor == "inline":
        return None
    from executor import multiproc_api

    return multiproc_api


def collect(plan: Plan, config: RunConfig | None = None, catalog: Catalog | None = None) -> pl.DataFrame:
    """Run `plan` over bounded input (as fast as possible, realtime=False) and return the result.

    Append queries return every emitted row; changelog queries (non-windowed
    aggregates, EMIT CHANGES) the last value of each group.
    """
    if (multiprocess := _multiprocess(config)) is not None:
        return multiprocess.collect(plan, config, catalog)
    plan, config = _prepare(plan, config)
    return collect_plan(plan, config, catalog=catalog)


def start(plan: Plan, sink: SinkLike = None, config: RunConfig | None = None,
          catalog: Catalog | None = None, *, name: str | None = None, trace: str | None = None) -> QueryHandle:
    """Start `plan` as a continuous query writing to `sink`; returns its QueryHandle.

    `sink` is a sink name (looked up in `catalog`), a SinkDef, a Sink object,
    a function `(batch_id, frame)` called per batch, or None for the console.
    Sources pace themselves to the wall clock unless their option
    realtime = 'false'. `trace` is a file path: when the query ends, every
    task's start and end go there in the Chrome trace format (executor/trace.py).
    """
    if (multiprocess := _multiprocess(config)) is not None:
        return multiprocess.start(plan, sink, config, catalog, name=name, trace=trace)
    plan, config = _prepare(plan, config)
    recorder = recorder_for(trace, config)
    target = resolve_sink(sink, catalog)
    written = target if recorder is None else recorder.wrap(target)
    query = build_query(plan, config, lambda schema, limit: SinkOutput(schema, limit, written), realtime=True)
    query.checkpoint_dir = config.checkpoint_dir
    if recorder is not None:
        recorder.attach_inline(query)
    try:
        query.dead_letter_router = dead_letter_router(query.graph, catalog=catalog, sink=target, query_name=name,
                                                      checkpoint_dir=config.checkpoint_dir)
        query.open()
    except BaseException:
        _close_quietly(target)
        raise
    return QueryHandle(query, written, name)._start()


def explain_analyze(plan: Plan, config: RunConfig | None = None, catalog: Catalog | None = None) -> str:
    """EXPLAIN ANALYZE: run the query over its bounded input, then the explain text with what happened.

    The metrics section sums the micro-batches (rows in and out, late rows,
    dead letters, time) and lists the rows each stage produced.
    """
    from optimizer.explain import explain

    if (multiprocess := _multiprocess(config)) is not None:
        return multiprocess.explain_analyze(plan, config, catalog)
    config = config or RunConfig()
    reports: list[dict[str, Any]] = []
    result = collect_plan(_prepare(plan, config)[0], config, reports.append)
    return explain(plan, config) + "\n== Metrics ==\n" + render_metrics(reports, result.height)


def render_metrics(reports: list[dict[str, Any]], result_rows: int) -> str:
    """Totals over micro-batch progress reports, then the rows each stage produced."""
    def total(key: str) -> int:
        return sum(int(r.get(key, 0)) for r in reports)

    duration = sum(float(r.get("duration_ms", 0.0)) for r in reports)
    lines = [f"batches={len(reports)} rows_in={total('rows_in')} rows_out={total('rows_out')} "
             f"result_rows={result_rows} late_rows={total('late_rows')} dead_letters={total('dead_letters')}",
             f"time={duration:.1f}ms per_batch={duration / max(len(reports), 1):.2f}ms"]
    stages: dict[int, int] = {}
    for report in reports:
        for stage, rows in report.get("stage_rows", {}).items():
            stages[stage] = stages.get(stage, 0) + rows
    lines += [f"Stage {stage} rows_out={rows}" for stage, rows in sorted(stages.items())]
    lines += kernels.render_counters(reports)
    return "\n".join(lines)


def resolve_sink(sink: SinkLike, catalog: Catalog | None) -> Sink:
    if sink is None:
        return open_sink(CONSOLE)
    if isinstance(sink, str):
        if catalog is None:
            raise ConnectorError(f"sink '{sink}' given by name, but there is no catalog to look it up in")
        return open_sink(catalog.sink(sink))
    if isinstance(sink, SinkDef):
        return open_sink(sink)
    if hasattr(sink, "write"):
        return sink  # type: ignore[return-value]
    if callable(sink):
        return FunctionSink(sink)
    raise ConnectorError(f"cannot write to {sink!r}: give a sink name, a SinkDef, a Sink or a function")


class FunctionSink:
    """A sink calling `fn(batch_id, frame)` per batch (like Spark's foreachBatch)."""

    def __init__(self, fn: Callable[[int, pl.DataFrame], Any]) -> None:
        self.fn = fn

    def write(self, batch_id: int, frame: pl.DataFrame) -> None:
        self.fn(batch_id, frame)

    def close(self) -> None:
        pass


def _close_quietly(sink: Sink) -> None:
    try:
        sink.close()
    except Exception:
        pass
