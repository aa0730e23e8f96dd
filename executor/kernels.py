"""Stage pipelines compiled to polars: one lazy query per task.

A run of narrow operators (scan, filter, project, broadcast join, partial
aggregate, and the hash partitioning of a shuffle write) becomes ONE polars
LazyFrame query, collected once, so polars runs the whole fused pipeline
in one go (and, on large inputs, optimizes across it).
When that query fails, the operators are replayed one at a time to find
the culprit, and the error becomes an `ExecutionError` naming it
("Project y := upper(x): ..."), never a bare polars traceback.

Every query of the executor runs on polars' in-memory engine (`executor.state.step.ENGINE`):
a micro-batch is already in memory and small, and polars 2's default
engine ("auto", which picks the streaming engine) costs 50 to 100 us more
per query to start, more than the whole work on a few hundred rows; and a
query over a small input skips polars' optimizer (`state.collect`).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Mapping, Sequence, TypeVar, cast

import polars as pl

from executor.state.aggregate_exprs import batch_partials
from executor.state.step import collect
from executor.state.windows import Windows
from optimizer.physical.changelog import MarkAppendOp
from optimizer.physical.stages import (
    PARTITION_COLUMN,
    TIME_COLUMN,
    BroadcastJoinOp,
    FilterOp,
    Operator,
    OutputWrite,
    PartialAggregateOp,
    ProjectOp,
    ReadOp,
    ScanOp,
    ShuffleWrite,
    StatefulOp,
    UnnestOp,
)
from stream_dsl.ir.to_polars import CastFailure, compile_expr, compile_predicate
from stream_dsl.ir.expr import Column, columns_used
from stream_dsl.errors import DSLError, ExecutionError
from stream_dsl.ir.column_names import (
    CHANGELOG_OP,
    PARTIAL_ROWS,
    TABLE_ROW,
    WINDOW_END,
    WINDOW_START,
    join_stream_key,
    join_table_col,
    join_table_key,
)
from stream_dsl.ir.types import DataType, Schema

Tables = Mapping[str, pl.DataFrame]
Step = Callable[[pl.LazyFrame, Tables], pl.LazyFrame]


def error_text(exc: BaseException) -> str:
    """The useful part of an exception message (polars appends the whole expression tree)."""
    text = str(exc).split("\n\nThis error occurred")[0].strip()
    overflow = re.search(r"conversion from `i128` to `i64` failed .*values: \[(-?\d+)", text)
    if overflow:  # state.checked_sum's strict cast
        return f"integer overflow: SUM reached {overflow.group(1)}, which does not fit in BIGINT"
    return text.splitlines()[0] if text else type(exc).__name__


def operator_error(op_text: str, exc: BaseException) -> ExecutionError:
    return ExecutionError(f"{op_text}: {error_text(exc)}")


# ---------------------------------------------------------------- one step per operator


def _carried(carry: str | None) -> list[pl.Expr]:
    """The carried column's select (`Pipeline.carry`): a step that picks its output columns keeps it."""
    return [] if carry is None else [pl.col(carry)]


def _scan(op: ScanOp, carry: str | None) -> Step:
    predicate = None if op.predicate is None else compile_predicate(op.predicate)
    # expressions, not names: polars would make them anew every batch
    columns = [pl.col(c) for c in op.columns] + _carried(carry)

    def step(lf: pl.LazyFrame, tables: Tables) -> pl.LazyFrame:
        if predicate is not None:
            lf = lf.filter(predicate)
        return lf.select(columns)

    return step


def _filter(op: FilterOp, carry: str | None) -> Step:
    predicate = compile_predicate(op.predicate)
    return lambda lf, tables: lf.filter(predicate)


def _project_exprs(op: ProjectOp) -> list[pl.Expr]:
    exprs = []
    for n in op.exprs:
        e = compile_expr(n.expr)
        if n.expr.dtype is not DataType.NULL:
            e = e.cast(n.expr.dtype.polars)
        exprs.append(e.alias(n.name))
    return exprs


