"""A small ndjson batch's read is built once per query, and checks its epoch timestamps after the query
(connectors/ndjson_small.py).

What must hold: the conversion plan is built once per source and sniffed kind of the first record, not per
batch; the range checks of epoch-ms timestamps run no polars query; what the lean read calls clean, and its
rows, are exactly what the one-query read (`conform_one_query.decode_clean`) gives and what the full decode
gives; and on every executor, a batch with timestamps out of range or like epoch seconds gives the rows and
dead letters of the full read.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor import inline
from executor.query.ndjson_map import run_checked
from stream_dsl.connectors import ndjson_small
from stream_dsl.connectors.conform_one_query import decode_clean
from stream_dsl.connectors.dead_letters import read_dead_letters
from stream_dsl.connectors.decode_ndjson import decode_ndjson, read_types
from stream_dsl.connectors.ndjson_deferred import deferred_ndjson
from stream_dsl.connectors.timestamps import MAX_MS, MIN_MS
from stream_dsl.ir.types import DataType, Field, Schema

from budget import examples
from test_pmap_ndjson_fused import Queries

EDGES = [0, 1, 999_999_999, 10**9, 10**11 - 1, 10**11, -(10**9), -(10**9) + 1, -(10**11), -(10**11) + 1]
EDGES += [MIN_MS - 1, MIN_MS, MAX_MS, MAX_MS + 1, 1_767_225_600_000]
STAMP = st.one_of(
    st.none(),
    st.sampled_from(EDGES),
    st.integers(-(2**62), 2**62),
    st.sampled_from(EDGES).map(str),
    st.sampled_from(EDGES).map(lambda v: f" {v} "),
    st.sampled_from(["soon", "1.5", "", "2026-01-01T00:00:00"]),
)
RECORD = st.fixed_dictionaries({"k": st.sampled_from(["a", "b", None]), "ts": STAMP, "x": st.integers(-3, 3)})


def schema(unit: str | None) -> Schema:
    return Schema(
        (Field("k", DataType.STRING), Field("ts", DataType.TIMESTAMP, unit=unit), Field("x", DataType.BIGINT))
    )


def lean(tmp: Path, data: bytes, declared: Schema) -> tuple[pl.DataFrame, int, int | None] | None:
    """The batch as the executor reads it (`fused_read.FusedMap.run`), with a stage that keeps every row; None:
    not clean, read the full way."""
    path = tmp / "batch.ndjson"
    path.write_bytes(data)
    scan = deferred_ndjson([str(path)], declared, "ts", lambda: pytest.fail("not called"), lambda: None)
    if scan is None:
        return None
    try:
        return run_checked(scan, lambda lf: lf)
    except Exception:
        return None


@settings(max_examples=examples(150))
@given(records=st.lists(RECORD, min_size=1, max_size=8), unit=st.sampled_from([None, "ms"]))
def test_the_one_query_read_is_clean_exactly_when_the_earlier_read_was_and_gives_the_full_decodes_rows(
    tmp_path_factory, records, unit
):
    """Clean: what `conform_one_query.decode_clean` (the read before this one) called clean; then the rows, their
    count and the watermark column's maximum are the full decode's, which finds no dead letter."""
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    declared = schema(unit)
    got = lean(tmp_path_factory.mktemp("lean"), data, declared)
    try:
        before = decode_clean(data, read_types(data, declared), declared)
    except Exception:
        before = None
    assert (got is None) == (before is None), (got, before)
    if got is not None:
        frame, rows, newest = got
        full = decode_ndjson(data, declared, source="s", origin="f")
        assert not full.dead_letters and frame.equals(full.frame) and frame.equals(before)
        assert rows == full.frame.height and newest == full.frame.get_column("ts").cast(pl.Int64).max()


def test_a_batch_is_one_query_and_its_read_is_planned_once_per_query(tmp_path, monkeypatch):
    """Per batch of 50 clean records, one polars query: the read, its checks and the stage (counted over runs of
    3 and 6 batches, so what a run costs once cancels out); and one read plan per sniffed kind of the first
    record (here the time as a number in some files, as text in others), not one per batch."""
    built: list = []
    plan = ndjson_small._plan
    counts = []
    for batches in (3, 6):
        monkeypatch.setattr(ndjson_small, "_plan", lambda *a: built.append(a) or plan(*a))
        monkeypatch.setattr(ndjson_small, "_PLANS", {})
        built.clear()
        data = tmp_path / f"b{batches}"
        data.mkdir()
        for i in range(batches):
            lines = [{"k": "ab"[j % 2], "ts": 1_767_225_600_000 + 1000 * (50 * i + j), "x": j} for j in range(50)]
            text = [dict(r, ts=str(r["ts"])) if i % 2 else r for r in lines]
            (data / f"{i:03d}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in text))
        ctx = sd.Context(executor="inline")
        ctx.config = ctx.config.with_options(diagnose_every=0)
        ctx.sql(
            f"CREATE STREAM s (k STRING, ts TIMESTAMP, x BIGINT, WATERMARK FOR ts AS ts) WITH (connector = 'files', "
            f"path = '{data}', format = 'ndjson', max_files_per_batch = '1')"
        )
        stream = ctx.sql("SELECT k, window_start, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)")
        queries = Queries(monkeypatch)
        got = stream.collect()
        counts.append(queries.count)
        monkeypatch.undo()
        assert got.get_column("n").sum() == 50 * batches
        assert len(built) == 2, built
    assert (counts[1] - counts[0]) / 3 <= 1, counts


LINE = st.one_of(
    RECORD.map(lambda r: json.dumps(r).encode()),
    st.sampled_from([b'{"k": "a", "ts": 1', b"[1, 2]", b'{"k": "a", "ts": 5, "x": "many"}']),
)


def _run(data, executor: str, workers: int, every: int, unit: str | None, letters) -> tuple[list, list]:
    ctx = sd.Context(executor=executor, workers=workers)
    ctx.config = ctx.config.with_options(diagnose_every=every)
    option = "" if unit is None else f", timestamp_unit = '{unit}'"
    ctx.sql(
        f"CREATE STREAM s (k STRING, ts TIMESTAMP, x BIGINT, WATERMARK FOR ts AS ts) WITH (connector = 'files', "
        f"path = '{data}', format = 'ndjson', max_files_per_batch = '1', dead_letter = '{letters}'{option})"
    )
    got = ctx.sql("SELECT k, ts, x FROM s").collect()
    found = read_dead_letters(str(letters)) if letters.exists() else []
    return sorted(got.rows(), key=repr), sorted((d["position"], d["raw"], d["reason"]) for d in found)


@settings(max_examples=examples(8))
@given(
    files=st.lists(st.lists(LINE, min_size=1, max_size=6), min_size=1, max_size=3),
    unit=st.sampled_from([None, "ms"]),
    executor=st.sampled_from(["inline", "drizzle", "bsp"]),
    workers=st.sampled_from([1, 3]),
)
def test_every_executor_gives_the_full_reads_rows_and_dead_letters(tmp_path_factory, files, unit, executor, workers):
    """The reference: the inline executor with the files source's own read, nothing fused (`fuse_reader` off),
    so every batch is decoded the full way."""
    data = tmp_path_factory.mktemp("nd") / "in"
    data.mkdir()
    first = b'{"k": "a", "ts": 1767225600000, "x": 1}'  # CREATE STREAM reads the first line to check the format
    for i, lines in enumerate([[first] + files[0]] + files[1:]):
        (data / f"{i:03d}.ndjson").write_bytes(b"".join(line + b"\n" for line in lines))
    got = _run(data, executor, workers, 0, unit, data.parent / "got.ndjson")
    with mock.patch.object(inline, "fuse_reader", lambda *args: None):
        want = _run(data, "inline", 1, 0, unit, data.parent / "want.ndjson")
    assert got == want


def test_a_negative_time_like_epoch_seconds_before_year_one_is_a_dead_letter_not_a_crash():
    """-99999999999 ms looks like epoch seconds, which as seconds fall before year 1: the reason said which date
    by building it, and that raised OverflowError out of the query (found by the property above)."""
    from stream_dsl.connectors.timestamps import problem

    assert "looks like epoch seconds (before 0001-01-01)" in (problem(-99_999_999_999, None) or "")
