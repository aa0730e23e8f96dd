"""Lists, UNNEST and JSON held as text against DuckDB, over hypothesis rows with NULLs, empty lists and Unicode.

The functions run in two wide SELECTs on the inline executor with many
examples; the UNNEST queries (in FROM, LEFT JOIN ... ON TRUE, WITH
ORDINALITY, as a select item, under an aggregate, a window and over a
changelog) on every executor, with 1 and 3 workers and the optimizer on and
off, over random micro-batch splits. The positioned errors are in
tests/corpus/invalid/arrays_*.sql; the plan golden in tests/plans/arrays_*.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from batch_cuts import cut_into_batches
from differential.reference import duckdb_connection, duckdb_table
from executor.api import collect
from stream_dsl.config import RunConfig
from stream_dsl.connectors import python_io
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.errors import BindError, ParseError
from stream_dsl.ir import functions_arrays
from stream_dsl.ir.functions import lookup_scalar
from stream_dsl.sql.parser import parse

BASE = dt.datetime(2024, 1, 1)
SCHEMA = {
    "k": pl.String,
    "tags": pl.List(pl.String),
    "n": pl.List(pl.Int64),
    "i": pl.Int64,
    "s": pl.String,
    "j": pl.String,
    "ts": pl.Datetime("ms"),
}
DUCK_COLUMNS = "k VARCHAR, tags VARCHAR[], n BIGINT[], i BIGINT, s VARCHAR, j VARCHAR, ts TIMESTAMP"

# ---------------------------------------------------------------- data

words = st.one_of(st.none(), st.sampled_from(["", "x", "y", "é", "👍🏽", "a,b"]), st.text("ab,é👍", max_size=3))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=4),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "l", "x y"]), inner, max_size=3),
    max_leaves=6,
)
json_texts = st.one_of(
    st.none(),
    st.builds(
        lambda v, ascii_only: json.dumps(v, ensure_ascii=ascii_only),
        st.dictionaries(st.sampled_from(["a", "l", "x y"]), json_values, max_size=3) | json_values,
        st.booleans(),
    ),
)
rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", None]),
        st.one_of(st.none(), st.lists(words, max_size=3)),
        st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-3, 3)), max_size=4)),
        st.one_of(st.none(), st.integers(-4, 4)),
        words,
        json_texts,
        st.integers(0, 40_000).map(lambda ms: BASE + dt.timedelta(milliseconds=ms)),
    ),
    min_size=1,
    max_size=10,
)


@st.composite
def datasets(draw: st.DrawFn) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    frame = pl.DataFrame(draw(rows), schema=SCHEMA, orient="row")
    cuts = sorted(draw(st.lists(st.integers(0, frame.height), max_size=3)))
    return frame, cut_into_batches(frame, cuts)


def duckdb_rows(frame: pl.DataFrame, sql: str) -> list[tuple]:
    con = duckdb_connection("SET TimeZone = 'UTC'")
    duckdb_table(con, "s", DUCK_COLUMNS, frame.rows())
    return con.execute(sql).fetchall()


def _norm(v: object) -> object:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else round(v, 9)
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def same_rows(ours: list[tuple], theirs: list[tuple]) -> bool:
    def key(rows: list[tuple]) -> list[str]:
        return sorted(repr(tuple(_norm(v) for v in r)) for r in rows)

    return key(ours) == key(theirs)


def _context(batches: list[pl.DataFrame]) -> sd.Context:
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(batches, name="s")
    return ctx


# ---------------------------------------------------------------- functions: (ours, DuckDB's or None for the same)


def _json_value(path: str) -> str:
    """JSON_VALUE as DuckDB spells it: a scalar as text (DuckDB's own json_value keeps a string's quotes)."""
    return f"CASE WHEN json_type(j, '{path}') NOT IN ('OBJECT', 'ARRAY') THEN json_extract_string(j, '{path}') END"


def _json_query(path: str) -> str:
    value = f"CAST(json_extract(j, '{path}') AS VARCHAR)"
    return f"CASE WHEN json_type(j, '{path}') IN ('OBJECT', 'ARRAY') THEN {value} END"


CASES: list[tuple[str, str | None]] = [
    ("tags[1]", None),
    ("tags[-1]", None),
    ("n[i]", None),
    ("list_element(n, 2)", None),
    ("list_extract(tags, i)", None),
    ("len(tags)", None),
    ("length(n)", "len(n)"),
    ("cardinality(n)", None),
    ("array_length(tags)", None),
    ("array_contains(n, i)", None),
    ("list_contains(tags, s)", None),
    ("array_has(n, 2)", None),
    ("[i, 2]", None),
    ("[i, 2.5, NULL]", None),
    ("ARRAY[s, 'x']", None),
    ("[]", None),
    ("list_value(s)", None),
    ("array_to_string(tags, ',')", None),
    ("array_to_string(n, ';')", None),
    ("array_to_string(tags, NULL)", None),
    ("array_join(n, '-')", "array_to_string(n, '-')"),
    ("split(s, ',')", None),
    ("string_split(s, '')", None),
    ("str_split(s, s)", None),
    ("string_to_array(s, 'é')", None),
    ("len(split(s, ','))", None),
    ("CAST(n AS DOUBLE[])", None),
    ("CAST(n AS STRING[])", "CAST(n AS VARCHAR[])"),
    ("CAST(n AS ARRAY<INT>)", "CAST(n AS INTEGER[])"),
    ("n::STRING", "CAST(n AS VARCHAR)"),
]
JSON_CASES: list[tuple[str, str | None]] = [
    ("json_value(j, '$.a')", _json_value("$.a")),
    ("json_value(j, '$.l[0]')", _json_value("$.l[0]")),
    ("json_value(j, '$.l[-1]')", _json_value("$.l[-1]")),
    ("json_value(j, '$.\"x y\"')", _json_value('$."x y"')),
    ("json_value(j, '$')", _json_value("$")),
    ("json_query(j, '$.a')", _json_query("$.a")),
    ("json_query(j, '$')", _json_query("$")),
    ("json_query(j, '$.l[1]')", _json_query("$.l[1]")),
    ("json_extract_string(j, '$.a')", None),
    ("json_extract_string(j, '$.l[1]')", None),
    ("json_extract_string(j, '$[0]')", None),
]
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]


def check(frame: pl.DataFrame, batches: list[pl.DataFrame], cases: list, optimize: bool) -> None:
    ours = ", ".join(f"{dsl} AS c{n}" for n, (dsl, _) in enumerate(cases))
    plan = _context(batches).sql(f"SELECT k, tags, n, i, s, j, {ours} FROM s").plan
    result = collect(plan, RunConfig(workers=2, executor="inline", optimize=optimize)).rows()
    theirs = duckdb_rows(frame, f"SELECT k, tags, n, i, s, j, {', '.join(d or o for o, d in cases)} FROM s")
    mine_sorted, duck_sorted = sorted(result, key=repr), sorted(theirs, key=repr)
    assert len(mine_sorted) == len(duck_sorted)
    for mine, duck in zip(mine_sorted, duck_sorted):
        assert repr(mine[:6]) == repr(duck[:6]), "rows out of step"
        for n, (dsl, _) in enumerate(cases):
            a, b = mine[6 + n], duck[6 + n]
            assert _norm(a) == _norm(b), f"{dsl}: {a!r} vs DuckDB's {b!r} for the row {mine[:6]}"


@pytest.mark.parametrize("cases", [CASES, JSON_CASES], ids=["lists", "json"])
@settings(max_examples=examples(15), deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)
@given(data=datasets(), optimize=st.booleans())
def test_list_and_json_functions_match_duckdb(cases, data, optimize):
    frame, batches = data
    check(frame, batches, cases, optimize)


def test_every_list_and_json_function_is_compared():
    names = {dsl.split("(")[0].strip().lower() for dsl, _ in CASES + JSON_CASES}
    called = {fn.name for fn in map(lookup_scalar, names) if fn is not None} | {"list_element", "list_value"}
    assert {f.name for f in functions_arrays.functions()} - called == set()


# ---------------------------------------------------------------- UNNEST on every executor

TUMBLE_DUCK = (
    "WITH w AS (SELECT *, epoch_ms(ts) - epoch_ms(ts) % 10000 AS ws FROM s CROSS JOIN UNNEST(tags) AS t(tag)) "
    "SELECT tag, epoch_ms(ws) AS window_start, COUNT(*) AS c FROM w GROUP BY tag, ws"
)
UNNESTS: list[tuple[str, str | None]] = [
    ("SELECT k, i, tag FROM s CROSS JOIN UNNEST(s.tags) AS t(tag)", None),
    ("SELECT k, x, pos FROM s, UNNEST(n) WITH ORDINALITY AS t(x, pos) WHERE i IS NOT NULL", None),
    ("SELECT k, t.tag FROM s LEFT JOIN UNNEST(s.tags) AS t(tag) ON TRUE", None),
    ("SELECT k, UNNEST(n) AS x FROM s", None),
    ("SELECT tag, COUNT(*) AS c, SUM(i) AS si FROM s CROSS JOIN UNNEST(tags) AS t(tag) GROUP BY tag", None),
    ("SELECT k, part FROM s CROSS JOIN UNNEST(split(s, ',')) AS t(part) WHERE part <> ''", None),
    (
        "SELECT tag, window_start, COUNT(*) AS c FROM s CROSS JOIN UNNEST(tags) AS t(tag) "
        "GROUP BY tag, TUMBLE(ts, INTERVAL '10' SECOND)",
        TUMBLE_DUCK,
    ),
    # over a changelog: each element's row keeps its list's insert or retraction
    ("SELECT k, x FROM (SELECT k, ARRAY_AGG(i) AS xs FROM s GROUP BY k) CROSS JOIN UNNEST(xs) AS t(x)", None),
]


def run_unnests(
    frame: pl.DataFrame, batches: list[pl.DataFrame], executor: str, settings_: list, queries: list = UNNESTS
) -> None:
    ctx = _context(batches)
    for sql, duck in queries:
        plan = ctx.sql(sql).plan
        theirs = duckdb_rows(frame, duck or sql)
        for workers, optimize in settings_:
            ours = collect(plan, RunConfig(workers=workers, executor=executor, optimize=optimize)).rows()
            where = f"{sql} on {executor} workers={workers} optimize={optimize}"
            assert same_rows(ours, theirs), f"{where}: {ours} vs DuckDB's {theirs}"


@settings(max_examples=examples(6), deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)
@given(data=datasets(), setting=st.sampled_from([(1, True), (3, True), (3, False), (1, False)]))
def test_unnest_matches_duckdb_inline(data, setting):
    frame, batches = data
    run_unnests(frame, batches, "inline", [setting])


# In FROM, LEFT JOIN ... ON TRUE, under an aggregate (its shuffle), over a changelog.
ON_WORKERS = [UNNESTS[0], UNNESTS[2], UNNESTS[4], UNNESTS[7]]


WORKER_RUNS = [("drizzle", (3, True)), ("drizzle", (1, False)), ("bsp", (3, False))]


@pytest.mark.parametrize(("executor", "setting"), WORKER_RUNS)
@settings(max_examples=examples(1), deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)
@given(data=datasets())
def test_unnest_matches_duckdb_on_workers(executor, setting, data):
    frame, batches = data
    run_unnests(frame, batches, executor, [setting], ON_WORKERS)


def test_changelog_rows_keep_their_op():
    """An updated list retracts each of its old elements' rows and inserts the new ones."""
    ctx = _context([pl.DataFrame({"k": ["a"], "i": [1]}), pl.DataFrame({"k": ["a"], "i": [2]})])
    sql = "SELECT k, x FROM (SELECT k, ARRAY_AGG(i) AS xs FROM s GROUP BY k) CROSS JOIN UNNEST(xs) AS t(x)"
    assert sorted(ctx.sql(sql).collect().rows()) == [("a", 1), ("a", 2)]
    assert "Unnest xs as x" in ctx.sql(sql).explain()


