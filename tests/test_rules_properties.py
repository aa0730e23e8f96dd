"""Property tests for the optimizer rules on random plans (hypothesis).

Random plans are built from the plan nodes and typed expression constructors
over the in-memory twins of the fixture catalog (see rules_support): scans,
filters with three-valued predicates (NULL literals, IS NULL, IN, LIKE,
CASE, arithmetic), projections, joins with a table (INNER and LEFT),
UNION ALL, DISTINCT, aggregates (windowed or not) and a LIMIT on top.

- optimize() never changes the output schema, and every rule alone keeps
  it, is idempotent and returns the same object on its own output;
- the optimized plan gives the same rows as the original on the inline
  executor (when the executor accepts the original shape at all).
"""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from optimizer.fixpoint import optimize
from optimizer.rules import RULES, RULE_NAMES
from rules_support import T0, assert_same_result, catalog_frames, data_context, has_limit, run
from stream_dsl.ir import expr as E
from stream_dsl.bind import typecheck as tc
from stream_dsl.errors import DSLError, ExecutionError, PlanError
from stream_dsl.ir.definitions import WindowSpec
from stream_dsl.ir.plan import Aggregate, Distinct, Filter, Join, Limit, Plan, Project, Scan, Union, render_plan
from stream_dsl.ir.types import DataType, Schema
from budget import examples

T = DataType
CTX = data_context()
SOURCES = CTX.catalog.sources
STREAMS = ("events", "clicks", "sensors", "transactions")
# table name -> its key column, joined with any STRING column of the stream side
TABLE_KEYS = {"users": "user_id", "campaigns": "ad_id"}
STRINGS = (
    "u1",
    "u2",
    "u3",
    "a1",
    "a2",
    "view",
    "click",
    "NL",
    "DE",
    "/a",
    "/shop/x",
    "bob",
    "acc1",
    "shop",
    "cafe",
    "p1",
    "banner",
    "video",
    "c1",
    "c2",
)


def _values_by_column() -> dict[str, list]:
    """The values each column name holds in the data, so random predicates select some rows, not none."""
    values: dict[str, set] = {}
    for frame in catalog_frames().values():
        for column in frame.columns:
            values.setdefault(column, set()).update(v for v in frame[column].to_list() if v is not None)
    return {column: sorted(vs) for column, vs in values.items()}


VALUES = _values_by_column()


def literal_for(draw, dtype: DataType, column: str | None = None) -> E.Expr:
    if draw(st.integers(0, 9)) == 0:
        return E.Literal(None, dtype)
    known = VALUES.get(column or "", [])
    if known and draw(st.integers(0, 3)) > 0:
        value = draw(st.sampled_from(known))
        return tc.literal(value) if dtype in (T.STRING, T.BOOLEAN, T.DOUBLE, T.TIMESTAMP) else E.Literal(value, dtype)
    if dtype is T.STRING:
        return tc.literal(draw(st.sampled_from(STRINGS)))
    if dtype is T.BOOLEAN:
        return tc.literal(draw(st.booleans()))
    if dtype is T.DOUBLE:
        return tc.literal(draw(st.integers(-20, 400)) / 4)
    if dtype.is_integer:
        return E.Literal(draw(st.integers(-5, 3000)), dtype)
    if dtype is T.TIMESTAMP:
        return tc.literal(T0 + dt.timedelta(seconds=draw(st.integers(0, 90))))
    return E.Literal(None, dtype)


def columns_of(schema: Schema, *types: DataType) -> list[E.Column]:
    return [E.Column(f.name, f.dtype) for f in schema if not types or f.dtype in types]


def comparison(draw, schema: Schema) -> E.Expr:
    column = draw(st.sampled_from(columns_of(schema, T.STRING, T.BIGINT, T.INT, T.DOUBLE, T.TIMESTAMP, T.BOOLEAN)))
    left: E.Expr = column
    if column.dtype.is_numeric and draw(st.booleans()):
        op = draw(st.sampled_from(["+", "-", "*"]))
        left = tc.binary(op, column, literal_for(draw, T.BIGINT if column.dtype.is_integer else T.DOUBLE))
    kind = draw(st.sampled_from(["cmp", "cmp", "null", "in", "like", "bool"]))
    if kind == "null":
        return tc.is_null(left, negated=draw(st.booleans()))
    if kind == "in":
        items = [literal_for(draw, left.dtype, column.name) for _ in range(draw(st.integers(1, 3)))]
        return tc.in_list(left, items, negated=draw(st.booleans()))
    if kind == "like" and left.dtype is T.STRING:
        return tc.like(
            left, tc.literal(draw(st.sampled_from(["%a%", "u_", "/shop%", "%"]))), negated=draw(st.booleans())
        )
    if kind == "bool" and left.dtype is T.BOOLEAN:
        return left
    value = literal_for(draw, left.dtype, column.name if left is column else None)
    return tc.binary(draw(st.sampled_from(["=", "<>", "<", "<=", ">", ">="])), left, value)


