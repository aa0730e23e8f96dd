"""A query's output mode against what its sink takes, and the upsert records a changelog's sink is given.

The output mode is what the query's rows mean: APPEND (each row a new
fact) or UPSERT (a changelog keyed by the group keys: a non-windowed
aggregate, or EMIT CHANGES). A sink declares what it takes
(`connectors.upserts.sink_writes`); `check_sink_takes` refuses a changelog
for a sink that takes appends only when the query starts, saying why and
what to do (a retract mode extends the same check).

For an upsert sink the changelog stage's task writes, per batch, its
deletes then its upserts with CHANGELOG_OP (-1 delete, +1 upsert): the
aggregate's upserts go through the stage's post-operators (projections,
HAVING); a group HAVING now filters out becomes a delete, so the sink's
table holds exactly the rows collect() would. The key columns are the
group keys as the query's output names them (`upsert_keys`); a query that
does not select them cannot be upserted and is refused.
"""

from __future__ import annotations

from typing import Any, Callable

import networkx as nx
import polars as pl

from optimizer.physical.lower import output_stages
from optimizer.physical.stages import AggregateOp, FilterOp, OutputWrite, ProjectOp, Stage
from stream_dsl.connectors.upserts import (
    APPEND,
    DELETE_OP,
    INSERT_OP,
    LATEST,
    OP_COLUMN,
    RETRACT,
    UPSERT,
    UPSERT_OP,
    sink_writes,
)
from stream_dsl.errors import PlanError
from stream_dsl.ir.column_names import CHANGELOG_OP, WINDOW_END
from stream_dsl.ir.expr import Column
from stream_dsl.ir.types import Schema

UPSERT_KEYS = "upsert_keys"  # graph attribute: the output's key columns when the changelog goes to an upsert sink
_UPSERT, _DELETE = 1, -1


def output_mode(graph: nx.DiGraph) -> str:
    """APPEND; RETRACT when rows taken back whole reach the output (`OutputWrite.retract`); UPSERT when a
    changelog keyed by group keys (later rows replace earlier ones per group) does."""
    terminals = [s.terminal for s in output_stages(graph)]
    if any(getattr(t, "retract", False) for t in terminals):
        return RETRACT
    return UPSERT if any(t.changelog for t in terminals) else APPEND  # type: ignore[union-attr]


def check_sink_takes(mode: str, writes: str, sink: str) -> None:
    """Refuse output of `mode` to a sink that takes `writes` (PlanError with the reason and the fix). A sink
    that takes upserts takes a retract changelog too, as insert and delete records of whole rows."""
    if mode == APPEND or writes in (mode, LATEST) or (mode == RETRACT and writes == UPSERT):
        return
    if mode == RETRACT:
        raise PlanError(
            f"sink {sink} takes appended rows only, but this query's result is a changelog whose rows are "
            f"taken back later (an outer join of two streams, or an aggregate's changes read without its "
            f"key): appended rows cannot say that a row is gone. Write it to a sink that takes changelogs "
            f"(connector 'files', 'redis' or 'kafka'), or use collect()"
        )
    raise PlanError(
        f"sink {sink} takes appended rows only, but this query's result is a changelog (a non-windowed "
        f"aggregate, or EMIT CHANGES): later rows replace earlier ones of the same group, and sessions that "
        f"merge are deleted, which appended rows cannot say. Write it to a sink that takes upserts by key "
        f"(connector 'files', 'redis' or 'kafka'), or make each row final with a windowed aggregate and "
        f"EMIT ON WINDOW CLOSE"
    )


def sink_label(sink: Any) -> str:
    definition = getattr(sink, "definition", None)
    name = getattr(definition, "name", None)
    return f"'{name}'" if name else type(getattr(sink, "inner", sink)).__name__


def upsert_keys(stage: Stage, schema: Schema) -> list[tuple[str, str]]:
    """The changelog's key as (group key, output column) pairs, in group key order; PlanError if not selected.

    A window's end is left out of the key when its start decides it (TUMBLE and HOP have one size; a key's
    SESSION windows never overlap, so one start is one session at a time), so selecting window_start suffices.
    """
    op = stage.stateful
    assert isinstance(op, AggregateOp)
    names = {g: g for g in op.group_keys}  # output name -> group key
    for post in stage.post:
        if isinstance(post, ProjectOp):
            plain = [(n.name, n.expr.name) for n in post.exprs if isinstance(n.expr, Column)]
            names = {name: names[source] for name, source in plain if source in names}
        elif not isinstance(post, (FilterOp, OutputWrite)):
            names = {}  # a join after the aggregate: the rows no longer stand for one group each
    by_key: dict[str, str] = {}
    for name in schema.names:
        if name in names:
            by_key.setdefault(names[name], name)
    missing = [g for g in op.group_keys if g not in by_key]
    if missing == [WINDOW_END] and op.window is not None and op.window.kind != "cumulate":
        missing = []
    if missing:
        raise PlanError(
            f"an upsert sink replaces rows by their key, the group keys ({', '.join(op.group_keys)}), "
            f"but the query does not select {', '.join(missing)}: add {'it' if len(missing) == 1 else 'them'} "
            f"to the SELECT list (the output has {', '.join(schema.names)})"
        )
    return [(g, by_key[g]) for g in op.group_keys if g in by_key]


