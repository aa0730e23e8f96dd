"""The multiprocess executors ('drizzle', 'bsp') on real worker processes.

- Results: every query of the differential suite gives the inline
  executor's result (and DuckDB's) with 1, 2 and 4 workers and group
  sizes 1, 3 and 10; the progress dicts match inline's field by field.
- Invariants from the counters: within a group the driver sends one
  message per worker; no reduce task waits on a driver message in Drizzle
  (its descriptor was sent before its map tasks finished), while every
  BSP reducer does; BSP's driver messages grow with batches x stages.
- Failures: a failing expression stops the query with one ExecutionError
  naming the operator, and no worker is left; a worker that dies makes
  the query fail with a clear error; 50 queries started and stopped in a
  row leave no worker process and no open pipe behind.

The data is tiny, so the whole file runs in well under two minutes.
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import signal
import threading

import multiprocess
import polars as pl
import pytest
from test_differential import (
    BASE,
    ORDERED,
    QUERIES,
    S_SCHEMA,
    T_SCHEMA,
    assert_same_ordered_rows,
    assert_same_rows,
    duckdb_rows,
    engine,
)

import optimizer
import stream_dsl as sd
from executor.api import start as inline_start
from executor.inline import collect_plan
from executor.api import collect, explain_analyze, run_collect, start
from executor.multiproc.runtime import created_resources, open_pipes
from stream_dsl.config import RunConfig
from stream_dsl.errors import ExecutionError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType, Schema

EXECUTORS = ("drizzle", "bsp")
PROGRESS_KEYS = (
    "batch_id",
    "rows_in",
    "rows_out",
    "late_rows",
    "dead_letters",
    "watermark",
    "state_groups",
    "stage_rows",
    "shuffle_rows",
    "shuffle_bytes",
    "shuffle_tasks",
    "source_reads",
)


def _data(n: int = 24) -> tuple[pl.DataFrame, list[pl.DataFrame], pl.DataFrame]:
    """Rows with NULLs everywhere, in event-time order, cut into uneven batches (one empty)."""
    frame = pl.DataFrame(
        {
            "k": (["a", "b", None, "c"] * n)[:n],
            "i": ([None, 1, 2, -3, 4, 0] * n)[:n],
            "d": ([0.5, None, -1.0, 2.0, 1.5] * n)[:n],
            "s2": (["a", "ab", None, ".b", "b.", ""] * n)[:n],
            "ts": [BASE + dt.timedelta(milliseconds=1700 * j) for j in range(n)],
        },
        schema=S_SCHEMA,
    )
    batches = [frame.slice(0, 7), frame.slice(7, 0), frame.slice(7, 6), frame.slice(13, n - 13)]
    table = pl.DataFrame(
        {"k": ["a", "b", "d", None], "name": ["x", "y", "x", "y"], "w": [1, None, 3, 2]}, schema=T_SCHEMA
    )
    return frame, batches, table


FRAME, BATCHES, TABLE = _data()
CTX = engine(BATCHES, TABLE, ordered=True)
UNORDERED = engine(BATCHES, TABLE, ordered=False)


def plan_of(ctx: sd.Context, sql: str):
    return optimizer.optimize(ctx.sql(sql).plan)


def config(executor: str, workers: int = 2, group_size: int | str = 3) -> RunConfig:
    return RunConfig(workers=workers, executor=executor, group_size=group_size)


# ---------------------------------------------------------------- process hygiene


def _helpers() -> set[int]:
    """multiprocess's fork server and resource tracker, the fork servers per polars thread count: shared helpers,
    not workers."""
    from multiprocess import forkserver, resource_tracker

    from executor.multiproc import forkservers

    pids = {
        getattr(forkserver._forkserver, "_forkserver_pid", None),
        getattr(resource_tracker._resource_tracker, "_pid", None),
        *forkservers.server_pids().values(),
    }
    return {p for p in pids if p}


def worker_processes() -> set[int]:
    """Live (non-zombie) processes started by this process or by the fork server, helpers excluded."""
    helpers = _helpers()
    parents = {os.getpid()} | helpers
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) in parents and int(entry) not in helpers and fields[0] != "Z":
            found.add(int(entry))
    return found


def leaked_pipes(created: set[str]) -> set[str]:
    """Those of the transports' pipes `created` that this process still has open."""
    gc.collect()
    return created & open_pipes()


