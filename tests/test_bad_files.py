"""Bad input in files never stops a query and never hides rows (issue 16, items 6-9).

Real files on disk, read through the `files` source: a poison parquet file,
CSV with a stray quote or short rows, NOT NULL columns, and TIMESTAMP units.
"""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.connectors.dead_letters import read_dead_letters
from stream_dsl.connectors.memory import MemorySink

from budget import examples

HANG_GUARD_S = 120  # only to avoid hanging when something is broken


def _run(ctx: sd.Context, query: str):
    sink = MemorySink()
    handle = ctx.sql(query).start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)
    return sink.frame().drop("op", strict=False), handle  # COUNT(*) is a changelog: upsert records


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
    ctx.sql(
        f"CREATE STREAM s (k STRING, x DOUBLE) WITH (connector = 'files', path = '{data}', "
        f"format = 'parquet', max_files_per_batch = '1', dead_letter = '{letters_file}')"
    )
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
    ctx.sql(
        f"CREATE STREAM s (id BIGINT NOT NULL, name STRING, v DOUBLE) WITH (connector = 'files', "
        f"path = '{tmp_path / f'data.{fmt}'}', dead_letter = 'none')"
    )
    good = pl.DataFrame([r for r in records if r.get("id") is not None])
    oracle = pl.SQLContext(s=good).execute(query, eager=True)
    frame, handle = _run(ctx, query)
    assert sorted(frame.rows()) == sorted(oracle.rows())
    reasons = [d.reason for d in handle.dead_letters]
    assert len(reasons) == len(records) - good.height
    assert all("column 'id' is NOT NULL" in r for r in reasons)


def test_describe_shows_not_null():
    ctx = sd.Context(executor="inline", workers=1, check_files=False)
    ctx.sql("CREATE STREAM s (id BIGINT NOT NULL, name STRING) WITH (connector = 'files', path = 'x.ndjson')")
    assert ctx.sql("DESCRIBE s").rows() == [("id", "BIGINT NOT NULL"), ("name", "STRING")]


# ---------------------------------------------------------------- item 7: CSV


CSV_SCHEMA = "id BIGINT, name STRING, v DOUBLE"


def _csv_line(row: tuple[int, str, float]) -> str:
    import csv
    import io

    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(row)
    return out.getvalue()


def _corrupt(row: tuple[int, str, float], kind: str) -> str:
    """One bad line: a stray quote that opens a field and never closes, a quote inside a field, a short row."""
    i, _, v = row
    return {
        "open": f'{i},"oops,{v}\n',
        "open_last": f'{i},n{i},"{v}\n',
        "inside": f'{i},na"me,{v}\n',
        "short": f"{i},n{i}\n",
        "shortest": f"{i}\n",
    }[kind]


def _decode_csv_text(text: str):
    from stream_dsl.connectors.decode import decode_csv  # the old import path keeps working
    from stream_dsl.ir.types import DataType, Schema

    schema = Schema.of(("id", DataType.BIGINT), ("name", DataType.STRING), ("v", DataType.DOUBLE))
    return decode_csv(text.encode(), schema, source="s", origin="f")


def _names(alphabet: str):
    return st.text(alphabet=st.sampled_from(list(alphabet)), min_size=1, max_size=6).filter(lambda s: s.strip())


def _rows(names):
    return st.lists(
        st.tuples(st.integers(-1000, 1000), names, st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=40
    )


SHORT = st.lists(st.tuples(st.integers(0, 39), st.sampled_from(["short", "shortest"])), max_size=4)


@settings(max_examples=examples(150), deadline=None)
@given(
    rows=_rows(_names('ab ,"')),
    bad=SHORT,
    stray=st.one_of(st.none(), st.tuples(st.integers(0, 39), st.sampled_from(["open", "open_last", "inside"]))),
)
def test_csv_bad_lines_cost_themselves_only(rows, bad, stray):
    """Good rows (quoted commas and quotes), short rows and one stray quote: every good row comes
    through, every bad line is one dead letter at its own line."""
    _check_csv(rows, bad, stray)


@settings(max_examples=examples(150), deadline=None)
@given(rows=_rows(_names('ab ,"\n')), bad=SHORT)
def test_csv_line_breaks_in_quoted_fields_and_short_rows(rows, bad):
    """Quoted fields spanning lines are one record; short rows around them are dead letters."""
    _check_csv(rows, bad, None)


def _check_csv(rows, bad, stray) -> None:
    kinds = {k % len(rows): kind for k, kind in bad}
    if stray is not None:
        kinds[stray[0] % len(rows)] = stray[1]
    text, line, bad_lines, good = "id,name,v\n", 2, [], []
    for k, row in enumerate(rows):
        piece = _corrupt(row, kinds[k]) if k in kinds else _csv_line(row)
        if k in kinds:
            bad_lines.append(line)
        else:
            good.append(row)
        text += piece
        line += piece.count("\n")
    decoded = _decode_csv_text(text)
    assert decoded.frame.rows() == [(i, n, v) for i, n, v in good]
    assert [int(d.position.rsplit(":", 1)[1]) for d in decoded.dead_letters] == bad_lines


def test_one_stray_quote_does_not_swallow_the_rows_after_it(tmp_path):
    rows = [f"{i},n{i},{i}.5\n" for i in range(990)]
    rows[10] = '10,"n10,10.5\n'
    (tmp_path / "data.csv").write_text("id,name,v\n" + "".join(rows))
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM s ({CSV_SCHEMA}) WITH (connector = 'files', path = '{tmp_path / 'data.csv'}', "
        f"dead_letter = 'none')"
    )
    frame, handle = _run(ctx, "SELECT id FROM s")
    assert sorted(frame.get_column("id").to_list()) == [i for i in range(990) if i != 10]
    [letter] = handle.dead_letters
    assert letter.position.endswith(":12") and "quoted field" in letter.reason


def test_a_short_csv_row_is_a_dead_letter_not_padded(tmp_path):
    (tmp_path / "data.csv").write_text("id,name,v\n1,a,1.5\n2,b\n3,c,3.5\n")
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM s ({CSV_SCHEMA}) WITH (connector = 'files', path = '{tmp_path / 'data.csv'}', "
        f"dead_letter = 'none')"
    )
    frame, handle = _run(ctx, "SELECT id, name, v FROM s")
    assert frame.rows() == [(1, "a", 1.5), (3, "c", 3.5)]
    assert [(d.position.rsplit(":", 1)[1], d.reason) for d in handle.dead_letters] == [
        ("3", "expected 3 fields, got 2")
    ]
