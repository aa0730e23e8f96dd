"""`stream-dsl bench memory`: peak resident memory of the YSB query against the length of the stream.

Memory should be flat in the length of the stream: the state is the open
windows, not the events seen. Each size runs in a fresh Python process (so
nothing from an earlier run counts), as the throughput run of `bench ysb`
(realtime off, generated events, polars baseline skipped: it would hold
every event in memory). While the query runs, a thread samples
`/proc/<pid>/status` of the driver process and of every process below it
(the forkserver and the workers it forks) every 50 ms: VmHWM is each
process's peak resident set, VmRSS their sum at that moment. At the end `resource.getrusage` gives this process's
peak as a cross-check. The report lists, per size, the peak of the driver
and of each worker, their total (the forkserver and the resource tracker,
fixed helpers, are left out), and the growth of the total from the first
size.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
from typing import Any, Sequence, TextIO

from stream_dsl.errors import DSLError

__all__ = ["read_status_kb", "descendants_of", "MemorySampler", "measure_here", "run_memory"]

SAMPLE_S = 0.05


def read_status_kb(pid: int, keys: Sequence[str] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """Fields of /proc/<pid>/status in kB ({} when the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name in keys:
                    out[name] = int(value.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return out


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process (from /proc/*/stat)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1].isdigit():
            parents[int(entry)] = int(fields[1])
    return parents


def descendants_of(pid: int) -> dict[int, int]:
    """Every process below `pid` with its depth: the driver's helpers (the forkserver, the resource
    tracker) are at depth 1, the workers the forkserver forks at depth 2."""
    parents = _parents()
    found: dict[int, int] = {}
    frontier, depth = {pid}, 0
    while frontier:
        depth += 1
        frontier = {child for child, parent in parents.items() if parent in frontier and child not in found}
        found.update({child: depth for child in frontier})
    return found


class MemorySampler:
    """Samples this process and every process below it until stopped: per-pid VmHWM, the peak of the RSS sum."""

    def __init__(self, interval_s: float = SAMPLE_S) -> None:
        self.interval_s = interval_s
        self.hwm_kb: dict[int, int] = {}
        self.depth: dict[int, int] = {}  # 0: this process; 1: its helpers; 2 and more: workers
        self.peak_total_rss_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stream-dsl-memory", daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        me = os.getpid()
        total = 0
        for pid, depth in [(me, 0), *descendants_of(me).items()]:
            status = read_status_kb(pid)
            if not status:
                continue
            total += status.get("VmRSS", 0)
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), status.get("VmHWM", 0))
            self.depth[pid] = depth
        self.peak_total_rss_kb = max(self.peak_total_rss_kb, total)

    def peaks(self, depth: int) -> list[int]:
        """Peaks (kB) of the processes at `depth` (2: at least 2), largest first."""
        return sorted(
            (
                kb
                for pid, kb in self.hwm_kb.items()
                if self.depth[pid] == depth or (depth >= 2 and self.depth[pid] >= 2)
            ),
            reverse=True,
        )


def measure_here(events: int, context: dict[str, Any], *, rate: float = 1_000_000, seed: int = 1) -> dict[str, Any]:
    """In this process: the throughput run over `events` events, with its memory sampled."""
    from stream_dsl.bench.ysb import YsbBench, run_engine

    bench = YsbBench(events=events, rate=rate, seed=seed, context=tuple(context.items()), duration_s=0)
    with MemorySampler() as sampler:
        run = run_engine(bench)
    driver, workers = sampler.hwm_kb.get(os.getpid(), 0), sampler.peaks(2)
    return {
        "events": events,
        "seconds": run.seconds,
        "events_per_s": run.events_per_s,
        "batches": len(run.progress),
        "driver_peak_kb": driver,
        "worker_peaks_kb": workers,
        "helper_peaks_kb": sampler.peaks(1),  # the forkserver and the resource tracker: fixed, not counted
        "total_peak_kb": driver + sum(workers),
        "peak_total_rss_kb": sampler.peak_total_rss_kb,
        "rusage_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


def _in_child(events: int, context: dict[str, Any], rate: float, seed: int) -> dict[str, Any]:
    """`measure_here` in a fresh Python process."""
    spec = json.dumps({"events": events, "context": context, "rate": rate, "seed": seed})
    # where stream_dsl, optimizer and executor are
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run(
        [sys.executable, "-m", "stream_dsl.bench.memory", spec], capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise DSLError(f"the memory run over {events:,} events failed: {' / '.join(tail)}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _mb(kb: float) -> str:
    return f"{kb / 1024:,.0f} MB"


def run_memory(
    sizes: Sequence[int], context: dict[str, Any], out: TextIO, *, rate: float = 1_000_000, seed: int = 1
) -> list[dict[str, Any]]:
    """Each size in a fresh process; prints one line per size and the growth from the first."""
    from stream_dsl.bench.ysb import context_text

    print(
        f"bench memory: peak resident memory of the YSB query (realtime off, generated events at "
        f"{rate:,.0f} events/s of event time); {context_text(context)}",
        file=out,
    )
    print(
        f"{'events':>14} {'time':>9} {'events/s':>12} {'driver':>9} {'workers':>17} {'total':>9} {'growth':>8}",
        file=out,
    )
    out.flush()
    results: list[dict[str, Any]] = []
    for n in sizes:
        r = _in_child(n, context, rate, seed)
        first = results[0]["total_peak_kb"] if results else r["total_peak_kb"]
        r["growth"] = r["total_peak_kb"] / first - 1 if first else 0.0
        results.append(r)
        workers = " + ".join(_mb(kb) for kb in r["worker_peaks_kb"]) or "-"
        print(
            f"{n:>14,} {r['seconds']:>8.1f}s {r['events_per_s']:>12,.0f} {_mb(r['driver_peak_kb']):>9} "
            f"{workers:>17} {_mb(r['total_peak_kb']):>9} {r['growth']:>+8.1%}",
            file=out,
        )
        out.flush()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    spec = json.loads(args[0])
    result = measure_here(
        int(spec["events"]),
        dict(spec.get("context") or {}),
        rate=float(spec.get("rate", 1e6)),
        seed=int(spec.get("seed", 1)),
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
