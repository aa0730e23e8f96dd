"""Every scalar function against DuckDB, through collect(), over hypothesis rows with NULLs and edge values.

The functions run in a few wide SELECTs over a stream split into random
micro-batches: on the inline executor with many examples, and on the drizzle
executor (separate processes) with a few. NOW() is not compared (it reads the
clock): `test_now_is_one_value_per_batch` checks it instead. SHOW FUNCTIONS is
checked against the binder in both directions.
"""

from __future__ import annotations

import datetime as dt
import math
import re

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
from stream_dsl.bind import typecheck as tc
from stream_dsl.config import RunConfig
from stream_dsl.errors import BindError, ParseError
from stream_dsl.ir import expr as E
from stream_dsl.ir import functions_arrays
from stream_dsl.ir.function_docs import all_docs
from stream_dsl.ir.functions import SCALAR_FUNCTIONS, lookup_aggregate, lookup_scalar
from stream_dsl.ir.functions_text import rust_pattern, rust_replacement
from stream_dsl.ir.functions_time import DIFF_UNITS, FIELDS, TRUNC_UNITS

SCHEMA = {
    "ts": pl.Datetime("ms"),
    "t2": pl.Datetime("ms"),
    "s": pl.String,
    "i": pl.Int64,
    "d": pl.Float64,
    "n": pl.Int64,
}
DUCK_COLUMNS = "ts TIMESTAMP, t2 TIMESTAMP, s VARCHAR, i BIGINT, d DOUBLE, n BIGINT"

