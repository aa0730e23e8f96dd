"""Merge stacked filters into one, and drop filters that keep every row.

Correctness condition: `filter(p, filter(q, x)) == filter(q AND p, x)`
(a row passes both exactly when `q AND p` is TRUE: NULL counts as not
passing on either side), and `filter(TRUE, x) == x`.

One Filter per position gives predicate pushdown one list of conjuncts to
place, and the executor one polars `filter` call.

Example (before, after):

>>> import stream_dsl as sd
>>> from stream_dsl.ir.plan import render_plan
>>> ctx = sd.Context(check_files=False)  # plans only: the files are not there
>>> ctx.sql("CREATE STREAM s (a BIGINT, b STRING) WITH (connector = 'files', path = 's/', format = 'ndjson')")
>>> plan = ctx.sql("SELECT * FROM (SELECT * FROM s WHERE a > 1) WHERE b = 'x' AND TRUE").plan
>>> print(render_plan(plan))
Filter ((b = 'x') AND TRUE)
  Filter (a > 1)
    Scan stream s
>>> print(render_plan(merge_filters(plan)))
Filter ((a > 1) AND ((b = 'x') AND TRUE))
  Scan stream s

A filter whose predicate is exactly TRUE (what constant folding leaves of
`WHERE 1 = 1`) goes away:

>>> from dataclasses import replace
>>> from optimizer.rules.analysis import TRUE
>>> print(render_plan(merge_filters(replace(plan, predicate=TRUE))))
Filter (a > 1)
  Scan stream s
"""

from __future__ import annotations

from stream_dsl.ir.expr import Binary
from stream_dsl.ir.plan import Filter, Plan
from stream_dsl.ir.types import DataType

from optimizer.rules.analysis import is_true, transform_up


def merge_filters(plan: Plan) -> Plan:
    """Every chain of Filters becomes one Filter (inner predicate first); `Filter TRUE` disappears."""
    return transform_up(plan, _merge)


def _merge(node: Plan) -> Plan:
    if not isinstance(node, Filter):
        return node
    if is_true(node.predicate):
        return node.input
    child = node.input
    if isinstance(child, Filter):
        predicate = Binary("AND", child.predicate, node.predicate, DataType.BOOLEAN)
        return Filter(child.input, predicate, span=node.span)
    return node
