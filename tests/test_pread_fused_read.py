"""A parquet batch and its source stage run as one polars query (executor/query/fused_read.py).

What must hold: the fused path gives plain polars' rows (NULLs, filters
that keep no row, empty files) on every executor; it is the path taken
(polars queries per batch are counted, so a change that splits the fused
query again fails here); and a batch it cannot run (a file of other column
types) falls back to the full read with the same rows.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd

from budget import examples
from file_sources import opened_file_sources

T0 = dt.datetime(2024, 1, 1)
POLARS = {"k": pl.String, "x": pl.Int64, "pad": pl.String, "ts": pl.Datetime("ms")}
LABELS = pl.DataFrame({"k": ["view", "click", "buy"], "label": ["V", "C", "V"]})
QUERY = "SELECT label, COUNT(*) AS n, COUNT(x) AS nx, MIN(x) AS lo FROM s JOIN t USING (k) WHERE {where} GROUP BY label"
WHERES = ["x > 0", "x IS NULL", "k = 'none'", "x <= 2 OR k = 'click'", "NOT (x = 1)"]
VALUES = st.tuples(
    st.sampled_from(["view", "click", "other", None]),
    st.one_of(st.none(), st.integers(-5, 5)),
    st.sampled_from(["a", "b"]),
    st.one_of(st.none(), st.integers(0, 50).map(lambda s: T0 + dt.timedelta(seconds=s))),
)


def write(data, files_rows: list[list[tuple]]) -> None:
    data.mkdir()
    for i, rows in enumerate(files_rows):  # several row groups per file, statistics on (pruning)
        pl.DataFrame(rows, schema=POLARS, orient="row").write_parquet(data / f"{i:03d}.parquet", row_group_size=7)
    LABELS.write_parquet(data.parent / "labels.parquet")


def engine(data, where: str, executor: str = "inline", workers: int = 1, per_batch: int = 1) -> pl.DataFrame:
    """Views per label over the files: filter, join with a static table and the partial aggregate all run in
    the source stage; no batch is sampled (`diagnose_every = 0`), so every one can take the fused path."""
    ctx = sd.Context(executor=executor, workers=workers)
    ctx.config = ctx.config.with_options(diagnose_every=0)
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, pad STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH (connector "
        f"= 'files', path = '{data}', format = 'parquet', max_files_per_batch = '{per_batch}');"
        f"CREATE TABLE t (k STRING, label STRING) WITH (connector = 'files', path = "
        f"'{data.parent / 'labels.parquet'}')"
    )
    return ctx.sql(QUERY.format(where=where)).collect()


def plain_polars(data, where: str, events: pl.LazyFrame | None = None) -> pl.DataFrame:
    events = pl.scan_parquet(str(data / "*.parquet"), schema=POLARS) if events is None else events
    ctx = pl.SQLContext(s=events, t=LABELS.lazy())
    return ctx.execute(QUERY.format(where=where)).collect()


def rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.select("label", "n", "nx", "lo").rows(), key=repr)


@settings(max_examples=examples(20))
@given(
    files_rows=st.lists(st.lists(VALUES, max_size=30), min_size=1, max_size=4),
    where=st.sampled_from(WHERES),
    workers=st.sampled_from([1, 3]),
    per_batch=st.sampled_from([1, 2]),
)
def test_the_fused_path_gives_plain_polars_rows(tmp_path_factory, files_rows, where, workers, per_batch):
    data = tmp_path_factory.mktemp("pq") / "in"
    write(data, files_rows)
    assert rows(engine(data, where, "inline", workers, per_batch)) == rows(plain_polars(data, where))


NASTY = [
    [("view", 1, "a", T0), ("click", None, "b", None), (None, 3, "a", T0 + dt.timedelta(seconds=5))],
    [],  # an empty file
    [("other", -1, "a", T0 + dt.timedelta(seconds=9))] * 5,  # no row joins
    [("view", None, "b", T0 + dt.timedelta(seconds=20)), ("buy", 4, "a", T0 + dt.timedelta(seconds=21))],
]


@pytest.mark.parametrize("executor,workers", [("inline", 3), ("drizzle", 1), ("drizzle", 3), ("bsp", 1), ("bsp", 3)])
def test_every_executor_gives_plain_polars_rows(tmp_path, executor, workers):
    write(tmp_path / "in", NASTY)
    for where in ("x > 0", "k = 'none'"):  # the second keeps no row at all
        got = engine(tmp_path / "in", where, executor, workers)
        assert rows(got) == rows(plain_polars(tmp_path / "in", where)), where


class Queries:
    """The polars queries this process runs (a counting hook on `collect` and `collect_all`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.collects = self.fused = 0
        collect, collect_all = pl.LazyFrame.collect, pl.collect_all

        def counted(lf, *args, **kwargs):
            self.collects += 1
            return collect(lf, *args, **kwargs)

        def counted_all(lfs, *args, **kwargs):
            self.fused += 1
            return collect_all(lfs, *args, **kwargs)

        monkeypatch.setattr(pl.LazyFrame, "collect", counted)
        monkeypatch.setattr(pl, "collect_all", counted_all)

    @property
    def total(self) -> int:
        return self.collects + self.fused


def test_a_parquet_batch_is_one_query_for_its_source_stage(tmp_path, monkeypatch):
    """Per batch of a windowed query: the fused read and stage (one collect_all) and the final aggregate's
    merge (one; 300 groups a batch take polars' path, not the small one); counted over runs of 3 and 6
    batches, so what a run costs once (planning, statistics, the end of input) cancels out."""
    at = [T0 + dt.timedelta(seconds=10 * i) for i in range(6)]
    many = [[(f"k{j}", j - 1, "a", at[i]) for j in range(301)] for i in range(6)]  # x = -1 fails the filter
    write(tmp_path / "three", many[:3])
    write(tmp_path / "six", many)
    counts = []
    for name in ("three", "six"):
        ctx = sd.Context(executor="inline", workers=1)
        ctx.config = ctx.config.with_options(diagnose_every=0)
        ctx.sql(
            f"CREATE STREAM s (k STRING, x BIGINT, pad STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts) WITH ("
            f"connector = 'files', path = '{tmp_path / name}', format = 'parquet', max_files_per_batch = '1')"
        )
        stream = ctx.sql(
            "SELECT k, window_start, COUNT(*) AS n FROM s WHERE x >= 0 "
            "GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND) EMIT ON WINDOW CLOSE"
        )
        queries = Queries(monkeypatch)
        got = stream.collect()
        counts.append((queries.fused, queries.total))
        monkeypatch.undo()
        assert got.height == 300 * (3 if name == "three" else 6) and set(got.get_column("n")) == {1}
    (fused3, fused6), (total3, total6) = zip(*counts)
    assert (fused3, fused6) == (3, 6), counts  # one fused query per batch
    assert (total6 - total3) / 3 <= 2, counts  # and one more per batch: the final aggregate's


def test_a_batch_the_fused_query_cannot_read_falls_back_to_the_full_read(tmp_path, monkeypatch):
    write(tmp_path / "in", NASTY)
    pl.DataFrame(NASTY[0], schema=POLARS, orient="row").with_columns(pl.col("x").cast(pl.Int32)).write_parquet(
        tmp_path / "in" / "002.parquet"  # INT32 where BIGINT is declared: the pushed read refuses it
    )
    opened = opened_file_sources(monkeypatch)
    got = engine(tmp_path / "in", "x > 0", per_batch=2)
    # the batch of files 2 and 3 is read file by file: file 3 pushed, file 2 converted (a full read)
    assert [s.pushed_reads for s in opened] == [3]
    events = pl.concat([pl.read_parquet(p).cast(POLARS) for p in sorted((tmp_path / "in").glob("*.parquet"))])
    assert rows(got) == rows(plain_polars(tmp_path / "in", "x > 0", events.lazy()))


def test_a_stage_that_calls_a_python_udf_is_not_fused(tmp_path, monkeypatch):
    write(tmp_path / "in", NASTY)
    ctx = sd.Context(executor="inline", workers=1)
    ctx.config = ctx.config.with_options(diagnose_every=0)
    ctx.register_function("double_it", lambda x: 2 * x, returns="BIGINT")
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, pad STRING, ts TIMESTAMP) WITH (connector = 'files', "
        f"path = '{tmp_path / 'in'}', format = 'parquet', max_files_per_batch = '1')"
    )
    queries = Queries(monkeypatch)
    got = ctx.sql("SELECT k, double_it(x) AS y FROM s WHERE x > 0").collect()
    assert queries.fused == 0  # a fused query that failed would call the function on a row twice
    assert sorted(got.rows(), key=repr) == sorted([("buy", 8), ("view", 2), (None, 6)], key=repr)