# (name, ours, DuckDB's): DuckDB's is ours unless given.
CASES: list[tuple[str, str, str | None]] = (
    [(f"extract_{f}", f"EXTRACT({f} FROM ts)", None) for f in FIELDS]
    + [(f"date_part_{f}", f"date_part('{f}', ts)", None) for f in ("dow", "week", "epoch")]
    + [
        (name, f"{name}(ts)", None)
        for name in (
            "year",
            "quarter",
            "month",
            "day",
            "hour",
            "minute",
            "second",
            "millisecond",
            "dayofweek",
            "dayofyear",
            "week",
            "weekofyear",
            "epoch",
            "epoch_ms",
        )
    ]
    + [(f"date_trunc_{u}", f"date_trunc('{u}', ts)", None) for u in TRUNC_UNITS]
    + [(f"date_diff_{u}", f"date_diff('{u}', ts, t2)", None) for u in DIFF_UNITS]
    + [
        ("datediff", "datediff('hour', t2, ts)", None),
        ("datepart", "datepart('month', ts)", None),
        ("datetrunc", "datetrunc('quarter', ts)", None),
        ("date_add", "date_add(ts, INTERVAL 90 MINUTE)", None),
        ("plus_interval", "ts + INTERVAL '1' DAY", None),
        ("to_timestamp_int", "to_timestamp(i)", "CAST(to_timestamp(i) AS TIMESTAMP)"),
        ("to_timestamp_double", "to_timestamp(i / 8.0)", "CAST(to_timestamp(i / 8.0) AS TIMESTAMP)"),
        ("from_unixtime", "from_unixtime(n)", "CAST(to_timestamp(n) AS TIMESTAMP)"),
        ("to_timestamp_ms", "to_timestamp_ms(i)", "epoch_ms(i)"),
        ("regexp_matches", "regexp_matches(s, '\\d')", None),
        ("regexp_matches_anchor", "regexp_matches(s, '^a.b')", None),
        ("regexp_like", "regexp_like(s, '[a-c]+,')", "regexp_matches(s, '[a-c]+,')"),
        ("regexp_matches_word", "regexp_matches(s, '\\w\\s')", None),
        ("regexp_extract_group", "regexp_extract(s, '([a-z]+),(\\w*)', 2)", None),
        ("regexp_extract", "regexp_extract(s, '\\d+')", None),
        ("regexp_extract_class", "regexp_extract(s, '[\\w,]+')", None),
        ("regexp_replace", "regexp_replace(s, '[aeé]', 'X')", None),
        ("regexp_replace_groups", "regexp_replace(s, '(\\w)(,)', '\\2\\1$', 'g')", None),
        ("regexp_replace_i", "regexp_replace(s, 'A', '<\\0>', 'gi')", None),
        ("regexp_replace_empty", "regexp_replace(s, '', '-', 'g')", None),
        ("split_part", "split_part(s, ',', n)", None),
        ("split_part_chars", "split_part(s, '', n)", None),
        ("split_part_column", "split_part(s, s, n)", None),
        ("concat_ws", "concat_ws(', ', s, i, NULL, d, ts)", None),
        ("concat_ws_null", "concat_ws(NULL, s, i)", None),
        ("lpad", "lpad(s, n, 'xy')", "lpad(s, CAST(n AS INTEGER), 'xy')"),
        ("rpad", "rpad(s, n, 'é')", "rpad(s, CAST(n AS INTEGER), 'é')"),
        ("repeat", "repeat(s, n)", None),
        ("reverse", "reverse(s)", None),
        ("starts_with", "starts_with(s, 'a')", None),
        ("ends_with", "ends_with(s, ',')", None),
        ("contains", "contains(s, ',')", None),
        ("greatest", "greatest(i, n)", None),
        ("greatest_double", "greatest(d, NULL, i)", None),
        ("least", "least(d, i)", None),
        ("greatest_text", "greatest(s, 'b', NULL)", None),
        ("least_time", "least(ts, t2)", None),
        ("nullif", "nullif(i, n)", None),
        ("ifnull", "ifnull(s, 'z')", None),
        ("coalesce", "coalesce(n, i)", None),
        ("round_digits", "round(d, 2)", None),
        ("round_tens", "round(d, -1)", None),
        ("round_int", "round(i, -2)", None),
        ("trunc_double", "trunc(d)", None),
        ("trunc_int", "trunc(i)", None),
        ("log10", "log(d)", None),
        ("log_base", "log(2, d)", None),
        ("ln", "ln(d)", None),
        ("power", "power(d, 2)", None),
        ("pow", "pow(n, 3)", None),
        ("sign_double", "sign(d)", None),
        ("sign_int", "sign(i)", None),
        ("abs", "abs(d)", None),
        ("length", "length(s)", None),
    ]
)
# Functions compared elsewhere (tests/test_compile.py) or not comparable (NOW reads the clock).
NOT_HERE = {"now", "upper", "lower", "ltrim", "rtrim", "trim", "substring", "replace", "concat", "floor", "ceil"}
NOT_HERE |= {"sqrt", "exp", "log10"}
NOT_HERE |= {f.name for f in functions_arrays.functions()}  # lists and JSON: tests/test_arrays.py
NOT_HERE |= {"current_date"}  # reads the clock: tests/test_date.py
NOT_HERE |= {"named_struct", "struct_extract"}  # over STRUCT rows in tests/test_structs.py

EDGE_TIMES = [
    dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
    dt.datetime(1970, 1, 1),
    dt.datetime(2024, 1, 31, 23, 59, 59, 999000),
    dt.datetime(2024, 2, 29, 12, 0),
    dt.datetime(2023, 12, 31, 23, 59, 59),
    dt.datetime(2021, 1, 1, 0, 0, 0, 500000),
    dt.datetime(1900, 3, 1),
    dt.datetime(1960, 6, 30, 18, 30, 5, 250000),
]
times = st.one_of(
    st.none(),
    st.sampled_from(EDGE_TIMES),
    st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2100, 1, 1)).map(
        lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)
    ),
)
texts = st.one_of(
    st.none(),
    st.sampled_from(["", "a,b,c", "abc", "A1 b2", "é,ß", "👍🏽x", ",,", "a٣,"]),
    st.text(alphabet="ab,Aé1٣ _👍\t", max_size=8),
)
integers = st.one_of(st.none(), st.integers(-3000, 3000), st.sampled_from([0, -1, 1, 1_700_000_000, -86_400]))
doubles = st.one_of(
    st.none(), st.sampled_from([0.0, -0.0, 0.5, -2.5, 1e-9, 123.456]), st.floats(-1e6, 1e6, allow_nan=False)
)
small = st.one_of(st.none(), st.integers(-3, 12))
rows = st.lists(st.tuples(times, times, texts, integers, doubles, small), min_size=1, max_size=12)


