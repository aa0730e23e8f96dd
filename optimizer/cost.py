"""Statistics and the cost guard of aggregation pushdown.

Splitting an aggregate into a partial and a final phase, and pushing the
partial below a join, pay when a map task's partial aggregate folds many
rows into few groups: the shuffle (and the join) then carry one row per
group instead of one per event. They cost a hash aggregation per task and
barely shrink anything when nearly every row is its own group. So the two
rules ask `estimate(...)` for the rows per batch a map task sees and the
groups per batch its partial would produce, and apply only when

    rows per batch >= min_reduction x groups per batch   (default 4x)

What is known, and from where (all cheap, read at plan time):
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

import os
from dataclasses import dataclass
from typing import Iterable, cast

from stream_dsl.ir import expr as E
from stream_dsl.errors import ConnectorError
from stream_dsl.ir.plan import (Aggregate, Distinct, Filter, FinalAggregate, Join, Limit, PartialAggregate, Plan, Sort,
                             Project, Scan, SourceDef, Union, WindowSpec, is_streaming)

DEFAULT_MIN_REDUCTION = 4.0
DEFAULT_BATCH_INTERVAL_MS = 100
EQUALITY_SELECTIVITY = 0.1  # `column = constant` when the column's ndv is unknown
OTHER_SELECTIVITY = 1 / 3  # any other conjunct
SMALL_TABLE_BYTES = 4 << 20  # a files table up to this size is read at plan time for its ndv
MEMORY_NDV_ROWS = 1_000_000  # memory frames up to this many rows are counted exactly
SAMPLE_BYTES = 1 << 16  # bytes read from a text file to estimate its bytes per row

# Distinct values of the YSB generator's columns (see connectors/generator.py); event_time is unique.
GENERATOR_NDV = {
    "ysb": {"user_id": 1000, "page_id": 1000, "ad_id": 1000, "ad_type": 5, "event_type": 3, "ip_address": 256},
    "ysb_campaigns": {"ad_id": 1000, "campaign_id": 100},
}
GENERATOR_TABLE_ROWS = {"ysb_campaigns": 1000}


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


def estimate(input: Plan, keys: Iterable[E.Expr], window: WindowSpec | None, model: CostModel = DEFAULT_MODEL,
             extra: Iterable[E.Expr] = ()) -> Estimate:
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


def rows_per_batch(node: Plan, model: CostModel = DEFAULT_MODEL) -> float | None:
    """Estimated rows a map task of `node`'s pipeline sees per micro-batch (None: unknown)."""
    if isinstance(node, Scan):
        rows = source_rows_per_batch(node.source, model)
        if rows is not None and node.predicate is not None:
            rows *= selectivity(node, node.predicate)
        return rows
    if isinstance(node, Filter):
        rows = rows_per_batch(node.input, model)
        return None if rows is None else rows * selectivity(node.input, node.predicate)
    if isinstance(node, (Project, Limit, Sort)):
        return rows_per_batch(node.input, model)
    if isinstance(node, Join):
        stream = node.left if is_streaming(node.left) or not is_streaming(node.right) else node.right
        return rows_per_batch(stream, model)
    if isinstance(node, Union):
        parts = [rows_per_batch(c, model) for c in node.inputs]
        return None if any(p is None for p in parts) else max(parts)  # type: ignore[type-var]
    if isinstance(node, PartialAggregate):
        return estimate(node.input, (k.expr for k in node.keys), node.window, model).groups
    return None  # the output of state (Aggregate, FinalAggregate, Distinct): unknown


def source_rows_per_batch(source: SourceDef, model: CostModel = DEFAULT_MODEL) -> float | None:
    """Rows one micro-batch of `source` holds: from a hint, the connector's options, or its data."""
    hint = _int_option(source, "rows_per_batch")
    if hint is not None:
        return float(hint)
    connector = (source.option("connector") or "").lower()
    try:
        if connector == "generator":
            return _generator_rows(source, model)
        if connector == "memory":
            return _memory_rows(source)
        if connector == "files":
            return _files_rows(source)
    except Exception:  # statistics are best effort: what cannot be read is unknown
        return None
    return None


def _generator_rows(source: SourceDef, model: CostModel) -> float | None:
    kind = (source.option("kind") or "").lower()
    if kind in GENERATOR_TABLE_ROWS:
        return float(GENERATOR_TABLE_ROWS[kind])
    rate = float(source.option("rate") or 1_000_000)
    rows = rate * model.batch_interval_ms / 1000
    count = _int_option(source, "count")
    return float(min(rows, count)) if count is not None else rows


def _memory_rows(source: SourceDef) -> float | None:
    from stream_dsl.connectors import memory

    frames = memory.frames(source.option("id", source.name) or source.name)
    if not frames:
        return 0.0
    if source.kind == "table":
        return float(sum(f.height for f in frames))
    batch_rows = _int_option(source, "batch_rows")
    heights = [min(f.height, batch_rows) if batch_rows else f.height for f in frames]
    return float(max(heights))


def _files_rows(source: SourceDef) -> float | None:
    from stream_dsl.connectors.files import FileOptions, format_of, list_files

    options = FileOptions.parse(source)
    paths = list_files(options, f"source '{source.name}'", allow_missing=True)
    if not paths:
        return None
    if source.kind == "stream" and options.max_files_per_batch is not None:
        paths = sorted(paths, key=os.path.getsize, reverse=True)[:options.max_files_per_batch]
    fmt = options.format or format_of(paths[0])
    if fmt == "parquet":
        import polars as pl

        return float(sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in paths))
    per_row = _bytes_per_row(paths[0])
    return None if per_row is None else sum(os.path.getsize(p) for p in paths) / per_row


