"""Shared analysis for the rewrite rules: traversals that keep identity, and expression facts.

Rules must return the very same object when they change nothing (the driver
tells "fired" from "did not fire" by identity), so the traversals here only
rebuild a node when one of its inputs really changed.

>>> from stream_dsl.ir.expr import Column, Func
>>> from stream_dsl.ir.types import DataType
>>> is_deterministic(Func("upper", (Column("a", DataType.STRING),), DataType.STRING))
True
"""

from __future__ import annotations

from typing import Callable, Iterable

from stream_dsl.ir import expr as E
from stream_dsl.ir.plan import Filter, Plan, Project, with_inputs
from stream_dsl.ir.types import DataType, Schema

# Scalar functions whose result may differ between two calls with the same
# arguments (NOW() reads the clock). Predicates calling them are never moved
# or duplicated, and they are never folded to a constant.
NONDETERMINISTIC_FUNCTIONS: frozenset[str] = frozenset({"now"})

TRUE = E.Literal(True, DataType.BOOLEAN)


def is_deterministic(e: E.Expr) -> bool:
    """Whether `e` gives the same value every time it sees the same row (so it may move or repeat)."""
    return not any(
        isinstance(n, E.Func) and (n.name in NONDETERMINISTIC_FUNCTIONS or _random_udf(n)) for n in E.walk(e)
    )


def _random_udf(f: E.Func) -> bool:
    """A Python UDF registered with deterministic=False (stream_dsl/ir/udfs.py)."""
    return f.udf is not None and not f.udf.deterministic


def is_true(e: E.Expr) -> bool:
    return isinstance(e, E.Literal) and e.value is True


def is_false(e: E.Expr) -> bool:
    return isinstance(e, E.Literal) and e.value is False


def is_null_literal(e: E.Expr) -> bool:
    return isinstance(e, E.Literal) and e.value is None


def movable(predicate: E.Expr) -> bool:
    """A predicate a rule may move to another place in the plan: deterministic, without aggregates."""
    return is_deterministic(predicate) and not E.contains_agg(predicate)


def transform_up(node: Plan, fn: Callable[[Plan], Plan]) -> Plan:
    """Apply `fn` to every node, children first; a node is rebuilt only when an input changed."""
    inputs = tuple(transform_up(child, fn) for child in node.inputs)
    if any(new is not old for new, old in zip(inputs, node.inputs)):
        node = with_inputs(node, inputs)
    return fn(node)


def same_or_new(node: Plan, inputs: Iterable[Plan]) -> Plan:
    """`node` itself when every input is unchanged, else the node over the new inputs."""
    inputs = tuple(inputs)
    if all(new is old for new, old in zip(inputs, node.inputs)):
        return node
    return with_inputs(node, inputs)


def filtered(node: Plan, predicates: list[E.Expr]) -> Plan:
    """`node` under a Filter of the conjunction of `predicates` (no Filter when there are none)."""
    predicate = E.conjoin(predicates)
    return node if predicate is None else Filter(node, predicate)


def select(node: Plan, schema: Schema) -> Plan:
    """A Project keeping exactly the columns of `schema`, in its order (a no-op is not built)."""
    if node.schema.names == schema.names:
        return node
    return Project(node, tuple(E.NamedExpr(f.name, E.Column(f.name, f.dtype)) for f in schema))


def is_identity_project(node: Project) -> bool:
    """A Project that passes every input column through, in order, under its own name."""
    return tuple(n.name for n in node.exprs) == node.input.schema.names and all(
        isinstance(n.expr, E.Column) and n.expr.name == n.name for n in node.exprs
    )
