"""CREATE checks connector options, paths and formats; files without a column list infer them (issue 23).

The option mistakes that need no files are corpus entries (tests/corpus/invalid/create_*.sql, run by
test_corpus.py); those that read files are here (tests/corpus/invalid_files/*.sql, same header format),
bound with file checks on and the repository root as the working directory, where their paths point.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.connectors import CONNECTORS, files, generator, python_io, redis_streams, socket_source
from stream_dsl.connectors.dead_letters import read_dead_letters
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.connectors.option_specs import OptionError, option_names, reference_markdown
from stream_dsl.errors import BindError, ConnectorError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import Field, Schema, DataType, type_from_polars

from budget import examples
from test_corpus import _expectation

ROOT = Path(__file__).parent.parent
FILE_CASES = sorted((ROOT / "tests" / "corpus" / "invalid_files").glob("*.sql"))
HANG_GUARD_S = 120  # only to avoid hanging when something is broken


@pytest.mark.parametrize("path", FILE_CASES, ids=lambda p: p.stem)
def test_a_create_whose_files_cannot_be_read_is_a_positioned_error(path: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    text = path.read_text()
    want = _expectation(path)
    with pytest.raises(BindError) as info:
        sd.Context(executor="inline", workers=1).sql(text)
    err = info.value
    assert (err.line, err.column) == (want.line, want.column), str(err)
    assert want.message in err.message, str(err)
    caret = " " * (want.column - 1) + "^"
    assert f"\n  {text.splitlines()[want.line - 1]}\n  {caret}" in str(err)


def test_the_file_cases_cover_every_kind_of_file_mistake() -> None:
    names = {p.stem.split("_", 2)[2] for p in FILE_CASES}
    assert {"bounded_path_missing", "csv_over_ndjson", "ndjson_over_csv", "parquet_over_ndjson"} <= names


def test_a_watched_directory_may_not_exist_yet_and_check_files_false_skips_the_files(tmp_path) -> None:
    ctx = sd.Context(executor="inline", workers=1)
    later = tmp_path / "later"
    ctx.sql(f"CREATE STREAM w (a BIGINT) WITH (connector = 'files', path = '{later}', watch = 'true')")
    with pytest.raises(BindError, match="does not exist"):
        ctx.sql(f"CREATE STREAM b (a BIGINT) WITH (connector = 'files', path = '{later}')")
    with pytest.raises(BindError, match="does not exist"):
        ctx.sql(f"CREATE TABLE t (a BIGINT) WITH (connector = 'files', path = '{later}', watch = 'true')")
    offline = sd.Context(executor="inline", workers=1, check_files=False)
    offline.sql(f"CREATE STREAM b (a BIGINT) WITH (connector = 'files', path = '{later}')")
    with pytest.raises(BindError, match="unknown option 'wtach'"):  # the option checks stay on
        offline.sql(f"CREATE STREAM c (a BIGINT) WITH (connector = 'files', path = '{later}', wtach = 'true')")


def test_the_run_time_readers_use_the_same_declarations() -> None:
    assert files.SOURCE_OPTIONS == option_names(files.SOURCE_SPECS)
    assert files.SINK_OPTIONS == option_names(files.SINK_SPECS)
    assert generator.OPTIONS == option_names(generator.SOURCE_SPECS)
    assert redis_streams.SOURCE_OPTIONS == option_names(redis_streams.SOURCE_SPECS)
    assert socket_source.OPTIONS == option_names(socket_source.SOURCE_SPECS)
    assert python_io.SOURCE_OPTIONS == option_names(python_io.SOURCE_SPECS)
    schema = Schema((Field("a", DataType.BIGINT),))
    bad = SourceDef("s", "stream", schema, (("connector", "files"), ("path", "x"), ("watch", "maybe")))
    with pytest.raises(OptionError, match="option watch must be 'true' or 'false'") as info:
        files.FileOptions.parse(bad)  # what a query opening the source runs
    assert info.value.key == "watch" and info.value.at_value
    good = SourceDef("s", "stream", schema, (("connector", "files"), ("path", "x"), ("max_files_per_batch", "2")))
    options = files.FileOptions.parse(good)
    assert (options.watch, options.max_files_per_batch, options.csv.header, options.csv.delimiter) == (
        False,
        2,
        True,
        ",",
    )


def test_docs_list_every_declared_option() -> None:
    page = (ROOT / "docs" / "connectors.md").read_text()
    assert page.endswith("\n" + reference_markdown()), "regenerate: python -m stream_dsl.connectors.option_specs"
    import importlib

    for name, module_path in CONNECTORS.items():
        for specs in (getattr(importlib.import_module(module_path), "OPTION_SPECS", None) or {}).values():
            for option in specs:
                assert f"| `{option.name}` |" in page, (name, option.name)


def test_the_api_readers_name_the_argument(tmp_path) -> None:
    data = tmp_path / "e.ndjson"
    data.write_text('{"a": 1}\n')
    ctx = sd.Context(executor="inline", workers=1)
    with pytest.raises(ConnectorError, match=r"unknown argument wtach= \(did you mean 'watch'\?\)"):
        ctx.read_files(str(data), wtach=True)
    with pytest.raises(ConnectorError, match="argument max_files_per_batch= must be an integer"):
        ctx.read_files(str(data), max_files_per_batch="many")
    with pytest.raises(ConnectorError, match=r"argument format=: .*cannot be read as csv"):
        ctx.read_files(str(data), format="csv")
    with pytest.raises(ConnectorError, match=r"argument path=: .*does not exist"):
        ctx.read_files(str(tmp_path / "nope.ndjson"))
    with pytest.raises(ConnectorError, match="argument batch_size= must be an integer"):
        ctx.read_redis("s", schema={"a": int}, batch_size="x")


# ---------------------------------------------------------------- schema inference

_COLUMNS = st.fixed_dictionaries(
    {
        "i": st.integers(-(2**40), 2**40),
        "f": st.floats(-1e9, 1e9, allow_nan=False).map(lambda x: x + 0.5),
        "s": st.text("abcxyz é", min_size=1, max_size=6).map(lambda t: "s" + t),
        "b": st.booleans(),
        "t": st.datetimes(dt.datetime(2000, 1, 1), dt.datetime(2030, 1, 1)).map(lambda d: d.replace(microsecond=0)),
    }
)


def _inferred(path: Path, fmt: str) -> dict[str, DataType]:
    if fmt == "parquet":
        found = pl.read_parquet_schema(path)
    elif fmt == "csv":
        found = pl.scan_csv(path, infer_schema_length=files.INFER_ROWS, try_parse_dates=True).collect_schema()
    else:
        found = pl.scan_ndjson(path, infer_schema_length=files.INFER_ROWS).collect_schema()
    return {name: type_from_polars(dtype) for name, dtype in found.items()}


@pytest.mark.parametrize("fmt", ["parquet", "ndjson", "csv"])
@settings(max_examples=examples(8), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_COLUMNS, min_size=1, max_size=20))
def test_create_without_columns_infers_what_polars_infers(tmp_path, fmt, rows) -> None:
    frame = pl.DataFrame(
        rows, schema={"i": pl.Int64, "f": pl.Float64, "s": pl.String, "b": pl.Boolean, "t": pl.Datetime("ms")}
    )
    path = tmp_path / f"data.{fmt}"
    if fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "csv":
        frame.write_csv(path)
    else:
        frame.with_columns(pl.col("t").dt.to_string("%Y-%m-%dT%H:%M:%S%.3f")).write_ndjson(path)
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(f"CREATE OR REPLACE STREAM s WITH (connector = 'files', path = '{path}')")
    described = dict(ctx.sql("DESCRIBE s").rows())
    assert described == {name: dtype.value for name, dtype in _inferred(path, fmt).items()}
    got = ctx.sql("SELECT * FROM s").collect()
    assert got.columns == frame.columns
    expected = frame if fmt != "ndjson" else frame.with_columns(pl.col("t").dt.to_string("%Y-%m-%dT%H:%M:%S%.3f"))
    assert got.select("i", "s", "b").rows() == expected.select("i", "s", "b").rows()
    assert got["f"].to_list() == pytest.approx(expected["f"].to_list())


def test_inference_takes_a_sample_and_describes_it(tmp_path) -> None:
    path = tmp_path / "many.csv"
    pl.DataFrame({"k": [f"k{i}" for i in range(3000)], "n": list(range(3000))}).write_csv(path)
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(f"CREATE TABLE t WITH (connector = 'files', path = '{path}', format = 'csv')")
    assert ctx.sql("DESCRIBE t").rows() == [("k", "STRING"), ("n", "BIGINT")]
    assert ctx.sql("SELECT COUNT(*) AS c, SUM(n) AS s FROM t").collect().rows() == [(3000, sum(range(3000)))]


# ---------------------------------------------------------------- csv over ndjson at run time


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_csv_records_without_the_declared_columns_are_dead_letters(tmp_path, executor) -> None:
    data = tmp_path / "in"
    data.mkdir()
    lines = [f'{{"user_id": "u{i}", "n": {i}}}' for i in range(5)]
    (data / "a.csv").write_text("\n".join(lines) + "\n")  # ndjson, named and declared as csv
    (data / "b.csv").write_text("user_id,n\nu9,9\n")
    letters = tmp_path / "bad.ndjson"
    ctx = sd.Context(executor=executor, workers=1 if executor == "inline" else 2, check_files=False)
    ctx.sql(
        f"CREATE STREAM s (user_id STRING, n BIGINT) WITH (connector = 'files', path = '{data}', format = 'csv', "
        f"dead_letter = '{letters}')"
    )
    sink = MemorySink()
    handle = ctx.sql("SELECT user_id, n FROM s").start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)
    assert sink.frame().rows() == [("u9", 9)]
    found = read_dead_letters(str(letters))
    assert [d["raw"] for d in found] == lines
    assert [d["position"] for d in found] == [f"{data / 'a.csv'}:{i}" for i in range(1, 6)]
    assert all("names none of user_id, n" in d["reason"] and "set format = 'ndjson'" in d["reason"] for d in found)
    if executor == "inline":
        assert os.path.exists(letters)