@pytest.fixture
def no_leaks():
    """Fails the test if it leaves a worker process or an open pipe behind."""
    before = worker_processes()
    children_before = {p.pid for p in multiprocess.active_children() if p.name.startswith("stream-dsl-worker")}
    resources_before = set(created_resources())
    yield
    assert not (worker_processes() - before), "worker processes left behind"
    # (another test's Context may still hold warm workers until it is collected: only this test's count)
    assert not [
        p
        for p in multiprocess.active_children()
        if p.name.startswith("stream-dsl-worker") and p.pid not in children_before
    ]
    created = set(created_resources()) - resources_before
    assert created, "no transport was created"
    assert not leaked_pipes(created)


# ---------------------------------------------------------------- results


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_the_differential_suite_gives_inline_results_for_every_worker_count_and_group_size(
    query, executor, warm_workers
):
    plan = plan_of(CTX, query.dsl)
    expected = collect_plan(plan, RunConfig(workers=1, executor="inline")).rows()
    assert_same_rows(expected, duckdb_rows(query.duck, FRAME, TABLE), f"{query.name} inline vs duckdb")
    for workers in (1, 2, 4):
        for group_size in (1, 3, 10):
            result = collect(plan, config(executor, workers, group_size), pool=lambda: warm_workers)
            assert result.columns == list(plan.schema.names)
            assert_same_rows(result.rows(), expected, f"{query.name} {executor} workers={workers} g={group_size}")


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("query", ORDERED, ids=[q.name for q in ORDERED])
def test_order_by_gives_the_inline_rows_in_the_inline_order(query, executor):
    plan = plan_of(CTX, query.dsl)
    expected = collect_plan(plan, RunConfig(workers=1, executor="inline")).rows()
    assert_same_ordered_rows(expected, duckdb_rows(query.duck, FRAME, TABLE), f"{query.name} inline vs duckdb")
    for workers, group_size in ((2, 1), (3, 3)):
        result = collect(plan, config(executor, workers, group_size))
        assert_same_ordered_rows(result.rows(), expected, f"{query.name} {executor} workers={workers} g={group_size}")


@pytest.mark.parametrize("name", ["group_by", "tumble", "session", "distinct_then_count", "union_all"])
def test_without_a_watermark_results_are_the_same(name):
    query = next(q for q in QUERIES if q.name == name)
    plan = plan_of(UNORDERED, query.dsl)
    expected = collect_plan(plan, RunConfig(workers=1, executor="inline")).rows()
    for executor in EXECUTORS:
        assert_same_rows(collect(plan, config(executor, 2, 2)).rows(), expected, f"{name} {executor}")


@pytest.mark.parametrize(
    "name",
    ["filter_project", "group_by", "tumble", "hop", "window_of_windows", "distinct_then_count", "union_then_aggregate"],
)
def test_progress_is_the_inline_progress(name):
    plan = plan_of(CTX, next(q for q in QUERIES if q.name == name).dsl)
    inline: list[dict] = []
    collect_plan(plan, RunConfig(workers=2, executor="inline"), inline.append)
    expected = [{k: p[k] for k in PROGRESS_KEYS} for p in inline]
    for executor in EXECUTORS:
        for group_size in (1, 3, 10):
            _, _, progress = run_collect(plan, config(executor, 2, group_size))
            assert [{k: p[k] for k in PROGRESS_KEYS} for p in progress] == expected, (executor, group_size)
            for p in progress:
                assert p["duration_ms"] >= 0 and p["latency_ms"] >= 0 and p["driver_messages"] > 0
                assert set(p["stages"]) == set(p["stage_rows"])
                for m in p["stages"].values():
                    assert {
                        "scheduler_delay_ms",
                        "wait_inputs_ms",
                        "compute_ms",
                        "serialize_ms",
                        "transfer_bytes",
                        "rows_in",
                        "rows_out",
                    } <= set(m)


