"""Python UDFs (docs/udfs.md; issue 23): scalar (row-wise, vectorized) and aggregate, on every executor.

Results are checked against plain polars applying the same Python
function to all the input at once (hypothesis data with NULLs, random
micro-batch cuts), for the inline, drizzle and BSP executors with 1 and 3
workers, the optimizer on and off. Also: a failing row goes to dead letters
(function, row, reason) and the query goes on, or stops in strict mode;
each UDF is shipped to a worker once per query (in Setup), not per batch;
constant folding and predicate pushdown leave non-deterministic UDFs
where they are; SHOW FUNCTIONS and DESCRIBE FUNCTION list them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any, Iterator

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from budget import examples
from stream_dsl.connectors import memory
from stream_dsl.errors import BindError, DSLError, ExecutionError
from stream_dsl.frame.udf import register_aggregate, register_function
from stream_dsl.ir import udfs
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.types import DataType, Field, Schema

EXECUTORS = [("inline", 1), ("inline", 3), ("drizzle", 1), ("drizzle", 3), ("bsp", 1), ("bsp", 3)]
T0 = dt.datetime(2024, 1, 1)


# ---------------------------------------------------------------- the Python functions under test


def score(x: int, y: float) -> float:
    """x weighted by y, in thirds."""
    return x * 3 + y / 3


def label(x: int) -> str:
    return "neg" if x < 0 else f"n{x % 5}"


def scaled(xs: pl.Series) -> pl.Series:
    return xs * 2 - 1


def inverse(x: int) -> float:
    return 1 / x  # raises for 0


class Spread:
    """max - min of the values."""

    def init(self) -> Any:
        return None

    def update(self, state: Any, x: int) -> Any:
        return (x, x) if state is None else (min(state[0], x), max(state[1], x))

    def merge(self, a: Any, b: Any) -> Any:
        if a is None or b is None:
            return a if b is None else b
        return (min(a[0], b[0]), max(a[1], b[1]))

    def finish(self, state: Any) -> Any:
        return None if state is None else state[1] - state[0]


def spread_of(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) - min(present) if present else None


def _register() -> None:
    register_function("score", score, returns="DOUBLE")
    register_function("label", label, returns="VARCHAR")
    register_function("scaled", scaled, returns=DataType.BIGINT, vectorized=True)
    register_function("inverse", inverse, returns="DOUBLE")
    register_function("strict_inverse", inverse, returns="DOUBLE", strict=True)
    register_aggregate("spread", Spread, returns="BIGINT")
    # four callables, lambdas (pickled by value)
    register_aggregate("total", lambda: 0, lambda s, x: s + x, lambda a, b: a + b, lambda s: s, returns="BIGINT")


@pytest.fixture(autouse=True, scope="module")
def registered() -> Iterator[None]:
    """The module's UDFs, registered for its tests only: names are global to the process (udfs.py)."""
    before = set(udfs.names())
    _register()
    yield
    for name in set(udfs.names()) - before:
        udfs.unregister(name)


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def contexts() -> Iterator[dict[tuple[str, int], sd.Context]]:
    """One Context per executor and worker count, its workers warm across the module's queries."""
    made = {(e, w): sd.Context(executor=e, workers=w, group_size=3) for e, w in EXECUTORS}
    yield made
    for ctx in made.values():
        ctx.close()


def stream(ctx: sd.Context, name: str, batches: list[pl.DataFrame], **options: str) -> None:
    """A memory stream `name` over `batches` (one micro-batch each), with source options (dead_letter)."""
    schema = Schema(tuple(Field(n, _sql_type(t)) for n, t in batches[0].schema.items()))
    id = memory.register(memory.new_id(name), batches)
    watermark = None
    if "ts" in batches[0].columns:
        from stream_dsl.ir.definitions import Watermark

        watermark = Watermark("ts", 0)
    opts = {"connector": "memory", "id": id, **options}
    ctx.catalog.add_source(SourceDef(name, "stream", schema, tuple(sorted(opts.items())), watermark), replace=True)


def _sql_type(dtype: pl.DataType) -> DataType:
    return {pl.Int64: DataType.BIGINT, pl.Float64: DataType.DOUBLE, pl.String: DataType.STRING}.get(
        dtype.base_type(), DataType.TIMESTAMP
    )


