"""The engine's own column names (`stream_dsl.ir.column_names`): unique, and never a user's.

Every name the engine adds starts with RESERVED_PREFIX, and no user column
can: a source declaring one, and a query naming an output so, are refused
with a message that says why. Before, such a column reached the executor
and clashed there (`GROUP BY __sd_c0` with a COUNT failed with "duplicate
column name '__sd_c0'").
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

import stream_dsl as sd
from stream_dsl.ir import column_names as names
from stream_dsl.errors import BindError, DSLError, PlanError
from stream_dsl.ir.partial_state import state_fields
from stream_dsl.ir.types import DataType

INDEXED = (
    names.arg_column,
    names.count_col,
    names.sum_col,
    names.nonnull_col,
    names.distinct_count_col,
    names.output_col,
    names.join_stream_key,
    names.join_table_key,
    lambda i: names.extreme_col("min", i),
    lambda i: names.extreme_col("max", i),
)
USER_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda n: not names.is_reserved(n)
)


@given(st.lists(USER_NAMES, max_size=8, unique=True))
def test_engine_names_are_unique_and_reserved(user: list[str]) -> None:
    made = [make(i) for make in INDEXED for i in range(120)] + [names.join_table_col(n) for n in user]
    made += list(names.FIXED)
    assert len(made) == len(set(made)), "two engine columns share a name"
    assert all(names.is_reserved(n) for n in made)
    assert not set(made) & {names.WINDOW_START, names.WINDOW_END, *user}


def test_the_plan_names_partial_state_with_the_same_functions() -> None:
    assert [f.name for f in state_fields(3, "count", DataType.BIGINT)] == [names.count_col(3)]
    assert [f.name for f in state_fields(3, "avg", DataType.DOUBLE)] == [names.sum_col(3), names.nonnull_col(3)]
    assert [f.name for f in state_fields(3, "max", DataType.INT)] == [names.extreme_col("max", 3)]
    assert state_fields(3, "count", DataType.BIGINT, distinct=True) == ()
    with pytest.raises(ValueError):
        names.extreme_col("sum", 0)


def test_a_declared_column_with_the_reserved_prefix_is_refused() -> None:
    ctx = sd.Context(executor="inline")
    with pytest.raises(BindError, match="'__sd_c0' starts with '__sd_'") as info:
        ctx.sql("CREATE STREAM s (k STRING, __sd_c0 INT) WITH (connector = 'memory')")
    assert (info.value.line, info.value.column) == (1, 28)  # points at the column
    frame = pl.DataFrame({"k": ["a"], "__sd_time": [dt.datetime(2024, 1, 1)]})
    with pytest.raises(PlanError, match="'__sd_time' starts with '__sd_'"):
        ctx.from_polars(frame, name="t")


def test_an_output_named_with_the_reserved_prefix_is_refused() -> None:
    ctx = sd.Context(executor="inline")
    stream = ctx.from_polars(pl.DataFrame({"k": ["a", "b", "a"], "x": [1, 2, 3]}), name="s")
    with pytest.raises(BindError, match="output column name '__sd_rows'"):
        ctx.sql("SELECT k AS __sd_rows, COUNT(*) AS n FROM s GROUP BY k")
    with pytest.raises(DSLError, match="output column name '__sd_c0'"):
        stream.group_by("k").agg(sd.col("x").sum().alias("__sd_c0"))
    with pytest.raises(DSLError, match="output column name '__sd_x'"):
        stream.rename({"x": "__sd_x"})
    # a name that merely contains the prefix is the user's
    out = ctx.sql("SELECT k AS k__sd_, COUNT(*) AS n FROM s GROUP BY k").collect().sort("k__sd_")
    assert out.rows() == [("a", 2), ("b", 1)]
