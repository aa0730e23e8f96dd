"""What a batch did to rows, per operator: the facts `why` turns into answers.

Every executor collects the same `Diagnostics` per batch (the inline executor
in its runner, each worker for its tasks, merged by the driver) and puts them
in the batch's progress dict:

- `operators`: rows into and out of each operator of each stage, as
  {"stage.position": [rows_in, rows_out]} (position: the operator's index in
  `Stage.operators + (stateful,) + Stage.post`). Counting adds outputs to
  a stage's fused query (`fused_counts.py`; one operator at a time when
  that cannot run), so it is done on sampled batches only, never in
  collect(): `RunConfig.diagnose_every` (every batch for `stream-dsl why`);
  `operators_sampled` says whether this batch was one.
- `lateness`: a histogram of how late the batch's late rows were: how much
  longer a watermark delay would have kept each (LATENESS_BOUNDS_MS buckets;
  the last bucket is everything longer), per stateful stage.
- `open_windows`: per windowed aggregate stage whose tasks ran in a sampled
  batch, after it: how many windows are open (the most one partition holds)
  and the earliest one's [start, end) (epoch ms).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

# Bucket upper bounds (inclusive), in ms: the values a watermark delay is written in, 1 ms to 1 day.
LATENESS_BOUNDS_MS: tuple[int, ...] = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000,
    600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 43_200_000, 86_400_000,
)  # fmt: skip
BUCKETS = len(LATENESS_BOUNDS_MS) + 1  # the last: later than a day


def bucket_of(lateness_ms: np.ndarray) -> np.ndarray:
    """Each lateness's bucket index (values over the last bound go to the overflow bucket)."""
    return np.searchsorted(np.asarray(LATENESS_BOUNDS_MS), lateness_ms, side="left")


def histogram(lateness_ms: np.ndarray, weights: np.ndarray | None = None) -> list[int]:
    counts = np.bincount(bucket_of(lateness_ms), weights=weights, minlength=BUCKETS)
    return [int(c) for c in counts]


def bucket_label(index: int) -> str:
    """'<= 2s' for a bucket's upper bound; '> 1d' for the overflow."""
    if index >= len(LATENESS_BOUNDS_MS):
        return f"> {duration_text(LATENESS_BOUNDS_MS[-1])}"
    return f"<= {duration_text(LATENESS_BOUNDS_MS[index])}"


def duration_text(ms: int) -> str:
    """A duration as a person writes it: 500ms, 2s, 1.5s, 5min, 2h, 1d."""
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)):
        if ms >= size:
            value = ms / size
            return f"{value:g}{unit}" if value == int(value) or unit != "s" else f"{value:.3g}{unit}"
    return f"{ms}ms"


def quantile_bound(counts: list[int], q: float) -> int | None:
    """The smallest bucket bound at or below which at least `q` of the counted rows are (None: no rows,
    or the quantile falls in the overflow bucket)."""
    total = sum(counts)
    if not total:
        return None
    need = q * total
    running = 0
    for index, count in enumerate(counts):
        running += count
        if running >= need - 1e-9:
            return LATENESS_BOUNDS_MS[index] if index < len(LATENESS_BOUNDS_MS) else None
    return None


def add_counts(into: list[int], more: list[int]) -> list[int]:
    if not into:
        return list(more)
    return [a + b for a, b in zip(into, more)]


@dataclass
class Diagnostics:
    """One batch's facts from the tasks one process ran (module doc); merged across workers by the driver."""

    operators: dict[str, list[int]] = field(default_factory=dict)
    lateness: dict[int, list[int]] = field(default_factory=dict)
    open_windows: dict[int, list[int | None]] = field(default_factory=dict)  # stage -> [count, start, end]
    sampled: bool = False
    routed_late: list[pl.DataFrame] = field(default_factory=list)  # late rows for a `late_rows` sink (not counts)

    def count(self, key: str, rows_in: int, rows_out: int) -> None:
        had = self.operators.get(key)
        self.operators[key] = [rows_in, rows_out] if had is None else [had[0] + rows_in, had[1] + rows_out]

    def late(self, stage: int, counts: list[int]) -> None:
        self.lateness[stage] = add_counts(self.lateness.get(stage, []), counts)

    def windows(self, stage: int, count: int, start: int | None, end: int | None) -> None:
        had = self.open_windows.get(stage)
        if had is None:
            self.open_windows[stage] = [count, start, end]
            return
        earlier = had[2] is None or (end is not None and end < had[2])
        # partitions of a stage hold the same windows for their keys: the most any holds, not the sum
        self.open_windows[stage] = [
            max(int(had[0] or 0), count),
            start if earlier else had[1],
            end if earlier else had[2],
        ]

    def merge(self, other: "Diagnostics") -> None:
        for key, (rows_in, rows_out) in other.operators.items():
            self.count(key, rows_in, rows_out)
        for stage, counts in other.lateness.items():
            self.late(stage, counts)
        for stage, (count, start, end) in other.open_windows.items():
            self.windows(stage, int(count or 0), start, end)
        self.sampled = self.sampled or other.sampled
        self.routed_late.extend(other.routed_late)

    def report(self) -> dict[str, Any]:
        """The progress dict's fields."""
        return {
            "operators": {k: list(v) for k, v in sorted(self.operators.items())},
            "operators_sampled": self.sampled,
            "lateness": {f"stage {s}": list(c) for s, c in sorted(self.lateness.items())},
            "open_windows": {
                f"stage {s}": {"count": c, "earliest_start_ms": start, "earliest_end_ms": end}
                for s, (c, start, end) in sorted(self.open_windows.items())
            },
        }


def sampled(batch_id: int, every: int) -> bool:
    """Whether a batch's operators are counted: every `every`-th batch, the first one included."""
    return every > 0 and batch_id % every == 0


def operator_key(stage: int, position: int) -> str:
    return f"{stage}.{position}"


def lateness_of(times_ms: np.ndarray, watermark: int) -> np.ndarray:
    """How much longer a delay would have kept rows at these event times: the watermark they met, minus
    their time, plus one (a row exactly at the watermark is late by 1 ms). An upper bound for windows,
    which keep a row until its window's end passes."""
    return watermark - times_ms + 1
