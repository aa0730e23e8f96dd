"""The Python-dict aggregate state (`executor.state.small`) against the polars one, step by step.

`AggregateState` runs a small aggregate over plain columns in a dict and
moves it to polars when batches or state grow. Both must give the same
output, late rows, open groups and state rows after every batch, whatever
the window, emit mode, phase, NULLs, late rows and watermarks; and the
hand-over in the middle of a stream must be invisible. The whole
differential family still matches DuckDB with the dict turned off.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from test_differential import QUERIES, assert_same_rows, duckdb_rows, engine

from executor import kernels
from executor.state import small as state_small
from executor.api import collect
from executor.query.release import retention_ms
from executor.state.rows import RowsPart
from executor.state.clocks import WM_INF
from executor.state.operators import AggregateState
from optimizer.physical.stages import TIME_COLUMN, AggregateOp, AggSpec, PartialAggregateOp
from stream_dsl.ir.to_polars import OverflowFailure
from stream_dsl.config import RunConfig
from stream_dsl.ir.definitions import WindowSpec
from stream_dsl.ir.partial_state import state_fields
from stream_dsl.ir.plan import PARTIAL_ROWS
from stream_dsl.ir.types import DataType, Field, Schema
from budget import examples

ROWS_SCHEMA = {
    "k": pl.String,
    "j": pl.Int32,
    TIME_COLUMN: pl.Datetime("ms"),
    "x": pl.Int64,
    "y": pl.String,
    "z": pl.Int32,
    "b": pl.Boolean,
    "d": pl.Float64,
}
AGGS = {  # name -> (func, arg, output type)
    "n": ("count", None, DataType.BIGINT),
    "nx": ("count", "x", DataType.BIGINT),
    "sx": ("sum", "x", DataType.BIGINT),
    "ax": ("avg", "x", DataType.DOUBLE),
    "lo": ("min", "x", DataType.BIGINT),
    "hi": ("max", "x", DataType.BIGINT),
    "ly": ("min", "y", DataType.STRING),
    "hy": ("max", "y", DataType.STRING),
    "sz": ("sum", "z", DataType.BIGINT),
    "hz": ("max", "z", DataType.INT),
    "hb": ("max", "b", DataType.BOOLEAN),
    "ad": ("avg", "d", DataType.DOUBLE),
}


def aggregate_op(
    keys: tuple[str, ...], names: list[str], window: WindowSpec | None, emit: str, phase: str = "single"
) -> AggregateOp:
    aggs = tuple(AggSpec(n, AGGS[n][0], AGGS[n][1], AGGS[n][2]) for n in names)
    types = {"k": DataType.STRING, "j": DataType.INT}
    fields = [Field(k, types[k]) for k in keys]
    if window is not None:
        fields += [Field("window_start", DataType.TIMESTAMP), Field("window_end", DataType.TIMESTAMP)]
    fields += [Field(a.name, a.dtype) for a in aggs]
    return AggregateOp(keys, aggs, window, emit, Schema(tuple(fields)), phase)


def partial_rows(op: AggregateOp, rows: pl.DataFrame) -> pl.DataFrame:
    """What the map side's PartialAggregateOp sends a final-phase aggregate for `rows`."""
    fields = [Field(k, t) for k, t in zip(op.keys, (DataType.STRING, DataType.INT))]
    if op.window is not None:
        fields += [Field("window_start", DataType.TIMESTAMP), Field("window_end", DataType.TIMESTAMP)]
    fields.append(Field(PARTIAL_ROWS, DataType.BIGINT))
    for i, a in enumerate(op.aggs):
        fields += state_fields(i, a.func, a.dtype)
    partial = PartialAggregateOp(op.keys, op.aggs, op.window, False, Schema(tuple(fields)))
    return kernels.compile_pipeline([partial]).run(rows, {})


