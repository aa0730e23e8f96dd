"""The row fold of small changelog parts (`executor.query.changelog_rows`) gives the table that applying every
part does.

The driver folds collect()'s changelog parts by rows in a dict while they
are small and exact in Python, and hands bigger or inexact ones to
polars' fold (`changelog.ChangelogBuffer`) after the rows folded so far.
Whatever the mix, the collected table must be the one that applying each
part in order gives.
"""

from __future__ import annotations

import datetime as dt
import pickle

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from executor.query import changelog_rows
from executor.query.changelog import ChangelogBuffer
from executor.query.changelog_rows import RowFold, RowsPart, as_frame, pack, unpack
from executor.query.outputs import CollectOutput
from stream_dsl.ir.types import DataType, Field, Schema
from budget import examples

SCHEMA = Schema(
    (Field("k", DataType.STRING), Field("w", DataType.BIGINT), Field("n", DataType.BIGINT), Field("v", DataType.DOUBLE))
)
KEYS = ["k", "w"]


def collected() -> CollectOutput:
    out = CollectOutput(SCHEMA, None)
    out.group_keys = list(KEYS)
    return out


@st.composite
def parts(draw):
    out = []
    for _ in range(draw(st.integers(1, 12))):
        keys = draw(
            st.lists(
                st.tuples(st.sampled_from(["a", "b", None]), st.sampled_from([1, 2, None])), max_size=5, unique=True
            )
        )
        upserts = pl.DataFrame(
            {
                "k": [k for k, _ in keys],
                "w": [w for _, w in keys],
                "n": draw(st.lists(st.integers(-5, 5), min_size=len(keys), max_size=len(keys))),
                "v": draw(
                    st.lists(st.sampled_from([0.5, float("nan"), -0.0, None]), min_size=len(keys), max_size=len(keys))
                ),
            },
            schema=SCHEMA.to_polars(),
        )
        gone = draw(
            st.lists(
                st.tuples(st.sampled_from(["a", "b", None]), st.sampled_from([1, 2, None])), max_size=3, unique=True
            )
        )
        deletes = (
            pl.DataFrame({"k": [k for k, _ in gone], "w": [w for _, w in gone]}, schema={"k": pl.String, "w": pl.Int64})
            if gone
            else None
        )
        out.append((upserts, deletes))
    return out


@settings(max_examples=examples(200), deadline=None)
@given(changes=parts(), limit=st.integers(0, 6), packed=st.booleans())
def test_folding_rows_then_polars_gives_the_table_of_every_part_applied_in_order(changes, limit, packed):
    """`packed`: the parts come as a worker sends them (`pack`, pickled: rows or IPC) and the driver reads them."""
    expected = collected()
    for upserts, deletes in changes:
        expected.apply_changelog(upserts, deletes)
    ours, rows, buffer = collected(), RowFold(list(KEYS)), ChangelogBuffer(list(KEYS), limit=3)

    def flush() -> None:
        part = rows.take()
        if part is not None and buffer.add(*part):
            ours.apply_changelog(*buffer.take())
        folded = buffer.take()
        if folded is not None:
            ours.apply_changelog(*folded)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(changelog_rows, "MAX_ROWS", limit)
        for upserts, deletes in changes:  # what Driver._emit and Driver._add_changelog do
            if packed:
                upserts, deletes = (
                    None if d is None else unpack(pickle.loads(pickle.dumps(pack(d)))) for d in (upserts, deletes)
                )
            if rows.add(upserts, deletes):
                continue
            part = rows.take()
            if part is not None and buffer.add(*part):
                ours.apply_changelog(*buffer.take())
            if buffer.add(as_frame(upserts), as_frame(deletes)):
                ours.apply_changelog(*buffer.take())
        flush()
    empty = pl.DataFrame(schema=SCHEMA.to_polars())  # no table yet and an emptied table give the same result
    order = ["k", "w"]
    ours_rows, expected_rows = (t if t is not None else empty for t in (ours.table, expected.table))
    assert ours_rows.sort(order, nulls_last=True).equals(expected_rows.sort(order, nulls_last=True))


def test_parts_with_float_keys_or_many_rows_go_to_polars():
    fold = RowFold(["d"])
    assert not fold.add(pl.DataFrame({"d": [0.5], "n": [1]}), None)
    fold = RowFold(["k"])
    big = pl.DataFrame({"k": [str(i) for i in range(changelog_rows.MAX_ROWS + 1)]})
    assert not fold.add(big, None)
    assert fold.add(pl.DataFrame({"k": ["a"], "n": [1]}), None)
    assert not fold.add(pl.DataFrame({"k": ["a"], "n": [1.5]}), None)  # another schema
    upserts, deletes = fold.take()
    assert upserts.rows() == [("a", 1)] and deletes is None and fold.take() is None


def test_a_packed_part_is_its_rows_when_they_come_back_exactly_else_ipc():
    frame = pl.DataFrame(
        {
            "k": ["a", None],
            "t": [dt.datetime(2024, 1, 1, 0, 0, 0, 123456), None],
            "v": [float("nan"), -0.0],
            "n": pl.Series([2**64 - 1, 0], dtype=pl.UInt64),
        },
        schema_overrides={"t": pl.Datetime("us")},
    )
    part = pickle.loads(pickle.dumps(pack(frame)))
    assert isinstance(part, RowsPart) and part.height == 2 and repr(part.values) == repr(frame.rows())  # NaN
    assert part.frame().equals(frame, null_equal=True) and part.frame().schema == frame.schema
    assert unpack(part) is part and as_frame(part).equals(frame, null_equal=True)
    for inexact in (
        frame.with_columns(pl.col("t").cast(pl.Datetime("ns"))),
        pl.DataFrame({"k": [str(i) for i in range(changelog_rows.MAX_ROWS + 1)]}),
    ):
        data = pack(inexact)
        assert isinstance(data, bytes) and unpack(data).equals(inexact, null_equal=True)