@st.composite
def datasets(draw: st.DrawFn) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    frame = pl.DataFrame(draw(rows), schema=SCHEMA, orient="row")
    cuts = sorted(draw(st.lists(st.integers(0, frame.height), max_size=3)))
    return frame, cut_into_batches(frame, cuts)


def duckdb_rows(frame: pl.DataFrame, expressions: list[str]) -> list[tuple]:
    con = duckdb_connection("SET TimeZone = 'UTC'")
    duckdb_table(con, "s", DUCK_COLUMNS, frame.rows())
    return con.execute(f"SELECT {', '.join(expressions)} FROM s").fetchall()


def _norm(v: object) -> object:
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.replace(tzinfo=None)
    return v


def _same(x: object, y: object) -> bool:
    x, y = _norm(x), _norm(y)
    if isinstance(x, float) and isinstance(y, (float, int)) and not isinstance(y, bool):
        return (math.isnan(x) and math.isnan(float(y))) or math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12)
    return x == y


# A failing example of a wide query is read from its message (it names the function); shrinking it takes minutes.
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
GROUPS = [CASES[i : i + 40] for i in range(0, len(CASES), 40)]


def check(
    frame: pl.DataFrame, batches: list[pl.DataFrame], group: list, executor: str, workers: int, optimize: bool = True
) -> None:
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(batches, name="s")
    ours_sql = ", ".join(f"{dsl} AS c{k}" for k, (_, dsl, _) in enumerate(group))
    plan = ctx.sql(f"SELECT {INPUTS}, {ours_sql} FROM s").plan
    result = collect(plan, RunConfig(workers=workers, executor=executor, optimize=optimize))
    # each result row next to its input row, so a value in the wrong row fails too
    expected = duckdb_rows(frame, [INPUTS] + [duck or dsl for _, dsl, duck in group])
    ours = sorted(result.rows(), key=_row_key)
    theirs = sorted((tuple(_norm(v) for v in r) for r in expected), key=_row_key)
    assert len(ours) == len(theirs)
    width = len(SCHEMA)
    for mine, duck in zip(ours, theirs):
        for k, (name, _, _) in enumerate(group):
            a, b = mine[width + k], duck[width + k]
            assert _same(a, b), f"{name} ({executor}): {a!r} vs DuckDB's {b!r} for the row {mine[:width]}"


INPUTS = ", ".join(SCHEMA)


def _row_key(row: tuple) -> str:
    return repr(row[: len(SCHEMA)])


@pytest.mark.parametrize("group", range(len(GROUPS)))
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)
@given(data=datasets(), optimize=st.booleans())
def test_functions_match_duckdb_inline(group, data, optimize):
    frame, batches = data
    check(frame, batches, GROUPS[group], "inline", 2, optimize)


@pytest.mark.parametrize("executor", ["drizzle"])
@settings(max_examples=examples(2), deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)
@given(data=datasets())
def test_functions_match_duckdb_on_workers(executor, data):
    frame, batches = data
    for group in GROUPS:
        check(frame, batches, group, executor, 2)


def test_every_function_is_compared():
    names = {dsl.split("(")[0].strip().lower() for _, dsl, _ in CASES}
    called = {fn.name for fn in map(lookup_scalar, names) if fn is not None}
    called |= {FIELDS[f] for f in FIELDS}  # EXTRACT(f FROM ts) binds to the field's function
    assert set(SCALAR_FUNCTIONS) - called - NOT_HERE == set()
    assert "plus_interval" in {name for name, _, _ in CASES}


# ---------------------------------------------------------------- NOW


