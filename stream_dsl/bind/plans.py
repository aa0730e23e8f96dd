"""Plan builders shared by the DSL binder and the dataframe API.

Joins, unions, windows and aggregations are built here and only here, so
`FROM a JOIN b USING (k)` and `a.join(b, on="k")` give the same plan, with
the same checks (a stream written on the right of a join with a table moved
to the left; two streams join in one stateful stage, with or without a time
bound) and the same error messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from stream_dsl.sql import ast
from stream_dsl.ir import expr as E
from stream_dsl.bind import typecheck as tc
from stream_dsl.bind.expr import generated_name, rebuild, unique_name
from stream_dsl.bind.scope import Scope
from stream_dsl.errors import BindError, Span
from stream_dsl.ir.definitions import EMIT_CHANGES, EMIT_FINAL, WindowSpec
from stream_dsl.ir.plan import (
    WINDOW_END,
    WINDOW_START,
    JOIN_KINDS,
    Aggregate,
    Distinct,
    Filter,
    Join,
    Plan,
    Project,
    Union,
    is_streaming,
    project,
)
from stream_dsl.ir.types import DataType, common_type
from stream_dsl.ir.interval import IntervalBounds
from stream_dsl.bind.interval_join import NO_CROSS, equal_time_bound, right_interval_join

# ---------------------------------------------------------------- joins


@dataclass(frozen=True)
class JoinResult:
    """A join's plan, and the output name of each right column it keeps (as if never swapped)."""

    plan: Plan
    right_names: dict[str, str]
    # an outer USING join: (left key, right key, plan column of the left's own key, of the right's own key);
    # the key itself is the left key's column, COALESCE of the two
    own_keys: tuple[tuple[str, str, str, str], ...] = ()


def right_output_names(
    left_names: Sequence[str], right_names: Sequence[str], dropped: Sequence[str] = (), suffix: str = "_right"
) -> dict[str, str]:
    """Output names of the right columns kept: their own, or `name_right`, `name_right2`, ... on a clash."""
    taken = set(left_names)
    result = {}
    for name in right_names:
        if name in dropped:
            continue
        out, k = name, 1
        while out in taken:
            out = f"{name}{suffix}" if k == 1 else f"{name}{suffix}{k}"
            k += 1
        taken.add(out)
        result[name] = out
    return result


def build_join(
    left: Plan,
    right: Plan,
    kind: str,
    left_keys: Sequence[str],
    right_keys: Sequence[str],
    *,
    keep_right_keys: bool = True,
    suffix: str = "_right",
    span: Span | None = None,
    interval: IntervalBounds | None = None,
) -> JoinResult:
    """An equi-join of `left` and `right` on `left_keys[i] = right_keys[i]`.

    `keep_right_keys=False` is USING (and the API's `on=`): each key appears
    once, from the left. Output: the left columns, then the kept right
    columns, renamed with `suffix` on a clash. In a join of a stream with a
    table the stream runs on the left side of the Join node, so a
    join written with the stream on the right is swapped (LEFT becomes
    RIGHT and RIGHT LEFT) and a Project restores the written column order.
    `kind` 'cross' takes no keys.
    """
    kind = kind.lower()
    if kind not in JOIN_KINDS:
        raise BindError(f"unsupported join kind '{kind}'; use one of {', '.join(JOIN_KINDS)}", span=span)
    if interval is None and kind != "cross" and is_streaming(left) and is_streaming(right):  # a window join?
        interval = equal_time_bound(left, right, left_keys, right_keys, span)
    left_keys, right_keys = tuple(left_keys), tuple(right_keys)
    if kind == "cross" and (left_keys or right_keys):
        raise BindError("a cross join takes no keys: it pairs every row with every row", span=span)
    if kind != "cross" and (not left_keys or len(left_keys) != len(right_keys)):
        raise BindError("a join needs the same number of keys on both sides, at least one", span=span)
    _check_key_types(left, right, left_keys, right_keys, span)
    left_stream, right_stream = is_streaming(left), is_streaming(right)
    if left_stream and right_stream and kind == "cross":
        raise BindError(NO_CROSS, span=span)
    if left_stream and right_stream and interval is not None:
        names = right_output_names(left.schema.names, right.schema.names, () if keep_right_keys else right_keys, suffix)
        if kind == "right":
            plan = right_interval_join(
                left, right, left_keys, right_keys, names, keep_right_keys, suffix, interval, span
            )
            return JoinResult(plan, names)
        join = Join(left, right, kind, left_keys, right_keys, tuple(names.items()), span=span, interval=interval)
        return JoinResult(join, names)
    if interval is not None:
        raise BindError("a time bound (an interval join) joins two streams; one side here is a table", span=span)
    if not keep_right_keys and (kind in ("right", "full") or (kind == "left" and right_stream and not left_stream)):
        return _coalesced_using_join(left, right, kind, left_keys, right_keys, suffix, span)
    dropped = () if keep_right_keys else right_keys
    names = right_output_names(left.schema.names, right.schema.names, dropped, suffix)
    if right_stream and not left_stream:
        swapped = _swapped_join(left, right, kind, left_keys, right_keys, names, keep_right_keys, span)
        return JoinResult(swapped, names)
    join = Join(left, right, kind, left_keys, right_keys, tuple(names.items()), span=span)
    return JoinResult(join, names)