def _project(op: ProjectOp, carry: str | None) -> Step:
    exprs = _project_exprs(op) + _carried(carry)
    names = [n.name for n in op.exprs] + _carried(carry)
    if all(columns_used(n.expr) for n in op.exprs):  # one node instead of two: a query node costs ~20 us
        return lambda lf, tables: lf.select(exprs)
    # with_columns broadcasts constant expressions to the frame's height; select alone would not.
    return lambda lf, tables: lf.with_columns(exprs).select(names)


def _broadcast_join(op: BroadcastJoinOp, carry: str | None) -> Step:
    left_keys = [
        pl.col(k).cast(t.polars).alias(join_stream_key(i)) for i, (k, t) in enumerate(zip(op.stream_keys, op.key_types))
    ]
    lk = [pl.col(join_stream_key(i)) for i in range(len(left_keys))]  # expressions: names are parsed every batch
    rk = [pl.col(join_table_key(i)) for i in range(len(left_keys))]
    select = [
        pl.col(c).alias(name) if side == "stream" else pl.col(join_table_col(c)).alias(name)
        for side, c, name in op.output
    ] + _carried(carry)

    kept: list[tuple[pl.DataFrame, pl.LazyFrame]] = []  # the table side's last frame and its LazyFrame

    def step(lf: pl.LazyFrame, tables: Tables) -> pl.LazyFrame:
        table = tables[op.table_id]
        last = kept[0] if kept else None
        if last is None or last[0] is not table:  # a new table (another query, a refreshed one): its own LazyFrame
            last = (table, table.lazy())
            kept[:] = [last]
        right = last[1]
        if op.kind == "cross":
            return lf.join(right, how="cross", maintain_order="left").select(select)
        how = cast(Literal["inner", "left"], op.kind)  # 'inner' or 'left' (right and full: lower.outer_joins)
        joined = lf.with_columns(left_keys).join(
            right, left_on=lk, right_on=rk, how=how, coalesce=False, maintain_order="left"
        )
        return joined.select(select)

    return step


def prepare_table(op: BroadcastJoinOp, frame: pl.DataFrame) -> pl.DataFrame:
    """The table side of a broadcast join, renamed apart and with cast keys (done once per query)."""
    renamed = [pl.col(c).alias(join_table_col(c)) for c in frame.columns]
    keys = [
        pl.col(k).cast(t.polars).alias(join_table_key(i)) for i, (k, t) in enumerate(zip(op.table_keys, op.key_types))
    ]
    number = pl.int_range(pl.len(), dtype=pl.Int64).alias(join_table_col(TABLE_ROW))  # for RIGHT and FULL joins
    return frame.select(renamed + keys + [number])


def _partial_aggregate(op: PartialAggregateOp, carry: str | None) -> Step:
    """Group the task's rows into partial state: one row per group (and TUMBLE window) of this task (and value
    of the carried column)."""
    assign = []
    if op.window is not None:  # a TUMBLE window; a NULL time gets a NULL window, late downstream
        start, end = Windows.of(op.window).bounds(pl.col(TIME_COLUMN).dt.epoch("ms"))
        assign = [start.alias(WINDOW_START), end.alias(WINDOW_END)]
    groups = list(op.group_columns) + _carried(carry)
    aggs = batch_partials(op.aggs)
    output = [pl.col(f.name).cast(f.dtype.polars) for f in op.output] + _carried(carry)

    def step(lf: pl.LazyFrame, tables: Tables) -> pl.LazyFrame:
        if assign:
            lf = lf.with_columns(assign)
        if groups:
            lf = lf.group_by(groups).agg(aggs)
        else:  # one group; none at all when the task has no rows
            lf = lf.select(aggs).filter(pl.col(PARTIAL_ROWS) > 0)
        return lf.select(output)

    return step


def _read(op: ReadOp, carry: str | None) -> Step:
    return lambda lf, tables: lf


