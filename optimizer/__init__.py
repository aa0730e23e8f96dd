"""The optimizer: plan rewrites, lowering to stages, explain.

`optimize(plan, config)` is the entry point the executor calls when
`config.optimize` is on: it runs the rewrite rules of `optimizer/rules/`
to a fixed point through `optimizer.fixpoint`, with the cost model of
`config` (its batch interval) bound into the cost-based rules.
`optimize_traced` also returns which rules fired (what explain shows).
The rules named in `config.disabled_rules` are switched off (`SET
optimizer.<rule> = 'false'`, `Context(optimizer={...})`).
Every rule keeps the output schema and the query's results, so turning
optimization off never changes an answer, only how much work it takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stream_dsl.config import RunConfig
from stream_dsl.ir.plan import Plan

if TYPE_CHECKING:
    from optimizer.fixpoint import OptimizeResult


def optimize(plan: Plan, config: RunConfig | None = None) -> Plan:
    """The plan to run: `plan` rewritten by every optimizer rule."""
    return optimize_traced(plan, config).plan


def optimize_traced(plan: Plan, config: RunConfig | None = None) -> "OptimizeResult":
    """`optimize`, with the trace of the rules that fired."""
    from optimizer.cost import CostModel
    from optimizer.fixpoint import optimize as run_rules
    from optimizer.rules import with_cost_model

    disabled = config.disabled_rules if config is not None else frozenset()
    return run_rules(plan, rules=with_cost_model(CostModel.from_config(config)), disabled=disabled)
