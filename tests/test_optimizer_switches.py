"""Per-rule optimizer switches for users, and golden files of the full EXPLAIN text.

Every rule of `optimizer.rules.RULES` can be switched off three ways:
`SET optimizer.<rule> = 'false'`, `Context(optimizer={rule: False})` and
`stream.explain(disabled=[rule])` (explain only). The tests prove that

- each rule fires (is listed under `== Rules fired ==`) when on and is
  absent when off, through each of the three ways;
- results never change with any one rule off: the differential queries of
  `test_differential.py` against DuckDB, one rule off at a time;
- the full EXPLAIN text (logical, optimized, rules, stages) of each query
  in `tests/plans/*.sql` equals `tests/plans/*.explain`; rewrite them with
  `pytest tests/test_optimizer_switches.py --update-goldens`, then read the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import stream_dsl as sd
from executor.api import collect
from optimizer.rules import RULE_NAMES
from stream_dsl.config import RunConfig
from stream_dsl.errors import DSLError
from conftest import CATALOG_DDL
from test_differential import QUERIES, assert_same_rows, datasets, duckdb_rows, engine

from budget import examples

PLANS = Path(__file__).parent / "plans"
PLAN_QUERIES = sorted(PLANS.glob("*.sql"))

# Fires every rule of RULES (test_rules.py checks the same through optimize()).
YSB = (
    "SELECT campaign_id, window_start, window_end, COUNT(*) AS views "
    "FROM (SELECT * FROM (SELECT * FROM events WHERE ad_type <> 'mail') WHERE event_type = 'view' AND 1 = 1) "
    "LEFT JOIN campaigns USING (ad_id) WHERE campaign_id <> '' "  # an INNER join once simplified
    "GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)"
)


def _context(**options) -> sd.Context:
    context = sd.Context(executor="inline", workers=1, check_files=False, **options)
    for statement in CATALOG_DDL:
        context.sql(statement)
    return context


def fired(explain_text: str) -> list[str]:
    """The rule names listed under `== Rules fired ==`."""
    section = explain_text.split("== Rules fired ==\n", 1)[1].split("\n== ", 1)[0]
    return [line for line in section.splitlines() if line in RULE_NAMES]


# ---------------------------------------------------------------- the three switches


def _off_by_set(rule: str) -> str:
    ctx = _context()
    ctx.sql(f"SET optimizer.{rule} = 'false'")
    return ctx.sql(YSB).explain()


def _off_by_context(rule: str) -> str:
    return _context(optimizer={rule: False}).sql(YSB).explain()


def _off_by_explain(rule: str) -> str:
    return _context().sql(YSB).explain(disabled=[rule])


def _off_by_explain_statement(rule: str) -> str:
    ctx = _context()
    ctx.sql(f"SET optimizer.{rule} = off")
    return ctx.sql(f"EXPLAIN {YSB}")


SWITCHES = [_off_by_set, _off_by_context, _off_by_explain, _off_by_explain_statement]


def test_every_rule_fires_on_the_ysb_query_when_on():
    assert set(fired(_context().sql(YSB).explain())) == set(RULE_NAMES)


@pytest.mark.parametrize("switch", SWITCHES, ids=[s.__name__ for s in SWITCHES])
@pytest.mark.parametrize("rule", RULE_NAMES)
def test_a_rule_switched_off_is_absent_from_explain(rule, switch):
    text = switch(rule)
    assert rule not in fired(text)
    assert f"(disabled: {rule})" in text
    assert set(fired(text)) < set(RULE_NAMES)


def test_set_switches_a_rule_back_on():
    ctx = _context()
    ctx.sql("SET optimizer.push_down_predicates = 'false'")
    assert ctx.config.disabled_rules == {"push_down_predicates"}
    ctx.sql("SET optimizer.push_down_predicates = 'true'")
    assert ctx.config.disabled_rules == frozenset()
    assert "push_down_predicates" in fired(ctx.sql(YSB).explain())


def test_explain_disabled_does_not_change_the_context():
    ctx = _context(optimizer={"merge_filters": False, "fold_constants": True})
    assert ctx.config.disabled_rules == {"merge_filters"}
    text = ctx.sql(YSB).explain(disabled=("split_aggregates",))
    assert "(disabled: merge_filters, split_aggregates)" in text
    assert ctx.config.disabled_rules == {"merge_filters"}


def test_disabling_pushdown_keeps_the_filter_in_the_optimized_plan():
    text = (
        _context(optimizer={"push_down_predicates": False}).sql("SELECT user_id FROM clicks WHERE url = '/a'").explain()
    )
    optimized = text.split("== Optimized plan ==\n", 1)[1]
    assert optimized.splitlines()[1].strip() == "Filter (url = '/a')"


@pytest.mark.parametrize(
    "make",
    [
        lambda: _context().sql("SET optimizer.push_down_predicate = 'false'"),
        lambda: _context(optimizer={"push_down_predicate": False}),
        lambda: _context().sql(YSB).explain(disabled=["push_down_predicate"]),
    ],
    ids=["set", "context", "explain"],
)
def test_an_unknown_rule_is_a_clear_error(make):
    with pytest.raises(
        DSLError,
        match=r"unknown optimizer rule 'push_down_predicate' "
        r"\(did you mean 'push_down_predicates'\?\)",
    ):
        make()


def test_a_switch_value_must_be_true_or_false():
    with pytest.raises(DSLError, match=r"optimizer.merge_filters must be true or false, got 'maybe'"):
        _context().sql("SET optimizer.merge_filters = 'maybe'")


def test_the_switches_reach_the_executor(monkeypatch):
    """A query run with a rule off is optimized without it (not only its EXPLAIN)."""
    import polars as pl

    import optimizer.fixpoint as fixpoint

    seen: list[frozenset[str]] = []
    real = fixpoint.optimize

    def spy(plan, **options):
        seen.append(frozenset(options.get("disabled", ())))
        return real(plan, **options)

    monkeypatch.setattr(fixpoint, "optimize", spy)
    ctx = sd.Context(executor="inline", workers=1, optimizer={"prune_projections": False})
    ctx.from_polars(pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}), name="s")
    ctx.sql("SET optimizer.push_down_predicates = 'false'")
    assert ctx.sql("SELECT b FROM s WHERE a > 1").collect()["b"].to_list() == ["y", "z"]
    assert seen == [frozenset({"prune_projections", "push_down_predicates"})]


# ---------------------------------------------------------------- results never change


@pytest.mark.parametrize("rule", RULE_NAMES)
@settings(max_examples=examples(12), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets(), query=st.sampled_from(QUERIES))
def test_results_equal_duckdbs_with_each_rule_off(rule, data, query):
    frame, batches, table, ordered = data
    plan = engine(batches, table, ordered).sql(query.dsl).plan
    expected = duckdb_rows(query.duck, frame, table)
    config = RunConfig(workers=2, executor="inline", disabled_rules=frozenset({rule}))
    result = collect(plan, config)
    assert_same_rows(result.rows(), expected, f"{query.name} with {rule} off")


# ---------------------------------------------------------------- golden EXPLAIN text


def explain_text(path: Path) -> str:
    text = path.read_text().strip()
    statement = text if text.upper().startswith("EXPLAIN") else f"EXPLAIN {text}"
    return _context().sql(statement) + "\n"


def test_there_are_plan_goldens():
    assert len(PLAN_QUERIES) >= 8


@pytest.mark.parametrize("path", PLAN_QUERIES, ids=[p.stem for p in PLAN_QUERIES])
def test_explain_text_matches_its_golden(path, update_goldens):
    actual = explain_text(path)
    golden = path.with_suffix(".explain")
    if update_goldens:
        golden.write_text(actual)
    assert golden.exists(), f"no golden {golden.name}: run pytest with --update-goldens and read it"
    assert actual == golden.read_text()
    for section in ("== Logical plan ==", "== Optimized plan ==", "== Rules fired ==", "== Stages =="):
        assert section in actual
