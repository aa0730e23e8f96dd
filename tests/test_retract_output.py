"""collect() over a retract output: +1/-1 rows folded as a multiset (`executor.query.retract_rows`)."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings, strategies as st

from executor.query import retract_rows
from executor.query.outputs import CollectOutput
from stream_dsl.ir.column_names import CHANGELOG_OP
from stream_dsl.ir.types import DataType, Field, Schema
from tests.budget import examples

SCHEMA = Schema((Field("k", DataType.STRING), Field("n", DataType.BIGINT)))


def _frame(rows: list[tuple[str, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"k": [r[0] for r in rows], "n": [r[1] for r in rows], CHANGELOG_OP: [r[2] for r in rows]},
        schema={"k": pl.String, "n": pl.Int64, CHANGELOG_OP: pl.Int8},
    )


def _sorted(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.rows(), key=repr)


def test_an_update_is_minus_old_plus_new_and_a_delete_removes_the_row():
    out = CollectOutput(SCHEMA, None)
    out.retract = True
    out.emit(0, [_frame([("a", 1, 1), ("b", 1, 1)])])
    out.emit(1, [_frame([("a", 1, -1), ("a", 2, 1), ("b", 1, -1)])])
    out.emit(2, [pl.DataFrame({"k": ["c"], "n": [7]})])  # append-only rows: all +1
    assert _sorted(out.result()) == [("a", 2), ("c", 7)]
    assert out.result().columns == ["k", "n"]


def test_duplicates_count_as_a_multiset_and_limit_cuts_the_result_not_the_stream():
    out = CollectOutput(SCHEMA, 2)
    out.retract = True
    out.emit(0, [_frame([("a", 1, 1), ("a", 1, 1), ("a", 1, 1)])])
    assert not out.full  # later rows may still remove these
    out.emit(1, [_frame([("a", 1, -1)])])
    assert out.result().rows() == [("a", 1), ("a", 1)]
    out.emit(2, [_frame([("a", 1, -1), ("a", 1, -1)])])
    assert out.result().height == 0


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3), st.sampled_from([1, -1])), max_size=40),
    st.integers(1, 5),
)
def test_folding_in_any_number_of_pieces_equals_counting_rows_one_by_one(ops, pieces):
    counts: dict[tuple[str, int], int] = {}
    for k, n, op in ops:
        counts[(k, n)] = counts.get((k, n), 0) + op
    expected = sorted(((k, n) for (k, n), c in counts.items() for _ in range(max(c, 0))), key=repr)
    table = retract_rows.RetractTable()
    size = max(1, len(ops) // pieces)
    for i in range(0, len(ops), size):
        table.add(_frame(ops[i : i + size]))
        table._compact()  # fold between pieces too: folding is associative
    rows = table.rows()
    assert (sorted(rows.rows(), key=repr) if rows is not None else []) == expected
