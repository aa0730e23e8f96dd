"""TIMESTAMP units (issue 16, item 9): epoch numbers are read in the declared unit, never silently in another.

Real files through the files source; the oracle is Python's datetime.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.connectors.memory import MemorySink
from stream_dsl.errors import ConnectorError

from budget import examples

HANG_GUARD_S = 120  # only to avoid hanging when something is broken
EPOCH = dt.datetime(1970, 1, 1)
PER_SECOND = {"s": 1, "ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}


def _collect(tmp_path, lines: list[str], fmt: str, options: str = ""):
    path = tmp_path / f"data.{fmt}"
    header = "k,ts\n" if fmt == "csv" else ""
    path.write_text(header + "".join(line + "\n" for line in lines))
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM s (k BIGINT, ts TIMESTAMP) WITH (connector = 'files', path = '{path}', "
        f"dead_letter = 'none'{options})"
    )
    sink = MemorySink()
    handle = ctx.sql("SELECT k, ts FROM s").start(sink=sink)
    assert handle.await_termination(HANG_GUARD_S)
    return sorted(sink.frame().rows()), {
        int(d.raw.split(",")[0]) if fmt == "csv" else json.loads(d.raw)["k"]: d.reason for d in handle.dead_letters
    }


def _line(fmt: str, k: int, value: int) -> str:
    return f"{k},{value}" if fmt == "csv" else json.dumps({"k": k, "ts": value})


def _epoch(moment: dt.datetime, unit: str) -> int:
    delta = moment - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros * PER_SECOND[unit] // 1_000_000


def _truncated_to_ms(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


moments = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1))


@settings(max_examples=examples(25), deadline=None)
@given(
    unit=st.sampled_from(["s", "ms", "us", "ns"]),
    fmt=st.sampled_from(["ndjson", "csv"]),
    values=st.lists(moments, min_size=1, max_size=20),
)
def test_epoch_numbers_in_the_declared_unit(tmp_path_factory, unit, fmt, values):
    tmp_path = tmp_path_factory.mktemp("units")
    if unit == "s":
        values = [v.replace(microsecond=0) for v in values]
    lines = [_line(fmt, k, _epoch(v, unit)) for k, v in enumerate(values)]
    rows, letters = _collect(tmp_path, lines, fmt, f", timestamp_unit = '{unit}'")
    assert letters == {}
    assert rows == [(k, _truncated_to_ms(v)) for k, v in enumerate(values)]


@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_epoch_seconds_are_never_silently_read_as_milliseconds(tmp_path, fmt):
    seconds = _epoch(dt.datetime(2026, 1, 1, 12), "s")
    millis = _epoch(dt.datetime(2026, 1, 1, 12), "ms")
    rows, letters = _collect(tmp_path, [_line(fmt, 0, seconds), _line(fmt, 1, millis), _line(fmt, 2, 1500)], fmt)
    assert rows == [(1, dt.datetime(2026, 1, 1, 12)), (2, dt.datetime(1970, 1, 1, 0, 0, 1, 500000))]
    assert "looks like epoch seconds (2026-01-01)" in letters[0] and "timestamp_unit = 's'" in letters[0]
    # declared, the same values are what the user says they are
    rows, letters = _collect(tmp_path, [_line(fmt, 0, seconds)], fmt, ", timestamp_unit = 's'")
    assert rows == [(0, dt.datetime(2026, 1, 1, 12))] and letters == {}
    rows, letters = _collect(tmp_path, [_line(fmt, 0, seconds)], fmt, ", timestamp_unit = 'ms'")
    assert rows == [(0, EPOCH + dt.timedelta(milliseconds=seconds))] and letters == {}


@pytest.mark.parametrize("unit", ["s", "ms", "us", None])  # any int64 of ns is in range
def test_values_out_of_range_for_the_unit_are_dead_letters(tmp_path, unit):
    millis = _epoch(dt.datetime(2026, 1, 1), "ms")
    too_big = {"s": millis, "ms": millis * 1_000_000, "us": 2**62, None: millis * 1000}[unit]
    too_small = {"s": -millis, "ms": -millis * 1_000_000, "us": -(2**62), None: -millis * 1000}[unit]
    values = [too_big, too_small]
    option = f", timestamp_unit = '{unit}'" if unit else ""
    rows, letters = _collect(tmp_path, [_line("ndjson", k, v) for k, v in enumerate(values)], "ndjson", option)
    assert rows == []
    assert sorted(letters) == list(range(len(values)))
    assert all("out of range for epoch" in reason for reason in letters.values())


def test_a_unit_per_column(tmp_path):
    path = tmp_path / "d.ndjson"
    path.write_text(json.dumps({"a": 1767225600, "b": 1767225600000, "c": 1767225600000000}) + "\n")
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM s (a TIMESTAMP, b TIMESTAMP, c TIMESTAMP) WITH (connector = 'files', path = '{path}', "
        f"timestamp_unit = 'ms, a=s, c = us')"
    )
    assert ctx.sql("SELECT a, b, c FROM s").collect().rows() == [(dt.datetime(2026, 1, 1),) * 3]


@pytest.mark.parametrize(
    "option, message",
    [
        ("sec", "unknown unit 'sec'"),
        ("x=s", "names 'x', which is not a TIMESTAMP column"),
        ("k=s", "names 'k', which is not a TIMESTAMP column"),
    ],
)
def test_a_bad_unit_option_is_one_clear_error(tmp_path, option, message):
    path = tmp_path / "d.ndjson"
    path.write_text('{"k": 1, "ts": 1}\n')
    ctx = sd.Context(executor="inline", workers=1)
    ctx.sql(
        f"CREATE STREAM s (k BIGINT, ts TIMESTAMP) WITH (connector = 'files', path = '{path}', "
        f"timestamp_unit = '{option}')"
    )
    with pytest.raises(ConnectorError, match=message):
        ctx.sql("SELECT k FROM s").collect()
