"""Physical operators and stages: what one task of a micro-batch runs.

A `Stage` is a fused narrow pipeline (scan or exchange read, filters,
projections, broadcast joins with static tables), optionally a stateful
operator (windowed or plain aggregate, distinct) followed by more narrow
operators, and a terminal write (hash exchange to the next stage, or the
query output). Everything here is a frozen, picklable record, because the
multiprocess executor ships stages to worker processes once per query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

# Column names the executor adds between stages (re-exported here, where the operators that use them live).
from stream_dsl.ir.column_names import (  # noqa: F401
    PARTIAL_DISTINCT,
    PARTITION_COLUMN,
    ROW_COLUMN,
    TABLE_ROW,
    TIME_COLUMN,
    WINDOW_END,
    WINDOW_START,
    arg_column,
)
from stream_dsl.ir.expr import Expr, NamedExpr, format_duration_ms, render, render_named
from stream_dsl.ir.definitions import SourceDef, WindowSpec
from stream_dsl.ir.aggregates_more import describe_merge as describe_more_merge, is_more
from stream_dsl.ir.partial_state import state_fields
from stream_dsl.ir.plan import Plan, SortKey, render_plan
from stream_dsl.ir.types import DataType, Schema
from optimizer.physical.interval_join import IntervalJoinOp
from optimizer.physical.stream_join import StreamJoinOp
from optimizer.physical.changelog import MarkAppendOp, RetractAggregateOp, RetractDistinctOp

# ---------------------------------------------------------------- narrow operators


@dataclass(frozen=True, slots=True)
class ScanOp:
    """Read one batch of a source: keep `columns` (in order) and the rows where `predicate` holds."""

    source: SourceDef
    columns: tuple[str, ...]
    predicate: Expr | None = None

    @property
    def read_columns(self) -> tuple[str, ...]:
        """What to ask the connector for: the columns, plus the watermark column if the scan drops it."""
        wm = self.source.watermark
        if wm is not None and wm.column not in self.columns:
            return self.columns + (wm.column,)
        return self.columns

    def describe(self) -> str:
        text = f"Scan {self.source.kind} {self.source.name} columns=[{', '.join(self.columns)}]"
        if self.source.split is not None:
            text += f" split={self.source.split[0] + 1}/{self.source.split[1]}"
        if self.predicate is not None:
            text += f" predicate={render(self.predicate)}"
        if self.source.watermark is not None:
            wm = self.source.watermark
            text += f" watermark={wm.column}-{format_duration_ms(wm.delay_ms)}"
        return text


@dataclass(frozen=True, slots=True)
class ReadOp:
    """The stage's input: its partition of every upstream stage's output, concatenated."""

    schema: Schema

    def describe(self) -> str:
        return f"Read exchange ({', '.join(self.schema.names)})"


@dataclass(frozen=True, slots=True)
class FilterOp:
    predicate: Expr

    def describe(self) -> str:
        return f"Filter {render(self.predicate)}"


@dataclass(frozen=True, slots=True)
class ProjectOp:
    exprs: tuple[NamedExpr, ...]

    def describe(self) -> str:
        return f"Project {', '.join(render_named(n) for n in self.exprs)}"


@dataclass(frozen=True, slots=True)
class UnnestOp:
    """A row per element of list column `column` (plan.Unnest): a polars explode."""

    column: str
    element: str
    ordinality: str | None = None
    outer: bool = False

    def describe(self) -> str:
        ordinality = f" ordinality={self.ordinality}" if self.ordinality is not None else ""
        return f"Unnest{' outer' if self.outer else ''} {self.column} as {self.element}{ordinality}"


@dataclass(frozen=True, slots=True)
class BroadcastJoinOp:
    """Join each stream row with a static table read once per query (`table`, a static plan).

    `output` lists the result columns in order as (side, column, name), side
    being 'stream' or 'table'; `key_types` is the common type each key pair
    is compared in. A NULL key matches nothing.
    """

    table_id: str
    table: Plan
    kind: str
    stream_keys: tuple[str, ...]
    table_keys: tuple[str, ...]
    key_types: tuple[DataType, ...]
    output: tuple[tuple[str, str, str], ...]

    def describe(self) -> str:
        on = ", ".join(f"{s} = {t}" for s, t in zip(self.stream_keys, self.table_keys))
        cols = ", ".join(c if c == n else f"{n} := {side}.{c}" for side, c, n in self.output)
        return f"BroadcastJoin {self.kind} {self.table_id} on [{on}] output=[{cols}]"


@dataclass(frozen=True, slots=True)
class PartialAggregateOp:
    """Phase one of a split aggregate: the task's rows pre-aggregated into partial state per group.

    A narrow operator, fused into the task's polars query before the
    shuffle write. Input columns: `keys`, TIME_COLUMN if windowed (the
    TUMBLE window is assigned here), PARTIAL_DISTINCT if a COUNT(DISTINCT)
    groups on its argument, and each aggregate's `arg`. Output: `output`,
    the PartialAggregate's schema (keys, window_start, window_end,
    PARTIAL_DISTINCT, PARTIAL_ROWS, then the state columns of
    `stream_dsl.ir.partial_state.state_fields`), which the final AggregateOp merges.
    """

    keys: tuple[str, ...]
    aggs: tuple["AggSpec", ...]
    window: WindowSpec | None
    distinct: bool
    output: Schema

    @property
    def group_columns(self) -> tuple[str, ...]:
        """What the task groups on: keys, window bounds, the distinct argument."""
        window = (WINDOW_START, WINDOW_END) if self.window is not None else ()
        return self.keys + window + ((PARTIAL_DISTINCT,) if self.distinct else ())

    def describe(self) -> str:
        parts = [f"keys=[{', '.join(self.keys)}]"]
        if self.window is not None:
            parts.append(f"window={self.window}")
        parts.append(f"aggs=[{', '.join(a.describe() for a in self.aggs)}]")
        return "PartialAggregate " + " ".join(parts)


# ---------------------------------------------------------------- terminal writes


@dataclass(frozen=True, slots=True)
class Exchange:
    """How rows move between two stages: `kind` 'hash' on `keys` into `partitions` partitions."""

    kind: str
    keys: tuple[str, ...]
    partitions: int

    def describe(self) -> str:
        return f"hash([{', '.join(self.keys)}]) x{self.partitions}" if self.keys else f"single x{self.partitions}"


@dataclass(frozen=True, slots=True)
class ShuffleWrite:
    """Hash-partition the rows on `exchange.keys` and hand partition r to task r of stage `target`."""

    exchange: Exchange
    target: int

    def describe(self) -> str:
        return f"ShuffleWrite {self.exchange.describe()} -> stage {self.target}"


@dataclass(frozen=True, slots=True)
class OutputWrite:
    """The query's output. `changelog` outputs are keyed by `group_keys` (later rows replace earlier).

    `retract` outputs carry CHANGELOG_OP per row: +1 adds it, -1 removes an equal earlier row.
    """

    changelog: bool = False
    group_keys: tuple[str, ...] = ()
    retract: bool = False

    def describe(self) -> str:
        if self.retract:
            return "Output retract"
        if self.changelog:
            return f"Output changelog keyed by [{', '.join(self.group_keys)}]"
        return "Output append"


# ---------------------------------------------------------------- stateful operators


@dataclass(frozen=True, slots=True)
class AggSpec:
    """One aggregate: `func` over input column `arg` (None: COUNT(*)), producing `name` of `dtype`."""

    name: str
    func: str
    arg: str | None
    dtype: DataType
    distinct: bool = False
    arg_dtype: DataType | None = None  # the argument's type before the cast to `dtype` (an AVG's sum type)
    param: float | str | None = None  # a constant second argument (`ir.aggregates_more`)
    time: str | None = None  # the event-time column FIRST_VALUE & co. sort by; None: arrival (a final: state's times)
    udf: Any = None  # an aggregate UDF (stream_dsl/ir/udfs.py; executor/state/udf_aggregates.py)

    def describe(self) -> str:
        inner = "*" if self.arg is None else ("DISTINCT " if self.distinct else "") + self.arg
        if self.param is not None:
            inner += f", {self.param!r}"
        return f"{self.name} := {self.func}({inner})"

    def state_columns(self, i: int) -> tuple[str, ...]:
        """The partial state columns of this aggregate as number `i` (see `ir.partial_state.state_fields`)."""
        return tuple(f.name for f in state_fields(i, self.func, self.dtype, self.distinct, self.arg_dtype, self.udf))

    def describe_merge(self, i: int) -> str:
        """How a final aggregate merges this one's partial state columns."""
        columns = self.state_columns(i)
        if is_more(self.func):
            merge = describe_more_merge(self.func, columns)
        elif self.udf is not None:
            merge = f"{self.func}.merge({columns[0]})"
        elif self.distinct:
            merge = f"count(DISTINCT {PARTIAL_DISTINCT})"
        elif self.func == "count":
            merge = f"sum({columns[0]})"
        elif self.func == "sum":
            merge = f"sum({columns[0]}) unless sum({columns[1]}) = 0"
        elif self.func == "avg":
            merge = f"sum({columns[0]}) / sum({columns[1]})"
        else:
            merge = f"{self.func}({columns[0]})"
        return f"{self.name} := {merge}"


