"""Worker scaling and the side-by-side benchmark (issue 22).

- The YSB query of `bench ysb` reads its stream in one part per worker
  (`splits = 'workers'`) and must give plain polars' result for 1 and 2
  workers on every executor, over the generator and over ndjson files.
- `worker_threads` (`--worker-threads`) reaches the worker processes as
  POLARS_MAX_THREADS, and a Context's warm workers are kept per thread count.
- `bench compare` runs end to end on tiny data and writes its table and plot
  (no timing is asserted: the figures are whatever the machine gives).
"""

from __future__ import annotations

import io
import json
import re

import pytest

import stream_dsl as sd
import transport_probe as probe
from executor.multiproc import transports
from executor.multiproc.runtime import MultiprocessTransport
from stream_dsl.bench import ysb as B
from stream_dsl.bench.experiments import worker_scaling
from stream_dsl.cli import main as cli
from stream_dsl.config import RunConfig
from stream_dsl.errors import DSLError


def call(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def small_ysb(fmt: str, **context: object) -> B.YsbBench:
    """Enough events for several windows and batches: 20k at 100k/s, 100 ms windows, 50 ms batches."""
    return B.YsbBench(
        events=20_000,
        rate=100_000,
        window_ms=100,
        format=fmt,
        duration_s=0,
        files=8 if fmt == "ndjson" else None,
        context=tuple({"batch_interval": "50ms", "group_size": 3, **context}.items()),
    )


@pytest.mark.parametrize("fmt", ["columnar", "ndjson"])
@pytest.mark.parametrize(
    ("executor", "workers", "optimize"),
    [
        ("inline", 1, True),
        ("inline", 2, True),
        ("drizzle", 1, True),
        ("drizzle", 2, True),
        ("drizzle", 2, False),
        ("bsp", 1, True),
        ("bsp", 2, True),
    ],
)
def test_ysb_read_in_one_part_per_worker_equals_plain_polars(fmt, executor, workers, optimize):
    bench = small_ysb(fmt, executor=executor, workers=workers, optimize=optimize)
    with B.prepared_data(bench) as events_dir:
        ddl, _ = B.ysb_statements(bench, events_dir=events_dir)
        assert "splits = 'workers'" in ddl
        engine = B.run_engine(bench, events_dir=events_dir)
        reference = B.run_polars(bench, events_dir)
    assert reference.result.height > 0
    assert B.compare_results(engine.result, reference.result) is None


def test_worker_threads_reach_the_worker_process_as_polars_max_threads():
    factory = transports.configured_factory("pipes", RunConfig(worker_threads=1))
    transport = factory(1)
    assert isinstance(transport, MultiprocessTransport) and transport.polars_threads == 1
    try:
        transport.start_worker(0, probe.report_threads)
        message = None
        while message is None:
            message = transport.receive(5.0)
        assert message[:2] == ("threads", 1)  # POLARS_MAX_THREADS is "1" there unless 1 is polars' default
    finally:
        transport.shutdown()


def test_a_context_keeps_its_warm_workers_per_thread_count():
    query = "SELECT ad_id, COUNT(*) AS n FROM events GROUP BY ad_id"
    ddl = (
        "CREATE STREAM events (ad_id STRING, event_time TIMESTAMP) WITH (connector = 'generator', kind = 'ysb', "
        "rate = '1000', count = '500', realtime = 'false')"
    )
    with sd.Context(workers=1, executor="drizzle", worker_threads=1) as ctx:
        ctx.sql(ddl)
        first = ctx.sql(query).collect().sort("ad_id")
        assert ctx.sql(query).collect().sort("ad_id").equals(first)
        assert ctx._worker_pool().reused == 1


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "1"])
def test_worker_threads_must_be_a_positive_integer(threads):
    with pytest.raises(DSLError, match="worker_threads must be a positive integer"):
        sd.Context(worker_threads=threads)


