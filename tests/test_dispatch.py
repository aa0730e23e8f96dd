"""One dispatch style: every node class has a case in every pass over its family.

The node classes are found by introspection (the `Expr`, `Plan` and
`BoundStatement` unions, and every dataclass of `stream_dsl.sql.ast`), the
passes by importing the modules that define them (they register themselves
in `stream_dsl.ir.dispatch.PASSES`). A node added without its cases fails
here, naming the pass, before any query meets the gap at run time.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing

import pytest

from stream_dsl.bind import binder
from stream_dsl.ir import expr as E
from stream_dsl.ir import plan as P
from stream_dsl.ir.dispatch import FAMILIES, PASSES, MissingCase, has_case, node_pass
from stream_dsl.ir.types import DataType

# Every module that defines a pass; importing them fills PASSES.
PASS_MODULES = (
    "stream_dsl.ir.expr",
    "stream_dsl.ir.plan",
    "stream_dsl.ir.plan_text",
    "stream_dsl.ir.to_polars",
    "optimizer.explain",
    "optimizer.cost",
    "optimizer.physical.lower",
    "stream_dsl.context",
    "stream_dsl.sql.unparse",
)
for _module in PASS_MODULES:
    importlib.import_module(_module)


def node_classes(family: str) -> tuple[type, ...]:
    if family == "expr":
        return typing.get_args(E.Expr)
    if family == "plan":
        return typing.get_args(P.Plan)
    if family == "statement":
        return typing.get_args(binder.BoundStatement)
    if family == "ast":
        from stream_dsl.sql.unparse import AST_NODES

        return AST_NODES
    raise AssertionError(family)


CASES = [
    pytest.param(name, cls, id=f"{name.rsplit('.', 1)[-1]}[{cls.__name__}]")
    for name, (fn, family) in sorted(PASSES.items())
    for cls in node_classes(family)
]


def test_every_family_has_passes_and_nodes():
    families = {family for _, family in PASSES.values()}
    assert families == set(FAMILIES)
    for family in FAMILIES:
        assert len(node_classes(family)) >= 8, family


def test_the_expected_passes_exist():
    names = {name.rsplit(".", 1)[-1] for name in PASSES}
    assert {
        "children",
        "with_children",
        "render",
        "describe",
        "with_inputs",
        "lower_node",
        "rows_per_batch",
        "column_ndv",
        "batch_time_span_ms",
        "run_statement",
        "_compile",
        "unparse",
        "pushdown_line",
    } <= names


def test_plan_union_matches_the_node_list():
    assert set(typing.get_args(P.Plan)) == set(P.PLAN_NODES)


@pytest.mark.parametrize(("name", "cls"), CASES)
def test_every_node_class_has_a_case_in_every_pass(name, cls):
    fn, _ = PASSES[name]
    assert has_case(fn, cls), f"{name} has no case for {cls.__name__}"


def test_a_node_without_a_case_fails_loudly_naming_the_pass():
    @node_pass("expr")
    def depth(e: E.Expr) -> int:
        """A pass for this test only."""
        raise MissingCase(depth, e)

    @depth.register
    def _(e: E.Column) -> int:
        return 1

    try:
        assert depth(E.Column("a", DataType.BIGINT)) == 1
        with pytest.raises(MissingCase, match=r"test_dispatch\..*depth has no case for Literal"):
            depth(E.Literal(1, DataType.BIGINT))
    finally:
        PASSES.pop(f"{depth.__module__}.{depth.__qualname__}", None)


def test_children_and_with_children_agree_for_every_expression_class():
    """Rebuilding any node over its own children gives the node back; over copies, an equal node."""
    col = E.Column("a", DataType.BIGINT)
    one = E.Literal(1, DataType.BIGINT)
    cond = E.Binary(">", col, one, DataType.BOOLEAN)
    samples = {
        E.Column: col,
        E.Literal: one,
        E.Binary: cond,
        E.Unary: E.Unary("-", col, DataType.BIGINT),
        E.Cast: E.Cast(col, DataType.DOUBLE),
        E.Case: E.Case(((cond, one), (cond, col)), E.Literal(None, DataType.BIGINT), DataType.BIGINT),
        E.InList: E.InList(col, (one, E.Literal(2, DataType.BIGINT))),
        E.Like: E.Like(E.Column("s", DataType.STRING), "a%"),
        E.IsNull: E.IsNull(col, negated=True),
        E.Func: E.Func("abs", (col,), DataType.BIGINT),
        E.Agg: E.Agg("sum", col, DataType.BIGINT),
    }
    assert set(samples) == set(typing.get_args(E.Expr))
    for cls, node in samples.items():
        kids = E.children(node)
        assert E.with_children(node, kids) is node, cls
        copies = tuple(dataclasses.replace(k) for k in kids)
        rebuilt = E.with_children(node, copies)
        assert rebuilt == node and E.children(rebuilt) == kids, cls
        renamed = E.rename_columns(node, {"a": E.Column("b", DataType.BIGINT)})
        assert "a" not in E.columns_used(renamed), cls


def test_the_binder_binds_every_syntax_tree_expression_class():
    """The binder's table dispatch (bind/expr.py `_DISPATCH`) is a pass too: one entry per ast.Expr class."""
    from stream_dsl.bind import expr as bind_expr
    from stream_dsl.sql import ast

    assert set(typing.get_args(ast.Expr)) <= set(bind_expr._DISPATCH)