def test_auto_group_size_gives_the_same_result_and_tunes_at_boundaries():
    plan = plan_of(CTX, next(q for q in QUERIES if q.name == "tumble").dsl)
    expected = collect_plan(plan, RunConfig(workers=1, executor="inline")).rows()
    result, driver, progress = run_collect(plan, config("drizzle", 2, "auto"))
    assert_same_rows(result.rows(), expected, "auto")
    assert driver.sizer.auto and len(driver.sizer.history) == len({p["group_id"] for p in progress})
    assert all(0.0 <= o <= 1.0 for o in driver.overheads)


def test_a_limit_stops_an_unbounded_query():
    ctx = sd.Context(executor="inline", workers=1)
    ctx.catalog.add_source(
        SourceDef(
            "g",
            "stream",
            Schema.of(("ad_id", DataType.STRING)),
            (("connector", "generator"), ("kind", "ysb"), ("rate", "1000"), ("realtime", "false")),
        )
    )
    plan = plan_of(ctx, "SELECT ad_id FROM g LIMIT 250")
    for executor in EXECUTORS:
        assert collect(plan, config(executor, 2, 4)).height == 250


def test_explain_analyze_shows_the_stages_and_their_metrics():
    text = explain_analyze(plan_of(CTX, "SELECT k, COUNT(*) AS n FROM s GROUP BY k"), config("drizzle"))
    assert "Stage 0" in text and "Stage 1" in text
    assert "scheduler_delay=" in text and "compute=" in text and "transfer_bytes=" in text


# ---------------------------------------------------------------- invariants from the counters


def _run_counted(executor: str, batches: int, workers: int = 2, group_size: int = 4):
    frames = [pl.DataFrame({"k": [f"k{i % 5}" for i in range(b, b + 6)], "v": list(range(6))}) for b in range(batches)]
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars(frames, name="e")
    plan = plan_of(ctx, "SELECT k, SUM(v) AS s FROM e GROUP BY k")
    return run_collect(plan, config(executor, workers, group_size))


def test_within_a_group_the_driver_sends_one_message_per_worker():
    for workers in (1, 2, 4):
        _, driver, progress = _run_counted("drizzle", batches=9, workers=workers, group_size=4)
        groups: dict[int, list[int]] = {}
        for assignment, worker, first, last, _ in driver.assignment_log:
            groups.setdefault(assignment, []).append(worker)
            assert last - first + 1 == 4
        assert all(sorted(ws) == list(range(workers)) for ws in groups.values())
        assert len(groups) == 3 + 1  # 9 batches in groups of 4, and the group sent ahead when the input ended
        # nothing else went to the workers: one Setup and one Stop each besides the group messages
        assert driver.transport.sent == 2 * workers + len(driver.assignment_log)
        assert sum(p["driver_messages"] for p in progress) == pytest.approx(len(progress) * workers / 4)


def _upstream_finish(driver) -> dict[tuple[int, int], tuple[float, float]]:
    """(batch, stage) -> (first, last) finish time of the stage's tasks."""
    times: dict[tuple[int, int], list[float]] = {}
    for t in driver.task_log:
        times.setdefault((t.batch, t.stage), []).append(t.finished_at)
    return {k: (min(v), max(v)) for k, v in times.items()}


@pytest.mark.parametrize("workers", [2, 4])
def test_no_reduce_task_waits_on_a_driver_message_in_drizzle_but_every_one_does_in_bsp(workers):
    for executor in EXECUTORS:
        _, driver, _ = _run_counted(executor, batches=8, workers=workers, group_size=4)
        finish = _upstream_finish(driver)
        stages = {s.id: s for s in driver.stages}
        reducers = [t for t in driver.task_log if not stages[t.stage].is_source and t.batch < 8]  # not a group
        # sent ahead past the end, some of whose reports may not have come
        assert reducers
        for t in reducers:
            first_done = min(finish[(t.batch, u)][0] for u in stages[t.stage].inputs)
            last_done = max(finish[(t.batch, u)][1] for u in stages[t.stage].inputs)
            if executor == "drizzle":
                assert t.sent_at < first_done, "a reduce task's descriptor came after its map output"
            else:
                assert t.sent_at > last_done, "BSP launches reducers after the map stage reported"


