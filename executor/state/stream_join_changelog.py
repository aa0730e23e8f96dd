"""A regular stream-stream join whose inputs are changelogs (e.g. two non-windowed aggregates), per partition.

The same join as `stream_join.py`, on keys only (conditions other than key equalities are
filters above the join, or make a LEFT join's key NULL), but each input row carries
CHANGELOG_OP: +1 adds a row, -1 removes one equal row added before (an update is -old,
+new). Each side's state is a multiset: its distinct rows with a count (_COUNT > 0).

Per batch, with ΔL and ΔR the net signed counts of each side's rows in the batch (a -1
always refers to a row added before, so netting a batch is exact), the pairs change by

    ΔL ⋈ R_old  +  L_old ⋈ ΔR  +  ΔL ⋈ ΔR          (counts multiply: dl·cr, cl·dr, dl·dr)

and each changed pair comes out |n| times with the sign of n. Outer joins (Flink's
semantics): a row of an outer side comes out NULL-padded, with its count, exactly while
its key has no row on the other side; per batch the padded rows of the keys the batch
touched come out as the difference between after and before. So a padded row is
retracted when its key's first match arrives and comes out again when the key's last
match is retracted. Rows with a NULL key match nothing: an outer side's pass through
NULL-padded with their operation, an inner side's are dropped.

The output is a retract changelog. The state TTL and the end of input drop rows as in
`stream_join.py` (rows with a NULL event time, which an aggregate's output has, stay until
the end of input); a retraction of a row the TTL dropped finds nothing and is dropped.
"""

from __future__ import annotations

import polars as pl

from executor.state.step import StepOutput
from executor.state.stream_join import StreamJoinState, EVENT_MS
from optimizer.physical.interval_join import SIDE_COLUMN
from optimizer.physical.stream_join import ROW_TIME, StreamJoinOp
from stream_dsl.ir.column_names import CHANGELOG_OP

_COUNT = "__sd_sj_count"  # a distinct row's count in the state, or its signed change in a batch
_KEY_COUNT = "__sd_sj_key_count"