def prepare_sink_output(output: Any, graph: nx.DiGraph) -> None:
    """When the query starts: refuse a changelog its sink cannot take; for an upsert sink, mark the graph so
    every task of the changelog stage (on any worker) writes upsert records (see the module doc)."""
    sink = getattr(output, "sink", None)
    if sink is None:
        return
    mode, writes = output_mode(graph), sink_writes(sink)
    check_sink_takes(mode, writes, sink_label(sink))
    if mode == RETRACT and OP_COLUMN in graph.graph["schema"].names:
        raise PlanError(
            f"a changelog sink's records have an '{OP_COLUMN}' column (insert or delete) before the query's "
            f"columns, and the query has one too: rename it (AS ...)"
        )
    stages = [s for s in output_stages(graph) if isinstance(s.stateful, AggregateOp)]
    stage = next((s for s in stages if s.terminal.changelog), None)  # type: ignore[union-attr]
    if mode == UPSERT and writes == UPSERT and stage is not None:
        schema = graph.graph["schema"]
        if OP_COLUMN in schema.names:
            raise PlanError(
                f"an upsert sink's records have an '{OP_COLUMN}' column (upsert or delete) before the query's "
                f"columns, and the query has one too: rename it (AS ...)"
            )
        pairs = upsert_keys(stage, schema)
        graph.graph[UPSERT_KEYS] = pairs
        keys = output.upsert_keys = [name for _, name in pairs]
        note = getattr(sink, "upserts_keyed_by", None)  # optional hook: a sink that records the key (files)
        if callable(note):
            note(keys)


def changes(
    rows: pl.DataFrame | None, upserted: pl.DataFrame, deletes: pl.DataFrame | None, keys: list[Any]
) -> pl.DataFrame:
    """A changelog task's records: `deletes` (group keys), then the groups of `upserted` (the aggregate's rows)
    the post-operators dropped (HAVING), as deletes; then `rows` (the post-operators' output) as upserts.
    `keys`: (group key, output name) pairs."""
    out_names = [name for _, name in keys]
    renamed = {group: name for group, name in keys}
    gone = [] if deletes is None or not deletes.height else [deletes.select(list(renamed)).rename(renamed)]
    whole = False  # a global aggregate's one row that HAVING now filters out: the whole table goes
    if rows is not None and rows.height < upserted.height:  # the post-operators (projections, HAVING) map rows
        if out_names:
            dropped = upserted.select(list(renamed)).rename(renamed)
            gone.append(dropped.join(rows.select(out_names), on=out_names, how="anti", nulls_equal=True))
        else:
            whole = True
    frames = [g.with_columns(pl.lit(_DELETE, dtype=pl.Int8).alias(CHANGELOG_OP)) for g in gone if g.height]
    if whole:
        frames.append(pl.DataFrame([pl.Series(CHANGELOG_OP, [_DELETE], dtype=pl.Int8)]))
    if rows is not None and rows.height:
        frames.append(rows.with_columns(pl.lit(_UPSERT, dtype=pl.Int8).alias(CHANGELOG_OP)))
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def sink_records(
    frame: pl.DataFrame,
    take: Callable[[pl.DataFrame], pl.DataFrame],
    schema: Schema,
    sort: Callable[[pl.DataFrame], pl.DataFrame],
    retract: bool = False,
) -> pl.DataFrame:
    """Records for an upsert sink: the `op` column ('upsert' or 'delete') first, then the output's columns
    (a delete's non-key columns NULL), deletes before upserts. `take` conforms the columns to the output
    schema (and applies LIMIT); `sort` orders the upserts (ORDER BY). A retract changelog's rows
    (`retract`) become 'insert' and 'delete' records of whole rows, in the order they came."""
    if retract:
        op = frame.get_column(CHANGELOG_OP).replace_strict(
            {_UPSERT: INSERT_OP, _DELETE: DELETE_OP}, return_dtype=pl.String
        )
        return take(frame.drop(CHANGELOG_OP)).insert_column(0, op.head(frame.height).alias(OP_COLUMN))
    deleted = frame.get_column(CHANGELOG_OP) == _DELETE
    count = int(deleted.sum())
    if 0 < count < frame.height:
        frame = pl.concat([frame.filter(deleted), sort(frame.filter(~deleted))], how="diagonal_relaxed")
    else:
        frame = sort(frame)
    body = frame.drop(CHANGELOG_OP)
    missing = [name for name in schema.names if name not in body.columns]  # a batch of deletes only
    body = take(body.with_columns(pl.lit(None).alias(name) for name in missing) if missing else body)
    ops = [DELETE_OP] * count + [UPSERT_OP] * (frame.height - count)  # deletes first (above)
    text = pl.Series(OP_COLUMN, ops[: body.height], dtype=pl.String)
    return body.insert_column(0, text.alias(OP_COLUMN))