def test_bsp_driver_messages_grow_with_batches_times_stages():
    counts = {}
    for batches in (4, 8):
        _, driver, progress = _run_counted("bsp", batches=batches, workers=2)
        counts[batches] = len(driver.assignment_log)
        assert all(p["driver_messages"] == 1 + 2 for p in progress)  # source wave + reduce wave on 2 workers
    assert counts[8] == 2 * counts[4] == 8 * 3
    _, drizzle, _ = _run_counted("drizzle", batches=8, workers=2, group_size=8)
    assert len(drizzle.assignment_log) == 2 * 2  # one group of 8 batches, and the next sent ahead with it


def test_finished_outputs_wait_only_behind_a_ready_task_that_reads_no_source():
    from executor.multiproc.scheduler import InputsReady, Run, TaskKey, TaskSpec
    from executor.multiproc.worker import OUTPUT_HOLD_S, holds_outputs

    _, driver, _ = _run_counted("drizzle", batches=2)
    stages = {s.id: s for s in driver.stages}
    source = next(s.id for s in stages.values() if s.is_source)
    reducer = next(s.id for s in stages.values() if not s.is_source)

    def run(stage: int) -> Run:
        return Run(TaskSpec(TaskKey(1, stage, 0), frozenset()), "finished")

    assert holds_outputs([run(reducer)], stages, 0.0)
    assert holds_outputs([InputsReady(TaskKey(1, reducer, 0)), run(reducer)], stages, 0.0)
    assert not holds_outputs([], stages, 0.0)  # about to wait: send now
    assert not holds_outputs([InputsReady(TaskKey(1, reducer, 0))], stages, 0.0)
    assert not holds_outputs([run(source)], stages, 0.0)  # a source may wait for its next interval
    assert not holds_outputs([run(reducer)], stages, OUTPUT_HOLD_S)


# ---------------------------------------------------------------- failures and cleanup


def test_a_failing_expression_stops_the_query_with_one_error_naming_the_operator(no_leaks):
    plan = plan_of(CTX, "SELECT k, SUM(CAST(s2 AS BIGINT)) AS n FROM s GROUP BY k")
    for executor in EXECUTORS:
        with pytest.raises(ExecutionError) as info:
            collect(plan, config(executor, 2, 3))
        message = str(info.value)
        assert message.startswith("Project ") and "CAST(s2 AS BIGINT)" in message
        assert "Traceback" not in message
        assert "cannot CAST" in message


def test_a_source_that_raises_names_the_scan(no_leaks):
    ctx = sd.Context(executor="inline", workers=1)
    ctx.from_polars([pl.DataFrame({"x": [1]})], name="e")
    source = ctx.catalog.source("e")
    from stream_dsl.connectors import memory

    memory.register(source.option("id"), [pl.DataFrame({"x": [1]}), RuntimeError("the feed broke")])
    plan = plan_of(ctx, "SELECT x FROM e")
    for executor in EXECUTORS:
        with pytest.raises(ExecutionError, match=r"^Scan .*the feed broke"):
            collect(plan, config(executor))


def _unbounded_plan(sql: str = "SELECT ad_type, COUNT(*) AS n FROM g GROUP BY ad_type"):
    ctx = sd.Context(executor="inline", workers=1)
    ctx.catalog.add_source(
        SourceDef(
            "g",
            "stream",
            Schema.of(("ad_type", DataType.STRING)),
            (("connector", "generator"), ("kind", "ysb"), ("rate", "2000")),
        )
    )
    return plan_of(ctx, sql)


def test_a_worker_that_dies_fails_the_query_with_a_clear_error(no_leaks):
    for executor in EXECUTORS:
        first_batch = threading.Event()
        handle = start(
            _unbounded_plan(),
            lambda batch_id, frame: first_batch.set(),
            RunConfig(workers=2, executor=executor, group_size=2, batch_interval_ms=20),
        )
        first_batch.wait()
        os.kill(handle.worker_pids()[0], signal.SIGKILL)
        with pytest.raises(ExecutionError, match="worker 0 died unexpectedly"):
            handle.await_termination()
        assert not handle.is_active


