"""The Context: where a user starts. It holds the catalog and the run settings,
runs DSL scripts, and hands out Streams and Tables for the dataframe API.

Examples
--------
>>> import stream_dsl as sd
>>> ctx = sd.Context(executor="inline", workers=1)
>>> ctx.sql("CREATE TABLE users (user_id STRING, age INT) WITH (connector = 'files', path = 'u.csv', format = 'csv')")
>>> ctx.sql("DESCRIBE users")["type"].to_list()
['STRING', 'INT']
>>> ctx.table("users").filter(sd.col("age") >= 18).columns
['user_id', 'age']
"""

from __future__ import annotations

import datetime as dt
import weakref
from typing import Any, Iterable, Literal, Mapping, Sequence

import polars as pl

from stream_dsl.bind.binder import (
    RULE_SETTING_PREFIX,
    SETTINGS,
    BoundCreateSink,
    BoundCreateSource,
    BoundCreateView,
    BoundDescribe,
    BoundDescribeQuery,
    BoundStopQuery,
    BoundDrop,
    BoundExplain,
    BoundInsert,
    BoundQuery,
    BoundSet,
    BoundShow,
    BoundStatement,
    bind,
)
from stream_dsl.catalog import Catalog
from stream_dsl.config import RunConfig
from stream_dsl.frame.io import schema_of, source_definition, sql_type, watermark_of
from stream_dsl.queries import Queries
from stream_dsl.frame.stream import Stream, Table, wrap
from stream_dsl.frame.expr import to_duration_ms
from stream_dsl.errors import BindError, DSLError, PositionedError
from stream_dsl.ir import decimals
from stream_dsl.ir.dispatch import MissingCase, node_pass
from stream_dsl.ir.function_docs import describe_function, show_functions
from stream_dsl.sql.parser import parse
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.plan import Plan, Scan, is_streaming, render_plan
from stream_dsl.ir.types import Field, Schema, type_from_polars

__all__ = ["Context"]

SMALL_COLLECT_ROWS = 50_000  # a collect() over this few rows (no executor asked for) runs in-process

_TRUE = ("true", "on", "yes", "1")
_FALSE = ("false", "off", "no", "0")


def _executor_api() -> Any:
    """The executor's entry points, imported only when a query runs."""
    try:
        from executor import api
    except ModuleNotFoundError as err:
        if err.name in ("executor", "executor.api"):
            raise DSLError("no executor available yet: the module executor.api is missing") from None
        raise
    return api


