"""The dataframe API's interval join: `a.join(b, on="k", within=("-5s", "10s"), time="ts")`.

`within=(lower, upper)` bounds `right time - left time` (both ends inclusive), as
`b.ts BETWEEN a.ts + lower AND a.ts + upper` does in SQL; `time=` names the time
column both sides share, or `left_time=` and `right_time=` name one each. It builds
the same plan as the SQL form (`bind/interval_join.py`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from stream_dsl.errors import DSLError
from stream_dsl.frame.expr import to_duration_ms
from stream_dsl.ir.interval import IntervalBounds


def signed_ms(value: Any, what: str) -> int:
    """Milliseconds of a signed duration: '-5s', '10s', '0s', an int (ms) or a timedelta."""
    if isinstance(value, dt.timedelta):
        return int(value / dt.timedelta(milliseconds=1))
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().startswith("-"):
        return -to_duration_ms(value.strip()[1:], what, allow_zero=True)
    return to_duration_ms(value, what, allow_zero=True)


def interval_bounds(within: Any, time: str | None, left_time: str | None, right_time: str | None) -> IntervalBounds:
    """The bound of `join(..., within=..., time=... | left_time=..., right_time=...)` (names not yet resolved)."""
    if not (isinstance(within, (tuple, list)) and len(within) == 2):
        raise DSLError(f"within= takes (lower, upper), e.g. ('-5s', '10s'), got {within!r}")
    if time is not None and (left_time is not None or right_time is not None):
        raise DSLError("an interval join takes time= or left_time= and right_time=, not both")
    left_time, right_time = (time, time) if time is not None else (left_time, right_time)
    if left_time is None or right_time is None:
        raise DSLError("an interval join needs its time columns: time='ts', or left_time= and right_time=")
    lower, upper = signed_ms(within[0], "within's lower bound"), signed_ms(within[1], "within's upper bound")
    if lower > upper:
        raise DSLError(f"within= needs lower <= upper, got {within!r}")
    return IntervalBounds(left_time, right_time, lower, upper)
