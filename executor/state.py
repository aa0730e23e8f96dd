"""Keyed state of stateful operators, windows and watermarks.

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
- Windows are [start, end) in epoch milliseconds. TUMBLE(size): start =
  floor(ts/size)*size. HOP(slide, size): every window of `size` starting at a
  multiple of `slide` that contains ts. SESSION(gap), per key: events less
  than `gap` apart share a session [first event, last event + gap); sessions
  merge across batches when a new event bridges them.
- A window closes when watermark >= window_end. Late rows: a row whose
  window closed is dropped and counted; for HOP a row is late if any of its
  windows closed (it still goes into the open ones, and counts once); for
  SESSION a row is late if ts + gap <= watermark. A row with a NULL event
  time belongs to no window: it is dropped and counted with the late rows.
- EMIT final: each window's row once, when it closes; then its state is
  dropped. EMIT changes: per batch, the current value of every group the
  batch changed (a session that grew or merged also reports the sessions it
  replaced, as deletes). A non-windowed aggregate is a changelog.
- Aggregates keep incremental partial state per group: row counts,
  non-null counts, sums, min, max; COUNT(DISTINCT x) keeps the set of
  distinct values per group. SQL NULLs: SUM/AVG/MIN/MAX of no non-null
  values is NULL, COUNT is 0.
- DISTINCT keeps every row it has seen and emits a row the first time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import polars as pl

from optimizer.stages import TIME_COLUMN, AggregateOp, AggSpec, DistinctOp
from stream_dsl.types import DataType

WM_INF = 2**62  # the watermark after the end of input: every window closes
WS, WE = "window_start", "window_end"
_ROWS = "__sd_rows"
_VALUE = "__sd_v"
_T = "__sd_t"
_SRC = "__sd_src"
_SID = "__sd_sid"


def watermark_datetime(wm: int | None) -> dt.datetime | None:
    """A watermark for people: a naive UTC datetime, datetime.max for +inf, None for none."""
    if wm is None:
        return None
    if wm >= WM_INF:
        return dt.datetime.max
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=wm)


# ---------------------------------------------------------------- watermarks


@dataclass
class SourceClock:
    """Event-time progress of one source: `delay_ms` None means the source has no watermark."""

    delay_ms: int | None
    max_event_ms: int | None = None
    exhausted: bool = False

    def observe(self, max_event_ms: int | None, exhausted: bool) -> None:
        if max_event_ms is not None and (self.max_event_ms is None or max_event_ms > self.max_event_ms):
            self.max_event_ms = max_event_ms
        self.exhausted = self.exhausted or exhausted

    @property
    def watermark(self) -> int | None:
        if self.exhausted:
            return WM_INF
        if self.delay_ms is None or self.max_event_ms is None:
            return None
        return self.max_event_ms - self.delay_ms


def query_watermark(clocks: list[SourceClock], previous: int | None) -> int | None:
    """The query watermark after a batch: min over watermarked sources, +inf when all are done."""
    if clocks and all(c.exhausted for c in clocks):
        return WM_INF
    marks = [c.watermark for c in clocks if c.delay_ms is not None]
    if not marks or any(m is None for m in marks):
        return previous
    wm = min(marks)  # type: ignore[type-var]
    return wm if previous is None else max(previous, wm)


# ---------------------------------------------------------------- results


@dataclass
class StepOutput:
    """What a stateful operator emits for one batch: rows, deleted group keys (changelogs), late rows."""

    frame: pl.DataFrame
    deletes: pl.DataFrame | None = None
    late: int = 0


# ---------------------------------------------------------------- helpers


def _semi(frame: pl.DataFrame, keys_frame: pl.DataFrame, on: list[str], how: str = "semi") -> pl.DataFrame:
    if not on:
        return frame if (how == "semi") == (keys_frame.height > 0) else frame.clear()
    return frame.join(keys_frame.select(on).unique(), on=on, how=how, nulls_equal=True)


def _group(frame: pl.DataFrame, on: list[str], aggs: list[pl.Expr]) -> pl.DataFrame:
    if not on:
        return frame.select(aggs)
    return frame.group_by(on).agg(aggs)


def _over(e: pl.Expr, keys: list[str]) -> pl.Expr:
    return e.over(keys) if keys else e


def _sum_type(spec: AggSpec) -> pl.DataType:
    return pl.Float64 if spec.func == "avg" or spec.dtype is DataType.DOUBLE else pl.Int64


def _partial_names(i: int, spec: AggSpec) -> list[tuple[str, str]]:
    """(state column, how it merges) for aggregate `i`."""
    if spec.func == "count":
        return [] if spec.distinct else [(f"__sd_c{i}", "sum")]
    if spec.func in ("sum", "avg"):
        return [(f"__sd_s{i}", "sum"), (f"__sd_n{i}", "sum")]
    return [(f"__sd_{spec.func}{i}", spec.func)]


def batch_partials(aggs: tuple[AggSpec, ...]) -> list[pl.Expr]:
    """Aggregations of a batch's rows into partial state, per group."""
    out = [pl.len().cast(pl.Int64).alias(_ROWS)]
    for i, spec in enumerate(aggs):
        x = pl.col(spec.arg) if spec.arg is not None else None
        if spec.func == "count":
            if not spec.distinct:
                out.append((pl.len() if x is None else x.count()).cast(pl.Int64).alias(f"__sd_c{i}"))
        elif spec.func in ("sum", "avg"):
            out += [x.cast(_sum_type(spec)).sum().alias(f"__sd_s{i}"), x.count().cast(pl.Int64).alias(f"__sd_n{i}")]
        else:
            out.append(getattr(x.cast(spec.dtype.polars), spec.func)().alias(f"__sd_{spec.func}{i}"))
    return out


