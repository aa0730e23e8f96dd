"""The state of a regular stream-stream join, per partition (Flink's regular join).

Query: `a [INNER|LEFT|RIGHT|FULL] JOIN b ON a.k = b.k` over two streams, with no time
bound. Both inputs are hash shuffled on the key into one stage (`physical/stream_join.py`);
a partition holds the rows of both sides whose keys hash to it.

- Pairs: every pair of a left and a right row with equal, non-NULL keys is emitted
  exactly once, in the batch in which the later of the two arrives: a batch's rows
  join the kept rows of both sides and each other's. Then they are kept too.
- Inner join output is append-only.
- Outer joins (Flink's semantics) are a retract changelog (a CHANGELOG_OP column,
  +1 adds a row, -1 removes an equal row added before): a row of an outer side with
  no match comes out at once NULL-padded (+1); when its first match arrives the
  NULL-padded row is retracted (-1) and the pairs come out (+1). Per batch only the
  net effect comes out: a row that arrives with its match in one batch never shows
  a NULL-padded row. Each kept row counts its matches (_MATCHES) for this.
  Rows with a NULL key match nothing: an outer side's come out NULL-padded at once
  and are not kept; an inner side's are dropped (not late).
- State TTL (`SET state_ttl`, event time): a row whose event time (its side's
  watermark column, ROW_TIME) is older than the TTL behind the watermark, t < W - ttl,
  is dropped from the state after the batch that moves W there, silently (as Flink's
  TTL); a row that arrives already that old (t < W_prev - ttl) is late: dropped and
  counted, since the rows it would have met may be gone. Without a TTL, or on a side
  without a watermark column (or rows with a NULL time), rows stay until the end of
  input, which releases everything (W = +inf).
- Output time: no output column is bounded by the watermark (a pair comes out when its
  later row arrives), as for interval joins (`optimizer/event_time.py`).

Snapshots (`snapshot`/`restore`) hold both sides' rows with their match counts and the
late counts, so a restored state emits exactly what the original would.
"""

from __future__ import annotations

import io
from typing import Any

import polars as pl

from executor.state.clocks import WM_INF
from executor.state.step import StepOutput
from executor.state.two_sided import TwoSidedState
from optimizer.physical.stream_join import ROW_TIME, StreamJoinOp
from stream_dsl.ir.column_names import CHANGELOG_OP

EVENT_MS = "__sd_sj_t"  # a row's event time in epoch ms (NULL: none, the row never expires)
_MATCHES = "__sd_sj_matches"  # how many rows of the other side it matched
_INDEX = "__sd_sj_row"