# ---------------------------------------------------------------- the API, errors, reading lists


def test_stream_explode_is_unnest_in_the_api():
    frame = pl.DataFrame({"k": ["a", "b", "c"], "tags": [["x", "y"], [], None]})
    ctx = sd.Context(executor="inline", workers=1)
    stream = ctx.from_polars([frame], name="s")
    out = stream.explode("tags").collect()
    assert out.rows() == frame.explode("tags").rows() == [("a", "x"), ("a", "y"), ("c", None)]
    assert out.schema == pl.Schema({"k": pl.String, "tags": pl.String})
    both = stream.explode("tags", empty_as_null=True).collect().rows()
    assert both == frame.explode("tags", empty_as_null=True).rows()
    assert stream.explode("tags", keep_nulls=False).collect().rows() == [("a", "x"), ("a", "y")]


@pytest.mark.parametrize(
    ("sql", "message", "column"),
    [
        ("SELECT i[1] FROM s", "cannot subscript a BIGINT", 8),
        ("SELECT x FROM s CROSS JOIN UNNEST(i) AS t(x)", "UNNEST needs a list, got BIGINT", 28),
        ("SELECT UNNEST(n, n) FROM s", "UNNEST takes one list, got 2", 8),
        ("SELECT cardinality(s) FROM s", "argument 1 of cardinality must be list, got STRING", 8),
        ("SELECT json_value(j, '$.a[') FROM s", "unsupported JSON path", 8),
        ("SELECT json_value(j, s) FROM s", "the JSON path must be a string literal", 8),
        ("SELECT [1, 'a'] FROM s", "list elements have no common type", 8),
        ("SELECT [n, [1]] FROM s", "a list literal of BIGINT[] values is not supported yet", 8),
        ("SELECT x FROM s CROSS JOIN UNNEST(n) AS t(x, y)", "UNNEST gives one column name, got 2", 28),
        ("SELECT k FROM s WHERE UNNEST(n) > 1", "UNNEST gives rows, not a value", 23),
        ("SELECT UNNEST(n), COUNT(*) FROM s GROUP BY 1", "UNNEST gives rows, not a value", 8),
        ("SELECT upper(UNNEST(tags)) FROM s", "UNNEST must be a whole select item", 14),
    ],
)
def test_errors_are_positioned(sql, message, column):
    ctx = _context([pl.DataFrame(schema=SCHEMA)])
    with pytest.raises((BindError, ParseError)) as err:
        ctx.sql(sql)
    assert message in str(err.value)
    assert (err.value.line, err.value.column) == (1, column)


