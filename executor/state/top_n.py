"""The state of a top-n (ROW_NUMBER() <= n per partition) and of a deduplication (ROW_NUMBER() = 1 per key).

Semantics (exact; equal to the batch query over all input when no row is late):

- Window top-n (`kind` 'window', the partition holds window_start and
  window_end): a row waits until the watermark reaches its window_end
  (window_end <= watermark, as a window closes); then its window's rows are
  ranked by the ORDER BY and the first n are emitted, numbered 1..n. The
  input of a window top-n is a windowed aggregate that emits on window
  close, so a window's rows all arrive in the batch that closes it and are
  ranked at once; rows that wait are kept in `pending` until then.
- Deduplication (`kind` 'dedup': n = 1, ORDER BY an event-time column ts
  ascending): a key's first row is the one with the smallest ts. Rows
  arriving in later batches may hold a smaller ts, so the key's best row
  so far waits in `pending` until the watermark passes its ts (ts <
  watermark): every row still to come has ts >= watermark or is late. Then
  it is emitted and the key goes to `seen`; later rows of a seen key are
  dropped (counted in `duplicates`). A row whose ts is NULL or before the
  previous batch's watermark is late: dropped and counted.
  TTL: a seen key is forgotten once the watermark passes its ts + ttl
  (event time); a row of that key arriving after is a first row again.
  Without a TTL the seen keys are kept forever (as Flink's default).
- Ties (equal ORDER BY values) are broken by the other columns in order,
  ascending, NULLs last, so the result is the same however rows are split
  into batches or partitions.
- If the watermark does not bound the time column (no watermark, or a
  column other than the source's watermark column), rows wait for the end
  of input, which decides everything (the watermark is then +inf).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from executor.state.clocks import WM_INF
from executor.state.step import StepOutput, join_keys
from optimizer.physical.stages import TopNOp

_T = "__sd_rank_ms"  # the time column in epoch milliseconds


def _end_only(wm: int | None) -> int | None:
    return wm if wm is not None and wm >= WM_INF else None


@dataclass
class TopNState:
    """One partition of a top-n or deduplication: rows waiting for the watermark, and the keys already emitted."""

    op: TopNOp
    pending: pl.DataFrame | None = None  # input columns plus _T
    seen: pl.DataFrame | None = None  # dedup only: partition columns plus _T (the emitted row's time)
    duplicates: int = field(default=0)  # rows dropped because their key was emitted before

    @property
    def open_groups(self) -> int:
        """Rows the state holds: waiting rows and remembered keys (the state size)."""
        return sum(f.height for f in (self.pending, self.seen) if f is not None)

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        if not self.op.watermarked:
            wm_prev, wm_new = _end_only(wm_prev), _end_only(wm_new)
        late = 0
        pending: pl.DataFrame | None
        if rows.height:
            rows = rows.with_columns(pl.col(self.op.time_column).cast(pl.Datetime("ms")).dt.epoch("ms").alias(_T))
            if self.op.kind == "dedup":
                rows, late = self._fresh(rows, wm_prev)
            pending = rows if self.pending is None else pl.concat([self.pending, rows], how="vertical_relaxed")
        else:
            pending = self.pending
        if pending is not None and self.op.kind == "dedup":
            pending = self._ordered(pending).unique(list(self.op.partition_by), keep="first", maintain_order=True)
        if pending is None or wm_new is None:
            self.pending = pending
            return StepOutput(self._empty(), None, late)
        if self.op.kind == "dedup":
            ready = pending.get_column(_T) < wm_new
        else:
            ready = pending.get_column(_T) <= wm_new
        decided, self.pending = pending.filter(ready), pending.filter(~ready)
        if self.op.kind == "dedup":
            self._remember(decided, wm_new)
        return StepOutput(self._ranked(decided), None, late)

    def _fresh(self, rows: pl.DataFrame, wm_prev: int | None) -> tuple[pl.DataFrame, int]:
        """The rows that may still be a key's first: not late, and of no key emitted before."""
        times = pl.col(_T)
        on_time = times.is_not_null() if wm_prev is None else times.is_not_null() & (times >= wm_prev)
        kept = rows.filter(on_time)
        late = rows.height - kept.height
        if self.seen is not None and self.seen.height and kept.height:
            keys = list(self.op.partition_by)
            before = kept.height
            if keys:
                kept = join_keys(kept, self.seen.select(keys), keys, "anti")  # a key is seen at most once
            else:
                kept = kept.clear()
            self.duplicates += before - kept.height
        return kept, late

    def _remember(self, decided: pl.DataFrame, wm: int) -> None:
        keys = list(self.op.partition_by)
        seen = self.seen
        if decided.height:
            fresh = decided.select(keys + [_T])
            seen = fresh if seen is None else pl.concat([seen, fresh], how="vertical_relaxed")
        if seen is not None and (self.op.ttl_ms is not None or wm >= WM_INF):
            horizon = WM_INF if wm >= WM_INF else wm - (self.op.ttl_ms or 0)
            seen = seen.filter(pl.col(_T) >= horizon)
        self.seen = seen

    def _ordered(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`frame` sorted by the ORDER BY, ties broken by the other columns (ascending, NULLs last)."""
        keys = self.op.order_by
        named = {k.column for k in keys}
        rest = [c for c in frame.columns if c not in named and c != _T]
        return frame.sort(
            [k.column for k in keys] + rest,
            descending=[k.descending for k in keys] + [False] * len(rest),
            nulls_last=[not k.nulls_first for k in keys] + [True] * len(rest),
            maintain_order=True,
        )

    def _ranked(self, decided: pl.DataFrame) -> pl.DataFrame:
        """The first n rows of each partition of `decided`, numbered from 1, in the output's columns."""
        if not decided.height:
            return self._empty()
        keys = list(self.op.partition_by)
        number = pl.int_range(1, pl.len() + 1, dtype=pl.Int64)
        ordered = self._ordered(decided).with_columns((number.over(keys) if keys else number).alias(_T))
        top = ordered.filter(pl.col(_T) <= self.op.n)
        if self.op.number_column is not None:
            top = top.rename({_T: self.op.number_column})
        return top.select(self.op.output.names)

    def _empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.op.output.to_polars())