def _coalesced_using_join(
    left: Plan,
    right: Plan,
    kind: str,
    left_keys: tuple[str, ...],
    right_keys: tuple[str, ...],
    suffix: str,
    span: Span | None,
) -> JoinResult:
    """RIGHT or FULL JOIN ... USING (k) (and a table LEFT JOIN a stream): `k` once, as COALESCE(left.k, right.k),
    as in SQL, so a row of either side that nothing matched still shows its key.

    The join keeps both key columns; a Project merges them, and keeps each side's own key (NULL in the rows
    the join padded) for `l.k` and `r.k`, which the binder's scope reaches only qualified (`own_keys`).
    """
    both = build_join(left, right, kind, left_keys, right_keys, keep_right_keys=True, suffix=suffix, span=span)
    schema = both.plan.schema
    key_of = dict(zip(left_keys, right_keys))
    taken = set(schema.names)
    exprs, own_left = [], []
    for f in left.schema:
        e: E.Expr = E.Column(f.name, f.dtype)
        if f.name in key_of:
            other = both.right_names[key_of[f.name]]
            own = unique_name(f"{f.name}_left", taken)
            own_left.append(E.NamedExpr(own, e))
            e = E.Func("coalesce", (e, tc.cast(E.Column(other, schema.dtype(other)), f.dtype)), f.dtype)
        exprs.append(E.NamedExpr(f.name, e))
    kept = {c: out for c, out in both.right_names.items() if c not in right_keys}
    exprs += [E.NamedExpr(out, E.Column(out, schema.dtype(out))) for out in kept.values()]
    own_right = [both.right_names[rk] for rk in right_keys]
    exprs += own_left + [E.NamedExpr(out, E.Column(out, schema.dtype(out))) for out in own_right]
    own_keys = tuple((lk, rk, ol.name, orr) for lk, rk, ol, orr in zip(left_keys, right_keys, own_left, own_right))
    return JoinResult(project(both.plan, exprs, span=span), kept, own_keys)


def _check_key_types(
    left: Plan, right: Plan, left_keys: tuple[str, ...], right_keys: tuple[str, ...], span: Span | None
) -> None:
    for lk, rk in zip(left_keys, right_keys):
        lt, rt = left.schema.dtype(lk), right.schema.dtype(rk)
        if lt is not rt and not (lt.is_numeric and rt.is_numeric):
            raise BindError(
                f"join keys {lk} ({lt.value}) and {rk} ({rt.value}) have different types; use CAST", span=span
            )