def rows(frame: pl.DataFrame) -> list[tuple]:
    return sorted(frame.rows(), key=lambda r: tuple((v is None, str(v)) for v in r))


def same(got: list[tuple], expected: list[tuple], what: str) -> None:
    assert len(got) == len(expected), f"{what}: {len(got)} rows, expected {len(expected)}"
    for g, e in zip(got, expected):
        for a, b in zip(g, e):
            if isinstance(a, float) and isinstance(b, float):
                assert math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12), f"{what}: {g} != {e}"
            else:
                assert a == b, f"{what}: {g} != {e}"


@st.composite
def datasets(draw: st.DrawFn) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    """Rows (k, x, y, ts) with NULLs, cut into 1 to 4 micro-batches at random."""
    n = draw(st.integers(0, 40))
    ints = st.none() | st.integers(-1000, 1000)
    frame = pl.DataFrame(
        {
            "k": draw(st.lists(st.none() | st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n)),
            "x": draw(st.lists(ints, min_size=n, max_size=n)),
            "y": draw(st.lists(st.none() | st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n)),
            "ts": sorted(T0 + dt.timedelta(milliseconds=draw(st.integers(0, 30_000))) for _ in range(n)),
        },
        schema={"k": pl.String, "x": pl.Int64, "y": pl.Float64, "ts": pl.Datetime("ms")},
    )
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
    bounds = [0, *cuts, n]
    return frame, [frame.slice(a, b - a) for a, b in zip(bounds, bounds[1:])]


def polars_scalars(frame: pl.DataFrame) -> list[tuple]:
    """The scalar query computed by plain polars: map_elements skips NULLs, as the UDFs do by default."""
    both = pl.struct("x", "y").map_elements(
        lambda r: None if r["x"] is None or r["y"] is None else score(r["x"], r["y"]), return_dtype=pl.Float64
    )
    out = frame.select(
        "k",
        "x",
        both.alias("s"),
        pl.col("x").map_elements(label, return_dtype=pl.String).alias("l"),
        scaled(pl.col("x")).alias("v"),  # type: ignore[arg-type]  # polars expressions do the same arithmetic
    ).filter(pl.col("l") != "n0")
    return rows(out)


SCALAR_SQL = "SELECT k, x, score(x, y) AS s, label(x) AS l, scaled(x) AS v FROM s WHERE label(x) <> 'n0'"


def polars_aggregates(frame: pl.DataFrame, windowed: bool) -> list[tuple]:
    keys = ["k"]
    if windowed:
        frame = frame.with_columns(pl.col("ts").dt.truncate("10s").alias("window_start"))
        keys.append("window_start")
    out = frame.group_by(keys).agg(
        pl.col("x").map_batches(lambda s: pl.Series([spread_of(s.to_list())]), returns_scalar=True).alias("sp"),
        pl.col("x").drop_nulls().sum().alias("t"),
        pl.len().alias("n"),
    )
    return rows(out.select(*keys, "sp", "t", "n"))


def aggregate_sql(windowed: bool) -> str:
    if windowed:
        return (
            "SELECT k, window_start, spread(x) AS sp, total(x) AS t, COUNT(*) AS n FROM s "
            "GROUP BY k, TUMBLE(ts, INTERVAL '10' SECOND)"
        )
    return "SELECT k, spread(x) AS sp, total(x) AS t, COUNT(*) AS n FROM s GROUP BY k"


# ---------------------------------------------------------------- results equal plain polars


@pytest.mark.parametrize("optimize", [True, False])
@settings(max_examples=examples(15), deadline=None)
@given(data=datasets())
def test_scalar_udfs_match_polars_inline(data, optimize):
    frame, batches = data
    expected = polars_scalars(frame)
    for workers in (1, 3):
        ctx = sd.Context(executor="inline", workers=workers, optimize=optimize)
        stream(ctx, "s", batches)
        same(rows(ctx.sql(SCALAR_SQL).collect()), expected, f"inline workers={workers} optimize={optimize}")