HANG_GUARD_S = 120  # only to avoid hanging when something is broken


def _list_type_names() -> bool:
    """Whether DDL and CAST spell list types (`BIGINT[]`): the lead's type_name grammar (issue 23)."""
    try:
        parse("SELECT CAST(x AS BIGINT[]) FROM s")
    except ParseError:
        return False
    return True


needs_list_type_names = pytest.mark.skipif(not _list_type_names(), reason="no list type names in the grammar yet")


def _run(ctx: sd.Context, query: str) -> tuple[pl.DataFrame, object]:
    sink = MemorySink()
    handle = ctx.sql(query).start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)
    return sink.frame(), handle


@needs_list_type_names
@pytest.mark.parametrize(("fmt", "executor"), [("ndjson", "inline"), ("parquet", "inline"), ("ndjson", "drizzle")])
def test_files_read_list_columns_and_dead_letter_bad_elements(tmp_path, fmt, executor):
    path = tmp_path / f"data.{fmt}"
    good = [("a", [1, 2], ["x", "é"]), ("b", [], None), ("c", None, ["👍🏽", None])]
    if fmt == "ndjson":
        lines = ['{"k": "a", "n": [1, 2], "tags": ["x", "é"]}', '{"k": "bad1", "n": [1, "x"], "tags": []}']
        lines += ['{"k": "b", "n": [], "tags": null}', '{"k": "bad2", "n": 5}', '{"k": "c", "tags": ["👍🏽", null]}']
        lines += ['{"k": "bad3", "n": [1.5]}']
        path.write_text("\n".join(lines) + "\n")
        bad = {"bad1": "element 2: expected BIGINT", "bad2": "expected BIGINT[]", "bad3": "element 1: expected BIGINT"}
    else:  # strings in the file, BIGINT[] declared: each element converts, or the row is a dead letter
        tags = [["x", "é"], ["q"], None, ["👍🏽", None]]
        n = [["1", "2"], ["3", "x"], [], None]
        pl.DataFrame({"k": ["a", "bad1", "b", "c"], "n": n, "tags": tags}).write_parquet(path)
        bad = {"bad1": "cannot convert"}
    ctx = sd.Context(executor=executor, workers=1 if executor == "inline" else 2)
    ctx.sql(
        f"CREATE STREAM s (k STRING, n BIGINT[], tags STRING[]) WITH (connector = 'files', path = '{path}', "
        f"format = '{fmt}', dead_letter = 'none')"
    )
    frame, handle = _run(ctx, "SELECT k, n, tags, n[1] AS first FROM s")
    assert sorted(frame.rows()) == sorted((k, n, t, n[0] if n else None) for k, n, t in good)
    letters = {json.loads(d.raw)["k"]: d.reason for d in handle.dead_letters} if fmt == "ndjson" else {}
    if fmt == "ndjson":
        assert set(letters) == set(bad) and all(bad[k] in letters[k] for k in bad), letters
    else:
        assert len(handle.dead_letters) == 1 and "column 'n'" in handle.dead_letters[0].reason