_SWAPPED = {"inner": "inner", "left": "right", "right": "left", "full": "full", "cross": "cross"}


def _swapped_join(
    table: Plan,
    stream: Plan,
    kind: str,
    table_keys: tuple[str, ...],
    stream_keys: tuple[str, ...],
    names: dict[str, str],
    keep_keys: bool,
    span: Span | None,
) -> Plan:
    """`table JOIN stream` run as `stream JOIN table` (a LEFT JOIN as a RIGHT one), projected back to the written
    order. USING keeps the table's keys, but an inner join takes the stream's equal ones."""
    dropped = table_keys if not keep_keys and kind == "inner" else ()
    table_names = right_output_names(stream.schema.names, table.schema.names, dropped, "_left")
    join = Join(stream, table, _SWAPPED[kind], stream_keys, table_keys, tuple(table_names.items()), span=span)
    key_of = dict(zip(table_keys, stream_keys))
    exprs = []
    for f in table.schema:
        if f.name in table_names:
            source: E.Expr = E.Column(table_names[f.name], f.dtype)
        else:  # a USING key dropped from the table side: the stream's equal key stands in
            stream_key = key_of[f.name]
            source = tc.cast(E.Column(stream_key, stream.schema.dtype(stream_key)), f.dtype)
        exprs.append(E.NamedExpr(f.name, source))
    for f in stream.schema:
        if f.name in names:
            exprs.append(E.NamedExpr(names[f.name], E.Column(f.name, f.dtype)))
    return project(join, exprs, span=span)


# ---------------------------------------------------------------- unions


def build_union(plans: Sequence[Plan], *, distinct: bool = False, span: Span | None = None) -> Plan:
    """UNION ALL of `plans` (UNION with `distinct`): columns match by position.

    Numeric columns are widened with casts to their common type; names come
    from the first input. Nested UNION ALLs are flattened into one node.
    """
    inputs: list[Plan] = []
    for p in plans:
        inputs.extend(p.inputs if isinstance(p, Union) else (p,))
    first = inputs[0].schema
    for other in inputs[1:]:
        if len(other.schema) != len(first):
            raise BindError(
                f"UNION inputs must have the same number of columns: "
                f"{len(first)} ({', '.join(first.names)}) vs "
                f"{len(other.schema)} ({', '.join(other.schema.names)})",
                span=other.span or span,
            )
    targets = []
    for i, f in enumerate(first):
        target = f.dtype
        for other in inputs[1:]:
            t = other.schema.fields[i].dtype
            widened = common_type([target, t])
            if widened is None:
                raise BindError(
                    f"UNION column {i + 1} ('{f.name}') has incompatible types: {target.value} and {t.value}; use CAST",
                    span=_column_span(other, i) or span,
                )
            target = widened
        targets.append(target)
    cast_inputs = tuple(_cast_columns(p, targets) for p in inputs)
    union = Union(cast_inputs, span=span)
    return Distinct(union, span=span) if distinct else union


def _column_span(p: Plan, i: int) -> Span | None:
    """Where the i-th output column of `p` is written, if known."""
    if isinstance(p, Project):
        return p.exprs[i].expr.span or p.span
    return p.span


def _cast_columns(p: Plan, targets: list[DataType]) -> Plan:
    """`p` with its columns cast to `targets`; a Project on top takes the casts itself."""
    if isinstance(p, Project) and any(f.dtype is not t for f, t in zip(p.schema, targets)):
        exprs = [E.NamedExpr(n.name, tc.cast(n.expr, t)) for n, t in zip(p.exprs, targets)]
        return project(p.input, exprs, span=p.span)
    exprs = [E.NamedExpr(f.name, tc.cast(E.Column(f.name, f.dtype), t)) for f, t in zip(p.schema, targets)]
    return project(p, exprs)


# ---------------------------------------------------------------- windows


_WINDOW_ARGS = {"tumble": ("size",), "hop": ("slide", "size"), "cumulate": ("step", "max_size"), "session": ("gap",)}


