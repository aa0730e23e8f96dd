"""Binding stream-stream interval joins: the time bound read from ON, RIGHT joins run as swapped LEFT joins.

A join of two streams with, besides an equality of keys, a time bound that keeps
its state finite is an interval join (Flink's); without one it is a regular join
(`executor/state/stream_join.py`), whose state only `SET state_ttl` bounds:

    a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '10' SECOND

Any conjuncts comparing a TIMESTAMP column of one side with one of the other, each
possibly plus or minus an INTERVAL constant (`<`, `<=`, `>`, `>=`, and BETWEEN, which
binds to two of them), make the bound `right_time - left_time in [lower, upper]`; the
tightest lower and upper bound win, and both are required (one alone is refused). The semantics (state, late
rows, outer rows) are in `executor/state/interval_join.py`.
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

from stream_dsl.errors import BindError, Span
from stream_dsl.ir import expr as E
from stream_dsl.ir.interval import IntervalBounds
from stream_dsl.ir.plan import Join, Plan, Project
from stream_dsl.ir.types import DataType
from stream_dsl.ir.column_names import WINDOW_END, WINDOW_START

EXAMPLE = "b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '10' SECOND"
NO_CROSS = (
    "a CROSS JOIN of two streams is not supported (its state would hold every row of both); join on keys, "
    f"e.g. ON a.k = b.k, possibly with a time bound (an interval join), e.g. ON a.k = b.k AND {EXAMPLE}"
)
_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def split_interval(
    conjuncts: Sequence[E.Expr],
    left_cols: set[str],
    right_original: dict[str, str],
    span: Span | None,
) -> tuple[IntervalBounds | None, list[E.Expr]]:
    """The time bound among `conjuncts` (join outputs' names) and the conjuncts that are not part of it.

    `right_original` maps the join's output names of right columns to the right input's names.
    No bound at all is a regular join, or a window join when the keys hold an equality of
    TIMESTAMPs (`equal_time_bound`): None. Raises a positioned BindError when there is only
    one end of a bound.
    """
    found: list[tuple[str, str, str, int, E.Expr]] = []  # (left col, right col, op on right-left, ms, conjunct)
    rest: list[E.Expr] = []
    for part in conjuncts:
        bound = _bound(part, left_cols, right_original)
        if bound is None:
            rest.append(part)
        elif bound[0] == "type":  # compares columns that are not TIMESTAMPs: an ordinary condition
            rest.append(part)
        else:
            found.append((bound[1], bound[2], bound[3], bound[4], part))
    if not found:  # a regular join of two streams (bind/stream_join.py): the conditions are ordinary ones
        return None, rest
    left_time, right_time = found[0][0], found[0][1]
    lower: tuple[int, bool] | None = None
    upper: tuple[int, bool] | None = None
    for lt, rt, op, ms, part in found:
        if (lt, rt) != (left_time, right_time):
            rest.append(part)  # a bound on other time columns: an ordinary condition
        elif op in (">", ">="):
            candidate = (ms, op == ">")
            lower = candidate if lower is None or candidate > lower else lower
        else:
            candidate = (ms, op == "<")
            upper = candidate if upper is None or (candidate[0], not candidate[1]) < (upper[0], not upper[1]) else upper
    if lower is None or upper is None:
        missing = "lower" if lower is None else "upper"
        raise BindError(
            f"an interval join needs both a lower and an upper time bound, and this one has no {missing} bound; "
            f"e.g. {EXAMPLE}",
            span=found[0][4].span or span,
        )
    return IntervalBounds(left_time, right_time, lower[0], upper[0], lower[1], upper[1]), rest


def equal_time_bound(
    left: Plan, right: Plan, left_keys: Sequence[str], right_keys: Sequence[str], span: Span | None = None
) -> IntervalBounds | None:
    """A key equality of TIMESTAMP columns as a bound of zero width (`b.t - a.t` in [0, 0]): a window join.

    `a.window_start = b.window_start AND a.window_end = b.window_end` (with the key) joins two
    windowed streams window by window. The bound is on window_end when both window columns are
    keys: a window's rows come out of its aggregate when the watermark passes its end, so its end
    (not its start) is at or above the watermark when they arrive. Otherwise the last TIMESTAMP key.
    """
    pairs = [
        (lk, rk)
        for lk, rk in zip(left_keys, right_keys)
        if left.schema.dtype(lk) is DataType.TIMESTAMP and right.schema.dtype(rk) is DataType.TIMESTAMP
    ]
    if not pairs:
        return None
    ends = [(lk, rk) for lk, rk in pairs if lk == WINDOW_END or rk == WINDOW_END]
    if not ends and any(WINDOW_START in pair for pair in pairs):
        raise BindError(
            "a window join needs equal window_end columns too (ON ... AND a.window_start = b.window_start AND "
            "a.window_end = b.window_end): a window's rows arrive when the watermark passes its end",
            span=span,
        )
    lk, rk = (ends or pairs)[-1]
    return IntervalBounds(lk, rk, 0, 0, window_end=bool(ends))


def _bound(e: E.Expr, left_cols: set[str], right_original: dict[str, str]) -> tuple | None:
    """('ok', left col, right col, op, ms) for `right - left op ms`; ('type', ...) on non-TIMESTAMPs; else None."""
    if not (isinstance(e, E.Binary) and e.op in _MIRROR):
        return None
    a, b = _time_term(e.left), _time_term(e.right)
    if a is None or b is None:
        return None
    (col_a, off_a, type_a), (col_b, off_b, type_b) = a, b
    if col_b in left_cols and col_a in right_original:  # (r + oa) op (l + ob): r - l op ob - oa
        op, left, right, ms = e.op, col_b, right_original[col_a], off_b - off_a
    elif col_a in left_cols and col_b in right_original:  # (l + oa) op (r + ob): r - l mirrored oa - ob
        op, left, right, ms = _MIRROR[e.op], col_a, right_original[col_b], off_a - off_b
    else:
        return None
    if type_a is not DataType.TIMESTAMP or type_b is not DataType.TIMESTAMP:
        return ("type", f"{col_a} ({type_a.value}) with {col_b} ({type_b.value})")
    return ("ok", left, right, op, ms)


def _time_term(e: E.Expr) -> tuple[str, int, DataType] | None:
    """`col`, `col + c` or `col - c` (c an INTERVAL constant; also `c + col`) as (col, ±ms, col type)."""
    if isinstance(e, E.Column):
        return e.name, 0, e.dtype
    if not (isinstance(e, E.Binary) and e.op in ("+", "-")):
        return None
    if isinstance(e.left, E.Column) and _interval_ms(e.right) is not None:
        ms = _interval_ms(e.right)
        assert ms is not None
        return e.left.name, ms if e.op == "+" else -ms, e.left.dtype
    if e.op == "+" and isinstance(e.right, E.Column) and _interval_ms(e.left) is not None:
        ms = _interval_ms(e.left)
        assert ms is not None
        return e.right.name, ms, e.right.dtype
    return None


def _interval_ms(e: E.Expr) -> int | None:
    if isinstance(e, E.Literal) and isinstance(e.value, dt.timedelta):
        return e.value // dt.timedelta(milliseconds=1)
    return None


def right_interval_join(
    left: Plan,
    right: Plan,
    left_keys: tuple[str, ...],
    right_keys: tuple[str, ...],
    names: dict[str, str],
    keep_right_keys: bool,
    suffix: str,
    bounds: IntervalBounds,
    span: Span | None,
) -> Plan:
    """`left RIGHT JOIN right` run as `right LEFT JOIN left`, projected back to the written columns and names.

    `names` are the written join's output names of the kept right columns. Without
    `keep_right_keys` (USING, the API's `on=`) each key appears once, as the left's column,
    and takes the right's value: in a RIGHT join every row has a right row.
    """
    from stream_dsl.bind.plans import right_output_names

    dropped = () if keep_right_keys else left_keys
    swapped_names = right_output_names(right.schema.names, left.schema.names, dropped, suffix)
    join = Join(
        right, left, "left", right_keys, left_keys, tuple(swapped_names.items()), span=span, interval=bounds.mirrored()
    )
    right_key_of = dict(zip(left_keys, right_keys))
    exprs = []
    for f in left.schema:
        if f.name in swapped_names:
            value: E.Expr = E.Column(swapped_names[f.name], f.dtype)
        else:
            key = right_key_of[f.name]
            value = E.Column(key, right.schema.dtype(key))
            value = value if value.dtype is f.dtype else E.Cast(value, f.dtype)
        exprs.append(E.NamedExpr(f.name, value))
    exprs += [E.NamedExpr(names[f.name], E.Column(f.name, f.dtype)) for f in right.schema if f.name in names]
    return Project(join, tuple(exprs), span=span)
