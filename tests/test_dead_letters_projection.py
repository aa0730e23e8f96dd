"""A record is a dead letter or a row whatever columns the query reads (decode.py, `with_checked`).

Projection pushdown reads only the columns a query uses. A record whose
bad value sat in a column the query did not read used to come through:
over the same file `SELECT id` gave 8 rows, `SELECT *` 6, COUNT(*) 8, and
switching the optimizer off changed the answers. Now every column a value
can fail in (all but STRING) is checked on every read. The oracle is built
from the generated records themselves: the good ones, through plain
polars.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples

BASE = dt.datetime(2024, 1, 1)
# column -> (a good value from an int, a bad value for the column); `name` is STRING: any value is good
COLUMNS = {
    "id": (lambda i: i, "four"),
    "name": (lambda i: f"u{i % 3}", None),
    "amount": (lambda i: i * 1.5, "lots"),
    "ts": (lambda i: (BASE + dt.timedelta(seconds=i)).isoformat(sep=" "), "not a time"),
    "ok": (lambda i: i % 2 == 0, "maybe"),
}
DDL = "(id BIGINT, name STRING, amount DOUBLE, ts TIMESTAMP, ok BOOLEAN)"
QUERIES = {
    "SELECT id FROM s": lambda good: good.select("id"),
    "SELECT COUNT(*) AS n FROM s": lambda good: pl.DataFrame({"n": [good.height]}),
    "SELECT name, COUNT(*) AS n FROM s GROUP BY name": lambda good: good.group_by("name").agg(n=pl.len()),
    "SELECT name FROM s WHERE id > 3": lambda good: good.filter(pl.col("id") > 3).select("name"),
}
FAILING = [c for c, (_, bad) in COLUMNS.items() if bad is not None]


def _records(bad: list[str | None]) -> tuple[list[str], pl.DataFrame]:
    """ndjson lines, one per entry of `bad` (the column given a bad value, or None), and the good records."""
    lines, good = [], []
    for i, column in enumerate(bad):
        record = {c: make(i) for c, (make, _) in COLUMNS.items()}
        if column is not None:
            record[column] = COLUMNS[column][1]
        else:
            good.append(record)
        lines.append(json.dumps(record))
    schema = {"id": pl.Int64, "name": pl.String, "amount": pl.Float64, "ts": pl.String, "ok": pl.Boolean}
    return lines, pl.DataFrame(good, schema=schema, orient="row")


def _answers(folder: Path, executor: str, optimize: bool, fmt: str) -> dict[str, pl.DataFrame]:
    ctx = sd.Context(executor=executor, workers=2, optimize=optimize)
    ctx.sql(f"CREATE STREAM s {DDL} WITH (connector = 'files', path = '{folder}/*.{fmt}', format = '{fmt}')")
    return {sql: ctx.sql(sql).collect() for sql in QUERIES}


def _assert_equal(answers: dict[str, pl.DataFrame], good: pl.DataFrame, context: str) -> None:
    for sql, expected in QUERIES.items():
        got, want = answers[sql], expected(good)
        assert sorted(got.rows()) == sorted(want.select(got.columns).rows()), f"{context}: {sql}"


def _write(folder: Path, lines: list[str], fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "ndjson":
        (folder / "part.ndjson").write_text("\n".join(lines) + "\n")
        return
    rows = [json.loads(line) for line in lines]
    text = (
        ",".join(COLUMNS)
        + "\n"
        + "".join(",".join(str(r[c]).lower() if c == "ok" else str(r[c]) for c in COLUMNS) + "\n" for r in rows)
    )
    (folder / "part.csv").write_text(text)


@settings(max_examples=examples(25), deadline=None)
@given(
    bad=st.lists(st.one_of(st.none(), st.sampled_from(FAILING)), min_size=1, max_size=12),
    fmt=st.sampled_from(["ndjson", "csv"]),
)
def test_the_rows_of_a_file_with_bad_values_do_not_depend_on_the_columns_read(tmp_path_factory, bad, fmt):
    folder = tmp_path_factory.mktemp("bad")
    lines, good = _records(bad)
    _write(folder, lines, fmt)
    for optimize in (True, False):
        _assert_equal(_answers(folder, "inline", optimize, fmt), good, f"{fmt} optimize={optimize} bad={bad}")


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
def test_every_executor_leaves_out_a_record_whose_bad_value_is_in_a_column_not_read(tmp_path, executor):
    bad = [None, "amount", None, "ts", "id", None, "ok", None]
    lines, good = _records(bad)
    for fmt in ("ndjson", "csv"):
        _write(tmp_path / fmt, lines, fmt)
        for optimize in (True, False):
            _assert_equal(_answers(tmp_path / fmt, executor, optimize, fmt), good, f"{executor} {fmt} {optimize}")


def test_a_parquet_column_stored_as_text_is_checked_when_the_query_does_not_read_it(tmp_path):
    """A parquet column stored as its declared type cannot fail and is not read for the check; one stored as text
    can, and is."""
    frame = pl.DataFrame({"id": [1, 2, 3], "amount": ["1.5", "lots", "3"]})
    frame.write_parquet(tmp_path / "p.parquet")
    for optimize in (True, False):
        ctx = sd.Context(optimize=optimize)
        ctx.sql(f"CREATE STREAM s (id BIGINT, amount DOUBLE) WITH (connector = 'files', path = '{tmp_path}/*.parquet')")
        assert sorted(ctx.sql("SELECT id FROM s").collect()["id"]) == [1, 3], optimize
        assert ctx.sql("SELECT COUNT(*) AS n FROM s").collect()["n"].to_list() == [2], optimize