def row_partials(aggs: tuple[AggSpec, ...]) -> list[pl.Expr]:
    """The partial state of each single row (sessions merge these with existing sessions)."""
    out = [pl.lit(1, dtype=pl.Int64).alias(_ROWS)]
    for i, spec in enumerate(aggs):
        x = pl.col(spec.arg) if spec.arg is not None else None
        if spec.func == "count":
            if not spec.distinct:
                value = pl.lit(1, dtype=pl.Int64) if x is None else x.is_not_null().cast(pl.Int64)
                out.append(value.alias(f"__sd_c{i}"))
        elif spec.func in ("sum", "avg"):
            out += [x.cast(_sum_type(spec)).fill_null(0).alias(f"__sd_s{i}"),
                    x.is_not_null().cast(pl.Int64).alias(f"__sd_n{i}")]
        else:
            out.append(x.cast(spec.dtype.polars).alias(f"__sd_{spec.func}{i}"))
    return out


def merge_partials(aggs: tuple[AggSpec, ...]) -> list[pl.Expr]:
    """How partial state rows of one group combine."""
    out = [pl.col(_ROWS).sum()]
    for i, spec in enumerate(aggs):
        for name, how in _partial_names(i, spec):
            out.append(getattr(pl.col(name), how)())
    return out


# ---------------------------------------------------------------- aggregate