@pytest.mark.parametrize("windowed", [False, True])
@pytest.mark.parametrize("optimize", [True, False])
@settings(max_examples=examples(10), deadline=None)
@given(data=datasets())
def test_aggregate_udfs_match_polars_inline(data, windowed, optimize):
    frame, batches = data
    expected = polars_aggregates(frame, windowed)
    for workers in (1, 3):
        ctx = sd.Context(executor="inline", workers=workers, optimize=optimize)
        stream(ctx, "s", batches)
        got = ctx.sql(aggregate_sql(windowed)).collect()
        same(rows(got), expected, f"inline workers={workers} optimize={optimize} windowed={windowed}")


@pytest.mark.parametrize("executor, workers", EXECUTORS)
@settings(max_examples=examples(3), deadline=None)
@given(data=datasets())
def test_scalar_and_aggregate_udfs_match_polars_on_every_executor(contexts, executor, workers, data):
    frame, batches = data
    ctx = contexts[(executor, workers)]
    stream(ctx, "s", batches)
    same(rows(ctx.sql(SCALAR_SQL).collect()), polars_scalars(frame), f"{executor} x{workers} scalars")
    for windowed in (False, True):
        got = rows(ctx.sql(aggregate_sql(windowed)).collect())
        same(got, polars_aggregates(frame, windowed), f"{executor} x{workers} aggregates windowed={windowed}")


def many_rows(groups: int = 3, batches: int = 4, per_batch: int = 60) -> tuple[pl.DataFrame, list[pl.DataFrame]]:
    n = batches * per_batch
    frame = pl.DataFrame(
        {
            "k": [["a", "b", "c"][i % groups] for i in range(n)],
            "x": [None if i % 7 == 0 else (i * 37) % 101 - 50 for i in range(n)],
            "y": [float(i) for i in range(n)],
            "ts": [T0 + dt.timedelta(milliseconds=100 * i) for i in range(n)],
        }
    )
    return frame, [frame.slice(i * per_batch, per_batch) for i in range(batches)]


@pytest.mark.parametrize("executor, workers", EXECUTORS)
def test_aggregate_udfs_run_in_two_phases_and_in_one(contexts, executor, workers):
    """Many rows per batch and few groups: the partial state is built map-side and merged reduce-side."""
    frame, batches = many_rows()
    ctx = contexts[(executor, workers)]
    stream(ctx, "s", batches)
    for windowed in (False, True):
        for split in (True, False):
            ctx.sql(f"SET optimizer.split_aggregates = '{str(split).lower()}'")
            query = ctx.sql(aggregate_sql(windowed))
            assert ("two-phase" in query.explain()) == split
            same(rows(query.collect()), polars_aggregates(frame, windowed), f"{executor} split={split}")
    ctx.sql("SET optimizer.split_aggregates = 'true'")


def test_sessions_merge_aggregate_udf_states():
    frame, batches = many_rows(per_batch=20)
    ctx = sd.Context(executor="inline", workers=2)
    stream(ctx, "s", batches)
    got = ctx.sql(
        "SELECT k, window_start, spread(x) AS sp FROM s GROUP BY k, SESSION(ts, INTERVAL '1' SECOND)"
    ).collect()
    # every key's rows are 300 ms apart: one session per key over all its rows
    expected = frame.group_by("k").agg(pl.col("ts").min().alias("window_start"), pl.col("x"))
    assert rows(got) == rows(
        expected.select("k", "window_start", pl.col("x").map_elements(spread_of, return_dtype=pl.Int64).alias("sp"))
    )


# ---------------------------------------------------------------- the dataframe API


def test_the_api_calls_udfs_as_sql_does():
    frame, batches = many_rows(batches=2, per_batch=10)
    ctx = sd.Context(executor="inline")
    stream(ctx, "s", batches)
    double = ctx.register_function("double_it", lambda x: 2 * x, returns="BIGINT")
    api = ctx.stream("s").select(
        "k",
        double(sd.col("x")).alias("d"),
        sd.udf("score")(sd.col("x"), sd.col("y")).alias("s"),
        ctx.functions.label(sd.col("x")).alias("l"),
    )
    sql = ctx.sql("SELECT k, double_it(x) AS d, score(x, y) AS s, label(x) AS l FROM s")
    assert rows(api.collect()) == rows(sql.collect())
    grouped = ctx.stream("s").group_by("k").agg(sd.udf("spread")(sd.col("x")).alias("sp"))
    assert rows(grouped.collect()) == rows(ctx.sql("SELECT k, spread(x) AS sp FROM s GROUP BY k").collect())
    with pytest.raises(DSLError, match="did you mean 'double_it'"):
        sd.udf("double_itt")


