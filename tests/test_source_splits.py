"""A stream read in parts (`splits`): one source stage, and one map task per batch, per part.

Each part reads its share (the generator: its n-th of each batch's event
indexes; files: the files whose names hash to it), so the parts of a batch
together are exactly the unsplit batch, each part a source stage of its
own placed on its own worker. The query's result is the unsplit one on every
executor. Recovery with split sources is tested by the recovery tests, whose
query reads its stream in one part per worker (`tests/recovery_script.py`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from executor.multiproc.scheduler import place, topology_of
from optimizer import optimize
from optimizer.physical.lower import lower
from stream_dsl.connectors import files, open_source
from stream_dsl.errors import ConnectorError, PlanError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType, Schema

YSB = (
    "CREATE STREAM events (ad_id STRING, event_type STRING, event_time TIMESTAMP, "
    "WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND) WITH (connector = 'generator', kind = 'ysb', "
    "rate = '{rate}', count = '{count}', realtime = 'false', splits = '{splits}')"
)
VIEWS = (
    "SELECT ad_id, window_start, COUNT(*) AS n FROM events WHERE event_type = 'view' "
    "GROUP BY ad_id, TUMBLE(event_time, INTERVAL '1' SECOND)"
)


def generator_def(splits: int, rate: int, count: int) -> SourceDef:
    ctx = sd.Context()
    ctx.sql(YSB.format(rate=rate, count=count, splits=splits))
    return ctx.catalog.source("events")


def batches_of(definition: SourceDef, interval_ms: int) -> list[pl.DataFrame]:
    source = open_source(definition)
    source.open(None)
    out = []
    while True:
        batch = source.next_batch(interval_ms)
        out.append(batch.frame)
        if batch.exhausted:
            return out


@settings(max_examples=examples(40), deadline=None)
@given(
    splits=st.integers(2, 5),
    rate=st.integers(500, 50_000),  # with count and interval_ms: at most 600 batches
    count=st.integers(0, 3_000),
    interval_ms=st.integers(10, 400),
)
def test_the_generators_parts_of_each_batch_are_exactly_the_unsplit_batch(splits, rate, count, interval_ms):
    whole = generator_def(1, rate, count)
    parts = [replace(generator_def(splits, rate, count), split=(i, splits)) for i in range(splits)]
    expected = batches_of(whole, interval_ms)
    got = [batches_of(part, interval_ms) for part in parts]
    assert all(len(b) == len(expected) for b in got)  # every part ends with the last batch
    for n, batch in enumerate(expected):
        assert pl.concat([b[n] for b in got]).equals(batch)


def write_files(directory: Path, names: list[str]) -> None:
    for i, name in enumerate(names):
        frame = pl.DataFrame(
            {
                "k": [f"k{j % 5}" for j in range(20)],
                "v": list(range(i * 20, i * 20 + 20)),
                "ts": [dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i * 20 + j) for j in range(20)],
            }
        )
        frame.write_ndjson(directory / name)


def files_def(directory: Path, splits: int, watch: bool = False) -> SourceDef:
    schema = Schema.of(("k", DataType.STRING), ("v", DataType.BIGINT), ("ts", DataType.TIMESTAMP))
    options = {"connector": "files", "path": str(directory), "format": "ndjson", "splits": str(splits)}
    if watch:
        options["watch"] = "true"
    return SourceDef("s", "stream", schema, tuple(sorted(options.items())))


def read_names(definition: SourceDef) -> list[str]:
    source = open_source(definition)
    source.open(None)
    batch = source.next_batch(100)
    return batch.offset["files"]


def test_each_file_is_read_by_exactly_one_part_and_a_new_file_moves_no_other(tmp_path):
    write_files(tmp_path, [f"part-{i:03}.ndjson" for i in range(30)])
    parts = [replace(files_def(tmp_path, 3, watch=True), split=(i, 3)) for i in range(3)]
    before = [set(read_names(p)) for p in parts]
    assert sum(len(b) for b in before) == 30 and set().union(*before) == set(
        files.list_files(files.FileOptions.parse(files_def(tmp_path, 1)), "s")
    )
    assert all(before), "30 files over 3 parts: each part reads some"
    write_files(tmp_path, [f"new-{i:03}.ndjson" for i in range(10)])
    after = [set(read_names(p)) for p in parts]
    assert all(b <= a for b, a in zip(before, after))  # a file once a part's stays that part's
    assert sum(len(a) for a in after) == 40


def test_a_split_stream_is_one_source_stage_per_part_each_on_its_own_worker():
    ctx = sd.Context(executor="drizzle", workers=3)
    ctx.sql(YSB.format(rate=1000, count=1000, splits="workers"))
    graph = lower(optimize(ctx.sql(VIEWS).plan), 3)
    scans = [graph.nodes[n]["stage"] for n in graph.nodes if graph.nodes[n]["stage"].is_source]
    assert sorted(s.head.describe().split(" split=")[1].split()[0] for s in scans) == ["1/3", "2/3", "3/3"]
    placement = place(topology_of([graph.nodes[n]["stage"] for n in sorted(graph.nodes)]), 3, clock_notices=True)
    assert sorted(placement.hosts[(s.id, 0)] for s in scans) == [0, 1, 2]


def test_the_option_splits_is_checked_where_it_is_written_and_where_the_source_opens():
    with pytest.raises(PlanError, match="positive integer or 'workers'"):
        sd.Context().sql(YSB.format(rate=10, count=10, splits="0"))
    with pytest.raises(PlanError, match="for streams"):
        sd.Context().sql("CREATE TABLE t (a BIGINT) WITH (connector = 'files', path = 'x.csv', splits = '2')")
    socket = SourceDef(
        "s",
        "stream",
        Schema.of(("a", DataType.STRING)),
        (("connector", "socket"), ("format", "ndjson"), ("host", "127.0.0.1"), ("port", "9"), ("splits", "2")),
    )
    with pytest.raises(ConnectorError, match="cannot be read in parts"):
        open_source(replace(socket, split=(0, 2)))


@pytest.mark.parametrize(
    ("executor", "workers", "splits"),
    [("inline", 1, "3"), ("inline", 2, "workers"), ("drizzle", 2, "workers"), ("drizzle", 3, "5"), ("bsp", 3, "2")],
)
def test_a_split_generator_gives_the_unsplit_result_on_every_executor(executor, workers, splits):
    expected = run_views("inline", 1, "1")
    assert run_views(executor, workers, splits).equals(expected)
    assert expected.height > 0


def run_views(executor: str, workers: int, splits: str) -> pl.DataFrame:
    ctx = sd.Context(executor=executor, workers=workers, batch_interval="100ms")
    ctx.sql(YSB.format(rate=20_000, count=30_000, splits=splits))
    return ctx.sql(VIEWS).collect().sort("ad_id", "window_start")


@pytest.mark.parametrize(("executor", "workers"), [("inline", 2), ("drizzle", 3), ("bsp", 2)])
def test_split_files_give_the_unsplit_result_on_every_executor(tmp_path, executor, workers):
    write_files(tmp_path, [f"part-{i:03}.ndjson" for i in range(12)])
    query = "SELECT k, window_start, COUNT(*) AS n, SUM(v) AS sv FROM s GROUP BY k, TUMBLE(ts, INTERVAL '50' SECOND)"

    def run(executor: str, workers: int, splits: str) -> pl.DataFrame:
        ctx = sd.Context(executor=executor, workers=workers)
        ctx.sql(
            f"CREATE STREAM s (k STRING, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' HOUR) "
            f"WITH (connector = 'files', path = '{tmp_path}', format = 'ndjson', max_files_per_batch = '1', "
            f"splits = '{splits}')"
        )
        return ctx.sql(query).collect().sort("k", "window_start")

    expected = run("inline", 1, "1")
    assert expected["n"].sum() == 12 * 20
    assert run(executor, workers, "workers").equals(expected)
