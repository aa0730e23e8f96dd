"""Lifecycle log records (caplog) and the Prometheus endpoint (a real HTTP GET, parsed by prometheus_client).

The metrics must say what `QueryHandle.progress()` says; the log must
tell a query's start and end, its checkpoints, a lost worker and its
recovery, and bursts of dead letters, with the facts as JSON fields.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

import stream_dsl as sd
from stream_dsl.errors import DSLError
from stream_dsl.observe.log import JsonFormatter
from test_recovery import HANG_GUARD_S, finish, position, recovered, start, wait_until


def _events(folder, parts: int = 3, bad_lines: int = 0) -> None:
    os.makedirs(folder, exist_ok=True)
    for k in range(parts):
        rows = "".join(f'{{"k": "k{i % 3}", "n": {k * 10 + i}}}\n' for i in range(10))
        rows += "not json\n" * bad_lines
        (folder / f"p{k}.ndjson").write_text(rows)


def _scrape(url: str) -> dict[tuple[str, str], float]:
    """(sample name, query label) -> value, from a real GET of the endpoint."""
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, sample.labels.get("query", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels.get("le")
    }


def test_the_metrics_endpoint_says_what_progress_says(tmp_path):
    ctx = sd.Context(executor="inline", metrics_port=0)
    assert ctx.metrics_url is not None and ctx.metrics_url.startswith("http://127.0.0.1:")
    _events(tmp_path / "in", bad_lines=1)
    stream = ctx.read_files(str(tmp_path / "in"), schema={"k": str, "n": int}, max_files_per_batch=1)
    handle = stream.filter(sd.col("n") % 2 == 0).start(lambda b, f: None, name="evens")
    assert handle.await_termination(60)
    totals = handle.totals()
    metrics = _scrape(ctx.metrics_url)
    for key in ("batches", "rows_in", "rows_out", "dead_letters", "late_rows"):
        assert metrics[(f"stream_dsl_{key}_total", "evens")] == totals[key], key
    assert totals["rows_in"] == 30 and totals["rows_out"] == 15 and totals["dead_letters"] == 3
    assert metrics[("stream_dsl_batch_duration_seconds_count", "evens")] == totals["batches"]
    assert metrics[("stream_dsl_query_up", "evens")] == 0.0
    assert metrics[("stream_dsl_recoveries_total", "evens")] == 0.0


def test_set_metrics_port_starts_and_stops_the_endpoint():
    ctx = sd.Context(executor="inline")
    assert ctx.metrics_url is None
    ctx.sql("SET metrics_port = '0'")
    url = ctx.metrics_url
    assert (
        url is not None
        and "# TYPE stream_dsl_rows_in_total counter" in urllib.request.urlopen(url, timeout=30).read().decode()
    )
    assert _scrape(url) == {}  # no query yet: no series
    ctx.sql("SET metrics_port = 'off'")
    assert ctx.metrics_url is None
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)
    with pytest.raises(DSLError, match="metrics_port must be a port number"):
        ctx.sql("SET metrics_port = 'ninety'")


def test_a_query_logs_its_start_checkpoints_dead_letters_and_end(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stream_dsl")
    ctx = sd.Context(executor="inline", group_size=1, checkpoint_dir=str(tmp_path / "ckpt"))
    _events(tmp_path / "in", bad_lines=2)
    stream = ctx.read_files(str(tmp_path / "in"), schema={"k": str, "n": int}, max_files_per_batch=1)
    handle = stream.sink_files(str(tmp_path / "out"), format="csv", name="copy")
    assert handle.await_termination(60)
    records = [(r.name, r.levelname, r.getMessage(), getattr(r, "sd", {})) for r in caplog.records]
    messages = [m for _, _, m, _ in records]
    assert messages[0] == "query copy started (inline, 2 workers)", messages
    assert messages[-1] == f"query copy ended after {handle.totals()['batches']} batches", messages
    commits = [facts for name, _, _, facts in records if name == "stream_dsl.checkpoint"]
    assert len(commits) >= 3 and all(f["query"] == "copy" and isinstance(f["checkpoint"], int) for f in commits)
    dead = [(level, facts) for name, level, m, facts in records if "dead letters" in m]
    assert dead and dead[0][0] == "WARNING" and dead[0][1]["dead_letters"] >= 2  # one burst, not one per batch
    assert len(dead) == 1  # the next bursts come at most every 10 s


def test_the_json_formatter_writes_the_facts_as_fields(caplog):
    caplog.set_level(logging.INFO, logger="stream_dsl")
    from stream_dsl.observe.log import CHECKPOINT, event

    event(CHECKPOINT, logging.INFO, "checkpoint 3 committed", checkpoint=3, next_batch=30)
    entry = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert entry["message"] == "checkpoint 3 committed" and entry["logger"] == "stream_dsl.checkpoint"
    assert (entry["checkpoint"], entry["next_batch"], entry["level"]) == (3, 30, "INFO")
    assert entry["time"].endswith("Z")


def test_a_lost_worker_and_its_recovery_are_logged(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stream_dsl")
    handle = start(tmp_path, executor="drizzle", group_size=5)
    try:
        wait_until(lambda: position(handle) >= 15 or not handle.is_active, "batch 15")
        assert handle.is_active
        os.kill(handle.worker_pids()[0], signal.SIGKILL)
        wait_until(recovered(handle, 1), "the recovery")
        finish(handle)
    finally:
        handle.stop(HANG_GUARD_S)
    lost = [r for r in caplog.records if r.name == "stream_dsl.recovery" and r.levelname == "WARNING"]
    assert (
        len(lost) == 1 and "worker 0 exited" in lost[0].getMessage() and "replaying from batch" in lost[0].getMessage()
    )
    assert lost[0].sd["exit_code"] in (-signal.SIGKILL, 128 + signal.SIGKILL)
    back = [r.getMessage() for r in caplog.records if r.name == "stream_dsl.recovery" and r.levelname == "INFO"]
    assert any("workers restored in" in m for m in back) and any("recovered:" in m for m in back)