@dataclass(frozen=True, slots=True)
class AggregateOp:
    """Keyed aggregate state, optionally per event-time window (time in TIME_COLUMN).

    `emit` is 'final' (each window's row once, when the watermark passes its
    end) or 'changes' (per batch, the new value of every group it touched);
    a non-windowed aggregate is always 'changes'. Output: keys, window_start
    and window_end if windowed, then the aggregates.

    `phase` is 'single' (input: raw rows, with TIME_COLUMN and argument
    columns) or 'final' (input: the rows of PartialAggregateOps, with
    window_start and window_end already assigned, PARTIAL_ROWS, the state
    columns, and PARTIAL_DISTINCT as the argument of COUNT(DISTINCT)).
    """

    keys: tuple[str, ...]
    aggs: tuple[AggSpec, ...]
    window: WindowSpec | None
    emit: str
    output: Schema
    phase: str = "single"
    late_sink: str | None = None  # where late rows go (`stream_dsl/ir/late_rows.py`), carried as late_columns
    late_columns: tuple[str, ...] = ()
    retract: bool = False  # emit a changelog as retractions (-old, +new rows: `physical/changelog.py`)

    @property
    def final(self) -> bool:
        """Whether this merges partial aggregates (the second phase of a split aggregate)."""
        return self.phase == "final"

    @property
    def changelog(self) -> bool:
        return self.window is None or self.emit == "changes"

    @property
    def group_keys(self) -> tuple[str, ...]:
        if self.window is None:
            return self.keys
        return self.keys + (WINDOW_START, WINDOW_END)

    def describe(self) -> str:
        parts = [f"keys=[{', '.join(self.keys)}]"]
        if self.window is not None:
            parts.append(f"window={self.window}")
        if self.final:
            parts.append(f"merge=[{', '.join(a.describe_merge(i) for i, a in enumerate(self.aggs))}]")
        else:
            parts.append(f"aggs=[{', '.join(a.describe() for a in self.aggs)}]")
        parts.append(f"emit={'retract' if self.retract else 'changes' if self.changelog else 'final'}")
        return ("FinalAggregate " if self.final else "Aggregate ") + " ".join(parts)