class AggregateState:
    """The state of one partition of an aggregate (see the module doc for the semantics)."""

    def __init__(self, op: AggregateOp) -> None:
        self.op = op
        self.keys = list(op.keys)
        self.groups = list(op.group_keys)
        self.state: pl.DataFrame | None = None
        self.distinct: dict[int, pl.DataFrame] = {}
        self._distinct_aggs = [(i, a) for i, a in enumerate(op.aggs) if a.func == "count" and a.distinct]

    @property
    def open_groups(self) -> int:
        return 0 if self.state is None else self.state.height

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        """Add a batch's rows (late ones dropped), then emit as the emit mode says."""
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

    # ------------------------------------------------------------ windows

    def _assign_windows(self, rows: pl.DataFrame, wm_prev: int | None) -> tuple[pl.DataFrame, int]:
        """Add window_start/window_end (epoch ms) to every row, dropping late rows; returns the late count."""
        window = self.op.window
        t = pl.col(TIME_COLUMN).dt.epoch("ms")
        rows = rows.with_columns(t.alias(_T))
        size = window.size_ms
        late_mask: pl.Expr
        if window.kind == "tumble":
            start = pl.col(_T) // size * size
            late_mask = pl.col(_T).is_null() | (start + size <= _wm(wm_prev))
        elif window.kind == "hop":
            slide = window.slide_ms
            earliest = (pl.col(_T) - size) // slide * slide + slide
            late_mask = pl.col(_T).is_null() | (earliest + size <= _wm(wm_prev))
        else:
            late_mask = pl.col(_T).is_null() | (pl.col(_T) + size <= _wm(wm_prev))
        flagged = rows.with_columns(late_mask.alias("__sd_late"))
        late = int(flagged.get_column("__sd_late").sum() or 0)
        if window.kind == "tumble":
            rows = flagged.filter(~pl.col("__sd_late")).with_columns(
                (pl.col(_T) // size * size).alias(WS))
            rows = rows.with_columns((pl.col(WS) + size).alias(WE))
        elif window.kind == "hop":
            rows = self._hop(flagged.filter(pl.col(_T).is_not_null()), wm_prev)
        else:
            rows = flagged.filter(~pl.col("__sd_late"))
        return rows.drop("__sd_late", strict=False), late

    def _hop(self, rows: pl.DataFrame, wm_prev: int | None) -> pl.DataFrame:
        window = self.op.window
        size, slide = window.size_ms, window.slide_ms
        count = -(-size // slide)
        offsets = pl.DataFrame({"__sd_j": pl.Series(range(count), dtype=pl.Int64)})
        last = pl.col(_T) // slide * slide
        expanded = rows.join(offsets, how="cross").with_columns((last - pl.col("__sd_j") * slide).alias(WS))
        expanded = expanded.with_columns((pl.col(WS) + size).alias(WE))
        keep = pl.col(WE) > pl.col(_T)
        if wm_prev is not None:
            keep = keep & (pl.col(WE) > wm_prev)
        return expanded.filter(keep).drop("__sd_j")

    # ------------------------------------------------------------ merging

    def _merge(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Fold a batch into the state; returns the groups it changed."""
        if not rows.height:
            return pl.DataFrame()
        partial = _group(rows, self.groups, batch_partials(self.op.aggs))
        if self.state is None or not self.state.height:
            self.state = partial
        else:
            self.state = _group(pl.concat([self.state, partial], how="diagonal_relaxed"), self.groups,
                                merge_partials(self.op.aggs))
        self._add_distinct(rows.select(self.groups + [a.arg for _, a in self._distinct_aggs]))
        return partial.select(self.groups) if self.groups else partial

    def _add_distinct(self, rows: pl.DataFrame) -> None:
        for i, spec in self._distinct_aggs:
            pairs = rows.select(self.groups + [pl.col(spec.arg).alias(_VALUE)]).drop_nulls(_VALUE).unique()
            old = self.distinct.get(i)
            self.distinct[i] = pairs if old is None else pl.concat([old, pairs], how="diagonal_relaxed").unique()

    def _merge_sessions(self, rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame | None]:
        """Fold events into sessions per key, merging sessions they bridge; returns changed and deleted groups."""
        if not rows.height:
            return pl.DataFrame(), None
        gap = self.op.window.size_ms
        events = rows.select(self.keys + [pl.col(_T).alias(WS), (pl.col(_T) + gap).alias(WE), pl.lit(1).alias(_SRC)]
                             + row_partials(self.op.aggs))
        state = self.state
        if state is None or not state.height:
            old, untouched = None, None
        else:
            old = _semi(state, events, self.keys)
            untouched = _semi(state, events, self.keys, how="anti")
        parts = [events] if old is None else [old.with_columns(pl.lit(0).alias(_SRC)), events]
        intervals = pl.concat(parts, how="diagonal_relaxed").with_row_index("__sd_i").sort(self.keys + [WS])
        prev_end = _over(pl.col(WE).shift(1).cum_max(), self.keys)
        starts = (prev_end.is_null() | (pl.col(WS) >= prev_end)).cast(pl.Int64)
        intervals = intervals.with_columns(_over(starts.cum_sum(), self.keys).alias(_SID))
        session = self.keys + [_SID]
        intervals = intervals.with_columns(pl.col(WS).min().over(session).alias("__sd_ws"),
                                           pl.col(WE).max().over(session).alias("__sd_we"))
        merged = intervals.drop(WS, WE).rename({"__sd_ws": WS, "__sd_we": WE})
        new_sessions = merged.group_by(self.groups).agg(merge_partials(self.op.aggs))
        self.state = new_sessions if untouched is None or not untouched.height else \
            pl.concat([untouched, new_sessions.select(untouched.columns)], how="diagonal_relaxed")
        changed = merged.filter(pl.col(_SRC) == 1).select(self.groups).unique()
        moved = intervals.filter((pl.col(_SRC) == 0) & ((pl.col(WS) != pl.col("__sd_ws")) |
                                                        (pl.col(WE) != pl.col("__sd_we"))))
        deletes = None
        if moved.height:
            deletes = moved.select(self.keys + [pl.col(WS).cast(pl.Datetime("ms")), pl.col(WE).cast(pl.Datetime("ms"))])
        self._remap_distinct(moved)
        event_rows = merged.filter(pl.col(_SRC) == 1).select(pl.col("__sd_i"), pl.col(WS), pl.col(WE))
        if self._distinct_aggs:
            values = rows.select(self.keys + [a.arg for _, a in self._distinct_aggs])
            offset = 0 if old is None else old.height
            indexed = values.with_row_index("__sd_i").with_columns(pl.col("__sd_i") + offset)
            self._add_distinct(indexed.join(event_rows, on="__sd_i").drop("__sd_i"))
        return changed, deletes

    def _remap_distinct(self, moved: pl.DataFrame) -> None:
        """Distinct value sets follow their sessions when sessions merge."""
        if not moved.height or not self._distinct_aggs:
            return
        mapping = moved.select(self.groups + [pl.col("__sd_ws").alias("__sd_nws"), pl.col("__sd_we").alias("__sd_nwe")])
        for i, _ in self._distinct_aggs:
            sets = self.distinct.get(i)
            if sets is None:
                continue
            hit = sets.join(mapping, on=self.groups, how="inner", nulls_equal=True)
            rest = sets.join(mapping.select(self.groups), on=self.groups, how="anti", nulls_equal=True)
            remapped = hit.drop(WS, WE).rename({"__sd_nws": WS, "__sd_nwe": WE}).select(sets.columns)
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
        closed = state.filter(pl.col(WE) <= wm_new)
        out = self._finalize(closed)
        self._drop_closed(wm_new)
        return out

    def _drop_closed(self, wm: int) -> None:
        self.state = self.state.filter(pl.col(WE) > wm)
        for i, sets in self.distinct.items():
            self.distinct[i] = sets.filter(pl.col(WE) > wm)

    def _finalize(self, groups: pl.DataFrame | None) -> pl.DataFrame:
        """Output rows (keys, window bounds, aggregate values) from partial state rows."""
        schema = self.op.output
        if groups is None or not groups.height:
            return pl.DataFrame(schema=schema.to_polars())
        for i, _ in self._distinct_aggs:
            counts = _group(_semi(self.distinct.get(i, pl.DataFrame(schema=groups.select(self.groups).schema)),
                                  groups, self.groups), self.groups, [pl.len().cast(pl.Int64).alias(f"__sd_d{i}")])
            if self.groups:
                groups = groups.join(counts, on=self.groups, how="left", nulls_equal=True)
            else:
                groups = groups.with_columns(pl.lit(counts.item() if counts.height else 0).alias(f"__sd_d{i}"))
        exprs = [pl.col(k) for k in self.keys]
        if self.op.window is not None:
            exprs += [pl.col(WS).cast(pl.Datetime("ms")), pl.col(WE).cast(pl.Datetime("ms"))]
        for i, spec in enumerate(self.op.aggs):
            exprs.append(_final_value(i, spec).alias(spec.name))
        out = groups.select(exprs)
        return out.select([pl.col(f.name).cast(f.dtype.polars) for f in schema])


def empty_aggregate_row(op: AggregateOp) -> pl.DataFrame:
    """The one row SQL gives for an aggregate without GROUP BY over no rows: counts 0, the rest NULL."""
    row = {spec.name: 0 if spec.func == "count" else None for spec in op.aggs}
    return pl.DataFrame([row], schema=op.output.to_polars())


def _final_value(i: int, spec: AggSpec) -> pl.Expr:
    if spec.func == "count":
        return pl.col(f"__sd_d{i}").fill_null(0) if spec.distinct else pl.col(f"__sd_c{i}")
    if spec.func == "sum":
        return pl.when(pl.col(f"__sd_n{i}") > 0).then(pl.col(f"__sd_s{i}")).otherwise(None)
    if spec.func == "avg":
        return pl.when(pl.col(f"__sd_n{i}") > 0).then(pl.col(f"__sd_s{i}") / pl.col(f"__sd_n{i}")).otherwise(None)
    return pl.col(f"__sd_{spec.func}{i}")


def _wm(wm: int | None) -> pl.Expr:
    """A watermark as a polars literal; no watermark compares below every time."""
    return pl.lit(-(2**62) if wm is None else wm, dtype=pl.Int64)


# ---------------------------------------------------------------- distinct


@dataclass
class DistinctState:
    """Every row seen so far by one partition of a DISTINCT."""

    op: DistinctOp
    seen: pl.DataFrame | None = field(default=None)

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        fresh = rows.unique(maintain_order=True)
        if self.seen is not None and fresh.height:
            fresh = fresh.join(self.seen, on=list(self.op.columns), how="anti", nulls_equal=True)
        if fresh.height:
            self.seen = fresh if self.seen is None else pl.concat([self.seen, fresh], how="diagonal_relaxed")
        return StepOutput(fresh)


def make_state(op: AggregateOp | DistinctOp) -> AggregateState | DistinctState:
    return AggregateState(op) if isinstance(op, AggregateOp) else DistinctState(op)