# ---------------------------------------------------------------- binding


def test_argument_counts_are_checked_at_bind_time_with_a_position():
    ctx = sd.Context(executor="inline")
    stream(ctx, "s", [pl.DataFrame({"x": [1], "y": [1.0]})])
    with pytest.raises(BindError) as info:
        ctx.sql("SELECT x,\n  score(x) FROM s")
    assert (info.value.line, info.value.column) == (2, 3)
    assert "function score takes 2 argument(s), got 1" in str(info.value)
    with pytest.raises(BindError, match=r"unknown function 'scor' \(did you mean 'score'"):
        ctx.sql("SELECT scor(x, y) FROM s")
    with pytest.raises(BindError, match="SPREAD takes exactly one argument"):
        ctx.sql("SELECT spread(x, y) FROM s")
    with pytest.raises(BindError, match="aggregate functions are not allowed in WHERE"):
        ctx.sql("SELECT x FROM s WHERE spread(x) > 1")


def test_registration_errors_are_clear():
    ctx = sd.Context(executor="inline")
    with pytest.raises(DSLError, match="returns='BIGNUM' is not a type"):
        ctx.register_function("f1", lambda x: x, returns="BIGNUM")
    with pytest.raises(DSLError, match="'upper' is a built-in function"):
        ctx.register_function("upper", lambda x: x, returns="VARCHAR")
    with pytest.raises(DSLError, match="has no init, update, merge, finish method"):
        ctx.register_aggregate("a1", object(), returns="BIGINT")


def test_show_and_describe_function_list_python_udfs():
    ctx = sd.Context(executor="inline")
    shown = ctx.sql("SHOW FUNCTIONS").filter(pl.col("name").is_in(["score", "scaled", "spread"]))
    assert shown.select("name", "kind", "signature").rows() == [
        ("scaled", "python scalar", "scaled(xs: pl.Series) -> BIGINT"),
        ("score", "python scalar", "score(x: int, y: float) -> DOUBLE"),
        ("spread", "python aggregate", "spread(x ANY) -> BIGINT"),
    ]
    described = dict(ctx.sql("DESCRIBE FUNCTION score").rows())
    assert described["kind"] == "python scalar"
    assert described["docstring"] == "x weighted by y, in thirds."
    assert described["description"] == "x weighted by y, in thirds. (called once per row)"


# ---------------------------------------------------------------- errors: dead letters, strict mode


@pytest.mark.parametrize("executor, workers", EXECUTORS)
def test_a_failing_row_goes_to_dead_letters_and_the_query_goes_on(contexts, executor, workers, tmp_path):
    ctx = contexts[(executor, workers)]
    batches = [pl.DataFrame({"x": [1, 0, None, 4]}), pl.DataFrame({"x": [0, 5]}, schema={"x": pl.Int64})]
    letters = tmp_path / "dead.ndjson"
    stream(ctx, "s", batches, dead_letter=str(letters))
    out = ctx.sql("SELECT x, inverse(x) AS i FROM s").collect()
    assert rows(out) == rows(pl.DataFrame({"x": [1, 0, None, 4, 0, 5], "i": [1.0, None, None, 0.25, None, 0.2]}))
    written = [json.loads(line) for line in letters.read_text().splitlines()]
    assert [(d["source"], d["position"], d["raw"], d["reason"], d["batch_id"]) for d in written] == [
        ("udf:inverse", "function inverse", '{"x": 0}', "inverse raised ZeroDivisionError: division by zero", b)
        for b in (0, 1)
    ]


def test_a_case_branch_calls_the_udf_only_for_the_rows_it_picks(tmp_path):
    ctx = sd.Context(executor="inline")
    letters = tmp_path / "dead.ndjson"
    stream(ctx, "s", [pl.DataFrame({"x": [1, 0, 2]})], dead_letter=str(letters))
    out = ctx.sql("SELECT x, CASE WHEN x <> 0 THEN inverse(x) ELSE -1 END AS i FROM s").collect()
    assert rows(out) == [(0, -1.0), (1, 1.0), (2, 0.5)]
    assert not letters.exists()