@dataclass(frozen=True, slots=True)
class DistinctOp:
    """Emit each distinct row the first time it is seen."""

    columns: tuple[str, ...]

    def describe(self) -> str:
        return f"Distinct [{', '.join(self.columns)}]"


@dataclass(frozen=True, slots=True)
class TopNOp:
    """ROW_NUMBER() <= n per partition (`executor/state/top_n.py` has the semantics).

    `kind` 'window': a row is decided once the watermark reaches its
    `time_column` (window_end); 'dedup': a key's first row is decided once the
    watermark passes its `time_column` (the first ORDER BY column), and the key
    is remembered for `ttl_ms` (None: forever). `watermarked`: whether the
    watermark bounds `time_column` (if not, only the end of input decides).
    """

    kind: str
    partition_by: tuple[str, ...]
    order_by: tuple[SortKey, ...]
    n: int
    number_column: str | None
    time_column: str
    watermarked: bool
    ttl_ms: int | None
    output: Schema

    def describe(self) -> str:
        text = f"TopN {self.kind} n={self.n} partition=[{', '.join(self.partition_by)}]"
        text += f" order=[{', '.join(str(k) for k in self.order_by)}]"
        if self.number_column is not None:
            text += f" number={self.number_column}"
        if self.ttl_ms is not None:
            text += f" ttl={format_duration_ms(self.ttl_ms)}"
        return text + ("" if self.watermarked else " (decided at the end of input)")


