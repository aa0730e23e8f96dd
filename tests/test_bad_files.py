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