def _unnest(op: UnnestOp, carry: str | None) -> Step:
    """Explode: an empty or NULL list gives no row, or (outer) one row with a NULL element."""
    lists = pl.col(op.column)
    added = [lists.alias(op.element)]
    if op.ordinality is not None:
        added.append(pl.int_ranges(1, lists.list.len() + 1, dtype=pl.Int64).alias(op.ordinality))
    exploded = [op.element] + ([op.ordinality] if op.ordinality is not None else [])
    keep = lists.list.len() > 0

    def step(lf: pl.LazyFrame, tables: Tables) -> pl.LazyFrame:
        return (lf if op.outer else lf.filter(keep)).with_columns(added).explode(exploded, empty_as_null=True)

    return step


def _mark_append(op: MarkAppendOp, carry: str | None) -> Step:
    mark = pl.lit(1, dtype=pl.Int8).alias(CHANGELOG_OP)
    return lambda lf, tables: lf.with_columns(mark)


# each builder takes an op of its key's type, which a dict's type cannot say
# a carried column (`Pipeline.carry`) passes through every step: those that pick their columns keep it
_STEPS: dict[type, Callable[[Any, str | None], Step]] = {
    MarkAppendOp: _mark_append,
    ScanOp: _scan,
    FilterOp: _filter,
    ProjectOp: _project,
    BroadcastJoinOp: _broadcast_join,
    ReadOp: _read,
    PartialAggregateOp: _partial_aggregate,
    UnnestOp: _unnest,
}


# ---------------------------------------------------------------- fused pipelines


