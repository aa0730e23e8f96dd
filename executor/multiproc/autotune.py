"""AIMD tuning of the group size, as Drizzle does it.

At each group boundary the driver measures the scheduling overhead of the
group just finished: the fraction of the workers' time spent neither
computing nor waiting for data, but at the boundary (reporting to the
driver, the driver's own work, and the next group message). Then:

- overhead above `upper` (default 0.10): the group is too small to
  amortize the boundary; grow G multiplicatively (x `factor`, default 2);
- overhead below `lower` (default 0.05): G is bigger than it needs to be
  (bigger groups delay coordination: stopping, metrics, re-tuning); shrink
  it additively (by `step`, default 1);
- in between: keep G.

Always within [`g_min`, `g_max`] (defaults 1 and 200). A query with
group_size = 'auto' starts at `start` (default 2).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from stream_dsl.errors import DSLError


@dataclass(frozen=True, slots=True)
class AimdBounds:
    """The target overhead band and the group size range (see the module doc)."""

    lower: float = 0.05
    upper: float = 0.10
    g_min: int = 1
    g_max: int = 200
    factor: float = 2.0
    step: int = 1
    start: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.lower <= self.upper <= 1:
            raise DSLError(f"the overhead band needs 0 <= lower <= upper <= 1, got {self.lower}..{self.upper}")
        if not 1 <= self.g_min <= self.g_max:
            raise DSLError(f"group size bounds need 1 <= g_min <= g_max, got {self.g_min}..{self.g_max}")
        if self.factor <= 1 or self.step < 1:
            raise DSLError("AIMD needs factor > 1 and step >= 1")


def next_group_size(current: int, overhead: float, bounds: AimdBounds = AimdBounds()) -> int:
    """The group size after a group whose scheduling overhead fraction was `overhead`."""
    if overhead > bounds.upper:
        grown = max(current + 1, math.ceil(current * bounds.factor))
        return min(bounds.g_max, grown)
    if overhead < bounds.lower:
        return max(bounds.g_min, current - bounds.step)
    return max(bounds.g_min, min(bounds.g_max, current))


def overhead_fraction(boundary_s: float, busy_s: float) -> float:
    """Boundary time over total time (0 when nothing was measured)."""
    total = boundary_s + busy_s
    return boundary_s / total if total > 0 else 0.0


@dataclass
class GroupSizer:
    """The group size of a query: fixed, or tuned by AIMD at every boundary ('auto')."""

    setting: int | str
    bounds: AimdBounds = field(default_factory=AimdBounds)
    history: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=10_000))  # (size, overhead)

    def __post_init__(self) -> None:
        if self.setting == "auto":
            self.size = min(max(self.bounds.start, self.bounds.g_min), self.bounds.g_max)
        elif isinstance(self.setting, int) and self.setting >= 1:
            self.size = self.setting
        else:
            raise DSLError(f"group_size must be a positive integer or 'auto', got {self.setting!r}")

    @property
    def auto(self) -> bool:
        return self.setting == "auto"

    def observe(self, overhead: float) -> int:
        """Record the last group's overhead; returns the size of the next group."""
        self.history.append((self.size, overhead))
        if self.auto:
            self.size = next_group_size(self.size, overhead, self.bounds)
        return self.size
