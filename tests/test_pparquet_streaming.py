"""A large parquet batch runs its fused query on polars' streaming engine (connectors/parquet_scan.py `engine_for`).

What must hold: a batch whose files hold STREAMING_FROM_BYTES or more runs
as one `collect_all` on the streaming engine (a smaller one on the
in-memory engine), and gives plain polars' rows on every executor; a batch
with a corrupt file or a file of other column types still falls back to
the full read, with the same rows and dead letters as that read.
"""

from __future__ import annotations

import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor.query import fused_parquet
from stream_dsl.connectors import parquet_scan
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.connectors.dead_letters import read_dead_letters
from stream_dsl.connectors.parquet_scan import STREAMING_FROM_BYTES, engine_for

from budget import examples
from test_pread_fused_read import LABELS, NASTY, POLARS, QUERY, VALUES, WHERES, engine, plain_polars, rows, write

STATISTICS_QUERY = "SELECT k, x FROM s WHERE {where}"

PADDED_ROWS = 24  # rows of random padding per file: two files hold more than STREAMING_FROM_BYTES


def write_large(data, files_rows: list[list[tuple]]) -> None:
    """Each file: its rows, then PADDED_ROWS rows no filter keeps (x = -9) with `pad` values that do not
    compress, so every file is about 0.6 MB."""
    data.mkdir()
    pad = random.Random(7)
    size = STREAMING_FROM_BYTES // (2 * PADDED_ROWS) + 1024
    for i, file_rows in enumerate(files_rows):
        padded = [("other", -9, pad.randbytes(size // 2).hex(), None) for _ in range(PADDED_ROWS)]
        frame = pl.DataFrame(file_rows + padded, schema=POLARS, orient="row")
        frame.write_parquet(data / f"{i:03d}.parquet", compression="uncompressed", row_group_size=7)
    LABELS.write_parquet(data.parent / "labels.parquet")


def context(data, executor: str = "inline", workers: int = 1, diagnose_every: int = 0, letters=None) -> sd.Context:
    """Two files per batch; `diagnose_every = 0`: no batch is sampled, every one can take the fused path
    (1: every batch is, and takes the two-step path: the full read)."""
    ctx = sd.Context(executor=executor, workers=workers)
    ctx.config = ctx.config.with_options(diagnose_every=diagnose_every)
    dead = f", dead_letter = '{letters}'" if letters is not None else ""
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, pad STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (connector "
        f"= 'files', path = '{data}', format = 'parquet', max_files_per_batch = '2'{dead});"
        f"CREATE TABLE t (k STRING, label STRING) WITH (connector = 'files', path = "
        f"'{data.parent / 'labels.parquet'}')"
    )
    return ctx


class Engines:
    """The engine of every `pl.collect_all` this process runs (a hook)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.used: list[str] = []
        collect_all = pl.collect_all

        def counted(lfs, *args, **kwargs):
            self.used.append(kwargs.get("engine", "auto"))
            return collect_all(lfs, *args, **kwargs)

        monkeypatch.setattr(pl, "collect_all", counted)


def test_a_large_batch_is_one_streaming_query_a_small_one_in_memory(tmp_path, monkeypatch):
    write_large(tmp_path / "large", NASTY)  # 4 files: 2 batches of about 1.2 MB
    pl.DataFrame(NASTY[0], schema=POLARS, orient="row").write_parquet(tmp_path / "small.parquet")
    assert engine_for(sorted(str(p) for p in (tmp_path / "large").glob("*.parquet"))[:2]) == "streaming"
    assert engine_for([str(tmp_path / "small.parquet")]) == "in-memory"
    engines = Engines(monkeypatch)
    got = context(tmp_path / "large").sql(QUERY.format(where="x > 0")).collect()
    monkeypatch.undo()
    assert engines.used == ["streaming", "streaming"]  # one fused query per batch, nothing read again
    assert rows(got) == rows(plain_polars(tmp_path / "large", "x > 0"))


@pytest.mark.parametrize("executor,workers", [("inline", 3), ("drizzle", 1), ("drizzle", 3), ("bsp", 1), ("bsp", 3)])
def test_every_executor_gives_plain_polars_rows_from_streaming_batches(tmp_path, executor, workers):
    write_large(tmp_path / "in", NASTY)
    for where in ("x > 0", "k = 'none'"):  # the second keeps no row at all
        got = context(tmp_path / "in", executor, workers).sql(QUERY.format(where=where)).collect()
        assert rows(got) == rows(plain_polars(tmp_path / "in", where)), where


@pytest.mark.parametrize("executor,workers", [("inline", 1), ("drizzle", 3)])
def test_bad_files_in_a_streaming_batch_give_the_full_reads_rows_and_dead_letters(tmp_path, executor, workers):
    """File 1 is INT32 where BIGINT is declared (the full read converts it), file 2 is corrupt (a dead
    letter); each batch then takes the full read, and both runs agree on the rows and the dead letters."""
    data = tmp_path / "in"
    write_large(data, NASTY)
    frame = pl.read_parquet(data / "001.parquet").with_columns(pl.col("x").cast(pl.Int32))
    frame.write_parquet(data / "001.parquet", compression="uncompressed")
    (data / "002.parquet").write_bytes(b"PAR1" + random.Random(3).randbytes(STREAMING_FROM_BYTES) + b"PAR1")
    results = []
    for diagnose_every in (0, 1):  # streaming fused query first (then the full read); the full read alone
        letters = tmp_path / f"letters-{diagnose_every}.ndjson"
        ctx = context(data, executor, workers, diagnose_every, letters)
        got = ctx.sql(QUERY.format(where="x > 0")).collect()
        found = sorted((d["position"], d["reason"]) for d in read_dead_letters(str(letters)))
        results.append((rows(got), found))
    assert results[0] == results[1]
    assert [position for position, _ in results[0][1]] == [str(data / "002.parquet")]
    events = pl.concat([pl.read_parquet(data / f"{i:03d}.parquet").cast(POLARS) for i in (0, 1, 3)])
    assert results[0][0] == rows(plain_polars(data, "x > 0", events.lazy()))


@settings(max_examples=examples(15))
@given(
    files_rows=st.lists(st.lists(VALUES, max_size=30), min_size=1, max_size=4),
    where=st.sampled_from(WHERES),
    per_batch=st.sampled_from([1, 2]),
)
def test_the_streaming_engine_gives_plain_polars_rows(tmp_path_factory, files_rows, where, per_batch):
    """Every batch on the streaming engine (the threshold at 0, in this process: inline), over NULLs, empty
    files, row groups and filters that keep nothing."""
    data = tmp_path_factory.mktemp("pq") / "in"
    write(data, files_rows)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parquet_scan, "STREAMING_FROM_BYTES", 0)
        engines = Engines(patch)
        got = engine(data, where, "inline", 1, per_batch)
    assert engines.used and set(engines.used) == {"streaming"}
    assert rows(got) == rows(plain_polars(data, where))


@settings(max_examples=examples(10))
@given(files_rows=st.lists(st.lists(VALUES, max_size=30), min_size=1, max_size=4), where=st.sampled_from(WHERES))
def test_a_streaming_batch_reports_the_in_memory_batchs_rows_read_and_watermark(tmp_path_factory, files_rows, where):
    """On the streaming engine the rows read are counted on the stage's filtered scan (`fused_parquet`): per
    batch, the rows read and the watermark are those of the in-memory engine's statistics query."""
    data = tmp_path_factory.mktemp("pq") / "in"
    write(data, files_rows)
    reports, kept = [], []
    for threshold in (0, 1 << 60):  # every batch streaming, then every one in memory
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(parquet_scan, "STREAMING_FROM_BYTES", threshold)
            find = fused_parquet._kept
            patch.setattr(fused_parquet, "_kept", lambda *args: kept.append(find(*args)) or kept[-1])
            ctx = sd.Context(executor="inline", workers=1)
            ctx.config = ctx.config.with_options(diagnose_every=0)
            ctx.sql(
                f"CREATE STREAM s (k STRING, x BIGINT, pad STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH ("
                f"connector = 'files', path = '{data}', format = 'parquet', max_files_per_batch = '2')"
            )
            handle = ctx.sql(STATISTICS_QUERY.format(where=where)).start(sink=MemorySink())
            assert handle.await_termination(60)
            reports.append([(p["source_reads"], p["watermark"]) for p in handle.progress()])
    assert reports[0] == reports[1]
    assert kept and all(k is not None for k in kept)  # the streaming batches counted on the stage's scan
