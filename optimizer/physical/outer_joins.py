"""RIGHT and FULL joins of a stream with a static table: what a query emits, and when, and the stages that do it.

What the user writes, and the plan's Join (the stream is always the Join's left input; the binder swaps a
table written first, so `table LEFT JOIN stream` is `stream RIGHT JOIN table`):

- `stream RIGHT JOIN table` (= `table LEFT JOIN stream`): the matched pairs, plus every table row that no
  stream row matched, once, with NULLs for the stream's columns.
- `stream FULL [OUTER] JOIN table`: as RIGHT, plus each stream row that matched no table row, with NULLs for
  the table's columns (as a LEFT JOIN gives it).

When rows come out:

- matched pairs (and a FULL join's unmatched stream rows) stream out in the micro-batch of their stream row,
  exactly as an inner (or LEFT) join's do;
- a table row that no stream row matched is known to be unmatched only when no more stream rows can come:
  at the end of bounded input (every source exhausted; the watermark is +inf). It is emitted then, once.
  On bounded input `collect()` thus equals the SQL result (DuckDB's).
- over an unbounded stream the end never comes, so the table's unmatched rows could never be emitted: such a
  query is refused when it starts (`executor/query/checks.py`, `check_outer_joins`), naming the fix (a LEFT
  JOIN from the stream, or an inner join). We chose a refusal over a changelog (emit the NULL row at once,
  retract it at the first match): the output's changelog is an upsert keyed by group keys, in which a
  table row's NULL row and its later matched rows (any number of them) have no common key, so retractions
  would need a new output mode; a refusal is sound and says what to write instead.

Stages: the Join lowers to two pipelines over the same stream input, like a UNION ALL of its two parts:

1. the stream joined with the table by a broadcast join (inner for RIGHT, left for FULL), to the output;
2. the stream joined (inner) with the same broadcast table keeping only the matched table rows' numbers
   (TABLE_ROW, given when the table is prepared, `executor/kernels.prepare_table`), each number once per
   task and batch (a PartialAggregate on it), shuffled to ONE stateful task, `UnmatchedRowsOp`. It keeps
   the set of matched numbers (at most one per table row) and at the end of input emits the table rows
   whose numbers it never saw (`executor/state/unmatched.py`).

The broadcast join runs on every map task, so the matched set must be merged somewhere: the single stateful
partition is that place. It is ordinary operator state, so every executor (inline, Drizzle, BSP) runs it
the same way, and checkpoints snapshot it and restarts restore it as they do an aggregate's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optimizer.physical.stages import TABLE_ROW, BroadcastJoinOp, PartialAggregateOp, UnmatchedRowsOp
from stream_dsl.ir.column_names import PARTIAL_ROWS
from stream_dsl.ir.plan import Join
from stream_dsl.ir.types import DataType, Field, Schema

if TYPE_CHECKING:
    from optimizer.physical.lower import Fragment, _Lowering

OUTER_KINDS = ("right", "full")
# what the streaming half of each kind is: the stream rows a RIGHT join drops, a FULL join keeps
STREAM_SIDE_KIND = {"right": "inner", "full": "left"}


def outer_join_fragment(lowering: "_Lowering", node: Join, matched: BroadcastJoinOp) -> "Fragment":
    """The two pipelines of a RIGHT or FULL join (module doc); `matched` is the first half's broadcast join."""
    from optimizer.physical.lower import _add

    joined = _add(lowering.lower(node.left), matched, node.schema)
    ids = BroadcastJoinOp(
        matched.table_id,
        matched.table,
        "inner",
        matched.stream_keys,
        matched.table_keys,
        matched.key_types,
        (("table", TABLE_ROW, TABLE_ROW),),
    )
    id_schema = Schema((Field(TABLE_ROW, DataType.BIGINT),))
    # each task sends each matched number once per batch, however many stream rows matched it
    once = Schema(id_schema.fields + (Field(PARTIAL_ROWS, DataType.BIGINT),))
    distinct = PartialAggregateOp((TABLE_ROW,), (), None, False, once)
    probes = _add(_add(lowering.lower(node.left), ids, id_schema), distinct, once)
    unmatched = UnmatchedRowsOp(matched.table_id, node.kind, matched.output, node.schema)
    return joined + lowering.exchange(probes, (), unmatched, node.schema)
