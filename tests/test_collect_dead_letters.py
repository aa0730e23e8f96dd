"""collect() tells of its bad records (executor/api.py, `_warn_of_dead_letters`).

A continuous query logs its dead letters in bursts; collect() used to drop
them without a word, so `stream-dsl run` printed a SELECT's rows and said
nothing of the records it left out. Now one WARNING on `stream_dsl.query`
says how many, where they went and the latest (source, position, reason),
on every executor; with no logging configured Python prints it to stderr,
which is what the CLI shows.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

import stream_dsl as sd

REPO = Path(__file__).resolve().parents[1]
GOOD = [("a", 5), ("b", 7), ("a", 1), ("b", 3), ("a", 2)]
EXECUTORS = ["inline", "drizzle", "bsp"]


def _files(folder: Path) -> None:
    """Two ndjson files: five good records, and two bad ones, the last at line 3 of p1.ndjson."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p0.ndjson").write_text('{"user": "a", "amount": 5}\nnot json\n{"user": "b", "amount": 7}\n')
    (folder / "p1.ndjson").write_text(
        '{"user": "a", "amount": 1}\n{"user": "b", "amount": 3}\n{"user": "c", "amount": "lots"}\n'
        '{"user": "a", "amount": 2}\n'
    )


def _stream(ctx: sd.Context, folder: Path, dead_letter: str | None = None) -> None:
    option = "" if dead_letter is None else f", dead_letter = '{dead_letter}'"
    ctx.sql(
        f"CREATE STREAM pay (user STRING, amount BIGINT) WITH (connector = 'files', path = '{folder}', "
        f"format = 'ndjson', max_files_per_batch = '1'{option})"
    )


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "stream_dsl.query" and "dead letters" in r.getMessage()]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_collect_warns_once_of_its_dead_letters_naming_the_latest(tmp_path, caplog, executor):
    caplog.set_level(logging.INFO, logger="stream_dsl")
    _files(tmp_path / "in")
    ctx = sd.Context(executor=executor, workers=2)
    _stream(ctx, tmp_path / "in")
    rows = ctx.sql("SELECT user, amount FROM pay").collect()
    assert sorted(rows.rows()) == sorted(GOOD)  # the bad records are left out, the query went on
    [record] = _warnings(caplog)
    assert record.levelname == "WARNING"
    facts = record.sd  # type: ignore[attr-defined]
    assert facts["dead_letters"] == 2 and facts["source"] == "pay"
    assert facts["position"] == f"{tmp_path / 'in' / 'p1.ndjson'}:3"
    assert "amount" in facts["reason"] and "lots" in facts["reason"]
    assert record.getMessage() == (
        "2 records went to dead letters (not kept: a stream's dead_letter option keeps them); "
        f"the latest: pay at {facts['position']}: {facts['reason']}"
    )


@pytest.mark.parametrize("executor", EXECUTORS)
def test_collect_says_where_the_dead_letter_option_put_them(tmp_path, caplog, executor):
    caplog.set_level(logging.WARNING, logger="stream_dsl")
    _files(tmp_path / "in")
    kept = tmp_path / "bad" / "pay.ndjson"
    ctx = sd.Context(executor=executor, workers=2)
    _stream(ctx, tmp_path / "in", dead_letter=str(kept))
    assert ctx.sql("SELECT user, amount FROM pay").collect().height == len(GOOD)
    [record] = _warnings(caplog)
    assert record.getMessage().startswith(f"2 records went to dead letters (written to {kept}); the latest: pay at ")
    written = pl.read_ndjson(kept)
    assert sorted(written["raw"].to_list()) == ["not json", '{"user": "c", "amount": "lots"}']


def test_clean_input_adds_no_warning(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stream_dsl")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "p0.ndjson").write_text('{"user": "a", "amount": 5}\n')
    ctx = sd.Context(executor="inline")
    _stream(ctx, tmp_path / "in")
    assert ctx.sql("SELECT user, amount FROM pay").collect().rows() == [("a", 5)]
    assert _warnings(caplog) == []


def test_stream_dsl_run_prints_the_rows_and_says_what_it_left_out(tmp_path):
    _files(tmp_path / "in")
    script = tmp_path / "q.sql"
    script.write_text(
        f"CREATE STREAM pay (user STRING, amount BIGINT) WITH (connector = 'files', path = '{tmp_path / 'in'}', "
        "format = 'ndjson');\nSELECT user, SUM(amount) AS total FROM pay GROUP BY user;\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-m", "stream_dsl.cli.main", "run", str(script), "--format", "csv"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert sorted(run.stdout.split()) == sorted(["user,total", "a,8", "b,10"])
    assert run.stderr.strip() == (
        "2 records went to dead letters (not kept: a stream's dead_letter option keeps them); "
        f"the latest: pay at {tmp_path / 'in' / 'p1.ndjson'}:3: column 'amount': expected BIGINT, got string \"lots\""
    )
