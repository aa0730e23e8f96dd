"""Logical plan nodes: immutable, typed, one output schema each (computed once, cached).

Both front ends (the DSL binder and the dataframe API) build these nodes;
nothing downstream knows which one did. Constructors validate what they can
and name what is available, so a bad plan fails where it is built.
`plan_text.render_plan` prints the one canonical plan text (one node per line, two-space
indent) used by explain(), golden files and docstrings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
import typing
from dataclasses import replace
from typing import Iterator

from stream_dsl.ir.dispatch import MissingCase, node_pass
from stream_dsl.ir.column_names import PARTIAL_DISTINCT, PARTIAL_ROWS, WINDOW_END, WINDOW_START
from stream_dsl.errors import PlanError, Span, did_you_mean
from stream_dsl.ir.expr import Agg, Column, Expr, NamedExpr, columns_used
from stream_dsl.ir.types import DataType, Field, Schema
from stream_dsl.ir.definitions import EMIT_CHANGES, EMIT_FINAL, SourceDef, WindowSpec
from stream_dsl.ir.partial_state import distinct_argument, partial_state_fields
from stream_dsl.ir.interval import IntervalBounds

_SPAN = field(default=None, compare=False, repr=False)


def _require_columns(expr_columns: set[str], schema: Schema, where: str) -> None:
    for name in sorted(expr_columns):
        if name not in schema:
            raise PlanError(
                f"{where}: column '{name}' is not found in the input. "
                f"Existing columns: {', '.join(schema.names)}{did_you_mean(name, schema.names)}"
            )


def _check_window_column(window: WindowSpec, schema: Schema) -> None:
    _require_columns({window.time_column}, schema, "window")
    if schema.dtype(window.time_column) is not DataType.TIMESTAMP:
        raise PlanError(f"window column '{window.time_column}' must be a TIMESTAMP")


def _group_fields(keys: tuple[NamedExpr, ...], window: WindowSpec | None) -> list[Field]:
    """The leading output columns of every aggregate node: its keys, then the window bounds."""
    fields = [Field(n.name, n.expr.dtype) for n in keys]
    if window is not None:
        fields += [Field(WINDOW_START, DataType.TIMESTAMP), Field(WINDOW_END, DataType.TIMESTAMP)]
    return fields


@dataclass(frozen=True)
class Scan:
    """Read a source. `columns` (None: all) and `predicate` are pushed down by the optimizer."""

    source: SourceDef
    columns: tuple[str, ...] | None = None
    predicate: Expr | None = None
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        if self.columns is not None:
            _require_columns(set(self.columns), self.source.schema, f"scan of {self.source.name}")
        if self.predicate is not None:
            _require_columns(columns_used(self.predicate), self.source.schema, f"scan of {self.source.name}")

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return ()

    @cached_property
    def schema(self) -> Schema:
        if self.columns is None:
            return self.source.schema
        return self.source.schema.select(self.columns)


class _SameColumns:
    """A node over one input whose rows keep the input's columns (Filter, Distinct, Limit, Sort)."""

    input: "Plan"

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return (self.input,)

    @property
    def schema(self) -> Schema:
        return self.input.schema


@dataclass(frozen=True)
class Filter(_SameColumns):
    input: "Plan"
    predicate: Expr
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        if self.predicate.dtype not in (DataType.BOOLEAN, DataType.NULL):
            raise PlanError(f"a filter needs a BOOLEAN predicate, got {self.predicate.dtype.value}")
        _require_columns(columns_used(self.predicate), self.input.schema, "filter")


@dataclass(frozen=True)
class Project:
    """Compute the output columns, in order, from the input's columns."""

    input: "Plan"
    exprs: tuple[NamedExpr, ...]
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        for n in self.exprs:
            _require_columns(columns_used(n.expr), self.input.schema, "projection")
        Schema(tuple(Field(n.name, n.expr.dtype) for n in self.exprs))  # unique names

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return (self.input,)

    @cached_property
    def schema(self) -> Schema:
        return Schema(tuple(Field(n.name, n.expr.dtype) for n in self.exprs))