def test_now_is_one_value_per_batch_and_not_folded():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([pl.DataFrame({"x": [1, 2, 3]}, schema={"x": pl.Int64})], name="s")
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(milliseconds=1)
    out = ctx.sql("SELECT x, now() AS a, current_timestamp AS b FROM s").collect()
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(milliseconds=1)
    assert out.get_column("a").n_unique() == 1
    assert before <= out.get_column("a")[0] <= after and before <= out.get_column("b")[0] <= after
    assert "now()" in ctx.sql("EXPLAIN SELECT now() AS a FROM s").lower()


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "sql,message,column",
    [
        ("SELECT extract(yr FROM ts) FROM s", "unknown EXTRACT field 'yr'", 8),
        ("SELECT date_trunc('fortnight', ts) FROM s", "unknown DATE_TRUNC unit 'fortnight'", 8),
        ("SELECT date_diff(s, ts, t2) FROM s", "must be a string literal", 8),
        ("SELECT x, regexp_matches(s, 'a(') FROM s", "invalid regular expression 'a('", 11),
        ("SELECT regexp_matches(s, s) FROM s", "must be a string literal", 8),
        ("SELECT regexp_replace(s, 'a', 'b', 'q') FROM s", "options", 8),
        ("SELECT regexp_extract(s, 'a', n) FROM s", "integer literal", 8),
        ("SELECT regexp_extract(s, '(a)', -1) FROM s", "integer literal from 0 to 9", 8),
        ("SELECT concat_ws(s, s) FROM s", "separator of CONCAT_WS must be a literal", 8),
        ("SELECT year(s) FROM s", "argument 1 of year must be timestamp, got STRING", 8),
        ("SELECT repeat(s, 1.5) FROM s", "argument 2 of repeat must be integer", 8),
        ("SELECT split_part(s, ',') FROM s", "does not take 2 argument", 8),
        ("SELECT now(1) FROM s", "does not take 1 argument", 8),
        ("SELECT date_add(ts, 5) FROM s", "must be interval", 8),
        ("SELECT greatest(i, s) FROM s", "GREATEST: needs arguments of one comparable kind", 8),
    ],
)
def test_positioned_errors(sql, message, column):
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([pl.DataFrame(schema=SCHEMA | {"x": pl.Int64})], name="s")
    with pytest.raises(BindError, match=re.escape(message)) as err:
        ctx.sql(sql)
    assert (err.value.line, err.value.column) == (1, column)


def test_only_extract_takes_from():
    with pytest.raises(ParseError, match="EXTRACT is") as err:
        sd.Context().sql("SELECT foo(year FROM ts) FROM s")
    assert (err.value.line, err.value.column) == (1, 8)


def test_lpad_with_nothing_to_pad_with_fails_as_in_duckdb():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([pl.DataFrame({"s": ["ab", "abcd"]})], name="s")
    assert ctx.sql("SELECT lpad(s, 2, '') AS p FROM s WHERE s = 'abcd'").collect().item() == "ab"
    # as in DuckDB, a conjunct that can fail runs only for the rows the others keep
    assert ctx.sql("SELECT s FROM s WHERE lpad(s, 3, '') = 'abc' AND s = 'abcd'").collect().item() == "abcd"
    with pytest.raises(Exception, match="Insufficient padding"):
        ctx.sql("SELECT lpad(s, 3, '') AS p FROM s").collect()
    with pytest.raises(duckdb.Error, match="Insufficient padding"):
        duckdb.sql("SELECT lpad('ab', 3, '')").fetchall()


# ---------------------------------------------------------------- RE2 → Rust


def test_re2_classes_are_ascii_and_replacements_are_rewritten():
    assert rust_pattern(r"\d+[\w.]") == r"(?-u:\d)+[0-9A-Za-z_.]"
    assert rust_pattern(r"\\d") == r"\\d"
    assert rust_replacement(r"<\1$\\>") == "<${1}$$\\>"


# ---------------------------------------------------------------- SHOW FUNCTIONS / DESCRIBE FUNCTION


def _accepted(name: str) -> bool:
    """Whether the binder knows `name` as a function (scalar, aggregate or window)."""
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([pl.DataFrame(schema=SCHEMA)], name="s")
    try:
        ctx.sql(f'SELECT "{name}"() FROM s')  # quoted: a reserved word (LEFT) is a name too
    except (BindError, ParseError) as err:
        return "unknown function" not in str(err) and "unknown aggregate" not in str(err)
    return True