class Context:
    """The entry point: a catalog of streams, tables, sinks and views, and how queries run.

    Parameters
    ----------
    workers : int
        Worker processes of the executor.
    executor : str, optional
        'drizzle' (group scheduling, the default), 'bsp' (per-stage scheduling
        by the driver) or 'inline' (one process). Without one, a `collect()`
        of bounded input of at most SMALL_COLLECT_ROWS rows runs in this
        process, where it takes milliseconds instead of the 0.1–0.3 s worker
        processes cost (results are the same on every executor).
    group_size : int or 'auto'
        Micro-batches scheduled at once; 'auto' tunes it.
    batch_interval : str, int or timedelta
        Event time one micro-batch covers: '100ms', '1s', or milliseconds.
    optimize : bool
        Run the optimizer rules.
    checkpoint_dir : str, optional
        Where a continuous query keeps its checkpoints (one directory per
        query); None turns them off. With checkpoints a query survives the
        loss of a worker and resumes after a restart of the program.
    heartbeat_timeout : float
        Seconds a worker may stay silent before it counts as dead.
    transport : str
        How the driver and the workers of 'drizzle' and 'bsp' talk:
        'pipes' (worker processes on this machine, the default) or 'ray'
        (Ray actors, on a Ray cluster's nodes; needs `stream-dsl[ray]`).
    state_ttl : str, optional
        How long a deduplication (`ROW_NUMBER() ... = 1` without windows)
        remembers a key, in event time behind the watermark: '1 hour',
        '10m'. None (the default) remembers every key forever.
    ray_address : str, optional
        With transport='ray': None starts a Ray instance in this process,
        'auto' joins the cluster this machine belongs to, 'host:port' (or
        'ray://host:port') joins that cluster.
    (Worker processes stay warm between the Context's queries: `close()`, or
    `with sd.Context() as ctx:`, ends them; so does garbage collection.)
    checkpoint_reset : bool
        Start continuous queries from the beginning on purpose: before a
        query starts, the old state of its checkpoint_dir (checkpoints,
        offset logs) is moved to `checkpoint_dir/archive/reset-<time>/`.
        Without it, a restart resumes from the newest good checkpoint, and
        refuses when checkpoints were committed but none is usable now.
    metrics_port : int, optional
        Serve Prometheus metrics of this Context's queries at
        http://127.0.0.1:<port>/metrics (0: any free port; `metrics_url`
        tells which). Needs `stream-dsl[metrics]`.
    optimizer : mapping of str to bool, optional
        Per-rule switches: `{"push_down_predicates": False}` turns that rule
        off (`optimizer.rules.RULE_NAMES` lists them). Results never change,
        only the plan; `SET optimizer.<rule> = 'false'` does the same.
    check_files : bool
        CREATE of a bounded files source checks that its path names files and
        that its format reads the first one (the default). False binds and
        plans scripts whose data is elsewhere (on the cluster, written later).
    worker_threads : int or 'auto', optional
        Polars threads in each worker process (transport 'pipes'): sets
        POLARS_MAX_THREADS there before polars starts its thread pool.
        'auto' (the default, also None): max(1, usable cores // workers),
        so workers do not compete for the cores (2 workers on 2 cores get 1
        each) and one worker keeps them all; a POLARS_MAX_THREADS already in
        the environment is kept. Workers whose count differs from this
        process's polars are forked from a fork server of their own, started
        once per process and thread count. Ray's actors are not affected.

    Examples
    --------
    >>> import stream_dsl as sd
    >>> sd.Context(workers=4, batch_interval="1s").config.batch_interval_ms
    1000
    """

    def __init__(
        self,
        workers: int = 2,
        executor: str | None = None,
        group_size: int | str = 10,
        batch_interval: str | int | dt.timedelta = "100ms",
        optimize: bool = True,
        checkpoint_dir: str | None = None,
        heartbeat_timeout: float = 30.0,
        transport: str = "pipes",
        checkpoint_reset: bool = False,
        optimizer: Mapping[str, bool] | None = None,
        ray_address: str | None = None,
        metrics_port: int | None = None,
        state_ttl: str | int | dt.timedelta | None = None,
        check_files: bool = True,
        worker_threads: int | str | None = None,
    ) -> None:
        self.config = RunConfig(
            workers=workers,
            executor=executor or "drizzle",
            small_collect_rows=SMALL_COLLECT_ROWS if executor is None else None,
            group_size=group_size,
            batch_interval_ms=to_duration_ms(batch_interval, "batch_interval"),
            optimize=optimize,
            checkpoint_dir=checkpoint_dir,
            heartbeat_timeout=heartbeat_timeout,
            transport=transport,
            checkpoint_reset=checkpoint_reset,
            disabled_rules=_disabled_rules(optimizer or {}),
            ray_address=ray_address,
            metrics_port=metrics_port,
            state_ttl_ms=None if state_ttl is None else to_duration_ms(state_ttl, "state_ttl"),
            worker_threads=worker_threads,  # type: ignore[arg-type]  # 'auto': RunConfig makes it None
        )
        self.catalog = Catalog(check_files=check_files)
        self._queries = Queries()
        self._pool: Any = None  # the warm worker processes (`_worker_pool`)
        self._queries.serve_metrics(self.config.metrics_port)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Context(workers={c.workers}, executor={c.executor!r}, group_size={c.group_size!r}, "
            f"batch_interval='{c.batch_interval_ms}ms', optimize={c.optimize})"
        )

    # ------------------------------------------------------------ the DSL

    def sql(self, text: str) -> Any:
        """Run a script of one or more statements; returns the result of the last one.

        DDL, SET and DROP return None; a query returns a Stream (a Table when it
        reads only tables); EXPLAIN a str; SHOW and DESCRIBE a polars DataFrame;
        INSERT INTO starts the query and returns its QueryHandle.

        Examples
        --------
        >>> import stream_dsl as sd
        >>> ctx = sd.Context()
        >>> ctx.sql("CREATE SINK out WITH (connector = 'console'); SHOW SINKS")["name"].to_list()
        ['out']
        """
        try:
            statements = parse(text)
        except PositionedError as err:
            raise err.with_source(text) from None
        result: Any = None
        for statement in statements:
            try:
                bound = bind(statement, self.catalog, text)
            except PositionedError as err:
                raise err.with_source(text) from None
            try:
                result = self._run(bound)
            except PositionedError as err:  # a statement that names something the Context does not have
                raise err.with_source(text) from None
        return result

    def _run(self, s: BoundStatement) -> Any:
        return run_statement(s, self)

    def _explain_statement(self, s: BoundExplain) -> str:
        inner = s.statement
        if s.analyze:
            run = getattr(_executor_api(), "explain_analyze", None)
            if run is None:
                raise DSLError("EXPLAIN ANALYZE is not available: the executor does not report metrics yet")
            text = run(inner.plan, self.config, self.catalog)
        else:
            text = self._explain(inner.plan)
        if isinstance(inner, BoundInsert):
            return f"Insert into {inner.sink.name}\n{text}"
        return text

    def _show(self, what: str) -> pl.DataFrame:
        rows: list[tuple[str, str]] = []
        if what in ("streams", "tables"):
            kind = what[:-1]
            rows = [(n, kind) for n, s in self.catalog.sources.items() if s.kind == kind]
            rows += [(n, "view") for n, p in self.catalog.views.items() if is_streaming(p) == (kind == "stream")]
        elif what == "sinks":
            rows = [(n, s.option("connector") or "") for n, s in self.catalog.sinks.items()]
        elif what == "views":
            rows = [(n, "stream" if is_streaming(p) else "table") for n, p in self.catalog.views.items()]
        elif what == "functions":
            return show_functions()
        elif what == "queries":
            return self._queries.table()
        else:
            raise DSLError(f"cannot SHOW {what.upper()}; use STREAMS, TABLES, SINKS, VIEWS, FUNCTIONS or QUERIES")
        return pl.DataFrame(
            {"name": [r[0] for r in rows], "kind": [r[1] for r in rows]}, schema={"name": pl.String, "kind": pl.String}
        )

    def _describe(self, name: str, function: bool = False) -> pl.DataFrame:
        if function:
            return describe_function(name)
        schema = self.catalog.resolve(name).schema
        types = [f.dtype.value + (" NOT NULL" if f.not_null else "") for f in schema]
        return pl.DataFrame(
            {"column": list(schema.names), "type": types}, schema={"column": pl.String, "type": pl.String}
        )

    # ------------------------------------------------------------ Python UDFs (docs/udfs.md)

    def register_function(
        self,
        name: str,
        fn: Any,
        returns: Any,
        *,
        vectorized: bool = False,
        deterministic: bool = True,
        strict: bool = False,
        skip_nulls: bool = True,
    ) -> Any:
        """Make `fn` the SQL function `name`: `fn(a, b)` per row, or `fn(Series, ...) -> Series` if `vectorized`.

        `returns`: the result type ('BIGINT', 'DOUBLE', 'VARCHAR', a DataType or a polars dtype). A row whose
        call raises gets NULL and goes to dead letters; `strict=True` stops the query instead. Returns a
        caller for the dataframe API (`double(sd.col("x"))`, also `sd.udf(name)` and `ctx.functions.<name>`).
        """
        from stream_dsl.frame.udf import register_function

        return register_function(
            name,
            fn,
            returns,
            vectorized=vectorized,
            deterministic=deterministic,
            strict=strict,
            skip_nulls=skip_nulls,
        )

    def register_aggregate(
        self, name: str, init: Any, update: Any = None, merge: Any = None, finish: Any = None, *, returns: Any
    ) -> Any:
        """An aggregate UDF of one argument: `init() -> state`, `update(state, x) -> state`,
        `merge(state, state) -> state`, `finish(state) -> value`, or an object (class) with those four methods.
        The state must be picklable: it is shuffled between workers and kept in checkpoints."""
        from stream_dsl.frame.udf import register_aggregate

        return register_aggregate(name, init, update, merge, finish, returns=returns)

    @property
    def functions(self) -> Any:
        """The registered UDFs as attributes: `ctx.functions.score(sd.col("x"))`."""
        from stream_dsl.frame.udf import Functions

        return Functions()

    # ------------------------------------------------------------ the dataframe API

    def stream(self, name: str) -> Stream:
        """The stream (or streaming view) called `name`."""
        plan = self.catalog.resolve(name)
        if not is_streaming(plan):
            raise BindError(f"'{name}' is a table, not a stream; use ctx.table('{name}')")
        return Stream(self, plan)

    def table(self, name: str) -> Table:
        """The static table (or view over tables) called `name`."""
        plan = self.catalog.resolve(name)
        if is_streaming(plan):
            raise BindError(f"'{name}' is a stream, not a table; use ctx.stream('{name}')")
        return Table(self, plan)

    def register(self, name: str, stream: Stream, *, replace: bool = True) -> Stream:
        """Make a Stream (or Table) usable from SQL as the view `name`."""
        if not isinstance(stream, Stream):
            raise DSLError(f"register needs a Stream or Table, got {type(stream).__name__}")
        self.catalog.add_view(name, stream.plan, replace=replace)
        return wrap(self, stream.plan)

    def from_polars(
        self,
        frames: pl.DataFrame | pl.LazyFrame | Sequence[pl.DataFrame],
        name: str | None = None,
        *,
        watermark: str | None = None,
        watermark_delay: str | int | dt.timedelta = "0s",
        batch_size: int | None = None,
        static: bool = False,
    ) -> Stream:
        """An in-memory stream (or, with `static=True`, a table) over polars frames.

        A list of frames gives one micro-batch per frame; `batch_size` splits
        them further into batches of at most that many rows. With a `name`
        the stream is in the catalog, usable from SQL. `watermark` names the
        TIMESTAMP column the watermark follows, `watermark_delay` behind.

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl
        >>> ctx = sd.Context()
        >>> ctx.from_polars(pl.DataFrame({"a": [1, 2]}), name="nums").schema
        {'a': Int64}
        """
        from stream_dsl.connectors import memory

        batches = _frame_list(frames)
        schema = _frame_schema(batches[0])
        batches = [_conform(f, schema) for f in batches]
        if batch_size is not None:
            if not isinstance(batch_size, int) or batch_size < 1:
                raise DSLError(f"batch_size must be a positive integer, got {batch_size!r}")
            batches = [part for f in batches for part in (f.iter_slices(batch_size) if f.height else [f])]
        kind = "table" if static else "stream"
        wm = None
        if watermark is not None:
            if static:
                raise DSLError("a static table has no watermark")
            wm = watermark_of(watermark, to_duration_ms(watermark_delay, "watermark_delay", allow_zero=True), schema)
        id = memory.register(memory.new_id(name or "frame"), batches)
        source = SourceDef(name or id.strip("_"), kind, schema, (("connector", "memory"), ("id", id)), wm)
        if name is not None:
            self.catalog.add_source(source, replace=True)
        return wrap(self, Scan(source))

    def table_from_polars(self, name: str, frame: pl.DataFrame | pl.LazyFrame) -> Table:
        """A static in-memory table called `name`."""
        table = self.from_polars(frame, name, static=True)
        assert isinstance(table, Table)
        return table

    def from_iterable(
        self,
        rows: Iterable[Mapping[str, Any] | Sequence[Any]],
        schema: Mapping[str, Any] | Sequence[tuple[str, Any]],
        name: str | None = None,
        **options: Any,
    ) -> Stream:
        """An in-memory stream from rows (dicts or tuples) and a schema of SQL or polars types.

        Examples
        --------
        >>> import stream_dsl as sd
        >>> ctx = sd.Context()
        >>> ctx.from_iterable([(1, "a")], schema={"id": "BIGINT", "tag": sd.STRING}).columns
        ['id', 'tag']
        """
        pairs = list(schema.items()) if isinstance(schema, Mapping) else list(schema)
        if not pairs:
            raise DSLError("from_iterable needs a schema with at least one column")
        polars_schema = {n: decimals.read_dtype(sql_type(t)) for n, t in pairs}
        data = list(rows)
        orient: Literal["row"] | None = "row" if data and not isinstance(data[0], Mapping) else None
        try:
            frame = pl.DataFrame(data, schema=polars_schema, orient=orient)
        except (pl.exceptions.PolarsError, TypeError, ValueError) as err:
            raise DSLError(f"cannot build a frame from these rows: {str(err).splitlines()[0]}") from None
        try:
            frame = decimals.narrow_frame(frame, {n: sql_type(t) for n, t in pairs})
        except ValueError as err:
            raise DSLError(f"cannot build a frame from these rows: {err}") from None
        return self.from_polars(frame, name, **options)

    # ------------------------------------------------------------ readers: streams from Python, no SQL text

    def read_files(
        self,
        path: str,
        *,
        format: str | None = None,
        schema: Mapping[str, Any] | None = None,
        watch: bool = False,
        watermark: str | None = None,
        watermark_delay: str | int | dt.timedelta = "0s",
        name: str | None = None,
        table: bool = False,
        **options: Any,
    ) -> Stream:
        """A stream (or, with `table=True`, a static table) over ndjson, csv or parquet files.

        The same source as `CREATE STREAM name (...) WITH (connector = 'files', path = ...)`; `options`
        are that connector's others (max_files_per_batch, header, delimiter, splits, dead_letter, ...).
        Without `schema` the columns and types come from the first file (parquet's footer, or the
        first rows of ndjson and csv). `watermark` names the TIMESTAMP column the watermark follows,
        `watermark_delay` behind. Registered as `name` only when one is given.

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl, tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> pl.DataFrame({"k": ["a", "b"], "n": [1, 2]}).write_parquet(os.path.join(folder, "p.parquet"))
        >>> sd.Context(executor="inline").read_files(folder).collect()["n"].to_list()
        [1, 2]
        """
        settings = {"connector": "files", "path": path, "format": format, "watch": watch or None, **options}
        label = name or "files"
        # without a schema, binding infers the columns from the first file, as CREATE STREAM without columns does
        definition = self._source(label, schema, settings, table, watermark, watermark_delay, name is not None)
        return wrap(self, Scan(definition))

    def read_redis(
        self,
        stream: str,
        *,
        schema: Mapping[str, Any],
        url: str = "redis://127.0.0.1:6379",
        watermark: str | None = None,
        watermark_delay: str | int | dt.timedelta = "0s",
        name: str | None = None,
        **options: Any,
    ) -> Stream:
        """A stream over a Redis stream (XREADGROUP), as `CREATE STREAM ... WITH (connector = 'redis')`;
        `options` are that connector's others (group, consumer, format, start, batch_size, ...)."""
        settings = {"connector": "redis", "url": url, "stream": stream, **options}
        definition = self._source(name or stream, schema, settings, False, watermark, watermark_delay, name is not None)
        return wrap(self, Scan(definition))

    def read_kafka(
        self,
        topic: str,
        *,
        schema: Mapping[str, Any],
        bootstrap_servers: str,
        watermark: str | None = None,
        watermark_delay: str | int | dt.timedelta = "0s",
        name: str | None = None,
        **options: Any,
    ) -> Stream:
        """A stream over a Kafka topic, as `CREATE STREAM ... WITH (connector = 'kafka')`; `options` are
        that connector's others (group, partitions, start, format, bounded, ...)."""
        settings = {"connector": "kafka", "bootstrap_servers": bootstrap_servers, "topic": topic, **options}
        definition = self._source(name or topic, schema, settings, False, watermark, watermark_delay, name is not None)
        return wrap(self, Scan(definition))

    def _source(
        self,
        name: str,
        schema: Mapping[str, Any] | None,
        options: Mapping[str, Any],
        table: bool,
        watermark: str | None,
        watermark_delay: str | int | dt.timedelta,
        register: bool,
    ) -> SourceDef:
        """The definition CREATE STREAM (or TABLE) would give; in the catalog when `register`."""
        definition = source_definition(
            self.catalog,
            name,
            None if schema is None else schema_of(schema),
            options,
            kind="table" if table else "stream",
            watermark=watermark,
            watermark_delay=watermark_delay,
        )
        if register:
            self.catalog.add_source(definition, replace=True)
        return definition

    # ------------------------------------------------------------ running queries

    @property
    def queries(self) -> list[Any]:
        """The continuous queries started in this Context that are still running (QueryHandles)."""
        return self._queries.active()

    def query(self, name: str | None = None) -> Any:
        """The newest query called `name` (without one: the newest query), running or ended; its QueryHandle."""
        if name is not None:
            return self._queries.named(name)
        if not self._queries.handles:
            raise DSLError("no query was started in this Context")
        return self._queries.handles[-1]

    def await_any_termination(self, timeout: float | None = None) -> Any:
        """Wait until a query of this Context ends; its QueryHandle (None when `timeout` passed first).

        A query that ended before the call and was not returned yet counts (as in
        Spark's awaitAnyTermination); `reset_terminated()` forgets those. A failed query re-raises
        its error.
        """
        return self._queries.await_any(timeout)

    def reset_terminated(self) -> None:
        """Forget the queries that ended, so `await_any_termination` waits for a new end."""
        self._queries.reset_terminated()

    @property
    def metrics_url(self) -> str | None:
        """Where the Prometheus metrics are served (`metrics_port`), or None."""
        exporter = self._queries.exporter
        return None if exporter is None else exporter.url

    def add_listener(self, listener: Any) -> None:
        """Call `listener(progress)` with every progress dict of every query started here from now on
        (each dict names its query: `query_name`, `query_id`). A listener that raises is logged, not fatal."""
        if not callable(listener):
            raise DSLError(f"a listener is a function (progress dict), got {type(listener).__name__}")
        self._queries.listeners.append(listener)

    def remove_listener(self, listener: Any) -> None:
        self._queries.listeners.remove(listener)

    # ------------------------------------------------------------ running (used by Stream)

    def _explain(self, plan: Plan, format: str = "text", disabled: Iterable[str] = ()) -> str:
        """The explain text of a plan (or `format="dot"`: its stage DAG as Graphviz DOT).

        `disabled` names optimizer rules to switch off for this explain only.
        """
        try:
            from optimizer.explain import explain
            from optimizer.rules import check_rule_names
        except ImportError:
            return render_plan(plan)
        config = self.config
        if disabled:
            config = config.with_options(disabled_rules=config.disabled_rules | check_rule_names(disabled))
        return explain(plan, config, format=format)

    def _collect(self, plan: Plan) -> pl.DataFrame:
        return _executor_api().collect(plan, self.config, self.catalog, pool=self._worker_pool)

    def _worker_pool(self) -> Any:
        """The Context's warm worker processes (`executor/multiproc/pool.py`), made with the first query that
        needs workers; they end with `close()` or when the Context is garbage collected."""
        if self._pool is None:
            from executor.multiproc.pool import WorkerPool

            self._pool = WorkerPool()
            weakref.finalize(self, self._pool.close)
        return self._pool

    def close(self) -> None:
        """End the Context's idle worker processes (running queries are not touched)."""
        if self._pool is not None:
            self._pool.close()

    def __enter__(self) -> "Context":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _start(
        self,
        plan: Plan,
        sink: Any,
        *,
        trace: str | None = None,
        checkpoint_dir: str | None = None,
        name: str | None = None,
        on_progress: Any = None,
    ) -> Any:
        """Start a continuous query; `sink` is a sink name, a SinkDef, a Sink, a function or None (console).

        `trace`: a file to write the Chrome trace of the query's tasks to when it ends.
        `checkpoint_dir`: this query's checkpoint directory, instead of the context's.
        `name`: unique among the running queries; `on_progress(progress)`: called per batch.
        """
        self._queries.check_name(name)
        auto_named = name is None
        name = name or self._queries.next_name()
        config = self.config if checkpoint_dir is None else self.config.with_options(checkpoint_dir=checkpoint_dir)
        if config.checkpoint_reset and config.checkpoint_dir:
            from executor.recovery.survey import reset

            reset(config.checkpoint_dir)
        options: dict[str, Any] = {
            "name": name,
            "on_progress": self._queries.notifier(on_progress),
            "auto_named": auto_named,
            "pool": self._worker_pool,
        }
        if trace is not None:
            options["trace"] = trace
        return self._queries.add(_executor_api().start(plan, sink, config, self.catalog, **options), sink)


