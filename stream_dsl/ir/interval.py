"""The time bound of a stream-stream interval join: `right_time - left_time` within [lower, upper].

`a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '10' SECOND`
is the bound `right_time=ts, left_time=ts, lower=-5000, upper=10000` (both inclusive). A strict
comparison (`b.ts < a.ts + ...`) makes its end exclusive. The binder builds these from the ON
clause (`bind/interval_join.py`), the dataframe API from `within=`; the executor's state
(`executor/state/interval_join.py`) keeps and drops rows by them.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream_dsl.ir.expr import format_duration_ms


@dataclass(frozen=True, slots=True)
class IntervalBounds:
    """`right_time - left_time` in [lower_ms, upper_ms]; a strict end excludes its bound.

    `left_time` names a column of the join's left input, `right_time` one of its right input
    (the right input's own name, before any renaming in the join's output).
    """

    left_time: str
    right_time: str
    lower_ms: int
    upper_ms: int
    lower_strict: bool = False
    upper_strict: bool = False
    # A window join: the times are window ends, and no row of a window comes once the watermark reached its end
    # (its aggregate closed it), so rows leave the state then, not one watermark later.
    window_end: bool = False

    def mirrored(self) -> "IntervalBounds":
        """The same bound with the sides swapped: `left - right` within [-upper, -lower]."""
        return IntervalBounds(
            self.right_time,
            self.left_time,
            -self.upper_ms,
            -self.lower_ms,
            self.upper_strict,
            self.lower_strict,
            self.window_end,
        )

    @property
    def empty(self) -> bool:
        """No difference satisfies the bound (then no pair can ever match)."""
        if self.lower_ms == self.upper_ms:
            return self.lower_strict or self.upper_strict
        return self.lower_ms > self.upper_ms

    def describe(self, right_name: str | None = None) -> str:
        """`r.ts - l.ts in [-5s, 10s]` (`(` or `)` for a strict end), naming the right column `right_name`."""
        lo, hi = format_duration_ms(self.lower_ms), format_duration_ms(self.upper_ms)
        opening, closing = "(" if self.lower_strict else "[", ")" if self.upper_strict else "]"
        text = f"{right_name or self.right_time} - {self.left_time} in {opening}{lo}, {hi}{closing}"
        return text + (" (windows)" if self.window_end else "")
