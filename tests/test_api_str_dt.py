"""The dataframe API's `.str.contains` and `.dt` against plain polars (issue 23, small things).

`.str.contains(pattern)` is a regex unless `literal=True`, and `.dt` offers year ... second, weekday,
truncate(every) and offset_by(by), as polars users expect; each maps onto the SQL function of the same
meaning (frame/expr.py), so both front ends share semantics. Hypothesis data with NULLs, split at random
into micro-batches, on every executor with 1 and 3 workers and the optimizer on and off.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor.api import collect
from stream_dsl.config import RunConfig

from budget import examples

EXECUTORS = ["inline", "drizzle", "bsp"]
SETUPS = [(1, True), (3, True), (3, False)]  # (workers, optimize)
PATTERNS = ["a.c", "^b", "c$", "[xy]+", "a|z", ".", "é"]  # in RE2's and polars' (Rust regex) common syntax
TRUNCATE = ["1d", "1h", "1m", "1s", "1mo", "1y", "1w"]
OFFSETS = ["90m", "2h", "1d", "-30s"]

rows = st.lists(
    st.fixed_dictionaries(
        {
            "s": st.none() | st.text("abcxyz.é", max_size=6),
            "ts": st.none()
            | st.datetimes(dt.datetime(1999, 12, 25), dt.datetime(2031, 1, 5)).map(
                lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
            ),
        }
    ),
    min_size=1,
    max_size=30,
)


@st.composite
def data(draw):
    frame = pl.DataFrame(draw(rows), schema={"s": pl.String, "ts": pl.Datetime("ms")})
    cuts = sorted(draw(st.sets(st.integers(1, max(1, frame.height - 1)), max_size=3)))
    bounds = [0, *[c for c in cuts if c < frame.height], frame.height]
    batches = [frame.slice(a, b - a) for a, b in zip(bounds, bounds[1:]) if b > a]
    pattern = draw(st.sampled_from(PATTERNS))
    every = draw(st.sampled_from(TRUNCATE))
    offset = draw(st.sampled_from(OFFSETS))
    return frame, batches, pattern, every, offset


@pytest.mark.parametrize("executor", EXECUTORS)
@settings(max_examples=examples(3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=data())
def test_str_contains_and_dt_match_polars(executor, case):
    frame, batches, pattern, every, offset = case
    col = sd.col
    ctx = sd.Context(executor="inline", workers=1)
    stream = ctx.from_polars(batches, "events").select(
        col("s").str.contains(pattern).alias("regex"),
        col("s").str.contains(pattern, literal=True).alias("literal"),
        col("ts").dt.year().alias("year"),
        col("ts").dt.month().alias("month"),
        col("ts").dt.day().alias("day"),
        col("ts").dt.hour().alias("hour"),
        col("ts").dt.minute().alias("minute"),
        col("ts").dt.second().alias("second"),
        col("ts").dt.weekday().alias("weekday"),
        col("ts").dt.truncate(every).alias("truncated"),
        col("ts").dt.offset_by(offset).alias("offset"),
    )
    c = pl.col
    expected = frame.select(
        c("s").str.contains(pattern).alias("regex"),
        c("s").str.contains(pattern, literal=True).alias("literal"),
        c("ts").dt.year().alias("year"),
        c("ts").dt.month().alias("month"),
        c("ts").dt.day().alias("day"),
        c("ts").dt.hour().alias("hour"),
        c("ts").dt.minute().alias("minute"),
        c("ts").dt.second().alias("second"),
        c("ts").dt.weekday().alias("weekday"),
        c("ts").dt.truncate(every).alias("truncated"),
        c("ts").dt.offset_by(offset).alias("offset"),
    ).rows()
    for workers, optimize in SETUPS:
        got = collect(stream.plan, RunConfig(workers=workers, executor=executor, optimize=optimize))
        assert sorted(got.rows(), key=repr) == sorted(expected, key=repr), (executor, workers, optimize, pattern, every)