def run_both(op: AggregateOp, batches: list[pl.DataFrame], marks: list[tuple[int | None, int | None]]) -> None:
    """Step the dict state and the polars state through the same batches; they must agree after each."""
    small, big, as_rows = AggregateState(op), AggregateState(op), AggregateState(op)
    big._may_be_small = False  # polars only
    as_rows.emits_rows = True  # as a worker's collect() stage: the dict's output as Python rows
    used = False
    for rows, (wm_prev, wm_new) in zip(batches, marks):
        used = used or small.small is not None
        context = f"{op.describe()} wm={wm_prev}->{wm_new} rows={rows.height} small={small.small is not None}"
        a, b = _step_or_overflow(small, rows, wm_prev, wm_new), _step_or_overflow(big, rows, wm_prev, wm_new)
        if isinstance(a, str) or isinstance(b, str):  # a SUM out of BIGINT's range raises in both, at the same batch
            assert isinstance(a, str) and isinstance(b, str), (context, a, b)
            event("a SUM overflowed")
            return
        _same(a.frame, b.frame, context)
        c = as_rows.step(rows, wm_prev, wm_new).frame
        if isinstance(c, RowsPart):
            assert (c.columns, c.dtypes) == (b.frame.columns, b.frame.dtypes), context
            assert repr(c.values) == repr(c.frame().rows()), context  # the values a frame of them gives back
            c = c.frame()
        _same(c, b.frame, context)
        assert (a.late, a.deletes, small.open_groups) == (b.late, b.deletes, big.open_groups), context
        if big.state is not None and small.state is not None:
            _same(small.state.drop("__sd_new", strict=False), big.state.drop("__sd_new"), context)
        for columns in ({"ts"}, set()):  # what sources may release: read off the dict, not a frame built for it
            assert retention_ms([small], columns) == retention_ms([big], columns), context
    event(f"the dict was used: {used or small.small is not None}")


def _step_or_overflow(state: AggregateState, rows: pl.DataFrame, wm_prev: int | None, wm_new: int | None):
    """The step's output, or the overflow error's text."""
    try:
        return state.step(rows, wm_prev, wm_new)
    except (OverflowFailure, pl.exceptions.InvalidOperationError) as exc:
        assert "overflow" in str(exc) or "i128" in str(exc), exc
        return str(exc)


def _same(ours: pl.DataFrame, theirs: pl.DataFrame, context: str) -> None:
    try:
        assert_frame_equal(ours, theirs, check_row_order=False)
    except AssertionError as exc:
        raise AssertionError(f"{context}\n{exc}\n{ours}\n{theirs}") from None


@st.composite
def streams(draw):
    """An aggregate, batches of rows with NULLs (some late), and a non-decreasing watermark per batch."""
    keys = draw(st.sampled_from([("k",), ("k", "j"), ()]))
    kind = draw(st.sampled_from([None, "tumble", "hop"]))
    window = None if kind is None else WindowSpec(kind, "ts", 1000, 400 if kind == "hop" else None)
    emit = "final" if window is not None and draw(st.booleans()) else "changes"
    phase = "final" if kind != "hop" and draw(st.booleans()) else "single"
    names = draw(st.lists(st.sampled_from(sorted(AGGS)), min_size=1, max_size=4, unique=True))
    if not keys and window is None:
        keys = ("k",)  # a global aggregate is one group: covered by the keyed ones
    op = aggregate_op(keys, names, window, emit, phase)
    batches, marks = [], []
    wm: int | None = None
    for b in range(draw(st.integers(1, 6))):
        n = draw(st.integers(0, 12))
        cell = lambda values: draw(st.lists(st.sampled_from(values), min_size=n, max_size=n))  # noqa: E731
        times = [
            None if t is None else dt.datetime(2024, 1, 1) + dt.timedelta(milliseconds=t)
            for t in cell([None, 0, 350, 999, 1000, 1700, 2400, 3100, 4000, 4999])
        ]
        rows = pl.DataFrame(
            {
                "k": cell(["a", "b", None]),
                "j": cell([1, -2, None]),
                TIME_COLUMN: times,
                "x": cell([None, 0, 5, -7, 2**62 if phase == "single" else 2**59]),
                "y": cell(["p", "q", "é", None]),
                "z": cell([None, 3, -1]),
                "b": cell([True, False, None]),
                "d": cell([0.5, None, -1.25]),
            },
            schema=ROWS_SCHEMA,
        )
        batches.append(partial_rows(op, rows) if phase == "final" else rows)
        step = draw(st.sampled_from([None, 0, 500, 1000, 2500]))
        new = wm if step is None or window is None else (step if wm is None else wm + step)
        if b == 5 or draw(st.integers(0, 9)) == 0:
            new = WM_INF if window is not None else None
        marks.append((wm, new))
        wm = new
    return op, batches, marks


@settings(max_examples=examples(120), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams())
def test_the_dict_state_steps_exactly_as_the_polars_state(stream):
    run_both(*stream)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), limit=st.integers(0, 8))
def test_moving_the_state_to_polars_midstream_changes_nothing(stream, limit):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(state_small, "MAX_BATCH_ROWS", limit)
        run_both(*stream)


