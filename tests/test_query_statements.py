"""SHOW QUERIES, DESCRIBE QUERY and STOP QUERY (issue 24), from ctx.sql and from the shell in tmux.

A continuous INSERT INTO started in the shell runs in the background as a
named query, as ksqlDB's persistent queries do; the statements list,
describe and stop the Context's queries by name.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import stream_dsl as sd
from stream_dsl.errors import BindError
from stream_dsl.sql.parser import parse
from stream_dsl.sql.unparse import unparse

ROOT = Path(__file__).resolve().parents[1]
EVENTS = (
    "CREATE STREAM g (user_id STRING, page_id STRING, ad_id STRING, ad_type STRING, event_type STRING, "
    "event_time TIMESTAMP, ip_address STRING) WITH (connector = 'generator', kind = 'ysb', rate = '1000', "
    "realtime = 'true')"
)


def wait_for(condition, what: str, guard_s: float = 60.0):
    deadline = time.monotonic() + guard_s  # a hang guard only: nothing here is timed
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("text", ["SHOW QUERIES", "DESCRIBE QUERY q1", "STOP QUERY q1", "TERMINATE q2"])
def test_the_statements_parse_and_round_trip(text):
    (node,) = parse(text)
    again = parse(unparse(node))
    assert [type(n) for n in again] == [type(node)] and unparse(again[0]) == unparse(node)


def test_queries_are_named_listed_described_and_stopped_by_name(tmp_path):
    ctx = sd.Context(executor="inline")
    ctx.sql(EVENTS)
    ctx.sql(f"CREATE SINK out WITH (connector = 'files', path = '{tmp_path / 'out'}', format = 'csv')")
    first = ctx.sql("INSERT INTO out SELECT user_id FROM g WHERE event_type = 'view'")
    second = ctx.sql("SELECT ad_id FROM g").start(lambda b, f: None)
    try:
        assert (first.name, second.name) == ("q1", "q2")
        wait_for(lambda: first.batches >= 2 and second.batches >= 2, "two batches each")
        shown = ctx.sql("SHOW QUERIES")
        assert shown["name"].to_list() == ["q1", "q2"] and shown["status"].to_list() == ["running", "running"]
        assert shown["sink"].to_list()[0] == "out" and shown["rows_in"].to_list()[0] >= 200
        described = dict(ctx.sql("DESCRIBE QUERY q1").rows())
        assert described["status"] == "running" and described["id"] == first.id
        assert described["executor"] == "inline, 2 workers"
        assert ctx.sql("STOP QUERY q1") is None
        assert not first.is_active and first.status == "stopped"
        ctx.sql("TERMINATE q2")
        assert ctx.sql("SHOW QUERIES")["status"].to_list() == ["stopped", "stopped"]
    finally:
        first.stop()
        second.stop()
    with pytest.raises(BindError, match=r"line 1, col 12: no query named 'q3'; queries: q1, q2") as err:
        ctx.sql("STOP QUERY q3")
    assert "  STOP QUERY q3\n             ^" in str(err.value)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_shell_runs_an_insert_in_the_background_and_stops_it_by_name(tmp_path):
    """A real shell on a real terminal (tmux): the prompt comes back while the INSERT runs."""
    socket = f"sd-{uuid.uuid4().hex[:8]}"  # our own tmux server, killed by its socket, never by name
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STREAM_DSL_RC": str(tmp_path / "none"), "COLUMNS": "200"}
    command = f"{shlex.quote(sys.executable)} -m stream_dsl repl --executor inline --history {tmp_path / 'h'}"
    tmux = ["tmux", "-L", socket]
    subprocess.run(
        [*tmux, "new-session", "-d", "-x", "200", "-y", "50", "-s", "t", command], check=True, env=env, cwd=tmp_path
    )

    def screen() -> str:
        return subprocess.run([*tmux, "capture-pane", "-p", "-t", "t"], capture_output=True, text=True).stdout

    def type_line(text: str) -> None:  # a trailing space: tmux reads an argument ending in ';' as a separator
        subprocess.run([*tmux, "send-keys", "-t", "t", "-l", text + " "], check=True)
        subprocess.run([*tmux, "send-keys", "-t", "t", "Enter"], check=True)

    try:
        wait_for(lambda: "Ctrl-D to quit" in screen(), "the banner")
        type_line(EVENTS + ";")
        type_line(f"CREATE SINK out WITH (connector = 'files', path = '{out}', format = 'csv');")
        type_line("INSERT INTO out SELECT user_id FROM g;")
        wait_for(lambda: "running in the background as query q1" in screen(), "the background notice")
        type_line("SHOW QUERIES;")
        wait_for(lambda: "q1" in screen() and "running" in screen().split("SHOW QUERIES")[-1], "q1 running")
        wait_for(lambda: out.is_dir() and any(out.glob("part-*")), "output of the background query")
        type_line("STOP QUERY q1;")
        type_line("SHOW QUERIES;")
        wait_for(lambda: "stopped" in screen().split("STOP QUERY q1")[-1], "q1 stopped")
        type_line("\\q")
        wait_for(
            lambda: subprocess.run([*tmux, "has-session", "-t", "t"], capture_output=True).returncode != 0,
            "the shell to exit",
        )
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
