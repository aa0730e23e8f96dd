"""PNG plots of the benchmarks, drawn with matplotlib (the optional `bench` extra).

- `latency_cdf.png`: the CDF of YSB event latency for drizzle, bsp and
  drizzle with the optimizer off (the shape of the Drizzle paper's figure);
- `scheduling.png`: time per iteration of the scheduling micro-benchmark
  against the group size, with BSP as a line;
- `throughput_vs_rate.png`: achieved against offered throughput, and the
  p99 latency at each rate.

The functions take the plain dicts the benchmarks return (`--json` writes
the same), so a plot can be redrawn from a results file without running
anything again (`stream-dsl bench plots --from results.json`). matplotlib
is imported only here and only when drawing, with the Agg backend (no
display needed).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

from stream_dsl.errors import DSLError

__all__ = [
    "pyplot",
    "compare_plot",
    "latency_cdf",
    "scheduling_plot",
    "throughput_vs_rate",
    "write_plots",
    "INSTALL_HINT",
]

INSTALL_HINT = "pip install 'stream-dsl[bench]'"
TARGET_P99_MS = 200.0
COLORS = {"drizzle": "#1f77b4", "bsp": "#d62728", "drizzle, optimizer off": "#ff7f0e"}


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend, or a DSLError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise DSLError(f"plots need matplotlib, which is not installed; install it with: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _footer(fig: Any, text: str | None) -> None:
    if text:
        fig.text(0.01, 0.01, text, fontsize=7, color="#555555", ha="left", va="bottom", wrap=True)


def _save(fig: Any, path: str) -> str:
    try:
        fig.savefig(path, dpi=120)
    except OSError as e:
        raise DSLError(f"cannot write the plot {path}: {e.strerror or e}") from None
    finally:
        pyplot().close(fig)
    return path


def latency_cdf(series: dict[str, Sequence[float]], path: str, *, title: str, footer: str | None = None) -> str:
    """The CDF of each series of latencies (ms), one line per configuration."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for label, values in series.items():
        ordered = sorted(values)
        if not ordered:
            continue
        n = len(ordered)
        ax.step(
            ordered,
            [(i + 1) / n for i in range(n)],
            where="post",
            label=f"{label} (n={n:,})",
            color=COLORS.get(label),
            linewidth=2,
        )
    ax.axvline(TARGET_P99_MS, color="#888888", linestyle="--", linewidth=1)
    ax.text(TARGET_P99_MS, 1.03, "p99 target 200 ms", color="#666666", fontsize=8, ha="center")
    ax.axhline(0.99, color="#bbbbbb", linestyle=":", linewidth=1)
    ax.text(0.995, 0.985, "p99", color="#888888", fontsize=7, ha="right", va="top", transform=ax.get_yaxis_transform())
    ax.set_xlabel("event latency (ms): sink write minus the window's end in the generator's clock")
    ax.set_ylabel("fraction of window rows")
    ax.set_ylim(0, 1.07)
    longest = max((max(v) for v in series.values() if len(v)), default=0.0)
    ax.set_xlim(0, max(longest, TARGET_P99_MS) * 1.1)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _footer(fig, footer)
    return _save(fig, path)


def scheduling_points(report: dict[str, Any]) -> tuple[list[tuple[int, float]], dict[str, float]]:
    """(group size, ms per iteration) of the Drizzle modes of a run_scheduling_bench report, and each BSP mode's."""
    points, baselines = [], {}
    modes = {**report["modes"], **(report.get("baselines") or {})}  # baselines: other BSP variants, if measured
    for name, mode in modes.items():
        if name.startswith("bsp"):
            baselines[name] = mode["ms_per_iteration"]
        elif "group" in name:
            size = int(name.rsplit("group", 1)[1].strip(" )"))
            points.append((size, mode["ms_per_iteration"]))
    return sorted(points), baselines


