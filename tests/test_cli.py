"""The command line: run, explain, gen ysb, --version, --help, and exit codes 0/1/2."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from stream_dsl.cli import main as cli
from stream_dsl.connectors import generator

ROOT = Path(__file__).resolve().parents[1]

EVENTS_DDL = """CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'generator', kind = 'ysb', rate = '1000', count = '5000', realtime = 'false');
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'generator', kind = 'ysb_campaigns');
"""

YSB_QUERY = """SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '1' SECOND)
EMIT ON WINDOW CLOSE;
"""


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def python_m(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "stream_dsl", *argv], cwd=cwd, env=env, capture_output=True, text=True)


def script(tmp_path: Path, text: str, name: str = "q.sql") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def expected_views(count: int = 5000, rate: int = 1000) -> pl.DataFrame:
    events = generator.ysb_events(count, rate=rate).filter(pl.col("event_type") == "view")
    joined = events.join(generator.ysb_campaigns(), on="ad_id")
    return joined.group_by("campaign_id", pl.col("event_time").dt.truncate("1s").alias("window_start")).agg(
        pl.len().alias("views")
    )


# --------------------------------------------------------------------- usage


def test_version():
    result = python_m("--version")
    assert result.returncode == 0
    assert result.stdout.strip().startswith("stream-dsl ") and result.stdout.strip() != "stream-dsl unknown"


def test_no_subcommand_prints_help():
    code, out, _ = call()
    assert code == 0 and "usage: stream-dsl" in out and "run" in out and "gen" in out


@pytest.mark.parametrize(
    "argv", [["--help"], ["run", "--help"], ["explain", "--help"], ["gen", "--help"], ["gen", "ysb", "--help"]]
)
def test_help_for_each_command(argv):
    result = python_m(*argv)
    assert result.returncode == 0 and result.stdout.startswith("usage: stream-dsl")


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate"],
        ["run"],
        ["run", "q.sql", "--workers", "0"],
        ["run", "q.sql", "--executor", "spark"],
        ["run", "q.sql", "--batch-interval", "soon"],
        ["run", "q.sql", "--group-size", "big"],
        ["gen", "ysb", "--out", "x"],
        ["gen", "ysb", "--events", "-3", "--out", "x"],
        ["gen", "tpch", "--events", "3", "--out", "x"],
    ],
)
def test_bad_usage_exits_2(argv):
    result = python_m(*argv)
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


def test_bad_start_timestamp_is_a_usage_error(tmp_path):
    code, _, err = call("gen", "ysb", "--events", "1", "--out", str(tmp_path), "--start", "someday")
    assert code == 2 and "--start" in err


# ----------------------------------------------------------------------- run


def table_rows(text: str) -> set[tuple[str, ...]]:
    """The data rows of a printed polars table, cells stripped."""
    rows = [line.strip("│").split("┆") for line in text.splitlines() if line.startswith("│") and "┆" in line]
    return {tuple(cell.strip() for cell in row) for row in rows[3:]}  # skip names, ---, dtypes


def test_run_prints_a_bounded_select(tmp_path):
    path = script(tmp_path, EVENTS_DDL + YSB_QUERY)
    code, out, err = call("run", path, "--executor", "inline", "--batch-interval", "250ms", "--max-rows", "-1")
    assert code == 0, err
    want = expected_views()
    assert out.startswith(f"shape: ({want.height}, 4)")
    printed = {(c, s, v) for c, s, _, v in table_rows(out)}
    assert printed == {(c, str(s), str(v)) for c, s, v in want.select("campaign_id", "window_start", "views").rows()}


def test_run_limits_printed_rows(tmp_path):
    code, out, err = call("run", script(tmp_path, EVENTS_DDL + YSB_QUERY), "--executor", "inline", "--max-rows", "4")
    assert code == 0, err
    assert len(table_rows(out)) == 5  # 4 rows and the '…' line


def test_run_insert_waits_and_prints_a_summary(tmp_path):
    out_dir = tmp_path / "out"
    text = EVENTS_DDL + (
        f"CREATE SINK out WITH (connector = 'files', path = '{out_dir}', format = 'parquet');\n"
        f"INSERT INTO out {YSB_QUERY}"
    )
    code, out, err = call("run", script(tmp_path, text), "--executor", "inline", "--batch-interval", "1s")
    assert code == 0, err
    assert out.startswith("INSERT INTO out: 5 batches, 5000 rows in, ")
    written = pl.read_parquet(out_dir / "*.parquet")
    want = expected_views()
    assert written.height == want.height
    assert (
        written.select("campaign_id", "window_start", "views")
        .sort(pl.all())
        .equals(want.select("campaign_id", "window_start", "views").sort(pl.all()))
    )


def test_run_with_the_default_executor_via_python_m(tmp_path):
    path = script(tmp_path, EVENTS_DDL + "SELECT event_type, COUNT(*) AS n FROM events GROUP BY event_type;\n")
    result = python_m("run", path)
    assert result.returncode == 0, result.stderr
    counts = generator.ysb_events(5000, rate=1000)["event_type"].value_counts()
    assert "shape: (3, 2)" in result.stdout
    for event_type, n in counts.rows():
        assert event_type in result.stdout and str(n) in result.stdout


def test_run_prints_show_and_describe(tmp_path):
    code, out, err = call("run", script(tmp_path, EVENTS_DDL + "SHOW STREAMS;\nDESCRIBE campaigns;\n"))
    assert code == 0, err
    assert "events" in out and "campaign_id" in out


def test_run_error_points_at_the_line_in_the_file(tmp_path):
    path = script(tmp_path, EVENTS_DDL + "\nSELECT campaign_id, prce\n  FROM events JOIN campaigns USING (ad_id);\n")
    result = python_m("run", path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: line 9, col 21: ") and "prce" in lines[0]
    assert lines[1].strip() == "SELECT campaign_id, prce"
    assert lines[2].index("^") == lines[1].index("prce")


def test_run_parse_error_exits_1_with_a_caret(tmp_path):
    code, out, err = call("run", script(tmp_path, "SELECT 1;\nSELEC x FROM y;\n"))
    assert code == 1 and out == ""
    assert err.startswith("error: line 2, col 1: ") and "^" in err


def test_run_runs_nothing_when_the_script_does_not_parse(tmp_path):
    out_dir = tmp_path / "out"
    text = EVENTS_DDL + (
        f"CREATE SINK out WITH (connector = 'files', path = '{out_dir}');\n"
        f"INSERT INTO out SELECT ad_id FROM events;\nSELECT FROM;\n"
    )
    code, _, err = call("run", script(tmp_path, text))
    assert code == 1 and "line 10" in err
    assert not out_dir.exists()


def test_run_missing_file_exits_1(tmp_path):
    code, _, err = call("run", str(tmp_path / "nope.sql"))
    assert code == 1 and err == f"error: no such file: {tmp_path / 'nope.sql'}\n"


def test_run_connector_error_exits_1(tmp_path):
    text = "CREATE STREAM s (a BIGINT) WITH (connector = 'files', path = 'missing/dir');\nSELECT a FROM s;\n"
    result = python_m("run", script(tmp_path, text), "--executor", "inline", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "path 'missing/dir' does not exist" in result.stderr


def test_run_unbounded_select_is_refused_with_a_hint(tmp_path):
    text = "CREATE STREAM s (ad_id STRING) WITH (connector = 'generator', kind = 'ysb');\nSELECT ad_id FROM s;\n"
    code, _, err = call("run", script(tmp_path, text), "--executor", "inline")
    assert code == 1 and "unbounded" in err


def test_split_script_keeps_positions():
    text = "CREATE SINK a WITH (connector = 'console');  SELECT 1\n  AS x;\n"
    first, second = cli.split_script(text)
    assert first.text == "CREATE SINK a WITH (connector = 'console')"
    assert second.text == " " * 45 + "SELECT 1\n  AS x"


# ------------------------------------------------------------------- explain


def test_explain_prints_the_plan_of_the_last_query(tmp_path):
    path = script(tmp_path, EVENTS_DDL + "SELECT ad_id FROM events;\n" + YSB_QUERY)
    code, out, err = call("explain", path)
    assert code == 0, err
    assert "Aggregate" in out and "TUMBLE(event_time, 1s)" in out and "campaigns" in out


def test_explain_of_an_insert_does_not_run_it(tmp_path):
    out_dir = tmp_path / "out"
    text = EVENTS_DDL + (
        f"CREATE SINK out WITH (connector = 'files', path = '{out_dir}');\nINSERT INTO out {YSB_QUERY}"
    )
    code, out, err = call("explain", script(tmp_path, text), "--no-optimize")
    assert code == 0, err
    assert "Aggregate" in out
    assert not out_dir.exists()


def test_explain_without_a_query_exits_1(tmp_path):
    code, _, err = call("explain", script(tmp_path, EVENTS_DDL))
    assert code == 1 and "no query to explain" in err


# ----------------------------------------------------------------------- gen


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "parquet"])
def test_gen_ysb_writes_the_generator_events_and_campaigns(tmp_path, fmt):
    code, out, err = call(
        "gen", "ysb", "--events", "1001", "--out", str(tmp_path), "--files", "3", "--format", fmt, "--seed", "5"
    )
    assert code == 0, err
    names = sorted(os.listdir(tmp_path / "events"))
    assert names == [f"part-0000{k}.{fmt}" for k in range(3)]
    assert "CREATE STREAM events" in out
    from stream_dsl.connectors.files import read_file, FileOptions
    from stream_dsl.connectors.decode import CsvOptions

    options = FileOptions(str(tmp_path), fmt, False, None, CsvOptions())
    frames = [
        read_file(str(tmp_path / "events" / n), options, generator.YSB_SCHEMA, generator.YSB_SCHEMA, "e") for n in names
    ]
    assert all(not f.dead_letters for f in frames)
    assert pl.concat([f.frame for f in frames]).equals(generator.ysb_events(1001, seed=5))
    assert pl.read_csv(tmp_path / "campaigns.csv").equals(generator.ysb_campaigns(5))


def test_gen_then_run_over_the_files_matches_the_generator(tmp_path):
    code, out, err = call("gen", "ysb", "--events", "5000", "--rate", "1000", "--out", str(tmp_path), "--files", "2")
    assert code == 0, err
    ddl = out.split("-- to query them:\n", 1)[1]
    query = "SELECT event_type, COUNT(*) AS n FROM events WHERE event_type = 'view' GROUP BY event_type;\n"
    code, out, err = call("run", script(tmp_path, ddl + query), "--executor", "inline")
    assert code == 0, err
    assert "shape: (1, 2)" in out and f"│ view       ┆ {expected_views()['views'].sum()} │" in out


def test_gen_with_fewer_files_replaces_earlier_parts(tmp_path):
    assert call("gen", "ysb", "--events", "10", "--out", str(tmp_path), "--files", "4")[0] == 0
    assert call("gen", "ysb", "--events", "10", "--out", str(tmp_path), "--files", "2")[0] == 0
    assert sorted(os.listdir(tmp_path / "events")) == ["part-00000.ndjson", "part-00001.ndjson"]


# ------------------------------------------------------------------ examples


def test_the_ysb_example_runs_and_prints_one_row_per_campaign():
    result = python_m("run", "examples/ysb.sql", "--executor", "inline")
    assert result.returncode == 0, result.stderr
    assert "shape: (100, 4)" in result.stdout
    assert result.stdout.count("2026-01-01 00:00:10") == 100


def test_the_files_example_runs_over_generated_data(tmp_path):
    assert call("gen", "ysb", "--events", "20000", "--files", "2", "--out", str(tmp_path / "data" / "ysb"))[0] == 0
    result = python_m("run", str(ROOT / "examples" / "ysb_files.sql"), "--executor", "inline", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "shape: (100, 4)" in result.stdout


# ---------------------------------------------------------------------- repl


def piped(*argv: str, text: str) -> tuple[int, str, str]:
    """`stream-dsl ARGV` with `text` as its (non-terminal) standard input."""
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err, stdin=io.StringIO(text))
    return code, out.getvalue(), err.getvalue()


def test_repl_with_piped_input_runs_the_statements_without_a_prompt():
    code, out, err = piped(
        "repl",
        "--executor",
        "inline",
        "--format",
        "csv",
        text=EVENTS_DDL + "SELECT event_type, COUNT(*) AS n FROM events WHERE event_type = 'view' "
        "GROUP BY event_type;\n",
    )
    assert code == 0, err
    assert out == f"event_type,n\nview,{expected_views()['views'].sum()}\n"
    assert "stream-dsl>" not in out + err and "created stream events" in err


def test_no_command_with_piped_input_runs_the_statements():
    code, out, err = piped(text=EVENTS_DDL + "\\format json\nSELECT COUNT(*) AS n FROM events;\n")
    assert code == 0, err
    assert out == '{"n":5000}\n'


def test_piped_input_with_an_error_goes_on_and_exits_1():
    code, out, err = piped(
        "repl", "--executor", "inline", "--format", "csv", text="SELECT 1 AS x FROM nowhere;\nSHOW SINKS;\n"
    )
    assert code == 1
    assert err.startswith("error: line 1, col 20: unknown stream or table 'nowhere'") and "Traceback" not in err
    assert out == "name,kind\n"  # the statement after the error ran


def test_piped_input_with_bail_stops_at_the_first_error():
    code, out, err = piped("repl", "--bail", text="SELEC 1;\nSHOW SINKS;\n")
    assert code == 1 and out == "" and err.startswith("error: line 1, col 1: ")


def test_piped_input_prints_tables_and_timing():
    code, out, err = piped("repl", "--executor", "inline", "--timing", text=EVENTS_DDL + "DESCRIBE campaigns;\n")
    assert code == 0, err
    assert "│ campaign_id │ STRING │" in out and "2 rows" in out and "Time: " in err


def test_repl_via_python_m_reads_a_pipe():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "stream_dsl"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        input=EVENTS_DDL + "\\set executor inline\n\\format csv\n"
        "SELECT COUNT(*) AS n FROM campaigns;\n\\q\nSELECT 1;\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "n\n1000\n"


def test_no_command_and_nothing_to_read_prints_help():
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [sys.executable, "-m", "stream_dsl"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0 and result.stdout.startswith("usage: stream-dsl") and "repl" in result.stdout


def test_input_kind():
    assert cli.input_kind(io.StringIO("SELECT 1;")) == "data"
    with open(os.devnull) as devnull:
        assert cli.input_kind(devnull) == "none"
    read, write = os.pipe()
    with os.fdopen(read) as pipe, os.fdopen(write, "w"):
        assert cli.input_kind(pipe) == "data"


@pytest.mark.parametrize("argv", [["repl", "--help"], ["bench", "--help"], ["bench", "ysb", "--help"]])
def test_help_for_repl_and_bench(argv):
    result = python_m(*argv)
    assert result.returncode == 0 and result.stdout.startswith("usage: stream-dsl")


@pytest.mark.parametrize(
    "argv",
    [
        ["repl", "--format", "xml"],
        ["repl", "--workers", "0"],
        ["bench"],
        ["bench", "tpch"],
        ["bench", "ysb", "--events", "0"],
        ["bench", "ysb", "--events", "many"],
        ["bench", "ysb", "--executor", "spark"],
    ],
)
def test_bad_usage_of_repl_and_bench_exits_2(argv):
    result = python_m(*argv)
    assert result.returncode == 2, result.stderr
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


def test_bench_bad_window_is_a_usage_error():
    code, _, err = call("bench", "ysb", "--events", "10", "--window", "soon")
    assert code == 2 and "--window" in err


# --------------------------------------------------------------------- bench


def test_bench_ysb_prints_both_throughputs_the_ratio_and_ok():
    code, out, err = call("bench", "ysb", "--events", "20000", "--executor", "inline", "--workers", "1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("bench ysb: 20,000 events") and "10s tumbling window" in lines[0]
    assert "executor inline, 1 worker," in lines[1]
    engine = re.match(
        r"stream-dsl +([\d.]+) s +([\d,]+) events/s +1 batch +latency p50 [\d.,]+ ms +p95 "
        r"[\d.,]+ ms +p99 [\d.,]+ ms +max [\d.,]+ ms$",
        lines[2],
    )
    polars = re.match(r"polars +([\d.]+) s +([\d,]+) events/s +one batch", lines[3])
    ratio = re.match(r"ratio +([\d.]+) ", lines[4])
    assert engine and polars and ratio, out
    rates = [int(m.group(2).replace(",", "")) for m in (engine, polars)]
    assert all(r > 0 for r in rates)
    assert float(ratio.group(1)) == pytest.approx(rates[0] / rates[1], rel=0.01, abs=0.002)
    assert lines[5] == "result      OK (100 rows equal)"


def test_bench_ysb_reports_a_mismatch_and_exits_1(monkeypatch):
    from stream_dsl.bench import ysb as bench_ysb

    real = bench_ysb.polars_ysb
    monkeypatch.setattr(bench_ysb, "polars_ysb", lambda *a: real(*a).head(90))
    code, out, _ = call("bench", "ysb", "--events", "5000", "--rate", "1000", "--executor", "inline", "--window", "1s")
    assert code == 1
    found = re.fullmatch(
        r"result      MISMATCH: stream-dsl has (\d+) rows, polars 90; (\d+) rows only in "
        r"stream-dsl, 0 only in polars",
        out.splitlines()[-1],
    )
    assert found and int(found.group(1)) - 90 == int(found.group(2)) > 0


# --------------------------------------------------------------------- checkpoints


def test_checkpoints_lists_and_verifies_and_names_the_restart_point(tmp_path):
    import json

    ckpt, out_dir = tmp_path / "ckpt", tmp_path / "out"
    text = (
        EVENTS_DDL + "SET group_size = '10';\nSET workers = '1';\n"
        f"SET checkpoint_dir = '{ckpt}';\n"
        f"CREATE SINK out WITH (connector = 'files', path = '{out_dir}', format = 'parquet');\n"
        "INSERT INTO out " + YSB_QUERY
    )
    code, _, err = call("run", script(tmp_path, text))
    assert code == 0, err
    code, out, _ = call("checkpoints", str(ckpt))
    assert code == 0 and "not in use" in out
    ids = [int(m) for m in re.findall(r"ckpt-(\d{8})\s+ok", out)]
    assert ids and ids == sorted(ids, reverse=True) and "watermark end of input" in out  # the last one: the end
    assert f"a restart resumes from ckpt-{ids[0]:08d} (batch 50)" in out  # 5000 events, 100 per batch
    newest = next((ckpt / "checkpoints").glob(f"ckpt-{ids[0]:08d}"))
    (newest / "manifest.json").write_text("{")
    code, out, _ = call("checkpoints", str(ckpt), "--json")
    listed = json.loads(out)["checkpoints"]
    assert code == 0 and listed[0]["state"] == "damaged" and "not valid JSON" in listed[0]["reason"]
    assert listed[1]["state"] == "ok" and listed[1]["id"] == ids[1]
    assert call("checkpoints", str(tmp_path / "nothing"))[0] == 1


def test_run_refuses_a_checkpoint_dir_with_no_usable_checkpoint_until_fresh_is_asked_for(tmp_path):
    ckpt, out_dir = tmp_path / "ckpt", tmp_path / "out"
    text = (
        EVENTS_DDL + "SET group_size = '10';\nSET workers = '1';\nSET executor = 'inline';\n"
        f"SET checkpoint_dir = '{ckpt}';\n"
        f"CREATE SINK out WITH (connector = 'files', path = '{out_dir}', format = 'parquet');\n"
        "INSERT INTO out " + YSB_QUERY
    )
    path = script(tmp_path, text)
    assert call("run", path)[0] == 0
    for manifest in (ckpt / "checkpoints").glob("*/manifest.json"):
        manifest.unlink()
    code, _, err = call("run", path)
    assert code == 1 and f"checkpoint_dir '{ckpt}' held checkpoints, but none of them can be used" in err, err
    assert "--fresh" in err
    code, _, err = call("run", path, "--fresh")
    assert code == 0, err
    assert len(list((ckpt / "archive").iterdir())) == 1 and call("checkpoints", str(ckpt))[0] == 0
    assert files_committed_twice(out_dir)  # the fresh run wrote every window again, after the first run's


def files_committed_twice(out_dir: Path) -> bool:
    from stream_dsl.connectors import files

    views = files.read_committed(str(out_dir))
    return views.height == 2 * expected_views().height
