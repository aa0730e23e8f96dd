"""The canonical plan text: one line per node (`describe`), inputs indented by two spaces (`render_plan`).

explain(), golden files and docstrings print plans with these. `describe`
is a pass with one case per plan node class (stream_dsl.ir.dispatch).
"""

from __future__ import annotations

from stream_dsl.ir.dispatch import MissingCase, node_pass
from stream_dsl.ir.expr import NamedExpr, format_duration_ms, render, render_named
from stream_dsl.ir.definitions import WindowSpec
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
    Unnest,
)


@node_pass("plan")
def describe(node: Plan) -> str:
    """One line for one node, without its inputs."""
    raise MissingCase(describe, node)


@describe.register
def _(node: Scan) -> str:
    text = f"Scan {node.source.kind} {node.source.name}"
    if node.columns is not None:
        text += f" columns=[{', '.join(node.columns)}]"
    if node.predicate is not None:
        text += f" predicate={render(node.predicate)}"
    if node.source.watermark is not None:
        wm = node.source.watermark
        text += f" watermark={wm.column}-{format_duration_ms(wm.delay_ms)}"
    return text


@describe.register
def _(node: Filter) -> str:
    return f"Filter {render(node.predicate)}"


@describe.register
def _(node: Project) -> str:
    return f"Project {', '.join(render_named(n) for n in node.exprs)}"


@describe.register
def _(node: Join) -> str:
    on = ", ".join(f"{lk} = {rk}" for lk, rk in zip(node.left_keys, node.right_keys))
    right = ", ".join(c if c == o else f"{o} := {c}" for c, o in node.right_columns)
    text = f"Join {node.kind} on [{on}] right=[{right}]"
    if node.interval is not None:
        text += f" within [{node.interval.describe(dict(node.right_columns).get(node.interval.right_time))}]"
    return text


def _grouping(keys: tuple[NamedExpr, ...], window: WindowSpec | None, aggs: tuple[NamedExpr, ...]) -> list[str]:
    parts = [f"keys=[{', '.join(render_named(k) for k in keys)}]"]
    if window is not None:
        parts.append(f"window={window}")
    parts.append(f"aggs=[{', '.join(render_named(a) for a in aggs)}]")
    return parts


@describe.register
def _(node: Aggregate) -> str:
    return "Aggregate " + " ".join(_grouping(node.keys, node.window, node.aggs) + [f"emit={node.emit}"])


@describe.register
def _(node: PartialAggregate) -> str:
    return "PartialAggregate " + " ".join(_grouping(node.keys, node.window, node.aggs))


@describe.register
def _(node: FinalAggregate) -> str:
    return "FinalAggregate " + " ".join(_grouping(node.keys, node.window, node.aggs) + [f"emit={node.emit}"])


@describe.register
def _(node: Distinct) -> str:
    return "Distinct"


@describe.register
def _(node: Union) -> str:
    return "Union all"


@describe.register
def _(node: Unnest) -> str:
    ordinality = f" ordinality={node.ordinality}" if node.ordinality is not None else ""
    return f"Unnest{' outer' if node.outer else ''} {node.column} as {node.element}{ordinality}"


@describe.register
def _(node: Limit) -> str:
    return f"Limit {node.n}"


@describe.register
def _(node: Sort) -> str:
    return f"Sort {', '.join(str(k) for k in node.keys)}"


@describe.register
def _(node: TopN) -> str:
    text = f"TopN {node.kind} n={node.n} partition=[{', '.join(node.partition_by)}]"
    text += f" order=[{', '.join(str(k) for k in node.order_by)}]"
    if node.number_column is not None:
        text += f" number={node.number_column}"
    if node.ttl_ms is not None:
        text += f" ttl={format_duration_ms(node.ttl_ms)}"
    return text


def render_plan(node: Plan, *, schema: bool = False, indent: int = 0) -> str:
    """The canonical plan text: one node per line, inputs indented by two spaces.

    With `schema=True` each line ends with the node's output columns and types.
    """
    line = "  " * indent + describe(node)
    if schema:
        line += f"  -> ({node.schema})"
    lines = [line]
    for child in node.inputs:
        lines.append(render_plan(child, schema=schema, indent=indent + 1))
    return "\n".join(lines)
