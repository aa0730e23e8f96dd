"""The dataframe API: Stream, Table and GroupBy, polars-style, over the logical plan.

Every method returns a new immutable wrapper around a new plan, built with
the binder's shared builders (`binder_plans`), so a query written here and
the same query written in the DSL give equal plans (`==`). Expressions are
`stream_dsl.frame.expr.Expr` objects, bound against the input schema.

Examples
--------
>>> import stream_dsl as sd
>>> import polars as pl
>>> ctx = sd.Context(executor="inline", workers=1)
>>> clicks = ctx.from_polars(pl.DataFrame({"user": ["a", "b", "a"], "ms": [10, 20, 30]}), name="clicks")
>>> q = clicks.filter(sd.col("ms") > 15).group_by("user").agg(sd.count().alias("n"))
>>> q.columns
['user', 'n']
>>> print(q.plan_text())
Aggregate keys=[user] aggs=[n := count(*)] emit=changes
  Filter (ms > 15)
    Scan stream clicks
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import polars as pl

from stream_dsl.sql import ast
from stream_dsl.ir import expr as E
from stream_dsl.bind import typecheck as tc
from stream_dsl.bind.expr import (
    ExprBinder,
    bind_predicate,
    first_column_name,
    generated_name,
    has_aggregate,
    is_window_call,
)
from stream_dsl.bind.plans import OutputColumn, bind_window, build_join, build_union, plan_aggregate_query, resolve_emit
from stream_dsl.bind.scope import Scope, match_names
from stream_dsl.ir.column_names import is_reserved, reserved_message
from stream_dsl.frame.expr import Expr, column_node, value_node, col
from stream_dsl.frame.interval import interval_bounds
from stream_dsl.errors import DSLError, did_you_mean
from stream_dsl.ir.plan import (
    WINDOW_END,
    WINDOW_START,
    Aggregate,
    Distinct,
    Filter,
    Limit,
    Plan,
    Project,
    Sort,
    SortKey,
    is_streaming,
    project,
    render_plan,
    with_inputs,
)
from stream_dsl.ir.types import DataType

if TYPE_CHECKING:
    from stream_dsl.context import Context

__all__ = ["Stream", "Table", "GroupBy", "wrap"]


def wrap(ctx: "Context", plan: Plan) -> "Stream":
    """A Table when the plan reads static tables only, else a Stream."""
    return Stream(ctx, plan) if is_streaming(plan) else Table(ctx, plan)


def _flatten(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out.extend(_flatten(item))
        else:
            out.append(item)
    return out


def _as_exprs(items: Iterable[Any], named: dict[str, Any]) -> list[Expr]:
    """Positional items (strings are column names) and keyword items (named outputs) as Exprs."""
    exprs = [x if isinstance(x, Expr) else Expr(column_node(x)) for x in _flatten(items)]
    return exprs + [(v if isinstance(v, Expr) else Expr(value_node(v))).alias(k) for k, v in named.items()]


def _api_name(e: Expr, bound: E.Expr, position: int) -> str:
    """The output name polars would give: the alias, else the first column read.

    An expression that is exactly an aggregate is named like the DSL names
    it (`count`, `sum_price`), so group_by without aliases mirrors SQL.
    """
    if e.name is not None:
        return e.name
    if isinstance(bound, (E.Agg, E.Column)):
        return generated_name(bound) or f"_col{position + 1}"
    return first_column_name(e.node) or generated_name(bound) or f"_col{position + 1}"


def _check_unique(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if is_reserved(n):
            raise DSLError(reserved_message(n, "output column"))
        if n in seen:
            raise DSLError(f"duplicate output column name '{n}'; use .alias() to give each column its own name")
        seen.add(n)


class Stream:
    """A continuous query: an immutable wrapper of a context and a logical plan.

    Build one with `ctx.stream(name)`, `ctx.sql(...)`, `ctx.from_polars(...)`,
    then chain `filter`, `select`, `with_columns`, `join`, `group_by(...).agg`,
    `union`, `distinct`, `limit`. Nothing runs until `collect()` or `start()`.
    """

    __slots__ = ("_ctx", "_plan")

    def __init__(self, ctx: "Context", plan: Plan) -> None:
        self._ctx = ctx
        self._plan = plan

    # ------------------------------------------------------------ properties

    @property
    def plan(self) -> Plan:
        """The logical plan this query stands for."""
        return self._plan

    @property
    def schema(self) -> dict[str, pl.DataType]:
        """Column names and their polars dtypes, like `polars.DataFrame.schema`."""
        return self._plan.schema.to_polars()

    @property
    def columns(self) -> list[str]:
        return list(self._plan.schema.names)

    @property
    def dtypes(self) -> list[pl.DataType]:
        return list(self.schema.values())

    @property
    def is_streaming(self) -> bool:
        """Whether the query reads a stream (a Table reads static tables only)."""
        return is_streaming(self._plan)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} [{self._plan.schema}]>\n{render_plan(self._plan)}"

    def plan_text(self) -> str:
        """The logical plan in the canonical text (before optimization)."""
        return render_plan(self._plan)

    def _derive(self, plan: Plan) -> "Stream":
        return wrap(self._ctx, plan)

    def _scope(self) -> Scope:
        return Scope.from_schema(self._plan.schema)

    # ------------------------------------------------------------ row operations

    def filter(self, *predicates: Any, **constraints: Any) -> "Stream":
        """Keep the rows where every predicate holds (`name=value` means `col(name) == value`).

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl
        >>> clicks = sd.Context().from_polars(pl.DataFrame({"user": ["a", "b"], "ms": [10, 2500]}))
        >>> print(clicks.filter(sd.col("ms") > 100, user="b").plan_text())  # doctest: +ELLIPSIS
        Filter ((ms > 100) AND (user = 'b'))
          Scan stream frame_...
        """
        parts = [p if isinstance(p, Expr) else Expr(column_node(p)) for p in _flatten(predicates)]
        parts += [col(k) == v for k, v in constraints.items()]
        if not parts:
            raise DSLError("filter needs at least one predicate")
        scope = self._scope()
        bound = [bind_predicate(p.node, scope, "filter") for p in parts]
        condition = bound[0]
        for b in bound[1:]:
            condition = tc.binary("AND", condition, b)
        return self._derive(Filter(self._plan, condition))

    def select(self, *exprs: Any, **named: Any) -> "Stream":
        """Compute exactly these columns; strings are column names, keywords name outputs.

        With aggregates (`sd.count()`, `sd.col("x").sum()`) this is a global
        aggregation, like `SELECT COUNT(*) FROM ...`.

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl
        >>> clicks = sd.Context().from_polars(pl.DataFrame({"user": ["a", "b"], "ms": [10, 2500]}))
        >>> clicks.select("user", (sd.col("ms") / 1000).alias("seconds")).schema
        {'user': String, 'seconds': Float64}
        >>> clicks.select(sd.count(), sd.col("ms").max()).columns
        ['count', 'max_ms']
        """
        items = _as_exprs(exprs, named)
        if not items:
            raise DSLError("select needs at least one column")
        if any(has_aggregate(e.node) for e in items):
            return GroupBy(self, [], None).agg(*items)
        outputs = self._bind_outputs(items, ExprBinder(self._scope(), clause="select"))
        return self._derive(project(self._plan, [E.NamedExpr(o.name, o.expr) for o in outputs]))

    def _bind_outputs(self, items: Sequence[Expr], binder: ExprBinder) -> list[OutputColumn]:
        outputs: list[OutputColumn] = []
        for e in items:
            if isinstance(e.node, ast.Star):
                outputs += [OutputColumn(c.name, c) for c in binder.scope.expand_star()]
                continue
            bound = binder.bind(e.node)
            outputs.append(OutputColumn(_api_name(e, bound, len(outputs)), bound))
        _check_unique([o.name for o in outputs])
        return outputs

    def with_columns(self, *exprs: Any, **named: Any) -> "Stream":
        """Add columns, or replace the ones with the same name in place (like polars).

        Every expression reads the input columns, not the other new ones.

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl
        >>> clicks = sd.Context().from_polars(pl.DataFrame({"user": ["a", "b"], "ms": [10, 2500]}))
        >>> clicks.with_columns(sd.col("ms") * 2, seconds=sd.col("ms") / 1000).columns
        ['user', 'ms', 'seconds']
        """
        items = _as_exprs(exprs, named)
        if any(has_aggregate(e.node) for e in items):
            raise DSLError("with_columns does not take aggregates; use group_by(...).agg(...)")
        new = self._bind_outputs(items, ExprBinder(self._scope(), clause="with_columns"))
        exprs_out = [E.NamedExpr(f.name, E.Column(f.name, f.dtype)) for f in self._plan.schema]
        index = {n.name: i for i, n in enumerate(exprs_out)}
        for o in new:
            if o.name in index:
                exprs_out[index[o.name]] = E.NamedExpr(o.name, o.expr)
            else:
                exprs_out.append(E.NamedExpr(o.name, o.expr))
        return self._derive(project(self._plan, exprs_out))

    def rename(self, mapping: dict[str, str]) -> "Stream":
        """Rename columns: `{"old": "new"}`."""
        scope = self._scope()
        old = {scope.resolve((k,)).name: v for k, v in mapping.items()}
        exprs = [E.NamedExpr(old.get(f.name, f.name), E.Column(f.name, f.dtype)) for f in self._plan.schema]
        _check_unique([n.name for n in exprs])
        return self._derive(project(self._plan, exprs))

    def drop(self, *columns: str) -> "Stream":
        """Every column except these."""
        scope = self._scope()
        gone = {scope.resolve((c,)).name for c in _flatten(columns)}
        return self._derive(
            project(
                self._plan,
                [E.NamedExpr(f.name, E.Column(f.name, f.dtype)) for f in self._plan.schema if f.name not in gone],
            )
        )

    # ------------------------------------------------------------ joins, unions

    def join(
        self,
        other: "Stream",
        on: Any = None,
        *,
        left_on: Any = None,
        right_on: Any = None,
        how: str = "inner",
        suffix: str = "_right",
        within: Any = None,
        time: str | None = None,
        left_time: str | None = None,
        right_time: str | None = None,
    ) -> "Stream":
        """Join with another Stream or Table on equal keys; `how` as polars names it.

        Two streams join with a time bound (an interval join, `frame/interval.py`):
        `within=("-5s", "10s")` keeps pairs whose right time minus left time is in
        [-5s, 10s]; `time="ts"` names both sides' time column (or `left_time=` and
        `right_time=`), like SQL's `b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '10' SECOND`.

        `how`: 'inner', 'left', 'right', 'full' (SQL's FULL OUTER) or 'cross'
        (no keys). `on` names keys both sides share; each appears once, like
        SQL USING (for 'right' and 'full', the key of either side that is not
        NULL). `left_on`/`right_on` keep both key columns, like SQL ON. Right
        columns whose names clash get `suffix`. One side must be a table; a
        'right' or 'full' join with a stream emits the table rows no stream
        row matched at the end of input (optimizer/physical/outer_joins.py).

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl
        >>> ctx = sd.Context()
        >>> events = ctx.from_polars(pl.DataFrame({"ad_id": ["x"], "user_id": ["u"]}))
        >>> campaigns = ctx.table_from_polars("campaigns", pl.DataFrame({"ad_id": ["x"], "user_id": ["c"]}))
        >>> events.join(campaigns, on="ad_id").columns
        ['ad_id', 'user_id', 'user_id_right']
        >>> events.join(campaigns, left_on="ad_id", right_on="ad_id").columns
        ['ad_id', 'user_id', 'ad_id_right', 'user_id_right']
        """
        if not isinstance(other, Stream):
            raise DSLError(f"join needs a Stream or Table, got {type(other).__name__}")
        if on is not None and (left_on is not None or right_on is not None):
            raise DSLError("join takes either on= or left_on= and right_on=, not both")
        if how == "outer":
            raise DSLError("join how='outer' is how='full' (polars' name for a full outer join)")
        if how == "cross":
            if on is not None or left_on is not None or right_on is not None:
                raise DSLError("a cross join takes no keys: drop on=, left_on= and right_on=")
            return self._derive(build_join(self._plan, other._plan, "cross", (), (), suffix=suffix).plan)
        if on is not None:
            keys = _key_names(on)
            left_keys, right_keys, keep = keys, keys, False
        elif left_on is not None and right_on is not None:
            left_keys, right_keys, keep = _key_names(left_on), _key_names(right_on), True
        else:
            raise DSLError("join needs on= (shared key names) or both left_on= and right_on=")
        left_scope, right_scope = self._scope(), other._scope()
        lk = [left_scope.resolve((k,)).name for k in left_keys]
        rk = [right_scope.resolve((k,)).name for k in right_keys]
        interval = None
        if within is not None or time is not None or left_time is not None or right_time is not None:
            bounds = interval_bounds(within, time, left_time, right_time)
            interval = replace(
                bounds,
                left_time=left_scope.resolve((bounds.left_time,)).name,
                right_time=right_scope.resolve((bounds.right_time,)).name,
            )
        result = build_join(
            self._plan, other._plan, how, lk, rk, keep_right_keys=keep, suffix=suffix, interval=interval
        )
        plan = result.plan
        if result.own_keys:  # each side's own key of an outer `on=` join is for SQL's qualified names only
            own = {name for _, _, left_own, right_own in result.own_keys for name in (left_own, right_own)}
            plan = project(
                plan, [E.NamedExpr(f.name, E.Column(f.name, f.dtype)) for f in plan.schema if f.name not in own]
            )
        return self._derive(plan)

    def union(self, *others: "Stream", distinct: bool = False) -> "Stream":
        """All rows of this and the other inputs (UNION ALL); `distinct=True` is UNION.

        Columns match by position and take this input's names.
        """
        if not others:
            raise DSLError("union needs at least one other Stream")
        return self._derive(build_union([self._plan] + [o._plan for o in others], distinct=distinct))

    def distinct(self) -> "Stream":
        """Each distinct row once (SELECT DISTINCT)."""
        return self._derive(Distinct(self._plan))

    def unique(
        self,
        subset: str | Sequence[str] | None = None,
        *,
        keep: str = "any",
        order_by: str | Sequence[str] | None = None,
        ttl: str | int | None = None,
    ) -> "Stream":
        """Each distinct row once (no `subset`), or the first row per key of `subset` (deduplication).

        `order_by` names the event-time column that says which row is first
        (ROW_NUMBER() OVER (PARTITION BY subset ORDER BY order_by) = 1); `ttl`
        bounds how long a key is remembered (event time behind the watermark).
        `keep='last'` is supported per window (subset with window_start, window_end).
        """
        if subset is None and order_by is None:
            return self.distinct()
        from stream_dsl.frame.ranking import unique

        return self._derive(unique(self._plan, subset or [], "first" if keep == "any" else keep, order_by, ttl))

    def top_k(
        self,
        k: int,
        *,
        by: str | Sequence[str],
        partition_by: str | Sequence[str] | None = None,
        descending: bool | Sequence[bool] = True,
        number: str | None = None,
    ) -> "Stream":
        """The first `k` rows of each window by `by` (largest first unless descending=False).

        Over a windowed aggregate that emits on window close; `partition_by`
        adds keys to window_start and window_end; `number` names a column
        holding each row's rank (1..k), as ROW_NUMBER() AS number.
        """
        from stream_dsl.frame.ranking import top_k

        return self._derive(top_k(self._plan, k, by, partition_by, descending, number))

    def sort(
        self,
        by: str | Sequence[str],
        *more_by: str,
        descending: bool | Sequence[bool] = False,
        nulls_last: bool | Sequence[bool] = True,
    ) -> "Stream":
        """Rows ordered by output columns (ORDER BY), as polars' `sort`.

        collect() sorts the whole result (a later `limit` takes its first
        rows); a continuous query sorts each micro-batch. Only as the last
        step, before `limit`.
        """
        names = [by] if isinstance(by, str) else list(by)
        names += list(more_by)
        if not names or not all(isinstance(n, str) for n in names):
            raise DSLError(f"sort needs column names, got {by!r}")
        desc = _per_column(descending, names, "descending")
        last = _per_column(nulls_last, names, "nulls_last")
        columns = self._plan.schema.names
        keys = []
        for name, descends, nulls_at_end in zip(names, desc, last):
            found = match_names(name, columns)
            if len(found) != 1:
                raise DSLError(f"sort: no column '{name}'{did_you_mean(name, columns)}; columns: {', '.join(columns)}")
            keys.append(SortKey(found[0], descends, not nulls_at_end))
        return self._derive(Sort(self._plan, tuple(keys)))

    def limit(self, n: int) -> "Stream":
        """The first `n` rows, then the query ends."""
        if not isinstance(n, int) or n < 0:
            raise DSLError(f"limit needs a non-negative integer, got {n!r}")
        return self._derive(Limit(self._plan, n))

    def head(self, n: int = 5) -> "Stream":
        return self.limit(n)

    def explode(self, column: str, *, empty_as_null: bool = False, keep_nulls: bool = True) -> "Stream":
        """A row per element of list `column`, which then holds the element (polars' explode; SQL's UNNEST).

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl
        >>> s = sd.Context().from_polars(pl.DataFrame({"k": ["a", "b"], "tags": [["x", "y"], []]}))
        >>> s.explode("tags").collect().rows()
        [('a', 'x'), ('a', 'y')]
        """
        from stream_dsl.frame.explode import explode_plan

        return self._derive(explode_plan(self._plan, column, empty_as_null, keep_nulls))

    def window(self, window: Expr) -> "Stream":
        """Each row once per window that holds it, with window_start, window_end and window_time added.

        The window table function of SQL (`FROM TABLE(HOP(TABLE t, ...))`):
        `sd.tumble` gives one row per row, `sd.hop` and `sd.cumulate` one per
        window; window_time is window_end minus 1 ms. A row with no event time
        is in no window. `sd.session` needs an aggregation: use `group_by`.

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl, datetime as dt
        >>> frame = pl.DataFrame({"k": ["a"], "ts": [dt.datetime(2024, 1, 1, 0, 0, 7)]})
        >>> rows = sd.Context().from_polars(frame).window(sd.hop("ts", "5s", "10s"))
        >>> rows.columns
        ['k', 'ts', 'window_start', 'window_end', 'window_time']
        >>> sorted(rows.collect().select(pl.col("window_start", "window_end").dt.second()).rows())
        [(0, 10), (5, 15)]
        """
        from stream_dsl.bind.window_tvf import window_rows

        node = window.node if isinstance(window, Expr) else None
        if not is_window_call(node) or not node.args or not isinstance(node.args[0], ast.Identifier):
            raise DSLError("window takes sd.tumble, sd.hop or sd.cumulate over a column")
        tvf = ast.WindowTVF(node.name, ast.TableRef(""), node.args[0], tuple(node.args[1:]))
        plan, _ = window_rows(tvf, self._plan, self._scope())
        return self._derive(plan)

    # ------------------------------------------------------------ aggregation

    def group_by(self, *keys: Any, emit: str | None = None) -> "GroupBy":
        """Group by columns or expressions and at most one window (`sd.tumble`, `sd.hop`, `sd.session`).

        `emit` is 'final' (each window once, when it closes; the default for
        windows) or 'changes' (per batch, every group it changed).

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl, datetime as dt
        >>> frame = pl.DataFrame({"campaign_id": ["c"], "event_time": [dt.datetime(2024, 1, 1)]})
        >>> events = sd.Context().from_polars(frame, watermark="event_time")
        >>> q = events.group_by(sd.tumble("event_time", "10s"), "campaign_id").agg(sd.count().alias("views"))
        >>> q.columns
        ['campaign_id', 'window_start', 'window_end', 'views']
        """
        return GroupBy(self, [k if isinstance(k, Expr) else Expr(column_node(k)) for k in _flatten(keys)], emit)

    def emit(self, mode: str) -> "Stream":
        """Set the output mode of the aggregation this query ends with: 'final' or 'changes'."""
        return self._derive(_with_emit(self._plan, mode))

    # ------------------------------------------------------------ running

    def explain(self, format: str = "text", *, disabled: Iterable[str] = ()) -> str:
        """The plan as text: logical, optimized, the rules that fired, and stages (what EXPLAIN prints).

        `format="dot"` gives the stage DAG as Graphviz DOT instead. `disabled`
        names optimizer rules to switch off for this explain
        (`optimizer.rules.RULE_NAMES`), on top of the context's switches.
        """
        return self._ctx._explain(self._plan, format=format, disabled=disabled)

    def collect(self) -> pl.DataFrame:
        """Run to the end of bounded input and return the result."""
        return self._ctx._collect(self._plan)

    def verify(self, *, sql: str | None = None, **options: Any) -> Any:
        """Check that streaming this query gives what one batch gives (`stream_dsl.verify.verify`).

        Its streams must be bounded. Runs it with random micro-batch splits, on each executor, with 1 and
        2 workers, the optimizer on and off; returns a `Verification` (`.ok`, the first `.difference`,
        printable). `sql`: the query's text, also compared with DuckDB when installed. `options`:
        `executors`, `workers`, `optimize`, `seeds`.
        """
        from stream_dsl.verify import verify

        return verify(self._plan, catalog=self._ctx.catalog, config=self._ctx.config, sql=sql, **options)

    def start(
        self,
        sink: Any = None,
        *,
        name: str | None = None,
        trace: str | None = None,
        checkpoint_dir: str | None = None,
        on_progress: Any = None,
    ) -> Any:
        """Run continuously; returns a QueryHandle.

        `sink` is a sink name from the catalog, a SinkDef, a Sink object, a
        function `(batch_id, frame)` called per batch, or None for the console.
        `name` names the query (unique among the Context's running queries,
        `ctx.queries`); `on_progress(progress)` is called with every batch's
        progress dict, as the Context's listeners are.
        `trace` is a file path: when the query ends, every task's start and
        end per worker, stage and batch are written there in the Chrome trace
        format, to open in Perfetto (ui.perfetto.dev) or chrome://tracing.
        `checkpoint_dir` gives this query its own checkpoint directory (the
        context's `checkpoint_dir` otherwise): with one, the query survives
        the loss of a worker and resumes where it left off after a restart.
        """
        return self._ctx._start(
            self._plan, sink, name=name, trace=trace, checkpoint_dir=checkpoint_dir, on_progress=on_progress
        )

    def sink_files(self, path: str, *, format: str = "parquet", name: str | None = None, **options: Any) -> Any:
        """Run continuously into files under `path` (the files sink, as `CREATE SINK ... WITH (connector =
        'files', path = ..., format = ...)`); returns a QueryHandle. `options` are `start`'s (name,
        checkpoint_dir, on_progress, trace) and the sink's own."""
        return self._sink_to("files", {"path": path, "format": format}, name, options)

    def sink_redis(
        self, stream: str, *, url: str = "redis://127.0.0.1:6379", name: str | None = None, **options: Any
    ) -> Any:
        """Run continuously into a Redis stream (the redis sink: XADD once per batch id); a QueryHandle."""
        return self._sink_to("redis", {"url": url, "stream": stream}, name, options)

    def sink_kafka(self, topic: str, *, bootstrap_servers: str, name: str | None = None, **options: Any) -> Any:
        """Run continuously into a Kafka topic (the kafka sink, exactly once per batch); a QueryHandle."""
        return self._sink_to("kafka", {"bootstrap_servers": bootstrap_servers, "topic": topic}, name, options)

    def _sink_to(self, connector: str, settings: dict[str, Any], name: str | None, options: dict[str, Any]) -> Any:
        """Start into the sink CREATE SINK would define with `settings` and the sink options in `options`."""
        from stream_dsl.frame.io import sink_definition

        run = {key: options.pop(key) for key in ("checkpoint_dir", "on_progress", "trace") if key in options}
        definition = sink_definition(
            self._ctx.catalog, name or connector, {"connector": connector, **settings, **options}
        )
        return self.start(definition, name=name, **run)

    def foreach_batch(self, fn: Any) -> Any:
        """Run continuously, calling `fn(batch_id, frame)` with each batch's output; returns a QueryHandle.

        Like Spark's foreachBatch: a replayed batch comes again with the same
        batch id, so `fn` should be idempotent per batch id.
        """
        if not callable(fn):
            raise DSLError(f"foreach_batch needs a function (batch_id, frame), got {type(fn).__name__}")
        return self.start(sink=fn)


class Table(Stream):
    """A query over static tables only (read once, not a stream)."""

    __slots__ = ()


def _key_names(value: Any) -> list[str]:
    names = []
    for item in _flatten([value]):
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, Expr) and isinstance(item.node, ast.Identifier):
            names.append(item.node.parts[-1])
        else:
            raise DSLError(f"join keys must be column names or sd.col(...), got {item!r}")
    return names