# ---------------------------------------------------------------- running statements: one case per statement


@node_pass("statement")
def run_statement(s: BoundStatement, ctx: Context) -> Any:
    """Run one bound statement in `ctx`; its result (None for DDL, SET and DROP)."""
    raise MissingCase(run_statement, s)


@run_statement.register
def _(s: BoundQuery, ctx: Context) -> Any:
    return wrap(ctx, s.plan)


@run_statement.register
def _(s: BoundInsert, ctx: Context) -> Any:
    return ctx._start(s.plan, s.sink)


@run_statement.register
def _(s: BoundExplain, ctx: Context) -> Any:
    return ctx._explain_statement(s)


@run_statement.register
def _(s: BoundCreateSource, ctx: Context) -> Any:
    ctx.catalog.add_source(s.source, replace=s.replace, if_not_exists=s.if_not_exists)


@run_statement.register
def _(s: BoundCreateSink, ctx: Context) -> Any:
    ctx.catalog.add_sink(s.sink, replace=s.replace, if_not_exists=s.if_not_exists)


@run_statement.register
def _(s: BoundCreateView, ctx: Context) -> Any:
    ctx.catalog.add_view(s.name, s.plan, replace=s.replace)


@run_statement.register
def _(s: BoundShow, ctx: Context) -> Any:
    return ctx._show(s.what)


