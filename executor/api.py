"""The executor's one way in: `collect`, `start` and `explain_analyze`, over a registry of executors.

An executor is a scheduler over the query core (`executor/query/`): given
a lowered stage DAG, the run settings and the query output, it builds a
`QueryRun` (open, run, close, result). `EXECUTORS` maps each name of
`RunConfig.executor` to its factory: 'inline' (one process), 'drizzle'
(pre-scheduling and group scheduling on worker processes) and 'bsp' (the
classic driver-coordinated baseline). Everything else here (optimizing,
lowering, the sink, dead letters, tracing, the QueryHandle) is the same
for all of them.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol

import networkx as nx
import polars as pl

import optimizer
from executor import kernels
from executor.handle import QueryHandle
from executor.query.outputs import CollectOutput, QueryOutput, SinkOutput, check_sorted_output
from executor.query.release import dead_letter_router
from stream_dsl.connectors.late_rows import late_row_router
from executor.query.sink_modes import prepare_sink_output
from executor.trace import recorder_for
from optimizer.physical.lower import lower
from stream_dsl.catalog import Catalog
from stream_dsl.config import RunConfig
from stream_dsl.connectors import open_sink
from stream_dsl.connectors.base import DeadLetter, Sink
from stream_dsl.connectors.dead_letters import describe_target
from stream_dsl.connectors.upserts import UPSERT
from stream_dsl.errors import ConnectorError, DSLError, ExecutionError
from stream_dsl.ir.definitions import SinkDef
from stream_dsl.ir.plan import Plan, scans
from stream_dsl.observe.log import collected_dead_letters

SinkLike = str | SinkDef | Sink | Callable[[int, pl.DataFrame], Any] | None
OnBatch = Callable[[dict[str, Any]], None] | None

CONSOLE = SinkDef("console", (("connector", "console"),))


class QueryRun(Protocol):
    """One query on one executor: what `collect`, `start` and the QueryHandle drive."""

    graph: nx.DiGraph
    executor: str
    dead_letter_router: Any
    late_row_router: Any
    dead_letters: Any  # the newest DeadLetters, oldest first

    def open(self, *, bounded: bool = False) -> None:
        """Read tables, decide where the query starts, open sources (and start workers)."""

    def run(
        self, on_batch: OnBatch = None, should_stop: Callable[[], bool] | None = None, *, idle_sleep: bool = False
    ) -> None:
        """Run micro-batches until the input ends, the LIMIT is reached or `should_stop()` says so."""

    def close(self) -> None:
        """Release everything the run holds (idempotent)."""

    def result(self) -> pl.DataFrame:
        """collect()'s result after `run`."""

    @property
    def recoveries(self) -> list[dict[str, Any]]: ...

    @property
    def worker_pids(self) -> list[int]: ...

    def restored_info(self) -> dict[str, Any] | None: ...


ExecutorFactory = Callable[[nx.DiGraph, RunConfig, QueryOutput, bool], QueryRun]


def _inline(graph: nx.DiGraph, config: RunConfig, output: QueryOutput, realtime: bool) -> QueryRun:
    from executor.inline import InlineQuery

    return InlineQuery(graph, config, output, realtime=realtime)


def _drizzle(graph: nx.DiGraph, config: RunConfig, output: QueryOutput, realtime: bool) -> QueryRun:
    from executor.multiproc.drizzle import DrizzleDriver

    return DrizzleDriver(graph, config, output, realtime=realtime)


def _bsp(graph: nx.DiGraph, config: RunConfig, output: QueryOutput, realtime: bool) -> QueryRun:
    from executor.multiproc.bsp import BspDriver

    return BspDriver(graph, config, output, realtime=realtime)


EXECUTORS: dict[str, ExecutorFactory] = {"inline": _inline, "drizzle": _drizzle, "bsp": _bsp}


def register_executor(name: str, factory: ExecutorFactory) -> None:
    """Make `RunConfig(executor=name)` run on `factory`'s QueryRun."""
    from stream_dsl.config import allow_executor

    allow_executor(name)
    EXECUTORS[name] = factory


