"""The fixed-point driver: run the rewrite rules in order, again and again, until none fires.

Like DataFusion's optimizer, it records every rule application that changed
the plan (what EXPLAIN VERBOSE shows), stops at a fixed point, on a cycle
(a plan seen at the end of an earlier pass), or after `max_passes`, and
checks after every rule that the output schema (names and types) did not
change: a rule that breaks that is a bug, reported with the rule's name.

>>> import stream_dsl as sd
>>> ctx = sd.Context(check_files=False)  # plans only: the files are not there
>>> ctx.sql("CREATE STREAM s (a BIGINT, b STRING, c DOUBLE) "
...         "WITH (connector = 'files', path = 's/', format = 'ndjson')")
>>> result = optimize(ctx.sql("SELECT b FROM s WHERE a > 1 + 1").plan)
>>> result.fired
('fold_constants', 'push_down_predicates', 'prune_projections')
>>> print(render_plan(result.plan))
Project b
  Scan stream s columns=[a, b] predicate=(a > 2)
>>> without = optimize(ctx.sql("SELECT b FROM s WHERE a > 1 + 1").plan, disabled={"push_down_predicates"})
>>> without.fired
('fold_constants', 'prune_projections')
>>> print(render_plan(without.plan))
Project b
  Filter (a > 2)
    Scan stream s columns=[a, b]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Collection, Hashable, NamedTuple, Sequence

from stream_dsl.errors import ConnectorError, DSLError, did_you_mean
from stream_dsl.ir.plan import Plan, render_plan

from optimizer.rules import RULE_NAMES, RULES

Rule = Callable[[Plan], Plan]

DEFAULT_MAX_PASSES = 16

FIXED_POINT = "fixed point"
CYCLE = "cycle"
PASS_LIMIT = "pass limit"


class RuleApplication(NamedTuple):
    """One rule application that changed the plan: the rule's name and the plan text before and after."""

    rule: str
    before: str
    after: str


class OptimizerRuleError(DSLError, RuntimeError):
    """A rule broke its contract (changed the output schema, or failed): a bug in the rule, not the query.

    A DSLError too, so a query's caller catches every failure of a query as one.
    """

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(
            f"optimizer rule '{rule}' {message}; this is a bug in the rule "
            f"(switch it off with SET optimizer.{rule} = 'false' to work around it)"
        )


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    """The optimized plan and how it came about.

    `trace` lists the rule applications that changed the plan, in order;
    `passes` counts passes over the rule list (the last one changed nothing
    when `stopped` is "fixed point"); `stopped` is "fixed point", "cycle"
    or "pass limit".
    """

    plan: Plan
    trace: tuple[RuleApplication, ...]
    passes: int
    stopped: str

    @property
    def fired(self) -> tuple[str, ...]:
        """The names of the rules that changed the plan, in the order they did (repeats included)."""
        return tuple(step.rule for step in self.trace)

    def render_trace(self) -> str:
        """Each rule that fired and the plan after it, as text (EXPLAIN VERBOSE)."""
        if not self.trace:
            return "(no rule changed the plan)"
        return "\n".join(f"-- after {step.rule}:\n{step.after}" for step in self.trace)


def optimize(
    plan: Plan, *, rules: Sequence[Rule] = RULES, disabled: Collection[str] = (), max_passes: int = DEFAULT_MAX_PASSES
) -> OptimizeResult:
    """Run `rules` (minus the `disabled` names) in order, repeatedly, to a fixed point.

    Raises DSLError for an unknown name in `disabled`, and OptimizerRuleError
    when a rule fails or changes the output schema.
    """
    if max_passes < 1:
        raise DSLError(f"max_passes must be at least 1, got {max_passes}")
    active = _active(rules, disabled)
    trace: list[RuleApplication] = []
    seen: set[Hashable] = {_key(plan)}
    for passes in range(1, max_passes + 1):
        changed = False
        for rule in active:
            new = _apply(rule, plan)
            if new is plan or new == plan:
                continue
            trace.append(RuleApplication(rule.__name__, render_plan(plan), render_plan(new)))
            plan, changed = new, True
        if not changed:
            return OptimizeResult(plan, tuple(trace), passes, FIXED_POINT)
        key = _key(plan)
        if key in seen:
            return OptimizeResult(plan, tuple(trace), passes, CYCLE)
        seen.add(key)
    return OptimizeResult(plan, tuple(trace), max_passes, PASS_LIMIT)


def _active(rules: Sequence[Rule], disabled: Collection[str]) -> list[Rule]:
    names = [rule.__name__ for rule in rules]
    known = list(dict.fromkeys(names + list(RULE_NAMES)))
    for name in disabled:
        if name not in known:
            raise DSLError(f"unknown optimizer rule '{name}'{did_you_mean(name, known)}; rules: {', '.join(known)}")
    return [rule for rule in rules if rule.__name__ not in disabled]


def _apply(rule: Rule, plan: Plan) -> Plan:
    """`rule(plan)`, checked: same output schema, and any failure reported as the rule's."""
    name = rule.__name__
    try:
        new = rule(plan)
    except ConnectorError:  # the user's source options, e.g. a malformed `ndv` statistics hint: as is
        raise
    except Exception as exc:
        raise OptimizerRuleError(name, f"failed: {type(exc).__name__}: {exc}") from exc
    if new is not plan and new.schema != plan.schema:
        raise OptimizerRuleError(name, f"changed the output schema from ({plan.schema}) to ({new.schema})")
    return new


def _key(plan: Plan) -> Hashable:
    """What identifies a plan for cycle detection: the plan itself, or its full text if unhashable."""
    try:
        hash(plan)
        return plan
    except TypeError:
        return render_plan(plan, schema=True)
