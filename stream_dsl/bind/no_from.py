"""SELECT without FROM: the SELECT list over one row (`SELECT 1`, `SELECT now()`, as in DuckDB).

The row comes from the `one_row` connector, a bounded stream of one row whose column no name reaches:
the SELECT list is bound in an empty scope, so `SELECT x` says there is no column x, and `*` has
nothing to expand (DuckDB refuses it too).
"""

from __future__ import annotations

from stream_dsl.bind.scope import Scope
from stream_dsl.connectors.one_row import COLUMN
from stream_dsl.errors import BindError
from stream_dsl.ir.definitions import SourceDef
from stream_dsl.ir.plan import Plan, Scan
from stream_dsl.ir.types import DataType, Field, Schema
from stream_dsl.sql import ast

ONE_ROW = SourceDef("one_row", "stream", Schema((Field(COLUMN, DataType.BOOLEAN),)), (("connector", "one_row"),))


def one_row_relation(sel: ast.Select) -> tuple[Plan, Scope]:
    """The plan and scope a SELECT without FROM reads."""
    for item in sel.items:
        if isinstance(item.expr, ast.Star):
            raise BindError("SELECT * needs a FROM clause: there are no columns to expand", span=item.expr.span)
    return Scan(ONE_ROW, span=sel.span), Scope(())
