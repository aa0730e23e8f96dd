"""STRUCT columns against DuckDB over hypothesis rows with NULL structs, NULL fields and Unicode; reading nested
ndjson and parquet (dead letters name the bad field); inference of parquet structs.

The query family runs on every executor, 1 and 3 workers, optimizer on and off (one setting per example,
to keep the time small). Positioned errors are in tests/corpus/invalid/struct_*.sql.
"""

from __future__ import annotations

import math

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from batch_cuts import collected_over_batches
from differential.reference import duckdb_connection, duckdb_table
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.errors import BindError

S_TYPE = pl.Struct({"a": pl.Int64, "b": pl.String, "n": pl.Struct({"c": pl.Float64})})
DUCK_COLUMNS = "k VARCHAR, i BIGINT, s STRUCT(a BIGINT, b VARCHAR, n STRUCT(c DOUBLE))"

words = st.one_of(st.none(), st.sampled_from(["", "x", "é", "👍🏽", "ü"]))
structs = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "a": st.one_of(st.none(), st.integers(-3, 3)),
            "b": words,
            "n": st.one_of(st.none(), st.fixed_dictionaries({"c": st.one_of(st.none(), st.sampled_from([0.5, -2.0]))})),
        }
    ),
)
rows = st.lists(
    st.tuples(st.sampled_from(["a", "b", None]), st.one_of(st.none(), st.integers(-3, 3)), structs),
    min_size=1,
    max_size=8,
)

# (ours, DuckDB's or None for the same text)
QUERIES = [
    ("SELECT k, s.a, s.n.c, s.b AS bb FROM s", "SELECT k, s.a, s.n.c, s.b AS bb FROM s"),
    ("SELECT struct_extract(s, 'b'), s.n FROM s WHERE s.a > 0", None),
    ("SELECT s['b'] AS b, s['n']['c'] AS c FROM s WHERE s['a'] > 0", None),
    ("SELECT k, s IS NULL, s.n IS NULL, s = s FROM s", None),
    (
        "SELECT CAST(s AS STRUCT(b STRING, a DOUBLE, z INT)) AS c FROM s",
        "SELECT CAST(s AS STRUCT(b VARCHAR, a DOUBLE, z INT)) AS c FROM s",
    ),
    ("SELECT named_struct('x', i, 'é', s.b) AS r FROM s", 'SELECT struct_pack(x := i, "é" := s.b) AS r FROM s'),
    ("SELECT {'x': i, 'y': {'z': s.b}} AS r FROM s WHERE {'a': s.a} = {'a': i}", None),
    ("SELECT s.b, count(*) AS c, sum(s.a) AS t FROM s GROUP BY s.b", None),
    ("SELECT s, count(*) AS c FROM s GROUP BY s", None),
]
SETTINGS = [(e, w, o) for e in ("inline", "drizzle", "bsp") for w, o in ((1, True), (3, False))]


def duckdb_rows(frame: pl.DataFrame, sql: str) -> list[tuple]:
    con = duckdb_connection()
    duckdb_table(con, "s", DUCK_COLUMNS, frame.rows())
    return con.execute(sql).fetchall()


def _norm(v: object) -> object:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else round(v, 9)
    if isinstance(v, dict):
        return tuple((k, _norm(x)) for k, x in v.items())
    return v


def _key(rows: list[tuple]) -> list[str]:
    return sorted(repr(tuple(_norm(v) for v in r)) for r in rows)


@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=rows,
    cuts=st.lists(st.integers(0, 8), max_size=2),
    query=st.sampled_from(QUERIES),
    setting=st.sampled_from(SETTINGS),
)
def test_struct_queries_match_duckdb_on_every_executor(data, cuts, query, setting):
    frame = pl.DataFrame(data, schema={"k": pl.String, "i": pl.Int64, "s": S_TYPE}, orient="row")
    ours, theirs = query
    executor, workers, optimize = setting
    cut = sorted(min(c, frame.height) for c in cuts)
    got, _ = collected_over_batches(ours, frame, cut, executor, workers, optimize)
    assert _key(got) == _key(duckdb_rows(frame, theirs or ours)), (ours, setting)


def _run_to_end(ctx: sd.Context, sql: str) -> tuple[list[tuple], list]:
    """A continuous query over bounded files, run to its end: its rows, sorted, and its dead letters."""
    sink = MemorySink()
    handle = ctx.sql(sql).start(sink=sink)
    assert handle.await_termination(60)
    return sorted(sink.frame().rows()), list(handle.dead_letters)


