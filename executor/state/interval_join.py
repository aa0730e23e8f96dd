"""The state of a stream-stream interval join, per partition (Flink's interval join).

Query: `a [LEFT|RIGHT] JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts + lower AND a.ts + upper`
(`IntervalBounds`: `b.ts - a.ts` within [lower, upper], an end excluded by a strict `<`
or `>`). A RIGHT join runs as a LEFT join with the sides swapped. Both inputs are hash
shuffled on the key into one stage; a partition holds the rows of both sides whose keys
hash to it. W below is the query watermark (the minimum over the watermarked sources).

- Pairs: every pair of a left and a right row with equal, non-NULL keys whose times
  satisfy the bound is emitted exactly once, in the batch in which the later of the
  two arrives: a batch's rows join the kept rows of both sides and each other's.
- Late rows: a row whose event time is below the watermark before its batch (t < W)
  is late: dropped and counted (`late_left`, `late_right`, and in `late_rows`). This
  is exactly when it could have matched a row already dropped from state (below):
  a left row at t matches right times in [t + lower, t + upper], and the right rows
  below W + lower are gone, so its range reaches them iff t < W; a right row at t
  matches left times in [t - upper, t - lower], and the left rows below W - upper
  are gone, which its range reaches iff t < W.
- Keeping rows: once W is past, every future row has a time >= W, so a left row at t
  can still match while t + upper >= W (> for a strict upper end), a right row while
  t - lower >= W (> for a strict lower end). After each batch, with the watermark
  advanced by it, rows that can no longer match are dropped: the state holds only
  rows within the interval of the watermark (the state-size test checks the bound).
- LEFT outer: a left row that never matched comes out with NULLs for the right
  columns when it is dropped, i.e. in the batch whose watermark passes t + upper;
  a left row with a NULL key or time can never match and comes out at once.
  Right rows with a NULL key or time are dropped (they match nothing; not late).
  FULL outer: the same for both sides (a right row comes out when the watermark
  passes t - lower). Late rows are dropped on the outer sides too, as in Flink.
- No watermark on a time column (or on one side): no row is late and only the end
  of input (W = +inf) drops state, as for windows; an unbounded input is then refused
  when the query starts (`executor/query/checks.py`).
- Window joins (`x.window_start = y.window_start AND x.window_end = y.window_end`
  over two windowed aggregates, with the key) are the bound [0, 0] on window_end
  (`IntervalBounds.window_end`): a window's rows arrive in the batch whose
  watermark passes its end and no row of it comes later, so they leave the state
  at the end of that batch (`>` instead of `>=` above), and an outer row comes out
  with NULLs in the batch that closes its window.
- Output time: both time columns keep their values; neither is watermark-bounded
  downstream (a pair is emitted when its later row arrives, which may be after the
  watermark passed the earlier row's time), so a window over a join's output closes
  only at the end of input (`optimizer/event_time.py`).

Snapshots (`snapshots.py`) hold both sides' rows with their matched flags and the
late counts, so a restored state emits exactly what the original would.
"""

from __future__ import annotations

from typing import cast

import polars as pl

from executor.state.clocks import WM_INF
from executor.state.step import StepOutput
from executor.state.two_sided import TwoSidedState
from optimizer.physical.interval_join import IntervalJoinOp

_T = "__sd_ij_t"  # a row's event time in epoch ms
_MATCHED = "__sd_ij_matched"
_INDEX = "__sd_ij_row"