def test_a_continuous_query_writes_each_batch_to_the_sink_and_reports_progress(no_leaks):
    for executor in EXECUTORS:
        seen: dict[int, int] = {}
        enough = threading.Event()

        def sink(batch_id: int, frame: pl.DataFrame) -> None:
            seen[batch_id] = frame.height
            if len(seen) >= 3:
                enough.set()

        handle = start(
            _unbounded_plan(), sink, RunConfig(workers=2, executor=executor, group_size=2, batch_interval_ms=20)
        )
        enough.wait()
        handle.stop()
        assert not handle.is_active and handle.exception is None
        progress = handle.progress()
        assert [p["batch_id"] for p in progress] == list(range(len(progress)))
        written = {p["batch_id"]: p["rows_out"] for p in progress if p["rows_out"]}
        assert {b: seen[b] for b in written} == written


def test_a_bounded_continuous_query_ends_by_itself_with_the_collect_result(no_leaks):
    query = next(q for q in QUERIES if q.name == "tumble")
    plan = plan_of(CTX, query.dsl)
    expected = collect_plan(plan, RunConfig(workers=1, executor="inline")).rows()
    for executor in EXECUTORS:
        frames: list[pl.DataFrame] = []
        handle = start(plan, lambda batch_id, frame: frames.append(frame), config(executor, 2, 3))
        assert handle.await_termination()
        assert_same_rows(pl.concat(frames).rows() if frames else [], expected, executor)
        assert len(handle.progress()) == len(BATCHES)


def test_starting_and_stopping_50_queries_leaves_nothing_behind(no_leaks):
    plan = _unbounded_plan()
    for i in range(50):
        executor = EXECUTORS[i % 2]
        handle = start(
            plan,
            lambda batch_id, frame: None,
            RunConfig(workers=2, executor=executor, group_size=1 + i % 3, batch_interval_ms=10),
        )
        pids = handle.worker_pids()
        assert len(pids) == 2 and all(os.path.exists(f"/proc/{p}") for p in pids)
        handle.stop()
        assert not handle.is_active and handle.exception is None


def test_files_sources_open_in_the_workers_relative_to_the_drivers_directory(tmp_path, monkeypatch):
    data = tmp_path / "clicks"
    data.mkdir()
    (data / "a.ndjson").write_text('{"user": "u1", "n": 1}\n{"user": "u2", "n": "oops"}\n{"user": "u1", "n": 3}\n')
    (data / "b.ndjson").write_text('not json\n{"user": "u3", "n": 4}\n')
    monkeypatch.chdir(tmp_path)
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        "CREATE STREAM clicks (user STRING, n BIGINT) WITH (connector = 'files', path = 'clicks', "
        "format = 'ndjson', max_files_per_batch = '1')"
    )
    plan = plan_of(ctx, "SELECT user, SUM(n) AS total FROM clicks GROUP BY user")
    inline: list[dict] = []
    expected = collect_plan(plan, RunConfig(workers=1, executor="inline"), inline.append).rows()
    assert sum(p["dead_letters"] for p in inline) == 2
    for executor in EXECUTORS:
        result, driver, progress = run_collect(plan, config(executor, 2, 2))
        assert_same_rows(result.rows(), expected, executor)
        assert [p["dead_letters"] for p in progress] == [p["dead_letters"] for p in inline]
        assert len(driver.dead_letters) == 2


def _probe_plan(log, frames: list[pl.DataFrame], bounded: bool = True):
    from stream_dsl import connectors
    from stream_dsl.connectors import memory

    connectors.register_connector("commit_probe", "multiproc_probe")
    ctx = sd.Context(executor="inline", workers=1)
    definition = memory.source_def("p", frames, bounded=bounded)
    options = dict(definition.options, connector="commit_probe", log=str(log))
    ctx.catalog.add_source(SourceDef("p", "stream", definition.schema, tuple(sorted(options.items()))))
    return plan_of(ctx, "SELECT k, COUNT(*) AS n FROM p GROUP BY k")


