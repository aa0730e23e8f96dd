"""`stream-dsl run`'s everyday forms (issue 24): -c and stdin, result formats, options before or after the
command, log records, and the live status line on a terminal."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest

from stream_dsl.cli import main as cli
from stream_dsl.cli.status import await_with_status
from test_cli import EVENTS_DDL, call

COUNTS = EVENTS_DDL + "SELECT event_type, COUNT(*) AS n FROM events GROUP BY event_type ORDER BY event_type;"


def _expected() -> pl.DataFrame:
    from stream_dsl.connectors import generator

    events = generator.ysb_events(5000, rate=1000)
    return events.group_by("event_type").agg(pl.len().alias("n")).sort("event_type")


@pytest.mark.parametrize("fmt", ["csv", "json", "ndjson"])
def test_run_c_prints_a_select_in_each_format(fmt):
    code, out, err = call("run", "-c", COUNTS, "--executor", "inline", "--format", fmt)
    assert code == 0, err
    if fmt == "csv":
        printed = pl.read_csv(io.StringIO(out))
    elif fmt == "json":
        printed = pl.DataFrame(json.loads(out))
    else:
        printed = pl.DataFrame([json.loads(line) for line in out.splitlines()])
    assert printed.cast({"n": pl.UInt32}).equals(_expected())


def test_run_dash_reads_the_script_from_standard_input():
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(
        ["run", "-", "--executor", "inline", "--format", "csv"], out=out, err=err, stdin=io.StringIO(COUNTS)
    )
    assert code == 0, err.getvalue()
    assert pl.read_csv(io.StringIO(out.getvalue())).cast({"n": pl.UInt32}).equals(_expected())


@pytest.mark.parametrize("argv", [["run"], ["run", "x.sql", "-c", "SELECT 1"]])
def test_run_needs_exactly_one_script(argv):
    code, _, err = call(*argv)
    assert code == 2 and ("run needs FILE.sql" in err or "not both" in err), err


@pytest.mark.parametrize(
    "argv, workers",
    [
        (["--workers", "3", "run", "x.sql"], 3),
        (["run", "x.sql", "--workers", "3"], 3),
        (["--workers", "3", "run", "x.sql", "--workers", "4"], 4),
        (["run", "x.sql"], None),
    ],
)
def test_execution_options_go_before_or_after_the_command(argv, workers):
    args = cli.build_parser().parse_args(argv)
    assert getattr(args, "workers", None) == workers
    assert cli.context_kwargs(args).get("workers") == workers


def test_log_level_writes_the_lifecycle_records_to_stderr(tmp_path):
    text = EVENTS_DDL + (
        f"CREATE SINK out WITH (connector = 'files', path = '{tmp_path / 'out'}', format = 'csv');\n"
        "INSERT INTO out SELECT event_type FROM events WHERE event_type = 'view';"
    )
    code, out, err = call("--log-level", "info", "--log-json", "run", "-c", text, "--executor", "inline")
    assert code == 0, err
    records = [json.loads(line) for line in err.splitlines()]
    messages = [r["message"] for r in records]
    assert messages[0].endswith("started (inline, 2 workers)") and "ended after" in messages[-1], messages
    assert {r["logger"] for r in records} == {"stream_dsl.query"} and all(r["level"] == "INFO" for r in records)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_continuous_insert_draws_its_status_line_on_a_terminal():
    import stream_dsl as sd

    ctx = sd.Context(executor="inline", batch_interval="100ms")
    ctx.sql(
        "CREATE STREAM g (user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING, "
        "event_time TIMESTAMP, ip_address STRING) WITH (connector = 'generator', kind = 'ysb', rate = '2000', "
        "count = '1000', realtime = 'true')"
    )
    import time

    started = time.perf_counter()
    handle = ctx.sql("SELECT event_type FROM g").start(lambda b, f: None)
    screen = Terminal()
    await_with_status(handle, screen, started)  # paced: about half a second, several redraws
    assert not handle.is_active and handle.totals()["rows_in"] == 1000
    drawn = screen.getvalue()
    assert "rows in" in drawn and "rows/s" in drawn and "watermark" in drawn, drawn[:500]


def test_gen_draws_a_progress_bar_on_a_terminal_and_nothing_elsewhere(tmp_path):
    screen, out = Terminal(), io.StringIO()
    code = cli.main(
        ["gen", "ysb", "--events", "2000", "--files", "4", "--out", str(tmp_path / "a")], out=out, err=screen
    )
    assert code == 0 and "writing 2,000 events" in screen.getvalue()
    plain = io.StringIO()
    code = cli.main(
        ["gen", "ysb", "--events", "2000", "--files", "4", "--out", str(tmp_path / "b")], out=out, err=plain
    )
    assert code == 0 and plain.getvalue() == ""


def test_the_continuous_example_plans():
    """examples/ysb_continuous.sql (the README's continuous job) is an INSERT over an endless paced stream."""
    code, out, err = call("explain", str(Path(__file__).resolve().parents[1] / "examples" / "ysb_continuous.sql"))
    assert code == 0, err
    assert "Scan stream events" in out and "Output" in out
