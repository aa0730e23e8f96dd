"""Several batches' source tasks as ONE polars query: a Drizzle group's reads over a backlog of files.

A worker gets a group's tasks at once, so when a files source already
holds the files of several of the group's batches (a backlog: a bounded
query, a restart, a watched directory that fell behind), the worker reads
them ahead (`Reader.read_ahead`) and runs their fused queries
(`fused_read.py`) as one: each batch's deferred scan tagged with its
position in BATCH_COLUMN, concatenated, and run through the stage pipeline
that carries the tag (`Pipeline.carrying`: a partial aggregate and the
merge before the shuffle group by it too), with each batch's statistics
grouped by it. The output is split back by the tag, so every batch gets
exactly the rows, the statistics and the partitions its own query gives:
every operator of a fused source stage works row by row, or groups (by
the tag as well), and a stage whose result could depend on its batch as a
whole (NOW()) is not grouped (`fused_read.FusedMap.groups`).

What it saves is polars' fixed cost per query and the operators' per-call
set-up: on one polars thread, YSB's map query over a 50-record ndjson file
cost 1.2 ms of CPU alone and 0.5 ms per file in one query over 50 files
scanned one by one; a scan over their joined text (`_joined`) cost 0.14 ms
per file where scans of each cost 0.35. On 100k-record parquet files the
per-row work dominates: a query of 9 cost what 9 queries cost in a warm
process, and 2.5 times as much in a fresh one (BATCH_BYTES).

Each batch keeps its own clock, offset, log entry and dead letters: the
reader hands them out one batch at a time, in batch order, when the batch's
task asks (`Reader.read`); a batch sampled for `why` gets its operators'
rows counted per batch inside the group query (`fused_counts.counted_query`
over the carried pipeline). A batch that cannot be grouped (another read
plan, a dead letter in it) or a group query that fails leaves its batches
to their own fused query, as before.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Callable, Sequence, cast

import polars as pl

from executor.query.fused_counts import CountedQuery, counted_query
from executor.query.ndjson_map import LEAN_BELOW_BYTES
from executor.state.step import collect_all
from optimizer.physical.stages import PARTITION_COLUMN
from stream_dsl.connectors.ndjson_deferred import DeferredNdjson
from stream_dsl.connectors.ndjson_small import clean_row
from stream_dsl.connectors.parquet_scan import DeferredParquet, DeferredScan

BATCH_COLUMN = "__sd_group_batch"  # a row's batch: its scan's position in the group
BATCH_BYTES = 256 << 10  # a batch of more bytes of files runs its own query (`joins`)
GROUP_BYTES = 8 << 20  # a group's files hold at most this many bytes: its rows are in memory at once


@dataclass(frozen=True)
class GroupOutput:
    """One batch's share of a group query: the stage's output as the task hands it on (`Pipeline.parts`), the
    rows read, the newest event time; `clean` False for an ndjson batch with a dead letter (its output is
    dropped: it runs alone)."""

    parts: dict[int, pl.DataFrame]
    rows: int
    newest: int | None
    clean: bool = True
    operator_rows: list[int] | None = None  # counted: the rows read, then after each operator (`fused_counts.py`)


def small(scan: DeferredScan | None) -> bool:
    """Whether a batch is read as a deferred scan of BATCH_BYTES at most: on larger ones the per-row work
    outweighs what a query costs (a group of nine 0.6 MB parquet files cost more than their nine queries)."""
    return scan is not None and group_bytes(scan) <= BATCH_BYTES


def joins(scan: DeferredScan, group: Sequence[DeferredScan]) -> bool:
    """Whether a batch's scan may run in one query with `group`'s: a `small` batch, read like the others
    (`same_read`), the group's files within GROUP_BYTES."""
    if not small(scan) or (group and not same_read(group[0], scan)):
        return False
    return sum(group_bytes(s) for s in group) + group_bytes(scan) <= GROUP_BYTES