@dataclass(frozen=True)
class Pipeline:
    """A compiled run of narrow operators, optionally ending in hash partitioning."""

    ops: tuple[Operator, ...]
    steps: tuple[Step, ...]
    partition_keys: tuple[str, ...] | None = None
    partitions: int = 1
    where: str = ""
    carry: str | None = None  # a column every step passes through (`carrying`)

    def carrying(self, column: str) -> "Pipeline":
        """This pipeline with `column` passed through every step and kept in the output (a partial aggregate
        groups by it too), so one query over several batches' rows tagged by it gives each batch's output
        (`executor/query/fused_group.py`). Compiled once per column."""
        kept = self._carrying.get(column)
        if kept is None:
            steps = tuple(_STEPS[type(op)](op, column) for op in self.ops)
            kept = self._carrying[column] = dataclasses.replace(self, steps=steps, carry=column)
        return kept

    @functools.cached_property
    def _carrying(self) -> dict[str, "Pipeline"]:
        return {}

    @functools.cached_property
    def _partition(self) -> pl.Expr:
        """The partition column's expression, built once (building it costs more than computing it)."""
        return partition_of(list(self.partition_keys or ()), self.partitions)

    @functools.cached_property
    def _project_and_partition(self) -> list[pl.Expr] | None:
        """A trailing projection that passes the partition keys through, and the partitioning, as one select.

        Saves polars a query node (~20 us on a micro-batch): the keys are
        hashed from the projection's input columns they copy, under their
        output names, so the partition of every row is the same.
        """
        last = self.ops[-1] if self.ops else None
        if not isinstance(last, ProjectOp) or not self.partition_keys:
            return None
        exprs = {n.name: n.expr for n in last.exprs}
        if not all(columns_used(e) for e in exprs.values()):
            return None
        sources = []
        for key in self.partition_keys:
            e = exprs.get(key)
            if not isinstance(e, Column):
                return None
            column = pl.col(e.name) if e.dtype is DataType.NULL else pl.col(e.name).cast(e.dtype.polars)
            sources.append(column.alias(key))  # exactly the projection's expression for the key
        hashed = (pl.struct(sources).hash(seed=0) % self.partitions).cast(pl.UInt32).alias(PARTITION_COLUMN)
        return _project_exprs(last) + _carried(self.carry) + [hashed]

    def run(self, frame: pl.DataFrame, tables: Tables) -> pl.DataFrame:
        """The pipeline's output for one input frame."""
        return self._collect(frame, tables, partition=False)

    def run_partitioned(self, frame: pl.DataFrame, tables: Tables) -> dict[int, pl.DataFrame]:
        """The output split by the hash of `partition_keys` into `partitions` (non-empty parts only)."""
        return self.parts(self._collect(frame, tables, partition=self.splits), True)

    def counted(
        self, frame: pl.DataFrame, tables: Tables, partition: bool
    ) -> tuple[dict[int, pl.DataFrame], list[int]]:
        """`run_partitioned` (or `run`'s frame as partition 0) and the rows after each operator, the input's
        first, for the batches `why` samples: in one query with its counts (`executor/query/fused_counts.py`),
        else (a Python UDF, a failing query) `counted_by_operator`."""
        from executor.query.fused_counts import counted_frame  # it builds on this module

        fused = counted_frame(self, frame, tables, partition)
        return self.counted_by_operator(frame, tables, partition) if fused is None else fused

    def counted_by_operator(
        self, frame: pl.DataFrame, tables: Tables, partition: bool
    ) -> tuple[dict[int, pl.DataFrame], list[int]]:
        """`counted` one operator at a time, each one's output collected: an error names its operator."""
        rows, current = [frame.height], frame
        for op, step in zip(self.ops, self.steps):
            try:
                current = collect(step(current.lazy(), tables), current.height)
            except DSLError:
                raise
            except Exception as exc:
                raise operator_error(op.describe(), exc) from exc
            rows.append(current.height)
        return self.as_parts(current, partition), rows

    merges: ClassVar[bool] = False  # whether `finish` merges rows (`combine.CombinedPipeline`)

    def finish(self, lf: pl.LazyFrame, partition: bool) -> pl.LazyFrame:
        """The output after the operators' steps: with the partition column when `partition` (`fused_counts.py`)."""
        return lf.with_columns(self._partition) if partition else lf

    @property
    def splits(self) -> bool:
        """Whether a shuffled output is split by the hash of `partition_keys` (else it goes whole, as partition 0)."""
        return self.partitions > 1 and bool(self.partition_keys)

    def parts(self, out: pl.DataFrame, partition: bool) -> dict[int, pl.DataFrame]:
        """An output as the task hands it on: partition 0 whole when no shuffle follows (not `partition`), else
        its non-empty parts, by the partition column the query added when it `splits`."""
        if not partition:
            return {0: out}
        if not out.height:
            return {}
        return split_partitions(out) if self.splits else {0: out}

    def as_parts(self, out: pl.DataFrame, partition: bool) -> dict[int, pl.DataFrame]:
        """`parts` of an output made without its partition column (a counted one): the column is added first."""
        if partition and self.splits and out.height:
            out = out.with_columns(self._partition)
        return self.parts(out, partition)

    @functools.cached_property
    def _serial_projection(self) -> list[CopiedColumn | pl.Expr] | None:
        """A trailing projection whose every output reads a column (one row per row), for `select_serially`."""
        last = self.ops[-1] if self.ops else None
        if not isinstance(last, ProjectOp) or not all(columns_used(n.expr) for n in last.exprs):
            return None
        return _serial_items(last)

    @functools.cached_property
    def _serial_project_and_partition(self) -> list[CopiedColumn | pl.Expr] | None:
        """`_project_and_partition` for `select_serially`."""
        fused = self._project_and_partition
        if fused is None:
            return None
        return _serial_items(self.ops[-1]) + [fused[-1]]  # type: ignore[arg-type]

    def _steps_for(self, frame: pl.DataFrame) -> tuple[Step, ...]:
        head = self.ops[0] if self.ops else None
        if isinstance(head, ScanOp) and head.predicate is None and tuple(frame.columns) == head.columns:
            return self.steps[1:]  # the source gave exactly the scan's columns: its select would do nothing
        return self.steps

    def _lazy(self, frame: pl.DataFrame, tables: Tables, partition: bool) -> pl.LazyFrame:
        return self._over(frame.lazy(), self._steps_for(frame), tables, partition)

    def lazy_over(self, lf: pl.LazyFrame, columns: Sequence[str], tables: Tables, partition: bool) -> pl.LazyFrame:
        """The pipeline over a lazy input of `columns` (a source read fused with its stage: fused_read.py)."""
        head = self.ops[0] if self.ops else None
        same = isinstance(head, ScanOp) and head.predicate is None and tuple(columns) == head.columns
        return self._over(lf, self.steps[1:] if same else self.steps, tables, partition)

    def lazy_after_scan(self, kept: pl.LazyFrame, tables: Tables, partition: bool) -> pl.LazyFrame:
        """The pipeline after its scan step, over what that step gives (`executor/query/fused_parquet.py`)."""
        return self._over(kept, self.steps[1:], tables, partition)

    def _over(self, lf: pl.LazyFrame, steps: tuple[Step, ...], tables: Tables, partition: bool) -> pl.LazyFrame:
        fused = self._project_and_partition if partition else None
        for step in steps[:-1] if fused is not None else steps:
            lf = step(lf, tables)
        if fused is not None:
            return lf.select(fused)
        if partition:
            lf = lf.with_columns(self._partition)
        return lf

    def _collect(self, frame: pl.DataFrame, tables: Tables, partition: bool) -> pl.DataFrame:
        try:
            if frame.height < SERIAL_BELOW:
                out = self._collect_serially(frame, tables, partition)
                if out is not None:
                    return out
            return collect(self._lazy(frame, tables, partition), frame.height)
        except DSLError:
            raise
        except Exception as exc:  # polars errors, CastFailure from a CAST
            raise self._diagnose(frame, tables, exc) from exc

    def _collect_serially(self, frame: pl.DataFrame, tables: Tables, partition: bool) -> pl.DataFrame | None:
        """A small input's result with the final projection evaluated one expression at a time.

        None when the pipeline does not end in such a projection, or when
        anything fails (the one-query path then runs, and reports the error).
        """
        tail = self._serial_project_and_partition if partition else self._serial_projection
        steps = self._steps_for(frame)
        if tail is None or not steps:
            return None
        try:
            base = frame
            if len(steps) > 1:
                lf = frame.lazy()
                for step in steps[:-1]:
                    lf = step(lf, tables)
                base = collect(lf, frame.height)
            return select_serially(base, tail)
        except Exception:
            return None

    def _diagnose(self, frame: pl.DataFrame, tables: Tables, exc: Exception) -> ExecutionError:
        """Replay operator by operator to name the one that fails."""
        current = frame
        for op, step in zip(self.ops, self.steps):
            try:
                current = collect(step(current.lazy(), tables), current.height)
            except Exception as inner:
                return operator_error(op.describe(), inner)
        where = f" in {self.where}" if self.where else ""
        return ExecutionError(f"stage pipeline{where} failed: {error_text(exc)}")


