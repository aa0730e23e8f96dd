"""The logical rewrite rules, one module each, and the order the driver runs them in.

Each rule is a pure function `plan -> plan` over the immutable nodes of
`stream_dsl.ir.plan` that returns the very same object when it changes nothing;
`optimizer.fixpoint.optimize` runs the tuple below repeatedly until no rule
changes the plan. A rule is named by its function's `__name__`, which is
also its module's name and what `optimize(..., disabled=...)` takes.
The cost-based rules (`COST_BASED`) take an optional second argument, the
`optimizer.cost.CostModel`; `with_cost_model` binds a query's model (its
batch interval) into them, and alone they use the default model.
"""

from __future__ import annotations

from functools import wraps
from typing import Callable, Iterable

from stream_dsl.ir.plan import Plan

from optimizer.cost import CostModel
from stream_dsl.errors import DSLError, did_you_mean
from optimizer.rules.fold_constants import fold_constants
from optimizer.rules.merge_filters import merge_filters
from optimizer.rules.prune_projections import prune_projections
from optimizer.rules.push_aggregate_below_join import push_aggregate_below_join
from optimizer.rules.push_down_predicates import push_down_predicates
from optimizer.rules.simplify_outer_joins import simplify_outer_joins
from optimizer.rules.split_aggregates import split_aggregates

RULES = (
    # First: folding turns `x AND TRUE`, `1 < 2`, `NOT NOT x` into the plain
    # conjuncts the later rules move and read, and `WHERE 1 = 1` into a
    # Filter TRUE for merge_filters to remove.
    fold_constants,
    # Before pushdown: one Filter per place gives pushdown a single list of
    # conjuncts to sort, and removes the Filter TRUE folding left behind.
    merge_filters,
    # Before pushdown, on the one Filter merging left: a LEFT JOIN whose filter
    # rejects its unmatched rows becomes INNER, so the right side's conjuncts
    # may then move into the right input.
    simplify_outer_joins,
    # Before pruning: a predicate that moves into a Scan or below a Project
    # changes which columns each node needs, so pruning must see filters in
    # their final places. Substituting projected expressions into predicates
    # can leave new constants (`(a + 0) > 1`); the next round folds them.
    push_down_predicates,
    # After the rules above: it only narrows columns and removes identity
    # projections, which gives them nothing new to do (a second round confirms it).
    prune_projections,
    # After pruning: unused aggregates are gone and the filters sit where they
    # stay, so the cost guard estimates the rows the partial really sees.
    # Neither pruning nor pushdown rewrites the two phases afterwards.
    split_aggregates,
    # After the split, on the PartialAggregate it made: moves it below joins
    # with static tables. Last, because nothing above applies to what it moves.
    push_aggregate_below_join,
)

RULE_NAMES: tuple[str, ...] = tuple(rule.__name__ for rule in RULES)

# Rules whose decisions follow the cost model (a second argument): `with_cost_model` binds it.
COST_BASED = (split_aggregates, push_aggregate_below_join)


def check_rule_names(names: Iterable[str]) -> frozenset[str]:
    """`names` as a set, or a DSLError naming the first that is no rule (with a suggestion)."""
    checked = frozenset(names)
    for name in sorted(checked):
        if name not in RULE_NAMES:
            raise DSLError(
                f"unknown optimizer rule '{name}'{did_you_mean(name, RULE_NAMES)}; rules: {', '.join(RULE_NAMES)}"
            )
    return checked


def with_cost_model(model: CostModel, rules: tuple[Callable, ...] = RULES) -> tuple[Callable, ...]:
    """`rules` with `model` bound into the cost-based ones (same names, so traces and `disabled` still work)."""

    def bind(rule: Callable) -> Callable:
        if rule not in COST_BASED:
            return rule

        @wraps(rule)
        def bound(plan: Plan) -> Plan:
            return rule(plan, model)

        return bound

    return tuple(bind(rule) for rule in rules)


__all__ = [
    "RULES",
    "RULE_NAMES",
    "check_rule_names",
    "COST_BASED",
    "with_cost_model",
    "fold_constants",
    "merge_filters",
    "push_down_predicates",
    "prune_projections",
    "split_aggregates",
    "push_aggregate_below_join",
]