JOIN_KINDS = ("inner", "left", "right", "full", "cross")


@dataclass(frozen=True)
class Join:
    """Equi-join on `left_keys[i] = right_keys[i]`; `kind` is one of JOIN_KINDS.

    'right' and 'full' keep the right (table) rows no left row matched, with
    NULLs on the left (see `optimizer/physical/outer_joins.py` for when a
    stream query emits them); 'cross' pairs every row with every row and has
    no keys. With `interval` (two streams, `ir/interval.py`) the kind is
    'inner', 'left' or 'full' (a RIGHT interval join is bound as a LEFT one
    with the sides swapped).

    `right_columns` lists (right column, output name) for every right column
    the output keeps; the output is all left columns, then those. A USING
    join keeps the key once (from the left), so its right keys are not listed.
    """

    left: "Plan"
    right: "Plan"
    kind: str
    left_keys: tuple[str, ...]
    right_keys: tuple[str, ...]
    right_columns: tuple[tuple[str, str], ...]
    span: Span | None = _SPAN
    interval: IntervalBounds | None = None  # a stream-stream interval join's time bound (ir/interval.py)

    def __post_init__(self) -> None:
        if self.kind not in JOIN_KINDS:
            raise PlanError(f"unknown join kind '{self.kind}'")
        if self.interval is not None:
            if self.kind not in ("inner", "left", "full"):
                raise PlanError(f"an interval join is inner, left or full, not '{self.kind}'")
            _check_interval(self.interval, self.left.schema, self.right.schema)
        if self.kind == "cross" and (self.left_keys or self.right_keys):
            raise PlanError("a cross join has no keys")
        if self.kind != "cross" and (not self.left_keys or len(self.left_keys) != len(self.right_keys)):
            raise PlanError("a join needs the same number of left and right keys, at least one")
        _require_columns(set(self.left_keys), self.left.schema, "join")
        _require_columns(set(self.right_keys) | {c for c, _ in self.right_columns}, self.right.schema, "join")
        _ = self.schema  # validates unique output names

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return (self.left, self.right)

    @cached_property
    def schema(self) -> Schema:
        right = self.right.schema
        return Schema(self.left.schema.fields + tuple(Field(out, right.dtype(col)) for col, out in self.right_columns))


def _check_interval(bounds: IntervalBounds, left: Schema, right: Schema) -> None:
    for name, schema in ((bounds.left_time, left), (bounds.right_time, right)):
        _require_columns({name}, schema, "interval join")
        if schema.dtype(name) is not DataType.TIMESTAMP:
            raise PlanError(f"an interval join bounds TIMESTAMP columns, but '{name}' is {schema.dtype(name).value}")


@dataclass(frozen=True)
class Aggregate:
    """Group by `keys` (and `window`, if any) and compute `aggs`.

    Output: the keys, then window_start and window_end if windowed, then the aggregates.
    """

    input: "Plan"
    keys: tuple[NamedExpr, ...]
    aggs: tuple[NamedExpr, ...]
    window: WindowSpec | None = None
    emit: str = EMIT_FINAL
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        schema = self.input.schema
        for n in self.keys + self.aggs:
            _require_columns(columns_used(n.expr), schema, "aggregate")
        for n in self.aggs:
            if not isinstance(n.expr, Agg):
                raise PlanError(f"aggregate output '{n.name}' is not an aggregate function")
        if self.window is not None:
            _check_window_column(self.window, schema)
        if self.emit not in (EMIT_FINAL, EMIT_CHANGES):
            raise PlanError(f"unknown emit mode '{self.emit}'")
        _ = self.schema  # validates unique output names

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return (self.input,)

    @cached_property
    def schema(self) -> Schema:
        fields = _group_fields(self.keys, self.window)
        fields += [Field(n.name, n.expr.dtype) for n in self.aggs]
        return Schema(tuple(fields))


@dataclass(frozen=True)
class Distinct(_SameColumns):
    """Each distinct row once (SELECT DISTINCT, UNION)."""

    input: "Plan"
    span: Span | None = _SPAN


