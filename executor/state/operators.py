"""Keyed state of aggregates, its windows and watermarks (DISTINCT: `distinct.py`, snapshots: `snapshots.py`).

Semantics (exact):

- Watermark: per stream source with a WATERMARK, the max event time seen so
  far minus the delay; the query watermark is the min over watermarked
  sources (an exhausted source no longer holds it back), never decreasing.
  It advances at batch boundaries: rows of batch b are checked against the
  watermark as of the end of batch b-1 (`wm_prev`), then windows close
  against the watermark advanced with batch b's max (`wm_new`). No
  watermarked source: no watermark (windows close only at end of input).
  When every source is exhausted the watermark is +inf (`WM_INF`) and all
  state is flushed.
- Windows ([start, end) in epoch ms; TUMBLE, HOP, CUMULATE, SESSION), when a window
  closes (watermark >= end) and which rows are late (their first window
  has closed; for HOP they still go into the open ones, and count once; a
  NULL event time is late): `executor/windows.py` defines each formula
  once. Late rows are dropped and counted. SESSION(gap), per key: events
  less than `gap` apart share a session [first event, last event + gap);
  sessions merge across batches when a new event bridges them.
- EMIT final: each window's row once, when it closes; then its state is
  dropped. EMIT changes: per batch, the current value of every group the
  batch changed (a session that grew or merged also reports the sessions it
  replaced, as deletes). A non-windowed aggregate is a changelog.
- Aggregates keep incremental partial state per group: row counts,
  non-null counts, sums, min, max; COUNT(DISTINCT x) keeps the set of
  distinct values per group. SQL NULLs: SUM/AVG/MIN/MAX of no non-null
  values is NULL, COUNT is 0.
- DISTINCT keeps every row it has seen and emits a row the first time.
- Two-phase aggregation: a 'final' AggregateOp merges the rows of partial
  aggregates (`PartialAggregateOp`, run per map task by `kernels`) exactly
  as it merges its own state: same state columns, same merge. Partial rows
  come with window_start and window_end assigned and PARTIAL_ROWS, the
  number of input rows each stands for; a partial row of a closed window
  (or of no window: a NULL event time) is dropped and its PARTIAL_ROWS are
  counted as late, so late_rows is the same as with one phase.

Cost: a micro-batch is small, so what an aggregate step costs is the
number of polars queries it runs (each 20 to 300 us however few its rows:
planning, and handing the work to polars' thread pool and back), not their
work. Aggregates without COUNT(DISTINCT) and without SESSION windows
(`AggregateState.fused`) therefore fold a batch into the state with ONE
query: the state rows (flagged old) and the batch's rows as single-row
partial states (flagged new) concatenated and merged by one group-by (the
same merge as grouping the batch first), with every group's output values
computed alongside; the output (the groups flagged new, or the windows
that closed) and the next state are then cut from its columns without a
query. Late rows are counted from the time column, or with one more query
for a time unit other than milliseconds. Every query runs on the in-memory
engine (`step.ENGINE`), without polars' optimizer on small inputs (`step.collect`).
And while batches and state stay small, a fused aggregate over plain
integer, string and timestamp columns runs in a Python dict with the same
semantics (`state_small`), which costs less than one query.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from executor.state import small as state_small
from executor.state.aggregate_exprs import batch_partials, final_value, merge_partials, row_partials
from executor.state.clocks import WM_INF
from executor.state.distinct import DistinctState
from executor.state.top_n import TopNState
from executor.state.interval_join import IntervalJoinState
from optimizer.physical.interval_join import IntervalJoinOp
from optimizer.physical.stream_join import StreamJoinOp
from executor.state.stream_join import StreamJoinState
from executor.state.stream_join_changelog import stream_join_state
from executor.state.small import SmallAggregate
from executor.state.step import StepOutput, collect, join_keys
from executor.state.windows import Windows, is_closed, is_open, starts_new_session, watermark_lit, watermark_or_min
from optimizer.physical.stages import TIME_COLUMN, AggregateOp, DistinctOp, TopNOp, UnmatchedRowsOp
from executor.state.unmatched import UnmatchedState
from optimizer.physical.changelog import RetractAggregateOp, RetractDistinctOp
from stream_dsl.ir import column_names as names
from stream_dsl.ir.column_names import PARTIAL_ROWS, WINDOW_END, WINDOW_START

WS, WE = WINDOW_START, WINDOW_END
_ROWS = PARTIAL_ROWS
_VALUE = names.VALUE
_T = names.EVENT_MS
_SRC = names.SOURCE
_SID = names.SESSION_ID
_NEW = names.NEW  # a fused state's column: the group changed in the batch just merged
_ROW = names.ROW_INDEX
_MERGED_WS, _MERGED_WE = names.MERGED_START, names.MERGED_END


# ---------------------------------------------------------------- helpers


def _semi(
    frame: pl.DataFrame, keys_frame: pl.DataFrame, on: list[str], how: Literal["semi", "anti"] = "semi"
) -> pl.DataFrame:
    if not on:
        return frame if (how == "semi") == (keys_frame.height > 0) else frame.clear()
    return join_keys(frame, keys_frame.select(on).unique(), on, how)


def _group(frame: pl.DataFrame, on: list[str], aggs: list[pl.Expr]) -> pl.DataFrame:
    if not on:
        return frame.select(aggs)
    return frame.group_by(on).agg(aggs)


def _group_lazy(lf: pl.LazyFrame, on: list[str], aggs: list[pl.Expr]) -> pl.LazyFrame:
    return lf.group_by(on).agg(aggs) if on else lf.select(aggs)


def _rows_of(columns: list[pl.Series], mask: pl.Series | None) -> pl.DataFrame:
    """A frame of `columns`, keeping the rows of `mask` (None: all); column operations, no query."""
    return pl.DataFrame(columns if mask is None else [c.filter(mask) for c in columns])


def _filtered(columns: list[pl.Series], keep: pl.Series) -> list[pl.Series]:
    return columns if keep.all() else [c.filter(keep) for c in columns]


def _window_end(columns: list[pl.Series], groups: list[str]) -> pl.Series:
    return columns[groups.index(WE)]


def _count_before(times: pl.Series, threshold_ms: int | None) -> int | None:
    """Rows with no event time or one before `threshold_ms` (None: no threshold), from the column alone.

    None when the column is not a millisecond timestamp (then the caller asks polars, whose `epoch`
    rounding of finer units it would have to copy).
    """
    if threshold_ms is None:
        return times.null_count()
    if times.dtype != pl.Datetime("ms"):
        return None
    return times.null_count() + int((times.to_physical() < threshold_ms).sum())


def _over(e: pl.Expr, keys: list[str]) -> pl.Expr:
    return e.over(keys) if keys else e


# ---------------------------------------------------------------- aggregate


class AggregateState:
    """The state of one partition of an aggregate (see the module doc for the semantics)."""

    def __init__(self, op: AggregateOp) -> None:
        self.op = op
        self.keys = list(op.keys)
        self.groups = list(op.group_keys)
        self._windows = Windows.of(op.window) if op.window is not None else None
        self._frame: pl.DataFrame | None = None
        self.distinct: dict[int, pl.DataFrame] = {}
        self._distinct_aggs = [(i, a) for i, a in enumerate(op.aggs) if a.func == "count" and a.distinct]
        self._empty = pl.DataFrame(schema=op.output.to_polars())
        self.fused = not self._distinct_aggs and (op.window is None or op.window.kind != "session")
        # an aggregate UDF folds a batch's values per group, not one pickled state per row (udf_aggregates.py)
        self.fused = self.fused and not any(a.udf is not None for a in op.aggs)
        self.small: SmallAggregate | None = None  # the state while it lives in a Python dict (`state_small`)
        self._may_be_small = self.fused
        self.emits_rows = False  # the small state may emit a RowsPart (for a worker that sends rows on)
        if self.fused:  # the expressions of the fused step, built once
            self._incoming = self._incoming_exprs()
            self._incoming_names = [e.meta.output_name() for e in self._incoming]
            self._merge_new = merge_partials(op.aggs) + [pl.col(_NEW).max()]
            self._output = self._output_exprs()

    @property
    def state(self) -> pl.DataFrame | None:
        """The state rows: group columns (window bounds in epoch ms), PARTIAL_ROWS, the state columns."""
        return self.small.frame() if self.small is not None else self._frame

    @state.setter
    def state(self, frame: pl.DataFrame | None) -> None:
        self._frame = frame

    @property
    def open_groups(self) -> int:
        if self.small is not None:
            return self.small.groups
        return 0 if self._frame is None else self._frame.height

    def open_windows(self) -> tuple[int, int | None, int | None]:
        """How many windows the state holds open, and the [start, end) in epoch ms of the one ending first
        (for `why`; builds the state frame of a small state, so asked on sampled batches only)."""
        state = self.state
        if state is None or not state.height or WE not in state.columns or WS not in state.columns:
            return 0, None, None
        ends = state.get_column(WE)
        first = ends.arg_min()
        if first is None:
            return 0, None, None
        count = state.select(pl.struct(WS, WE).n_unique()).item()
        return int(count), int(state.get_column(WS)[first]), int(ends[first])

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        """Add a batch's rows (late ones dropped), then emit as the emit mode says."""
        if self.op.window is not None and not self.op.window.watermarked:
            # A window over a column the watermark does not bound: only the end of input closes it.
            wm_prev, wm_new = _end_only(wm_prev), _end_only(wm_new)
        if self._may_be_small and self._small_fits(rows):
            out, late = self.small.step(rows, wm_prev, wm_new, as_rows=self.emits_rows)  # type: ignore[union-attr]
            return StepOutput(out, None, late)
        if self.fused:
            return self._step_fused(rows, wm_prev, wm_new)
        window = self.op.window
        late = 0
        deletes = None
        if window is not None:
            rows, late = self._assign_windows(rows, wm_prev)
        if window is not None and window.kind == "session":
            changed, deletes = self._merge_sessions(rows)
        else:
            changed = self._merge(rows)
        return StepOutput(self._emit(changed, wm_new), deletes, late)

    def _small_fits(self, rows: pl.DataFrame) -> bool:
        """Whether this batch runs in the Python dict; the state moves to polars for good when one does not."""
        if self.small is None:
            if self._frame is not None or not rows.height:
                return False  # state already in polars, or nothing to tell the column types by yet
            if not state_small.supported(self.op, rows.schema):
                self._may_be_small = False
                return False
            self.small = SmallAggregate(self.op, rows.schema)
        if self.small.fits(rows):
            return True
        self._frame, self.small, self._may_be_small = self.small.frame(), None, False
        return False

    # ------------------------------------------------------------ the fused step (see the module doc)

    def _step_fused(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        """Merge the batch and compute every group's output in one query; the rest are column operations."""
        late = 0
        if not rows.height:
            return StepOutput(self._emit_unmerged(wm_new), None, 0)
        incoming, late = self._incoming_rows(rows, wm_prev)
        state = self.state
        if state is not None and state.height:
            old = state.lazy().with_columns(pl.lit(False).alias(_NEW))
            incoming = pl.concat([old, incoming], how="diagonal_relaxed")
        size = rows.height + (0 if state is None else state.height)
        query = _group_lazy(incoming, self.groups, self._merge_new).with_columns(self._output)
        merged = collect(query, size).get_columns()
        width = len(merged) - len(self._output_names)
        state_columns, new = merged[:width], merged[width - 1]
        output = [c.alias(name) for c, name in zip(merged[width:], self._output_names)]
        if self.op.changelog:
            out = _rows_of(output, None if new.all() else new)
            if self.op.window is not None and wm_new is not None:
                state_columns = _filtered(state_columns, is_open(_window_end(state_columns, self.groups), wm_new))
            self.state = pl.DataFrame(state_columns)
            return StepOutput(out, None, late)
        if wm_new is None:
            self.state = pl.DataFrame(state_columns)
            return StepOutput(self._empty, None, late)
        keep = is_open(_window_end(state_columns, self.groups), wm_new)
        self.state = pl.DataFrame(_filtered(state_columns, keep))
        return StepOutput(self._empty if keep.all() else _rows_of(output, ~keep), None, late)

    def _emit_unmerged(self, wm_new: int | None) -> pl.DataFrame:
        """A batch without rows: no group changed, but windows may close (and leave the state)."""
        state = self.state
        if state is None or not state.height or self.op.window is None or wm_new is None:
            return self._empty
        keep = is_open(state.get_column(WE), wm_new)
        if keep.all():
            return self._empty
        out = self._empty
        if not self.op.changelog:
            outputs = [pl.col(names.output_col(j)).alias(name) for j, name in enumerate(self._output_names)]
            out = collect(state.lazy().filter(~pl.lit(keep)).with_columns(self._output).select(outputs), state.height)
        self.state = state.filter(keep)
        return out

    def _incoming_rows(self, rows: pl.DataFrame, wm_prev: int | None) -> tuple[pl.LazyFrame, int]:
        """The batch's rows that are not late, as partial state rows flagged new (lazy); and the late count."""
        op, window = self.op, self.op.window
        lf = rows.lazy()
        if window is None:  # with_columns, not select: `COUNT(*)` alone is all literals, one per row
            return lf.with_columns(self._incoming).select(self._incoming_names), 0
        if op.final:  # partial rows come with their (TUMBLE) window and the input rows they stand for
            lf = lf.with_columns(pl.col(WS).dt.epoch("ms"), pl.col(WE).dt.epoch("ms"))
            if _none_closed(rows, wm_prev):  # the usual reduce step: no query to count, no filter to run
                return lf.select(self._incoming), 0
            late_mask = _closed_partial(wm_prev)
            late = 0
            if wm_prev is not None or rows.get_column(WS).null_count():
                late = _late_partial_rows(rows, wm_prev)
            return lf.filter(~late_mask).select(self._incoming), late
        lf = lf.with_columns(pl.col(TIME_COLUMN).dt.epoch("ms").alias(_T))
        windows = self._windows
        assert windows is not None  # set whenever op.window is
        late_mask = windows.late_expr(pl.col(_T), wm_prev)
        if window.kind == "tumble":
            lf = lf.filter(~late_mask).with_columns(windows.last_start(pl.col(_T)).alias(WS))
            lf = lf.with_columns(windows.end(pl.col(WS)).alias(WE))
        else:  # hop, cumulate: a row is late if any of its windows closed; it still goes into the open ones
            lf = windows.expand_hop(lf.filter(pl.col(_T).is_not_null()), _T, wm_prev)
        counted = _count_before(rows.get_column(TIME_COLUMN), windows.late_before(wm_prev))
        if counted is not None:
            late = counted
        else:
            late = int(
                collect(
                    rows.lazy().with_columns(pl.col(TIME_COLUMN).dt.epoch("ms").alias(_T)).select(late_mask.sum()),
                    rows.height,
                ).item()
                or 0
            )
        return lf.select(self._incoming), late

    def _incoming_exprs(self) -> list[pl.Expr]:
        """A batch row as a partial state row: its group, its state columns, flagged new."""
        groups = [pl.col(g) for g in self.groups]
        if self.op.final:
            state = [pl.col(_ROWS)] + [pl.col(name) for i, a in enumerate(self.op.aggs) for name in a.state_columns(i)]
        else:
            state = row_partials(self.op.aggs)
        return groups + state + [pl.lit(True).alias(_NEW)]

    def _output_exprs(self) -> list[pl.Expr]:
        """Each state row's output values (as `_finalize`), in the output schema's order and types.

        Named `output_col(j)` so they never clash with the state's key columns; `_output_names` are the real names.
        """
        exprs = {k: pl.col(k) for k in self.keys}
        if self.op.window is not None:
            exprs[WS] = pl.col(WS).cast(pl.Datetime("ms"))
            exprs[WE] = pl.col(WE).cast(pl.Datetime("ms"))
        for i, spec in enumerate(self.op.aggs):
            exprs[spec.name] = final_value(i, spec)
        self._output_names = [f.name for f in self.op.output]
        return [exprs[f.name].cast(f.dtype.polars).alias(names.output_col(j)) for j, f in enumerate(self.op.output)]

    # ------------------------------------------------------------ windows

    def _assign_windows(self, rows: pl.DataFrame, wm_prev: int | None) -> tuple[pl.DataFrame, int]:
        """Add window_start/window_end (epoch ms) to every row, dropping late rows; returns the late count."""
        if self.op.final:
            return self._partial_windows(rows, wm_prev)
        assert self.op.window is not None and self._windows is not None  # only windowed aggregates get here
        kind, windows = self.op.window.kind, self._windows
        rows = rows.with_columns(pl.col(TIME_COLUMN).dt.epoch("ms").alias(_T))
        flagged = rows.with_columns(windows.late_expr(pl.col(_T), wm_prev).alias(names.LATE))
        late = int(flagged.get_column(names.LATE).sum() or 0)
        if kind == "tumble":
            rows = flagged.filter(~pl.col(names.LATE)).with_columns(windows.last_start(pl.col(_T)).alias(WS))
            rows = rows.with_columns(windows.end(pl.col(WS)).alias(WE))
        elif kind in ("hop", "cumulate"):
            rows = windows.expand_hop(flagged.filter(pl.col(_T).is_not_null()), _T, wm_prev).drop(names.HOP_OFFSET)
        else:  # session: each row its own session [t, t + gap) until `_merge_sessions`
            rows = flagged.filter(~pl.col(names.LATE))
        return rows.drop(names.LATE, strict=False), late

    def _partial_windows(self, rows: pl.DataFrame, wm_prev: int | None) -> tuple[pl.DataFrame, int]:
        """Partial rows already have their (TUMBLE) window: drop closed ones, counting the rows they stand for."""
        rows = rows.with_columns(pl.col(WS).dt.epoch("ms"), pl.col(WE).dt.epoch("ms"))
        late_mask = _closed_partial(wm_prev)
        late = int(rows.filter(late_mask).get_column(_ROWS).sum() or 0)
        return rows.filter(~late_mask), late

    # ------------------------------------------------------------ merging

    def _merge(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Fold a batch into the state; returns the groups it changed."""
        if not rows.height:
            return pl.DataFrame()
        partial = _group(
            rows, self.groups, merge_partials(self.op.aggs) if self.op.final else batch_partials(self.op.aggs)
        )
        if self.state is None or not self.state.height:
            self.state = partial
        else:
            self.state = _group(
                pl.concat([self.state, partial], how="diagonal_relaxed"), self.groups, merge_partials(self.op.aggs)
            )
        # a final's distincts share one column; COUNT(DISTINCT x) always has its x
        args = list(dict.fromkeys(a.arg for _, a in self._distinct_aggs if a.arg is not None))
        self._add_distinct(rows.select(self.groups + args))
        return partial.select(self.groups) if self.groups else partial

    def _add_distinct(self, rows: pl.DataFrame) -> None:
        for i, spec in self._distinct_aggs:
            assert spec.arg is not None  # COUNT(DISTINCT x) always has its x
            pairs = rows.select([*self.groups, pl.col(spec.arg).alias(_VALUE)]).drop_nulls(_VALUE).unique()
            old = self.distinct.get(i)
            self.distinct[i] = pairs if old is None else pl.concat([old, pairs], how="diagonal_relaxed").unique()

    def _merge_sessions(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """Fold events into sessions per key, merging sessions they bridge; returns changed and deleted groups."""
        if not rows.height:
            return pl.DataFrame(), None
        assert self._windows is not None  # sessions are windows
        start, end = self._windows.bounds(pl.col(_T))
        events = rows.select(
            [*self.keys, start.alias(WS), end.alias(WE), pl.lit(1).alias(_SRC), *row_partials(self.op.aggs)]
        )
        state = self.state
        if state is None or not state.height:
            old, untouched = None, None
        else:
            old = _semi(state, events, self.keys)
            untouched = _semi(state, events, self.keys, how="anti")
        parts = [events] if old is None else [old.with_columns(pl.lit(0).alias(_SRC)), events]
        intervals = pl.concat(parts, how="diagonal_relaxed").with_row_index(_ROW).sort(self.keys + [WS, _ROW])
        prev_end = _over(pl.col(WE).shift(1).cum_max(), self.keys)
        starts = (prev_end.is_null() | starts_new_session(pl.col(WS), prev_end)).cast(pl.Int64)
        intervals = intervals.with_columns(_over(starts.cum_sum(), self.keys).alias(_SID))
        session = self.keys + [_SID]
        intervals = intervals.with_columns(
            pl.col(WS).min().over(session).alias(_MERGED_WS), pl.col(WE).max().over(session).alias(_MERGED_WE)
        )
        merged = intervals.drop(WS, WE).rename({_MERGED_WS: WS, _MERGED_WE: WE})
        new_sessions = merged.group_by(self.groups).agg(merge_partials(self.op.aggs))
        self.state = (
            new_sessions
            if untouched is None or not untouched.height
            else pl.concat([untouched, new_sessions.select(untouched.columns)], how="diagonal_relaxed")
        )
        changed = merged.filter(pl.col(_SRC) == 1).select(self.groups).unique()
        moved = intervals.filter(
            (pl.col(_SRC) == 0) & ((pl.col(WS) != pl.col(_MERGED_WS)) | (pl.col(WE) != pl.col(_MERGED_WE)))
        )
        deletes = None
        if moved.height:
            deletes = moved.select(self.keys + [pl.col(WS).cast(pl.Datetime("ms")), pl.col(WE).cast(pl.Datetime("ms"))])
        self._remap_distinct(moved)
        event_rows = merged.filter(pl.col(_SRC) == 1).select(pl.col(_ROW), pl.col(WS), pl.col(WE))
        if self._distinct_aggs:
            values = rows.select(self.keys + [a.arg for _, a in self._distinct_aggs])
            offset = 0 if old is None else old.height
            indexed = values.with_row_index(_ROW).with_columns(pl.col(_ROW) + offset)
            self._add_distinct(indexed.join(event_rows, on=_ROW).drop(_ROW))
        return changed, deletes

    def _remap_distinct(self, moved: pl.DataFrame) -> None:
        """Distinct value sets follow their sessions when sessions merge."""
        if not moved.height or not self._distinct_aggs:
            return
        mapping = moved.select(
            self.groups + [pl.col(_MERGED_WS).alias(names.MOVED_START), pl.col(_MERGED_WE).alias(names.MOVED_END)]
        )
        for i, _ in self._distinct_aggs:
            sets = self.distinct.get(i)
            if sets is None:
                continue
            hit = join_keys(sets, mapping, self.groups, "inner")
            rest = join_keys(sets, mapping.select(self.groups), self.groups, "anti")
            remapped = hit.drop(WS, WE).rename({names.MOVED_START: WS, names.MOVED_END: WE}).select(sets.columns)
            self.distinct[i] = pl.concat([rest, remapped], how="diagonal_relaxed").unique()

    # ------------------------------------------------------------ emission

    def _emit(self, changed: pl.DataFrame, wm_new: int | None) -> pl.DataFrame:
        state = self.state
        if state is None:
            return self._finalize(None)
        if self.op.changelog:
            out = self._finalize(_semi(state, changed, self.groups)) if changed.height else self._finalize(None)
            if self.op.window is not None and wm_new is not None:
                self._drop_closed(wm_new)
            return out
        if wm_new is None:
            return self._finalize(None)
        closed = state.filter(is_closed(pl.col(WE), wm_new))
        out = self._finalize(closed)
        self._drop_closed(wm_new)
        return out

    def _drop_closed(self, wm: int) -> None:
        assert self.state is not None  # callers hold a state
        self.state = self.state.filter(is_open(pl.col(WE), wm))
        for i, sets in self.distinct.items():
            self.distinct[i] = sets.filter(is_open(pl.col(WE), wm))

    def _finalize(self, groups: pl.DataFrame | None) -> pl.DataFrame:
        """Output rows (keys, window bounds, aggregate values) from partial state rows."""
        schema = self.op.output
        if groups is None or not groups.height:
            return self._empty
        for i, _ in self._distinct_aggs:
            counts = _group(
                _semi(
                    self.distinct.get(i, pl.DataFrame(schema=groups.select(self.groups).schema)), groups, self.groups
                ),
                self.groups,
                [pl.len().cast(pl.Int64).alias(names.distinct_count_col(i))],
            )
            if self.groups:
                groups = join_keys(groups, counts, self.groups, "left")
            else:
                groups = groups.with_columns(
                    pl.lit(counts.item() if counts.height else 0).alias(names.distinct_count_col(i))
                )
        exprs = [pl.col(k) for k in self.keys]
        if self.op.window is not None:
            exprs += [pl.col(WS).cast(pl.Datetime("ms")), pl.col(WE).cast(pl.Datetime("ms"))]
        for i, spec in enumerate(self.op.aggs):
            exprs.append(final_value(i, spec).alias(spec.name))
        out = groups.select(exprs)
        return out.select([pl.col(f.name).cast(f.dtype.polars) for f in schema])


def empty_aggregate_row(op: AggregateOp) -> pl.DataFrame:
    """The one row SQL gives for an aggregate without GROUP BY over no rows: counts 0, the rest NULL."""
    row = {spec.name: 0 if spec.func in ("count", "approx_count_distinct") else None for spec in op.aggs}
    return pl.DataFrame([row], schema=op.output.to_polars())


def _none_closed(rows: pl.DataFrame, wm: int | None) -> bool:
    """Whether no partial row is late at `wm` (`_closed_partial`), told from the window columns alone.

    A reduce task's partials almost always belong to open windows; the count of late ones was a query of
    its own per task (a quarter of a YSB reduce task's time), paid twice per batch with two workers.
    """
    starts, ends = rows.get_column(WS), rows.get_column(WE)
    if starts.null_count() or ends.null_count() or ends.dtype != pl.Datetime("ms"):
        return False  # rows without a window are late; other units: polars' epoch rounding decides
    if wm is None or not ends.len():
        return True
    first = ends.to_physical().min()
    return first is not None and int(first) > wm  # type: ignore[arg-type]  # is_open: the end is after wm


def _closed_partial(wm: int | None) -> pl.Expr:
    """Partial rows (epoch-ms window bounds) whose window has closed at `wm`, or that have none: late."""
    return pl.col(WS).is_null() | is_closed(pl.col(WE), watermark_lit(wm))


def _late_partial_rows(rows: pl.DataFrame, wm: int | None) -> int:
    """The input rows that partial rows closed at `wm` stand for (`_closed_partial`), counted with column
    operations: a query of its own cost the final aggregate a third of its time per batch."""
    ends = rows.get_column(WE).dt.epoch("ms")
    late = rows.get_column(WS).is_null() | is_closed(ends, watermark_or_min(wm))
    return int(rows.get_column(_ROWS).filter(late).sum() or 0)


def _end_only(wm: int | None) -> int | None:
    return wm if wm is not None and wm >= WM_INF else None


def make_state(
    op: AggregateOp
    | DistinctOp
    | TopNOp
    | IntervalJoinOp
    | StreamJoinOp
    | UnmatchedRowsOp
    | RetractAggregateOp
    | RetractDistinctOp,
) -> AggregateState | DistinctState | TopNState | IntervalJoinState | StreamJoinState | UnmatchedState:
    if not isinstance(op, (AggregateOp, DistinctOp, TopNOp, IntervalJoinOp, StreamJoinOp, UnmatchedRowsOp)) or getattr(
        op, "retract", False
    ):  # over changelogs, or an aggregate that emits retractions (`changelog_states`)
        from executor.state.changelog_states import changelog_state

        return changelog_state(op)
    if isinstance(op, TopNOp):
        return TopNState(op)
    if isinstance(op, IntervalJoinOp):
        return IntervalJoinState(op)
    if isinstance(op, StreamJoinOp):
        return stream_join_state(op)
    if isinstance(op, UnmatchedRowsOp):
        return UnmatchedState(op)
    return AggregateState(op) if isinstance(op, AggregateOp) else DistinctState(op)
