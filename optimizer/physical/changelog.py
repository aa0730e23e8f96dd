"""Changelogs between operators: what each stateful operator consumes and produces, and the ops that carry them.

A changelog batch is a frame of the data columns plus CHANGELOG_OP (Int8):
+1 adds a row, -1 removes one earlier-added equal row; an update is -1 of
the old row then +1 of the new one (a key's removals come first in a batch).
A frame without the column is all +1 (append-only). Three forms:

- "append": rows are only ever added (scans, windows that emit once, joins of append input);
- "upsert": a row per key (the group keys) that later rows of the same key replace, plus deletes
  of keys (a non-windowed aggregate or EMIT CHANGES, read by collect() and upsert sinks);
- "retract": +1/-1 rows as above; every consumer here takes it.

The planner (`lower.py`) decides which form a producer emits: an aggregate emits upserts to the
output when its group keys survive to it, and retractions (-old, +new, from the last row it emitted
per group) when something consumes its changelog (an aggregate, DISTINCT, UNION ALL) or a projection
drops a key. What no operator here can consume is refused with the reason (`refusal`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stream_dsl.ir.changelog_plans import WINDOW_OVER_CHANGELOG
from stream_dsl.ir.column_names import CHANGELOG_OP
from stream_dsl.ir.expr import Column, NamedExpr, format_duration_ms
from stream_dsl.ir.types import DataType, Schema

if TYPE_CHECKING:
    from optimizer.physical.stages import AggSpec

APPEND, UPSERT, RETRACT = "append", "upsert", "retract"
RETRACTABLE = ("count", "sum", "avg", "min", "max")  # aggregates that can take a row back


@dataclass(frozen=True, slots=True)
class MarkAppendOp:
    """Narrow: append-only rows joining a retract stream (UNION ALL, an aggregate's input) get CHANGELOG_OP +1."""

    def describe(self) -> str:
        return "MarkAppend op=+1"


@dataclass(frozen=True, slots=True)
class RetractAggregateOp:
    """A non-windowed aggregate over a retract changelog: -1 rows are subtracted from their group.

    Input: `keys`, each aggregate's argument column, CHANGELOG_OP. State per group: the net row
    count, COUNT/SUM/AVG's counts and sums (a -1 row subtracts), and for MIN, MAX and COUNT(DISTINCT)
    the multiset of values (value -> count). A group whose row count reaches 0 is deleted (without
    GROUP BY the one group stays, as SQL's aggregate over no rows: counts 0, the rest NULL).
    Emits upserts keyed by `keys`, or retractions when `retract`. `ttl_ms` (`SET state_ttl`): a group
    not updated while the watermark advanced that long is dropped from the state.
    """

    keys: tuple[str, ...]
    aggs: tuple["AggSpec", ...]
    output: Schema
    retract: bool = False
    ttl_ms: int | None = None
    window: None = None  # never windowed (a windowed aggregate over a changelog is refused)
    phase: str = "single"

    @property
    def changelog(self) -> bool:
        return True

    @property
    def final(self) -> bool:
        return False

    @property
    def group_keys(self) -> tuple[str, ...]:
        return self.keys

    def describe(self) -> str:
        text = f"RetractAggregate keys=[{', '.join(self.keys)}] aggs=[{', '.join(a.describe() for a in self.aggs)}]"
        text += f" emit={'retract' if self.retract else 'upsert'}"
        return text + ("" if self.ttl_ms is None else f" ttl={format_duration_ms(self.ttl_ms)}")


@dataclass(frozen=True, slots=True)
class RetractDistinctOp:
    """DISTINCT over a retract changelog: a count per distinct row; +1 when it goes 0 -> 1, -1 when 1 -> 0."""

    columns: tuple[str, ...]
    ttl_ms: int | None = None

    def describe(self) -> str:
        text = f"RetractDistinct [{', '.join(self.columns)}]"
        return text + ("" if self.ttl_ms is None else f" ttl={format_duration_ms(self.ttl_ms)}")


def op_passthrough() -> NamedExpr:
    """A projection's output that carries CHANGELOG_OP along unchanged (NULL type: copied without a cast)."""
    return NamedExpr(CHANGELOG_OP, Column(CHANGELOG_OP, DataType.NULL))


def produces(op: Any) -> str:
    """The form of a stateful operator's output."""
    if isinstance(op, RetractDistinctOp):
        return RETRACT
    if getattr(op, "retract", False):
        return RETRACT
    return UPSERT if getattr(op, "changelog", False) else APPEND


def consumes(op: Any) -> str:
    """The input form a stateful operator takes (a retract consumer also takes append rows)."""
    return RETRACT if isinstance(op, (RetractAggregateOp, RetractDistinctOp)) else APPEND


def refusal(consumer: Any) -> str | None:
    """Why `consumer` cannot take a changelog, with what to write instead; None when it can (as a retract op)."""
    from optimizer.physical.stages import AggregateOp

    if isinstance(consumer, AggregateOp):
        if consumer.window is not None:
            return WINDOW_OVER_CHANGELOG
        bad = [a for a in consumer.aggs if a.func not in RETRACTABLE]
        if bad:
            return (
                f"{bad[0].func.upper()} over a changelog (a non-windowed aggregate or EMIT CHANGES, whose rows are "
                f"later replaced) is not supported: it cannot take a row back; use "
                f"{', '.join(f.upper() for f in RETRACTABLE)}, or aggregate append-only input"
            )
    return None
