"""Event-time windows, defined once: the windows of an event time, when a window closes, which rows are late.

Windows are [start, end) in epoch milliseconds: the start is in, the end is not.

- TUMBLE(size): the one window that starts at floor(t / size) * size.
- HOP(slide, size): every window of `size` that starts at a multiple of
  `slide` and holds t; their starts run from `first_start(t)`, the smallest
  multiple of `slide` above t - size, to `last_start(t)`, floor(t / slide) *
  slide: at most ceil(size / slide) windows (`max_windows`).
- SESSION(gap): an event alone is the session [t, t + gap); sessions of one
  key merge when one starts before the previous one ends
  (`starts_new_session`), so events less than `gap` apart share a session.

A window closes when the watermark reaches its end: `is_closed(end, wm)`
is end <= wm. A row is late, against the watermark as of the end of the
previous batch, when the first of its windows (the one that ends first) has
closed (`Windows.is_late`): for TUMBLE and SESSION its only window; for HOP
any of its windows, and it still goes into the ones that are open and is
counted once. CUMULATE likewise: late when its smallest window [start,
floor(t / step) * step + step) has closed (Flink's rule: the row's step
"slice" ended at or before the watermark); it still goes into the larger
windows of its start that are open (Flink drops it), counted once. A row
with no event time (NULL) belongs to no window: late.

Each formula is written ONCE, over `Time`: a plain int, a polars expression
or a polars Series. All three have the same +, -, *, // and comparisons,
and their // on integers rounds towards minus infinity (times before 1970
too), so `state_small`'s Python loop and the polars queries of `kernels`
and `state` compute the same values by construction. Only NULLs differ
(None against polars' nulls): the polars forms (`late_expr`, `expand_hop`)
and the plain forms (`is_late_value`, `late_before`, `open_windows`) sit
side by side below. tests/test_windows.py checks every form against the
others and against a brute-force enumeration of window starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence, TypeVar

import polars as pl

from stream_dsl.ir.column_names import HOP_OFFSET, WINDOW_END, WINDOW_START
from stream_dsl.ir.definitions import WindowSpec

Time = TypeVar("Time", int, pl.Expr, pl.Series)
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)

NO_WATERMARK = -(2**62)  # no watermark yet: below every event time, so no row is late and no window closes


def watermark_or_min(wm: int | None) -> int:
    """A watermark as a number: no watermark compares below every time."""
    return NO_WATERMARK if wm is None else wm


def watermark_lit(wm: int | None) -> pl.Expr:
    """A watermark as a polars Int64 literal (`watermark_or_min`)."""
    return pl.lit(watermark_or_min(wm), dtype=pl.Int64)


def is_closed(end: Time, wm: Time | int) -> Time:
    """Whether a window ending at `end` has closed at watermark `wm` (emitted in EMIT final, then dropped)."""
    return end <= wm


def is_open(end: Time, wm: Time | int) -> Time:
    """Whether a window ending at `end` is still open at watermark `wm` (not `is_closed`)."""
    return end > wm


def ends_after(end: Time, t: Time) -> Time:
    """Whether a window ending at `end`, starting at or before `t`, holds `t`."""
    return end > t


def starts_new_session(start: Time, previous_end: Time) -> Time:
    """Whether an interval starting at `start` starts a new session after one ending at `previous_end`."""
    return start >= previous_end


@dataclass(frozen=True, slots=True)
class Windows:
    """The windows of one WindowSpec: `size` is a TUMBLE's or HOP's length, a CUMULATE's max size or a SESSION's gap.

    `slide` is a HOP's slide, a CUMULATE's step, a TUMBLE's size (a TUMBLE
    is a HOP whose slide is its size), and 1 for a SESSION (unused).
    """

    kind: str
    size: int
    slide: int

    @classmethod
    def of(cls, spec: WindowSpec) -> "Windows":
        if spec.kind in ("hop", "cumulate"):
            assert spec.slide_ms is not None
            return cls(spec.kind, spec.size_ms, spec.slide_ms)
        return cls(spec.kind, spec.size_ms, spec.size_ms if spec.kind == "tumble" else 1)

    # ------------------------------------------------------------ formulas, for ints and polars alike

    def last_start(self, t: Time) -> Time:
        """The start of the latest window that holds `t` (TUMBLE: its only window; CUMULATE: all; SESSION: t)."""
        if self.kind == "session":
            return t
        if self.kind == "cumulate":
            return t // self.size * self.size
        return t // self.slide * self.slide

    def first_start(self, t: Time) -> Time:
        """The start of the earliest window that holds `t`: the window of `t` that ends (and closes) first."""
        if self.kind != "hop":
            return self.last_start(
                t
            )  # the only window, or CUMULATE's only start (for TUMBLE the formula below gives the same, slower)
        return (t - self.size) // self.slide * self.slide + self.slide

    def nth_start(self, t: Time, j: Time | int) -> Time:
        """The start of the `j`th window back from `last_start(t)`; it holds `t` when its end is above `t`."""
        if self.kind == "cumulate":
            return self.last_start(t)  # one start; the windows differ in their ends (`nth_window`)
        return self.last_start(t) - j * self.slide

    def nth_window(self, t: Time, j: Time | int) -> tuple[Time, Time]:
        """(start, end) of the `j`th window of `t`, latest end first; it holds `t` when its end is above `t`.

        HOP: the `j`th start back from `last_start(t)`; CUMULATE: the
        common start, and the `j`th end back from the largest window's.
        """
        start = self.nth_start(t, j)
        if self.kind == "cumulate":
            return start, start + self.size - j * self.slide
        return start, start + self.size

    def end(self, start: Time) -> Time:
        """The end of the window that starts at `start` (CUMULATE: of its largest window)."""
        return start + self.size

    def first_end(self, t: Time) -> Time:
        """The end of the window of `t` that ends (and closes) first."""
        if self.kind == "cumulate":
            return t // self.slide * self.slide + self.slide
        return self.end(self.first_start(t))

    def bounds(self, t: Time) -> tuple[Time, Time]:
        """(start, end) of the one window of `t`: TUMBLE, or a SESSION's single event."""
        start = self.last_start(t)  # for HOP, the latest of several: see open_windows, expand_hop
        return start, start + self.size  # `end`, inlined: state_small calls this per row

    def is_late(self, t: Time, wm: Time | int) -> Time:
        """Whether an event at (non-NULL) `t` is late at watermark `wm`: its first window has closed."""
        return is_closed(self.first_end(t), wm)

    @property
    def max_windows(self) -> int:
        """How many windows can hold one event time: ceil(size / slide) for HOP, size / step for CUMULATE, else 1."""
        if self.kind == "cumulate":
            return self.size // self.slide
        return -(-self.size // self.slide) if self.kind == "hop" else 1

    # ------------------------------------------------------------ plain ints (state_small's Python loop)

    def first_open_start(self, wm: int) -> int:
        """The earliest window start still open at watermark `wm`: the smallest start whose end is above `wm`."""
        if self.kind == "session":
            return wm - self.size + 1
        if self.kind == "cumulate":  # its starts are multiples of max_size; `end` is its largest window's
            return ((wm - self.size) // self.size + 1) * self.size
        return ((wm - self.size) // self.slide + 1) * self.slide

    def late_before(self, wm: int | None) -> int | None:
        """The earliest event time not late at `wm`: `is_late(t, wm)` iff t < this (None: no watermark, none late).

        `is_late` solved for t, so a batch's late rows are counted with one
        comparison per row, or from the time column alone.
        """
        if wm is None:
            return None
        if self.kind == "cumulate":  # first_end(t) > wm
            return wm // self.slide * self.slide
        if self.kind == "session":
            return self.first_open_start(wm)
        return self.first_open_start(wm) + self.size - self.slide  # its first window starts at first_open_start

    def is_late_value(self, t: int | None, wm: int | None) -> bool:
        """`is_late` of one event time, or None (no window: late)."""
        return t is None or bool(self.is_late(t, watermark_or_min(wm)))

    def open_windows(self, t: int, wm: int | None) -> list[tuple[int, int]]:
        """(start, end) of every window that holds `t` and is open at `wm`, latest start first (as `expand_hop`).

        The starts from `last_start(t)` down to `first_start(t)`, or to
        `first_open_start(wm)` if that is later; the tests check this
        against `nth_start`, `ends_after` and `is_open`, which `expand_hop` uses.
        """
        if self.kind == "cumulate":
            start, lowest_end = self.last_start(t), self.first_end(t)
            if wm is not None:
                lowest_end = max(lowest_end, wm // self.slide * self.slide + self.slide)  # the first end above wm
            return [(start, end) for end in range(start + self.size, lowest_end - 1, -self.slide)]
        lowest = self.first_start(t)
        if wm is not None:
            lowest = max(lowest, self.first_open_start(wm))
        size = self.size
        return [(start, start + size) for start in range(self.last_start(t), lowest - 1, -self.slide)]

    def open_windows_of(self, times: Sequence[int | None], wm: int | None) -> Iterator[tuple[int, int, int]]:
        """(row, start, end) of every window of every (non-NULL) time of a batch that is open at `wm`.

        `open_windows` for a whole batch, latest start first per row. The
        formulas of `first_start`, `first_open_start`, `last_start` and `end`
        are inlined here, side by side with the ones they copy: a method
        call per row cost HOP aggregates in `state_small` a fifth of their
        time. tests/test_windows.py pins them to the originals.
        """
        assert self.kind != "session", "a session's window starts at its event: see bounds"
        size, slide = self.size, self.slide
        if self.kind == "cumulate":
            yield from self._cumulate_windows_of(times, wm)
            return
        floor = None if wm is None else ((wm - size) // slide + 1) * slide  # first_open_start(wm)
        for r, t in enumerate(times):
            if t is None:
                continue
            lowest = (t - size) // slide * slide + slide  # first_start(t)
            if floor is not None and lowest < floor:
                lowest = floor
            for start in range(t // slide * slide, lowest - 1, -slide):  # from last_start(t)
                yield r, start, start + size  # end(start)

    def _cumulate_windows_of(self, times: Sequence[int | None], wm: int | None) -> Iterator[tuple[int, int, int]]:
        """`open_windows_of` for CUMULATE, with `last_start`, `first_end` and `open_windows`' bound inlined."""
        size, step = self.size, self.slide
        floor = None if wm is None else wm // step * step + step  # the first end above wm
        for r, t in enumerate(times):
            if t is None:
                continue
            start = t // size * size  # last_start(t)
            lowest = t // step * step + step  # first_end(t)
            if floor is not None and lowest < floor:
                lowest = floor
            for end in range(start + size, lowest - 1, -step):
                yield r, start, end

    # ------------------------------------------------------------ polars

    def late_expr(self, t: pl.Expr, wm: int | None) -> pl.Expr:
        """`is_late_value` over a column of epoch ms: NULL times are late."""
        return t.is_null() | self.is_late(t, watermark_lit(wm))

    def expand_hop(self, frame: Frame, time: str, wm: int | None) -> Frame:
        """Each row once per window that holds it and is open at `wm` (`open_windows`), in WINDOW_START/END.

        For HOP and CUMULATE. `time` is an Int64 column of epoch ms without
        NULLs. The rows keep the HOP_OFFSET column (the window's `nth_window`
        index): a lazy
        caller selects its columns next anyway, and a drop would cost a
        query node.
        """
        offsets = pl.DataFrame({HOP_OFFSET: pl.Series(range(self.max_windows), dtype=pl.Int64)})
        t = pl.col(time)
        expanded = frame.join(offsets.lazy() if isinstance(frame, pl.LazyFrame) else offsets, how="cross")
        start, end = self.nth_window(t, pl.col(HOP_OFFSET))
        expanded = expanded.with_columns(start.alias(WINDOW_START), end.alias(WINDOW_END))
        keep = ends_after(pl.col(WINDOW_END), t)  # every nth_start is at or before t
        if wm is not None:
            keep = keep & is_open(pl.col(WINDOW_END), wm)
        return expanded.filter(keep)