@run_statement.register
def _(s: BoundDescribe, ctx: Context) -> Any:
    return ctx._describe(s.name, s.function)


@run_statement.register
def _(s: BoundDescribeQuery, ctx: Context) -> Any:
    return ctx._queries.describe(s.name, s.span)


@run_statement.register
def _(s: BoundStopQuery, ctx: Context) -> Any:
    ctx._queries.stop(s.name, s.span)


@run_statement.register
def _(s: BoundSet, ctx: Context) -> Any:
    if s.key.startswith(RULE_SETTING_PREFIX):
        ctx.config = _switch_rule(ctx.config, s.key[len(RULE_SETTING_PREFIX) :], s.value)
    else:
        ctx.config = ctx.config.with_options(**_setting(s.key, s.value))
        if s.key == "metrics_port":
            ctx._queries.serve_metrics(ctx.config.metrics_port)


@run_statement.register
def _(s: BoundDrop, ctx: Context) -> Any:
    ctx.catalog.drop(s.kind, s.name, if_exists=s.if_exists)


# ---------------------------------------------------------------- helpers


def _flag(name: str, value: object) -> bool:
    """A switch's value: a bool, or the text of one ('true', 'off', ...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise DSLError(f"{name} must be true or false, got '{value}'")
    return text in _TRUE


def _disabled_rules(switches: Mapping[str, object]) -> frozenset[str]:
    """The rules `Context(optimizer={rule: on})` switches off; unknown rule names are errors."""
    if not isinstance(switches, Mapping):
        raise DSLError(f"optimizer must map rule names to true or false, got {type(switches).__name__}")
    if not switches:
        return frozenset()
    from optimizer.rules import check_rule_names

    check_rule_names(switches)
    return frozenset(name for name, on in switches.items() if not _flag(f"optimizer.{name}", on))


def _switch_rule(config: RunConfig, rule: str, value: str) -> RunConfig:
    """`SET optimizer.<rule> = 'false'` (or 'true'): `config` with that rule off (or on)."""
    from optimizer.rules import check_rule_names

    check_rule_names([rule])
    on = _flag(f"{RULE_SETTING_PREFIX}{rule}", value)
    disabled = config.disabled_rules - {rule} if on else config.disabled_rules | {rule}
    return config.with_options(disabled_rules=disabled)


def _setting(key: str, value: str) -> dict[str, Any]:
    """A SET statement's text value, converted for RunConfig."""
    text = value.strip()
    if key == "workers":
        if not text.isdigit():
            raise DSLError(f"workers must be a positive integer, got '{value}'")
        return {"workers": int(text)}
    if key == "group_size":
        if text.lower() == "auto":
            return {"group_size": "auto"}
        if not text.isdigit():
            raise DSLError(f"group_size must be a positive integer or 'auto', got '{value}'")
        return {"group_size": int(text)}
    if key == "batch_interval":
        return {"batch_interval_ms": to_duration_ms(text, "batch_interval")}
    if key == "optimize":
        if text.lower() not in _TRUE + _FALSE:
            raise DSLError(f"optimize must be true or false, got '{value}'")
        return {"optimize": text.lower() in _TRUE}
    if key == "executor":  # asked for by name: every query runs on it, however small
        return {"executor": text.lower(), "small_collect_rows": None}
    if key == "checkpoint_dir":
        return {"checkpoint_dir": None if text.lower() in ("", "none", "null") else text}
    if key == "checkpoint_reset":
        if text.lower() not in _TRUE + _FALSE:
            raise DSLError(f"checkpoint_reset must be true or false, got '{value}'")
        return {"checkpoint_reset": text.lower() in _TRUE}
    if key == "heartbeat_timeout":  # '30s', '500ms' or seconds
        seconds = float(text) if text.replace(".", "", 1).isdigit() else to_duration_ms(text, key) / 1000.0
        return {"heartbeat_timeout": seconds}
    if key == "transport":
        return {"transport": text.lower()}
    if key == "state_ttl":  # '1 hour', '10m', or none
        return {"state_ttl_ms": None if text.lower() in ("", "none", "null") else to_duration_ms(text, key)}
    if key == "ray_address":
        return {"ray_address": None if text.lower() in ("", "none", "null", "local") else text}
    if key == "metrics_port":
        if text.lower() in ("", "none", "null", "off"):
            return {"metrics_port": None}
        if not text.isdigit():
            raise DSLError(f"metrics_port must be a port number, or 'off', got '{value}'")
        return {"metrics_port": int(text)}
    if key == "diagnose_every":  # count rows per operator on every n-th batch, for `why` (0: never)
        if not text.isdigit():
            raise DSLError(f"diagnose_every must be 0 (never) or a positive integer, got '{value}'")
        return {"diagnose_every": int(text)}
    raise DSLError(f"unknown setting '{key}'; settings: {', '.join(SETTINGS)}")


