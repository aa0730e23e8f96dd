"""The one canonical explain text: the logical plan, the optimized plan, the rules that fired, the stages.

Deterministic (no ids or addresses that change between runs), so golden
files and docstrings can hold it. Sections, in order:

- `== Logical plan ==`: the plan as bound;
- `== Optimized plan ==` and `== Rules fired ==` (when `config.optimize`):
  the plan that runs, and each rule application that changed it, in order,
  then the rules switched off (`config.disabled_rules`), if any;
- `== Aggregation pushdown ==` (when the plan aggregates): per aggregate,
  whether it runs in one phase or two (and where its partial runs), with
  the cost guard's estimate of rows and groups per batch;
- extra sections other modules register in `SECTIONS`;
- `== Stages ==`: the stage DAG, producers first; each stage lists its
  fused pipeline, one operator per line (all the narrow operators of a
  task run as one polars query), then its state, then its terminal write.

`explain(plan, config, format="dot")` gives the stage DAG as Graphviz DOT
instead: one box per stage holding its pipeline, edges labelled with their
exchange, broadcast tables and the output as extra nodes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import networkx as nx

from optimizer.cost import CostModel, estimate
from optimizer.physical.lower import lower, stage_order
from optimizer.physical.stages import OutputWrite, Stage, broadcast_tables, describe_table
from stream_dsl.config import RunConfig
from stream_dsl.errors import DSLError, did_you_mean
from stream_dsl.ir.expr import render_named
from stream_dsl.ir.dispatch import MissingCase, node_pass
from stream_dsl.ir.partial_state import distinct_argument
from stream_dsl.ir.plan import (
    Aggregate,
    Distinct,
    FinalAggregate,
    Filter,
    Join,
    Limit,
    PartialAggregate,
    Plan,
    Project,
    Scan,
    Sort,
    TopN,
    Union,
    render_plan,
    walk,
    Unnest,
)

# Extra sections between the optimizer's sections and the stages: (title, fn(plan, config) -> text or None).
SECTIONS: list[tuple[str, Callable[[Plan, RunConfig], str | None]]] = []

FORMATS = ("text", "dot")


def explain(plan: Plan, config: RunConfig | None = None, *, format: str = "text") -> str:
    """The explain text of `plan` (see the module doc), or with `format="dot"` its stage DAG as Graphviz DOT.

    The stages are those of the plan that would run: the optimized one
    when optimization is on.
    """
    config = config or RunConfig()
    if format not in FORMATS:
        raise DSLError(
            f"unknown explain format '{format}'{did_you_mean(format, FORMATS)}; choose one of {', '.join(FORMATS)}"
        )
    runs, fired = plan, None
    if config.optimize:
        from optimizer import optimize_traced

        result = optimize_traced(plan, config)
        runs, fired = result.plan, result
    graph = lower(runs, config.workers, state_ttl_ms=config.state_ttl_ms)
    if format == "dot":
        return render_dot(graph)
    parts = ["== Logical plan ==", render_plan(plan)]
    if fired is not None:
        parts += ["== Optimized plan ==", render_plan(runs)]
        parts += ["== Rules fired ==", render_fired(fired.fired, fired.passes, fired.stopped)]
        if config.disabled_rules:
            parts.append(f"(disabled: {', '.join(sorted(config.disabled_rules))})")
    pushdown = render_pushdown(runs, CostModel.from_config(config))
    if pushdown is not None:
        parts += ["== Aggregation pushdown ==", pushdown]
    for title, section in SECTIONS:
        text = section(plan, config)
        if text is not None:
            parts += [f"== {title} ==", text]
    parts += ["== Stages ==", render_stages(graph)]
    return "\n".join(parts)


def render_fired(fired: tuple[str, ...], passes: int, stopped: str) -> str:
    """The rules that changed the plan, one per line in order, then how the driver stopped."""
    lines = list(fired) if fired else ["(none: no rule changed the plan)"]
    lines.append(f"({stopped} after {passes} pass{'es' if passes != 1 else ''})")
    return "\n".join(lines)


# ---------------------------------------------------------------- aggregation pushdown


def render_pushdown(plan: Plan, model: CostModel) -> str | None:
    """Per aggregate of the plan that runs: one or two phases, where the partial runs, and the estimate."""
    lines = [line for node in walk(plan) if (line := pushdown_line(node, model)) is not None]
    return "\n".join(lines) if lines else None


@node_pass("plan")
def pushdown_line(node: Plan, model: CostModel) -> str | None:
    """The aggregation pushdown line of one node (None: the node aggregates nothing of its own)."""
    raise MissingCase(pushdown_line, node)


@pushdown_line.register
def _(node: FinalAggregate, model: CostModel) -> str | None:
    partial, joins = _partial_of(node)
    if partial is None:
        return None
    where = f"below {len(joins)} join{'s' if len(joins) != 1 else ''}" if joins else "before the shuffle"
    # What the rule estimated over: the innermost join with the partial's input as its stream side.
    over = replace(joins[-1], left=partial.input) if joins else partial.input
    return f"{_keys(node)}: two-phase, partial keys=[{_names(partial)}] {where}; {_estimate(over, partial, model)}"


@pushdown_line.register
def _(node: Aggregate, model: CostModel) -> str | None:
    from stream_dsl.ir.changelog_plans import is_changelog
    from optimizer.rules.split_aggregates import splittable

    if not splittable(node):
        why = (
            ("a CUMULATE window" if node.window.kind == "cumulate" else "a HOP or SESSION window")
            if node.window is not None and node.window.kind != "tumble"
            else "COUNT(DISTINCT) of several arguments"
        )
        why = "over a changelog: partial state cannot take a row back" if is_changelog(node.input) else why
        return f"{_keys(node)}: single-phase ({why})"
    return f"{_keys(node)}: single-phase; {_estimate(node.input, node, model)}"


@pushdown_line.register(Scan)
@pushdown_line.register(Filter)
@pushdown_line.register(Project)
@pushdown_line.register(Join)
@pushdown_line.register(PartialAggregate)  # described by its FinalAggregate
@pushdown_line.register(Distinct)
@pushdown_line.register(Union)
@pushdown_line.register(Limit)
@pushdown_line.register(Sort)
@pushdown_line.register(TopN)
@pushdown_line.register(Unnest)
def _(node: Plan, model: CostModel) -> str | None:
    return None


def _partial_of(final: FinalAggregate) -> tuple[PartialAggregate | None, list[Join]]:
    """The final's partial, and the joins it went below (outermost first)."""
    node, joins = final.input, []
    while isinstance(node, Join):
        joins.append(node)
        node = node.left
    return (node, joins) if isinstance(node, PartialAggregate) else (None, joins)


