"""`stream-dsl bench scheduling`: the 2-stage micro-benchmark of the Drizzle paper.

Small tasks, so scheduling is what is measured: `iterations` micro-batches
of `rows_per_batch` YSB events each (generated up front, held in memory)
go through a map stage (read, project) and a hash shuffle into a grouped
aggregate (COUNT and SUM per ad type) on `workers` worker processes; the
plan is not optimized, so the two stages are exactly that. The same query
runs with BSP, with pre-scheduling only (Drizzle, group size 1), and with
groups of 10, 50 and 100, in one process one after the other, each
`repeat` times in turn (bsp, g1, g10, ..., bsp, g1, ...), so a machine
busy with something else slows every mode alike; a ratio is the median of
the ratios within each round. BSP runs twice: with its
classic placement ("bsp", every stage on every worker) and with the
placement Drizzle's groups use (reducers away from the source's worker,
`BspDriver.pipelined`), which is the faster BSP here; every mode gets its
ratio to the first and to the faster of the two ("best bsp"). Each mode
reports the median time per iteration (the run's wall time over the
micro-batches, after `warmup` batches that warm the new workers up, worker
start-up excluded, which is the same for all; see `run_once`) and
where the time of a batch went: the driver's CPU time, and per stage,
from the workers' task metrics, compute, serialization, waiting for inputs
and scheduler delay (see `executor.multiproc.metrics`).

"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any, Sequence

import polars as pl

from executor.multiproc.bsp import BspDriver
from executor.multiproc.driver import Driver
from executor.multiproc.drizzle import DrizzleDriver
from executor.query.outputs import CollectOutput
from optimizer.physical.lower import lower
from stream_dsl.config import RunConfig
from stream_dsl.ir.plan import Plan

BATCH_INTERVAL_MS = 100
QUERY = "SELECT ad_type, COUNT(*) AS events, SUM(epoch_ms(event_time) % 7) AS s FROM events GROUP BY ad_type"


def bench_plan(iterations: int, rows_per_batch: int, files_dir: str | None = None) -> Plan:
    """The benchmark query over in-memory YSB events, `rows_per_batch` per micro-batch.

    The events are generated up front and shipped to the source's worker
    with the query, so a map task only slices its batch: the tasks are small.
    With `files_dir` (`--source files`) each batch is a parquet file written
    there first, read by the files source one file per micro-batch: what a
    batch costs then includes the files source's listing and reading.
    """
    import stream_dsl as sd
    from stream_dsl.connectors.generator import ysb_events

    events = ysb_events(iterations * rows_per_batch, rate=rows_per_batch * 1000 // BATCH_INTERVAL_MS)
    events = events.select("ad_type", "event_time")
    ctx = sd.Context(executor="inline", workers=1, batch_interval=f"{BATCH_INTERVAL_MS}ms")
    batches = [events.slice(i * rows_per_batch, rows_per_batch) for i in range(iterations)]
    if files_dir is None:
        ctx.from_polars(batches, name="events")
        return ctx.sql(QUERY).plan
    for i, batch in enumerate(batches):
        batch.write_parquet(os.path.join(files_dir, f"part-{i:06d}.parquet"))
    ctx.sql(
        f"CREATE STREAM events (ad_type STRING, event_time TIMESTAMP) WITH (connector = 'files', "
        f"path = '{files_dir}', format = 'parquet', max_files_per_batch = '1')"
    )
    return ctx.sql(QUERY).plan


def run_once(cls: type[Driver], plan: Plan, config: RunConfig, warmup: int = 0) -> dict[str, Any]:
    """One run: its time per iteration, where a batch's time went, driver messages, result and batch count.

    The first batches warm the new workers up (first calls, caches) and are
    not measured: timing starts when the batch before the first group
    boundary at or after `warmup` batches is reported, so every mode measures
    whole groups, and the counts are of the measured batches (not of a
    group sent ahead past the end of the input).
    """
    group = config.group_size if not issubclass(cls, BspDriver) and isinstance(config.group_size, int) else 1
    first = -(-warmup // group) * group  # the first measured batch
    graph = lower(plan, config.workers)
    driver = cls(
        graph, config, CollectOutput(graph.graph["schema"], graph.graph.get("limit")).ordered(graph), realtime=False
    )
    progress: list[dict[str, Any]] = []
    marks: dict[str, tuple[float, float]] = {}

    def on_batch(report: dict[str, Any]) -> None:
        if report["batch_id"] >= first:
            progress.append(report)
        elif report["batch_id"] == first - 1:
            marks["start"] = (time.perf_counter(), time.process_time())

    driver.open(bounded=True)
    try:
        marks["start"] = (time.perf_counter(), time.process_time())
        driver.run(on_batch)
        started, cpu = marks["start"]
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        driver.close()
    result = driver.result()
    batches = max(len(progress), 1)
    return {
        "batches": len(progress),
        "seconds": elapsed,
        "ms_per_iteration": elapsed * 1000.0 / batches,
        "driver_cpu_ms": cpu * 1000.0 / batches,
        "stages": _stage_breakdown(progress),
        "driver_messages": sum(1 for entry in driver.assignment_log if first <= entry[2] < first + len(progress)),
        "result": result,
    }


BREAKDOWN = ("compute_ms", "serialize_ms", "wait_inputs_ms", "scheduler_delay_ms")


def _stage_breakdown(progress: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per stage, the mean per batch of each metric in BREAKDOWN (summed over the stage's tasks or worst task)."""
    out: dict[int, dict[str, float]] = {}
    for report in progress:
        for stage, metrics in report.get("stages", {}).items():
            acc = out.setdefault(int(stage), dict.fromkeys(BREAKDOWN, 0.0))
            for key in BREAKDOWN:
                acc[key] += metrics.get(key, 0.0) / len(progress)
    return out


