"""Benchmarks and traces: the commands run on tiny sizes and produce well-formed output.

No benchmark is a timed test: nothing here asserts how fast anything is.
The trace file is checked for shape (valid JSON, one complete event per
task, a worker never runs two tasks at once); the latency arithmetic and
the trace builder are checked on made-up numbers.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import sys

import polars as pl
import pytest

import stream_dsl as sd
from executor.multiproc.metrics import TaskMetrics
from executor.trace import (
    BOUNDARY_TID,
    DRIVER_PID,
    GROUPS_TID,
    SENDS_TID,
    SINK_TID,
    SinkWrite,
    chrome_trace,
    check_trace_path,
    read_trace,
    render_summary,
    summarize,
    task_rows,
    worker_pid,
)
from stream_dsl.bench import latency as L
from stream_dsl.bench import ysb as B
from stream_dsl.cli import main as cli
from stream_dsl.bench.experiments import growth_point
from stream_dsl.bench.memory import MemorySampler, read_status_kb
from stream_dsl.cli.bench import parse_count
from stream_dsl.errors import DSLError

EVENTS = """CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time
) WITH (connector = 'generator', kind = 'ysb', rate = '1000', count = '3000', realtime = 'false');
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING) WITH (connector = 'generator', kind = 'ysb_campaigns');
"""
QUERY = """SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id) WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '1' SECOND)"""

NUMBER = r"[\d,]+(?:\.\d+)?"


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def task(batch: int, stage: int, partition: int, worker: int, start: float, end: float, **kw) -> TaskMetrics:
    return TaskMetrics(
        batch=batch,
        stage=stage,
        partition=partition,
        worker=worker,
        sent_at=kw.pop("sent", start),
        assigned_at=start,
        slot_free_at=start,
        inputs_ready_at=0.0,
        inputs_arrived_at=start,
        started_at=start,
        finished_at=end,
        **kw,
    )


# ---------------------------------------------------------------- the trace, built from made-up tasks


def test_chrome_trace_has_one_complete_event_per_task_in_microseconds_from_the_first_moment():
    tasks = [
        task(0, 0, 0, 1, 100.0, 100.5, rows_in=10, rows_out=4),
        task(0, 1, 0, 0, 100.6, 100.7, rows_in=4, rows_out=2, serialize_s=0.01, transfer_bytes=64),
        task(0, 1, 1, 1, 100.6, 100.65, skipped=True),
    ]
    trace = chrome_trace(
        tasks, stages={0: "stage 0: Scan > ShuffleWrite", 1: "stage 1: Read > Aggregate"}, executor="drizzle", workers=2
    )
    json.loads(json.dumps(trace))  # JSON-ready
    assert trace["displayTimeUnit"] == "ms" and trace["otherData"]["t0_unix_s"] == 100.0
    complete = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len(complete) == 3
    first = next(e for e in complete if e["args"]["stage"] == 0)
    assert first == {
        "name": "stage 0",
        "cat": "task",
        "ph": "X",
        "ts": 0.0,
        "dur": 500000.0,
        "pid": worker_pid(1),
        "tid": 0,
        "args": first["args"],
    }
    assert {k: first["args"][k] for k in ("batch", "stage", "partition", "rows_in", "rows_out", "worker")} == {
        "batch": 0,
        "stage": 0,
        "partition": 0,
        "rows_in": 10,
        "rows_out": 4,
        "worker": 1,
    }
    reduce = next(e for e in complete if e["args"]["stage"] == 1 and e["args"]["partition"] == 0)
    assert reduce["ts"] == pytest.approx(600000.0) and reduce["args"]["serialize_ms"] == pytest.approx(10.0)
    assert reduce["args"]["transfer_bytes"] == 64
    assert next(e for e in complete if e["args"]["partition"] == 1)["cat"] == "skipped"
    names = {
        (e["pid"], e["tid"]): e["args"]["name"]
        for e in trace["traceEvents"]
        if e["ph"] == "M" and e["name"] == "thread_name"
    }
    assert names[(worker_pid(0), 1)] == "stage 1: Read > Aggregate" and names[(DRIVER_PID, SINK_TID)] == "sink"
    processes = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert processes == {DRIVER_PID: "driver", 1: "worker 0", 2: "worker 1"}


def test_driver_rows_show_groups_boundaries_sends_and_sink_writes():
    tasks = [
        task(0, 0, 0, 0, 10.0, 10.2),
        task(1, 0, 0, 0, 10.2, 10.4),
        task(2, 0, 0, 0, 10.6, 10.8),
        task(3, 0, 0, 0, 10.8, 11.0),
    ]
    sends = [(0, 0, 0, 1, 9.9), (0, 1, 0, 1, 9.91), (1, 0, 2, 3, 10.5), (1, 1, 2, 3, 10.51)]
    writes = [SinkWrite(1, 10.45, 10.46, 100)]
    trace = chrome_trace(tasks, sends=sends, sink_writes=writes, executor="drizzle", workers=2)
    driver = [e for e in trace["traceEvents"] if e["pid"] == DRIVER_PID and e["ph"] != "M"]
    groups = [e for e in driver if e["tid"] == GROUPS_TID]
    assert [g["name"] for g in groups] == ["group 0 (batches 0-1)", "group 1 (batches 2-3)"]
    assert groups[0]["ts"] == 0.0 and groups[0]["dur"] == pytest.approx(600000.0)  # until the next group's send
    assert groups[1]["dur"] == pytest.approx(500000.0)  # until the last task ends
    boundary = [e for e in driver if e["tid"] == BOUNDARY_TID]
    assert len(boundary) == 1 and boundary[0]["ts"] == pytest.approx(500000.0)  # last task before the send: 10.4
    assert boundary[0]["dur"] == pytest.approx(100000.0)
    sent = [e for e in driver if e["tid"] == SENDS_TID]
    assert len(sent) == 4 and all(e["ph"] == "i" for e in sent)
    assert sent[2]["args"] == {"assignment": 1, "worker": 0, "first_batch": 2, "last_batch": 3}
    sink = [e for e in driver if e["tid"] == SINK_TID]
    assert sink[0]["args"] == {"batch": 1, "rows": 100} and sink[0]["dur"] == pytest.approx(10000.0)
    assert [e["name"] for e in driver if e["tid"] == GROUPS_TID and "bsp" in e["name"]] == []
    waves = chrome_trace(tasks, sends=sends, executor="bsp", workers=2)["traceEvents"]
    assert any(e["name"].startswith("wave 0") for e in waves)


def test_summary_says_where_the_time_went():
    tasks = [task(0, 0, 0, 0, 0.0, 0.6), task(0, 1, 0, 1, 0.6, 0.8), task(0, 1, 1, 0, 0.6, 1.0)]
    summary = summarize(chrome_trace(tasks, stages={0: "stage 0: Scan", 1: "stage 1: Read"}, workers=2))
    assert summary["tasks"] == 3 and summary["span_ms"] == pytest.approx(1000.0)
    assert summary["workers"][0]["busy_fraction"] == pytest.approx(1.0)
    assert summary["workers"][1]["busy_ms"] == pytest.approx(200.0)
    assert summary["stages"][0]["busy_ms"] == pytest.approx(600.0) and summary["stages"][1]["tasks"] == 2
    lines = render_summary(summary)
    assert lines[0].startswith("3 tasks over 1,000.0 ms; worker 0 busy 100%, worker 1 busy 20%")
    assert lines[1].startswith("stage 0: Scan: 600.0 ms in 1 tasks (50% of task time")
    assert render_summary(summarize({"traceEvents": []})) == ["no tasks recorded"]


def test_a_trace_path_that_cannot_be_written_is_refused_before_the_query_starts(tmp_path):
    with pytest.raises(DSLError, match="does not exist"):
        check_trace_path(str(tmp_path / "missing" / "trace.json"))
    with pytest.raises(DSLError, match="is a directory"):
        check_trace_path(str(tmp_path))
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(EVENTS)
    with pytest.raises(DSLError, match="does not exist"):
        ctx.sql(QUERY).start(sink=lambda b, f: None, trace=str(tmp_path / "missing" / "t.json"))


# ---------------------------------------------------------------- q.start(trace=...) on real runs


def _tasks_on_each_worker_do_not_overlap(trace: dict) -> None:
    by_worker: dict[int, list[tuple[float, float]]] = {}
    for row in task_rows(trace):
        by_worker.setdefault(row["worker"], []).append((row["start_ms"], row["end_ms"]))
    for spans in by_worker.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end - 1e-3


@pytest.mark.parametrize("executor", ["inline", "drizzle", "bsp"])
def test_start_with_trace_writes_one_complete_event_per_task(tmp_path, executor):
    path = tmp_path / "trace.json"
    ctx = sd.Context(executor=executor, workers=2, group_size=2)
    ctx.sql(EVENTS)
    rows = []
    handle = ctx.sql(QUERY).start(sink=lambda b, f: rows.append(f.height), trace=str(path))
    handle.await_termination()
    trace = json.loads(path.read_text())
    assert trace["displayTimeUnit"] == "ms" and trace["otherData"]["executor"] == executor
    events = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] in ("task", "skipped")]
    for e in events:
        assert set(e) == {"name", "cat", "ph", "ts", "dur", "pid", "tid", "args"}
        assert e["ts"] >= 0 and e["dur"] >= 0 and e["tid"] == e["args"]["stage"]
        assert e["pid"] == worker_pid(e["args"]["worker"])
        assert {"batch", "stage", "partition", "rows_in", "rows_out"} <= set(e["args"])
    keys = [(e["args"]["batch"], e["args"]["stage"], e["args"]["partition"]) for e in events]
    assert len(keys) == len(set(keys))  # one event per task
    progress = handle.progress()
    if executor == "inline":
        source_stage = min(stage for _, stage, _ in keys)
        assert {b for b, s, _ in keys if s == source_stage} == {p["batch_id"] for p in progress}
    else:
        expected = sum(m["tasks"] for p in progress for m in p["stages"].values())
        last = max(p["batch_id"] for p in progress)  # drizzle may have run a group sent ahead past the end
        assert len([e for e in events if e["args"]["batch"] <= last]) == expected
        assert any(e["tid"] == SENDS_TID for e in trace["traceEvents"] if e["pid"] == DRIVER_PID)
    assert sum(e["args"]["rows_in"] for e in events if e["args"]["stage"] == min(s for _, s, _ in keys)) == 3000
    sink = [e for e in trace["traceEvents"] if e.get("tid") == SINK_TID and e["ph"] == "X"]
    assert sum(e["args"]["rows"] for e in sink) == sum(rows) > 0
    _tasks_on_each_worker_do_not_overlap(trace)


def test_trace_goes_through_a_named_sink_and_keeps_its_hooks(tmp_path):
    out_dir = tmp_path / "out"
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(EVENTS + f"CREATE SINK out WITH (connector = 'files', path = '{out_dir}', format = 'parquet');")
    ctx.sql(QUERY).start(sink="out", trace=str(tmp_path / "t.json")).await_termination()
    assert read_trace(str(tmp_path / "t.json"))["otherData"]["tasks"] > 0
    assert pl.read_parquet(str(out_dir / "*.parquet")).height == ctx.sql(QUERY).collect().height > 0


# ---------------------------------------------------------------- latency arithmetic


def test_window_latency_is_the_sink_write_minus_the_windows_end_in_the_generators_clock():
    start = B.generator_start_ms()
    stamp = lambda ms: dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=start + ms)  # noqa: E731
    frame = pl.DataFrame({"window_end": [stamp(1000), stamp(1000)]})
    last = pl.DataFrame({"window_end": [stamp(2000)]})  # ends after the input: counts from the input's end
    writes = [B.SinkCall(10, 500.0 + 1.120, frame), B.SinkCall(14, 500.0 + 1.530, last)]
    latencies = L.window_latencies_ms(writes, 500.0, start_ms=start, end_ms=1500)
    assert latencies == pytest.approx([120.0, 120.0, 30.0])


def test_the_input_ends_with_the_interval_of_its_last_event():
    assert L.input_end_ms(1000, 1000, 100) == 1000  # event 999 at 999 ms: batch [900, 1000)
    assert L.input_end_ms(1001, 1000, 100) == 1100
    assert L.input_end_ms(250, 1_000_000, 100) == 100
    assert L.input_end_ms(0, 1000, 100) == 0


def test_percentiles_by_nearest_rank():
    values = list(range(1, 101))
    assert [B.percentile(values, q) for q in (0.5, 0.95, 0.99, 1.0)] == [51, 95, 99, 100]
    assert B.percentile([7.0], 0.99) == 7.0


def test_the_source_opens_at_the_first_task_of_the_trace():
    trace = chrome_trace([task(1, 0, 0, 0, 50.5, 50.6), task(0, 0, 0, 0, 50.0, 50.4)], workers=1)
    assert L.source_opened_at(trace) == pytest.approx(50.0)
    assert L.source_opened_at({"traceEvents": []}) is None


def test_growth_point_is_the_first_rate_not_kept_up_with_or_with_doubled_p99():
    def point(rate, achieved, p99):
        return {"rate": rate, "achieved_events_per_s": achieved, "percentiles_ms": {"p99": p99}}

    assert growth_point([point(1, 1, 100), point(2, 2, 150)]) is None
    assert growth_point([point(2, 2, 150), point(1, 1, 100), point(4, 4, 250)]) == 4
    assert growth_point([point(1, 1, 100), point(8, 5, 120)]) == 8
    assert growth_point([]) is None


def test_event_counts_take_suffixes():
    assert parse_count("250k") == 250_000 and parse_count("1.5M") == 1_500_000 and parse_count("2_000") == 2000


# ---------------------------------------------------------------- bench ysb on tiny sizes


def _report_lines(out: str) -> list[str]:
    lines = out.splitlines()
    assert re.match(
        r"bench ysb: [\d,]+ events at [\d,]+ events/s of event time \(seed 1\), views per campaign per "
        r"\S+ tumbling window; ",
        lines[0],
    ), out
    assert re.match(
        r"  executor \w+, \d workers?, group size \w+, batch interval \S+, optimizer (on|off), "
        r"watermark delay \S+; worker start-up [\d.]+ s \(not counted\); ",
        lines[1],
    ), out
    assert re.match(rf"stream-dsl +[\d.]+ s +{NUMBER} events/s +[\d,]+ batch(es)? +latency ", lines[2]), out
    assert re.match(rf"polars +[\d.]+ s +{NUMBER} events/s +one batch", lines[3]), out
    assert re.match(r"ratio +[\d.]+ ", lines[4]), out
    assert re.match(r"result +OK \([\d,]+ rows equal\)$", lines[5]), out
    return lines


@pytest.mark.parametrize("fmt", ["json", "ndjson", "parquet"])
def test_bench_ysb_formats(fmt, tmp_path):
    code, out, err = call(
        "bench",
        "ysb",
        "--format",
        fmt,
        "--events",
        "3000",
        "--rate",
        "10000",
        "--window",
        "100ms",
        "--executor",
        "inline",
        "--workers",
        "1",
        "--duration",
        "0.5",
        "--data-dir",
        str(tmp_path),
    )
    assert code == 0, err
    lines = _report_lines(out)
    if fmt == "json":
        assert "JSON lines from the generator" in lines[0] and "pl.read_ndjson" in lines[3]
        assert re.search(rf"latency p50 {NUMBER} ms +p95 {NUMBER} ms +p99 {NUMBER} ms +max {NUMBER} ms$", lines[2])
        assert re.search(
            r"latency over [\d,]+ window rows \(\d+ windows closed by the watermark\) of a 0.5 s run "
            r"paced at 10,000 events/s, late rows 0",
            lines[1],
        )
    else:
        assert f"{fmt} files (3, one per micro-batch)" in lines[0] and "latency -" in lines[2]
        assert "no latency run (files are not paced)" in lines[1]
        assert f"over the same 3 {fmt} files" in lines[3]
    assert os.listdir(tmp_path) == []  # the temporary files are gone


def test_bench_ysb_ablation_trace_and_json(tmp_path):
    trace, results = tmp_path / "t.json", tmp_path / "r.json"
    code, out, err = call(
        "bench",
        "ysb",
        "--events",
        "200k",
        "--rate",
        "1M",
        "--window",
        "100ms",
        "--workers",
        "2",
        "--group-size",
        "2",
        "--duration",
        "0.2",
        "--ablation",
        "--trace",
        str(trace),
        "--json",
        str(results),
    )
    assert code == 0, err
    _report_lines(out)
    assert f"trace: {trace} (throughput run) and {tmp_path / 't.latency.json'} (latency run)" in out
    assert re.search(r"^  [\d,]+ tasks over [\d,.]+ ms; worker 0 busy \d+%, worker 1 busy \d+%", out, re.M)
    assert re.search(r"^  stage 0: Scan > .*: [\d,.]+ ms in [\d,]+ tasks", out, re.M)
    assert re.search(rf"^  optimizer on +[\d.]+ s +{NUMBER} events/s +shuffle [\d.,]+ [kM]B", out, re.M)
    assert re.search(rf"^  optimizer off +[\d.]+ s +{NUMBER} events/s +shuffle [\d.,]+ [kM]B", out, re.M)
    ratios = re.search(r"^  on / off +throughput ([\d.]+)x, shuffle bytes ([\d.]+)x", out, re.M)
    assert ratios and float(ratios.group(2)) < 1  # partial aggregation shuffles counts, not views
    for path in (trace, tmp_path / "t.latency.json"):
        assert json.loads(path.read_text())["otherData"]["tasks"] > 0
    data = json.loads(results.read_text())
    assert data["bench"]["config"] == {
        "executor": "drizzle",
        "workers": 2,
        "group_size": 2,
        "batch_interval_ms": 100,
        "optimize": True,
    }
    assert data["polars"]["equal"] is True and data["engine"]["events"] == 200_000
    assert data["ablation"]["equal"] is True and data["ablation"]["off"]["shuffle_bytes"] > 0
    assert len(data["latency"]["latencies_ms"]) == data["latency"]["rows"] > 0
    assert data["machine"]["cores"] >= 1


def test_bench_ysb_scaling_over_workers_and_rates():
    code, out, err = call(
        "bench",
        "ysb",
        "--events",
        "2000",
        "--rate",
        "10000",
        "--window",
        "100ms",
        "--executor",
        "inline",
        "--duration",
        "0.2",
        "--scaling",
        "--scaling-workers",
        "1,2",
        "--rates",
        "5k,10k",
    )
    assert code == 0, err
    assert re.search(rf"^  1 worker +[\d.]+ s +{NUMBER} events/s$", out, re.M)
    assert re.search(rf"^  2 workers +[\d.]+ s +{NUMBER} events/s$", out, re.M)
    offered = re.findall(rf"^  offered +([\d,]+)/s +achieved +{NUMBER}/s +latency p50", out, re.M)
    assert offered == ["5,000", "10,000"]
    assert re.search(r"^  latency (stays flat up to|starts to grow at) [\d,]+ events/s", out, re.M)


def test_bench_ysb_compares_the_latency_of_drizzle_bsp_and_no_optimizer():
    code, out, err = call(
        "bench",
        "ysb",
        "--events",
        "2000",
        "--rate",
        "10000",
        "--window",
        "100ms",
        "--duration",
        "0.2",
        "--group-size",
        "2",
        "--compare",
        "--no-polars",
    )
    assert code == 0, err
    assert "polars      skipped" in out
    for label in ("drizzle", "bsp", "drizzle, optimizer off"):
        assert re.search(
            rf"^  {re.escape(label)} +latency p50 {NUMBER} ms .* \([\d,]+ window rows, \d+ windows "
            rf"closed by the (watermark|end of input)\)$",
            out,
            re.M,
        ), out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--format", "parquet", "--compare"], "--compare paces the generator"),
        (["--rates", "1k"], "--rates goes with --scaling"),
        (["--watermark-delay", "soon"], "--watermark-delay"),
    ],
)
def test_bench_ysb_usage_errors(argv, message):
    code, _, err = call("bench", "ysb", "--events", "10", *argv)
    assert code == 2 and message in err


# ---------------------------------------------------------------- plots


@pytest.mark.skipif(not has_matplotlib(), reason="matplotlib is the optional bench extra")
def test_bench_ysb_plots_and_redraw_from_json(tmp_path):
    plots, results = tmp_path / "plots", tmp_path / "r.json"
    code, out, err = call(
        "bench",
        "ysb",
        "--events",
        "2000",
        "--rate",
        "10000",
        "--window",
        "100ms",
        "--executor",
        "inline",
        "--duration",
        "0.2",
        "--scaling",
        "--scaling-workers",
        "1",
        "--rates",
        "5k,10k",
        "--plots",
        str(plots),
        "--json",
        str(results),
    )
    assert code == 0, err
    assert sorted(os.listdir(plots)) == ["latency_cdf.png", "throughput_vs_rate.png"]
    data = json.loads(results.read_text())
    data["scheduling"] = {
        "iterations": 4,
        "rows_per_batch": 5,
        "workers": 2,
        "modes": {
            "bsp": {"ms_per_iteration": 3.0},
            "drizzle pre-scheduling only (group 1)": {"ms_per_iteration": 2.0},
            "drizzle group 10": {"ms_per_iteration": 1.0},
        },
    }
    results.write_text(json.dumps(data))
    again = tmp_path / "again"
    code, out, err = call("bench", "plots", "--from", str(results), "--out", str(again))
    assert code == 0, err
    assert sorted(os.listdir(again)) == ["latency_cdf.png", "scheduling.png", "throughput_vs_rate.png"]
    for name in os.listdir(again):
        assert (again / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plots_without_matplotlib_say_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = call("bench", "ysb", "--events", "10", "--plots", str(tmp_path))
    assert code == 1 and out == ""
    assert "plots need matplotlib" in err and "pip install 'stream-dsl[bench]'" in err and "Traceback" not in err


# ---------------------------------------------------------------- scheduling and memory


def test_bench_scheduling_prints_a_row_per_mode(tmp_path):
    code, out, err = call(
        "bench",
        "scheduling",
        "--iterations",
        "4",
        "--rows-per-batch",
        "5",
        "--group-sizes",
        "1,2",
        "--json",
        str(tmp_path / "s.json"),
    )
    assert code == 0, err
    names = ["bsp", "drizzle pre-scheduling only (group 1)", "drizzle group 2"]
    for name in names:
        assert re.search(rf"^{re.escape(name)} +[\d.]+ +[\d.]+ +\d+", out, re.M), out
    assert set(json.loads((tmp_path / "s.json").read_text())["modes"]) == set(names)


def test_bench_memory_runs_each_size_in_a_fresh_process():
    code, out, err = call("bench", "memory", "--events", "2k,4k", "--executor", "inline", "--workers", "1")
    assert code == 0, err
    rows = re.findall(r"^ +([\d,]+) +[\d.]+s +[\d,]+ +([\d,]+) MB +- +([\d,]+) MB +([+-][\d.]+%)$", out, re.M)
    assert [r[0] for r in rows] == ["2,000", "4,000"] and rows[0][3] == "+0.0%", out
    assert all(int(r[1].replace(",", "")) > 0 and r[1] == r[2] for r in rows)  # inline: the driver is all there is


def test_memory_sampler_sees_this_process():
    assert read_status_kb(os.getpid())["VmHWM"] > 0
    assert read_status_kb(-1) == {}
    with MemorySampler(interval_s=0.01) as sampler:
        pass
    assert sampler.hwm_kb[os.getpid()] > 0 and sampler.peak_total_rss_kb > 0