def _estimate(input: Plan, node: Aggregate | PartialAggregate, model: CostModel) -> str:
    distinct = distinct_argument(node.aggs)
    guess = estimate(
        input, (k.expr for k in node.keys), node.window, model, extra=() if distinct is None else (distinct,)
    )
    verdict = "pays" if guess.pays(model) else "does not pay"
    return f"{guess.describe()}: {verdict} (needs x{model.min_reduction:g}; unknown counts pay)"


def _keys(node: Aggregate | FinalAggregate) -> str:
    window = f" window={node.window}" if node.window is not None else ""
    return f"{type(node).__name__} keys=[{', '.join(render_named(k) for k in node.keys)}]{window}"


def _names(node: PartialAggregate) -> str:
    return ", ".join(render_named(k) for k in node.keys)


# ---------------------------------------------------------------- stages


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
    if graph.graph.get("order"):
        lines.append(
            f"Sort {', '.join(str(k) for k in graph.graph['order'])} at the output"
            + (f", then limit {graph.graph['order_limit']}" if graph.graph.get("order_limit") is not None else "")
        )
    if tables:
        lines.append("Broadcast tables:")
        lines += ["  " + line for text in tables.values() for line in text.splitlines()]
    return "\n".join(lines)


def render_dot(graph: nx.DiGraph) -> str:
    """The stage DAG as Graphviz DOT: stages as boxes listing their pipelines, exchanges as labelled edges."""
    lines = ["digraph stages {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    tables: dict[str, str] = {}
    edges: list[str] = []
    outputs = False
    for stage in stage_order(graph):
        lines.append(f"  stage{stage.id} [label={_dot_text(_stage_lines(stage))}];")
        for op in broadcast_tables(stage):
            if op.table_id not in tables:
                tables[op.table_id] = describe_table(op)
            edges.append(f'  {op.table_id} -> stage{stage.id} [style=dashed, label="broadcast"];')
        if isinstance(stage.terminal, OutputWrite):
            outputs = True
            edges.append(f"  stage{stage.id} -> output [label={_dot_text([stage.terminal.describe()])}];")
    for table_id, text in tables.items():
        lines.append(f"  {table_id} [shape=cylinder, label={_dot_text(text.splitlines())}];")
    for u, v, data in sorted(graph.edges(data=True)):
        lines.append(f"  stage{u} -> stage{v} [label={_dot_text([data['exchange'].describe()])}];")
    if outputs:
        limit = graph.graph.get("limit") or graph.graph.get("order_limit")
        order = ", ".join(str(k) for k in graph.graph.get("order", ()))
        label = "output" + (f" sort {order}" if order else "") + (f" limit {limit}" if limit else "")
        lines.append(f"  output [shape=oval, label={_dot_text([label])}];")
    lines += edges
    lines.append("}")
    return "\n".join(lines)


def _stage_lines(stage: Stage) -> list[str]:
    return [line.strip() for line in stage.describe()]


def _dot_text(lines: list[str]) -> str:
    """A DOT string literal of left-aligned lines (backslashes and quotes escaped)."""
    body = "".join(line.replace("\\", "\\\\").replace('"', '\\"') + "\\l" for line in lines)
    return f'"{body}"'
