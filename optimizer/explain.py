"""The one canonical explain text: the logical plan, the optimized plan, then the stages.

Deterministic (no ids or addresses that change between runs), so golden
files and docstrings can hold it. Optimizer sections (the optimized plan,
the rules that fired) are added by `sections` other modules register.
"""

from __future__ import annotations

from typing import Callable

import networkx as nx

from optimizer.lower import lower, stage_order
from optimizer.stages import broadcast_tables, describe_table
from stream_dsl.config import RunConfig
from stream_dsl.plan import Plan, render_plan

# Extra sections between the logical plan and the stages: (title, fn(plan, config) -> text or None).
SECTIONS: list[tuple[str, Callable[[Plan, RunConfig], str | None]]] = []


def explain(plan: Plan, config: RunConfig | None = None) -> str:
    """The logical plan, the optimized plan (when `config.optimize`), extra sections, then the stage DAG.

    The stages are those of the plan that would run: the optimized one
    when optimization is on.
    """
    config = config or RunConfig()
    parts = ["== Logical plan ==", render_plan(plan)]
    runs = plan
    if config.optimize:
        from optimizer import optimize

        runs = optimize(plan, config)
        parts += ["== Optimized plan ==", render_plan(runs)]
    for title, section in SECTIONS:
        text = section(plan, config)
        if text is not None:
            parts += [f"== {title} ==", text]
    parts += ["== Stages ==", render_stages(lower(runs, config.workers))]
    return "\n".join(parts)


def render_stages(graph: nx.DiGraph) -> str:
    """Every stage, producers first, one operator per line; then the broadcast tables."""
    lines: list[str] = []
    tables: dict[str, str] = {}
    for stage in stage_order(graph):
        lines += stage.describe()
        for op in broadcast_tables(stage):
            tables.setdefault(op.table_id, describe_table(op))
    if graph.graph.get("limit") is not None:
        lines.append(f"Limit {graph.graph['limit']} at the output")
    if tables:
        lines.append("Broadcast tables:")
        lines += ["  " + line for text in tables.values() for line in text.splitlines()]
    return "\n".join(lines)