def bind_window(call: ast.FuncCall, scope: Scope) -> WindowSpec:
    """TUMBLE(ts, size), HOP(ts, slide, size), CUMULATE(ts, step, max_size) or SESSION(ts, gap) → WindowSpec."""
    kind = call.name.lower()
    wanted = _WINDOW_ARGS[kind]
    usage = f"{kind.upper()}(time_column, {', '.join('INTERVAL ...' for _ in wanted)})"
    if call.star or call.distinct or len(call.args) != 1 + len(wanted):
        raise BindError(f"{kind.upper()} takes {1 + len(wanted)} arguments: {usage}", span=call.span)
    ts_node = call.args[0]
    if not isinstance(ts_node, ast.Identifier):
        raise BindError(f"the first argument of {kind.upper()} must be a TIMESTAMP column", span=ts_node.span)
    ts = scope.resolve(ts_node.parts, ts_node.span)
    if ts.dtype is not DataType.TIMESTAMP:
        raise BindError(
            f"the first argument of {kind.upper()} must be a TIMESTAMP column; '{ts.name}' is {ts.dtype.value}",
            span=ts_node.span,
        )
    sizes = [_duration(arg, kind) for arg in call.args[1:]]
    if kind == "hop":
        slide, size = sizes
        if slide > size:
            raise BindError(f"the HOP slide ({slide}ms) must not be longer than its size ({size}ms)", span=call.span)
        return WindowSpec("hop", ts.name, size, slide)
    if kind == "cumulate":
        step, size = sizes
        if size % step:
            raise BindError(
                f"the CUMULATE max size ({size}ms) must be a multiple of its step ({step}ms)", span=call.args[2].span
            )
        return WindowSpec("cumulate", ts.name, size, step)
    return WindowSpec(kind, ts.name, sizes[0])


def _duration(node: ast.Expr, kind: str) -> int:
    if isinstance(node, ast.IntervalLit):
        return tc.parse_duration_ms(node.value, node.unit, node.span)
    if isinstance(node, ast.StringLit):
        return tc.parse_duration_ms(node.value, None, node.span)
    raise BindError(
        f"{kind.upper()} sizes must be INTERVAL literals, e.g. INTERVAL '10' SECOND", span=getattr(node, "span", None)
    )


# ---------------------------------------------------------------- aggregation


_EMIT_NAMES = {"final": EMIT_FINAL, "window close": EMIT_FINAL, "on window close": EMIT_FINAL, "changes": EMIT_CHANGES}


def resolve_emit(emit: str | None, window: WindowSpec | None, span: Span | None = None) -> str:
    """The emit mode: given ('final'/'WINDOW CLOSE', 'changes'), or the default for the aggregate."""
    if emit is None:
        return EMIT_FINAL if window is not None else EMIT_CHANGES
    mode = _EMIT_NAMES.get(" ".join(emit.lower().split()))
    if mode is None:
        raise BindError(f"unknown emit mode '{emit}'; use 'final' (ON WINDOW CLOSE) or 'changes'", span=span)
    if mode == EMIT_FINAL and window is None:
        raise BindError(
            "EMIT ON WINDOW CLOSE needs a windowed aggregate: add TUMBLE, HOP or SESSION "
            "to GROUP BY, or use EMIT CHANGES",
            span=span,
        )
    return mode


def build_aggregate(
    input: Plan,
    keys: Sequence[E.NamedExpr],
    window: WindowSpec | None,
    aggs: Sequence[E.NamedExpr],
    emit: str | None = None,
    span: Span | None = None,
) -> Aggregate:
    """An Aggregate node with its emit mode resolved (see `resolve_emit`)."""
    return Aggregate(input, tuple(keys), tuple(aggs), window, resolve_emit(emit, window, span), span=span)


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """A named output of an aggregate query, bound over its input (may hold aggregates)."""

    name: str
    expr: E.Expr