def partition_of(keys: list[str], partitions: int) -> pl.Expr:
    """The partition of each row: a hash of the key columns (NULLs included), modulo `partitions`."""
    return (pl.struct(keys).hash(seed=0) % partitions).cast(pl.UInt32).alias(PARTITION_COLUMN)


SERIAL_BELOW = 16_384  # rows: below this a projection's outputs are computed one by one (`select_serially`)


@dataclass(frozen=True)
class CopiedColumn:
    """A projection output that copies an input column (cast to `dtype`, unless None), computed without a query."""

    source: str
    dtype: pl.DataType | None
    name: str


def _serial_items(op: ProjectOp) -> list[CopiedColumn | pl.Expr]:
    """A projection's outputs as `select_serially` takes them: column copies, and the expressions `_project` runs."""
    items: list[CopiedColumn | pl.Expr] = []
    for named, expr in zip(op.exprs, _project_exprs(op)):
        if isinstance(named.expr, Column):
            dtype = None if named.expr.dtype is DataType.NULL else named.expr.dtype.polars
            items.append(CopiedColumn(named.expr.name, dtype, named.name))
        else:
            items.append(expr)
    return items


def select_serially(frame: pl.DataFrame, items: Sequence[CopiedColumn | pl.Expr]) -> pl.DataFrame | None:
    """`frame.select(...)` of `items`, one query per expression; None unless every one gives a value per row.

    A select of several expressions hands them to polars' thread pool to
    run in parallel. On a small frame the hand-off costs more than the
    work, and the pool's threads spin for more while they wait: the
    projection and partitioning of a 50-row micro-batch (3 expressions)
    took 106-120 us of wall and 144-162 us of CPU in one select, 86 us of
    both one by one; at 16k rows both ways cost the same. Copied columns
    need no query at all. With workers sharing the cores, CPU is what counts.
    """
    if not items:
        return None
    lf = frame.lazy()
    columns = []
    for item in items:
        if isinstance(item, CopiedColumn):
            column = frame.get_column(item.source)
            if item.dtype is not None and column.dtype != item.dtype:
                column = column.cast(item.dtype)
            columns.append(column.alias(item.name))
        else:
            columns.append(collect(lf.select(item), frame.height).to_series())
    if any(len(c) != frame.height for c in columns):
        return None
    return frame_of(columns)