def _frame_list(frames: Any) -> list[pl.DataFrame]:
    if isinstance(frames, (pl.DataFrame, pl.LazyFrame)):
        frames = [frames]
    items = [f.collect() if isinstance(f, pl.LazyFrame) else f for f in frames]
    if not items:
        raise DSLError("from_polars needs at least one frame")
    for f in items:
        if not isinstance(f, pl.DataFrame):
            raise DSLError(f"from_polars needs polars DataFrames, got {type(f).__name__}")
    return items


def _frame_schema(frame: pl.DataFrame) -> Schema:
    fields = []
    for name, dtype in frame.schema.items():
        try:
            fields.append(Field(name, type_from_polars(dtype)))
        except TypeError:
            raise DSLError(f"column '{name}' has polars type {dtype}, which has no SQL type; cast it first") from None
    return Schema(tuple(fields))


def _conform(frame: pl.DataFrame, schema: Schema) -> pl.DataFrame:
    """`frame` with exactly the schema's columns, cast to their SQL types' polars dtypes."""
    if frame.columns != list(schema.names):
        raise DSLError(f"all frames must have the columns {', '.join(schema.names)}; got {', '.join(frame.columns)}")
    try:
        return frame.select([pl.col(f.name).cast(f.dtype.polars) for f in schema])
    except pl.exceptions.PolarsError as err:
        raise DSLError(f"cannot read frame as ({schema}): {str(err).splitlines()[0]}") from None
