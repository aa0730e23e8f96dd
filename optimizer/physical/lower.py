"""Lowering: a logical plan → a DAG of stages (networkx.DiGraph), fusing narrow operators.

Where the plan is cut:
- Aggregate and Distinct need all rows of a key in one task: the pipeline
  below them ends in a hash exchange on their keys (Distinct: every column;
  an aggregate without keys: one partition), and a new stage with
  `workers` partitions holds the state.
- A split aggregate: the PartialAggregate is a narrow operator fused into
  the pipeline that feeds the exchange (so the shuffle carries one row
  per group and task), and the FinalAggregate is cut like an Aggregate:
  a hash exchange on its keys into the stage whose state merges partials.
- A join with a static table (a subplan that reads no stream) is a broadcast
  join inside the stream's stage: the table is read once per query.
  A join of two streams is one stateful stage fed by both (`interval_join.py`,
  `stream_join.py`). A RIGHT or FULL join adds a second
  pipeline that finds the table rows no stream row matched
  (`outer_joins.py`).
- UNION ALL keeps one stage per input; operators above the union are copied
  into every input (they are narrow, so they distribute over the union),
  and every input writes to the same consumer.
- LIMIT applies at the output (only the outermost query may have one).

The graph's nodes are stage ids (numbered in topological order) with the
Stage in node attribute `stage`; each edge carries its `exchange`. Graph
attributes: `limit` (int or None) and `schema` (the output schema).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from itertools import count

import networkx as nx

from optimizer.physical.stages import (
    TIME_COLUMN,
    AggregateOp,
    AggSpec,
    BroadcastJoinOp,
    DistinctOp,
    Exchange,
    FilterOp,
    Operator,
    OutputWrite,
    PartialAggregateOp,
    ProjectOp,
    ReadOp,
    ScanOp,
    ShuffleWrite,
    Stage,
    StatefulOp,
    TopNOp,
    UnmatchedRowsOp,
    arg_column,
    ROW_COLUMN,
    UnnestOp,
)
from stream_dsl.ir.late_rows import PREFIX as LATE_PREFIX, late_rows_sink
from stream_dsl.errors import PlanError
from stream_dsl.ir.dispatch import MissingCase, node_pass
from stream_dsl.ir.expr import Agg, Column, NamedExpr
from stream_dsl.ir.definitions import EMIT_CHANGES
from stream_dsl.ir.aggregates_more import is_ordered
from stream_dsl.ir.partial_state import distinct_argument
from stream_dsl.ir.plan import (
    PARTIAL_DISTINCT,
    Aggregate,
    Distinct,
    FinalAggregate,
    Filter,
    Join,
    Limit,
    PartialAggregate,
    Plan,
    Project,
    Scan,
    Sort,
    SortKey,
    TopN,
    Union,
    is_streaming,
    Unnest,
)
from stream_dsl.ir.to_polars import can_fail
from stream_dsl.ir.types import DataType, Field, Schema, common_type
from optimizer.event_time import event_time_columns, with_watermark
from optimizer.physical.outer_joins import OUTER_KINDS, STREAM_SIDE_KIND, outer_join_fragment
from stream_dsl.ir.expr import Case, Expr, IsNull, Literal, columns_used
from stream_dsl.ir.definitions import WindowSpec
from stream_dsl.ir.plan import WINDOW_END, WINDOW_START
from optimizer.physical.interval_join import IntervalJoinOp, lower_interval_join
from optimizer.physical.stream_join import StreamJoinOp, lower_stream_join
from optimizer.physical import changelog_lowering
from optimizer.physical.changelog import RETRACT, RetractAggregateOp, produces


@dataclass(frozen=True)
class _Pipe:
    """An open pipeline: a stage under construction, not yet given its terminal write."""

    head: ScanOp | ReadOp
    schema: Schema
    inputs: tuple[int, ...] = ()
    partitions: int = 1
    ops: tuple[Operator, ...] = ()
    stateful: StatefulOp | None = None
    post: tuple[Operator, ...] = ()
    stage_id: int | None = None
    retract: bool = False  # rows carry CHANGELOG_OP (`changelog_lowering`)

    @property
    def changelog(self) -> bool:
        """Whether the pipe ends in an aggregate that emits upserts (keyed changes)."""
        op = self.stateful
        return isinstance(op, (AggregateOp, RetractAggregateOp)) and op.changelog and not self.retract

    def add(self, op: Operator, schema: Schema) -> "_Pipe":
        if self.retract:
            op = changelog_lowering.carry(op)
        if self.stateful is not None:
            return replace(self, post=self.post + (op,), schema=schema)
        return replace(self, ops=self.ops + (op,), schema=schema)


Fragment = tuple[_Pipe, ...]  # one pipe, or one per UNION ALL input


def lower(plan: Plan, workers: int = 1, *, state_ttl_ms: int | None = None) -> nx.DiGraph:
    """The stage DAG of `plan`; stateful stages get `workers` partitions.

    `state_ttl_ms` (`SET state_ttl`): how long a deduplication without its own TTL remembers a key.
    """
    if workers < 1:
        raise PlanError("workers must be at least 1")
    plan, limit = _split_limit(plan)
    plan, order = _split_sort(plan)
    lowering = _Lowering(workers)
    lowering.state_ttl_ms = state_ttl_ms
    fragment = lowering.lower(plan)
    for pipe in fragment:
        if pipe.changelog and not changelog_lowering.keys_survive(pipe):
            pipe = changelog_lowering.as_retract(pipe)  # rows no longer one per key: -old/+new
        stateful = pipe.stateful
        terminal = OutputWrite(  # a changelog's stateful op is an aggregate; the isinstance tells mypy
            changelog=pipe.changelog,
            group_keys=stateful.group_keys
            if pipe.changelog and isinstance(stateful, (AggregateOp, RetractAggregateOp))
            else (),
            retract=pipe.retract,
        )
        lowering.finish(pipe, terminal)
    graph = lowering.graph
    # A sorted result is cut after sorting, not while it streams; LIMIT 0 reads nothing, sorted or not.
    graph.graph["limit"] = None if order and limit != 0 else limit
    graph.graph["order"] = order
    graph.graph["order_limit"] = limit if order else None
    graph.graph["schema"] = plan.schema
    return _renumber(graph)


def _split_limit(plan: Plan) -> tuple[Plan, int | None]:
    """Take LIMIT off the top (through projections, which commute with it)."""
    if isinstance(plan, Limit):
        inner, n = _split_limit(plan.input)
        return inner, plan.n if n is None else min(n, plan.n)
    if isinstance(plan, Project):
        inner, n = _split_limit(plan.input)
        if n is not None:
            return replace(plan, input=inner), n
    return plan, None


def _split_sort(plan: Plan) -> tuple[Plan, tuple[SortKey, ...]]:
    """Take the ordering off the top: through filters (which keep the order of what they keep) and
    projections that pass its columns through unchanged; a sort over a sort orders by both, outer first."""
    if isinstance(plan, Sort):
        inner, keys = _split_sort(plan.input)
        outer = {k.column for k in plan.keys}
        return inner, plan.keys + tuple(k for k in keys if k.column not in outer)
    if isinstance(plan, (Filter, Project)):
        inner, keys = _split_sort(plan.input)
        passed = (
            {n.name for n in plan.exprs if isinstance(n.expr, Column) and n.expr.name == n.name}
            if isinstance(plan, Project)
            else set(plan.schema.names)
        )
        if keys and all(k.column in passed for k in keys):
            return replace(plan, input=inner), keys
    return plan, ()


class _Lowering:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.state_ttl_ms: int | None = None
        self.graph: nx.DiGraph = nx.DiGraph()
        self._ids = count()
        self._tables: dict[tuple[Plan, tuple[str, ...], tuple[DataType, ...]], str] = {}

    # ------------------------------------------------------------ stages

    def finish(self, pipe: _Pipe, terminal: Operator) -> int:
        """Close `pipe` with its terminal write and add it to the graph."""
        stage_id = pipe.stage_id if pipe.stage_id is not None else next(self._ids)
        if pipe.stateful is None:
            stage = Stage(stage_id, (pipe.head,) + pipe.ops + (terminal,), pipe.inputs, pipe.partitions)
        else:
            stage = Stage(
                stage_id, (pipe.head,) + pipe.ops, pipe.inputs, pipe.partitions, pipe.stateful, pipe.post + (terminal,)
            )
        self.graph.add_node(stage_id, stage=stage)
        return stage_id

    def exchange(self, fragment: Fragment, keys: tuple[str, ...], stateful: StatefulOp, output: Schema) -> Fragment:
        """End every pipe of `fragment` in a hash exchange into a new stateful stage."""
        partitions = self.workers if keys else 1
        exchange = Exchange("hash", keys, partitions)
        target = next(self._ids)
        inputs = []
        if any(pipe.changelog or pipe.retract for pipe in fragment):
            consumer = changelog_lowering.consumer(stateful, self.state_ttl_ms)
            if consumer is None:
                raise PlanError(_changelog_message(stateful))
            stateful = consumer
            fragment = tuple(changelog_lowering.as_retract(pipe) for pipe in fragment)
        for pipe in fragment:
            source = self.finish(pipe, ShuffleWrite(exchange, target))
            self.graph.add_edge(source, target, exchange=exchange)
            inputs.append(source)
        head = ReadOp(fragment[0].schema)
        retract = produces(stateful) == RETRACT  # its rows carry CHANGELOG_OP (DISTINCT over a changelog)
        return (_Pipe(head, output, tuple(inputs), partitions, stateful=stateful, stage_id=target, retract=retract),)

    # ------------------------------------------------------------ plan nodes

    def lower(self, node: Plan) -> Fragment:
        return lower_node(node, self)

    def _join(self, node: Join) -> Fragment:
        if node.interval is not None:  # two streams, one stateful stage (physical/interval_join.py)
            return lower_interval_join(self, node, _interval_watermarked(node))
        left_stream, right_stream = is_streaming(node.left), is_streaming(node.right)
        if left_stream and right_stream:  # a regular join of two streams (physical/stream_join.py)
            return lower_stream_join(self, node, _event_time(node.left), _event_time(node.right))
        key_types = tuple(
            _key_type(node.left.schema.dtype(lk), node.right.schema.dtype(rk))
            for lk, rk in zip(node.left_keys, node.right_keys)
        )
        if not right_stream:
            output = tuple(("stream", f.name, f.name) for f in node.left.schema) + tuple(
                ("table", c, out) for c, out in node.right_columns
            )
            op = BroadcastJoinOp(
                self._table_id(node.right, node.right_keys, key_types),
                node.right,
                STREAM_SIDE_KIND.get(node.kind, node.kind),
                node.left_keys,
                node.right_keys,
                key_types,
                output,
            )
            if node.kind in OUTER_KINDS:
                return outer_join_fragment(self, node, op)
            return _add(self.lower(node.left), op, node.schema)
        if not left_stream and node.kind in ("inner", "cross"):
            output = tuple(("table", f.name, f.name) for f in node.left.schema) + tuple(
                ("stream", c, out) for c, out in node.right_columns
            )
            op = BroadcastJoinOp(
                self._table_id(node.left, node.left_keys, key_types),
                node.left,
                node.kind,
                node.right_keys,
                node.left_keys,
                key_types,
                output,
            )
            return _add(self.lower(node.right), op, node.schema)
        raise PlanError(  # a table on the left of an outer join with a stream
            "a LEFT JOIN from a table to a stream is not supported; put the stream on the left (stream LEFT JOIN table)"
        )

    def _table_id(self, table: Plan, keys: tuple[str, ...], key_types: tuple[DataType, ...]) -> str:
        """One id per distinct static table plan and join key, so a table joined twice on one key is read once.

        The executor keeps one prepared frame per id, with the join keys cast
        and renamed in it: joins on other keys of the same table need their own.
        """
        return self._tables.setdefault((table, tuple(keys), key_types), f"t{len(self._tables)}")

    def _aggregate(self, node: Aggregate) -> Fragment:
        pre = [NamedExpr(k.name, k.expr) for k in node.keys]
        if node.window is not None:
            pre.append(NamedExpr(TIME_COLUMN, Column(node.window.time_column, DataType.TIMESTAMP)))
        pre += _order_time(node)
        specs = []
        for i, named in enumerate(node.aggs):
            agg = named.expr
            assert isinstance(agg, Agg)
            arg = None
            if agg.arg is not None:
                arg = arg_column(i)
                pre.append(NamedExpr(arg, _timed(agg.arg, node.window)))
            specs.append(
                AggSpec(
                    named.name, agg.func, arg, agg.dtype, agg.distinct, _arg_type(agg), *_more(agg, pre), udf=agg.udf
                )
            )
        if not pre:
            # COUNT(*) alone: a frame of no columns has no rows, so keep one input column to count.
            first = node.input.schema.fields[0]
            pre.append(NamedExpr(ROW_COLUMN, Column(first.name, first.dtype)))
        late_sink = late_rows_sink(node.input) if node.window is not None else None
        late_columns: tuple[str, ...] = ()
        if late_sink is not None:  # the rows as they reach the GROUP BY, for the late ones to be routed
            late_columns = tuple(f.name for f in node.input.schema)
            pre += [NamedExpr(LATE_PREFIX + f.name, Column(f.name, f.dtype)) for f in node.input.schema]
        pre_schema = Schema(tuple(Field(n.name, n.expr.dtype) for n in pre))
        emit = EMIT_CHANGES if node.window is None else node.emit
        window = with_watermark(
            node.window, event_time_columns(node.input), node.window.time_column if node.window is not None else ""
        )
        op = AggregateOp(
            tuple(k.name for k in node.keys),
            tuple(specs),
            window,
            emit,
            node.schema,
            late_sink=late_sink,
            late_columns=late_columns,
        )
        child = _add(self.lower(node.input), ProjectOp(tuple(pre)), pre_schema)
        return self.exchange(child, op.keys, op, node.schema)

    def _partial_aggregate(self, node: PartialAggregate) -> Fragment:
        """Keys, window time and arguments computed, then grouped: all narrow, in the current pipeline."""
        pre = [NamedExpr(k.name, k.expr) for k in node.keys]
        if node.window is not None:
            pre.append(NamedExpr(TIME_COLUMN, Column(node.window.time_column, DataType.TIMESTAMP)))
        pre += _order_time(node)
        distinct = distinct_argument(node.aggs)
        if distinct is not None:
            pre.append(NamedExpr(PARTIAL_DISTINCT, _timed(distinct, node.window)))
        specs = []
        for i, named in enumerate(node.aggs):
            agg = named.expr
            assert isinstance(agg, Agg)
            arg = None
            if agg.distinct:
                arg = PARTIAL_DISTINCT
            elif agg.arg is not None:
                arg = arg_column(i)
                pre.append(NamedExpr(arg, _timed(agg.arg, node.window)))
            specs.append(
                AggSpec(
                    named.name, agg.func, arg, agg.dtype, agg.distinct, _arg_type(agg), *_more(agg, pre), udf=agg.udf
                )
            )
        if not pre:  # COUNT(*) alone: keep one input column, so the frame keeps its rows
            first = node.input.schema.fields[0]
            pre.append(NamedExpr(ROW_COLUMN, Column(first.name, first.dtype)))
        pre_schema = Schema(tuple(Field(n.name, n.expr.dtype) for n in pre))
        op = PartialAggregateOp(
            tuple(k.name for k in node.keys), tuple(specs), node.window, distinct is not None, node.schema
        )
        child = _add(self.lower(node.input), ProjectOp(tuple(pre)), pre_schema)
        return _add(child, op, node.schema)

    def _final_aggregate(self, node: FinalAggregate) -> Fragment:
        """Keys computed over the partial rows, a hash exchange on them, and state that merges partials."""
        input_schema = node.input.schema
        pre = [NamedExpr(k.name, k.expr) for k in node.keys]
        pre += [NamedExpr(c, Column(c, input_schema.dtype(c))) for c in node.state_columns]
        pre_schema = Schema(tuple(Field(n.name, n.expr.dtype) for n in pre))
        specs = []
        for named in node.aggs:
            agg = named.expr
            assert isinstance(agg, Agg)
            specs.append(
                AggSpec(
                    named.name,
                    agg.func,
                    PARTIAL_DISTINCT if agg.distinct else None,
                    agg.dtype,
                    agg.distinct,
                    _arg_type(agg),
                    agg.param,
                    udf=agg.udf,
                )
            )
        emit = EMIT_CHANGES if node.window is None else node.emit
        window = with_watermark(node.window, event_time_columns(node.input), WINDOW_START)
        op = AggregateOp(tuple(k.name for k in node.keys), tuple(specs), window, emit, node.schema, "final")
        child = _add(self.lower(node.input), ProjectOp(tuple(pre)), pre_schema)
        return self.exchange(child, op.keys, op, node.schema)

    def _union(self, node: Union) -> Fragment:
        names = node.schema.names
        parts: list[_Pipe] = []
        for child in node.inputs:
            fragment = self.lower(child)
            if child.schema.names != names:
                renames = tuple(NamedExpr(n, Column(f.name, f.dtype)) for n, f in zip(names, child.schema))
                fragment = _add(fragment, ProjectOp(renames), node.schema)
            parts.extend(fragment)
        if any(pipe.changelog or pipe.retract for pipe in parts):  # a changelog input: every input retracts
            return tuple(changelog_lowering.as_retract(pipe) for pipe in parts)
        return tuple(parts)


# ---------------------------------------------------------------- one case per plan node


@node_pass("plan")
def lower_node(node: Plan, lowering: _Lowering) -> Fragment:
    """The pipelines that compute `node` (its inputs lowered first, through `lowering`)."""
    raise MissingCase(lower_node, node)


@lower_node.register
def _(node: Scan, lowering: _Lowering) -> Fragment:
    """One pipe per part of a split stream: each part is a source stage of its own, read by its own map task
    (on its own worker), and the parts' rows meet where the pipes do (an exchange, or the output)."""
    columns = tuple(node.columns if node.columns is not None else node.source.schema.names)
    splits = node.source.splits_for(lowering.workers)
    if splits == 1:
        return (_Pipe(ScanOp(node.source, columns, node.predicate), node.schema),)
    parts = (replace(node.source, split=(i, splits)) for i in range(splits))
    return tuple(_Pipe(ScanOp(part, columns, node.predicate), node.schema) for part in parts)


