"""Statistics and the cost guard of aggregation pushdown.

Splitting an aggregate into a partial and a final phase, and pushing the
partial below a join, pay when a map task's partial aggregate folds many
rows into few groups: the shuffle (and the join) then carry one row per
group instead of one per event. They cost a hash aggregation per task and
barely shrink anything when nearly every row is its own group. So the two
rules ask `estimate(...)` for the rows per batch a map task sees and the
groups per batch its partial would produce, and apply only when

    rows per batch >= min_reduction x groups per batch   (default 4x)

Every source statistic comes from its connector's `statistics()` hook
(`stream_dsl.connectors.statistics`); the walkers below follow a column or
the rows through the plan, one case per plan node (stream_dsl.ir.dispatch).
What the connectors know (all cheap, read at plan time):
- rows per batch: the `generator` source's `rate` x the batch interval
  (capped by `count`); a memory source's frames; a files source's file
  sizes (bytes per batch over bytes per row, sampled from the first file;
  parquet row counts from metadata); a static table's rows; or the
  source option `rows_per_batch = 'N'`.
- distinct values (ndv) of a column: the source option
  `ndv = 'col=N, col2=M'`; the YSB generator's known cardinalities (1000
  ads, 100 campaigns, 3 event types, ...); memory frames (counted); files
  tables of at most `SMALL_TABLE_BYTES` (read once and counted). A stream
  column that is joined to a static table and has no ndv of its own takes
  the table key's ndv (stream keys usually refer to table rows).
- selectivity of a predicate: `column = constant` is 1/ndv (0.1 if ndv is
  unknown); any other conjunct keeps a third of the rows.
- windows per batch (TUMBLE): a generator batch spans the batch interval,
  a memory batch its own events; otherwise one window is assumed.

Defaults when unknown: if the rows per batch or the distinct values of a
grouping column cannot be estimated, the guard assumes the pushdown pays
and applies it (as Spark and Flink do their partial aggregation by
default): a streaming aggregate's groups are usually far fewer than the
events of a batch, and when they are not the partial aggregate costs one
extra hash aggregation of the batch, never a wrong answer. Statistics
are best effort: a source whose data cannot be read at plan time (a
missing path, a bad file) is simply unknown; only a malformed `ndv` hint
is an error. The batch interval is the query's (`RunConfig`), bound into
the rules by `optimizer.fixpoint`; the decision is made once per query, at
plan time (there is no run-time fallback: a partial over a batch that
does not shrink costs one polars group-by).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from stream_dsl.connectors.statistics import Statistics, ndv_hints, source_statistics
from stream_dsl.ir import expr as E
from stream_dsl.ir.dispatch import MissingCase, node_pass
from stream_dsl.ir.definitions import SourceDef, WindowSpec
from stream_dsl.ir.plan import (
    Aggregate,
    Distinct,
    Filter,
    FinalAggregate,
    Join,
    Limit,
    PartialAggregate,
    Plan,
    Sort,
    Project,
    Scan,
    TopN,
    Union,
    is_streaming,
    Unnest,
)

DEFAULT_MIN_REDUCTION = 4.0
DEFAULT_BATCH_INTERVAL_MS = 100
EQUALITY_SELECTIVITY = 0.1  # `column = constant` when the column's ndv is unknown
OTHER_SELECTIVITY = 1 / 3  # any other conjunct

__all__ = [
    "CostModel",
    "Estimate",
    "DEFAULT_MODEL",
    "FORCE",
    "estimate",
    "rows_per_batch",
    "column_ndv",
    "expr_ndv",
    "source_rows_per_batch",
    "source_ndv",
    "ndv_hints",
    "selectivity",
    "windows_per_batch",
    "batch_time_span_ms",
    "statistics",
]


@dataclass(frozen=True, slots=True)
class CostModel:
    """What the cost guard assumes: the batch interval, the reduction that pays, and `force` (tests only).

    `force=True` applies every valid pushdown whatever the estimate (to test
    the two-phase path on small data); `enabled=False` applies none.
    """

    batch_interval_ms: int = DEFAULT_BATCH_INTERVAL_MS
    min_reduction: float = DEFAULT_MIN_REDUCTION
    force: bool = False
    enabled: bool = True

    @classmethod
    def from_config(cls, config: object | None) -> "CostModel":
        interval = getattr(config, "batch_interval_ms", DEFAULT_BATCH_INTERVAL_MS)
        return cls(batch_interval_ms=int(interval))


DEFAULT_MODEL = CostModel()
FORCE = CostModel(force=True)


@dataclass(frozen=True, slots=True)
class Estimate:
    """Rows per batch a map task sees and groups per batch its partial aggregate makes (None: unknown)."""

    rows: float | None
    groups: float | None

    def pays(self, model: CostModel) -> bool:
        """Whether the pushdown pays under `model` (unknown counts: assume it does)."""
        if not model.enabled:
            return False
        if model.force or self.rows is None or self.groups is None:
            return True
        return self.rows >= model.min_reduction * self.groups

    def describe(self) -> str:
        def text(value: float | None) -> str:
            return "unknown" if value is None else f"{value:,.0f}"

        ratio = ""
        if self.rows is not None and self.groups:
            ratio = f" (x{self.rows / self.groups:,.1f})"
        return f"rows/batch {text(self.rows)}, groups/batch {text(self.groups)}{ratio}"


def estimate(
    input: Plan,
    keys: Iterable[E.Expr],
    window: WindowSpec | None,
    model: CostModel = DEFAULT_MODEL,
    extra: Iterable[E.Expr] = (),
) -> Estimate:
    """The rows per batch of `input` and the groups per batch of grouping it on `keys` (+ `extra`) and `window`."""
    rows = rows_per_batch(input, model)
    groups: float | None = 1.0
    for e in list(keys) + list(extra):
        n = expr_ndv(input, e)
        groups = None if n is None or groups is None else groups * n
    if groups is not None and window is not None:
        groups *= windows_per_batch(input, window, model)
    if groups is not None and rows is not None:
        groups = min(groups, rows)
    return Estimate(rows, groups)


# ---------------------------------------------------------------- rows per batch


def statistics(source: SourceDef, model: CostModel = DEFAULT_MODEL) -> Statistics:
    """What `source`'s connector knows of its data (and the source's hints), under `model`'s batch interval."""
    return source_statistics(source, model.batch_interval_ms)