def _with_emit(plan: Plan, mode: str) -> Plan:
    if isinstance(plan, Aggregate):
        return replace(plan, emit=resolve_emit(mode, plan.window))
    if isinstance(plan, (Project, Filter)):
        return with_inputs(plan, (_with_emit(plan.input, mode),))
    raise DSLError("emit() applies to an aggregation: call it right after group_by(...).agg(...)")


class GroupBy:
    """The keys (and window) of an aggregation; `agg` computes it."""

    __slots__ = ("_stream", "_keys", "_emit")

    def __init__(self, stream: Stream, keys: list[Expr], emit: str | None) -> None:
        self._stream = stream
        self._keys = keys
        self._emit = emit

    def agg(self, *aggs: Any, **named: Any) -> Stream:
        """Compute aggregates per group. Output: keys, window_start, window_end, then the aggregates.

        Examples
        --------
        >>> import stream_dsl as sd, polars as pl
        >>> clicks = sd.Context().from_polars(pl.DataFrame({"user": ["a", "b"], "ms": [10, 2500]}))
        >>> clicks.group_by("user").agg(sd.count().alias("n"), total=sd.col("ms").sum()).columns
        ['user', 'n', 'total']
        """
        stream = self._stream
        scope = stream._scope()
        keys, window, outputs = [], None, []
        for i, k in enumerate(self._keys):
            if is_window_call(k.node):
                if window is not None:
                    raise DSLError("group_by takes at most one window (tumble, hop or session)")
                window = bind_window(k.node, scope)
                continue
            if has_aggregate(k.node):
                raise DSLError("group_by keys cannot be aggregates")
            bound = ExprBinder(scope, clause="group_by").bind(k.node)
            keys.append(bound)
            outputs.append(OutputColumn(_api_name(k, bound, i), bound))
        if window is not None:
            outputs += [OutputColumn(n, E.Column(n, DataType.TIMESTAMP)) for n in (WINDOW_START, WINDOW_END)]
        items = _as_exprs(aggs, named)
        if not items:
            raise DSLError("agg needs at least one aggregate, e.g. sd.count()")
        select_scope = scope.with_window_columns() if window is not None else scope
        binder = ExprBinder(select_scope, aggregates=True, clause="agg")
        for e in items:
            bound = binder.bind(e.node)
            outputs.append(OutputColumn(_api_name(e, bound, len(outputs)), bound))
        _check_unique([o.name for o in outputs])
        return stream._derive(plan_aggregate_query(stream.plan, keys, window, outputs, None, self._emit))


def _per_column(value: bool | Sequence[bool], names: list[str], what: str) -> list[bool]:
    """A sort flag for every column: one for all, or one each."""
    if isinstance(value, bool):
        return [value] * len(names)
    flags = list(value)
    if len(flags) != len(names) or not all(isinstance(f, bool) for f in flags):
        raise DSLError(f"sort: {what} needs one boolean, or one per column ({len(names)}), got {value!r}")
    return flags
