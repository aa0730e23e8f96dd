"""Secrets stay secret and data cannot drive the terminal (issue 16, item 15).

A real redis-server on loopback that requires a password: the password in
the connector URL must not show in errors, warnings, `\\sinks`,
`\\describe`, DESCRIBE, EXPLAIN, progress or logs. Then text data holding
terminal escape sequences, shown by the REPL and the console sink.
"""

from __future__ import annotations

import io
import json
import logging

import polars as pl
import pytest
from rich.console import Console

import stream_dsl as sd
from stream_dsl.connectors.console import ConsoleSink
from stream_dsl.errors import DSLError, ParseError
from stream_dsl.ir.definitions import SinkDef
from stream_dsl.repl.session import Session
from redis_server import free_port, start_server, stop_server

HANG_GUARD_S = 120  # only to avoid hanging when something is broken
PASSWORD = "pa55-w0rd-xyz"


@pytest.fixture(scope="module")
def server():
    srv = start_server()
    srv.client().config_set("requirepass", PASSWORD)
    yield srv
    stop_server(srv)


def _url(port: int) -> str:
    return f"redis://default:{PASSWORD}@127.0.0.1:{port}/0"


def _session(ctx: sd.Context) -> tuple[Session, io.StringIO]:
    out = io.StringIO()
    return Session(ctx, Console(file=out, width=200, color_system=None), err_console=Console(file=out, width=200)), out


def test_the_password_is_in_no_output_of_a_query_that_runs(server, caplog):
    import redis

    client = redis.Redis.from_url(_url(server.port))
    for i in range(5):
        client.xadd("secret-in", {"data": json.dumps({"k": f"k{i}"})})
    ctx = sd.Context(executor="inline", workers=1)
    ddl = (
        f"CREATE STREAM ev (k STRING) WITH (connector = 'redis', url = '{_url(server.port)}', "
        f"stream = 'secret-in', bounded = 'true', dead_letter = 'none');\n"
        f"CREATE SINK out WITH (connector = 'redis', url = '{_url(server.port)}', stream = 'secret-out');\n"
    )
    session, out = _session(ctx)
    with caplog.at_level(logging.DEBUG):
        session.execute(ddl)
        for command in ("\\sinks", "\\describe out", "\\describe ev", "DESCRIBE ev;", "EXPLAIN SELECT k FROM ev;"):
            session.execute(command)
        handle = ctx.sql("INSERT INTO out SELECT k FROM ev")
        assert handle.await_termination(HANG_GUARD_S)
    shown = out.getvalue() + str(handle.progress()) + caplog.text + str(ctx.sql("EXPLAIN SELECT k FROM ev"))
    assert "***" in out.getvalue()
    assert PASSWORD not in shown
    assert len(client.xrange("secret-out")) == 5  # the connectors still use the real password


def test_the_password_is_in_no_error_or_warning(caplog):
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM ev (k STRING) WITH (connector = 'redis', url = '{_url(free_port())}', stream = 's', "
        f"retry_seconds = '0.2', bounded = 'true')"
    )
    with caplog.at_level(logging.WARNING), pytest.raises(DSLError) as caught:
        ctx.sql("SELECT k FROM ev").collect()
    assert "unreachable" in str(caught.value) and "default:***@" in str(caught.value)
    assert "retrying" in caplog.text
    assert PASSWORD not in str(caught.value) + caplog.text


def test_a_parse_error_quoting_the_line_masks_the_password():
    ctx = sd.Context(executor="inline", workers=1)
    with pytest.raises(ParseError) as caught:
        ctx.sql(f"CREATE STREAM ev (k STRING) WITH (connector = 'redis' url = '{_url(1)}')")
    assert PASSWORD not in str(caught.value) and "***" in str(caught.value)


EVIL = "ok\x1b]0;owned\x07\x1b[2J\x9b31m\rspoof"


def test_escape_sequences_in_data_are_shown_escaped_in_the_repl():
    for fmt in ("table", "csv", "json"):
        ctx = sd.Context(executor="inline", workers=1)
        ctx.from_polars(pl.DataFrame({"s": [EVIL, "plain"]}), name="t", static=True)
        session, out = _session(ctx)
        session.fmt = fmt
        session.execute("SELECT s FROM t;")
        text = out.getvalue()
        assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text and "\r" not in text, fmt
        assert "plain" in text


def test_escape_sequences_in_data_are_shown_escaped_by_the_console_sink(capsys):
    sink = ConsoleSink(SinkDef("c", (("connector", "console"),)))
    sink.write(0, pl.DataFrame({"s": [EVIL, "tab\there"], "n": [1, 2]}))
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and "\x07" not in printed and "\x9b" not in printed and "\r" not in printed
    assert "\\x1b]0;owned\\x07" in printed
