"""The state of operators over changelogs (`optimizer/physical/changelog.py` has the row forms).

- `Retracting` wraps an aggregate state that emits upserts (rows per changed
  group, deleted group keys) and turns its output into retractions: it keeps
  the row it last emitted per group, so an update becomes -old then +new and
  a delete -old. A windowed EMIT CHANGES aggregate's closed windows leave
  this memory once the watermark passes their end (they never change again;
  a window over a column the watermark does not bound closes only at the end).
- `RetractAggregateState`: a non-windowed aggregate over retract input. Per
  group: the net row count and, per aggregate, counts and sums (a -1 row
  subtracts its values) or, for MIN, MAX and COUNT(DISTINCT), the multiset
  of values (value -> count). Emits upserts of the changed groups and
  deletes of groups whose row count reached 0 (without GROUP BY the one
  group stays: counts 0, the rest NULL, as SQL's aggregate over no rows).
- `RetractDistinctState`: a count per distinct row: emits +1 when a row's
  count goes from 0 to positive in a batch, -1 when it goes back to 0.

TTL (`SET state_ttl`, as Flink's table.exec.state.ttl): each group (or
distinct row) remembers the watermark when it last changed; once the
watermark is more than the TTL past that, it is dropped from the state
without output (its last row stays in the output). Its later rows start a
new group; a retraction of a row the state no longer holds is dropped by
DISTINCT (a count never goes below zero) and deletes the group's row in an
aggregate (its row count is not positive). The end of input expires nothing.
A plain aggregate over append-only input keeps its groups as before (the TTL
bounds the states here, not AggregateState).

Changes are netted per batch, so within a batch the order of +1 and -1
rows of one key does not matter.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any, Callable

import polars as pl

from executor.state.clocks import WM_INF
from executor.state.step import StepOutput, join_keys
from executor.state.windows import is_open
from optimizer.physical.changelog import RetractAggregateOp, RetractDistinctOp
from stream_dsl.ir import column_names as names
from stream_dsl.ir.column_names import CHANGELOG_OP, PARTIAL_ROWS, WINDOW_END
from stream_dsl.ir.partial_state import sum_type
from stream_dsl.ir.types import DataType

_OP = CHANGELOG_OP
_ROWS = PARTIAL_ROWS
_VALUE = names.VALUE
_COUNT = "__sd_cnt"  # a multiset value's count
_TOUCHED = "__sd_wm"  # the watermark when a group last changed (for the TTL)


def _extreme(x: pl.Expr, func: str, dtype: DataType) -> pl.Expr:
    """MIN or MAX as `aggregate_exprs` takes them: NaN is above every DOUBLE, as in DuckDB."""
    return x.nan_max() if func == "max" and dtype is DataType.DOUBLE else getattr(x, func)()


def ops(rows: pl.DataFrame) -> pl.Expr:
    """Each row's operation as Int64 (+1 when the frame has none: append-only rows)."""
    if _OP in rows.columns:
        return pl.col(_OP).cast(pl.Int64).fill_null(1)
    return pl.lit(1, dtype=pl.Int64)


def _with_op(frame: pl.DataFrame, op: int) -> pl.DataFrame:
    return frame.with_columns(pl.lit(op, dtype=pl.Int8).alias(_OP))


def _semi(frame: pl.DataFrame, keys_frame: pl.DataFrame, on: list[str], how: Any = "semi") -> pl.DataFrame:
    if not on:
        return frame if (how == "semi") == (keys_frame.height > 0) else frame.clear()
    return join_keys(frame, keys_frame.select(on).unique(), on, how)


def _group(frame: pl.DataFrame, on: list[str], aggs: list[pl.Expr]) -> pl.DataFrame:
    return frame.group_by(on, maintain_order=True).agg(aggs) if on else frame.select(aggs)


def _expired(touched: pl.Expr, ttl_ms: int | None, wm: int | None) -> pl.Expr | None:
    """Groups last changed more than the TTL before watermark `wm` (the end of input expires nothing)."""
    if ttl_ms is None or wm is None or wm >= WM_INF:
        return None
    return touched.is_not_null() & (touched < wm - ttl_ms)


# ---------------------------------------------------------------- upserts -> retractions


