"""Window table functions in FROM (`TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))`): two meanings.

- Aggregated: a SELECT over a TVF that groups by window_start and
  window_end is the GROUP BY window form, written differently, and binds
  to the same plan (`as_group_by_window`): `SELECT window_start,
  window_end, k, COUNT(*) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), 10s))
  GROUP BY window_start, window_end, k` is `SELECT ... FROM t GROUP BY k,
  TUMBLE(ts, 10s)`, EMIT, late rows and all. window_time (window_end minus
  1 ms, as in Flink) may be selected too. A SESSION TVF's sessions are per
  its PARTITION BY keys, so they must be the other GROUP BY keys (the
  GROUP BY form's sessions are per group); without PARTITION BY, sessions
  are global, so there must be no other keys.
- Anything else (no GROUP BY, or one without both window columns): each
  row of the table once per window that holds it, with window_start,
  window_end and window_time added (`window_rows`). TUMBLE gives one row
  per row; HOP and CUMULATE one per window (a Union of one narrow branch
  per window offset `j`, each a Project of `Windows.nth_window(t, j)` that
  keeps the rows whose `j`th window holds them: every branch reads the
  input, so at most MAX_WINDOWS_PER_ROW windows per row). It is stateless:
  no row is late, and a row with a NULL time is in no window (dropped).
  SESSION without aggregation is refused: a session's end depends on rows
  that have not arrived yet, so no row can be emitted with its window.

The window formulas are `executor/state/windows.py`'s, evaluated over plan
expressions (`_Millis`): the same code assigns windows in aggregates.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, cast

from stream_dsl.bind.plans import bind_window
from stream_dsl.bind.scope import Scope
from stream_dsl.errors import BindError
from stream_dsl.ir import expr as E
from stream_dsl.ir.column_names import WINDOW_END, WINDOW_START
from stream_dsl.ir.plan import Filter, Plan, Project, Union
from stream_dsl.ir.types import DataType as T
from stream_dsl.sql import ast
from stream_dsl.sql.unparse import unparse

WINDOW_TIME = "window_time"
WINDOW_COLUMNS = (WINDOW_START, WINDOW_END, WINDOW_TIME)
MAX_WINDOWS_PER_ROW = 32


# ---------------------------------------------------------------- aggregated: the GROUP BY form


def as_group_by_window(sel: ast.Select) -> ast.Select:
    """`sel` over a window TVF, grouped by window_start and window_end → the GROUP BY window form (else `sel`)."""
    tvf = sel.from_
    if not isinstance(tvf, ast.WindowTVF):
        return sel
    qualifiers = {q.lower() for q in (tvf.alias, _table_name(tvf)) if q}
    windows = [g for g in sel.group_by if _window_column(g, qualifiers)]
    named = {_window_column(g, qualifiers) for g in windows}
    if not {WINDOW_START, WINDOW_END} <= named:
        return sel
    keys = tuple(g for g in sel.group_by if not _window_column(g, qualifiers))
    if sel.where is not None and _mentions_window(sel.where, qualifiers):
        raise BindError(
            "WHERE cannot use window_start, window_end or window_time of a windowed aggregate: "
            "filter the windows in HAVING",
            span=sel.where.span,
        )
    _check_session_keys(tvf, keys)
    call = ast.FuncCall(tvf.kind, (tvf.time_column, *tvf.sizes), span=tvf.span)
    table = dataclasses.replace(tvf.table, alias=tvf.alias) if tvf.alias else tvf.table
    rewrite: Callable[[Any], Any] = lambda node: _window_names(node, qualifiers)  # noqa: E731
    items = tuple(  # a bare window_time keeps its name once it is computed
        dataclasses.replace(i, alias=WINDOW_TIME)
        if i.alias is None and _window_column(i.expr, qualifiers) == WINDOW_TIME
        else i
        for i in sel.items
    )
    return dataclasses.replace(
        sel,
        items=rewrite(items),
        from_=table,
        group_by=keys + (call,),
        having=rewrite(sel.having),
    )


def _table_name(tvf: ast.WindowTVF) -> str | None:
    return tvf.table.name if isinstance(tvf.table, ast.TableRef) else None


def _window_column(node: Any, qualifiers: set[str]) -> str | None:
    """window_start, window_end or window_time if `node` names one (unqualified, or by the TVF's name)."""
    if not isinstance(node, ast.Identifier) or len(node.parts) > 2:
        return None
    if len(node.parts) == 2 and node.parts[0].lower() not in qualifiers:
        return None
    name = node.parts[-1].lower()
    return name if name in WINDOW_COLUMNS else None


def _mentions_window(node: Any, qualifiers: set[str]) -> bool:
    if _window_column(node, qualifiers):
        return True
    if isinstance(node, tuple):
        return any(_mentions_window(n, qualifiers) for n in node)
    if not dataclasses.is_dataclass(node) or isinstance(node, (ast.Select, ast.Query, type)):
        return False
    return any(_mentions_window(getattr(node, f.name), qualifiers) for f in dataclasses.fields(node))


def _window_names(node: Any, qualifiers: set[str]) -> Any:
    """`node` with the TVF's window columns as the GROUP BY form names them: unqualified; window_time computed."""
    column = _window_column(node, qualifiers)
    if column == WINDOW_TIME:
        end = ast.Identifier((WINDOW_END,), span=node.span)
        return ast.BinaryOp("-", end, ast.IntervalLit("1", "MILLISECOND", span=node.span), span=node.span)
    if column is not None:
        return ast.Identifier((column,), span=node.span)
    return ast.rebuild(node, lambda n: _window_names(n, qualifiers), keep=(ast.Select, ast.Query))


def _check_session_keys(tvf: ast.WindowTVF, keys: tuple[ast.Expr, ...]) -> None:
    """A SESSION TVF's sessions are per PARTITION BY key; the GROUP BY form's per group: they must agree."""
    if tvf.kind != "SESSION":
        return
    partition = {unparse(k).lower() for k in tvf.partition_by}
    grouped = {unparse(k).lower() for k in keys}
    if partition != grouped:
        wanted = ", ".join(unparse(k) for k in tvf.partition_by) or "nothing"
        raise BindError(
            f"a SESSION table function's sessions are per its PARTITION BY keys ({wanted}), so GROUP BY "
            "window_start, window_end and exactly those keys",
            span=tvf.span,
        )


# ---------------------------------------------------------------- not aggregated: each row in its windows


def window_rows(tvf: ast.WindowTVF, plan: Plan, scope: Scope) -> tuple[Plan, Scope]:
    """The table's rows, each once per window of `tvf` that holds it, with window_start/end/time added."""
    if tvf.kind == "SESSION":
        raise BindError(
            "SESSION(TABLE ...) needs an aggregation (GROUP BY window_start, window_end, ...): a session ends "
            "only when no row comes for a gap, so no row can be emitted with its session's bounds",
            span=tvf.span,
        )
    for name in WINDOW_COLUMNS:
        if name in plan.schema.names:
            raise BindError(f"the table of {tvf.kind} already has a column '{name}'", span=tvf.table.span)
    spec = bind_window(ast.FuncCall(tvf.kind, (tvf.time_column, *tvf.sizes), span=tvf.span), scope)
    from executor.state.windows import Windows  # the window formulas, written once

    windows = Windows.of(spec)
    if windows.max_windows > MAX_WINDOWS_PER_ROW:
        raise BindError(
            f"{tvf.kind} without aggregation puts each row in up to {windows.max_windows} windows; at most "
            f"{MAX_WINDOWS_PER_ROW} are supported (aggregate with GROUP BY window_start, window_end instead)",
            span=tvf.span,
        )
    time = scope.resolve(tvf.time_column.parts, tvf.time_column.span)
    t = _Millis(E.Func("epoch_ms", (time,), T.BIGINT))
    columns = [E.NamedExpr(f.name, E.Column(f.name, f.dtype)) for f in plan.schema]
    branches: list[Plan] = []
    for j in range(windows.max_windows):
        start, end = windows.nth_window(cast(Any, t), j)  # _Millis has the operators Time has
        assert isinstance(start, _Millis) and isinstance(end, _Millis)
        holds = E.Binary(">", end.expr, t.expr, T.BOOLEAN)  # windows.ends_after; false for a NULL time
        added = [
            E.NamedExpr(WINDOW_START, _timestamp(start)),
            E.NamedExpr(WINDOW_END, _timestamp(end)),
            E.NamedExpr(WINDOW_TIME, _timestamp(end - 1)),
        ]
        branches.append(Project(Filter(plan, holds, span=tvf.span), tuple(columns + added), span=tvf.span))
    windowed = branches[0] if len(branches) == 1 else Union(tuple(branches), span=tvf.span)
    return windowed, Scope.from_schema(windowed.schema, tvf.alias or _table_name(tvf))


def _timestamp(ms: "_Millis") -> E.Expr:
    return E.Func("to_timestamp_ms", (ms.expr,), T.TIMESTAMP)


def _const(x: int) -> E.Expr:
    return E.Literal(x, T.BIGINT)


class _Millis:
    """A plan expression of epoch ms with the operators windows.py's formulas use (+, -, *, // then *).

    `t // d * d` is FLOOR(t / d) * d in DOUBLE, and the window bounds from
    it stay DOUBLE (exact: epoch ms are far below 2^53) until
    TO_TIMESTAMP_MS: unlike BIGINT arithmetic, which checks every step for
    overflow by repeating its operands, the expressions stay small.
    """

    def __init__(self, expr: E.Expr) -> None:
        self.expr = expr

    def _op(self, op: str, other: "_Millis | int") -> "_Millis":
        dtype = self.expr.dtype
        if op in ("+", "-") and isinstance(other, int):  # `x - 1000 + 3000` as `x + 2000`, `x - 0` as x
            base, offset = self.expr, other if op == "+" else -other
            if isinstance(base, E.Binary) and base.op in ("+", "-") and isinstance(base.right, E.Literal):
                offset += base.right.value if base.op == "+" else -base.right.value
                base = base.left
            if offset == 0:
                return _Millis(base)
            return _Millis(E.Binary("+" if offset > 0 else "-", base, _const(abs(offset)), dtype))
        right = other.expr if isinstance(other, _Millis) else _const(other)
        return _Millis(E.Binary(op, self.expr, right, dtype))

    def __add__(self, other: "_Millis | int") -> "_Millis":
        return self._op("+", other)

    def __sub__(self, other: "_Millis | int") -> "_Millis":
        return self._op("-", other)

    def __mul__(self, other: "_Millis | int") -> "_Millis":
        return self._op("*", other)

    def __floordiv__(self, divisor: int) -> "_Floored":
        return _Floored(self, divisor)


class _Floored:
    """`t // d`, which the formulas only ever multiply back by `d`: FLOOR(t / d) * d."""

    def __init__(self, t: _Millis, divisor: int) -> None:
        self.t, self.divisor = t, divisor

    def __mul__(self, factor: int) -> _Millis:
        if factor != self.divisor:
            raise NotImplementedError("a window formula multiplies t // d by something other than d")
        quotient = E.Binary("/", self.t.expr, _const(self.divisor), T.DOUBLE)
        return _Millis(E.Binary("*", E.Func("floor", (quotient,), T.DOUBLE), _const(self.divisor), T.DOUBLE))
