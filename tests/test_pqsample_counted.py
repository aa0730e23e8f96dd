"""A batch sampled for `why` counts its operators inside the stage's one query (executor/query/fused_counts.py).

What must hold: the counts of every sampled batch (`operators` in its
progress), the output and the dead letters are exactly those of the
operator-at-a-time path, kept here as the oracle (`Pipeline.counted_by_operator`
after the full read, forced in this process), over random data and
queries (filters pushed into the read or not, projections, inner and left
joins with a table, partial aggregates, windows, the merge before the
shuffle), for parquet, ndjson and memory sources, on every executor; an
operator's failure still names the operator; and a sampled parquet batch is
one polars query, as a fused one is (queries counted).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any, Iterator

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor.query import fused_counts, readers
from executor.query.tasks import TaskRunner
from optimizer.cost import FORCE, CostModel
from stream_dsl.connectors import parquet_scan
from stream_dsl.connectors.dead_letters import read_dead_letters

from budget import examples
from test_pmap_ndjson_fused import Queries

T0 = dt.datetime(2024, 1, 1)
SCHEMA = {"k": pl.String, "x": pl.Int64, "ts": pl.Datetime("ms")}
LABELS = pl.DataFrame({"k": ["view", "click", "buy"], "label": ["V", "C", "V"]})
WINDOW = "TUMBLE(ts, INTERVAL '10' SECOND)"
QUERIES = [
    "SELECT k, x FROM s WHERE {where}",
    "SELECT k, x * 2 AS y, label FROM s JOIN t USING (k) WHERE {where}",
    "SELECT k, x, label FROM s LEFT JOIN t USING (k) WHERE {where}",
    "SELECT label, COUNT(*) AS n, SUM(x) AS sx FROM s JOIN t USING (k) WHERE {where} GROUP BY label",
    f"SELECT k, window_start, COUNT(*) AS n, MAX(x) AS mx FROM s WHERE {{where}} GROUP BY k, {WINDOW}",
    f"SELECT label, window_start, COUNT(*) AS n FROM s JOIN t USING (k) WHERE {{where}} GROUP BY label, {WINDOW} "
    "EMIT ON WINDOW CLOSE",  # YSB's shape: split, the partial aggregate below the join, merged before the shuffle
]
# pushed into the parquet read or not (a function), keeping every row, some or none
WHERES = ["x > 0", "x IS NULL OR k = 'click'", "k = 'none'", "LENGTH(k) > 3", "TRUE"]
ROW = st.tuples(
    st.sampled_from(["view", "click", "buy", "other", None]),
    st.one_of(st.none(), st.integers(-5, 5)),
    st.integers(0, 40).map(lambda s: T0 + dt.timedelta(seconds=s)),
)
SOURCES = ("parquet", "ndjson", "memory")
BAD_LINE = b'{"k": "view", "x": "many", "ts": 1000}'  # a dead letter of the ndjson source


def write(data, files: list[list[tuple]], source: str, bad: bool) -> None:
    """One file per batch; `bad`: a dead letter in the first ndjson file, a parquet file of other column types."""
    data.mkdir()
    for i, rows in enumerate(files):
        frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
        if source == "parquet":
            if bad and i == 0:  # x as text: the fused query fails, the full read converts it
                frame = frame.with_columns(pl.col("x").cast(pl.String))
            frame.write_parquet(data / f"{i:03d}.parquet", row_group_size=3)
        else:
            epoch = frame.with_columns(pl.col("ts").dt.epoch("ms"))
            lines = [json.dumps(r).encode() for r in epoch.rows(named=True)]
            if bad and i == 0:
                lines.append(BAD_LINE)
            (data / f"{i:03d}.ndjson").write_bytes(b"".join(line + b"\n" for line in lines))


def context(data, files: list[list[tuple]], source: str, executor: str, workers: int, optimize: str) -> sd.Context:
    """`optimize`: "off", "on", or "forced" (every valid aggregate split and pushdown below the join, whatever the
    cost guard says: partial aggregates, and their merge before the shuffle, on tiny data)."""
    ctx = sd.Context(executor=executor, workers=workers, optimize=optimize != "off")
    ctx.config = ctx.config.with_options(diagnose_every=1)  # every batch sampled
    ctx.from_polars(LABELS, "t", static=True)
    if source == "memory":
        ctx.from_polars([pl.DataFrame(rows, schema=SCHEMA, orient="row") for rows in files], "s", watermark="ts")
        return ctx
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (connector = 'files', "
        f"path = '{data}', format = '{source}', max_files_per_batch = '1', dead_letter = '{data.parent / 'dl'}')"
    )
    return ctx


@contextlib.contextmanager
def operator_at_a_time() -> Iterator[None]:
    """Today's path for a sampled batch, in this process: no counted query, so a deferred batch is read whole
    (`fused_read.resolve`'s fallback) and the task's pipeline runs `counted_by_operator`."""

    def refused(*args: Any) -> Any:
        raise ValueError("counted one operator at a time")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused_counts, "run_counted", refused)
        patch.setattr(fused_counts, "counted_frame", lambda *args: None)
        yield


def run(ctx: sd.Context, query: str) -> tuple[list[dict], list[tuple], str | None]:
    """Each batch's operator counts, the output rows (sorted) and the query's error, if any."""
    frames: list[pl.DataFrame] = []
    handle = ctx.sql(query).start(sink=lambda batch, frame: frames.append(frame))
    try:
        assert handle.await_termination(120)
        error = None
    except sd.ExecutionError as exc:  # an operator's failure, which the answer names
        error = str(exc)
    progress = handle.progress()
    assert all(p["operators_sampled"] for p in progress if p.get("operators"))
    rows = sorted((r for f in frames for r in f.rows()), key=repr)
    return [p.get("operators", {}) for p in progress], rows, error


def letters(data) -> list[tuple]:
    path = data.parent / "dl"
    return sorted((d["position"], d["raw"]) for d in read_dead_letters(str(path))) if path.exists() else []


def check(data, files, source, query, executor, workers, optimize, bad, streaming=False) -> None:
    """`streaming`: every parquet batch runs on polars' streaming engine, as a large one does (this process only:
    the inline executor's)."""
    write(data, files, source, bad)
    with pytest.MonkeyPatch.context() as patch:
        if optimize == "forced":  # the plan is made here, in the driver, for every executor
            patch.setattr(CostModel, "from_config", classmethod(lambda cls, config: FORCE))
        if streaming:
            patch.setattr(parquet_scan, "STREAMING_FROM_BYTES", 0)
        with operator_at_a_time():
            expected = run(context(data, files, source, "inline", workers, optimize), query)
        expected_letters = letters(data)
        if expected_letters:
            (data.parent / "dl").unlink()
        got = run(context(data, files, source, executor, workers, optimize), query)
    assert got == expected
    assert letters(data) == expected_letters


@settings(max_examples=examples(20))
@example(files=[[("view", 1, T0), ("buy", 1, T0)], [("click", None, T0)]], source="parquet", query=QUERIES[5],
         where=WHERES[0], workers=3, optimize="forced", bad=False, streaming=True)  # fmt: skip
@given(
    files=st.lists(st.lists(ROW, max_size=12), min_size=1, max_size=3),
    source=st.sampled_from(SOURCES),
    query=st.sampled_from(QUERIES),
    where=st.sampled_from(WHERES),
    workers=st.sampled_from([1, 3]),
    optimize=st.sampled_from(["off", "on", "forced"]),
    bad=st.booleans(),
    streaming=st.booleans(),
)
def test_counted_in_one_query_equals_operator_at_a_time(tmp_path_factory, files, source, query, where, workers,
                                                        optimize, bad, streaming):  # fmt: skip
    """The inline executor, in-process: every sampled batch's counts, the rows and the dead letters."""
    data = tmp_path_factory.mktemp("c") / "in"
    bad = bad and source != "memory"
    check(data, files, source, query.format(where=where), "inline", workers, optimize, bad, streaming)


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
@pytest.mark.parametrize("source", SOURCES)
def test_every_executor_counts_as_operator_at_a_time(tmp_path, executor, source):
    """The multiprocess executors (whose workers run the counted query) against the in-process oracle: a
    windowed aggregate after a join (merged before the shuffle), a filter the parquet read takes, a dead letter."""
    files = [[("view", 1, T0), ("click", None, T0), ("buy", 3, T0)], [("buy", 2, T0 + dt.timedelta(seconds=12))]]
    query = QUERIES[5].format(where="x > 0 OR x IS NULL")
    check(tmp_path / "in", files, source, query, executor, 3, "forced", source != "memory")


@pytest.mark.parametrize("source", SOURCES)
def test_a_failing_operator_is_named_as_before(tmp_path, source):
    """A projection that fails on a row: the counted query fails, the operator-at-a-time path names it."""
    files = [[("view", 1, T0), ("click", 2, T0)]]
    query = "SELECT k, CAST(CONCAT(k, 'x') AS BIGINT) AS bad FROM s JOIN t USING (k)"
    check(tmp_path / "in", files, source, query, "inline", 1, "on", False)
    ctx = context(tmp_path / "in", files, source, "inline", 1, "on")
    error = run(ctx, query)[2]
    assert error is not None and "CAST" in error and "Project" in error, error


@pytest.mark.parametrize("streaming", [False, True])
def test_a_sampled_parquet_batch_is_one_query_as_a_fused_one(tmp_path, monkeypatch, streaming):
    """Polars queries of the source tasks over 4 parquet batches, YSB's shape (filter in the read, partial
    aggregate by key and window, join, merge before the shuffle): sampled or not, a batch is one `collect_all`
    where it is read (`readers.resolve`), and the executor runs no source task's pipeline after it. Counted one
    operator at a time, a sampled batch was a read, then a query per operator in the task."""
    files = [
        [(k, i, T0 + dt.timedelta(seconds=3 * b + i)) for k in ("view", "click") for i in range(3)] for b in range(4)
    ]
    write(tmp_path / "in", files, "parquet", False)
    query = QUERIES[5].format(where="x > 0")
    for every in (0, 1):
        ctx = context(tmp_path / "in", files, "parquet", "inline", 2, "forced")
        monkeypatch.setattr(CostModel, "from_config", classmethod(lambda cls, config: FORCE))
        if streaming:  # the fused query and the counted one on polars' streaming engine, as for a large batch
            monkeypatch.setattr(parquet_scan, "STREAMING_FROM_BYTES", 0)
        ctx.config = ctx.config.with_options(diagnose_every=every)
        queries, read, source_tasks = Queries(monkeypatch), [], []

        def resolve(*args, was=readers.resolve):
            before = queries.count
            batch = was(*args)
            read.append(queries.count - before)
            return batch

        def task(runner, stage, *args, was=TaskRunner.run):
            if stage.is_source and stage.head.source.name == "s":  # not the table's (read once, in a task)
                source_tasks.append(stage.id)
            return was(runner, stage, *args)

        monkeypatch.setattr(readers, "resolve", resolve)
        monkeypatch.setattr(TaskRunner, "run", task)
        counted = run(ctx, query)[0]
        monkeypatch.undo()
        assert all(counted) == bool(every)
        assert read == [1, 1, 1, 1] and not source_tasks
