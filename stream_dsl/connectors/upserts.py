"""What a sink takes (appended rows only, or upserts by key) and the records an upsert sink is given.

A query whose output is a changelog (a non-windowed aggregate, or EMIT
CHANGES) updates rows by key: the group keys. A sink that declares
`writes = UPSERT` (a class attribute; the connector module's `WRITES` says
the same for `connectors.sink_modes`) receives, per batch, rows with an
`op` column first: 'upsert' (the row is the key's new value) or 'delete'
(the key's row is gone; only the key columns are set), deletes of a batch
before its upserts. Folding every row in batch order, "last row per key,
minus the deleted keys", gives the table (`fold_changes`), as a Flink
upsert-kafka topic or a ksqlDB table's changelog does.

A retract changelog (rows added and taken back whole, with no key: an
outer join of two streams, an aggregate read by a projection that drops its
key) reaches such a sink as records with `op` 'insert' (one more such row)
or 'delete' (one such row fewer); the table is their multiset sum
(`fold_changes` without keys).

A sink without the attribute takes appended rows only: a changelog query
writing to it is refused when it starts (`executor.query.sink_modes`).
"""

from __future__ import annotations

from typing import Any

import polars as pl

APPEND = "append"  # each row is a new fact: windows with EMIT ON WINDOW CLOSE, filters, projections
UPSERT = "upsert"  # rows replace (or delete) the row of their key
RETRACT = "retract"  # rows are added and taken back whole (an output mode; upsert sinks take it as records)
LATEST = "latest"  # a display of each batch's new rows as they come, deletes unseen (the REPL's live view)
OP_COLUMN = "op"  # the operation of an upsert sink's row: UPSERT_OP or DELETE_OP
UPSERT_OP = "upsert"
DELETE_OP = "delete"
INSERT_OP = "insert"  # a retract changelog's added row (its taken-back rows are DELETE_OP)


def sink_writes(sink: Any) -> str:
    """What `sink` takes: UPSERT or LATEST when it declares so (`writes`), else APPEND."""
    writes = getattr(sink, "writes", APPEND)
    return writes if writes in (UPSERT, LATEST) else APPEND


def fold_changes(changes: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The table an upsert sink's rows (in the order written) describe: the last row per key, deleted keys left
    out, without the `op` column. No keys: the last row is the whole table (a global aggregate)."""
    if not changes.height:
        return changes.drop(OP_COLUMN, strict=False)
    if (changes.get_column(OP_COLUMN) == INSERT_OP).any():  # a retract changelog's records: a multiset
        return fold_retractions(changes)
    if not keys:
        last = changes.tail(1)
    else:
        last = changes.unique(subset=keys, keep="last", maintain_order=True)
    return last.filter(pl.col(OP_COLUMN) != DELETE_OP).drop(OP_COLUMN)


def fold_retractions(changes: pl.DataFrame) -> pl.DataFrame:
    """The table a retract changelog's records describe: each row as many times as it was inserted more often
    than deleted."""
    columns = [c for c in changes.columns if c != OP_COLUMN]
    signed = changes.with_columns(pl.when(pl.col(OP_COLUMN) == DELETE_OP).then(-1).otherwise(1).alias("__n"))
    counts = signed.group_by(columns, maintain_order=True).agg(pl.col("__n").sum()).filter(pl.col("__n") > 0)
    return counts.select(pl.col(c).repeat_by(pl.col("__n")) for c in columns).explode(columns)