@dataclass(frozen=True)
class Union:
    """UNION ALL: the rows of every input; names from the first, types must match."""

    inputs: tuple["Plan", ...]
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        if len(self.inputs) < 2:
            raise PlanError("a union needs at least two inputs")
        first = self.inputs[0].schema
        for other in self.inputs[1:]:
            types = [f.dtype for f in other.schema]
            if types != [f.dtype for f in first]:
                raise PlanError(f"UNION inputs must have the same column types: ({first}) vs ({other.schema})")

    @property
    def schema(self) -> Schema:
        return self.inputs[0].schema


@dataclass(frozen=True)
class Unnest:
    """A row per element of the list column `column`: the input's columns, then the element as `element`
    (and its 1-based position as `ordinality`). A row whose list is empty or NULL gives no row, or (`outer`)
    one row with a NULL element. Stateless: a polars explode in the map stage."""

    input: "Plan"
    column: str
    element: str
    ordinality: str | None = None
    outer: bool = False
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        _require_columns({self.column}, self.input.schema, "unnest")
        if not self.input.schema.dtype(self.column).is_list:
            raise PlanError(f"UNNEST needs a list, got {self.input.schema.dtype(self.column).value}")
        _ = self.schema  # unique names

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return (self.input,)

    @cached_property
    def schema(self) -> Schema:
        added = [Field(self.element, self.input.schema.dtype(self.column).element)]
        if self.ordinality is not None:
            added.append(Field(self.ordinality, DataType.BIGINT))
        return Schema(self.input.schema.fields + tuple(added))


@dataclass(frozen=True)
class Limit(_SameColumns):
    """The first `n` rows the query produces, then the query ends."""

    input: "Plan"
    n: int
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        if self.n < 0:
            raise PlanError("LIMIT must not be negative")


@dataclass(frozen=True)
class SortKey:
    """An output column to order by; NULLs last unless `nulls_first` (DuckDB's default either way)."""

    column: str
    descending: bool = False
    nulls_first: bool = False

    def __str__(self) -> str:
        return self.column + (" DESC" if self.descending else "") + (" NULLS FIRST" if self.nulls_first else "")


@dataclass(frozen=True)
class Sort(_SameColumns):
    """The query's rows in key order (ORDER BY): only as its last step, before LIMIT.

    A bounded query's result is sorted as a whole (and LIMIT then takes its
    first rows); a continuous query sorts each micro-batch's rows.
    """

    input: "Plan"
    keys: tuple[SortKey, ...]
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        if not self.keys:
            raise PlanError("ORDER BY needs at least one column")
        for key in self.keys:
            if key.column not in self.input.schema:
                raise PlanError(
                    f"ORDER BY column '{key.column}' is not an output column ({', '.join(self.input.schema.names)})"
                )


@dataclass(frozen=True)
class TopN:
    """ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...) <= n: the first `n` rows of each partition.

    Two kinds (`kind`): 'window' when the partition includes window_start and
    window_end (a window's rows are ranked once the watermark passes its end),
    'dedup' otherwise (n = 1, ordered by an event-time column ascending: a
    key's first row is decided once the watermark passes its time; keys are
    remembered for `ttl_ms` of event time, None: forever). Ties are broken by
    the remaining columns in order, so the result is deterministic.
    Output: the input's columns, then `number_column` (BIGINT) if set.
    See `executor/state/top_n.py` for the exact semantics.
    """

    input: "Plan"
    partition_by: tuple[str, ...]
    order_by: tuple[SortKey, ...]
    n: int
    number_column: str | None = None
    ttl_ms: int | None = None
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        schema = self.input.schema
        _require_columns(set(self.partition_by) | {k.column for k in self.order_by}, schema, "top-n")
        if self.n < 1:
            raise PlanError(f"top-n needs n >= 1, got {self.n}")
        if not self.order_by:
            raise PlanError("top-n needs ORDER BY")
        if self.kind == "dedup":
            first = self.order_by[0]
            if self.n != 1 or first.descending or schema.dtype(first.column) is not DataType.TIMESTAMP:
                raise PlanError(
                    "without windows, ROW_NUMBER() keeps the first row per key only: rn = 1, "
                    "ORDER BY a TIMESTAMP column ascending"
                )
        _ = self.schema  # validates unique output names

    @property
    def kind(self) -> str:
        return "window" if {WINDOW_START, WINDOW_END} <= set(self.partition_by) else "dedup"

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return (self.input,)

    @cached_property
    def schema(self) -> Schema:
        extra = (Field(self.number_column, DataType.BIGINT),) if self.number_column else ()
        return Schema(self.input.schema.fields + extra)