def test_only_plain_columns_go_to_the_dict():
    schema = pl.Schema(ROWS_SCHEMA)
    assert state_small.supported(aggregate_op(("k", "j"), ["n", "sx", "ly", "hz", "hb"], None, "changes"), schema)
    assert not state_small.supported(aggregate_op(("k",), ["ad"], None, "changes"), schema)  # a float
    assert not state_small.supported(aggregate_op(("k",), ["n"], WindowSpec("session", "ts", 1000), "changes"), schema)
    distinct = AggregateOp(
        ("k",),
        (AggSpec("c", "count", "x", DataType.BIGINT, True),),
        None,
        "changes",
        Schema((Field("k", DataType.STRING), Field("c", DataType.BIGINT))),
    )
    assert not state_small.supported(distinct, schema)
    assert not state_small.supported(aggregate_op(("k",), ["n"], None, "changes"), pl.Schema({"k": pl.Float64}))


def test_a_big_batch_moves_the_state_to_polars_for_good():
    op = aggregate_op(("k",), ["n", "sx"], None, "changes")
    state = AggregateState(op)
    small = pl.DataFrame({"k": ["a", "b"], "x": [1, 2]})
    state.step(small, None, None)
    assert state.small is not None
    big = pl.DataFrame({"k": ["a"] * (state_small.MAX_BATCH_ROWS + 1), "x": [1] * (state_small.MAX_BATCH_ROWS + 1)})
    out = state.step(big, None, None).frame
    assert state.small is None and out.sort("k").rows() == [("a", state_small.MAX_BATCH_ROWS + 2, 258)]
    assert state.step(small, None, None).frame.sort("k").rows() == [("a", 259, 259), ("b", 2, 4)]
    assert state.small is None


def test_an_int64_sum_out_of_range_raises_in_the_dict_as_in_polars():
    op = aggregate_op(("k",), ["sx"], None, "changes")
    rows = pl.DataFrame({"k": ["a"] * 3, "x": [2**62] * 3})
    small, big = AggregateState(op), AggregateState(op)
    big._may_be_small = False
    with pytest.raises(OverflowFailure, match="SUM reached 13835058055282163712"):
        small.step(rows, None, None)
    assert small.small is not None
    with pytest.raises(pl.exceptions.InvalidOperationError, match="13835058055282163712"):
        big.step(rows, None, None)


@pytest.mark.parametrize("query", QUERIES, ids=[q.name for q in QUERIES])
def test_the_differential_family_still_matches_duckdb_with_the_dict_turned_off(query, monkeypatch):
    frame = pl.DataFrame(
        {
            "k": ["a", "b", None, "c", "a", "b"] * 4,
            "i": [None, 1, 2, -3, 4, 0] * 4,
            "d": [0.5, None, -1.0, 2.0, 1.5, 3.0] * 4,
            "s2": ["a", "ab", None, ".b", "b.", ""] * 4,
            "ts": [dt.datetime(2024, 1, 1) + dt.timedelta(milliseconds=1700 * j) for j in range(24)],
        },
        schema={"k": pl.String, "i": pl.Int64, "d": pl.Float64, "s2": pl.String, "ts": pl.Datetime("ms")},
    )
    table = pl.DataFrame(
        {"k": ["a", "b", "d", None], "name": ["x", "y", "x", "y"], "w": [1, None, 3, 2]},
        schema={"k": pl.String, "name": pl.String, "w": pl.Int64},
    )
    batches = [frame.slice(0, 7), frame.slice(7, 0), frame.slice(7, 6), frame.slice(13, 11)]
    expected = duckdb_rows(query.duck, frame, table)
    monkeypatch.setattr(state_small, "supported", lambda op, schema: False)
    for ordered in (True, False):
        plan = engine(batches, table, ordered).sql(query.dsl).plan
        for workers in (1, 3):
            result = collect(plan, RunConfig(workers=workers, executor="inline"))
            assert_same_rows(result.rows(), expected, f"{query.name} ordered={ordered} workers={workers}")


def test_a_plan_polars_runs_only_optimized_still_runs_on_a_small_input():
    """Small inputs skip polars' optimizer; polars 2.1 broadcasts a constant holding a UDF only through CSE."""
    from executor.state.step import collect
    from stream_dsl.ir.to_polars import compile_expr
    from stream_dsl.ir.expr import Cast, Literal

    constant = compile_expr(Cast(Literal(2.5, DataType.DOUBLE), DataType.INT)).alias("b")
    frame = pl.DataFrame({"x": list(range(16))})
    assert collect(frame.lazy().with_columns(constant), frame.height)["b"].to_list() == [2] * 16