class StreamJoinState(TwoSidedState):
    """Both sides' kept rows of one partition (module doc): each side's columns, the keys, EVENT_MS and _MATCHES."""

    KIND = "stream_join"  # the snapshot's kind

    op: StreamJoinOp

    def __init__(self, op: StreamJoinOp) -> None:
        super().__init__(op)
        schema: dict[str, Any] = dict(op.output.to_polars())
        if op.retracts:
            schema[CHANGELOG_OP] = pl.Int8
        self._empty = pl.DataFrame(schema=schema)

    def retention_ms(self, keep_all: int) -> int | None:
        """The earliest event time a source must still be able to replay for this state (None: nothing kept;
        `keep_all`: every record, since rows without a TTL or an event time stay until the end of input)."""
        kept = [f.get_column(EVENT_MS) for f in (self.left, self.right) if f is not None and f.height]
        if not kept:
            return None
        if not self.op.bounded or any(t.null_count() for t in kept):
            return keep_all
        return min(int(t.min()) for t in kept)  # type: ignore[arg-type]

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        op = self.op
        outer_left, outer_right = op.kind in ("left", "full"), op.kind in ("right", "full")
        out: list[pl.DataFrame] = []
        new_left, never_left, late_l = self._checked(self._take(self.side(rows, False), False), wm_prev)
        new_right, never_right, late_r = self._checked(self._take(self.side(rows, True), True), wm_prev)
        self.late_left += late_l
        self.late_right += late_r
        if outer_left and never_left.height:
            out.append(self._padded(never_left, False, 1))
        if outer_right and never_right.height:
            out.append(self._padded(never_right, True, 1))
        if new_left.height or new_right.height:
            out += self._match(new_left, new_right, outer_left, outer_right)
        self._expire(wm_new)
        frame = pl.concat(out, how="vertical_relaxed") if out else self._empty
        return StepOutput(frame, None, late_l + late_r)

    # ------------------------------------------------------------ steps

    def _take(self, rows: pl.DataFrame, right: bool) -> pl.DataFrame:
        """One side's rows: its columns, the keys, its event time in epoch ms, no matches yet."""
        columns = self.right_columns if right else self.left_columns
        return rows.select(
            [pl.col(c) for c in columns + self.keys]
            + [pl.col(ROW_TIME).dt.epoch("ms").alias(EVENT_MS), pl.lit(0, pl.Int64).alias(_MATCHES)]
        )

    def _checked(self, rows: pl.DataFrame, wm_prev: int | None) -> tuple[pl.DataFrame, pl.DataFrame, int]:
        """(rows that may match, rows that never can: a NULL key, late-row count): late is older than the TTL
        at the watermark the batch started with; a row without an event time is never late."""
        return self.sorted_rows(rows, EVENT_MS, time_required=False, horizon=self._horizon(wm_prev))

    def _horizon(self, wm: int | None) -> int | None:
        """Rows with an event time below this are older than the TTL at watermark `wm` (None: none are)."""
        if wm is None or self.op.ttl_ms is None or wm >= WM_INF:
            return None
        return wm - self.op.ttl_ms

    def _match(
        self, new_left: pl.DataFrame, new_right: pl.DataFrame, outer_left: bool, outer_right: bool
    ) -> list[pl.DataFrame]:
        """The pairs with at least one new row (+1), and the NULL-padded rows that appear or go; state updated."""
        old_left = 0 if self.left is None else self.left.height
        old_right = 0 if self.right is None else self.right.height
        left = new_left if self.left is None else pl.concat([self.left, new_left], how="vertical_relaxed")
        right = new_right if self.right is None else pl.concat([self.right, new_right], how="vertical_relaxed")
        li, ri = left.with_row_index(_INDEX + "l"), right.with_row_index(_INDEX + "r")
        joined = (
            li.lazy()
            .drop(_MATCHES, EVENT_MS)
            .join(ri.lazy().drop(_MATCHES, EVENT_MS), on=self.keys, how="inner", suffix="_r")
            .filter((pl.col(_INDEX + "l") >= old_left) | (pl.col(_INDEX + "r") >= old_right))
            .collect()
        )
        out: list[pl.DataFrame] = []
        if joined.height:
            pairs = joined.select([pl.col(c) for c in self.left_columns + self.right_columns])
            out.append(self._typed(pairs, 1))
        kept_l, gone_l, alone_l = _counted(li, joined, _INDEX + "l", old_left)
        kept_r, gone_r, alone_r = _counted(ri, joined, _INDEX + "r", old_right)
        if outer_left:
            out += [self._padded(gone_l, False, -1), self._padded(alone_l, False, 1)]
        if outer_right:
            out += [self._padded(gone_r, True, -1), self._padded(alone_r, True, 1)]
        self.left, self.right = kept_l, kept_r
        return [f for f in out if f.height]

    def _expire(self, wm: int | None) -> None:
        """Drop the rows older than the TTL at watermark `wm`, and every row at the end of input."""
        if wm is not None and wm >= WM_INF:
            self.left = self.right = None
            return
        horizon = self._horizon(wm)
        if horizon is None:
            return
        keep = pl.col(EVENT_MS).is_null() | (pl.col(EVENT_MS) >= horizon)
        self.left = None if self.left is None else self.left.filter(keep)
        self.right = None if self.right is None else self.right.filter(keep)

    def _padded(self, rows: pl.DataFrame, right: bool, sign: int) -> pl.DataFrame:
        """One side's rows with NULLs for every column of the other, in the output's columns and types."""
        own, other = (self.right_columns, self.left_columns) if right else (self.left_columns, self.right_columns)
        return self._typed(rows.select([pl.col(c) for c in own] + [pl.lit(None).alias(c) for c in other]), sign)

    def _typed(self, frame: pl.DataFrame, sign: int) -> pl.DataFrame:
        exprs = [pl.col(f.name).cast(f.dtype.polars) for f in self.op.output]
        if self.op.retracts:
            exprs.append(pl.lit(sign, pl.Int8).alias(CHANGELOG_OP))
        return frame.select(exprs)

    # ------------------------------------------------------------ checkpoints

    def snapshot(self) -> dict[str, Any]:
        """Everything the state holds, picklable (frames as Arrow IPC bytes)."""
        late = [self.late_left, self.late_right]
        return {"kind": self.KIND, "left": _ipc(self.left), "right": _ipc(self.right), "late": late}

    @classmethod
    def restore(cls, op: StreamJoinOp, snapshot: dict[str, Any]) -> "StreamJoinState":
        if snapshot.get("kind") != cls.KIND:
            raise ValueError(f"a {snapshot.get('kind')!r} state snapshot cannot restore {op.describe()}")
        state = cls(op)
        state.left, state.right = _from_ipc(snapshot["left"]), _from_ipc(snapshot["right"])
        state.late_left, state.late_right = (int(n) for n in snapshot["late"])
        return state


def _counted(
    indexed: pl.DataFrame, joined: pl.DataFrame, index: str, old: int
) -> tuple[pl.DataFrame | None, pl.DataFrame, pl.DataFrame]:
    """One side after a batch: (its rows with match counts added, its old rows that had no match and now have,
    its new rows that still have none)."""
    counts = joined.group_by(index).len("__sd_sj_n")
    merged = indexed.join(counts, on=index, how="left").sort(index)
    added = pl.col("__sd_sj_n").fill_null(0)
    flags = merged.select(
        ((pl.col(index) < old) & (pl.col(_MATCHES) == 0) & (added > 0)).alias("gone"),
        ((pl.col(index) >= old) & (added == 0)).alias("alone"),
    )
    kept = merged.with_columns((pl.col(_MATCHES) + added).alias(_MATCHES)).drop(index, "__sd_sj_n")
    gone, alone = kept.filter(flags.get_column("gone")), kept.filter(flags.get_column("alone"))
    return (kept if kept.height else None), gone, alone


def _ipc(frame: pl.DataFrame | None) -> bytes | None:
    return None if frame is None else frame.write_ipc(None).getvalue()


def _from_ipc(data: bytes | None) -> pl.DataFrame | None:
    return None if data is None else pl.read_ipc(io.BytesIO(data))