def build_run(
    plan: Plan,
    config: RunConfig,
    output_factory: Callable[[Any, int | None], QueryOutput],
    *,
    realtime: bool,
    pool: Callable[[], Any] | None = None,
) -> QueryRun:
    """Lower an (optimized) plan with `config.workers` partitions and build its run on `config.executor`;
    with `pool` (what gives a Context's WorkerPool) a run on pipes takes warm workers from it and gives
    them back."""
    try:
        factory = EXECUTORS[config.executor]
    except KeyError:
        raise DSLError(f"unknown executor '{config.executor}'; choose one of {', '.join(EXECUTORS)}") from None
    graph = lower(plan, config.workers, state_ttl_ms=config.state_ttl_ms)
    output = output_factory(graph.graph["schema"], graph.graph.get("limit")).ordered(graph)
    check_sorted_output(output)
    prepare_sink_output(output, graph)
    run = factory(graph, config, output, realtime)
    if pool is not None and config.transport == "pipes" and hasattr(run, "pool"):
        workers = pool()
        threads = config.worker_threads
        run.pool = workers
        run.transport_factory = lambda n: workers.factory(n, threads)  # type: ignore[attr-defined]
    return run


def _prepare(plan: Plan, config: RunConfig | None) -> tuple[Plan, RunConfig]:
    config = config or RunConfig()
    if config.optimize:
        plan = optimizer.optimize(plan, config)
    return plan, config


def run_collect(
    plan: Plan,
    config: RunConfig,
    catalog: Catalog | None = None,
    on_batch: OnBatch = None,
    pool: Callable[[], Any] | None = None,
    warn_of_dead_letters: bool = False,
) -> tuple[pl.DataFrame, QueryRun, list[dict[str, Any]]]:
    """Run an (already optimized) plan to the end of its input: the result, the run and its progress.

    Bad records go where a source's `dead_letter` option says (`catalog`
    resolves sink names); without the option they are only counted, and
    with `warn_of_dead_letters` (collect()) one warning tells of them.
    """
    # collect() returns a table, not a handle to ask `why`: its batches run fused, never counted per operator
    run = build_run(plan, config.with_options(diagnose_every=0), CollectOutput, realtime=False, pool=pool)
    progress: list[dict[str, Any]] = []

    def record(report: dict[str, Any]) -> None:
        progress.append(report)
        if on_batch is not None:
            on_batch(report)

    try:
        run.dead_letter_router = dead_letter_router(run.graph, catalog=catalog, use_default=False)
        run.late_row_router = late_row_router(run.graph, catalog)
        run.open(bounded=True)
        run.run(record)
        if warn_of_dead_letters:
            _warn_of_dead_letters(run, progress)
        return run.result(), run, progress
    except DSLError:
        raise
    except Exception as exc:
        raise ExecutionError(f"query failed: {kernels.error_text(exc)}") from exc
    finally:
        run.close()


def collect(
    plan: Plan, config: RunConfig | None = None, catalog: Catalog | None = None, pool: Callable[[], Any] | None = None
) -> pl.DataFrame:
    """Run `plan` over bounded input (as fast as possible, realtime=False) and return the result.

    Append queries return every emitted row; changelog queries (non-windowed
    aggregates, EMIT CHANGES) the last value of each group.
    """
    plan, config = _prepare(plan, config)
    return run_collect(plan, in_process_if_small(plan, config), catalog, pool=pool, warn_of_dead_letters=True)[0]


def _warn_of_dead_letters(run: QueryRun, progress: list[dict[str, Any]]) -> None:
    """collect() hands back a table and nothing else, so its bad records would go unseen: one warning says how
    many, the latest (where and why) and where they went. A query that goes on logs them in bursts instead
    (`QueryHandle`)."""
    count = sum(int(report.get("dead_letters") or 0) for report in progress)
    if not count:
        return
    latest = run.dead_letters[-1] if run.dead_letters else None
    router = run.dead_letter_router
    target = router.target_of(latest.source) if latest is not None and router is not None else None
    collected_dead_letters(count, latest, describe_target(target))


SMALL_COLLECT_BYTES = 4 << 20  # files this small (in all) count as a small input too


def in_process_if_small(plan: Plan, config: RunConfig) -> RunConfig:
    """`config` with the inline executor when every source is bounded and, by the connectors' statistics,
    holds at most `config.small_collect_rows` rows (or, for files, SMALL_COLLECT_BYTES) in all.

    Starting and feeding worker processes costs 0.1–0.3 s, far more than such a query takes in one
    process, and every executor gives the same result (the core equivalence property). Only when no
    executor was asked for (`small_collect_rows` set by the Context); never for continuous queries.
    """
    limit = config.small_collect_rows
    if limit is None or config.executor == "inline":
        return config
    from optimizer.cost import statistics

    total = 0.0
    for scan in scans(plan):
        try:
            stats = statistics(scan.source)
        except DSLError:
            return config
        if stats.bounded is not True and scan.source.kind != "table":
            return config
        if stats.rows_total is not None:
            total += stats.rows_total
        elif stats.bytes is not None and stats.bytes <= SMALL_COLLECT_BYTES:
            continue
        else:
            return config
    return config.with_options(executor="inline") if total <= limit else config