def test_show_functions_lists_exactly_what_the_binder_accepts():
    listed = set(sd.Context().sql("SHOW FUNCTIONS").get_column("name").to_list())
    assert all(_accepted(name) for name in listed)
    duckdb_names = {r[0] for r in duckdb.sql("SELECT DISTINCT function_name FROM duckdb_functions()").fetchall()}
    candidates = {n for n in duckdb_names if n.isidentifier()} | {"regexp_like", "from_unixtime", "nope"}
    for name in sorted(candidates):
        if name.lower() in ("extract",):  # EXTRACT(f FROM x) is grammar, listed as date_part
            continue
        assert _accepted(name) == (name.lower() in listed), name


def test_show_functions_has_a_signature_and_description_for_each():
    shown = sd.Context().sql("SHOW FUNCTIONS")
    assert shown.columns == ["name", "kind", "signature", "description"]
    assert shown.height == len(all_docs()) and shown.get_column("name").is_unique().all()
    assert all(sig.startswith(tuple(shown.get_column("name"))) for sig in shown.get_column("signature"))
    assert shown.filter(pl.col("description") == pl.col("name")).height == 0
    kinds = dict(zip(shown.get_column("name"), shown.get_column("kind")))
    assert kinds["count"] == "aggregate" and kinds["tumble"] == "window" and kinds["regexp_like"] == "scalar"
    assert lookup_aggregate("mean") == "avg" and kinds["mean"] == "aggregate"


def test_describe_function():
    ctx = sd.Context()
    described = dict(ctx.sql("DESCRIBE FUNCTION DATE_DIFF").rows())
    assert described["signature"].startswith("date_diff(unit")
    assert "= 1" in described["example"] and described["nulls"]
    assert dict(ctx.sql("describe function regexp_like").rows())["alias of"] == "regexp_matches"
    with pytest.raises(BindError, match="did you mean 'date_diff'") as err:
        ctx.sql("DESCRIBE FUNCTION date_dif")
    assert (err.value.line, err.value.column) == (1, 19)


def test_func_nodes_keep_canonical_names():
    e = tc.function("from_unixtime", [tc.literal(1)])
    assert isinstance(e, E.Func) and e.name == "to_timestamp"


def test_repl_shows_and_describes_functions():
    from test_repl import make_session, table_cells

    session, out = make_session(width=200, max_rows=500)
    assert session.execute("DESCRIBE FUNCTION regexp_extract;")
    cells = dict((row[0], row[1]) for row in table_cells(out.getvalue()) if len(row) == 2)
    assert cells["signature"].startswith("regexp_extract(s STRING")
    assert cells["example"].startswith("regexp_extract('a-42'")
    assert session.execute("SHOW FUNCTIONS;")
    names = {row[0] for row in table_cells(out.getvalue())}
    assert {"date_trunc", "regexp_like", "count", "tumble"} <= names


def test_substring_matches_duckdb_for_negative_starts_and_lengths_and_nulls():
    """DuckDB counts a negative start from the end and takes a negative length before the start; the random rows
    above draw starts of 1 and more. Every start and length around the ends of the strings, and NULLs."""
    words, starts, lengths = ["hello", "", "héllo wörld", None], [*range(-13, 14), None], [*range(-7, 12), None]
    rows = [(w, s, n) for w in words for s in starts for n in lengths]
    ctx = sd.Context(executor="inline")
    ctx.from_polars(
        [pl.DataFrame(rows, schema={"w": pl.String, "st": pl.Int64, "n": pl.Int64}, orient="row")], name="t"
    )
    ours = ctx.sql("SELECT w, st, n, substring(w, st) AS a, substring(w, st, n) AS b FROM t").collect().rows()
    con = duckdb_connection()
    duckdb_table(con, "t", "w VARCHAR, st BIGINT, n BIGINT", rows)
    theirs = con.execute("SELECT w, st, n, substring(w, st), substring(w, st, n) FROM t").fetchall()
    assert sorted(ours, key=repr) == sorted(theirs, key=repr)
