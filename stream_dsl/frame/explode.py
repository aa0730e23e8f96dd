"""`Stream.explode`: polars' explode as an `Unnest` plan node (the SQL's UNNEST), the list column replaced
in place by its elements.

As polars' `explode` (polars 2): an empty list gives no row unless `empty_as_null`, a NULL list one row
with a NULL element unless `keep_nulls=False`. The rows to keep are picked by a filter before an outer
Unnest, so the plan is the one UNNEST builds.
"""

from __future__ import annotations

from stream_dsl.bind import typecheck as tc
from stream_dsl.bind.expr import unique_name
from stream_dsl.errors import DSLError, did_you_mean
from stream_dsl.ir import expr as E
from stream_dsl.ir.plan import Filter, Plan, Unnest, project


def explode_plan(plan: Plan, column: str, empty_as_null: bool = False, keep_nulls: bool = True) -> Plan:
    names = plan.schema.names
    if column not in names:
        raise DSLError(f"explode: no column '{column}'{did_you_mean(column, names)}; columns: {', '.join(names)}")
    dtype = plan.schema.dtype(column)
    if not dtype.is_list:
        raise DSLError(f"explode needs a list column, '{column}' is {dtype.value}")
    lists = E.Column(column, dtype)
    is_null = E.IsNull(lists)
    non_empty = tc.binary(">", tc.function("cardinality", [lists]), tc.literal(0))
    keep: E.Expr | None = None  # the rows that give a row: all of them when empty_as_null and keep_nulls
    if empty_as_null and not keep_nulls:
        keep = E.IsNull(lists, negated=True)
    elif keep_nulls and not empty_as_null:
        keep = tc.binary("OR", is_null, non_empty)
    elif not keep_nulls:
        keep = non_empty
    if keep is not None:
        plan = Filter(plan, keep)
    element = unique_name(column + "_element", set(names))
    unnested = Unnest(plan, column, element, outer=True)
    kept = [
        E.NamedExpr(f.name, E.Column(element, dtype.element) if f.name == column else E.Column(f.name, f.dtype))
        for f in plan.schema
    ]
    return project(unnested, kept)


__all__ = ["explode_plan"]
