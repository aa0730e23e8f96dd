"""The files source pushes the scan's columns and predicate into parquet reads (connectors/parquet_scan.py).

What must hold: the scan reads only the columns the query uses and filters
in the reader (seen in polars' plan, not in timings); the rows and the
watermark are those of the unpushed read, NULLs and row-group pruning
included; files whose rows could be dead letters, and predicates that call
functions or can fail, are read as before.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.connectors import files
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.connectors.parquet_scan import parquet_scan, pushable_predicate
from stream_dsl.ir import expr as E
from stream_dsl.ir.definitions import SourceDef, Watermark
from stream_dsl.ir.types import DataType as T
from stream_dsl.ir.types import Field, Schema

from budget import examples
from file_sources import opened_file_sources
from differential.reference import duckdb_connection, duckdb_table

SCHEMA = Schema.of(("k", T.STRING), ("x", T.BIGINT), ("pad", T.STRING), ("ts", T.TIMESTAMP))
POLARS = {"k": pl.String, "x": pl.Int64, "pad": pl.String, "ts": pl.Datetime("ms")}
T0 = dt.datetime(2024, 1, 1)
VIEW = E.Binary("=", E.Column("k", T.STRING), E.Literal("view", T.STRING), T.BOOLEAN)


def frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=POLARS, orient="row")


def rows_at(n: int, first: int = 0) -> list[tuple]:
    return [
        ("view" if i % 3 == 0 else "click", i, "p" * 5, T0 + dt.timedelta(seconds=i)) for i in range(first, first + n)
    ]


def source(path, schema: Schema = SCHEMA, **options) -> files.FileSource:
    opts = tuple(sorted({"connector": "files", "path": str(path), **options}.items()))
    return files.make_source(SourceDef("events", "stream", schema, opts, Watermark("ts", 0)))


def read_all(src: files.FileSource, columns: list[str]) -> tuple[pl.DataFrame, list]:
    src.open(columns)
    batches = []
    while not batches or not batches[-1].exhausted:
        batches.append(src.next_batch(100))
    return pl.concat([b.frame for b in batches]), batches


def test_the_scan_reads_only_the_columns_and_filters_in_the_reader(tmp_path):
    path = tmp_path / "a.parquet"
    frame(rows_at(10)).write_parquet(path)
    pushed = pushable_predicate(VIEW)
    assert pushed is not None and pushed.columns == {"k"}
    plan = parquet_scan(str(path), SCHEMA.select(["k", "ts"]), pushed, None).explain()
    # the scan's schema holds only the 2 columns asked for (the file's other 2 are ignored, never decoded)
    assert plan.startswith("Parquet SCAN") and "PROJECT */2 COLUMNS" in plan
    assert 'SELECTION: ((col("k") == "view"))' in plan  # in the scan itself: row groups are pruned by statistics
    with_max = parquet_scan(str(path), SCHEMA.select(["k", "ts"]), pushed, "ts").explain()
    assert "PROJECT */2 COLUMNS" in with_max and with_max.startswith("FILTER")  # the max needs every row


def test_the_source_filters_parquet_and_the_watermark_sees_every_row(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    frame(rows_at(9)).write_parquet(data / "1.parquet")
    frame([("click", 100, "p", T0 + dt.timedelta(hours=1))]).write_parquet(data / "2.parquet")  # no 'view' at all
    src = source(data, max_files_per_batch="1")
    assert src.push_predicate(VIEW)
    got, batches = read_all(src, ["k", "ts"])
    assert src.pushed_reads == 2
    assert got.get_column("k").to_list() == ["view"] * 3 and got.columns == ["k", "ts"]
    epoch = int(T0.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    # the last row of file 1 (at 8 s) is a click, and file 2 keeps no row: both still move the watermark
    assert [b.max_event_time_ms for b in batches] == [epoch + 8_000, epoch + 3_600_000]
    assert batches[-1].offset == {"files": sorted(str(p) for p in data.iterdir())}


@pytest.mark.parametrize(
    "predicate",
    [
        E.Func("upper", (E.Column("k", T.STRING),), T.STRING),  # a function may be a user's: each row once
        E.Cast(E.Column("k", T.STRING), T.BIGINT),  # can fail: the pipeline must raise, naming its operator
        E.Binary(
            ">",
            E.Binary("+", E.Column("x", T.BIGINT), E.Literal(1, T.BIGINT), T.BIGINT),
            E.Column("x", T.BIGINT),
            T.BOOLEAN,
        ),
    ],
    ids=["function", "cast", "overflow"],
)
def test_predicates_that_call_functions_or_can_fail_are_not_pushed(predicate):
    assert pushable_predicate(predicate) is None


def test_files_whose_rows_could_be_dead_letters_are_read_whole(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    frame(rows_at(3)).with_columns(pl.col("x").cast(pl.Int32)).write_parquet(data / "1.parquet")  # INT32: a cast
    src = source(data)
    src.push_predicate(VIEW)
    got, _ = read_all(src, ["k", "x"])
    assert src.pushed_reads == 0 and got.height == 3  # the scan filters later, after the conversion
    strict = Schema(tuple(Field(f.name, f.dtype, not_null=f.name == "x") for f in SCHEMA))
    frame(rows_at(3)).write_parquet(data / "1.parquet")
    src = source(data, strict)
    src.push_predicate(VIEW)
    read_all(src, ["k"])
    assert src.pushed_reads == 0  # a NOT NULL column: a NULL there is a dead letter whatever the predicate says


VALUES = st.tuples(
    st.sampled_from(["view", "click", None]),
    st.one_of(st.none(), st.integers(-5, 5)),
    st.sampled_from(["a", "b"]),
    st.one_of(st.none(), st.integers(0, 50).map(lambda s: T0 + dt.timedelta(seconds=s))),
)
WHERE = st.sampled_from(
    ["k = 'view'", "x > 0", "x IS NULL", "k IN ('view', 'click') AND x <= 2", "k = 'click' OR x < -2", "NOT (x = 1)"]
)


def _run_query(data, where: str, executor: str = "inline", workers: int = 1) -> pl.DataFrame:
    ctx = sd.Context(executor=executor, workers=workers)
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, pad STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts) "
        f"WITH (connector = 'files', path = '{data}', format = 'parquet', max_files_per_batch = '2')"
    )
    sink = MemorySink()
    handle = ctx.sql(f"SELECT k, x, ts FROM s WHERE {where}").start(sink=sink)
    assert handle.await_termination(120)
    return sink.frame()


@settings(max_examples=examples(25))
@given(files_rows=st.lists(st.lists(VALUES, max_size=40), min_size=1, max_size=4), where=WHERE)
def test_pushed_reads_give_polars_rows_over_row_groups_and_nulls(tmp_path_factory, files_rows, where):
    data = tmp_path_factory.mktemp("pq")
    for i, rows in enumerate(files_rows):
        frame(rows).write_parquet(data / f"{i}.parquet", row_group_size=7, statistics=True)  # several row groups
    got = _run_query(data, where)
    con = duckdb_connection()
    duckdb_table(con, "s", "k VARCHAR, x BIGINT, pad VARCHAR, ts TIMESTAMP", [r for rows in files_rows for r in rows])
    expected = con.execute(f"SELECT k, x, ts FROM s WHERE {where}").fetchall()
    assert sorted(got.rows(), key=repr) == sorted(expected, key=repr)


@pytest.mark.parametrize("executor,workers", [("inline", 1), ("drizzle", 1), ("drizzle", 3), ("bsp", 1), ("bsp", 3)])
def test_every_executor_gives_the_same_rows_and_windows(tmp_path, executor, workers):
    data = tmp_path / "in"
    data.mkdir()
    for i in range(4):
        frame(rows_at(12, first=12 * i)).write_parquet(data / f"{i}.parquet", row_group_size=5)
    ctx = sd.Context(executor=executor, workers=workers)
    ctx.sql(
        f"CREATE STREAM s (k STRING, x BIGINT, pad STRING, ts TIMESTAMP, WATERMARK FOR ts AS ts) "
        f"WITH (connector = 'files', path = '{data}', format = 'parquet', max_files_per_batch = '1')"
    )
    sink = MemorySink()
    query = (
        "SELECT window_start, COUNT(*) AS n FROM s WHERE k = 'view' "
        "GROUP BY TUMBLE(ts, INTERVAL '10' SECOND) EMIT ON WINDOW CLOSE"
    )
    handle = ctx.sql(query).start(sink=sink)
    assert handle.await_termination(120)
    got = sorted((r[0], r[1]) for r in sink.frame().rows())
    views = [i for i in range(48) if i % 3 == 0]
    assert got == [(T0 + dt.timedelta(seconds=w), sum(1 for i in views if w <= i < w + 10)) for w in range(0, 48, 10)]


def test_the_engine_pushes_the_where_clause_into_each_parquet_read(tmp_path, monkeypatch):
    data = tmp_path / "in"
    data.mkdir()
    for i in range(3):
        frame(rows_at(6, first=6 * i)).write_parquet(data / f"{i}.parquet")
    opened = opened_file_sources(monkeypatch)
    got = _run_query(data, "k = 'view'")
    assert got.height == 6
    assert [s.pushed_reads for s in opened] == [3]


def test_a_batch_of_several_files_is_one_scan_unless_one_of_them_needs_the_full_read(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    for i in range(3):
        frame(rows_at(6, first=6 * i)).write_parquet(data / f"{i}.parquet")
    src = source(data, max_files_per_batch="3")
    src.push_predicate(VIEW)
    got, batches = read_all(src, ["k", "x", "ts"])
    assert src.pushed_reads == 3 and got.get_column("x").to_list() == [0, 3, 6, 9, 12, 15]
    epoch = int(T0.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    assert batches[0].max_event_time_ms == epoch + 17_000
    frame(rows_at(6, first=18)).with_columns(pl.col("x").cast(pl.Int32)).write_parquet(data / "3.parquet")
    src = source(data, max_files_per_batch="4")
    src.push_predicate(VIEW)
    got, batches = read_all(src, ["k", "x", "ts"])
    assert src.pushed_reads == 3  # the INT32 file is read whole and converted, the others still pushed
    # the full read keeps every row: the scan's own filter drops the clicks later, in the stage pipeline
    assert got.get_column("x").to_list() == [0, 3, 6, 9, 12, 15, 18, 19, 20, 21, 22, 23]
    assert batches[0].max_event_time_ms == epoch + 23_000