class ChangelogStreamJoinState(StreamJoinState):
    """Both sides' rows of one partition as multisets (module doc): each side's columns, the keys, EVENT_MS, _COUNT."""

    @property
    def open_groups(self) -> int:
        """Rows kept, both sides, each counted as often as it is there."""
        return sum(0 if f is None else int(f.get_column(_COUNT).sum()) for f in (self.left, self.right))

    def step(self, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None) -> StepOutput:
        op = self.op
        outer_left, outer_right = op.kind in ("left", "full"), op.kind in ("right", "full")
        out: list[pl.DataFrame] = []
        delta_l, never_l, late_l = self._delta(rows.filter(~pl.col(SIDE_COLUMN)), False, wm_prev)
        delta_r, never_r, late_r = self._delta(rows.filter(pl.col(SIDE_COLUMN)), True, wm_prev)
        self.late_left += late_l
        self.late_right += late_r
        if outer_left and never_l.height:
            out.append(self._padded_counts(never_l, False))
        if outer_right and never_r.height:
            out.append(self._padded_counts(never_r, True))
        if delta_l.height or delta_r.height:
            out += self._changes(delta_l, delta_r, outer_left, outer_right)
        self._expire(wm_new)
        frames = [f for f in out if f.height]
        frame = pl.concat(frames, how="vertical_relaxed") if frames else self._empty
        return StepOutput(frame, None, late_l + late_r)

    # ------------------------------------------------------------ steps

    def _delta(self, rows: pl.DataFrame, right: bool, wm_prev: int | None) -> tuple[pl.DataFrame, pl.DataFrame, int]:
        """(the batch's net signed count per distinct row with a key, rows with a NULL key, late-row count)."""
        columns = self.right_columns if right else self.left_columns
        op = pl.col(CHANGELOG_OP).cast(pl.Int64).fill_null(1) if CHANGELOG_OP in rows.columns else pl.lit(1, pl.Int64)
        taken = rows.select(
            [pl.col(c) for c in columns + self.keys]
            + [pl.col(ROW_TIME).dt.epoch("ms").alias(EVENT_MS), op.alias(_COUNT)]
        )
        kept, never, late = self._checked(taken, wm_prev)
        data = [c for c in kept.columns if c != _COUNT]
        net = kept.group_by(data, maintain_order=True).agg(pl.col(_COUNT).sum()).filter(pl.col(_COUNT) != 0)
        return net, never, late

    def _changes(
        self, delta_l: pl.DataFrame, delta_r: pl.DataFrame, outer_left: bool, outer_right: bool
    ) -> list[pl.DataFrame]:
        old_l, old_r = self._side(self.left, delta_l), self._side(self.right, delta_r)
        new_l, new_r = _apply(old_l, delta_l), _apply(old_r, delta_r)
        pairs = [self._pairs(delta_l, old_r), self._pairs(old_l, delta_r), self._pairs(delta_l, delta_r)]
        columns = self.left_columns + self.right_columns
        netted = (
            pl.concat(pairs, how="vertical_relaxed").group_by(columns, maintain_order=True).agg(pl.col(_COUNT).sum())
        )
        out = [self._expanded(netted)]  # netted: a pair added and retracted in one batch does not show
        touched = pl.concat([delta_l.select(self.keys), delta_r.select(self.keys)]).unique()
        if outer_left:
            out.append(self._padding_change(old_l, new_l, old_r, new_r, touched, False))
        if outer_right:
            out.append(self._padding_change(old_r, new_r, old_l, new_l, touched, True))
        self.left = new_l if new_l.height else None
        self.right = new_r if new_r.height else None
        return out

    def _side(self, state: pl.DataFrame | None, like: pl.DataFrame) -> pl.DataFrame:
        return state if state is not None else like.clear()

    def _pairs(self, left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:
        """Every pair of `left` and `right` rows with equal keys, counted by the product of their counts."""
        joined = left.drop(EVENT_MS).join(right.drop(EVENT_MS), on=self.keys, how="inner", suffix="_r")
        count = (pl.col(_COUNT) * pl.col(_COUNT + "_r")).alias(_COUNT)
        return joined.select([pl.col(c) for c in self.left_columns + self.right_columns] + [count])

    def _padding_change(
        self,
        own_old: pl.DataFrame,
        own_new: pl.DataFrame,
        other_old: pl.DataFrame,
        other_new: pl.DataFrame,
        touched: pl.DataFrame,
        right: bool,
    ) -> pl.DataFrame:
        """The NULL-padded rows of one outer side, after minus before, for the keys the batch touched."""
        columns = self.right_columns if right else self.left_columns
        before = self._padded_rows(own_old, other_old, touched).with_columns(-pl.col(_COUNT))
        after = self._padded_rows(own_new, other_new, touched)
        change = pl.concat([before, after], how="vertical_relaxed").select(columns + [_COUNT])
        change = change.group_by(columns, maintain_order=True).agg(pl.col(_COUNT).sum())
        own, other = (self.right_columns, self.left_columns) if right else (self.left_columns, self.right_columns)
        padded = change.select([pl.col(c) for c in own] + [pl.lit(None).alias(c) for c in other] + [pl.col(_COUNT)])
        return self._expanded(padded)

    def _padded_rows(self, own: pl.DataFrame, other: pl.DataFrame, touched: pl.DataFrame) -> pl.DataFrame:
        """The rows of `own` with a touched key that no row of `other` has."""
        rows = own.join(touched, on=self.keys, how="semi")
        present = other.group_by(self.keys).agg(pl.col(_COUNT).sum().alias(_KEY_COUNT))
        return rows.join(present, on=self.keys, how="anti")

    def _padded_counts(self, rows: pl.DataFrame, right: bool) -> pl.DataFrame:
        """Rows with a NULL key, NULL-padded, each with its own operation."""
        own, other = (self.right_columns, self.left_columns) if right else (self.left_columns, self.right_columns)
        padded = rows.select([pl.col(c) for c in own] + [pl.lit(None).alias(c) for c in other] + [pl.col(_COUNT)])
        return self._expanded(padded)

    def _expanded(self, counted: pl.DataFrame) -> pl.DataFrame:
        """Rows with signed counts as changelog rows: each |count| times, CHANGELOG_OP the count's sign."""
        counted = counted.filter(pl.col(_COUNT) != 0)
        if not counted.height:
            return self._empty
        repeat = pl.int_ranges(pl.col(_COUNT).abs()).alias("__sd_sj_i")
        rows = counted.with_columns(repeat).explode("__sd_sj_i")
        exprs = [pl.col(f.name).cast(f.dtype.polars) for f in self.op.output]
        return rows.select(exprs + [pl.col(_COUNT).sign().cast(pl.Int8).alias(CHANGELOG_OP)])

    KIND = "stream_join_changelog"


def stream_join_state(op: StreamJoinOp) -> StreamJoinState:
    """The state of a regular stream join: multisets when its inputs are changelogs."""
    return ChangelogStreamJoinState(op) if op.changelog_input else StreamJoinState(op)


def restore_stream_join(op: StreamJoinOp, snapshot: dict) -> StreamJoinState:
    """A regular stream join's state from its snapshot (`StreamJoinState.snapshot`)."""
    return (ChangelogStreamJoinState if op.changelog_input else StreamJoinState).restore(op, snapshot)


def _apply(state: pl.DataFrame, delta: pl.DataFrame) -> pl.DataFrame:
    """`state` with the signed counts of `delta` added; rows whose count is no longer positive go."""
    if not delta.height:
        return state
    data = [c for c in state.columns if c != _COUNT]
    both = pl.concat([state, delta.select(state.columns)], how="vertical_relaxed")
    return both.group_by(data, maintain_order=True).agg(pl.col(_COUNT).sum()).filter(pl.col(_COUNT) > 0)
