"""Folding many batches of a changelog into one, so collect() updates its table once per many batches.

A changelog batch is (upserts, deletes): first the deleted group keys go,
then each upserted row replaces its group's row (`inline.CollectOutput.
apply_changelog`). For collect() only the final table matters, so the
driver buffers the batches and folds them: per group key the last
operation wins (a batch's upsert comes after its delete). Applying the
folded pair once gives the same table as applying every batch in order,
for one join and concat per flush instead of per batch and partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from stream_dsl.ir.column_names import CHANGELOG_OP

_OP = CHANGELOG_OP


def fold(
    parts: list[tuple[pl.DataFrame, pl.DataFrame | None]], keys: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """One (upserts, deletes) pair with the effect of applying `parts` in order."""
    if len(parts) == 1:
        return parts[0]
    if not keys:  # one group, no deletes: the last non-empty upsert is the whole table
        nonempty = [upserts for upserts, _ in parts if upserts.height]
        return (nonempty[-1] if nonempty else parts[-1][0]), None
    frames = [parts[0][0].clear().with_columns(pl.lit(0, dtype=pl.Int64).alias(_OP))]  # every column, no rows
    for i, (upserts, deletes) in enumerate(parts):
        if deletes is not None and deletes.height:
            frames.append(deletes.select(keys).with_columns(pl.lit(2 * i, dtype=pl.Int64).alias(_OP)))
        if upserts.height:
            frames.append(upserts.with_columns(pl.lit(2 * i + 1, dtype=pl.Int64).alias(_OP)))
    ops = pl.concat(frames, how="diagonal_relaxed").sort(_OP, maintain_order=True)
    last = ops.group_by(keys, maintain_order=True).last()
    upserts = last.filter(pl.col(_OP) % 2 == 1).drop(_OP).select(parts[0][0].columns)
    deletes = last.filter(pl.col(_OP) % 2 == 0).select(keys)
    return upserts, deletes if deletes.height else None


@dataclass
class ChangelogBuffer:
    """Changelog batches waiting to be folded into the collected table (flushed every `limit` parts)."""

    keys: list[str]
    limit: int = 64
    parts: list[tuple[pl.DataFrame, pl.DataFrame | None]] = field(default_factory=list)

    def add(self, upserts: pl.DataFrame, deletes: pl.DataFrame | None) -> bool:
        """Buffer one part; True when the buffer is full and should be flushed."""
        self.parts.append((upserts, deletes))
        return len(self.parts) >= self.limit

    def take(self) -> tuple[pl.DataFrame, pl.DataFrame | None] | None:
        """The folded buffer (None when empty), emptying it."""
        if not self.parts:
            return None
        folded = fold(self.parts, self.keys)
        self.parts = []
        return folded