def scheduling_plot(report: dict[str, Any], path: str, *, footer: str | None = None) -> str:
    """Time per iteration against group size (log scale), each BSP mode as a horizontal line."""
    plt = pyplot()
    points, baselines = scheduling_points(report)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    if points:
        ax.plot(
            [g for g, _ in points],
            [ms for _, ms in points],
            marker="o",
            linewidth=2,
            color=COLORS["drizzle"],
            label="drizzle (group 1 = pre-scheduling only)",
        )
        for g, ms in points:
            ax.annotate(f"{ms:.2f}", (g, ms), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
    for (name, ms), style in zip(baselines.items(), ("--", ":", "-.")):
        ax.axhline(ms, color=COLORS["bsp"], linestyle=style, linewidth=1.5, label=f"{name} ({ms:.2f} ms)")
    ax.set_xscale("log")
    if points:
        ax.set_xticks([g for g, _ in points], [str(g) for g, _ in points])
        ax.minorticks_off()
    ax.set_xlabel("group size (micro-batches scheduled at once)")
    ax.set_ylabel("time per iteration (ms)")
    highest = max([ms for _, ms in points] + list(baselines.values()), default=1.0)
    ax.set_ylim(0, highest * 1.2)
    runs = f", median of {report['repeat']} runs" if report.get("repeat") else ""
    ax.set_title(
        f"Scheduling micro-benchmark: {report['iterations']} micro-batches x {report['rows_per_batch']} "
        f"rows,\nmap -> shuffle -> grouped aggregate, {report['workers']} workers{runs}",
        fontsize=10,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _footer(fig, footer)
    return _save(fig, path)


def throughput_vs_rate(
    points: Sequence[dict[str, Any]],
    path: str,
    *,
    title: str,
    footer: str | None = None,
    growth_rate: float | None = None,
) -> str:
    """Achieved against offered events per second, with the p99 latency of each rate on a second axis."""
    plt = pyplot()
    ordered = sorted(points, key=lambda p: p["rate"])
    rates = [p["rate"] / 1e6 for p in ordered]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    ax.plot(rates, rates, color="#aaaaaa", linestyle=":", label="offered = achieved")
    ax.plot(
        rates,
        [p["achieved_events_per_s"] / 1e6 for p in ordered],
        marker="o",
        linewidth=2,
        color=COLORS["drizzle"],
        label="achieved throughput",
    )
    ax.set_xlabel("offered input rate (million events/s)")
    ax.set_ylabel("achieved throughput (million events/s)")
    ax.set_ylim(bottom=0)
    ax.set_xlim(left=0)
    latency = ax.twinx()
    p99 = [p["percentiles_ms"].get("p99") if p["percentiles_ms"] else None for p in ordered]
    latency.plot(
        [r for r, v in zip(rates, p99) if v is not None],
        [v for v in p99 if v is not None],
        marker="s",
        linewidth=1.5,
        color=COLORS["bsp"],
        label="p99 event latency",
    )
    latency.set_ylabel("p99 event latency (ms)")
    latency.set_ylim(bottom=0)
    if growth_rate is not None:
        ax.axvline(growth_rate / 1e6, color="#888888", linestyle="--", linewidth=1)
        ax.text(
            growth_rate / 1e6, 0.02, " latency grows", color="#666666", fontsize=8, transform=ax.get_xaxis_transform()
        )
    lines = ax.get_legend_handles_labels()
    more = latency.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="upper left")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _footer(fig, footer)
    return _save(fig, path)


def write_plots(data: dict[str, Any], out_dir: str, *, command: str | None = None) -> list[str]:
    """Every plot the results in `data` allow, as PNG files in `out_dir`; returns their paths."""
    from stream_dsl.bench.experiments import machine_text

    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise DSLError(f"cannot create {out_dir}: {e.strerror or e}") from None
    footer = "; ".join(
        x
        for x in (machine_text(data["machine"]) if data.get("machine") else None, f"$ {command}" if command else None)
        if x
    )
    written = []
    bench = data.get("bench", {})
    config = bench.get("config", {})
    series = {label: r["latencies_ms"] for label, r in (data.get("compare") or {}).items()}
    if not series and data.get("latency"):
        series = {config.get("executor", "drizzle"): data["latency"]["latencies_ms"]}
    if series:
        rate = bench.get("rate", 0)
        title = (
            f"YSB event latency CDF at {rate / 1e6:g}M events/s, {config.get('workers', 2)} workers, "
            f"{config.get('batch_interval_ms', 100)} ms batches, group size {config.get('group_size', 10)}, "
            f"{bench.get('window_ms', 10000) / 1000:g} s windows"
        )
        written.append(latency_cdf(series, os.path.join(out_dir, "latency_cdf.png"), title=title, footer=footer))
    if data.get("scheduling"):
        written.append(scheduling_plot(data["scheduling"], os.path.join(out_dir, "scheduling.png"), footer=footer))
    by_rate = (data.get("scaling") or {}).get("by_rate")
    if by_rate:
        title = (
            f"YSB throughput against input rate, executor {config.get('executor', 'drizzle')}, "
            f"{config.get('workers', 2)} workers, {config.get('batch_interval_ms', 100)} ms batches"
        )
        written.append(
            throughput_vs_rate(
                by_rate,
                os.path.join(out_dir, "throughput_vs_rate.png"),
                title=title,
                footer=footer,
                growth_rate=data["scaling"].get("growth_rate"),
            )
        )
    return written


def compare_plot(data: dict[str, Any], path: str, *, footer: str | None = None) -> str:
    """`bench compare`'s table as a figure: YSB throughput of stream-dsl, polars and DuckDB per event format
    (left), and every ratio of the table against its target (right)."""
    plt = pyplot()
    rows = data.get("rows") or []
    ysb = [r for r in rows if "engine_events_per_s" in r]
    ratios = [r for r in rows if r.get("ratio") is not None and r["ratio"] == r["ratio"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [1, 1.2]})
    systems = (
        ("stream-dsl", "engine_events_per_s", COLORS["drizzle"]),
        ("plain polars", "polars_events_per_s", "#2ca02c"),
        ("DuckDB", "duckdb_events_per_s", "#9467bd"),
    )
    width = 0.8 / len(systems)
    for k, (label, key, color) in enumerate(systems):
        xs = [i + (k - 1) * width for i, r in enumerate(ysb) if key in r]
        ys = [r[key] / 1e6 for r in ysb if key in r]
        if xs:
            left.bar(xs, ys, width=width, label=label, color=color)
    left.set_xticks(range(len(ysb)), [r["name"].split(",")[0].removeprefix("YSB ") for r in ysb])
    left.set_ylabel("million events/s (more is better)")
    left.set_title("YSB throughput over the same events", fontsize=10)
    left.grid(alpha=0.3, axis="y")
    if ysb:
        left.legend(fontsize=8)
    labels = [r["ratio_text"].split(" (")[0] + "\n" + r["name"][:48] for r in ratios]
    right.barh(range(len(ratios)), [r["ratio"] for r in ratios], color=COLORS["drizzle"])
    right.set_yticks(range(len(ratios)), labels, fontsize=7)
    right.invert_yaxis()
    right.axvline(1.0, color="#888888", linestyle="--", linewidth=1)
    for i, r in enumerate(ratios):
        right.annotate(
            f"{r['ratio']:.2f}  target {r['target'] or '-'}",
            (r["ratio"], i),
            xytext=(4, -3),
            textcoords="offset points",
            fontsize=7,
        )
    right.set_xlim(0, max([1.0] + [r["ratio"] for r in ratios]) * 1.5)
    right.set_xlabel("ratio (stream-dsl / polars; or as labelled)")
    right.set_title("Ratios of the table", fontsize=10)
    right.grid(alpha=0.3, axis="x")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    _footer(fig, footer)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    return _save(fig, path)
