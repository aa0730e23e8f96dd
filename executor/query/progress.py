"""A micro-batch's progress dict: the fields every executor reports, built in one place.

`QueryHandle.progress()` returns these, oldest first. The multiprocess
executors add their scheduling metrics (group, driver messages, per-stage
delays) to the same base.
"""

from __future__ import annotations

from typing import Any, Iterable

from executor import kernels
from executor.state.operators import watermark_datetime


def batch_report(*, batch_id: int, rows_in: int, rows_out: int, late_rows: int, dead_letters: int,
                 watermark: int | None, duration_ms: float, latency_ms: float, state_groups: int,
                 stage_rows: dict[int, int], shuffled: Iterable[dict[str, Any]],
                 reads: Iterable[dict[str, Any]], executor: str) -> dict[str, Any]:
    """The progress of one finished micro-batch (see `QueryHandle.progress`)."""
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
        **kernels.counter_report(list(shuffled), list(reads)),
    }
