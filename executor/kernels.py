"""Stage pipelines compiled to polars: one lazy query per task.

A run of narrow operators (scan, filter, project, broadcast join, and the
hash partitioning of a shuffle write) becomes ONE polars LazyFrame query,
collected once, so polars optimizes across the whole fused pipeline.
When that query fails, the operators are replayed one at a time to find
the culprit, and the error becomes an `ExecutionError` naming it
("Project y := upper(x): ..."), never a bare polars traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import polars as pl

from optimizer.stages import (PARTITION_COLUMN, BroadcastJoinOp, FilterOp, Operator, OutputWrite, ProjectOp, ReadOp,
                              ScanOp, ShuffleWrite)
from stream_dsl.compile import CastFailure, compile_expr, compile_predicate
from stream_dsl.errors import DSLError, ExecutionError
from stream_dsl.types import DataType, Schema

Tables = Mapping[str, pl.DataFrame]
Step = Callable[[pl.LazyFrame, Tables], pl.LazyFrame]


def error_text(exc: BaseException) -> str:
    """The useful part of an exception message (polars appends the whole expression tree)."""
    text = str(exc).split("\n\nThis error occurred")[0].strip()
    return text.splitlines()[0] if text else type(exc).__name__


def operator_error(op_text: str, exc: BaseException) -> ExecutionError:
    return ExecutionError(f"{op_text}: {error_text(exc)}")


# ---------------------------------------------------------------- one step per operator


def _scan(op: ScanOp) -> Step:
    predicate = None if op.predicate is None else compile_predicate(op.predicate)
    columns = list(op.columns)

    def step(lf: pl.LazyFrame, tables: Tables) -> pl.LazyFrame:
        if predicate is not None:
            lf = lf.filter(predicate)
        return lf.select(columns)

    return step


def _filter(op: FilterOp) -> Step:
    predicate = compile_predicate(op.predicate)
    return lambda lf, tables: lf.filter(predicate)


def _project(op: ProjectOp) -> Step:
    exprs = []
    for n in op.exprs:
        e = compile_expr(n.expr)
        if n.expr.dtype is not DataType.NULL:
            e = e.cast(n.expr.dtype.polars)
        exprs.append(e.alias(n.name))
    names = [n.name for n in op.exprs]
    # with_columns broadcasts constant expressions to the frame's height; select alone would not.
    return lambda lf, tables: lf.with_columns(exprs).select(names)


def _broadcast_join(op: BroadcastJoinOp) -> Step:
    left_keys = [pl.col(k).cast(t.polars).alias(f"__sd_lk{i}") for i, (k, t) in
                 enumerate(zip(op.stream_keys, op.key_types))]
    lk = [f"__sd_lk{i}" for i in range(len(left_keys))]
    rk = [f"__sd_rk{i}" for i in range(len(left_keys))]
    select = [pl.col(c).alias(name) if side == "stream" else pl.col(f"__sd_r_{c}").alias(name)
              for side, c, name in op.output]

    def step(lf: pl.LazyFrame, tables: Tables) -> pl.LazyFrame:
        right = tables[op.table_id].lazy()
        joined = lf.with_columns(left_keys).join(right, left_on=lk, right_on=rk, how=op.kind,
                                                 coalesce=False, maintain_order="left")
        return joined.select(select)

    return step


def prepare_table(op: BroadcastJoinOp, frame: pl.DataFrame) -> pl.DataFrame:
    """The table side of a broadcast join, renamed apart and with cast keys (done once per query)."""
    renamed = [pl.col(c).alias(f"__sd_r_{c}") for c in frame.columns]
    keys = [pl.col(k).cast(t.polars).alias(f"__sd_rk{i}") for i, (k, t) in enumerate(zip(op.table_keys, op.key_types))]
    return frame.select(renamed + keys)


def _read(op: ReadOp) -> Step:
    return lambda lf, tables: lf


_STEPS: dict[type, Callable[[object], Step]] = {
    ScanOp: _scan, FilterOp: _filter, ProjectOp: _project, BroadcastJoinOp: _broadcast_join, ReadOp: _read,
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

    def run(self, frame: pl.DataFrame, tables: Tables) -> pl.DataFrame:
        """The pipeline's output for one input frame."""
        return self._collect(frame, tables, partition=False)

    def run_partitioned(self, frame: pl.DataFrame, tables: Tables) -> dict[int, pl.DataFrame]:
        """The output split by the hash of `partition_keys` into `partitions` (non-empty parts only)."""
        if self.partitions == 1 or not self.partition_keys:
            out = self._collect(frame, tables, partition=False)
            return {0: out} if out.height else {}
        out = self._collect(frame, tables, partition=True)
        if not out.height:
            return {}
        parts = out.partition_by(PARTITION_COLUMN, as_dict=True, include_key=False)
        return {int(key[0]): part for key, part in parts.items()}

    def _lazy(self, frame: pl.DataFrame, tables: Tables, partition: bool) -> pl.LazyFrame:
        lf = frame.lazy()
        for step in self.steps:
            lf = step(lf, tables)
        if partition:
            lf = lf.with_columns(partition_of(list(self.partition_keys or ()), self.partitions))
        return lf

    def _collect(self, frame: pl.DataFrame, tables: Tables, partition: bool) -> pl.DataFrame:
        try:
            return self._lazy(frame, tables, partition).collect()
        except DSLError:
            raise
        except Exception as exc:  # polars errors, CastFailure from a CAST
            raise self._diagnose(frame, tables, exc) from exc

    def _diagnose(self, frame: pl.DataFrame, tables: Tables, exc: Exception) -> ExecutionError:
        """Replay operator by operator to name the one that fails."""
        current = frame
        for op, step in zip(self.ops, self.steps):
            try:
                current = step(current.lazy(), tables).collect()
            except Exception as inner:
                return operator_error(op.describe(), inner)
        where = f" in {self.where}" if self.where else ""
        return ExecutionError(f"stage pipeline{where} failed: {error_text(exc)}")


def partition_of(keys: list[str], partitions: int) -> pl.Expr:
    """The partition of each row: a hash of the key columns (NULLs included), modulo `partitions`."""
    return (pl.struct(keys).hash(seed=0) % partitions).cast(pl.UInt32).alias(PARTITION_COLUMN)


def compile_pipeline(ops: Sequence[Operator], where: str = "") -> Pipeline:
    """Compile narrow operators; a trailing ShuffleWrite becomes the partitioning, OutputWrite nothing."""
    narrow = [op for op in ops if not isinstance(op, (ShuffleWrite, OutputWrite))]
    steps = tuple(_STEPS[type(op)](op) for op in narrow)
    last = ops[-1] if ops else None
    if isinstance(last, ShuffleWrite):
        ex = last.exchange
        return Pipeline(tuple(narrow), steps, ex.keys, ex.partitions, where)
    return Pipeline(tuple(narrow), steps, None, 1, where)


def empty_frame(schema: Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema.to_polars())


def conform(frame: pl.DataFrame, schema: Schema) -> pl.DataFrame:
    """`frame` with exactly the columns and dtypes of `schema` (the declared output types)."""
    if not frame.width and not frame.height:
        return empty_frame(schema)
    return frame.select([pl.col(f.name).cast(f.dtype.polars) for f in schema])


def catch_operator(op_text: str, fn: Callable[[], object]) -> object:
    """Run `fn`, turning a non-DSL failure into an ExecutionError naming `op_text`."""
    try:
        return fn()
    except DSLError:
        raise
    except (pl.exceptions.PolarsError, CastFailure, ArithmeticError, ValueError, TypeError) as exc:
        raise operator_error(op_text, exc) from exc
