"""The logical rewrite rules, one module each, and the order the driver runs them in.

Each rule is a pure function `plan -> plan` over the immutable nodes of
`stream_dsl.plan` that returns the very same object when it changes nothing;
`optimizer.driver.optimize` runs the tuple below repeatedly until no rule
changes the plan. A rule is named by its function's `__name__`, which is
also its module's name and what `optimize(..., disabled=...)` takes.
"""

from __future__ import annotations

from optimizer.rules.fold_constants import fold_constants
from optimizer.rules.merge_filters import merge_filters
from optimizer.rules.prune_projections import prune_projections
from optimizer.rules.push_down_predicates import push_down_predicates

RULES = (
    # First: folding turns `x AND TRUE`, `1 < 2`, `NOT NOT x` into the plain
    # conjuncts the later rules move and read, and `WHERE 1 = 1` into a
    # Filter TRUE for merge_filters to remove.
    fold_constants,
    # Before pushdown: one Filter per place gives pushdown a single list of
    # conjuncts to sort, and removes the Filter TRUE folding left behind.
    merge_filters,
    # Before pruning: a predicate that moves into a Scan or below a Project
    # changes which columns each node needs, so pruning must see filters in
    # their final places. Substituting projected expressions into predicates
    # can leave new constants (`(a + 0) > 1`); the next round folds them.
    push_down_predicates,
    # Last: it only narrows columns and removes identity projections, which
    # gives the rules above nothing new to do (a second round confirms it).
    prune_projections,
)

RULE_NAMES: tuple[str, ...] = tuple(rule.__name__ for rule in RULES)

__all__ = ["RULES", "RULE_NAMES", "fold_constants", "merge_filters", "push_down_predicates", "prune_projections"]