def start(
    plan: Plan,
    sink: SinkLike = None,
    config: RunConfig | None = None,
    catalog: Catalog | None = None,
    *,
    name: str | None = None,
    trace: str | None = None,
    on_progress: Callable[[dict[str, Any]], Any] | None = None,
    auto_named: bool = False,
    pool: Callable[[], Any] | None = None,
) -> QueryHandle:
    """Start `plan` as a continuous query writing to `sink`; returns its QueryHandle.

    `sink` is a sink name (looked up in `catalog`), a SinkDef, a Sink object,
    a function `(batch_id, frame)` called per batch, or None for the console.
    Sources pace themselves to the wall clock unless their option
    realtime = 'false'. `trace` is a file path: when the query ends, every
    task's start and end go there in the Chrome trace format (executor/trace.py).
    `on_progress` is called with each batch's progress dict, in the query's thread.
    `auto_named`: `name` was made up (q1, ...), so files are not named after it (dead letters).
    """
    plan, config = _prepare(plan, config)
    target = resolve_sink(sink, catalog)
    recorder = recorder_for(trace, config)
    written = target if recorder is None else recorder.wrap(target)
    run = build_run(plan, config, lambda schema, limit: SinkOutput(schema, limit, written), realtime=True, pool=pool)
    if recorder is not None:
        recorder.attach(run)
    try:
        run.dead_letter_router = dead_letter_router(
            run.graph,
            catalog=catalog,
            sink=target,
            query_name=None if auto_named else name,
            checkpoint_dir=config.checkpoint_dir,
        )
        run.late_row_router = late_row_router(run.graph, catalog)
        run.open()
    except BaseException:
        run.close()
        _close_quietly(target)
        raise
    return QueryHandle(run, written, name, on_progress)._start()


def explain_analyze(plan: Plan, config: RunConfig | None = None, catalog: Catalog | None = None) -> str:
    """EXPLAIN ANALYZE: run the query over its bounded input, then the explain text with what happened.

    The metrics section sums the micro-batches (rows in and out, late rows,
    dead letters, time) and lists the rows each stage produced; on worker
    processes the scheduling metrics per stage follow (compute, scheduler
    delay, waiting for inputs, serialization).
    """
    from executor.multiproc.metrics import render_progress
    from optimizer.explain import explain

    config = config or RunConfig()
    result, run, progress = run_collect(_prepare(plan, config)[0], config, catalog)
    text = [explain(plan, config), "== Metrics ==", render_metrics(progress, result.height)]
    if config.executor != "inline":
        header = (
            f"executor={config.executor} workers={config.workers} group_size={config.group_size} "
            f"driver_messages={len(getattr(run, 'assignment_log', ()))}"
        )
        text += ["== Scheduling ==", header, render_progress(progress)]
    return "\n".join(text)


def render_metrics(reports: list[dict[str, Any]], result_rows: int) -> str:
    """Totals over micro-batch progress reports, then the rows each stage produced."""

    def total(key: str) -> int:
        return sum(int(r.get(key, 0)) for r in reports)

    duration = sum(float(r.get("duration_ms", 0.0)) for r in reports)
    lines = [
        f"batches={len(reports)} rows_in={total('rows_in')} rows_out={total('rows_out')} "
        f"result_rows={result_rows} late_rows={total('late_rows')} dead_letters={total('dead_letters')}",
        f"time={duration:.1f}ms per_batch={duration / max(len(reports), 1):.2f}ms",
    ]
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
        check_sink_function(sink)
        return FunctionSink(sink)
    raise ConnectorError(f"cannot write to {sink!r}: give a sink name, a SinkDef, a Sink or a function")


def check_sink_function(fn: Callable[..., Any]) -> None:
    """A sink function is called as fn(batch_id, frame): refuse one that cannot be, before the query starts."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or extension without a signature: trust it
    try:
        signature.bind(0, None)
    except TypeError:
        name = getattr(fn, "__name__", type(fn).__name__)
        raise ConnectorError(
            f"a sink function is called as fn(batch_id: int, frame: polars.DataFrame) for each batch, "
            f"but {name}{signature} cannot take those two arguments"
        ) from None


class FunctionSink:
    """A sink calling `fn(batch_id, frame)` per batch (like Spark's foreachBatch); a changelog's batches come
    as upsert records, the `op` column first (`connectors.upserts`)."""

    writes = UPSERT

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


__all__ = [
    "EXECUTORS",
    "QueryRun",
    "register_executor",
    "build_run",
    "run_collect",
    "collect",
    "start",
    "explain_analyze",
    "render_metrics",
    "resolve_sink",
    "FunctionSink",
    "DeadLetter",
]
