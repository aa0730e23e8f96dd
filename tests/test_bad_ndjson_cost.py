"""ndjson with bad records mixed in (issue 16, item 10): the right rows, and each bad record costs about a good one.

No timing in tests: the cost is shown by counting the work. Only the bad
records are checked one by one, and polars is asked to read a handful of
times, not once per line. The timing itself is `python -m stream_dsl.bench.bad_input`.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_dsl.connectors import decode_ndjson
from stream_dsl.ir.types import DataType, Schema

from budget import examples

SCHEMA = Schema.of(("k", DataType.STRING), ("n", DataType.BIGINT), ("x", DataType.DOUBLE), ("ts", DataType.TIMESTAMP))
T0 = 1767225600000  # 2026-01-01 in epoch milliseconds


def good(i: int) -> tuple[bytes, tuple]:
    row = (f"k{i % 7}", i, i * 0.5, dt.datetime(2026, 1, 1) + dt.timedelta(milliseconds=i))
    return json.dumps({"k": row[0], "n": i, "x": row[2], "ts": T0 + i}).encode(), row


BAD = {  # a bad record of each kind, and a word its reason holds
    "truncated": (b'{"k": "a", "n": 1, "x": 1.0, "ts": 17672', "invalid JSON"),
    "string for BIGINT": (b'{"k": "a", "n": "lots", "x": 1.0, "ts": 1767225600000}', "column 'n'"),
    "decimal for BIGINT": (b'{"k": "a", "n": 1.5, "x": 1.0, "ts": 1767225600000}', "column 'n'"),
    "bad time": (b'{"k": "a", "n": 1, "x": 1.0, "ts": "not a time"}', "column 'ts'"),
    "array": (b"[1, 2]", "JSON object"),
    "string for DOUBLE": (b'{"k": "a", "n": 1, "x": "abc", "ts": 1767225600000}', "column 'x'"),
    "number polars refuses": (b'{"k": "a", "n": 1, "x": 1e400, "ts": 1767225600000}', "JSON"),
    "broken inside braces": (b'{"k": "a", "n": 1,, "x": 2}', "invalid JSON"),
    "not UTF-8": (b'{"k": "\xff", "n": 1}', "UTF-8"),
    "int beyond BIGINT": (b'{"k": "a", "n": 9223372036854775808}', "out of range"),
}


def mixed(kinds: list[str | None]) -> tuple[bytes, list[tuple], dict[int, str]]:
    """Lines for `kinds` (None: a good record), the good rows, and line number → a word of the bad line's reason."""
    lines, rows, bad = [], [], {}
    for i, kind in enumerate(kinds):
        if kind is None:
            line, row = good(i)
            rows.append(row)
        else:
            line, word = BAD[kind]
            bad[i + 1] = word
        lines.append(line)
    return b"\n".join(lines) + b"\n", rows, bad


@settings(max_examples=examples(120), deadline=None)
@given(st.lists(st.one_of(st.none(), st.sampled_from(sorted(BAD))), min_size=1, max_size=60))
def test_every_good_row_comes_through_and_every_bad_record_is_a_dead_letter(kinds):
    data, rows, bad = mixed(kinds)
    decoded = decode_ndjson.decode_ndjson(data, SCHEMA, source="s", origin="f")
    assert decoded.frame.rows() == rows
    letters = {int(d.position.rsplit(":", 1)[1]): d.reason for d in decoded.dead_letters}
    assert sorted(letters) == sorted(bad)
    for line, word in bad.items():
        assert word in letters[line], (line, letters[line])


def test_only_the_bad_records_are_checked_one_by_one(monkeypatch):
    kinds = [None if i % 20 else sorted(BAD)[(i // 20) % len(BAD)] for i in range(20_000)]
    data, rows, bad = mixed(kinds)
    checked, reads = [], []
    record_error, read_ndjson = decode_ndjson._ndjson_record_error, pl.read_ndjson
    monkeypatch.setattr(
        decode_ndjson, "_ndjson_record_error", lambda raw, schema: checked.append(raw) or record_error(raw, schema)
    )
    monkeypatch.setattr(decode_ndjson.pl, "read_ndjson", lambda *a, **k: reads.append(1) or read_ndjson(*a, **k))
    decoded = decode_ndjson.decode_ndjson(data, SCHEMA, source="s", origin="f")
    assert decoded.frame.height == len(rows) and len(decoded.dead_letters) == len(bad)
    assert len(checked) <= len(bad)  # before: every line of a chunk holding a bad one
    assert len(reads) <= 120  # a few per chunk that holds JSON polars refuses; before: one per line of such a chunk