def frame_of(columns: Sequence[pl.Series]) -> pl.DataFrame:
    """A frame of these (non-empty list of, equally long, uniquely named) columns.

    `pl.DataFrame(columns)` inspects its argument in Python first: 5 us
    against 1.3, and a micro-batch's map task builds three frames.
    """
    return columns[0].to_frame().hstack(list(columns[1:]), in_place=True)


SPLIT_BY_MASKS = 16_384  # rows x partitions: below this `split_partitions` filters column by column


def split_partitions(frame: pl.DataFrame) -> dict[int, pl.DataFrame]:
    """`frame`'s rows by their PARTITION_COLUMN, which is dropped; row order kept.

    A small frame is split column by column, one mask per partition: a
    frame's filter and `partition_by` run on polars' thread pool, which on
    a 50-row micro-batch in 2 partitions cost 23 us of wall and 44 of CPU
    against 22 and 22. Otherwise `partition_by`, without `as_dict=True`,
    which would run two more polars queries to name the parts.
    """
    columns = frame.get_columns()
    key = columns.pop(frame.columns.index(PARTITION_COLUMN))
    count = cast(int, key.max() or 0) + 1 if frame.height else 0  # an integer column: its max is an int
    if columns and frame.height * count < SPLIT_BY_MASKS:
        if count == 2:  # one mask and its negation: `key == k` and `any()` cost 10 us of Python a partition
            return _split_in_two(columns, key.cast(pl.Boolean))
        masks = ((k, key == k) for k in range(count))
        return {k: frame_of([c.filter(mask) for c in columns]) for k, mask in masks if mask.any()}
    parts = {}
    for part in frame.partition_by(PARTITION_COLUMN, maintain_order=True, include_key=True):
        key = part.drop_in_place(PARTITION_COLUMN)  # a new frame of its own: dropping in place is safe
        parts[int(key[0])] = part
    return parts


def _split_in_two(columns: list[pl.Series], second: pl.Series) -> dict[int, pl.DataFrame]:
    """`split_partitions` into partitions 0 and 1 (`second`: the rows of 1): 20-25 us of CPU for a 10-20 row
    map output against 38-44 by a mask per partition."""
    ones = cast(int, second.sum())
    parts = {}
    if ones < second.len():
        first = ~second
        parts[0] = frame_of([c.filter(first) for c in columns])
    if ones:
        parts[1] = frame_of([c.filter(second) for c in columns])
    return parts


def compile_pipeline(ops: Sequence[Operator], where: str = "") -> Pipeline:
    """Compile narrow operators; a trailing ShuffleWrite becomes the partitioning, OutputWrite nothing."""
    narrow = [op for op in ops if not isinstance(op, (ShuffleWrite, OutputWrite))]
    steps = tuple(_STEPS[type(op)](op, None) for op in narrow)
    last = ops[-1] if ops else None
    if isinstance(last, ShuffleWrite):
        ex = last.exchange
        return Pipeline(tuple(narrow), steps, ex.keys, ex.partitions, where)
    return Pipeline(tuple(narrow), steps, None, 1, where)


def empty_frame(schema: Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema.to_polars())


