"""The experiments around `bench ysb`: optimizer ablation, executor latency comparison, scaling.

Each runs the YSB query of `stream_dsl.bench.ysb` again with one thing
changed, prints a short table, and returns plain dicts (what `--json` and
the plots use):

- `ablation`: the throughput run with the optimizer on and off; the
  ratios of throughput and of shuffle bytes (the in-memory size of every
  map task's output) and of the bytes that crossed between workers.
- `compare_latency`: the paced latency run on drizzle, bsp and drizzle
  with the optimizer off, same workers, batches and rate.
- `scaling`: throughput against the worker count (realtime off), and
  achieved throughput and latency against the input rate (paced runs of
  the same length): where the engine stops keeping up, latency grows.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import replace
from typing import Any, Sequence, TextIO

from stream_dsl.bench.latency import LatencyRun, run_latency
from stream_dsl.bench.ysb import EngineRun, Report, YsbBench, context_text, latency_text, run_engine
from stream_dsl.bench.ysb_kafka import partition_count

__all__ = [
    "ablation",
    "compare_latency",
    "scaling",
    "growth_point",
    "highest_rate_under",
    "worker_scaling",
    "thread_settings",
    "machine",
    "machine_text",
    "report_dict",
    "bench_dict",
    "config_dict",
    "latency_dict",
    "COMPARED",
]

# The configurations of the latency comparison: (label, sd.Context arguments changed).
COMPARED: tuple[tuple[str, dict[str, Any]], ...] = (
    ("drizzle", {"executor": "drizzle", "optimize": True}),
    ("bsp", {"executor": "bsp", "optimize": True}),
    ("drizzle, optimizer off", {"executor": "drizzle", "optimize": False}),
)


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _engine_dict(run: EngineRun) -> dict[str, Any]:
    return {
        "seconds": run.seconds,
        "events": run.events,
        "events_per_s": run.events_per_s,
        "startup_seconds": run.startup_seconds,
        "batches": len(run.progress),
        "shuffle_bytes": run.total("shuffle_bytes"),
        "transfer_bytes": run.total("transfer_bytes"),
        "late_rows": run.total("late_rows"),
    }


def latency_dict(run: LatencyRun) -> dict[str, Any]:
    return {
        "rate": run.rate,
        "events": run.engine.events,
        "seconds": run.engine.seconds,
        "achieved_events_per_s": run.engine.events_per_s,
        "windows": run.windows,
        "rows": len(run.latencies_ms),
        "closed_by": run.closed_by,
        "percentiles_ms": run.percentiles(),
        "latencies_ms": [round(v, 2) for v in run.latencies_ms],
        "late_rows": run.engine.total("late_rows"),
    }


# ---------------------------------------------------------------- ablation


def ablation(
    bench: YsbBench, out: TextIO, *, events_dir: str | None = None, done: EngineRun | None = None
) -> dict[str, Any]:
    """The throughput run with the optimizer on and off; `done` is a run already made with the bench's setting."""
    runs: dict[bool, EngineRun] = {}
    optimized = bool(bench.config.optimize)
    if done is not None:
        runs[optimized] = done
    for flag in (True, False):
        if flag not in runs:
            runs[flag] = run_engine(bench.with_context(optimize=flag), events_dir=events_dir)
    on, off = runs[True], runs[False]
    result = {
        "on": _engine_dict(on),
        "off": _engine_dict(off),
        "throughput_ratio": _ratio(on.events_per_s, off.events_per_s),
        "shuffle_bytes_ratio": _ratio(on.total("shuffle_bytes"), off.total("shuffle_bytes")),
        "transfer_bytes_ratio": _ratio(on.total("transfer_bytes"), off.total("transfer_bytes")),
    }
    print(f"\nablation: the optimizer on and off, {context_text(dict(bench.context), optimizer=False)}", file=out)
    for name, r in (("optimizer on", on), ("optimizer off", off)):
        print(
            f"  {name:<14} {r.seconds:9.3f} s  {r.events_per_s:>14,.0f} events/s  shuffle "
            f"{_mb(r.total('shuffle_bytes'))} ({_mb(r.total('transfer_bytes'))} between workers)",
            file=out,
        )
    print(
        f"  on / off       throughput {result['throughput_ratio']:.2f}x, shuffle bytes "
        f"{result['shuffle_bytes_ratio']:.3f}x, bytes between workers {result['transfer_bytes_ratio']:.3f}x",
        file=out,
    )
    same = on.result.sort(on.result.columns).equals(off.result.sort(off.result.columns))
    if not same:
        print("  the optimizer changed the result: this is a bug", file=out)
    result["equal"] = same
    return result