def predicate(draw, schema: Schema, depth: int = 2) -> E.Expr:
    choice = draw(st.integers(0, 9))
    if depth == 0 or choice < 4:
        return comparison(draw, schema)
    if choice == 4:
        return draw(
            st.sampled_from(
                [tc.literal(True), tc.literal(False), tc.literal(None), tc.binary("=", tc.literal(1), tc.literal(1))]
            )
        )
    if choice == 5:
        return tc.not_(predicate(draw, schema, depth - 1))
    op = "AND" if choice < 8 else "OR"
    return tc.binary(op, predicate(draw, schema, depth - 1), predicate(draw, schema, depth - 1))


class Names:
    def __init__(self) -> None:
        self.n = 0

    def fresh(self) -> str:
        self.n += 1
        return f"c{self.n}"


def computed(draw, schema: Schema) -> E.Expr:
    numbers = columns_of(schema, T.BIGINT, T.INT, T.DOUBLE)
    strings = columns_of(schema, T.STRING)
    kind = draw(st.sampled_from(["arith", "upper", "case", "const", "concat"]))
    if kind == "arith" and numbers:
        column = draw(st.sampled_from(numbers))
        other = draw(
            st.sampled_from([tc.literal(0), tc.literal(1), tc.literal(2), tc.binary("+", tc.literal(1), tc.literal(2))])
        )
        return tc.binary(draw(st.sampled_from(["+", "*", "-"])), column, other)
    if kind == "upper" and strings:
        return tc.function("upper", [draw(st.sampled_from(strings))])
    if kind == "concat" and strings:
        return tc.binary("||", draw(st.sampled_from(strings)), tc.literal("!"))
    if kind == "case":
        value = draw(st.sampled_from(columns_of(schema)))
        return tc.case([(predicate(draw, schema, 1), value)], literal_for(draw, value.dtype))
    return tc.binary("*", tc.literal(2), tc.literal(21))


def project(draw, plan: Plan, names: Names) -> Plan:
    columns = columns_of(plan.schema)
    kept = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=len(columns), unique_by=lambda c: c.name))
    exprs = [E.NamedExpr(c.name, c) for c in kept]
    for _ in range(draw(st.integers(0, 2))):
        e = computed(draw, plan.schema)
        if e.dtype is not T.NULL:
            exprs.append(E.NamedExpr(names.fresh(), e))
    return Project(plan, tuple(exprs))


def join(draw, plan: Plan, names: Names) -> Plan | None:
    strings = columns_of(plan.schema, T.STRING)
    if not strings:
        return None
    table_name = draw(st.sampled_from(sorted(TABLE_KEYS)))
    key = TABLE_KEYS[table_name]
    table: Plan = Scan(SOURCES[table_name])
    if draw(st.booleans()):
        table = Filter(table, predicate(draw, table.schema, 1))
    right_columns = tuple((f.name, names.fresh()) for f in table.schema if f.name != key or draw(st.booleans()))
    kind = draw(st.sampled_from(["inner", "left", "right", "full", "cross"]))
    if kind == "cross":
        return Join(plan, table, kind, (), (), right_columns)
    return Join(plan, table, kind, (draw(st.sampled_from(strings)).name,), (key,), right_columns)