@node_pass("plan")
def rows_per_batch(node: Plan, model: CostModel = DEFAULT_MODEL) -> float | None:
    """Estimated rows a map task of `node`'s pipeline sees per micro-batch (None: unknown)."""
    raise MissingCase(rows_per_batch, node)


@rows_per_batch.register
def _(node: Scan, model: CostModel = DEFAULT_MODEL) -> float | None:
    rows = source_rows_per_batch(node.source, model)
    if rows is not None and node.predicate is not None:
        rows *= selectivity(node, node.predicate)
    return rows


@rows_per_batch.register
def _(node: Filter, model: CostModel = DEFAULT_MODEL) -> float | None:
    rows = rows_per_batch(node.input, model)
    return None if rows is None else rows * selectivity(node.input, node.predicate)


@rows_per_batch.register(Project)
@rows_per_batch.register(Limit)
@rows_per_batch.register(Sort)
def _(node: Project | Limit | Sort, model: CostModel = DEFAULT_MODEL) -> float | None:
    return rows_per_batch(node.input, model)


@rows_per_batch.register
def _(node: Join, model: CostModel = DEFAULT_MODEL) -> float | None:
    stream = node.left if is_streaming(node.left) or not is_streaming(node.right) else node.right
    return rows_per_batch(stream, model)


@rows_per_batch.register
def _(node: Union, model: CostModel = DEFAULT_MODEL) -> float | None:
    parts = [rows_per_batch(c, model) for c in node.inputs]
    return None if any(p is None for p in parts) else max(parts)  # type: ignore[type-var]


@rows_per_batch.register
def _(node: Unnest, model: CostModel = DEFAULT_MODEL) -> float | None:
    return rows_per_batch(node.input, model)  # as many rows as lists hold: unknown, the input's a guess


@rows_per_batch.register
def _(node: PartialAggregate, model: CostModel = DEFAULT_MODEL) -> float | None:
    return estimate(node.input, (k.expr for k in node.keys), node.window, model).groups


@rows_per_batch.register(Aggregate)
@rows_per_batch.register(FinalAggregate)
@rows_per_batch.register(Distinct)
@rows_per_batch.register(TopN)
def _(node: Aggregate | FinalAggregate | Distinct, model: CostModel = DEFAULT_MODEL) -> float | None:
    return None  # the output of state: unknown


def source_rows_per_batch(source: SourceDef, model: CostModel = DEFAULT_MODEL) -> float | None:
    """Rows one micro-batch of `source` holds: from a hint, or its connector's statistics."""
    return statistics(source, model).rows_per_batch


# ---------------------------------------------------------------- distinct values


def expr_ndv(node: Plan, e: E.Expr) -> float | None:
    """Distinct values of expression `e` over `node`'s output: a column's, or the product over its columns."""
    if isinstance(e, E.Literal):
        return 1.0
    if isinstance(e, E.Column):
        return column_ndv(node, e.name)
    used = sorted(E.columns_used(e))
    total = 1.0
    for name in used:
        n = column_ndv(node, name)
        if n is None:
            return None
        total *= n
    if isinstance(e, E.Binary) and e.op in E.COMPARISONS + ("AND", "OR"):
        total = min(total, 3.0)  # TRUE, FALSE, NULL
    return total


@node_pass("plan")
def column_ndv(node: Plan, name: str) -> float | None:
    """Distinct values of column `name` of `node`'s output, across the data (None: unknown)."""
    raise MissingCase(column_ndv, node)


@column_ndv.register
def _(node: Scan, name: str) -> float | None:
    return source_ndv(node.source, name)


@column_ndv.register(Filter)
@column_ndv.register(Limit)
@column_ndv.register(Sort)
@column_ndv.register(Distinct)
def _(node: Filter | Limit | Sort | Distinct, name: str) -> float | None:
    return column_ndv(node.input, name)