@lower_node.register
def _(node: Filter, lowering: _Lowering) -> Fragment:
    return _add(lowering.lower(node.input), FilterOp(node.predicate), node.schema)


@lower_node.register
def _(node: Project, lowering: _Lowering) -> Fragment:
    return _add(lowering.lower(node.input), ProjectOp(node.exprs), node.schema)


@lower_node.register
def _(node: Unnest, lowering: _Lowering) -> Fragment:
    op = UnnestOp(node.column, node.element, node.ordinality, node.outer)
    return _add(lowering.lower(node.input), op, node.schema)


@lower_node.register
def _(node: Join, lowering: _Lowering) -> Fragment:
    return lowering._join(node)


@lower_node.register
def _(node: Aggregate, lowering: _Lowering) -> Fragment:
    return lowering._aggregate(node)


@lower_node.register
def _(node: PartialAggregate, lowering: _Lowering) -> Fragment:
    return lowering._partial_aggregate(node)


@lower_node.register
def _(node: FinalAggregate, lowering: _Lowering) -> Fragment:
    return lowering._final_aggregate(node)


@lower_node.register
def _(node: Distinct, lowering: _Lowering) -> Fragment:
    names = node.schema.names
    return lowering.exchange(lowering.lower(node.input), names, DistinctOp(names), node.schema)