def _commits(log) -> list[list]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_sources_commit_what_the_written_batches_read_at_group_boundaries(tmp_path):
    frames = [pl.DataFrame({"k": ["a", "b"][: 1 + b % 2]}) for b in range(7)]
    inline_log = tmp_path / "inline.log"
    handle = inline_start(_probe_plan(inline_log, frames), lambda b, f: None, RunConfig(executor="inline"))
    assert handle.await_termination()
    expected = _commits(inline_log)
    assert [offset for offset, _ in expected] == list(range(1, 8))
    for executor in EXECUTORS:
        log = tmp_path / f"{executor}.log"
        handle = start(_probe_plan(log, frames), lambda b, f: None, config(executor, 2, 3))
        assert handle.await_termination()
        commits = _commits(log)
        offsets = [offset for offset, _ in commits]
        assert offsets == sorted(offsets) and commits[-1] == expected[-1]
        if executor == "drizzle":
            assert offsets == [3, 6, 7]  # once per group of 3, then at the end


def test_a_sink_that_has_batches_gets_the_next_batch_ids():
    class Resumable:
        def __init__(self) -> None:
            self.batches: list[int] = []

        def last_batch_id(self) -> int:
            return 41

        def write(self, batch_id: int, frame: pl.DataFrame) -> None:
            self.batches.append(batch_id)

        def close(self) -> None:
            pass

    plan = plan_of(CTX, "SELECT k, i FROM s")
    for executor in EXECUTORS:
        sink = Resumable()
        handle = start(plan, sink, config(executor, 2, 3))
        assert handle.await_termination()
        assert sink.batches == [42, 44, 45]  # batch 43 is empty
        assert [p["batch_id"] for p in handle.progress()] == [42, 43, 44, 45]


def test_the_scheduling_benchmark_runs_every_mode_on_the_same_query():
    from stream_dsl.bench.scheduling import run_scheduling_bench

    report = run_scheduling_bench(6, rows_per_batch=10, group_sizes=(1, 3, 4), repeat=1, warmup=3, verbose=False)
    modes = report["modes"]
    assert list(modes) == ["bsp", "drizzle pre-scheduling only (group 1)", "drizzle group 3", "drizzle group 4"]
    # measured: the batches after the first group boundary at or past 3 warm-up batches
    assert [m["batches"] for m in modes.values()] == [6, 6, 6, 5]
    assert [m["batches"] for m in report["baselines"].values()] == [6]  # bsp: no groups, whatever its config
    assert all(m["ms_per_iteration"] > 0 for m in modes.values())
    assert modes["bsp"]["ratio_to_bsp"] == 1.0
    assert modes["bsp"]["driver_messages"] == 6 * 3 and modes["drizzle group 3"]["driver_messages"] == 2 * 2
    assert modes["drizzle group 4"]["driver_messages"] == 2 * 2  # batches 4-7 and 8


def test_stopping_a_query_commits_exactly_the_batches_it_wrote(tmp_path):
    frames = [pl.DataFrame({"k": ["a", "b"][: 1 + b % 2]}) for b in range(40)]
    for executor in EXECUTORS:
        log = tmp_path / f"{executor}.log"
        plan = _probe_plan(log, frames, bounded=False)
        written = threading.Event()
        batches: list[int] = []

        def sink(batch_id: int, frame: pl.DataFrame) -> None:
            batches.append(batch_id)
            if len(batches) == 4:
                written.set()

        handle = start(plan, sink, RunConfig(workers=2, executor=executor, group_size=3, batch_interval_ms=10))
        written.wait()
        handle.stop()
        assert handle.exception is None
        recorded = [p["batch_id"] for p in handle.progress()]
        assert recorded == list(range(len(recorded))) and set(batches) <= set(recorded)
        assert 4 <= len(recorded)
        assert _commits(log)[-1][0] == min(len(recorded), 40)  # the source's offset after the last recorded batch


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_a_long_query_keeps_only_its_newest_progress(monkeypatch, executor):
    from executor import handle as handle_module

    monkeypatch.setattr(handle_module, "PROGRESS_KEPT", 5)
    ctx = sd.Context(executor=executor, workers=2, group_size=3)
    ctx.from_polars([pl.DataFrame({"v": [i]}) for i in range(20)], name="s")
    handle = ctx.sql("SELECT v FROM s").start(lambda batch_id, frame: None)
    assert handle.await_termination(120)
    kept = [p["batch_id"] for p in handle.progress()]
    assert handle.batches == 20 and kept == list(range(15, 20)) and handle.last_progress["batch_id"] == 19
    assert handle.totals() == {"batches": 20, "rows_in": 20, "rows_out": 20, "late_rows": 0, "dead_letters": 0}