@dataclass(frozen=True, slots=True)
class UnmatchedRowsOp:
    """The rows of broadcast table `table_id` that no stream row matched, emitted once, at the end of input.

    The second half of a RIGHT or FULL join (`optimizer/physical/outer_joins.py`). Input: the TABLE_ROW
    numbers of matched table rows. `output` is as a BroadcastJoinOp's; its stream columns come out NULL,
    typed as in `schema`, the join's output.
    """

    table_id: str
    kind: str
    output: tuple[tuple[str, str, str], ...]
    schema: Schema

    def describe(self) -> str:
        cols = ", ".join(
            f"{n} := NULL" if side == "stream" else c if c == n else f"{n} := {c}" for side, c, n in self.output
        )
        return f"UnmatchedRows {self.kind} {self.table_id} at end of input output=[{cols}]"


NarrowOp = Union[ScanOp, ReadOp, FilterOp, ProjectOp, BroadcastJoinOp, PartialAggregateOp, MarkAppendOp, UnnestOp]
Terminal = Union[ShuffleWrite, OutputWrite]
StatefulOp = Union[
    AggregateOp,
    DistinctOp,
    TopNOp,
    IntervalJoinOp,
    StreamJoinOp,
    UnmatchedRowsOp,
    RetractAggregateOp,
    RetractDistinctOp,
]
Operator = Union[NarrowOp, Terminal]


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of the DAG: `operators` run before `stateful` (if any), `post` after it.

    The first operator is a ScanOp (a source stage, one task reading the
    source) or a ReadOp (a stage fed by an exchange, `partitions` tasks).
    The terminal write is the last operator of `post` in a stateful stage
    and of `operators` otherwise.
    """

    id: int
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...] = ()
    partitions: int = 1
    stateful: StatefulOp | None = None
    post: tuple[Operator, ...] = ()

    @property
    def terminal(self) -> Terminal:
        last = (self.post if self.stateful is not None else self.operators)[-1]
        assert isinstance(last, (ShuffleWrite, OutputWrite)), last
        return last

    @property
    def head(self) -> ScanOp | ReadOp:
        return self.operators[0]  # type: ignore[return-value]

    @property
    def is_source(self) -> bool:
        return isinstance(self.operators[0], ScanOp)

    def describe(self) -> list[str]:
        """The stage as text lines: a header, then one operator per line."""
        head = f"Stage {self.id} partitions={self.partitions}"
        if self.inputs:
            head += f" inputs=[{', '.join(str(i) for i in self.inputs)}]"
        lines = [head]
        lines += ["  " + op.describe() for op in self.operators]
        if self.stateful is not None:
            lines.append("  " + self.stateful.describe())
            lines += ["  " + op.describe() for op in self.post]
        return lines


def broadcast_tables(stage: Stage) -> list[BroadcastJoinOp]:
    return [op for op in stage.operators + stage.post if isinstance(op, BroadcastJoinOp)]


def describe_table(op: BroadcastJoinOp) -> str:
    return f"{op.table_id}:\n" + render_plan(op.table, indent=1)