@lower_node.register
def _(node: TopN, lowering: _Lowering) -> Fragment:
    time_column = WINDOW_END if node.kind == "window" else node.order_by[0].column
    watermarked = time_column in event_time_columns(node.input)
    ttl_ms = node.ttl_ms if node.ttl_ms is not None or node.kind == "window" else lowering.state_ttl_ms
    op = TopNOp(
        node.kind, node.partition_by, node.order_by, node.n, node.number_column, time_column, watermarked, ttl_ms,
        node.schema,
    )  # fmt: skip
    return lowering.exchange(lowering.lower(node.input), node.partition_by, op, node.schema)


@lower_node.register
def _(node: Union, lowering: _Lowering) -> Fragment:
    return lowering._union(node)


@lower_node.register
def _(node: Limit, lowering: _Lowering) -> Fragment:
    raise PlanError("LIMIT is supported only on the outermost query")


@lower_node.register
def _(node: Sort, lowering: _Lowering) -> Fragment:
    raise PlanError("ORDER BY (sort) is supported only as the outermost query's last step, before LIMIT")


def _arg_type(agg: Agg) -> DataType | None:
    return agg.arg.dtype if agg.arg is not None else None


def _more(agg: Agg, pre: list[NamedExpr]) -> tuple[float | str | None, str | None]:
    """An aggregate's constant parameter, and the time column it orders by (None: arrival order)."""
    ordered = is_ordered(agg.func)
    timed = any(n.name == TIME_COLUMN for n in pre)
    return agg.param, TIME_COLUMN if ordered and timed else None


