"""`verify`: a query streamed many ways against one batch, finding a planted executor fault and passing on
correct queries and the examples."""

from __future__ import annotations

import datetime as dt
import io
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import stream_dsl as sd
from executor.api import register_executor
from executor.inline import InlineQuery
from stream_dsl.cli.main import main
from stream_dsl.errors import DSLError
from stream_dsl.verify import row_differences

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
T0 = dt.datetime(2026, 1, 1)


class RowLosingQuery(InlineQuery):
    """A planted fault: when the input came in more than one micro-batch, the result loses its first row."""

    def run(self, on_batch: Any = None, should_stop: Any = None, *, idle_sleep: bool = False) -> None:
        self.batches_seen = 0

        def count(report: dict[str, Any]) -> None:
            self.batches_seen += 1
            if on_batch is not None:
                on_batch(report)

        super().run(count, should_stop, idle_sleep=idle_sleep)

    def result(self) -> pl.DataFrame:
        rows = super().result()
        return rows.slice(1) if self.batches_seen > 2 else rows  # the end of input is a batch of its own


register_executor("row_losing", lambda graph, config, output, realtime: RowLosingQuery(graph, config, output, realtime))


def _events(n: int, seed: int, disorder_s: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    return pl.DataFrame(
        {
            "k": [rng.choice("abcde") for _ in range(n)],
            "v": [rng.randint(-5, 50) if rng.random() > 0.1 else None for _ in range(n)],
            "ts": [T0 + dt.timedelta(seconds=i - rng.randint(0, disorder_s)) for i in range(n)],
        },
        schema={"k": pl.String, "v": pl.Int64, "ts": pl.Datetime("ms")},
    )


QUERY = "SELECT k, COUNT(*) AS n, SUM(v) AS total, MIN(v) AS low FROM s WHERE v IS NULL OR v > 3 GROUP BY k"


def test_a_correct_query_is_equal_everywhere_and_to_duckdb() -> None:
    ctx = sd.Context()
    ctx.from_polars(_events(400, 1), "s", watermark="ts")
    outcome = ctx.sql(QUERY).verify(sql=QUERY, seeds=2, workers=(1, 2))
    assert outcome.ok, str(outcome)
    assert outcome.duckdb == "equal"
    assert outcome.reference_rows == 5
    assert {s.executor for s in outcome.settings} == {"inline", "drizzle", "bsp"}
    assert {s.optimize for s in outcome.settings} == {True, False}
    assert "all equal" in str(outcome)


def test_a_planted_executor_fault_is_found_with_its_rows_and_setting() -> None:
    ctx = sd.Context()
    ctx.from_polars(_events(300, 2), "s")
    query = "SELECT k, v FROM s WHERE v > 40"
    outcome = ctx.sql(query).verify(executors=("inline", "row_losing"), workers=(1,), seeds=(5,))
    assert not outcome.ok
    difference = outcome.difference
    assert difference.setting.executor == "row_losing" and difference.setting.seed == 5
    expected = _events(300, 2).filter(pl.col("v") > 40).select("k", "v")
    assert difference.missing.height == 1 and difference.extra.height == 0
    assert difference.missing.row(0) in expected.rows()
    text = str(outcome)
    assert "executor=row_losing" in text and "seed 5" in text and "1 rows missing" in text
    assert "stream s:" in text  # the batch sizes of the split that failed


def test_a_watermark_too_tight_for_the_data_shows_as_late_rows() -> None:
    ctx = sd.Context()
    ctx.from_polars(_events(600, 3, disorder_s=30), "s", watermark="ts", watermark_delay="1s")
    query = "SELECT k, window_start, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"
    outcome = ctx.sql(query).verify(executors=("inline",), workers=(1,), optimize=(False,), seeds=(1,))
    assert not outcome.ok
    assert outcome.difference.late_rows > 0
    assert "late rows" in str(outcome)
    # the same data with a delay covering its disorder streams exactly
    ctx.from_polars(_events(600, 3, disorder_s=30), "s", watermark="ts", watermark_delay="31s")
    assert ctx.sql(query).verify(executors=("inline",), workers=(1,), seeds=(1, 2)).ok


def test_row_differences_compare_multisets_with_nulls_and_rounded_floats() -> None:
    a = pl.DataFrame({"k": ["x", "x", None], "f": [0.1 + 0.2, 0.1 + 0.2, None]})
    b = pl.DataFrame({"k": ["x", None, "y"], "f": [0.3, None, 1.0]})
    missing, extra = row_differences(a, b)
    assert missing.rows() == [("x", 0.3)]  # the second copy of ("x", 0.1 + 0.2): multisets, floats rounded
    assert extra.rows() == [("y", 1.0)]
    assert [f.height for f in row_differences(a, a.reverse())] == [0, 0]


def test_an_endless_stream_is_refused_with_the_fix() -> None:
    ctx = sd.Context()
    ctx.sql(
        "CREATE STREAM g (user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING, "
        "event_time TIMESTAMP, ip_address STRING) WITH (connector = 'generator', kind = 'ysb')"
    )
    with pytest.raises(DSLError, match="bounded input: stream 'g'.*never ends"):
        ctx.sql("SELECT COUNT(*) AS n FROM g").verify()


def test_the_command_passes_on_the_ysb_example(tmp_path: Path) -> None:
    script = (EXAMPLES / "ysb.sql").read_text().replace("count = '2000000'", "count = '5000'")
    assert "count = '5000'" in script
    path = tmp_path / "ysb.sql"
    path.write_text(script)
    out = io.StringIO()
    code = main(["verify", str(path), "--seeds", "1"], out=out)
    assert code == 0, out.getvalue()
    assert "13 runs compared with the single-batch run (100 rows): all equal" in out.getvalue()


def test_the_command_compares_plain_sql_with_duckdb_and_writes_no_sink(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    _events(200, 4).write_ndjson(data / "a.ndjson")
    out_dir = tmp_path / "out"
    (tmp_path / "q.sql").write_text(
        f"CREATE STREAM s (k STRING, v BIGINT, ts TIMESTAMP) WITH (connector = 'files', path = '{data}', "
        "format = 'ndjson');\n"
        f"CREATE SINK totals WITH (connector = 'files', path = '{out_dir}', format = 'ndjson');\n"
        "INSERT INTO totals\nSELECT k, COUNT(*) AS n, SUM(v) AS total FROM s GROUP BY k;\n"
    )
    out = io.StringIO()
    code = main(["verify", str(tmp_path / "q.sql"), "--executors", "inline,drizzle", "--worker-counts", "2"], out=out)
    assert code == 0, out.getvalue()
    assert "DuckDB: equal" in out.getvalue()
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_the_command_exits_1_at_a_difference(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    _events(500, 5, disorder_s=40).write_ndjson(data / "a.ndjson")
    (tmp_path / "q.sql").write_text(
        "CREATE STREAM s (k STRING, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '2' SECOND)\n"
        f"  WITH (connector = 'files', path = '{data}', format = 'ndjson');\n"
        "SELECT k, window_end, COUNT(*) AS n FROM s GROUP BY k, TUMBLE(ts, INTERVAL '5' SECOND);\n"
    )
    out = io.StringIO()
    code = main(["verify", str(tmp_path / "q.sql"), "--executors", "inline", "--worker-counts", "1"], out=out)
    assert code == 1
    assert "DIFFERENT from the single-batch run" in out.getvalue() and "late rows" in out.getvalue()
