"""The random differential tester in CI: fixed seeds, every case must equal DuckDB's answer.

Each case (tests/differential/generator.py) is random data with NULLs, NaN
and extreme values, split into micro-batches, with or without a watermark,
and a random query over the claimed SQL surface, run with the optimizer on
and off and with 1 and 3 workers. A difference must be one of the
documented kinds (tests/differential/known.py), and a failure of ours must
be a DSLError. Long local runs: `python -m tests.differential --seed S --count N`.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from differential.generator import make_case
from differential.known import KINDS, documented
from differential.oracle import SETTINGS, Case, describe, disagreement, our_answer
from differential.shrink import shrink

BLOCK = 40
CI_SEEDS = range(0, 120, BLOCK)  # 120 cases, about 15 s of CPU on inline


@pytest.mark.parametrize("first", CI_SEEDS)
def test_random_queries_give_duckdbs_answers(first):
    failures = []
    for seed in range(first, first + BLOCK):
        case, query = make_case(seed)
        found = disagreement(case)
        if found is not None and documented(found[1], found[2], case, found[0]) is None:
            small, _ = shrink(case, query, budget=60, still_fails=_undocumented)
            failures.append(f"seed {seed}:\n{small.render()}\n  {describe(disagreement(small) or found)}")
    assert not failures, "\n\n".join(failures)


def _undocumented(case) -> bool:
    found = disagreement(case)
    return found is not None and documented(found[1], found[2], case, found[0]) is None


@pytest.mark.parametrize("first", [10_000])
def test_only_dsl_errors_escape_from_a_query(first):
    """Every failure is a DSLError naming the operator or function (no raw polars or Python exception)."""
    foreign = []
    for seed in range(first, first + BLOCK):
        case, _ = make_case(seed)
        for setting in SETTINGS:
            answer = our_answer(case, setting)
            if answer.foreign:
                foreign.append(f"seed {seed} {setting}: {case.sql}\n  {answer.error}")
    assert not foreign, "\n".join(foreign)


def test_every_documented_kind_is_described():
    assert all(len(text) > 40 for text in KINDS.values())


def test_an_error_from_a_condition_pushed_below_a_join_is_the_documented_kind():
    """Seed 5824: the row the join drops fails the pushed-down CAST; without pushdown we answer as DuckDB."""
    s = pl.DataFrame(
        {"k": ["b"], "d": [-0.0], "s2": ["12"], "ts": pl.Series([dt.datetime(2024, 1, 1)], dtype=pl.Datetime("ms"))}
    )
    t = pl.DataFrame({"k": ["a"], "name": ["a"]})
    where = "WHERE CAST(lower('2024-01-01') AS DOUBLE) <= s.d"
    joined = Case(f"SELECT TRUE AS c0 FROM s JOIN t ON t.k = s.k {where}", s, t)
    found = disagreement(joined)
    assert found is not None and documented(found[1], found[2], joined, found[0]) == "checked_before_the_join"
    alone = Case(f"SELECT TRUE AS c0 FROM s {where}", s, t)
    assert disagreement(alone) is None  # without a join both fail