def _order_time(node: Aggregate | PartialAggregate) -> list[NamedExpr]:
    """Without a window, FIRST_VALUE, ARRAY_AGG... order by the input's event time (a watermarked column), if any."""
    ordered = any(isinstance(n.expr, Agg) and is_ordered(n.expr.func) for n in node.aggs)
    columns = sorted(event_time_columns(node.input))
    if node.window is not None or not ordered or not columns:
        return []
    return [NamedExpr(TIME_COLUMN, Column(columns[0], node.input.schema.dtype(columns[0])))]


def _add(fragment: Fragment, op: Operator, schema: Schema) -> Fragment:
    return tuple(pipe.add(op, schema) for pipe in fragment)


def _key_type(left: DataType, right: DataType) -> DataType:
    common = common_type([left, right])
    if common is None:
        raise PlanError(f"join keys of types {left.value} and {right.value} cannot be compared")
    return common


def _interval_watermarked(node: Join) -> bool:
    """Whether the watermark bounds both time columns of an interval join (then it drops state as it passes)."""
    assert node.interval is not None
    return node.interval.left_time in event_time_columns(node.left) and node.interval.right_time in event_time_columns(
        node.right
    )


def _event_time(side: Plan) -> str | None:
    """The column a stream-stream join's state TTL measures one side's rows by: its watermark column."""
    columns = sorted(event_time_columns(side))
    return columns[0] if columns else None