# ---------------------------------------------------------------- latency by executor


def compare_latency(
    bench: YsbBench, out: TextIO, configs: Sequence[tuple[str, dict[str, Any]]] = COMPARED
) -> dict[str, dict[str, Any]]:
    """The paced latency run for each configuration (default: drizzle, bsp, drizzle with the optimizer off)."""
    results: dict[str, dict[str, Any]] = {}
    config = bench.config
    print(
        f"\nlatency at {bench.rate:,.0f} events/s, {config.workers} workers, batch interval "
        f"{config.batch_interval_ms}ms, group size {config.group_size}:",
        file=out,
    )
    for label, changes in configs:
        run = run_latency(bench.with_context(**changes))
        results[label] = latency_dict(run)
        print(
            f"  {label:<24} {latency_text(run)}  ({len(run.latencies_ms):,} window rows, "
            f"{run.windows} windows closed by the {run.closed_by})",
            file=out,
        )
        out.flush()
    return results


# ---------------------------------------------------------------- scaling


def growth_point(points: Sequence[dict[str, Any]], *, factor: float = 2.0, keep_up: float = 0.95) -> float | None:
    """The lowest rate whose p99 latency exceeds `factor` x the lowest rate's, or that is not kept up with."""
    measured = [p for p in sorted(points, key=lambda p: p["rate"]) if p["percentiles_ms"]]
    if not measured:
        return None
    base = measured[0]["percentiles_ms"]["p99"]
    for p in measured:
        if p["percentiles_ms"]["p99"] > factor * base or p["achieved_events_per_s"] < keep_up * p["rate"]:
            return p["rate"]
    return None


def thread_settings(bench: YsbBench) -> tuple[int | None, ...]:
    """The polars thread counts per worker `scaling` compares: the bench's own, and one thread per worker when
    the workers are processes of this machine (pipes) and the bench did not choose a count already."""
    config = bench.config
    if config.worker_threads is not None or config.executor == "inline" or config.transport != "pipes":
        return (config.worker_threads,)
    return (None, 1)


def _threads_text(threads: int | None) -> str:
    if threads is None:
        return "auto polars threads (cores // workers)"
    return f"{threads} polars thread{'s' if threads != 1 else ''}"