def sort_rows(frame: pl.DataFrame, keys: Sequence[Any], limit: int | None = None) -> pl.DataFrame:
    """`frame` in ORDER BY order (plan.SortKey: column, descending, nulls_first; ties keep their order),
    then its first `limit` rows."""
    if keys and frame.height > 1:
        frame = frame.sort(
            [k.column for k in keys],
            descending=[k.descending for k in keys],
            nulls_last=[not k.nulls_first for k in keys],
            maintain_order=True,
        )
    return frame if limit is None else frame.head(limit)


def conform(frame: pl.DataFrame, schema: Schema) -> pl.DataFrame:
    """`frame` with exactly the columns and dtypes of `schema` (the declared output types)."""
    if not frame.width and not frame.height:
        return empty_frame(schema)
    if len(schema) and all(f.name in frame.columns for f in schema):  # no query: Series.cast is native
        return pl.DataFrame([frame.get_column(f.name).cast(f.dtype.polars) for f in schema])
    return frame.select([pl.col(f.name).cast(f.dtype.polars) for f in schema])


Result = TypeVar("Result")


def catch_operator(op: Operator | StatefulOp, fn: Callable[[], Result]) -> Result:
    """Run `fn`, turning a non-DSL failure into an ExecutionError naming `op` (described only then)."""
    try:
        return fn()
    except DSLError:
        raise
    except (pl.exceptions.PolarsError, CastFailure, ArithmeticError, ValueError, TypeError) as exc:
        raise operator_error(op.describe(), exc) from exc


# ---------------------------------------------------------------- counters


def shuffle_counts(stage: int, task: int, parts: Mapping[int, pl.DataFrame]) -> dict[str, int]:
    """What one map task wrote to its shuffle: rows and bytes (polars' in-memory size of the frames)."""
    return {
        "stage": stage,
        "task": task,
        "rows": sum(f.height for f in parts.values()),
        "bytes": sum(int(f.estimated_size()) for f in parts.values()),
    }


def source_read(scan: ScanOp, rows: int, read_with: int = 1) -> dict[str, object]:
    """What one source task read: the source, the columns asked of the connector, the rows, and how many batches
    were read in the query this one was (`executor/query/fused_group.py`)."""
    columns = tuple(scan.read_columns)
    return {"source": scan.source.name, "columns": columns, "rows": rows, "batches_in_query": read_with}


def counter_report(shuffled: Sequence[Mapping[str, int]], reads: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """The counters of one micro-batch, for its progress report.

    `shuffle_rows` and `shuffle_bytes` total every map task's shuffle write;
    `shuffle_tasks` has one entry per map task (stage, task, rows, bytes);
    `source_reads` one per source read (source, columns, rows, batches_in_query).
    """
    return {
        "shuffle_rows": sum(t["rows"] for t in shuffled),
        "shuffle_bytes": sum(t["bytes"] for t in shuffled),
        "shuffle_tasks": [dict(t) for t in shuffled],
        "source_reads": [dict(r) for r in reads],
    }


def render_counters(reports: Sequence[Mapping[str, Any]]) -> list[str]:
    """EXPLAIN ANALYZE lines for the counters summed over micro-batches (nothing for reports without them)."""
    tasks = [t for r in reports for t in r.get("shuffle_tasks", ())]
    reads: dict[tuple[str, tuple[str, ...]], int] = {}
    for r in reports:
        for read in r.get("source_reads", ()):
            key = (read["source"], tuple(read["columns"]))
            reads[key] = reads.get(key, 0) + int(read["rows"])
    lines = []
    if tasks or any("shuffle_rows" in r for r in reports):
        rows = sum(int(r.get("shuffle_rows", 0)) for r in reports)
        size = sum(int(r.get("shuffle_bytes", 0)) for r in reports)
        most = max((int(t["rows"]) for t in tasks), default=0)
        lines.append(f"shuffle_rows={rows} shuffle_bytes={size} map_tasks={len(tasks)} max_rows_per_map_task={most}")
    lines += [
        f"Source {name} columns=[{', '.join(columns)}] rows_read={rows}"
        for (name, columns), rows in sorted(reads.items())
    ]
    return lines