class Retracting:
    """An upsert-emitting aggregate state whose output becomes -old/+new retractions (module doc)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.op = inner.op
        self.keys = list(inner.op.group_keys)
        self.emitted: pl.DataFrame | None = None  # the last row emitted per group

    @property
    def open_groups(self) -> int:
        return int(self.inner.open_groups)

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        out = self.inner.step(rows, wm_prev, wm_new)
        upserts = out.frame if isinstance(out.frame, pl.DataFrame) else out.frame.frame()
        frame = self.retract(upserts, out.deletes)
        window = getattr(self.op, "window", None)
        if self.emitted is not None and window is not None and window.watermarked and wm_new is not None:
            window_end = self.emitted.get_column(WINDOW_END).cast(pl.Datetime("ms")).dt.epoch("ms")
            self.emitted = self.emitted.filter(is_open(window_end, wm_new))
        return StepOutput(frame, None, out.late)

    def retract(self, upserts: pl.DataFrame, deletes: pl.DataFrame | None) -> pl.DataFrame:
        touched = [f.select(self.keys) for f in (upserts, deletes) if f is not None and f.height]
        if not touched:
            return _with_op(upserts.clear(), 1)
        old = None
        if self.emitted is not None and self.emitted.height:
            keys = pl.concat(touched, how="vertical_relaxed") if self.keys else upserts
            old = _semi(self.emitted, keys, self.keys)
            rest = _semi(self.emitted, keys, self.keys, "anti")
            self.emitted = pl.concat([rest, upserts], how="vertical_relaxed") if upserts.height else rest
        elif upserts.height:
            self.emitted = upserts
        parts = ([] if old is None or not old.height else [_with_op(old, -1)]) + [_with_op(upserts, 1)]
        return pl.concat(parts, how="vertical_relaxed")


# ---------------------------------------------------------------- aggregate over retractions


class RetractAggregateState:
    """One partition of a non-windowed aggregate over a retract changelog (module doc)."""

    def __init__(self, op: RetractAggregateOp) -> None:
        self.op = op
        self.keys = list(op.keys)
        self.acc: pl.DataFrame | None = None  # keys, _ROWS, per aggregate its counts and sums, _TOUCHED
        self.bags: dict[int, pl.DataFrame] = {}  # MIN, MAX, COUNT(DISTINCT) i: keys, _VALUE, _COUNT
        self._bagged = [i for i, a in enumerate(op.aggs) if a.func in ("min", "max") or a.distinct]
        self._empty = pl.DataFrame(schema=op.output.to_polars())

    @property
    def open_groups(self) -> int:
        return (0 if self.acc is None else self.acc.height) + sum(b.height for b in self.bags.values())

    def _batch_exprs(self, op: pl.Expr) -> list[pl.Expr]:
        out = [op.sum().alias(_ROWS)]
        for i, spec in enumerate(self.op.aggs):
            if i in self._bagged:
                continue
            x = None if spec.arg is None else pl.col(spec.arg)
            present = op if x is None else op * x.is_not_null().cast(pl.Int64)
            if spec.func == "count":
                out.append(present.sum().alias(names.count_col(i)))
            else:  # sum, avg
                typed = x.cast(sum_type(spec.func, spec.dtype, spec.arg_dtype).polars)  # type: ignore[union-attr]
                out += [
                    (typed * op).fill_null(0).sum().alias(names.sum_col(i)),
                    present.sum().alias(names.nonnull_col(i)),
                ]
        return out

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        self._expire(wm_new)
        if not rows.height:
            return StepOutput(self._empty)
        op = ops(rows)
        batch = _group(rows, self.keys, self._batch_exprs(op)).with_columns(
            pl.lit(wm_new, dtype=pl.Int64).alias(_TOUCHED)
        )
        if self.acc is None:
            self.acc = batch
        else:
            merged = [pl.col(c).sum() for c in batch.columns if c not in self.keys and c != _TOUCHED]
            stacked = pl.concat([self.acc, batch.select(self.acc.columns)], how="vertical_relaxed")
            self.acc = _group(stacked, self.keys, merged + [pl.col(_TOUCHED).last()])
        for i in self._bagged:
            self._add_to_bag(i, rows, op)
        changed = batch.select(self.keys) if self.keys else batch
        current = _semi(self.acc, changed, self.keys)
        out = self._finalize(current)  # with _ROWS: a join may reorder the groups
        if not self.keys:
            return StepOutput(out.drop(_ROWS))
        live = out.get_column(_ROWS) > 0
        gone = out.filter(~live).select(self.keys)
        self.acc = self.acc.filter(pl.col(_ROWS) > 0)
        return StepOutput(out.filter(live).drop(_ROWS), gone if gone.height else None)

    def _add_to_bag(self, i: int, rows: pl.DataFrame, op: pl.Expr) -> None:
        spec = self.op.aggs[i]
        assert spec.arg is not None  # MIN, MAX, COUNT(DISTINCT x) have their x
        pairs = rows.select([*self.keys, pl.col(spec.arg).alias(_VALUE), op.alias(_COUNT)]).drop_nulls(_VALUE)
        pairs = _group(pairs, self.keys + [_VALUE], [pl.col(_COUNT).sum()])
        old = self.bags.get(i)
        bag = pairs if old is None else pl.concat([old, pairs], how="vertical_relaxed")
        bag = bag.group_by(self.keys + [_VALUE], maintain_order=True).agg(pl.col(_COUNT).sum())
        self.bags[i] = bag.filter(pl.col(_COUNT) > 0)

    def _finalize(self, groups: pl.DataFrame) -> pl.DataFrame:
        """Output rows of these state rows (the aggregates' values now)."""
        for i in self._bagged:
            spec = self.op.aggs[i]
            bag = _semi(self.bags[i], groups, self.keys) if i in self.bags else None
            if spec.distinct:
                value = pl.len().cast(pl.Int64).alias(names.distinct_count_col(i))
            else:
                value = _extreme(pl.col(_VALUE), spec.func, spec.dtype).alias(names.extreme_col(spec.func, i))
            if bag is None:
                bag = pl.DataFrame(schema={**{k: groups.schema[k] for k in self.keys}, _VALUE: pl.Null})
            per_group = _group(bag, self.keys, [value])
            if self.keys:
                groups = join_keys(groups, per_group, self.keys, "left")
            else:
                column = per_group.to_series()
                groups = groups.with_columns(pl.lit(column.item(), dtype=column.dtype).alias(column.name))
        exprs = [pl.col(k) for k in self.keys]
        for i, spec in enumerate(self.op.aggs):
            if spec.distinct:
                value = pl.col(names.distinct_count_col(i)).fill_null(0)
            elif spec.func == "count":
                value = pl.col(_ROWS) if spec.arg is None else pl.col(names.count_col(i))
            elif spec.func in ("min", "max"):
                value = pl.col(names.extreme_col(spec.func, i))
            else:
                total, nonnull = pl.col(names.sum_col(i)), pl.col(names.nonnull_col(i))
                value = total if spec.func == "sum" else total.cast(pl.Float64) / nonnull
                value = pl.when(nonnull > 0).then(value).otherwise(None)
            exprs.append(value.alias(spec.name))
        out = groups.select(exprs + [pl.col(_ROWS)])
        return out.select([pl.col(f.name).cast(f.dtype.polars) for f in self.op.output] + [pl.col(_ROWS)])

    def _expire(self, wm: int | None) -> None:
        expired = _expired(pl.col(_TOUCHED), self.op.ttl_ms, wm)
        if expired is None or self.acc is None or not self.keys:
            return
        gone = self.acc.filter(expired)
        if not gone.height:
            return
        self.acc = self.acc.filter(~expired)
        for i, bag in self.bags.items():
            self.bags[i] = _semi(bag, gone, self.keys, "anti")


# ---------------------------------------------------------------- DISTINCT over retractions


class RetractDistinctState:
    """One partition of a DISTINCT over a retract changelog: a count per distinct row (module doc)."""

    def __init__(self, op: RetractDistinctOp, counts: pl.DataFrame | None = None) -> None:
        self.op = op
        self.columns = list(op.columns)
        self.counts = counts  # the columns, _COUNT (> 0), _TOUCHED

    @property
    def open_groups(self) -> int:
        return 0 if self.counts is None else self.counts.height

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        expired = _expired(pl.col(_TOUCHED), self.op.ttl_ms, wm_new)
        if expired is not None and self.counts is not None:
            self.counts = self.counts.filter(~expired)
        if not rows.height:
            return StepOutput(_with_op(rows.select(self.columns), 1))
        delta = _group(rows.select([*self.columns, ops(rows).alias(_COUNT)]), self.columns, [pl.col(_COUNT).sum()])
        delta = delta.filter(pl.col(_COUNT) != 0).with_columns(pl.lit(wm_new, dtype=pl.Int64).alias(_TOUCHED))
        if self.counts is None or not self.counts.height:
            before = delta.with_columns(pl.lit(0, dtype=pl.Int64).alias("__sd_was"))
        else:
            old = self.counts.select(self.columns + [pl.col(_COUNT).alias("__sd_was")])
            before = join_keys(delta, old, self.columns, "left").with_columns(pl.col("__sd_was").fill_null(0))
        now = before.with_columns(pl.max_horizontal(pl.col("__sd_was") + pl.col(_COUNT), 0).alias(_COUNT))
        added = now.filter((pl.col("__sd_was") <= 0) & (pl.col(_COUNT) > 0))
        removed = now.filter((pl.col("__sd_was") > 0) & (pl.col(_COUNT) <= 0))
        kept = now.filter(pl.col(_COUNT) > 0).select(self.columns + [_COUNT, _TOUCHED])
        rest = None if self.counts is None else _semi(self.counts, delta, self.columns, "anti")
        self.counts = kept if rest is None else pl.concat([rest, kept], how="vertical_relaxed")
        out = [_with_op(removed.select(self.columns), -1), _with_op(added.select(self.columns), 1)]
        return StepOutput(pl.concat(out, how="vertical_relaxed"))


def changelog_state(op: Any) -> Any:
    """The state of a changelog operator: retract consumers, or an upsert aggregate turned retracting."""
    if isinstance(op, RetractAggregateOp):
        state: Any = RetractAggregateState(op)
    elif isinstance(op, RetractDistinctOp):
        return RetractDistinctState(op)
    else:
        from executor.state.operators import AggregateState

        state = AggregateState(op)
    return Retracting(state) if op.retract else state


# ---------------------------------------------------------------- checkpoints


def _ipc(frame: pl.DataFrame | None) -> bytes | None:
    return None if frame is None else frame.write_ipc(None).getvalue()


def _from_ipc(data: bytes | None) -> pl.DataFrame | None:
    return None if data is None else pl.read_ipc(io.BytesIO(data))


def snapshot(state: Any, snapshot_inner: Callable[[Any], dict[str, Any]]) -> dict[str, Any] | None:
    """A changelog state as plain picklable values (None: not one of these states)."""
    if isinstance(state, Retracting):
        return {"kind": "retracting", "inner": snapshot_inner(state.inner), "emitted": _ipc(state.emitted)}
    if isinstance(state, RetractAggregateState):
        bags = {i: _ipc(bag) for i, bag in state.bags.items()}
        return {"kind": "retract_aggregate", "acc": _ipc(state.acc), "bags": bags}
    if isinstance(state, RetractDistinctState):
        return {"kind": "retract_distinct", "counts": _ipc(state.counts)}
    return None


def restore(op: Any, snap: dict[str, Any], restore_inner: Callable[[Any, dict[str, Any]], Any]) -> Any:
    """The state `snapshot` saved, for `op` (ValueError when the snapshot is of another kind of state)."""
    kind = snap.get("kind")
    if getattr(op, "retract", False):
        if kind != "retracting":
            raise ValueError(f"a {kind!r} state snapshot cannot restore {op.describe()}")
        inner_op = replace(op, retract=False)
        inner = restore_inner(inner_op, snap["inner"])
        inner.op = op  # `Retracting` reads the op's group keys; the inner state never looks at `retract`
        wrapped = Retracting(inner)
        wrapped.emitted = _from_ipc(snap["emitted"])
        return wrapped
    if isinstance(op, RetractAggregateOp):
        if kind != "retract_aggregate":
            raise ValueError(f"a {kind!r} state snapshot cannot restore {op.describe()}")
        state = RetractAggregateState(op)
        state.acc = _from_ipc(snap["acc"])
        state.bags = {int(i): frame for i, data in snap["bags"].items() if (frame := _from_ipc(data)) is not None}
        return state
    if kind != "retract_distinct":
        raise ValueError(f"a {kind!r} state snapshot cannot restore {op.describe()}")
    return RetractDistinctState(op, _from_ipc(snap["counts"]))