# ---------------------------------------------------------------- two-phase aggregation


def _check_aggs(aggs: tuple[NamedExpr, ...]) -> None:
    for n in aggs:
        if not isinstance(n.expr, Agg):
            raise PlanError(f"aggregate output '{n.name}' is not an aggregate function")


@dataclass(frozen=True)
class PartialAggregate:
    """Phase one of a split Aggregate: partial state per group of each batch, before the shuffle.

    It runs inside a map task, fused with the narrow operators around it,
    so the shuffle carries one row per group instead of one per input row.
    `aggs` are the original aggregate calls (named as in the final output).
    A TUMBLE window is assigned here; HOP, CUMULATE and SESSION stay single-phase.
    Output: the keys, window_start and window_end if windowed,
    PARTIAL_DISTINCT if there is a COUNT(DISTINCT), PARTIAL_ROWS, then
    `partial_state_fields(aggs)`.
    """

    input: "Plan"
    keys: tuple[NamedExpr, ...]
    aggs: tuple[NamedExpr, ...]
    window: WindowSpec | None = None
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        schema = self.input.schema
        for n in self.keys + self.aggs:
            _require_columns(columns_used(n.expr), schema, "partial aggregate")
        _check_aggs(self.aggs)
        distinct_argument(self.aggs)
        if self.window is not None:
            if self.window.kind != "tumble":
                raise PlanError(f"a partial aggregate supports TUMBLE windows only, not {self.window.kind.upper()}")
            _check_window_column(self.window, schema)
        _ = self.schema  # validates unique output names

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return (self.input,)

    @cached_property
    def schema(self) -> Schema:
        fields = _group_fields(self.keys, self.window)
        distinct = distinct_argument(self.aggs)
        if distinct is not None:
            fields.append(Field(PARTIAL_DISTINCT, distinct.dtype))
        fields.append(Field(PARTIAL_ROWS, DataType.BIGINT))
        fields += partial_state_fields(self.aggs)
        return Schema(tuple(fields))


@dataclass(frozen=True)
class FinalAggregate:
    """Phase two of a split Aggregate: merge partial state rows per group, after the shuffle.

    Same output as the Aggregate it replaces. `keys` are expressions over
    the input (the partial's key columns, or expressions over a join of
    them); `aggs` are the original aggregate calls: they name and type the
    outputs and say how state merges, and their arguments refer to the
    partial's input, so they are not evaluated here. window_start and
    window_end are input columns; `window` gives their size, for lateness.
    """

    input: "Plan"
    keys: tuple[NamedExpr, ...]
    aggs: tuple[NamedExpr, ...]
    window: WindowSpec | None = None
    emit: str = EMIT_FINAL
    span: Span | None = _SPAN

    def __post_init__(self) -> None:
        schema = self.input.schema
        for n in self.keys:
            _require_columns(columns_used(n.expr), schema, "final aggregate")
        _check_aggs(self.aggs)
        _require_columns(set(self.state_columns), schema, "final aggregate")
        for f in partial_state_fields(self.aggs):
            if schema.dtype(f.name) is not f.dtype:
                raise PlanError(
                    f"final aggregate: partial column '{f.name}' is {schema.dtype(f.name).value}, "
                    f"expected {f.dtype.value}"
                )
        if self.window is not None and self.window.kind != "tumble":
            raise PlanError(f"a final aggregate supports TUMBLE windows only, not {self.window.kind.upper()}")
        if self.emit not in (EMIT_FINAL, EMIT_CHANGES):
            raise PlanError(f"unknown emit mode '{self.emit}'")
        _ = self.schema  # validates unique output names

    @property
    def state_columns(self) -> tuple[str, ...]:
        """The input columns the merge reads besides the keys."""
        names = [WINDOW_START, WINDOW_END] if self.window is not None else []
        if distinct_argument(self.aggs) is not None:
            names.append(PARTIAL_DISTINCT)
        names.append(PARTIAL_ROWS)
        return tuple(names) + tuple(f.name for f in partial_state_fields(self.aggs))

    @property
    def inputs(self) -> tuple["Plan", ...]:
        return (self.input,)

    @cached_property
    def schema(self) -> Schema:
        fields = _group_fields(self.keys, self.window)
        fields += [Field(n.name, n.expr.dtype) for n in self.aggs]
        return Schema(tuple(fields))


