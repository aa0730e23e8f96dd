"""One dispatch style for every pass over nodes: `functools.singledispatch` with a loud fallback.

A pass (plan text, expression traversal, lowering, a cost walker, running
a statement, unparsing) is one function with one case per node class:

    @node_pass("expr")
    def children(e: Expr) -> tuple[Expr, ...]:
        '''The direct sub-expressions of `e`.'''
        raise MissingCase(children, e)

    @children.register
    def _(e: Binary) -> tuple[Expr, ...]:
        return (e.left, e.right)

The decorated body is the fallback: it runs only for a class without a case
and raises `MissingCase`, which names the pass and the class. A new node
therefore means one new case per pass, and `PASSES` lists every pass with
the family of nodes it covers, so a test can check that each node class
has a case in each pass (tests/test_dispatch.py).
"""

from __future__ import annotations

from functools import singledispatch
from typing import TYPE_CHECKING, Any, Callable, TypeVar

if TYPE_CHECKING:
    from functools import _SingleDispatchCallable

T = TypeVar("T")

# Node families: "expr" (stream_dsl.ir.expr.Expr), "plan" (stream_dsl.ir.plan.Plan),
# "statement" (stream_dsl.bind.binder.BoundStatement), "ast" (stream_dsl.sql.ast nodes).
FAMILIES = ("expr", "plan", "statement", "ast")

# Every pass: its qualified name -> (the dispatching function, its family).
PASSES: dict[str, tuple[Any, str]] = {}


class MissingCase(TypeError):
    """A pass met a node class it has no case for: register one (`@the_pass.register`)."""

    def __init__(self, pass_: Callable[..., Any], node: object) -> None:
        name = getattr(pass_, "__qualname__", repr(pass_))
        module = getattr(pass_, "__module__", "?")
        super().__init__(
            f"{module}.{name} has no case for {type(node).__name__} ({node!r:.200}); add one with @{name}.register"
        )


def node_pass(family: str) -> Callable[[Callable[..., T]], "_SingleDispatchCallable[T]"]:
    """Make `fn` a singledispatch pass over the nodes of `family`; `fn`'s body is the fallback."""
    if family not in FAMILIES:
        raise ValueError(f"unknown node family {family!r}; choose one of {', '.join(FAMILIES)}")

    def decorate(fn: Callable[..., T]) -> "_SingleDispatchCallable[T]":
        dispatcher = singledispatch(fn)
        PASSES[f"{fn.__module__}.{fn.__qualname__}"] = (dispatcher, family)
        return dispatcher

    return decorate


def has_case(pass_: Any, cls: type) -> bool:
    """Whether `pass_` has a case of its own for `cls` (not only the fallback)."""
    return pass_.dispatch(cls) is not pass_.dispatch(object)