def worker_scaling(
    bench: YsbBench,
    out: TextIO,
    *,
    workers: Sequence[int] = (1, 2),
    threads: Sequence[int | None] | None = None,
    repeat: int = 1,
    events_dir: str | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Throughput against the worker count, for each polars thread count per worker; `repeat` rounds, each
    running every count once (so a busy machine slows all of them alike). Returns the points (median of
    the rounds) and, per thread count, the ratio of the most workers' throughput to the fewest's: the
    median over the rounds, and their lowest and highest (the spread)."""
    points: list[dict[str, Any]] = []
    ratios: list[dict[str, Any]] = []
    if not workers:
        return points, ratios
    lo, hi = min(workers), max(workers)
    for count in thread_settings(bench) if threads is None else threads:
        print(
            f"\nscaling: throughput against workers ({bench.events:,} events, as fast as possible), "
            f"{_threads_text(count)} per worker" + (f", median of {repeat} rounds" if repeat > 1 else ""),
            file=out,
        )
        rounds: dict[int, list[EngineRun]] = {n: [] for n in workers}
        for _ in range(repeat):
            for n in workers:
                rounds[n].append(run_engine(bench.with_context(workers=n, worker_threads=count), events_dir=events_dir))
        for n in workers:
            run = sorted(rounds[n], key=lambda r: r.seconds)[len(rounds[n]) // 2]
            points.append({"workers": n, "worker_threads": count, **_engine_dict(run)})
            print(
                f"  {n} worker{'s' if n != 1 else ' '}  {run.seconds:9.3f} s  {run.events_per_s:>14,.0f} events/s",
                file=out,
            )
        if hi != lo:
            each = sorted(_ratio(a.events_per_s, b.events_per_s) for a, b in zip(rounds[hi], rounds[lo]))
            ratio = {"worker_threads": count, "workers": [lo, hi], "ratio": each[len(each) // 2], "rounds": each}
            ratios.append(ratio)
            spread = f" (rounds {each[0]:.2f}x to {each[-1]:.2f}x)" if repeat > 1 else ""
            print(f"  {hi} / {lo} workers  throughput {ratio['ratio']:.2f}x{spread}", file=out)
        out.flush()
    return points, ratios


def scaling(
    bench: YsbBench,
    out: TextIO,
    *,
    workers: Sequence[int] = (1, 2),
    rates: Sequence[float] = (),
    events_dir: str | None = None,
    threads: Sequence[int | None] | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Throughput against the worker count (with the default, 'auto' threads and with one thread per worker: see
    `worker_scaling`), then achieved throughput and latency against the input rate."""
    by_workers, worker_ratios = worker_scaling(
        bench, out, workers=workers, threads=threads, repeat=repeat, events_dir=events_dir
    )
    by_rate: list[dict[str, Any]] = []
    if rates:
        seconds = bench.duration_s or bench.events / bench.rate
        print(
            f"{'' if workers else chr(10)}scaling: achieved throughput and latency against the input rate "
            f"(paced runs of {seconds:,.1f} s, {context_text(dict(bench.context))})",
            file=out,
        )
        for rate in rates:
            paced = run_latency(replace(bench, duration_s=seconds), rate=rate)
            point = latency_dict(paced)
            by_rate.append(point)
            print(
                f"  offered {rate:>12,.0f}/s  achieved {paced.engine.events_per_s:>12,.0f}/s  {latency_text(paced)}",
                file=out,
            )
            out.flush()
        grows = growth_point(by_rate)
        if grows is None:
            print(f"  latency stays flat up to {max(rates):,.0f} events/s", file=out)
        else:
            print(
                f"  latency starts to grow at {grows:,.0f} events/s (p99 over twice the lowest rate's, "
                f"or input not kept up with)",
                file=out,
            )
        under = highest_rate_under(by_rate, 1000.0)
        achieved = next((p["achieved_events_per_s"] for p in by_rate if p["rate"] == under), 0.0)
        print(
            "  p99 under 1 s up to "
            + (f"{under:,.0f} events/s offered ({achieved:,.0f}/s achieved)" if under else "no rate offered"),
            file=out,
        )
    return {
        "by_workers": by_workers,
        "worker_ratios": worker_ratios,
        "by_rate": by_rate,
        "growth_rate": growth_point(by_rate) if by_rate else None,
        "under_1s_rate": highest_rate_under(by_rate, 1000.0) if by_rate else None,
    }


def highest_rate_under(points: Sequence[dict[str, Any]], p99_ms: float) -> float | None:
    """The highest offered rate whose p99 latency stays under `p99_ms` (the issue's measure; whether the run kept
    up with it is printed next to it: a short run's achieved rate includes its start and its end)."""
    good = [p["rate"] for p in points if p["percentiles_ms"] and p["percentiles_ms"]["p99"] < p99_ms]
    return max(good) if good else None


# ---------------------------------------------------------------- results as data


def machine() -> dict[str, Any]:
    """Where the numbers come from: CPU, cores, memory, Python and polars versions."""
    import polars as pl

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    memory_gb = None
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gb": round(memory_gb, 1) if memory_gb else None,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "polars": pl.__version__,
    }


def machine_text(m: dict[str, Any]) -> str:
    memory = f", {m['memory_gb']:g} GB" if m.get("memory_gb") else ""
    return f"{m['cpu']}, {m['cores']} cores{memory}; Python {m['python']}, polars {m['polars']}; {m['os']}"


def config_dict(bench: YsbBench) -> dict[str, Any]:
    """How stream-dsl ran: the resolved sd.Context settings."""
    c = bench.config
    return {
        "executor": c.executor,
        "workers": c.workers,
        "group_size": c.group_size,
        "batch_interval_ms": c.batch_interval_ms,
        "optimize": c.optimize,
        **({"worker_threads": c.worker_threads} if c.worker_threads is not None else {}),
    }


def bench_dict(bench: YsbBench) -> dict[str, Any]:
    return {
        "events": bench.events,
        "rate": bench.rate,
        "seed": bench.seed,
        "window_ms": bench.window_ms,
        "format": bench.format,
        "watermark_delay_ms": bench.watermark_delay_ms,
        "config": config_dict(bench),
        "files": bench.file_count if bench.format in ("ndjson", "parquet") else None,
        "partitions": partition_count(bench) if bench.format == "kafka" else None,
    }


def report_dict(report: Report) -> dict[str, Any]:
    """A `bench ysb` report as JSON-ready data (with the extra experiments it ran)."""
    bench = report.bench
    data: dict[str, Any] = {
        "bench": bench_dict(bench),
        "machine": machine(),
        "engine": _engine_dict(report.engine),
        "latency": latency_dict(report.latency) if report.latency is not None else None,
    }
    if report.polars is not None:
        rate = bench.events / report.polars.seconds if report.polars.seconds > 0 else float("inf")
        data["polars"] = {
            "seconds": report.polars.seconds,
            "events_per_s": rate,
            "ratio": _ratio(report.engine.events_per_s, rate),
            "equal": report.ok,
            "difference": report.difference,
        }
    data.update(report.extra)
    return data