def same_read(first: DeferredScan, other: DeferredScan) -> bool:
    """Whether two deferred scans may be concatenated: parquet on the in-memory engine, with the same columns and
    pushed predicate, or ndjson read by the same plan."""
    if isinstance(first, DeferredNdjson) or isinstance(other, DeferredNdjson):
        return isinstance(first, DeferredNdjson) and isinstance(other, DeferredNdjson) and first.plan is other.plan
    return (
        isinstance(first, DeferredParquet)
        and isinstance(other, DeferredParquet)
        and first.engine == other.engine == "in-memory"
        and first.columns == other.columns
        and first.predicate is other.predicate
    )


def run_group(
    pipeline: Any, tables: Any, shuffled: bool, scans: Sequence[DeferredScan], counted: bool = False
) -> list[GroupOutput]:
    """Each scan's output of `pipeline` (a `kernels.Pipeline`; `shuffled`: its output goes to a shuffle), from one
    query over all of them; `counted` (a batch of the group is sampled for `why`): with each batch's operator
    rows, counted per batch inside the same query (`fused_counts.counted_query`). Raises whatever the query
    raises."""
    carried = pipeline.carrying(BATCH_COLUMN)
    partition = shuffled and pipeline.splits
    if isinstance(scans[0], DeferredNdjson):
        return _run_ndjson(carried, tables, shuffled, scans, counted)
    tagged = _tagged([scan.lazy for scan in scans])
    first = scans[0]
    statistics = tagged.group_by(BATCH_COLUMN).agg(first.statistics())
    # polars' optimizer pushes the columns and the predicate into the parquet scans
    ran = _run(carried, tagged, first.columns, tables, partition, statistics, counted, lean=False)
    outputs = []
    for parts, facts, operators in _batches(ran, len(scans), shuffled, partition):
        count, *latest = facts or (0,)  # the statistics' values in order: rows, then the maximum if any
        read, newest = int(count or 0), latest[0] if latest else None
        outputs.append(GroupOutput(parts, read, None if newest is None else int(newest), True, operators(read)))
    return outputs


def _run_ndjson(
    carried: Any, tables: Any, shuffled: bool, scans: Sequence[DeferredScan], counted: bool
) -> list[GroupOutput]:
    """`run_group` of ndjson scans: the checked reads, one cache for the stage and each batch's statistics row
    (`ndjson_map.py`); a batch whose row says a record would be a dead letter is not clean."""
    deferred = cast(Sequence[DeferredNdjson], scans)  # all ndjson, read by one plan (`same_read`)
    plan = deferred[0].plan
    assert plan is not None and all(isinstance(s, DeferredNdjson) and s.checked is not None for s in deferred)
    partition = shuffled and carried.splits
    joined = _joined(deferred)
    base = (_tagged([scan.checked for scan in deferred]) if joined is None else joined).cache()  # type: ignore[misc]
    rows = base.select([*plan.declared, pl.col(BATCH_COLUMN)])
    statistics = base.group_by(BATCH_COLUMN).agg(plan.statistics(deferred[0].watermark))
    lean = sum(scan.size for scan in deferred) < LEAN_BELOW_BYTES
    ran = _run(carried, rows, deferred[0].columns, tables, partition, statistics, counted, lean)
    outputs = []
    for parts, facts, operators in _batches(ran, len(scans), shuffled, partition):
        verdict = (0, None) if facts is None else clean_row(facts)
        if verdict is None:
            outputs.append(GroupOutput({}, 0, None, clean=False))
        else:
            newest = None if verdict[1] is None else int(verdict[1])
            outputs.append(GroupOutput(parts, verdict[0], newest, True, operators(verdict[0])))
    return outputs


@dataclass(frozen=True)
class _Ran:
    """A group query's results: the output, the statistics by batch, and with counts the query that made them."""

    out: pl.DataFrame
    facts: pl.DataFrame
    query: CountedQuery | None = None
    counts: tuple[pl.DataFrame, ...] = ()


def _run(
    carried: Any,
    rows: pl.LazyFrame,
    columns: Sequence[str],
    tables: Any,
    partition: bool,
    statistics: pl.LazyFrame,
    counted: bool,
    lean: bool,
) -> _Ran:
    """The stage over the group's tagged `rows` (of `columns`) and the statistics, in one `collect_all`; with the
    operators' rows counted per batch when `counted`."""
    if not counted:
        out, facts = collect_all([carried.lazy_over(rows, columns, tables, partition), statistics], lean=lean)
        return _Ran(out, facts)
    query = counted_query(carried, rows, tables, partition)
    out, facts, *counts = collect_all([query.output, statistics, *query.counts], lean=lean)
    return _Ran(out, facts, query, tuple(counts))