def _bytes_per_row(path: str) -> float | None:
    with open(path, "rb") as f:
        sample = f.read(SAMPLE_BYTES)
    lines = sample.count(b"\n")
    if not sample:
        return None
    return len(sample) / max(lines, 1)


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


def column_ndv(node: Plan, name: str) -> float | None:
    """Distinct values of column `name` of `node`'s output, across the data (None: unknown)."""
    if isinstance(node, Scan):
        return source_ndv(node.source, name)
    if isinstance(node, (Filter, Limit, Sort, Distinct)):
        return column_ndv(node.input, name)
    if isinstance(node, Project):
        for n in node.exprs:
            if n.name == name:
                return expr_ndv(node.input, n.expr)
        return None
    if isinstance(node, Join):
        return _join_ndv(node, name)
    if isinstance(node, Union):
        parts = [column_ndv(c, c.schema.names[node.schema.names.index(name)]) for c in node.inputs]
        return None if any(p is None for p in parts) else sum(parts)  # type: ignore[arg-type]
    if isinstance(node, (Aggregate, PartialAggregate, FinalAggregate)):
        for k in node.keys:
            if k.name == name:
                return expr_ndv(node.input, k.expr)
    return None


def _join_ndv(node: Join, name: str) -> float | None:
    right_of = {out: col for col, out in node.right_columns}
    if name in right_of:
        return column_ndv(node.right, right_of[name])
    own = column_ndv(node.left, name)
    if own is None and name in node.left_keys:  # a stream key refers to table rows: the table's keys bound it
        return column_ndv(node.right, node.right_keys[node.left_keys.index(name)])
    return own


def source_ndv(source: SourceDef, column: str) -> float | None:
    """Distinct values of a source column: a hint, the generator's cardinalities, or counted in small data."""
    hints = ndv_hints(source)
    if column in hints:
        return float(hints[column])
    connector = (source.option("connector") or "").lower()
    try:
        if connector == "generator":
            value = GENERATOR_NDV.get((source.option("kind") or "").lower(), {}).get(column)
            return None if value is None else float(value)
        if connector == "memory":
            return _memory_ndv(source, column)
        if connector == "files" and source.kind == "table":
            return _files_table_ndv(source, column)
    except Exception:  # statistics are best effort: what cannot be read is unknown
        return None
    return None


def ndv_hints(source: SourceDef) -> dict[str, int]:
    """The source option `ndv = 'col=N, col2=M'` as a dict; a malformed hint is a clear error."""
    text = source.option("ndv")
    if not text:
        return {}
    hints: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip().replace("_", "")
        if not sep or not value.isdigit() or name not in source.schema:
            raise ConnectorError(f"source '{source.name}': option ndv must look like 'column=N, column2=M' "
                           f"with columns of the source, got '{text}'")
        hints[name] = int(value)
    return hints


def _memory_ndv(source: SourceDef, column: str) -> float | None:
    import polars as pl

    from stream_dsl.connectors import memory

    frames = [f for f in memory.frames(source.option("id", source.name) or source.name)
              if isinstance(f, pl.DataFrame) and column in f.columns]
    if not frames or sum(f.height for f in frames) > MEMORY_NDV_ROWS:
        return None
    return float(pl.concat([f.select(column) for f in frames], how="vertical_relaxed")[column].n_unique())


def _files_table_ndv(source: SourceDef, column: str) -> float | None:
    from stream_dsl.connectors import open_table
    from stream_dsl.connectors.files import FileOptions, list_files

    paths = list_files(FileOptions.parse(source), f"table '{source.name}'", allow_missing=True)
    if not paths or sum(os.path.getsize(p) for p in paths) > SMALL_TABLE_BYTES:
        return None
    return float(open_table(source).read([column])[column].n_unique())


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


def batch_time_span_ms(node: Plan, column: str, model: CostModel = DEFAULT_MODEL) -> float | None:
    """The event time one batch spans, following `column` down to a source (None: unknown)."""
    if isinstance(node, Scan):
        connector = (node.source.option("connector") or "").lower()
        if connector == "generator":
            return float(model.batch_interval_ms)
        if connector == "memory":
            try:
                return _memory_span_ms(node.source, column)
            except Exception:  # best effort, as above
                return None
        return None
    if isinstance(node, (Filter, Limit, Sort, Distinct)):
        return batch_time_span_ms(node.input, column, model)
    if isinstance(node, Project):
        for n in node.exprs:
            if n.name == column and isinstance(n.expr, E.Column):
                return batch_time_span_ms(node.input, n.expr.name, model)
        return None
    if isinstance(node, Join):
        if column in node.left.schema.names:
            return batch_time_span_ms(node.left, column, model)
        return None
    return None


def _memory_span_ms(source: SourceDef, column: str) -> float | None:
    import polars as pl

    from stream_dsl.connectors import memory

    spans = []
    for f in memory.frames(source.option("id", source.name) or source.name):
        if isinstance(f, pl.DataFrame) and column in f.columns and f.height:
            t = f.select(pl.col(column).cast(pl.Datetime("ms")).dt.epoch("ms"))[column]
            if t.null_count() < t.len():
                # an Int64 column: its min and max are ints (polars types them as any scalar)
                spans.append(float(cast(int, t.max()) - cast(int, t.min())))
    return max(spans) if spans else None


def _int_option(source: SourceDef, key: str) -> int | None:
    value = source.option(key)
    if value is None:
        return None
    try:
        return int(value.strip().replace("_", ""))
    except ValueError:
        return None