def test_reading_nested_ndjson_sends_bad_fields_to_dead_letters(tmp_path):
    lines = [
        '{"id":1,"s":{"a":1,"b":"x","z":3,"n":{"c":1.5}}}',
        '{"id":2,"s":null}',
        '{"id":3,"s":{"b":"y"}}',
        '{"id":4}',
        '{"id":5,"s":{"a":"str"}}',
        '{"id":6,"s":5}',
        '{"id":7,"s":{"a":1,"n":{"c":"q"}}}',
        '{"id":8,"s":{"a":2,"b":"ok"}}',
    ]
    (tmp_path / "in.ndjson").write_text("\n".join(lines) + "\n")
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM ev (id BIGINT, s STRUCT(a BIGINT, b STRING, n STRUCT(c DOUBLE))) WITH (connector = 'files', "
        f"path = '{tmp_path / 'in.ndjson'}', format = 'ndjson', dead_letter = 'none')"
    )
    got, letters = _run_to_end(ctx, "SELECT id, s.a, s.n.c, s FROM ev")
    assert got == [
        (1, 1, 1.5, {"a": 1, "b": "x", "n": {"c": 1.5}}),
        (2, None, None, None),
        (3, None, None, {"a": None, "b": "y", "n": None}),
        (4, None, None, None),
        (8, 2, None, {"a": 2, "b": "ok", "n": None}),
    ]
    reasons = {d.position.rsplit(":", 1)[1]: d.reason for d in letters}
    assert set(reasons) == {"5", "6", "7"}
    assert "field 'a'" in reasons["5"] and "STRUCT" in reasons["6"] and "field 'n': field 'c'" in reasons["7"]


def test_parquet_structs_are_inferred_and_converted_by_field_name(tmp_path):
    path = tmp_path / "p.parquet"
    pl.DataFrame({"id": [1, 2, 3], "s": [{"b": "7", "a": 1}, None, {"b": "x", "a": 2}]}).write_parquet(path)
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(f"CREATE TABLE inferred WITH (connector = 'files', path = '{path}', format = 'parquet')")
    assert ctx.sql("DESCRIBE inferred").rows() == [("id", "BIGINT"), ("s", "STRUCT(b STRING, a BIGINT)")]
    ctx.sql(
        f"CREATE STREAM declared (id BIGINT, s STRUCT(a INT, b BIGINT, c STRING)) "
        f"WITH (connector = 'files', path = '{path}', format = 'parquet', dead_letter = 'none')"
    )
    got, letters = _run_to_end(ctx, "SELECT id, s FROM declared")
    assert got == [(1, {"a": 1, "b": 7, "c": None}), (2, None)]
    assert [d.reason for d in letters] == ["column 's': field 'b': cannot convert 'x' to BIGINT"]


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_struct_columns_are_written_by_file_sinks(tmp_path, fmt):
    frame = pl.DataFrame({"id": [1, 2], "s": [{"a": 1, "b": "é"}, None]})
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([frame], name="src")
    ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{tmp_path / 'out'}', format = '{fmt}')")
    ctx.sql("INSERT INTO out SELECT id, s FROM src").await_termination(60)
    ctx.sql(
        f"CREATE TABLE back (id BIGINT, s STRUCT(a BIGINT, b STRING)) WITH (connector = 'files', "
        f"path = '{tmp_path / 'out'}', format = '{fmt}')"
    )
    assert sorted(ctx.sql("SELECT * FROM back").collect().rows()) == [(1, {"a": 1, "b": "é"}), (2, None)]


def test_a_csv_sink_refuses_a_struct_column_when_the_insert_binds(tmp_path):
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([pl.DataFrame({"id": [1]})], name="src")
    ctx.sql(f"CREATE SINK flat WITH (connector = 'files', path = '{tmp_path / 'out'}', format = 'csv')")
    with pytest.raises(BindError) as info:
        ctx.sql("INSERT INTO flat\nSELECT id, {'a': id} AS r FROM src")
    assert (info.value.line, info.value.column) == (1, 13)
    assert "cannot hold the nested column 'r' (STRUCT(a BIGINT))" in info.value.message
    ctx.sql("INSERT INTO flat SELECT id, struct_extract({'a': id}, 'a') AS a FROM src").await_termination(60)