_Batch = tuple[dict[int, pl.DataFrame], tuple | None, Callable[[int], list[int] | None]]


def _batches(ran: _Ran, count: int, shuffled: bool, partition: bool) -> list[_Batch]:
    """Per batch, in order: its parts (`_split`), its statistics row without the tag (None: no row read), and
    what gives its operators' rows from its rows read (None without counts)."""
    found = {row[0]: row[1:] for row in ran.facts.iter_rows()}
    by_batch = [dict(frame.iter_rows()) for frame in ran.counts]  # each count: batch -> rows
    batches: list[_Batch] = []
    for i, parts in enumerate(_split(ran.out, count, shuffled, partition)):
        height = sum(part.height for part in parts.values())

        def operators(rows_in: int, i: int = i, height: int = height) -> list[int] | None:
            if ran.query is None:
                return None
            return ran.query.rows(rows_in, height, [counted.get(i, 0) for counted in by_batch])

        batches.append((parts, found.get(i), operators))
    return batches


def _joined(scans: Sequence[DeferredNdjson]) -> pl.LazyFrame | None:
    """The batches' texts as ONE checked read, each row tagged with its batch by counting the records of each
    text (its lines that are not blank, which polars skips); None unless every file was read whole by the same
    plan. A scan per file cost 0.35 ms of CPU per 50-record file, one over the joined text 0.14. If polars reads
    other rows than counted (a line it refuses raises anyway), the tag's length differs from the rows' and the
    query fails: the group is then tried in halves (`fused_read.run_together`)."""
    plan = scans[0].plan
    if plan is None or any(not scan.texts or scan.plan is not plan for scan in scans):
        return None
    texts = [text for scan in scans for text in scan.texts]
    counts = [sum(_records(text) for text in scan.texts) for scan in scans]
    tags = [batch for batch, count in enumerate(counts) for _ in range(count)]  # a list: no numpy array to convert
    tag = pl.Series(BATCH_COLUMN, tags, dtype=pl.UInt32)
    return plan.scan(io.BytesIO(b"\n".join(texts))).with_columns(pl.lit(tag))


def _records(text: bytes) -> int:
    """The records polars reads from ndjson text: its lines that are not blank (empty or ASCII whitespace)."""
    return len([line for line in text.split(b"\n") if line.strip()])


def _tagged(frames: Sequence[pl.LazyFrame]) -> pl.LazyFrame:
    """The frames stacked, each row tagged with its frame's position."""
    return pl.concat(
        [lf.with_columns(pl.lit(i, dtype=pl.UInt32).alias(BATCH_COLUMN)) for i, lf in enumerate(frames)],
        how="vertical",
    )


def _split(out: pl.DataFrame, count: int, shuffled: bool, partition: bool) -> list[dict[int, pl.DataFrame]]:
    """The group's output as each batch's parts, in batch order, as `Pipeline.parts` gives one batch's output:
    partition 0 whole (an empty frame too) when no shuffle follows, else the non-empty partitions, by the
    partition column when the query added it (`partition`). One `partition_by` over the tag and that column."""
    keys = [BATCH_COLUMN, PARTITION_COLUMN] if partition else [BATCH_COLUMN]
    batches: list[dict[int, pl.DataFrame]] = [{} for _ in range(count)]
    for part in out.partition_by(keys, maintain_order=True, include_key=True):
        batch = int(part.drop_in_place(BATCH_COLUMN)[0])  # each part a new frame: dropping in place is safe
        target = int(part.drop_in_place(PARTITION_COLUMN)[0]) if partition else 0
        batches[batch][target] = part
    if not shuffled:  # the output of a batch with no rows is an empty frame, not nothing
        empty = out.clear().drop(BATCH_COLUMN)
        for parts in batches:
            parts.setdefault(0, empty)
    return batches


def group_bytes(scan: DeferredScan | None) -> int:
    """What a batch's read adds to a group's GROUP_BYTES: its files' bytes (none without a deferred scan)."""
    return 0 if scan is None else int(getattr(scan, "size", 0))