def _changelog_message(consumer: StatefulOp) -> str:
    if isinstance(consumer, UnmatchedRowsOp):
        return (
            "a RIGHT or FULL join over a changelog (a non-windowed aggregate or EMIT CHANGES, whose rows are "
            "later replaced) is not supported; join append-only input (e.g. a windowed aggregate with EMIT ON "
            "WINDOW CLOSE), or write it as a LEFT JOIN from the aggregate"
        )
    what = "an aggregate" if isinstance(consumer, AggregateOp) else "DISTINCT"
    what = "ROW_NUMBER() (top-n, deduplication)" if isinstance(consumer, TopNOp) else what
    if isinstance(consumer, IntervalJoinOp):
        what = "an interval join"
    if isinstance(consumer, StreamJoinOp):
        what = "a join of two streams"
    return (
        f"{what} over a changelog (a non-windowed aggregate or EMIT CHANGES, whose rows are later "
        "replaced) is not supported; aggregate append-only input, e.g. a windowed aggregate "
        "with EMIT ON WINDOW CLOSE"
    )


def _renumber(graph: nx.DiGraph) -> nx.DiGraph:
    """Number stages 0..n-1 in a deterministic topological order (sources first)."""
    order = list(nx.lexicographical_topological_sort(graph))
    new_id = {old: i for i, old in enumerate(order)}
    result: nx.DiGraph = nx.DiGraph(**graph.graph)
    for old in order:
        stage: Stage = graph.nodes[old]["stage"]
        result.add_node(new_id[old], stage=_relabel(stage, new_id))
    for u, v, data in graph.edges(data=True):
        result.add_edge(new_id[u], new_id[v], **data)
    return result


