"""Watermarks: each source's event-time clock, the query watermark over them, and +inf (`WM_INF`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

WM_INF = 2**62  # the watermark after the end of input: every window closes


def watermark_datetime(wm: int | None) -> dt.datetime | None:
    """A watermark for people: a naive UTC datetime, datetime.max for +inf, None for none."""
    if wm is None:
        return None
    if wm >= WM_INF:
        return dt.datetime.max
    return dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=wm)


@dataclass
class SourceClock:
    """Event-time progress of one source: `delay_ms` None means the source has no watermark."""

    delay_ms: int | None
    max_event_ms: int | None = None
    exhausted: bool = False

    def observe(self, max_event_ms: int | None, exhausted: bool) -> None:
        if max_event_ms is not None and (self.max_event_ms is None or max_event_ms > self.max_event_ms):
            self.max_event_ms = max_event_ms
        self.exhausted = self.exhausted or exhausted

    @property
    def watermark(self) -> int | None:
        if self.exhausted:
            return WM_INF
        if self.delay_ms is None or self.max_event_ms is None:
            return None
        return self.max_event_ms - self.delay_ms


def query_watermark(clocks: list[SourceClock], previous: int | None) -> int | None:
    """The query watermark after a batch: min over watermarked sources, +inf when all are done."""
    if clocks and all(c.exhausted for c in clocks):
        return WM_INF
    marks = [c.watermark for c in clocks if c.delay_ms is not None]
    known = [m for m in marks if m is not None]
    if not marks or len(known) < len(marks):
        return previous
    wm = min(known)
    return wm if previous is None else max(previous, wm)
