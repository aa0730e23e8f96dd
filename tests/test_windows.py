"""The window formulas of `executor/windows.py` against a brute-force definition, in both their forms.

The oracle enumerates candidate window starts around an event time and
keeps the windows [start, start + size) that hold it; lateness is "the
window that ends first has closed" (end <= watermark), closing is end <=
watermark. The plain-int form (state_small's Python loop) and the polars
form (kernels' and state's queries) must both match it, for random sizes,
slides, watermarks and times, before 1970 too.
"""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.state.windows import (
    NO_WATERMARK,
    Windows,
    ends_after,
    is_closed,
    is_open,
    watermark_lit,
    watermark_or_min,
)
from stream_dsl.ir.column_names import HOP_OFFSET, WINDOW_END, WINDOW_START
from stream_dsl.ir.definitions import WindowSpec
from budget import examples

TIMES = st.one_of(st.integers(-(10**13), 10**13), st.integers(-5_000, 5_000))  # ms: about +-300 years, or near 0
SIZES = st.one_of(st.integers(1, 50), st.integers(1, 10**7))


@st.composite
def windows(draw: st.DrawFn, kinds: tuple[str, ...] = ("tumble", "hop", "cumulate", "session")) -> Windows:
    kind = draw(st.sampled_from(kinds))
    size = draw(SIZES)
    # the binder refuses a slide above the size; at most 500 windows per time keep the oracle quick
    slide = draw(st.integers(max(1, size // 500), size)) if kind == "hop" else None
    if kind == "cumulate":  # max size = step * a whole number of steps
        slide = size
        size = slide * draw(st.integers(1, 20))
    return Windows.of(WindowSpec(kind, "ts", size, slide))


def brute_windows(w: Windows, t: int) -> list[tuple[int, int]]:
    """Every window holding `t`, latest start (CUMULATE: latest end) first, by enumerating candidates."""
    if w.kind == "session":
        return [(t, t + w.size)]
    if w.kind == "cumulate":  # every [start, start + k * step) with start a multiple of max_size
        start = (t - w.size) // w.size * w.size + w.size
        ends = range(start + w.slide, start + w.size + 1, w.slide)
        return sorted(((start, e) for e in ends if start <= t < e), reverse=True)
    first_candidate = (t - w.size - w.slide) // w.slide * w.slide  # a multiple of slide at least size below t
    starts = range(first_candidate, t + 1, w.slide)
    return sorted(((s, s + w.size) for s in starts if s <= t < s + w.size), reverse=True)


def brute_late(w: Windows, t: int | None, wm: int | None) -> bool:
    """Late: no event time, or the window of `t` that ends first has closed at `wm`."""
    if t is None:
        return True
    return min(end for _, end in brute_windows(w, t)) <= (NO_WATERMARK if wm is None else wm)


def brute_first_open_start(w: Windows, wm: int) -> int:
    """The smallest window start whose window is still open at `wm`."""
    if w.kind == "session":
        return next(s for s in range(wm - w.size - 2, wm + 2) if s + w.size > wm)
    if w.kind == "cumulate":  # the start of a largest window (max_size long) still open
        candidate = (wm - 2 * w.size) // w.size * w.size
        return next(s for s in range(candidate, wm + w.size + 1, w.size) if s + w.size > wm)
    candidate = (wm - w.size - w.slide) // w.slide * w.slide
    return next(s for s in range(candidate, wm + w.slide + 1, w.slide) if s + w.size > wm)


# ---------------------------------------------------------------- plain ints against the oracle


@settings(max_examples=examples(400), deadline=None)
@given(windows(), TIMES)
def test_the_windows_of_a_time_are_the_enumerated_ones(w: Windows, t: int) -> None:
    expected = brute_windows(w, t)
    assert w.open_windows(t, None) == expected
    assert len(expected) <= w.max_windows
    assert (w.first_start(t), w.last_start(t)) == (expected[-1][0], expected[0][0])
    assert w.first_end(t) == min(e for _, e in expected)
    if w.kind == "cumulate":
        assert w.end(w.last_start(t)) == expected[0][1]  # its largest window
        assert len(expected) == (w.last_start(t) + w.size - w.first_end(t)) // w.slide + 1
        return
    assert all(w.end(s) == e for s, e in expected)
    if w.kind != "hop":
        assert w.bounds(t) == expected[0]
    if w.kind == "hop" and w.size % w.slide == 0:
        assert len(expected) == w.max_windows


@settings(max_examples=examples(400), deadline=None)
@given(windows(), TIMES, st.one_of(st.none(), TIMES))
def test_open_windows_are_those_not_closed(w: Windows, t: int, wm: int | None) -> None:
    expected = [(s, e) for s, e in brute_windows(w, t) if wm is None or not e <= wm]
    assert w.open_windows(t, wm) == expected
    if w.kind != "session":  # the batch form, for state_small's HOP
        assert list(w.open_windows_of([None, t], wm)) == [(1, s, e) for s, e in expected]
    by_index = [w.nth_window(t, j) for j in range(w.max_windows)]  # expand_hop's way
    if w.kind in ("tumble", "hop"):
        assert by_index == [(w.nth_start(t, j), w.end(w.nth_start(t, j))) for j in range(w.max_windows)]
    assert [(s, e) for s, e in by_index if ends_after(e, t) and (wm is None or is_open(e, wm))] == expected


@settings(max_examples=examples(400), deadline=None)
@given(windows(), st.one_of(st.none(), TIMES), st.one_of(st.none(), TIMES))
def test_lateness_matches_the_oracle_and_its_threshold(w: Windows, t: int | None, wm: int | None) -> None:
    late = brute_late(w, t, wm)
    assert w.is_late_value(t, wm) is late
    if t is not None:
        assert bool(w.is_late(t, watermark_or_min(wm))) is late
        assert (t < w.late_before(watermark_or_min(wm))) is late  # the threshold state_small counts with
        if wm is not None:
            assert (t < w.late_before(wm)) is late


@settings(max_examples=examples(300), deadline=None)
@given(windows(), TIMES)
def test_late_before_is_the_first_time_not_late(w: Windows, wm: int) -> None:
    cut = w.late_before(wm)
    assert not w.is_late_value(cut, wm)
    assert w.is_late_value(cut - 1, wm)
    assert w.late_before(None) is None


@settings(max_examples=examples(300), deadline=None)
@given(windows(), TIMES)
def test_first_open_start_is_the_earliest_open_window(w: Windows, wm: int) -> None:
    start = w.first_open_start(wm)
    assert start == brute_first_open_start(w, wm)
    before = start - (w.size if w.kind == "cumulate" else w.slide)  # the start before it: closed
    assert is_open(w.end(start), wm) and is_closed(w.end(before), wm)


# ---------------------------------------------------------------- polars against plain ints


FRAMES = st.lists(st.one_of(st.none(), TIMES), max_size=30)


@settings(max_examples=examples(200), deadline=None)
@given(windows(), FRAMES, st.one_of(st.none(), TIMES))
def test_polars_expressions_compute_what_the_ints_do(w: Windows, times: list[int | None], wm: int | None) -> None:
    t = pl.col("t")
    frame = pl.DataFrame({"t": times}, schema={"t": pl.Int64})
    out = frame.select(
        first=w.first_start(t),
        first_end=w.first_end(t),
        last=w.last_start(t),
        end=w.end(w.last_start(t)),
        late=w.late_expr(t, wm),
        closed=is_closed(t, watermark_lit(wm)),
        open=is_open(t, watermark_lit(wm)),
    )
    wm_value = watermark_or_min(wm)
    for row, x in zip(out.iter_rows(named=True), times):
        assert row["late"] is w.is_late_value(x, wm)
        if x is None:
            assert row["first"] is row["last"] is row["end"] is row["first_end"] is None
            continue
        assert row["first_end"] == w.first_end(x)
        assert (row["first"], row["last"], row["end"]) == (w.first_start(x), w.last_start(x), w.end(w.last_start(x)))
        assert (row["closed"], row["open"]) == (is_closed(x, wm_value), is_open(x, wm_value))
    series = frame.get_column("t").drop_nulls()  # the Series form, as state.py's column operations use it
    assert w.last_start(series).to_list() == [w.last_start(x) for x in series.to_list()]
    assert w.first_start(series).to_list() == [w.first_start(x) for x in series.to_list()]
    assert is_open(series, wm_value).to_list() == [is_open(x, wm_value) for x in series.to_list()]


@settings(max_examples=examples(200), deadline=None)
@given(windows(("hop", "tumble", "cumulate")), st.lists(TIMES, max_size=20), st.one_of(st.none(), TIMES))
def test_expand_hop_gives_each_row_its_open_windows_in_order(w: Windows, times: list[int], wm: int | None) -> None:
    frame = pl.DataFrame({"row": range(len(times)), "t": times}, schema={"row": pl.Int64, "t": pl.Int64})
    expected = [(r, s, e) for r, x in enumerate(times) for s, e in w.open_windows(x, wm)]
    eager = w.expand_hop(frame, "t", wm)
    assert HOP_OFFSET in eager.columns
    assert list(eager.select("row", WINDOW_START, WINDOW_END).iter_rows()) == expected
    lazy = w.expand_hop(frame.lazy(), "t", wm).collect(engine="in-memory")  # a lazy cross join may reorder rows
    assert sorted(lazy.select("row", WINDOW_START, WINDOW_END).iter_rows()) == sorted(expected)