Plan = typing.Union[
    Scan, Filter, Project, Join, Aggregate, Distinct, Union, Limit, Sort, PartialAggregate, FinalAggregate, TopN, Unnest
]
PLAN_NODES = (
    Scan,
    Filter,
    Project,
    Join,
    Aggregate,
    Distinct,
    Union,
    Limit,
    Sort,
    PartialAggregate,
    FinalAggregate,
    TopN,
    Unnest,
)


# ---------------------------------------------------------------- helpers


def project(input: Plan, exprs: tuple[NamedExpr, ...] | list[NamedExpr], span: Span | None = None) -> Plan:
    """A Project, or `input` itself when the projection would pass every column through unchanged.

    Both front ends build projections through this, so `SELECT *` and no
    select at all give the same plan.
    """
    exprs = tuple(exprs)
    identity = tuple(NamedExpr(f.name, Column(f.name, f.dtype)) for f in input.schema)
    if exprs == identity:
        return input
    return Project(input, exprs, span=span)


@node_pass("plan")
def with_inputs(node: Plan, inputs: tuple[Plan, ...]) -> Plan:
    """The same node over new inputs (used by optimizer rules and rewrites)."""
    raise MissingCase(with_inputs, node)


@with_inputs.register
def _(node: Scan, inputs: tuple[Plan, ...]) -> Plan:
    return node


@with_inputs.register
def _(node: Join, inputs: tuple[Plan, ...]) -> Plan:
    return replace(node, left=inputs[0], right=inputs[1])


@with_inputs.register
def _(node: Union, inputs: tuple[Plan, ...]) -> Plan:
    return replace(node, inputs=tuple(inputs))


@with_inputs.register(Filter)
@with_inputs.register(Project)
@with_inputs.register(Aggregate)
@with_inputs.register(Distinct)
@with_inputs.register(Limit)
@with_inputs.register(Sort)
@with_inputs.register(PartialAggregate)
@with_inputs.register(FinalAggregate)
@with_inputs.register(TopN)
@with_inputs.register(Unnest)
def _(
    node: Filter | Project | Aggregate | Distinct | Limit | Sort | PartialAggregate | FinalAggregate | TopN | Unnest,
    inputs: tuple[Plan, ...],
) -> Plan:
    return replace(node, input=inputs[0])


def walk(node: Plan) -> Iterator[Plan]:
    """Every node of the plan, parents before children."""
    yield node
    for child in node.inputs:
        yield from walk(child)


def scans(node: Plan) -> list[Scan]:
    return [n for n in walk(node) if isinstance(n, Scan)]


def is_streaming(node: Plan) -> bool:
    """Whether the plan reads at least one stream (as opposed to only static tables)."""
    return any(s.source.kind == "stream" for s in scans(node))


# ---------------------------------------------------------------- rendering (in plan_text, kept importable here)


def __getattr__(name: str) -> typing.Any:
    """`describe` and `render_plan` live in plan_text (which imports this module), importable from here too."""
    if name in ("describe", "render_plan"):
        from stream_dsl.ir import plan_text

        return getattr(plan_text, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