def test_worker_scaling_prints_the_ratio_of_two_workers_to_one_per_thread_count():
    out = io.StringIO()
    bench = small_ysb("columnar", executor="inline")
    points, ratios = worker_scaling(bench, out, workers=(1, 2), threads=(None, 1), repeat=2)
    text = out.getvalue()
    assert "auto polars threads (cores // workers) per worker, median of 2 rounds" in text
    assert "1 polars thread per worker" in text
    assert len(re.findall(r"^  2 / 1 workers  throughput [\d.]+x \(rounds [\d.]+x to [\d.]+x\)$", text, re.M)) == 2
    assert [(p["workers"], p["worker_threads"]) for p in points] == [(1, None), (2, None), (1, 1), (2, 1)]
    assert [len(r["rounds"]) for r in ratios] == [2, 2] and all(r["ratio"] > 0 for r in ratios)


def test_bench_ysb_takes_worker_threads():
    code, out, err = call(
        "bench", "ysb", "--events", "2000", "--rate", "10k", "--window", "100ms", "--executor", "inline",
        "--duration", "0", "--no-polars", "--scaling", "--worker-threads", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "1 polars thread per worker" in out and "auto polars threads" not in out
    assert re.search(r"^  2 / 1 workers  throughput [\d.]+x$", out, re.M)


def test_bench_compare_runs_end_to_end_and_writes_its_table_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    table, plot, results = tmp_path / "compare.md", tmp_path / "docs" / "compare.png", tmp_path / "compare.json"
    code, out, err = call(
        "bench", "compare", "--events", "2000", "--rate", "10k", "--small-batches", "4", "--small-rows", "10",
        "--small-group", "2", "--repeat", "2", "--latency-duration", "0.3", "--latency-batch", "50ms",
        "--latency-window", "100ms", "--workers", "1", "--executor", "inline",
        "--table", str(table), "--plot", str(plot), "--json", str(results),
    )  # fmt: skip
    assert code == 0, err + out
    assert "MISMATCH" not in out
    markdown = table.read_text()
    assert "| measurement | stream-dsl | plain polars | DuckDB | ratio | target |" in markdown
    for name in ("YSB columnar", "YSB ndjson", "YSB parquet", "small batches", "scaling", "latency"):
        assert re.search(rf"^\| {name}", markdown, re.M), name
    assert markdown.startswith("Measured with `stream-dsl bench compare --events 2000")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads(results.read_text())["rows"]
    assert all(r["equal"] for r in rows if "equal" in r)
    assert {"drizzle", "bsp"} == set(next(r for r in rows if "p99_ms" in r)["p99_ms"])
    ysb = [r for r in rows if "engine_events_per_s" in r]
    assert len(ysb) == 5  # columnar, and 1 and 5 files per batch of ndjson and parquet
    for r in ysb:  # paired rounds: the ratio is the upper middle of the rounds' ratios, printed with their spread
        assert len(r["rounds"]) == 2 and r["ratio"] == sorted(r["rounds"])[1]
    assert re.search(r"^\| YSB parquet.*\| [\d.]+ \(rounds [\d.]+ to [\d.]+", markdown, re.M)


def test_the_generators_value_pools_hash_all_values_at_once_to_the_same_ids():
    from stream_dsl.connectors import generator

    for seed, namespace in ((1, 1), (7, 3), (2**70 + 5, 4)):
        assert generator._uuids_like(seed, namespace, 40) == [
            generator._uuid_like(seed, namespace, k) for k in range(40)
        ]


def test_the_highest_rate_with_p99_under_a_bound_ignores_rates_without_latency():
    from stream_dsl.bench.experiments import highest_rate_under

    def point(rate: float, p99: float | None) -> dict:
        return {"rate": rate, "achieved_events_per_s": rate, "percentiles_ms": {"p99": p99} if p99 else {}}

    points = [point(250e3, 40.0), point(1e6, 900.0), point(2e6, 1500.0), point(4e6, None)]
    assert highest_rate_under(points, 1000.0) == 1e6
    assert highest_rate_under(points, 50.0) == 250e3
    assert highest_rate_under(points, 10.0) is None
