"""Bad input in files never stops a query and never hides rows (issue 16, items 6-9).

Real files on disk, read through the `files` source: a poison parquet file,
CSV with a stray quote or short rows, NOT NULL columns, and TIMESTAMP units.
"""

from __future__ import annotations

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.connectors.dead_letters import read_dead_letters
from stream_dsl.connectors.memory import MemorySink

HANG_GUARD_S = 120  # only to avoid hanging when something is broken


def _run(ctx: sd.Context, query: str):
    sink = MemorySink()
    handle = ctx.sql(query).start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)
    return sink.frame(), handle


# ---------------------------------------------------------------- item 6: a poison parquet file


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_a_parquet_file_with_a_nested_column_is_a_dead_letter_and_later_files_are_read(tmp_path, executor):
    data = tmp_path / "in"
    data.mkdir()
    pl.DataFrame({"k": ["a", "b"], "x": [1.5, 2.5]}).write_parquet(data / "1.parquet")
    pl.DataFrame({"k": ["poison"], "x": [[1.0, 2.0]]}).write_parquet(data / "2.parquet")
    pl.DataFrame({"k": ["c"], "x": [3.5]}).write_parquet(data / "3.parquet")
    letters_file = tmp_path / "bad.ndjson"
    ctx = sd.Context(executor=executor, workers=1 if executor == "inline" else 2)
    ctx.sql(f"CREATE STREAM s (k STRING, x DOUBLE) WITH (connector = 'files', path = '{data}', "
            f"format = 'parquet', max_files_per_batch = '1', dead_letter = '{letters_file}')")
    frame, handle = _run(ctx, "SELECT k, x FROM s")
    assert sorted(frame.rows()) == [("a", 1.5), ("b", 2.5), ("c", 3.5)]
    [letter] = read_dead_letters(str(letters_file))
    assert letter["position"] == str(data / "2.parquet")
    assert "column 'x'" in letter["reason"] and "DOUBLE" in letter["reason"]
    assert sum(p["dead_letters"] for p in handle.progress()) == 1


# ---------------------------------------------------------------- item 8: NOT NULL


def _not_null_records(n: int) -> list[dict]:
    """Every third record lacks its id (missing or null); the others are good."""
    records = []
    for i in range(n):
        record = {"id": i, "name": f"n{i}", "v": float(i)}
        if i % 3 == 1:
            del record["id"]
        elif i % 3 == 2 and i % 2 == 0:
            record["id"] = None
        records.append(record)
    return records


def _write(records: list[dict], path, fmt: str) -> None:
    frame = pl.DataFrame(records, schema={"id": pl.Int64, "name": pl.String, "v": pl.Float64})
    if fmt == "ndjson":
        import json
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    elif fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
@pytest.mark.parametrize("query", ["SELECT id, name, v FROM s", "SELECT name, v FROM s", "SELECT COUNT(*) AS n FROM s"])
def test_a_record_without_a_not_null_value_is_a_dead_letter(tmp_path, fmt, query):
    records = _not_null_records(90)
    _write(records, tmp_path / f"data.{fmt}", fmt)
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(f"CREATE STREAM s (id BIGINT NOT NULL, name STRING, v DOUBLE) WITH (connector = 'files', "
            f"path = '{tmp_path / f'data.{fmt}'}', dead_letter = 'none')")
    good = pl.DataFrame([r for r in records if r.get("id") is not None])
    oracle = pl.SQLContext(s=good).execute(query, eager=True)
    frame, handle = _run(ctx, query)
    assert sorted(frame.rows()) == sorted(oracle.rows())
    reasons = [d.reason for d in handle.dead_letters]
    assert len(reasons) == len(records) - good.height
    assert all("column 'id' is NOT NULL" in r for r in reasons)


def test_describe_shows_not_null():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql("CREATE STREAM s (id BIGINT NOT NULL, name STRING) WITH (connector = 'files', path = 'x.ndjson')")
    assert ctx.sql("DESCRIBE s").rows() == [("id", "BIGINT NOT NULL"), ("name", "STRING")]