@column_ndv.register
def _(node: Unnest, name: str) -> float | None:
    return None if name in (node.element, node.ordinality) else column_ndv(node.input, name)


@column_ndv.register
def _(node: TopN, name: str) -> float | None:
    return None if name == node.number_column else column_ndv(node.input, name)


@column_ndv.register
def _(node: Project, name: str) -> float | None:
    for n in node.exprs:
        if n.name == name:
            return expr_ndv(node.input, n.expr)
    return None


@column_ndv.register
def _(node: Join, name: str) -> float | None:
    right_of = {out: col for col, out in node.right_columns}
    if name in right_of:
        return column_ndv(node.right, right_of[name])
    own = column_ndv(node.left, name)
    if own is None and name in node.left_keys:  # a stream key refers to table rows: the table's keys bound it
        return column_ndv(node.right, node.right_keys[node.left_keys.index(name)])
    return own


@column_ndv.register
def _(node: Union, name: str) -> float | None:
    parts = [column_ndv(c, c.schema.names[node.schema.names.index(name)]) for c in node.inputs]
    return None if any(p is None for p in parts) else sum(parts)  # type: ignore[arg-type]


@column_ndv.register(Aggregate)
@column_ndv.register(PartialAggregate)
@column_ndv.register(FinalAggregate)
def _(node: Aggregate | PartialAggregate | FinalAggregate, name: str) -> float | None:
    for k in node.keys:
        if k.name == name:
            return expr_ndv(node.input, k.expr)
    return None


def source_ndv(source: SourceDef, column: str) -> float | None:
    """Distinct values of a source column: a hint, or its connector's statistics."""
    return statistics(source).ndv(column)


# ---------------------------------------------------------------- predicates and windows


def selectivity(node: Plan, predicate: E.Expr) -> float:
    """The share of `node`'s rows a predicate keeps (textbook defaults; see the module doc)."""
    share = 1.0
    for part in E.conjuncts(predicate):
        share *= _conjunct_selectivity(node, part)
    return share


def _conjunct_selectivity(node: Plan, e: E.Expr) -> float:
    if isinstance(e, E.Literal):
        return 1.0 if e.value is True else 0.0
    if isinstance(e, E.Binary) and e.op == "=":
        column = e.left if isinstance(e.left, E.Column) else e.right if isinstance(e.right, E.Column) else None
        other = e.right if column is e.left else e.left
        if column is not None and isinstance(other, E.Literal):
            n = column_ndv(node, column.name)
            return EQUALITY_SELECTIVITY if not n else 1.0 / n
    return OTHER_SELECTIVITY


def windows_per_batch(node: Plan, window: WindowSpec, model: CostModel = DEFAULT_MODEL) -> float:
    """How many TUMBLE windows one batch's events fall into (1 when the batch's time span is unknown)."""
    span = batch_time_span_ms(node, window.time_column, model)
    if span is None:
        return 1.0
    return span / window.size_ms + 1.0  # an interval of length span overlaps span/size + 1 windows on average


@node_pass("plan")
def batch_time_span_ms(node: Plan, column: str, model: CostModel = DEFAULT_MODEL) -> float | None:
    """The event time one batch spans, following `column` down to a source (None: unknown)."""
    raise MissingCase(batch_time_span_ms, node)


@batch_time_span_ms.register
def _(node: Scan, column: str, model: CostModel = DEFAULT_MODEL) -> float | None:
    return statistics(node.source, model).batch_span_ms(column)


@batch_time_span_ms.register(Filter)
@batch_time_span_ms.register(Limit)
@batch_time_span_ms.register(Sort)
@batch_time_span_ms.register(Distinct)
def _(node: Filter | Limit | Sort | Distinct, column: str, model: CostModel = DEFAULT_MODEL) -> float | None:
    return batch_time_span_ms(node.input, column, model)


@batch_time_span_ms.register
def _(node: Unnest, column: str, model: CostModel = DEFAULT_MODEL) -> float | None:
    return None if column in (node.element, node.ordinality) else batch_time_span_ms(node.input, column, model)


@batch_time_span_ms.register
def _(node: Project, column: str, model: CostModel = DEFAULT_MODEL) -> float | None:
    for n in node.exprs:
        if n.name == column and isinstance(n.expr, E.Column):
            return batch_time_span_ms(node.input, n.expr.name, model)
    return None


@batch_time_span_ms.register
def _(node: Join, column: str, model: CostModel = DEFAULT_MODEL) -> float | None:
    if column in node.left.schema.names:
        return batch_time_span_ms(node.left, column, model)
    return None


@batch_time_span_ms.register(Union)
@batch_time_span_ms.register(Aggregate)
@batch_time_span_ms.register(PartialAggregate)
@batch_time_span_ms.register(FinalAggregate)
@batch_time_span_ms.register(TopN)
def _(node: Plan, column: str, model: CostModel = DEFAULT_MODEL) -> float | None:
    return None  # several inputs, or the output of state: unknown
