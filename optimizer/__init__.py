"""The optimizer: plan rewrites, lowering to stages, explain.

`optimize(plan, config)` is the entry point the executor calls when
`config.optimize` is on: it runs the rewrite rules of `optimizer/rules/`
to a fixed point through `optimizer.driver`. Every rule keeps the output
schema and the query's results, so turning optimization off never changes
an answer, only how much work it takes.
"""

from __future__ import annotations

from stream_dsl.config import RunConfig
from stream_dsl.plan import Plan


def optimize(plan: Plan, config: RunConfig | None = None) -> Plan:
    """The plan to run: `plan` rewritten by every optimizer rule."""
    from optimizer.driver import optimize as run_rules

    return run_rules(plan).plan
