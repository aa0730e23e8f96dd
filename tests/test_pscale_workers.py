"""How a batch's work is spread over workers (issue 22, workers scale).

- Every worker reads its share of every batch: counted from the tasks'
  rows in the query's trace (not timed). A stream read with `splits =
  'workers'` is one source stage per worker; the generator's part of a
  batch is its n-th of the batch's events, so every worker's source task of
  a batch reads the batch's rows / n, rounded either way, and the result
  is plain polars'.
- Every worker task's trace event carries its process CPU time (`cpu_ms`),
  which the trace summary adds up per stage and per worker.
- With N workers every batch has N reduce tasks, so what a reduce task pays
  whatever its rows is paid N times per batch. Its partial rows' late count
  is told from their window columns when no window can be closed (the usual
  case), with no query: `_none_closed` says "none late" exactly when
  filtering with `_closed_partial` finds none.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from budget import examples
from executor.trace import read_trace, render_summary, summarize, task_rows
from stream_dsl.bench import ysb as B
from executor.state.operators import _closed_partial, _none_closed
from stream_dsl.ir.column_names import PARTIAL_ROWS, WINDOW_END, WINDOW_START

EPOCH = dt.datetime(2026, 1, 1)
EPOCH_MS = 1_767_225_600_000  # EPOCH in epoch milliseconds (UTC, as polars reads a naive datetime)


def partial_rows(windows: list[tuple[int | None, int | None]]) -> pl.DataFrame:
    """Partial rows with window bounds (ms after EPOCH; None: no window), one input row each."""
    at = [None if ms is None else EPOCH + dt.timedelta(milliseconds=ms) for ms in (s for s, _ in windows)]
    to = [None if ms is None else EPOCH + dt.timedelta(milliseconds=ms) for ms in (e for _, e in windows)]
    return pl.DataFrame(
        {
            WINDOW_START: pl.Series(at, dtype=pl.Datetime("ms")),
            WINDOW_END: pl.Series(to, dtype=pl.Datetime("ms")),
            PARTIAL_ROWS: [1] * len(windows),
        }
    )


def late_by_query(rows: pl.DataFrame, wm: int | None) -> int:
    as_ms = rows.with_columns(pl.col(WINDOW_START).dt.epoch("ms"), pl.col(WINDOW_END).dt.epoch("ms"))
    return as_ms.filter(_closed_partial(wm)).height


window = st.integers(0, 50).map(lambda k: (k * 100, k * 100 + 100))
maybe_missing = st.one_of(window, st.sampled_from([(None, None), (0, None), (None, 100)]))


@settings(max_examples=examples(150))
@given(
    windows=st.lists(window, max_size=8) | st.lists(maybe_missing, max_size=8),
    wm_offset=st.one_of(st.none(), st.integers(-100, 5_200)),
)
def test_no_late_partial_rows_is_told_from_the_columns_exactly_when_the_query_finds_none(windows, wm_offset):
    rows = partial_rows(windows)
    wm = None if wm_offset is None else EPOCH_MS + wm_offset
    if _none_closed(rows, wm):
        assert late_by_query(rows, wm) == 0
    elif all(s is not None and e is not None for s, e in windows):
        assert late_by_query(rows, wm) > 0  # with every bound known, only a closed window sends it to the query


@pytest.mark.parametrize(("executor", "workers"), [("drizzle", 3), ("bsp", 2)])
def test_every_worker_reads_its_share_of_every_batch_and_the_result_is_plain_polars(tmp_path, executor, workers):
    bench = B.YsbBench(
        events=12_000,
        rate=100_000,
        window_ms=100,
        duration_s=0,
        context=(("executor", executor), ("workers", workers), ("batch_interval", "30ms"), ("group_size", 2)),
    )
    trace = str(tmp_path / "trace.json")
    engine = B.run_engine(bench, trace=trace)
    assert B.compare_results(engine.result, B.run_polars(bench).result) is None
    recorded = read_trace(trace)
    labels = {
        e["tid"]: e["args"]["name"] for e in recorded["traceEvents"] if e.get("name") == "thread_name" and e["pid"] != 0
    }
    sources = {stage for stage, label in labels.items() if label.startswith(f"stage {stage}: Scan")}
    assert len(sources) == workers, labels
    read: dict[int, dict[int, int]] = defaultdict(dict)  # batch -> worker -> rows its source task read
    hosts: dict[int, set[int]] = defaultdict(set)  # worker -> the source stages it ran
    for r in task_rows(recorded):
        if r["stage"] in sources and r["rows_in"]:
            read[r["batch"]][r["worker"]] = read[r["batch"]].get(r["worker"], 0) + r["rows_in"]
            hosts[r["worker"]].add(r["stage"])
    assert all(r["cpu_ms"] > 0 for r in task_rows(recorded))  # what each task cost, whatever the load
    assert render_summary(summarize(recorded))[-1].startswith("CPU time in tasks (the cost, whatever the load): ")
    assert sorted(hosts) == list(range(workers)) and all(len(s) == 1 for s in hosts.values())
    assert sum(sum(by_worker.values()) for by_worker in read.values()) == bench.events
    for batch, by_worker in read.items():
        total = sum(by_worker.values())
        assert len(by_worker) == workers, (batch, by_worker)
        assert set(by_worker.values()) <= {total // workers, -(-total // workers)}, (batch, by_worker)