def test_a_vectorized_udf_that_raises_is_retried_row_by_row(tmp_path):
    ctx = sd.Context(executor="inline")

    def checked(xs: pl.Series) -> pl.Series:
        if (xs == 13).any():
            raise ValueError("unlucky")
        return xs + 1

    ctx.register_function("checked", checked, returns="BIGINT", vectorized=True)
    letters = tmp_path / "dead.ndjson"
    stream(ctx, "s", [pl.DataFrame({"x": [1, 13, None, 4]})], dead_letter=str(letters))
    assert ctx.sql("SELECT x, checked(x) AS c FROM s").collect().rows() == [(1, 2), (13, None), (None, None), (4, 5)]
    written = [json.loads(line) for line in letters.read_text().splitlines()]
    assert [(d["raw"], d["reason"]) for d in written] == [('{"x": 13}', "checked raised ValueError: unlucky")]


def test_a_value_of_the_wrong_type_is_a_dead_letter(tmp_path):
    ctx = sd.Context(executor="inline")
    ctx.register_function("sloppy", lambda x: "many" if x > 2 else x, returns="BIGINT")
    letters = tmp_path / "dead.ndjson"
    stream(ctx, "s", [pl.DataFrame({"x": [1, 3]})], dead_letter=str(letters))
    assert ctx.sql("SELECT sloppy(x) AS v FROM s").collect().rows() == [(1,), (None,)]
    (letter,) = [json.loads(line) for line in letters.read_text().splitlines()]
    assert letter["reason"] == "sloppy returned 'many' (str), not a BIGINT"


@pytest.mark.parametrize("executor, workers", [("inline", 1), ("drizzle", 3), ("bsp", 3)])
def test_strict_mode_stops_the_query_naming_the_function_row_and_error(contexts, executor, workers):
    ctx = contexts[(executor, workers)]
    stream(ctx, "s", [pl.DataFrame({"x": [1, 2]}), pl.DataFrame({"x": [3, 0]})])
    with pytest.raises(ExecutionError) as info:
        ctx.sql("SELECT x, strict_inverse(x) AS i FROM s").collect()
    assert str(info.value).endswith(
        'function strict_inverse failed for the row {"x": 0}: ZeroDivisionError: division by zero'
    )


def test_an_aggregate_udf_that_raises_stops_the_query():
    ctx = sd.Context(executor="inline")
    ctx.register_aggregate(
        "fragile", lambda: 0, lambda s, x: s + 10 // x, lambda a, b: a + b, lambda s: s, returns="BIGINT"
    )
    stream(ctx, "s", [pl.DataFrame({"k": ["a", "a"], "x": [1, 0]})])
    with pytest.raises(
        ExecutionError,
        match=r"^aggregate fragile: update\(10, 0\) raised ZeroDivisionError: integer division or modulo by zero$",
    ):
        ctx.sql("SELECT k, fragile(x) FROM s GROUP BY k").collect()


# ---------------------------------------------------------------- shipping: once per query and worker


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
def test_udfs_are_shipped_once_per_worker_and_query_not_per_batch(contexts, executor):
    ctx = contexts[(executor, 3)]
    for count in (2, 24):
        stream(ctx, "s", [pl.DataFrame({"k": ["a", "b"], "x": [i, i + 1]}) for i in range(count)])
        udfs.SERIALIZED.clear()
        out = ctx.sql("SELECT k, spread(x) AS sp, max(score(x, x)) AS m FROM s GROUP BY k").collect()
        assert out.height == 2
        assert dict(udfs.SERIALIZED) == {"spread": 3, "score": 3}, f"{count} batches"


@pytest.mark.parametrize("executor", ["inline", "drizzle"])
def test_a_udf_of_constants_is_called_once_per_row(contexts, executor):
    ctx = contexts[(executor, 1)]
    counter = iter(range(10**6))
    ctx.register_function("next_id", lambda: next(counter), returns="BIGINT", deterministic=False)
    stream(ctx, "s", [pl.DataFrame({"x": [1, 2, 3]}), pl.DataFrame({"x": [4, 5]})])
    ids = ctx.sql("SELECT x, next_id() AS i, score(1, 3.0) AS c FROM s").collect()
    assert ids.get_column("i").n_unique() == 5  # a fresh value per row, not one per batch
    assert ids.get_column("c").to_list() == [4.0] * 5