def aggregate(draw, plan: Plan, names: Names) -> Plan:
    plain = columns_of(plan.schema, T.STRING, T.BIGINT, T.INT, T.BOOLEAN)
    chosen = draw(st.lists(st.sampled_from(plain), max_size=2, unique_by=lambda c: c.name)) if plain else []
    keys = [E.NamedExpr(c.name, c) for c in chosen]
    if plain and draw(st.integers(0, 3)) == 0:
        c = draw(st.sampled_from(plain))
        key = (
            tc.function("lower", [c])
            if c.dtype is T.STRING
            else tc.not_(c)
            if c.dtype is T.BOOLEAN
            else tc.binary("+", c, tc.literal(1))
        )
        keys.append(E.NamedExpr(names.fresh(), key))
    numbers = columns_of(plan.schema, T.BIGINT, T.INT, T.DOUBLE)
    aggs = [E.NamedExpr(names.fresh(), tc.aggregate("count", None))]
    if numbers:
        aggs.append(
            E.NamedExpr(
                names.fresh(),
                tc.aggregate(draw(st.sampled_from(["sum", "min", "max"])), draw(st.sampled_from(numbers))),
            )
        )
    window = None
    watermark = _watermark_column(plan)
    if watermark is not None and draw(st.booleans()):
        window = WindowSpec("tumble", watermark, draw(st.sampled_from([5_000, 10_000, 30_000])))
    return Aggregate(plan, tuple(keys), tuple(aggs), window)


def _watermark_column(plan: Plan) -> str | None:
    for node in _walk(plan):
        if isinstance(node, Scan) and node.source.watermark is not None:
            column = node.source.watermark.column
            if column in plan.schema and plan.schema.dtype(column) is T.TIMESTAMP:
                return column
    return None


def _walk(plan: Plan):
    yield plan
    for child in plan.inputs:
        yield from _walk(child)


def union(draw, plan: Plan) -> Plan:
    other = Filter(plan, predicate(draw, plan.schema, 1))
    renamed = Project(other, tuple(E.NamedExpr(f"{f.name}_u", E.Column(f.name, f.dtype)) for f in plan.schema))
    return Union((plan, renamed if draw(st.booleans()) else other))


@st.composite
def plans(draw) -> Plan:
    names = Names()
    plan: Plan = Scan(SOURCES[draw(st.sampled_from(STREAMS))])
    stateful = False
    for _ in range(draw(st.integers(1, 5))):
        step = draw(st.sampled_from(["filter", "filter", "project", "join", "union", "distinct", "aggregate"]))
        if step == "filter":
            plan = Filter(plan, predicate(draw, plan.schema))
        elif step == "project":
            plan = project(draw, plan, names)
        elif stateful:  # one shuffle is what the executor needs to accept; keep the rest narrow
            continue
        elif step == "join":
            plan = join(draw, plan, names) or plan
        elif step == "union":
            plan = union(draw, plan)
        elif step == "distinct":
            plan, stateful = Distinct(plan), True
        elif step == "aggregate":
            plan, stateful = aggregate(draw, plan, names), True
    if draw(st.integers(0, 5)) == 0:
        plan = Limit(plan, draw(st.integers(0, 30) if draw(st.integers(0, 9)) == 0 else st.integers(1, 30)))
    return plan


PROPERTY = settings(deadline=None, max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow])
EXECUTED = settings(deadline=None, max_examples=examples(80), suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(plans())
def test_optimize_never_changes_the_output_schema(plan):
    result = optimize(plan)
    assert result.plan.schema == plan.schema
    assert result.stopped == "fixed point", result.render_trace()
    assert optimize(result.plan).fired == ()


@PROPERTY
@given(plans())
def test_each_rule_keeps_the_schema_and_is_idempotent(plan):
    for rule in RULES:
        once = rule(plan)
        assert once.schema == plan.schema, rule.__name__
        twice = rule(once)
        assert twice is once, f"{rule.__name__} is not idempotent:\n{render_plan(once)}\n->\n{render_plan(twice)}"


@EXECUTED
@given(plans(), st.sampled_from((None,) + RULE_NAMES))
def test_optimized_plans_give_the_same_rows(plan, disabled):
    try:
        expected = run(plan)
    except (PlanError, ExecutionError):  # a shape or value the executor refuses either way
        assume(False)
    optimized = optimize(plan, disabled={disabled} if disabled else ()).plan
    try:
        actual = run(optimized, workers=2)
    except DSLError as err:
        pytest.fail(
            f"the optimized plan fails but the original runs: {err}\n"
            f"original:\n{render_plan(plan)}\noptimized:\n{render_plan(optimized)}"
        )
    assert_same_result(expected, actual, rows_only=has_limit(plan))
