"""`Stream.top_k` and `Stream.unique(subset=...)`: the dataframe API's top-N per window and deduplication.

They build the same TopN plans as the SQL forms (`stream_dsl.bind.top_n`):

>>> import datetime as dt, polars as pl, stream_dsl as sd
>>> ctx = sd.Context(executor="inline", workers=1)
>>> t0 = dt.datetime(2024, 1, 1)
>>> s = ctx.from_polars(pl.DataFrame({"id": ["a", "b", "a"], "ts": [t0, t0, t0]}), name="s", watermark="ts")
>>> print(s.unique(subset="id", keep="first", order_by="ts").plan_text())
TopN dedup n=1 partition=[id] order=[ts]
  Scan stream s watermark=ts-0ms
"""

from __future__ import annotations

from typing import Sequence

from stream_dsl.bind.top_n import closes_windows
from stream_dsl.errors import DSLError
from stream_dsl.frame.expr import to_duration_ms
from stream_dsl.ir.column_names import WINDOW_END, WINDOW_START
from stream_dsl.ir.plan import Plan, SortKey, TopN
from stream_dsl.ir.types import DataType


def _names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _require(plan: Plan, names: list[str], what: str) -> None:
    for name in names:
        if name not in plan.schema:
            raise DSLError(f"{what}: column '{name}' is not found; columns: {', '.join(plan.schema.names)}")


def top_k(
    plan: Plan,
    k: int,
    by: str | Sequence[str],
    partition_by: str | Sequence[str] | None,
    descending: bool | Sequence[bool],
    number: str | None,
) -> Plan:
    """The first `k` rows of each window (and partition) by `by` (ROW_NUMBER() <= k per window)."""
    if not closes_windows(plan):
        raise DSLError(
            "top_k ranks the rows of each window: apply it to a windowed aggregate that emits on window close "
            "(group_by(sd.tumble(...), ...).agg(...)); for the first row per key use unique(subset=..., order_by=...)"
        )
    keys = _names(by)
    partition = _names(partition_by)
    if not partition and {WINDOW_START, WINDOW_END} <= set(plan.schema.names):
        partition = [WINDOW_START, WINDOW_END]
    for bound in (WINDOW_END, WINDOW_START):
        if bound not in partition:
            partition.insert(0, bound)
    _require(plan, keys + partition, "top_k")
    if not keys:
        raise DSLError("top_k needs by=: the column(s) to rank by")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise DSLError(f"top_k needs a positive whole k, got {k!r}")
    flags = [descending] * len(keys) if isinstance(descending, bool) else list(descending)
    if len(flags) != len(keys):
        raise DSLError("top_k: descending= needs one flag per by= column")
    order = tuple(SortKey(c, d, nulls_first=False) for c, d in zip(keys, flags))
    return TopN(plan, tuple(partition), order, k, number)


def unique(
    plan: Plan, subset: str | Sequence[str], keep: str, order_by: str | Sequence[str] | None, ttl: str | int | None
) -> Plan:
    """The first row per key of `subset` by `order_by` (deduplication: ROW_NUMBER() = 1)."""
    keys = _names(subset)
    order = _names(order_by)
    _require(plan, keys + order, "unique")
    if keep not in ("first", "last"):
        raise DSLError(f"unique(subset=...) keeps the 'first' row per key (or 'last' per window), not {keep!r}")
    if not order:
        raise DSLError("unique(subset=...) needs order_by=: the event-time column that says which row is first")
    windowed = {WINDOW_START, WINDOW_END} <= set(keys)
    if keep == "last" and not windowed:
        raise DSLError(
            "unique(keep='last') would retract rows already emitted; it is supported per window only "
            "(subset with window_start and window_end)"
        )
    if not windowed and plan.schema.dtype(order[0]) is not DataType.TIMESTAMP:
        raise DSLError(f"unique: order_by '{order[0]}' must be a TIMESTAMP (event-time) column")
    if windowed and not closes_windows(plan):
        raise DSLError("unique per window needs a windowed aggregate that emits on window close below it")
    descending = keep == "last"
    ttl_ms = None if ttl is None else to_duration_ms(ttl, "ttl")
    sort = tuple(SortKey(c, descending) for c in order)
    return TopN(plan, tuple(keys), sort, 1, None, ttl_ms=None if windowed else ttl_ms)