class IntervalJoinState(TwoSidedState):
    """Both sides' kept rows of one partition (module doc): each side's columns, the keys, _T and _MATCHED."""

    op: IntervalJoinOp

    def __init__(self, op: IntervalJoinOp) -> None:
        super().__init__(op)
        self._empty = pl.DataFrame(schema=op.output.to_polars())

    def earliest_ms(self) -> int | None:
        """The earliest event time of a kept row (None: none kept): what a source must still be able to replay."""
        times = [cast("int", f.get_column(_T).min()) for f in (self.left, self.right) if f is not None and f.height]
        return min(times) if times else None

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        if not self.op.watermarked:
            wm_prev, wm_new = _end_only(wm_prev), _end_only(wm_new)
        outer, outer_right = self.op.kind in ("left", "full"), self.op.kind == "full"
        out: list[pl.DataFrame] = []
        new_left, never_left, late_l = self._checked(self._take(self.side(rows, False), False), wm_prev)
        new_right, never_right, late_r = self._checked(self._take(self.side(rows, True), True), wm_prev)
        self.late_left += late_l
        self.late_right += late_r
        if outer and never_left.height:
            out.append(self._unmatched(never_left))
        if outer_right and never_right.height:
            out.append(self._unmatched(never_right, right=True))
        left = _concat(self.left, new_left)
        right = _concat(self.right, new_right)
        old_left = 0 if self.left is None else self.left.height
        old_right = 0 if self.right is None else self.right.height
        if left is not None and right is not None and (new_left.height or new_right.height):
            pairs, left, right = self._pairs(left, right, old_left, old_right)
            if pairs.height:
                out.append(pairs)
        self.left, self.right = left, right
        expired, expired_right = self._expire(wm_new)
        if outer and expired is not None and expired.height:
            out.append(self._unmatched(expired))
        if outer_right and expired_right is not None and expired_right.height:
            out.append(self._unmatched(expired_right, right=True))
        frame = pl.concat(out, how="vertical_relaxed") if out else self._empty
        return StepOutput(frame, None, late_l + late_r)

    # ------------------------------------------------------------ steps

    def _take(self, rows: pl.DataFrame, right: bool) -> pl.DataFrame:
        """One side's rows: its columns, the keys, its time in epoch ms, not matched yet."""
        columns = self.right_columns if right else self.left_columns
        time = self.op.right_time if right else self.op.left_time
        return rows.select(
            [pl.col(c) for c in columns + self.keys]
            + [pl.col(time).dt.epoch("ms").alias(_T), pl.lit(False).alias(_MATCHED)]
        )

    def _checked(self, rows: pl.DataFrame, wm_prev: int | None) -> tuple[pl.DataFrame, pl.DataFrame, int]:
        """(rows that may match, rows that never can: a NULL key or time, late-row count): late is before the
        watermark the batch started with."""
        return self.sorted_rows(rows, _T, time_required=True, horizon=wm_prev)

    def _pairs(
        self, left: pl.DataFrame, right: pl.DataFrame, old_left: int, old_right: int
    ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
        """Pairs with at least one new row (new left with every right, old left with new right); flags updated."""
        b = self.op.bounds
        li = left.with_row_index(_INDEX + "l")
        ri = right.with_row_index(_INDEX + "r")
        new_l = pl.col(_INDEX + "l") >= old_left
        new_r = pl.col(_INDEX + "r") >= old_right
        diff = pl.col(_T + "_r") - pl.col(_T)
        lower = diff > b.lower_ms if b.lower_strict else diff >= b.lower_ms
        upper = diff < b.upper_ms if b.upper_strict else diff <= b.upper_ms
        joined = (
            li.lazy()
            .drop(_MATCHED)
            .join(ri.lazy().drop(_MATCHED), on=self.keys, how="inner", suffix="_r")
            .filter((new_l | new_r) & lower & upper)
            .collect()
        )
        matched_l = li.get_column(_INDEX + "l").is_in(joined.get_column(_INDEX + "l").implode())
        matched_r = ri.get_column(_INDEX + "r").is_in(joined.get_column(_INDEX + "r").implode())
        left = left.with_columns(pl.col(_MATCHED) | matched_l)
        right = right.with_columns(pl.col(_MATCHED) | matched_r)
        pairs = joined.select([pl.col(c) for c in self.left_columns + self.right_columns])
        return pairs.select([pl.col(f.name).cast(f.dtype.polars) for f in self.op.output]), left, right

    def _expire(self, wm: int | None) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
        """Drop rows that can no longer match at watermark `wm` (module doc); returns the dropped rows of each
        side that never matched."""
        if wm is None:
            return None, None
        b = self.op.bounds
        expired = expired_right = None
        if self.left is not None:
            if wm >= WM_INF:
                keep = pl.lit(False)
            else:
                reach = pl.col(_T) + b.upper_ms
                keep = reach > wm if b.upper_strict or b.window_end else reach >= wm
            flags = self.left.select(keep.alias("keep")).get_column("keep")
            expired = self.left.filter(~flags & ~self.left.get_column(_MATCHED))
            self.left = self.left.filter(flags)
        if self.right is not None:
            if wm >= WM_INF:
                keep = pl.lit(False)
            else:
                reach = pl.col(_T) - b.lower_ms
                keep = reach > wm if b.lower_strict or b.window_end else reach >= wm
            flags = self.right.select(keep.alias("keep")).get_column("keep")
            expired_right = self.right.filter(~flags & ~self.right.get_column(_MATCHED))
            self.right = self.right.filter(flags)
        return expired, expired_right

    def _unmatched(self, rows: pl.DataFrame, right: bool = False) -> pl.DataFrame:
        """One side's rows with NULLs for every column of the other, in the output's columns and types."""
        own, other = (self.right_columns, self.left_columns) if right else (self.left_columns, self.right_columns)
        frame = rows.select([pl.col(c) for c in own] + [pl.lit(None).alias(c) for c in other])
        return frame.select([pl.col(f.name).cast(f.dtype.polars) for f in self.op.output])


def _concat(old: pl.DataFrame | None, new: pl.DataFrame) -> pl.DataFrame | None:
    if old is None:
        return new if new.height else None
    return pl.concat([old, new], how="vertical_relaxed") if new.height else old


def _end_only(wm: int | None) -> int | None:
    return wm if wm is not None and wm >= WM_INF else None