@needs_list_type_names
def test_python_sources_read_lists_and_dead_letter_bad_elements():
    ctx = sd.Context(executor="inline", workers=1)
    rows = [{"k": "a", "n": [1, 2]}, {"k": "b", "n": None}, {"k": "bad", "n": [1, "x"]}, {"k": "c", "n": []}]
    stream = python_io.iterable_stream(ctx, rows, {"k": "STRING", "n": "BIGINT[]"}, name="rows")
    frame, handle = _run(ctx, "SELECT k, x FROM rows CROSS JOIN UNNEST(n) AS t(x)")
    assert sorted(frame.rows()) == [("a", 1), ("a", 2)]
    [letter] = handle.dead_letters
    assert "column 'n'" in letter.reason and "bad" in letter.raw
    assert stream.schema == {"k": pl.String, "n": pl.List(pl.Int64)}
    made = ctx.from_iterable([("a", [1, 2]), ("b", None)], schema={"k": "STRING", "n": "ARRAY<BIGINT>"}, name="m")
    assert made.collect().rows() == [("a", [1, 2]), ("b", None)]


@needs_list_type_names
def test_cast_between_list_types_and_to_string():
    ctx = _context([pl.DataFrame({"n": [[1, None, 3], [], None]}, schema={"n": pl.List(pl.Int64)})])
    out = ctx.sql("SELECT CAST(n AS DOUBLE[]) AS d, CAST(n AS STRING[]) AS s, CAST(n AS STRING) AS t FROM s")
    theirs = duckdb.sql(
        "SELECT CAST(n AS DOUBLE[]), CAST(n AS VARCHAR[]), CAST(n AS VARCHAR) FROM "
        "(VALUES ([1, NULL, 3]), ([]::BIGINT[]), (NULL::BIGINT[])) v(n)"
    ).fetchall()
    assert out.collect().rows() == theirs
    bad = _context([pl.DataFrame({"s": [["1", "x"]]}, schema={"s": pl.List(pl.String)})])
    with pytest.raises(Exception, match="cannot CAST 'x' to BIGINT"):
        bad.sql("SELECT CAST(s AS BIGINT[]) AS n FROM s").collect()
