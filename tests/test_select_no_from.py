"""SELECT without FROM reads one row, as in DuckDB (issue 23, small things): constants, functions, aggregates.

Each query runs on every executor with 1 and 3 workers and the optimizer on and off, against DuckDB's
answer for the same text; hypothesis picks the literals.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor.api import collect
from stream_dsl.config import RunConfig
from stream_dsl.errors import BindError

from budget import examples

EXECUTORS = ["inline", "drizzle", "bsp"]  # the hypothesis test runs inline; drizzle and bsp have their own
SETUPS = [(1, True), (3, True), (3, False)]  # (workers, optimize)

QUERIES = [
    "SELECT 1 AS one",
    "SELECT {a} + {b} AS x, {a} * {b} AS y, {a} - {b} AS z, '{s}' AS s",
    "SELECT UPPER('{s}') AS u, LENGTH('{s}') AS n, CONCAT('{s}', '!') AS c, '{s}' LIKE 'a%' AS l",
    "SELECT {a} > {b} AS gt, COALESCE(NULL, {a}) AS c, CASE WHEN {a} % 2 = 0 THEN 'even' ELSE 'odd' END AS p",
    "SELECT ABS({a}) AS a, GREATEST({a}, {b}) AS g, LEAST({a}, {b}) AS l, CAST({a} AS DOUBLE) / 4 AS q",
    "SELECT COUNT(*) AS n, SUM({a}) AS total, MAX('{s}') AS m",
    "SELECT {a} AS a WHERE {a} > {b}",
]

literals = st.fixed_dictionaries(
    {
        "a": st.integers(-(10**6), 10**6),
        "b": st.integers(-(10**6), 10**6),
        "s": st.text("abcXYZ é", max_size=6),
    }
)


def _rows(query: str, executor: str, workers: int, optimize: bool) -> list[tuple]:
    plan = sd.Context(executor="inline", workers=1).sql(query).plan
    return collect(plan, RunConfig(workers=workers, executor=executor, optimize=optimize)).rows()


@settings(max_examples=examples(2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=literals)
def test_select_without_from_matches_duckdb(values):
    for template in QUERIES:
        query = template.format(**values)
        expected = duckdb.sql(query).fetchall()
        for workers, optimize in SETUPS:
            assert _rows(query, "inline", workers, optimize) == expected, (query, workers, optimize)


@pytest.mark.parametrize("executor", ["drizzle", "bsp"])
def test_select_without_from_matches_duckdb_on_worker_processes(executor):
    """One set of literals (a query costs a scheduling round trip here): every query with 3 workers, one
    with 1 worker and the optimizer off."""
    values = {"a": -7, "b": 12, "s": "abé"}
    for i, template in enumerate(QUERIES):
        query = template.format(**values)
        expected = duckdb.sql(query).fetchall()
        for workers, optimize in SETUPS if i == 1 else SETUPS[1:2]:
            assert _rows(query, executor, workers, optimize) == expected, (query, executor, workers, optimize)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_select_now_is_the_wall_clock_once(executor):
    before = dt.datetime.now().replace(microsecond=0) - dt.timedelta(seconds=1)
    rows = _rows("SELECT now() AS t, 1 AS one", executor, 2, True)
    after = dt.datetime.now() + dt.timedelta(seconds=1)
    assert len(rows) == 1 and rows[0][1] == 1
    assert before <= rows[0][0] <= after


def test_select_without_from_refuses_star_and_names_no_column():
    ctx = sd.Context(executor="inline", workers=1)
    with pytest.raises(BindError, match="SELECT \\* needs a FROM clause") as info:
        ctx.sql("SELECT *")
    assert (info.value.line, info.value.column) == (1, 8)
    with pytest.raises(BindError, match="unknown column 'x'"):
        ctx.sql("SELECT x")
    assert ctx.sql("SELECT 1 + 2 AS x, 'a' AS y").collect().rows() == [(3, "a")]