def _relabel(stage: Stage, new_id: dict[int, int]) -> Stage:
    def fix(op: Operator) -> Operator:
        return replace(op, target=new_id[op.target]) if isinstance(op, ShuffleWrite) else op

    return replace(
        stage,
        id=new_id[stage.id],
        inputs=tuple(sorted(new_id[i] for i in stage.inputs)),
        operators=tuple(fix(op) for op in stage.operators),
        post=tuple(fix(op) for op in stage.post),
    )


def stage_order(graph: nx.DiGraph) -> list[Stage]:
    """The stages in the order a micro-batch runs them (producers before consumers)."""
    return [graph.nodes[n]["stage"] for n in nx.lexicographical_topological_sort(graph)]


def output_stages(graph: nx.DiGraph) -> list[Stage]:
    return [s for s in stage_order(graph) if isinstance(s.terminal, OutputWrite)]


def _timed(arg: Expr, window: WindowSpec | None) -> Expr:
    """A windowed aggregate's argument, computed only for rows with a time (the others belong to no window).

    So a CAST in the argument fails only for rows that count, as in SQL
    over the rows that have a window.
    """
    if window is None or not (columns_used(arg) or can_fail(arg)):
        return arg  # a constant that cannot fail is the same for every row
    has_time = IsNull(Column(window.time_column, DataType.TIMESTAMP), negated=True)
    return Case(((has_time, arg),), Literal(None, DataType.NULL), arg.dtype)
