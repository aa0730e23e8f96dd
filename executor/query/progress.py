"""A micro-batch's progress dict: the fields every executor reports, built in one place.

`QueryHandle.progress()` returns these, oldest first. The multiprocess
executors add their scheduling metrics (group, driver messages, per-stage
delays) to the same base.
"""

from __future__ import annotations

from executor.query.diagnostics import Diagnostics

import time
from typing import Any, Iterable, Mapping

from executor import kernels
from executor.state.clocks import WM_INF, watermark_datetime


def add_backlog(total: dict[str, dict[str, int]], source: str, backlog: Mapping[str, int]) -> None:
    """Add one source stage's backlog to the batch's, per source name: the parts of a split stream (each a
    stage of its own, `splits`) add up to the stream's backlog."""
    mine = total.setdefault(source, {})
    for key, count in backlog.items():
        mine[key] = mine.get(key, 0) + count


def batch_report(
    *,
    batch_id: int,
    rows_in: int,
    rows_out: int,
    late_rows: int,
    dead_letters: int,
    watermark: int | None,
    duration_ms: float,
    latency_ms: float,
    state_groups: int,
    stage_rows: dict[int, int],
    shuffled: Iterable[dict[str, Any]],
    reads: Iterable[dict[str, Any]],
    executor: str,
    wall_offsets: Iterable[int] = (),
    backlog: Mapping[str, dict[str, int]] | None = None,
    late_sides: Mapping[int, tuple[int, int]] | None = None,
    diagnostics: Diagnostics | None = None,
) -> dict[str, Any]:
    """The progress of one finished micro-batch (see `QueryHandle.progress`).

    Overload shows in two fields. `event_lag_ms`: for sources paced to the
    wall clock (`wall_offsets`), how long ago on the wall clock the newest
    closed event time (the watermark) was due; it grows without bound when
    the query cannot keep up, while `latency_ms` (one batch's own time) does
    not. `backlog`: per source, what it knows is still waiting to be read.
    `late_rows_by_side`: each interval join's late rows so far, per side
    (`{"stage 3": {"left": 1, "right": 2}}`).
    """
    return {
        "batch_id": batch_id,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "late_rows": late_rows,
        "dead_letters": dead_letters,
        "watermark": watermark_datetime(watermark),
        "duration_ms": duration_ms,
        "latency_ms": latency_ms,
        "state_groups": state_groups,
        "stage_rows": stage_rows,
        "executor": executor,
        "event_lag_ms": event_lag_ms(watermark, wall_offsets),
        "backlog": dict(backlog or {}),
        "late_rows_by_side": {
            f"stage {stage}": {"left": left, "right": right}
            for stage, (left, right) in sorted((late_sides or {}).items())
        },
        **kernels.counter_report(list(shuffled), list(reads)),
        **(diagnostics or Diagnostics()).report(),
    }


def event_lag_ms(watermark: int | None, wall_offsets: Iterable[int], now_ms: float | None = None) -> float | None:
    """Wall clock minus the moment the watermark's event time was due (None: no paced source, no watermark)."""
    offsets = list(wall_offsets)
    if not offsets or watermark is None or watermark >= WM_INF:
        return None
    now = time.time() * 1000.0 if now_ms is None else now_ms
    return max(0.0, now - (watermark + max(offsets)))


def sum_sides(parts: Iterable[Mapping[int, tuple[int, int]]]) -> dict[int, tuple[int, int]]:
    """Late rows per interval-join side, summed over the workers' parts."""
    total: dict[int, tuple[int, int]] = {}
    for part in parts:
        for stage, (left, right) in part.items():
            had = total.get(stage, (0, 0))
            total[stage] = (had[0] + left, had[1] + right)
    return total