class BspSamePlacement(BspDriver):
    """BSP with the reducers placed as Drizzle's groups place them (away from the sources' workers)."""

    pipelined = True


SAME_PLACEMENT = "bsp, reducers off the source worker"


def run_scheduling_bench(
    iterations: int = 300,
    *,
    rows_per_batch: int = 50,
    workers: int = 2,
    group_sizes: Sequence[int] = (1, 10, 50, 100),
    repeat: int = 5,
    warmup: int = 100,
    optimize: bool = False,
    verbose: bool = True,
    transport: str = "pipes",
    ray_address: str | None = None,
    source: str = "memory",
) -> dict[str, Any]:
    """Time per iteration for BSP and Drizzle with each group size; ratios to BSP from the same run.

    The plan runs as written (`optimize=False`): a map stage and a grouped
    aggregate behind a shuffle, whatever the optimizer would decide (with
    it, aggregation pushdown moves a partial aggregate into the map task).
    Every run has `warmup` batches more, not measured (`run_once`).
    Returns {"iterations", "rows_per_batch", "workers", "repeat", "warmup", "modes": {name: {...}},
    "baselines": {SAME_PLACEMENT: {...}}}; each mode (and baseline) has ms_per_iteration (the
    median of `repeat` runs, and `runs_ms`, all of them), driver_cpu_ms, stages (the breakdown of
    `_stage_breakdown`), driver_messages, ratio_to_bsp and ratio_to_best_bsp (to the faster
    of "bsp" and SAME_PLACEMENT in each round; the median of the rounds' ratios). Prints a table
    when verbose. `source`: 'memory' (the events in the plan) or 'files' (a parquet file per batch, `bench_plan`).
    """
    files = tempfile.TemporaryDirectory(prefix="sd-scheduling-") if source == "files" else None
    plan = bench_plan(warmup + iterations, rows_per_batch, files.name if files is not None else None)
    if optimize:
        from optimizer import optimize as optimize_plan

        plan = optimize_plan(plan)
    base = RunConfig(
        workers=workers,
        batch_interval_ms=BATCH_INTERVAL_MS,
        optimize=False,
        transport=transport,
        ray_address=ray_address,
    )
    modes: list[tuple[str, type[Driver], RunConfig]] = [("bsp", BspDriver, base.with_options(executor="bsp"))]
    modes.append((SAME_PLACEMENT, BspSamePlacement, base.with_options(executor="bsp")))
    for g in group_sizes:
        name = "drizzle pre-scheduling only (group 1)" if g == 1 else f"drizzle group {g}"
        modes.append((name, DrizzleDriver, base.with_options(executor="drizzle", group_size=g)))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in modes}
    for _ in range(max(1, repeat)):  # round robin: a busy spell on the machine hits every mode
        for name, cls, config in modes:
            runs[name].append(run_once(cls, plan, config, warmup))
    results: dict[str, dict[str, Any]] = {}
    reference: pl.DataFrame | None = None
    for name, _, _ in modes:
        ordered = sorted(runs[name], key=lambda r: r["ms_per_iteration"])
        for run in ordered:
            result = run.pop("result").sort("ad_type")
            if reference is None:
                reference = result
            elif not result.equals(reference):
                raise AssertionError(f"{name} computed a different result than bsp")
        middle = ordered[(len(ordered) - 1) // 2]
        results[name] = dict(
            middle,
            ms_per_iteration=statistics.median(r["ms_per_iteration"] for r in ordered),
            runs_ms=[r["ms_per_iteration"] for r in runs[name]],
        )
    bsp = results["bsp"]["runs_ms"]
    best = [min(a, b) for a, b in zip(bsp, results[SAME_PLACEMENT]["runs_ms"])]
    for r in results.values():  # ratios within each round, then their median: a busy spell hits both sides
        r["ratio_to_bsp"] = statistics.median(x / b for x, b in zip(r["runs_ms"], bsp))
        r["ratio_to_best_bsp"] = statistics.median(x / b for x, b in zip(r["runs_ms"], best))
    baselines = {SAME_PLACEMENT: results.pop(SAME_PLACEMENT)}
    if files is not None:
        files.cleanup()
    report = {
        "source": source,
        "iterations": iterations,
        "rows_per_batch": rows_per_batch,
        "workers": workers,
        "transport": transport,
        "repeat": max(1, repeat),
        "warmup": warmup,
        "modes": results,
        "baselines": baselines,
    }
    if verbose:
        print(format_report(report))
    return report


def format_report(report: dict[str, Any]) -> str:
    """The table of times and ratios, then where a batch's time went in each mode."""
    rows = dict(report["modes"])
    rows.update(report.get("baselines", {}))
    order = ["bsp"] + list(report.get("baselines", {})) + [n for n in report["modes"] if n != "bsp"]
    lines = [
        f"scheduling micro-benchmark: {report['iterations']} micro-batches x {report['rows_per_batch']} rows, "
        f"from {'parquet files, one per batch' if report.get('source') == 'files' else 'memory'}, "
        f"map -> shuffle -> grouped aggregate, {report['workers']} workers "
        f"({report.get('transport', 'pipes')}), "
        f"median of {report.get('repeat', 1)} runs, each after {report.get('warmup', 0)} warm-up batches",
        f"{'mode':<40} {'ms/iteration':>12} {'vs bsp':>8} {'vs best bsp':>12} {'driver msgs':>12}   "
        f"runs (ms/iteration)",
    ]
    for name in order:
        r = rows[name]
        runs = " ".join(f"{x:.3f}" for x in r.get("runs_ms", []))
        lines.append(
            f"{name:<40} {r['ms_per_iteration']:>12.3f} {r['ratio_to_bsp']:>8.3f} "
            f"{r.get('ratio_to_best_bsp', r['ratio_to_bsp']):>12.3f} {r['driver_messages']:>12}   {runs}"
        )
    lines.append("")
    lines.append(
        "where a batch's time went (ms per batch, median run): driver CPU; per stage, summed over its "
        "tasks: compute, serialization; worst task: waiting for inputs, scheduler delay"
    )
    for name in order:
        r = rows[name]
        parts = [f"driver cpu {r.get('driver_cpu_ms', 0.0):.3f}"]
        for stage, m in sorted(r.get("stages", {}).items()):
            label = "map" if stage == min(r["stages"]) else "reduce"
            parts.append(
                f"{label} compute {m['compute_ms']:.3f} ser {m['serialize_ms']:.3f} "
                f"wait {m['wait_inputs_ms']:.3f} delay {m['scheduler_delay_ms']:.3f}"
            )
        lines.append(f"  {name:<38} " + " | ".join(parts))
    return "\n".join(lines)


if __name__ == "__main__":
    run_scheduling_bench()