def plan_aggregate_query(
    input: Plan,
    keys: Sequence[E.Expr],
    window: WindowSpec | None,
    outputs: Sequence[OutputColumn],
    having: E.Expr | None = None,
    emit: str | None = None,
    span: Span | None = None,
    emit_span: Span | None = None,
) -> Plan:
    """Aggregate → [Filter for HAVING] → Project for the outputs, checked the way SQL does.

    Every column an output reads outside an aggregate must be a grouping key
    (or window_start / window_end of the window). A key that is a plain
    column keeps its name; an expression key takes the name of the output
    that equals it. An aggregate that an output is exactly takes its name;
    identical aggregates are computed once. `emit_span` is where an emit
    mode error points (the EMIT clause), `span` the query's position.
    """
    key_exprs = list(dict.fromkeys(keys))
    reserved = {WINDOW_START, WINDOW_END} if window is not None else set()
    taken = set(reserved)
    key_names: dict[E.Expr, str] = {}
    for i, k in enumerate(key_exprs):
        if isinstance(k, E.Column):
            base = k.name
        else:
            base = next((o.name for o in outputs if o.expr == k), None) or generated_name(k) or f"_key{i + 1}"
        key_names[k] = unique_name(base, taken)
    agg_names = _name_aggregates(outputs, having, taken)
    checker = _GroupCheck(input, key_names, agg_names, window)
    projected = [E.NamedExpr(o.name, checker.substitute(o.expr)) for o in outputs]
    condition = checker.substitute(having) if having is not None else None
    mode = resolve_emit(emit, window, emit_span or span)
    agg = build_aggregate(
        input,
        [E.NamedExpr(n, k) for k, n in key_names.items()],
        window,
        [E.NamedExpr(n, a) for a, n in agg_names.items()],
        mode,
        span,
    )
    plan: Plan = agg
    if condition is not None:
        assert having is not None  # the condition is the bound HAVING
        if condition.dtype not in (DataType.BOOLEAN, DataType.NULL):
            raise BindError(f"HAVING needs a BOOLEAN condition, got {condition.dtype.value}", span=having.span)
        plan = Filter(plan, condition, span=having.span)
    return project(plan, projected, span=span)


def _name_aggregates(outputs: Sequence[OutputColumn], having: E.Expr | None, taken: set[str]) -> dict[E.Agg, str]:
    """Each distinct aggregate, in order of appearance, with its output name.

    Aggregates that an output is exactly are named first (after the output),
    so a generated name never takes an alias the user wrote.
    """
    found: dict[E.Agg, None] = {}
    for e in [o.expr for o in outputs] + ([having] if having is not None else []):
        for node in E.walk(e):
            if isinstance(node, E.Agg):
                found.setdefault(node)
    exact: dict[E.Agg, str] = {}
    for o in outputs:
        if isinstance(o.expr, E.Agg) and o.expr not in exact:
            exact[o.expr] = unique_name(o.name, taken)
    return {a: exact.get(a) or unique_name(generated_name(a) or "agg", taken) for a in found}


@dataclass(frozen=True)
class _GroupCheck:
    """Rewrites output expressions over the Aggregate's output, refusing ungrouped columns."""

    input: Plan
    key_names: dict[E.Expr, str]
    agg_names: dict[E.Agg, str]
    window: WindowSpec | None

    def substitute(self, e: E.Expr) -> E.Expr:
        name = self.key_names.get(e)
        if name is not None:
            return E.Column(name, e.dtype, span=e.span)
        if isinstance(e, E.Agg):
            return E.Column(self.agg_names[e], e.dtype, span=e.span)
        if isinstance(e, E.Column):
            if self.window is not None and e.name in (WINDOW_START, WINDOW_END) and e.name not in self.input.schema:
                return e
            raise BindError(
                f"column '{e.name}' must appear in GROUP BY or be used in an aggregate function", span=e.span
            )
        return rebuild(e, self.substitute)
