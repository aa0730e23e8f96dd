"""Binder unit tests: scopes, joins, aggregation rules, windows, emit, unions, CTEs, DDL and error spans."""

from __future__ import annotations

import datetime as dt

import pytest

from stream_dsl.sql import ast
from stream_dsl.ir import expr as E
from stream_dsl.bind.binder import (
    BoundCreateSink,
    BoundCreateSource,
    BoundCreateView,
    BoundDescribe,
    BoundDrop,
    BoundExplain,
    BoundInsert,
    BoundQuery,
    BoundSet,
    BoundShow,
    bind,
)
from stream_dsl.catalog import Catalog
from stream_dsl.errors import BindError
from stream_dsl.sql.parser import parse, parse_statement
from stream_dsl.ir.definitions import Watermark, WindowSpec
from stream_dsl.ir.plan import Aggregate, Distinct, Filter, Join, Limit, Project, Scan, Union, render_plan, walk
from stream_dsl.ir.types import DataType as T

DDL = """
CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'generator', kind = 'ysb', rate = '1000000', count = '5000000');
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'files', path = 'data/campaigns.csv', format = 'csv');
CREATE STREAM clicks (user_id STRING, url STRING, ts TIMESTAMP, duration_ms BIGINT,
  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH (connector = 'files', path = 'c/', format = 'ndjson');
CREATE STREAM sensors (sensor_id INT, temperature DOUBLE, humidity DOUBLE, ok BOOLEAN, ts TIMESTAMP)
  WITH (connector = 'files', path = 's/', format = 'ndjson');
CREATE TABLE users (user_id STRING, country STRING, age INT) WITH (connector = 'files', path = 'u.csv');
CREATE TABLE products (sku STRING, name STRING, price DOUBLE) WITH (connector = 'files', path = 'p.csv');
CREATE STREAM orders (order_id BIGINT, sku STRING, qty INT, ts TIMESTAMP) WITH (connector = 'files', path = 'o/');
CREATE SINK out WITH (connector = 'files', path = 'out/', format = 'parquet');
"""


@pytest.fixture
def catalog() -> Catalog:
    """A catalog filled by binding DDL (and applying it the way the Context does)."""
    cat = Catalog(check_files=False)  # its files exist nowhere: binding only
    for statement in parse(DDL):
        bound = bind(statement, cat, DDL)
        if isinstance(bound, BoundCreateSource):
            cat.add_source(bound.source)
        else:
            assert isinstance(bound, BoundCreateSink)
            cat.add_sink(bound.sink)
    return cat


def plan_of(catalog: Catalog, text: str):
    bound = bind(parse_statement(text), catalog, text)
    assert isinstance(bound, BoundQuery)
    return bound.plan


def error_of(catalog: Catalog, text: str) -> BindError:
    with pytest.raises(BindError) as info:
        bind(parse_statement(text), catalog, text)
    return info.value


def col(name: str, dtype: T) -> E.Column:
    return E.Column(name, dtype)


# ---------------------------------------------------------------- scopes and names


def test_select_star_is_the_scan_itself(catalog):
    plan = plan_of(catalog, "SELECT * FROM clicks")
    assert isinstance(plan, Scan) and plan.source.name == "clicks"


def test_qualified_aliased_and_case_insensitive_names(catalog):
    plan = plan_of(catalog, "SELECT c.URL, C.user_id AS who, Duration_MS FROM clicks AS c")
    assert isinstance(plan, Project)
    assert [n.name for n in plan.exprs] == ["url", "who", "duration_ms"]
    assert plan.exprs[0].expr == col("url", T.STRING)


def test_exact_name_wins_over_case_insensitive_match(catalog):
    catalog.add_source(_source(catalog, "CREATE TABLE mixed (Name STRING, name BIGINT) WITH (connector = 'memory')"))
    plan = plan_of(catalog, "SELECT name, Name FROM mixed")
    assert [n.expr.dtype for n in plan.exprs] == [T.BIGINT, T.STRING]
    err = error_of(catalog, "SELECT NAME FROM mixed")
    assert err.message == "column 'NAME' is ambiguous: it is in mixed and mixed; write mixed.Name or mixed.name"


def _source(catalog: Catalog, text: str):
    bound = bind(parse_statement(text), catalog, text)
    assert isinstance(bound, BoundCreateSource)
    return bound.source


def test_unknown_column_suggests_and_points_at_it(catalog):
    err = error_of(catalog, "SELECT sku, prce FROM products")
    assert err.message == "unknown column 'prce' (did you mean 'price'?)"
    assert (err.line, err.column) == (1, 13)
    assert str(err) == (
        "line 1, col 13: unknown column 'prce' (did you mean 'price'?)\n"
        "  SELECT sku, prce FROM products\n"
        "              ^"
    )


def test_order_by_names_output_columns_by_name_alias_or_position(catalog):
    from stream_dsl.ir.plan import Limit, Sort, SortKey

    plan = plan_of(catalog, "SELECT sku AS s, price FROM products ORDER BY PRICE DESC, 1 NULLS FIRST LIMIT 3")
    assert isinstance(plan, Limit) and plan.n == 3 and isinstance(plan.input, Sort)
    assert plan.input.keys == (SortKey("price", True, False), SortKey("s", False, True))
    err = error_of(catalog, "SELECT sku FROM products ORDER BY prce")
    assert err.message.startswith("ORDER BY 'prce' is not an output column of the query")
    assert "output columns (sku)" in err.message and (err.line, err.column) == (1, 35)
    assert "(did you mean 'sku'?)" in error_of(catalog, "SELECT sku FROM products ORDER BY skus").message
    assert (
        error_of(catalog, "SELECT sku FROM products ORDER BY 2").message
        == "ORDER BY position 2 is not in the select list (1 to 1)"
    )
    assert "select it with an alias" in error_of(catalog, "SELECT sku FROM products ORDER BY sku || 'x'").message


def test_having_names_a_select_alias_unless_an_input_column_has_that_name(catalog):
    aliased = plan_of(catalog, "SELECT sku, COUNT(*) AS n FROM products GROUP BY sku HAVING n > 1")
    spelled = plan_of(catalog, "SELECT sku, COUNT(*) AS n FROM products GROUP BY sku HAVING COUNT(*) > 1")
    assert aliased == spelled
    err = error_of(catalog, "SELECT sku, SUM(price) AS price FROM products GROUP BY sku HAVING price > 1")
    assert "'price' must appear in GROUP BY" in err.message


def test_error_position_on_a_later_line(catalog):
    text = "SELECT url\nFROM clicks\nWHERE duraton_ms > 5"
    err = error_of(catalog, text)
    assert (err.line, err.column) == (3, 7)
    assert err.message == "unknown column 'duraton_ms' (did you mean 'duration_ms'?)"
    assert str(err).endswith("  WHERE duraton_ms > 5\n        ^")


def test_unknown_table_and_alias(catalog):
    assert (
        error_of(catalog, "SELECT * FROM clickz").message == "unknown stream or table 'clickz' (did you mean 'clicks'?)"
    )
    assert error_of(catalog, "SELECT x.url FROM clicks c").message == "unknown table or alias 'x' (known: c)"


def test_ambiguous_column_in_a_join(catalog):
    err = error_of(catalog, "SELECT user_id FROM clicks c JOIN users u ON c.user_id = u.user_id")
    assert err.message == "column 'user_id' is ambiguous: it is in c and u; write c.user_id or u.user_id"
    assert (err.line, err.column) == (1, 8)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT * FROM clicks c RIGHT JOIN users u USING (user_id)", "right"),
        ("SELECT * FROM clicks c RIGHT OUTER JOIN users u ON c.user_id = u.user_id", "right"),
        ("SELECT * FROM clicks c FULL JOIN users u ON c.user_id = u.user_id", "full"),
        ("SELECT * FROM clicks c FULL OUTER JOIN users u USING (user_id)", "full"),
        ("SELECT * FROM clicks c CROSS JOIN users u", "cross"),
        ("SELECT * FROM users u LEFT JOIN clicks c USING (user_id)", "right"),  # the stream goes left
        ("SELECT * FROM users u RIGHT JOIN clicks c USING (user_id)", "left"),
    ],
)
def test_right_full_and_cross_joins_bind_at_their_keyword_never_read_as_an_alias(catalog, sql, kind):
    """RIGHT and FULL were once parsed as an alias of the left side, silently giving an inner join."""
    joins = [n for n in walk(plan_of(catalog, sql)) if isinstance(n, Join)]
    assert [j.kind for j in joins] == [kind]
    assert joins[0].left.source.name == "clicks"  # the stream runs on the left of the Join node


def test_right_join_on_with_a_condition_that_is_no_key_is_refused_at_it(catalog):
    err = error_of(catalog, "SELECT * FROM clicks c RIGHT JOIN users u ON c.user_id = u.user_id AND u.age > 3")
    assert err.message.startswith("RIGHT JOIN ... ON supports only equalities between a column of each side")
    assert (err.line, err.column) == (1, 72)


def test_unknown_function_suggests(catalog):
    err = error_of(catalog, "SELECT uper(url) FROM clicks")
    assert err.message.startswith("unknown function 'uper' (did you mean 'upper'")
    assert (err.line, err.column) == (1, 8)


def test_window_columns_outside_a_windowed_aggregate_give_a_hint(catalog):
    err = error_of(catalog, "SELECT window_start FROM clicks")
    assert "TUMBLE, HOP or SESSION" in err.message


# ---------------------------------------------------------------- names of outputs


def test_generated_output_names(catalog):
    plan = plan_of(catalog, "SELECT upper(url), duration_ms + 1, url, url, CAST(duration_ms AS DOUBLE) FROM clicks")
    assert [n.name for n in plan.exprs] == ["upper_url", "_col2", "url", "url_2", "duration_ms"]


def test_duplicate_aliases_are_an_error(catalog):
    err = error_of(catalog, "SELECT url AS a, user_id AS a FROM clicks")
    assert err.message == "duplicate output column name 'a'; give each column a different alias"


def test_identity_projection_is_dropped_but_reordering_is_kept(catalog):
    assert isinstance(plan_of(catalog, "SELECT user_id, url, ts, duration_ms FROM clicks"), Scan)
    assert isinstance(plan_of(catalog, "SELECT url, user_id, ts, duration_ms FROM clicks"), Project)


# ---------------------------------------------------------------- expressions


def test_expression_desugaring_and_types(catalog):
    plan = plan_of(
        catalog,
        """
        SELECT CASE ad_type WHEN 'banner' THEN 1 END AS code,
               event_time + INTERVAL '5' MINUTE AS later,
               1.5 AS f, 2 AS i, NULL AS n
        FROM events
        WHERE event_time BETWEEN TIMESTAMP '2024-01-01 00:00:00' AND '2024-01-02'
          AND ad_id IN ('a', 'b') AND page_id LIKE 'p%' AND ip_address IS NOT NULL""",
    )
    code, later, f, i, n = plan.exprs
    assert code.expr == E.Case(
        ((E.Binary("=", col("ad_type", T.STRING), E.Literal("banner", T.STRING), T.BOOLEAN), E.Literal(1, T.BIGINT)),),
        E.Literal(None, T.NULL),
        T.BIGINT,
    )
    assert later.expr.dtype is T.TIMESTAMP
    assert later.expr.right == E.Literal(dt.timedelta(minutes=5), T.INTERVAL)
    assert (f.expr.dtype, i.expr.dtype, n.expr.dtype) == (T.DOUBLE, T.BIGINT, T.NULL)
    parts = E.conjuncts(plan.input.predicate)
    assert parts[0] == E.Binary(
        ">=", col("event_time", T.TIMESTAMP), E.Literal(dt.datetime(2024, 1, 1), T.TIMESTAMP), T.BOOLEAN
    )
    assert parts[1].right == E.Literal(dt.datetime(2024, 1, 2), T.TIMESTAMP)  # string coerced to TIMESTAMP
    assert isinstance(parts[2], E.InList) and isinstance(parts[3], E.Like) and isinstance(parts[4], E.IsNull)


def test_type_errors_point_at_the_operator(catalog):
    err = error_of(catalog, "SELECT url FROM clicks WHERE url + 1 > 2")
    assert err.message.startswith("operator + needs numbers, got STRING and BIGINT")
    assert (err.line, err.column) == (1, 30)
    err = error_of(catalog, "SELECT url FROM clicks WHERE duration_ms")
    assert err.message == "WHERE needs a BOOLEAN condition, got BIGINT in duration_ms"


def test_unknown_cast_type(catalog):
    err = error_of(catalog, "SELECT CAST(url AS BLOB) FROM clicks")
    assert err.message.startswith("unknown type 'BLOB'; known types: BIGINT, BOOL, BOOLEAN")


# ---------------------------------------------------------------- joins


def test_join_using_keeps_the_key_once(catalog):
    plan = plan_of(catalog, "SELECT * FROM events JOIN campaigns USING (ad_id)")
    assert isinstance(plan, Join)
    assert (plan.kind, plan.left_keys, plan.right_keys) == ("inner", ("ad_id",), ("ad_id",))
    assert plan.right_columns == (("campaign_id", "campaign_id"),)


def test_using_key_is_reachable_through_either_qualifier(catalog):
    plan = plan_of(
        catalog, "SELECT c.ad_id, e.ad_id AS again, ad_id AS third FROM events e JOIN campaigns c USING (ad_id)"
    )
    assert all(n.expr == col("ad_id", T.STRING) for n in plan.exprs)


def test_join_on_renames_clashing_right_columns(catalog):
    plan = plan_of(catalog, "SELECT * FROM clicks c JOIN users u ON c.user_id = u.user_id")
    assert isinstance(plan, Project) and isinstance(plan.input, Join)
    assert plan.input.right_columns == (("user_id", "user_id_right"), ("country", "country"), ("age", "age"))
    # the plan's own name stays inside; the output names a repeated column by its alias (join_names.py)
    assert plan.schema.names == ("user_id", "url", "ts", "duration_ms", "u.user_id", "country", "age")
    qualified = plan_of(catalog, "SELECT u.user_id FROM clicks c JOIN users u ON c.user_id = u.user_id")
    # The output keeps the name the query uses (as in DuckDB), so an outer query can name it.
    assert qualified.exprs == (E.NamedExpr("user_id", col("user_id_right", T.STRING)),)


def test_second_clash_gets_right2_inside_and_the_alias_outside(catalog):
    plan = plan_of(
        catalog,
        """SELECT * FROM clicks c
        JOIN users u ON c.user_id = u.user_id
        JOIN users v ON c.user_id = v.user_id""",
    )
    join = plan.input
    assert join.right_columns == (("user_id", "user_id_right2"), ("country", "country_right"), ("age", "age_right"))
    assert plan.schema.names[-6:] == ("u.user_id", "country", "age", "v.user_id", "v.country", "v.age")


def test_self_join_names_the_second_sides_columns_by_alias(catalog):
    plan = plan_of(catalog, "SELECT * FROM users a JOIN users b ON a.user_id = b.user_id")
    assert plan.schema.names == ("user_id", "country", "age", "b.user_id", "b.country", "b.age")
    star = plan_of(catalog, "SELECT b.*, a.country FROM users a JOIN users b ON a.user_id = b.user_id")
    assert star.schema.names == ("user_id", "country", "age", "a.country")
    aliased = plan_of(catalog, "SELECT a.country, b.country AS other FROM users a JOIN users b USING (user_id)")
    assert aliased.schema.names == ("country", "other")


def test_inner_join_extra_conditions_become_a_filter_above(catalog):
    plan = plan_of(catalog, "SELECT * FROM clicks c JOIN users u ON u.user_id = c.user_id AND c.duration_ms > u.age")
    plan = plan.input  # the Project naming u.user_id
    assert isinstance(plan, Filter) and isinstance(plan.input, Join)
    assert plan.input.left_keys == ("user_id",) and plan.input.right_keys == ("user_id",)
    assert E.render(plan.predicate) == "(duration_ms > age)"


def test_left_join_right_only_conditions_are_pushed_to_the_right_input(catalog):
    plan = plan_of(catalog, "SELECT * FROM clicks c LEFT JOIN users u ON c.user_id = u.user_id AND u.user_id <> 'x'")
    plan = plan.input  # the Project naming u.user_id
    assert isinstance(plan, Join) and plan.kind == "left"
    assert isinstance(plan.right, Filter)
    # the right side's own name (not user_id_right) is used below the join
    assert E.render(plan.right.predicate) == "(user_id <> 'x')"


def test_left_join_with_a_condition_on_both_sides_is_refused(catalog):
    # (a condition on the left side alone works: see test_duckdb_regressions.py)
    err = error_of(
        catalog, "SELECT * FROM clicks c LEFT JOIN users u ON c.user_id = u.user_id AND c.duration_ms > u.age"
    )
    assert err.message == "LEFT JOIN ... ON supports equalities and conditions on one side at a time"
    assert (err.line, err.column) == (1, 71)


def test_join_needs_an_equality(catalog):
    err = error_of(catalog, "SELECT * FROM clicks c JOIN users u ON c.duration_ms > u.age")
    assert err.message.startswith("JOIN ... ON needs an equality between a column of each side")


def test_two_streams_without_a_time_bound_are_a_regular_join(catalog):
    plan = plan_of(catalog, "SELECT * FROM clicks JOIN events USING (user_id)")
    [join] = [j for j in walk(plan) if isinstance(j, Join)]
    assert (join.kind, join.interval, join.left_keys, join.right_keys) == ("inner", None, ("user_id",), ("user_id",))


def test_two_streams_cannot_be_cross_joined(catalog):
    err = error_of(catalog, "SELECT * FROM clicks CROSS JOIN events")
    assert err.message.startswith("a CROSS JOIN of two streams is not supported")
    assert (err.line, err.column) == (1, 33)  # the joined stream


def test_table_left_join_stream_is_a_right_join_with_the_stream_on_the_left(catalog):
    plan = plan_of(catalog, "SELECT * FROM users u LEFT JOIN clicks c USING (user_id)")
    assert [j.kind for j in walk(plan) if isinstance(j, Join)] == ["right"]
    assert plan.schema.names == ("user_id", "country", "age", "url", "ts", "duration_ms")
    # USING's key is COALESCE of both sides' keys: a table row no click matched still has its own
    merged = plan.input
    assert E.render(merged.exprs[0].expr) == "coalesce(user_id, user_id_right)"
    own = plan_of(catalog, "SELECT c.user_id AS clicked FROM users u LEFT JOIN clicks c USING (user_id)")
    assert own.exprs == (E.NamedExpr("clicked", col("user_id_right", T.STRING)),)  # NULL where no click matched


def test_stream_on_the_right_of_an_inner_join_is_swapped(catalog):
    plan = plan_of(catalog, "SELECT * FROM campaigns c JOIN events e ON c.ad_id = e.ad_id")
    assert isinstance(plan, Project) and isinstance(plan.input.input, Join)  # names by alias, over the swap
    join = plan.input.input
    assert join.left.source.name == "events" and join.right.source.name == "campaigns"
    assert plan.schema.names == (
        "ad_id",
        "campaign_id",
        "user_id",
        "page_id",
        "e.ad_id",
        "ad_type",
        "event_type",
        "event_time",
        "ip_address",
    )


def test_table_table_join(catalog):
    plan = plan_of(catalog, "SELECT * FROM users a JOIN users b USING (user_id)")
    assert isinstance(plan.input, Join) and plan.schema.names == ("user_id", "country", "age", "b.country", "b.age")


def test_ambiguous_column_of_a_self_join_lists_both_candidates_where_it_is_written(catalog):
    err = error_of(catalog, "SELECT user_id,\n  country FROM users a JOIN users b USING (user_id)")
    assert err.message == "column 'country' is ambiguous: it is in a and b; write a.country or b.country"
    assert (err.line, err.column) == (2, 3)


# ---------------------------------------------------------------- aggregation


def test_ungrouped_column_is_refused_at_its_position(catalog):
    err = error_of(catalog, "SELECT user_id, COUNT(*)\nFROM clicks\nGROUP BY url")
    assert err.message == "column 'user_id' must appear in GROUP BY or be used in an aggregate function"
    assert (err.line, err.column) == (1, 8)


def test_aggregates_are_refused_in_where_group_by_and_nested(catalog):
    assert (
        error_of(catalog, "SELECT url FROM clicks WHERE COUNT(*) > 1").message
        == "aggregate functions are not allowed in WHERE (COUNT)"
    )
    assert (
        error_of(catalog, "SELECT COUNT(*) FROM clicks GROUP BY COUNT(*)").message
        == "aggregate functions are not allowed in GROUP BY"
    )
    err = error_of(catalog, "SELECT SUM(COUNT(*)) FROM clicks")
    assert err.message == "aggregate functions cannot be nested" and (err.line, err.column) == (1, 12)


def test_group_by_expression_matched_structurally(catalog):
    plan = plan_of(catalog, "SELECT UPPER(URL), count(*) FROM clicks GROUP BY upper(url)")
    assert isinstance(plan, Aggregate)
    assert plan.keys == (E.NamedExpr("upper_url", E.Func("upper", (col("url", T.STRING),), T.STRING)),)
    assert plan.aggs == (E.NamedExpr("count", E.Agg("count", None, T.BIGINT)),)
    assert plan.emit == "changes"


def test_group_by_alias_and_ordinal(catalog):
    plan = plan_of(
        catalog, "SELECT lower(country) AS region, age / 10 AS decade, COUNT(*) AS people FROM users GROUP BY 1, decade"
    )
    assert [k.name for k in plan.keys] == ["region", "decade"]
    assert E.render(plan.keys[1].expr) == "(age / 10)"
    assert (
        error_of(catalog, "SELECT COUNT(*) FROM users GROUP BY 2").message
        == "GROUP BY position 2 is not in the select list (1 to 1)"
    )


def test_having_adds_hidden_aggregates_dropped_by_the_final_projection(catalog):
    plan = plan_of(
        catalog, "SELECT url, COUNT(*) AS hits FROM clicks GROUP BY url HAVING COUNT(*) > 1 AND AVG(duration_ms) > 500"
    )
    assert isinstance(plan, Project) and plan.schema.names == ("url", "hits")
    having = plan.input
    assert isinstance(having, Filter) and E.render(having.predicate) == "((hits > 1) AND (avg_duration_ms > 500))"
    agg = having.input
    assert [a.name for a in agg.aggs] == ["hits", "avg_duration_ms"]


def test_identical_aggregates_are_computed_once(catalog):
    plan = plan_of(catalog, "SELECT COUNT(*) AS a, COUNT(*) + 1 AS b, count(*) AS c FROM clicks")
    agg = plan.input
    assert agg.aggs == (E.NamedExpr("a", E.Agg("count", None, T.BIGINT)),)
    assert [E.render_named(n) for n in plan.exprs] == ["a", "b := (a + 1)", "c := a"]


def test_agg_alias_clashing_with_a_key_is_renamed_inside(catalog):
    plan = plan_of(catalog, "SELECT url AS u, COUNT(*) AS url FROM clicks GROUP BY url")
    assert [k.name for k in plan.input.keys] == ["url"] and [a.name for a in plan.input.aggs] == ["url_2"]
    assert plan.schema.names == ("u", "url")


def test_global_aggregate_and_count_distinct(catalog):
    plan = plan_of(catalog, "SELECT COUNT(DISTINCT user_id), SUM(duration_ms), AVG(duration_ms) FROM clicks")
    assert isinstance(plan, Aggregate) and plan.keys == ()
    assert [a.name for a in plan.aggs] == ["count_distinct_user_id", "sum_duration_ms", "avg_duration_ms"]
    assert plan.aggs[0].expr.distinct and plan.aggs[2].expr.dtype is T.DOUBLE


def test_select_distinct_with_group_by(catalog):
    plan = plan_of(catalog, "SELECT DISTINCT country, COUNT(*) AS people FROM users GROUP BY country, age")
    assert isinstance(plan, Distinct) and isinstance(plan.input, Project)
    assert [k.name for k in plan.input.input.keys] == ["country", "age"]


# ---------------------------------------------------------------- windows and emit


@pytest.mark.parametrize(
    "call, spec",
    [
        ("TUMBLE(ts, INTERVAL '10' SECOND)", WindowSpec("tumble", "ts", 10_000)),
        ("HOP(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE)", WindowSpec("hop", "ts", 300_000, 60_000)),
        ("SESSION(ts, INTERVAL '30' MINUTE)", WindowSpec("session", "ts", 1_800_000)),
    ],
)
def test_windows(catalog, call, spec):
    plan = plan_of(
        catalog, f"SELECT user_id, window_start, window_end, COUNT(*) AS n FROM clicks GROUP BY user_id, {call}"
    )
    assert isinstance(plan, Aggregate)
    assert plan.window == spec and plan.emit == "final"
    assert plan.schema.names == ("user_id", "window_start", "window_end", "n")


def test_window_columns_can_be_renamed_and_dropped(catalog):
    plan = plan_of(
        catalog,
        "SELECT window_end AS at, MAX(temperature) AS hottest FROM sensors GROUP BY TUMBLE(ts, INTERVAL '1' MINUTE)",
    )
    assert [E.render_named(n) for n in plan.exprs] == ["at := window_end", "hottest"]
    assert plan.input.keys == ()


def test_window_errors(catalog):
    assert (
        error_of(
            catalog,
            "SELECT COUNT(*) FROM clicks GROUP BY TUMBLE(ts, INTERVAL '1' SECOND), SESSION(ts, INTERVAL '1' SECOND)",
        ).message
        == "only one window (TUMBLE, HOP or SESSION) is allowed per GROUP BY"
    )
    assert (
        error_of(catalog, "SELECT COUNT(*) FROM clicks GROUP BY TUMBLE(url, INTERVAL '1' SECOND)").message
        == "the first argument of TUMBLE must be a TIMESTAMP column; 'url' is STRING"
    )
    assert (
        error_of(catalog, "SELECT TUMBLE(ts, INTERVAL '1' SECOND) FROM clicks").message
        == "TUMBLE is a window: it is only allowed in GROUP BY"
    )
    assert (
        error_of(catalog, "SELECT COUNT(*) FROM clicks GROUP BY HOP(ts, INTERVAL '1' SECOND)").message
        == "HOP takes 3 arguments: HOP(time_column, INTERVAL ..., INTERVAL ...)"
    )


def test_emit_modes(catalog):
    base = "SELECT url, window_start, COUNT(*) AS n FROM clicks GROUP BY url, TUMBLE(ts, INTERVAL '1' MINUTE)"
    assert plan_of(catalog, base).input.emit == "final"
    assert plan_of(catalog, base + " EMIT ON WINDOW CLOSE").input.emit == "final"
    assert plan_of(catalog, base + " EMIT CHANGES").input.emit == "changes"
    assert plan_of(catalog, "SELECT url, COUNT(*) FROM clicks GROUP BY url").emit == "changes"


def test_emit_errors(catalog):
    err = error_of(catalog, "SELECT url, COUNT(*) FROM clicks GROUP BY url EMIT ON WINDOW CLOSE")
    assert err.message == (
        "EMIT ON WINDOW CLOSE needs a windowed aggregate: add TUMBLE, HOP or SESSION to GROUP BY, or use EMIT CHANGES"
    )
    err = error_of(catalog, "SELECT url FROM clicks EMIT CHANGES")
    assert err.message.startswith("EMIT CHANGES needs an aggregation")


# ---------------------------------------------------------------- unions, limits, CTEs, views


def test_union_all_widens_numeric_columns(catalog):
    plan = plan_of(catalog, "SELECT sensor_id AS id, ts FROM sensors UNION ALL SELECT order_id, ts FROM orders")
    assert isinstance(plan, Union) and plan.schema.names == ("id", "ts")
    left = plan.inputs[0]
    assert left.exprs[0] == E.NamedExpr("id", E.Cast(col("sensor_id", T.INT), T.BIGINT))
    assert [f.dtype for f in plan.schema] == [T.BIGINT, T.TIMESTAMP]


def test_union_errors(catalog):
    assert (
        error_of(catalog, "SELECT user_id FROM clicks UNION ALL SELECT duration_ms FROM clicks").message
        == "UNION column 1 ('user_id') has incompatible types: STRING and BIGINT; use CAST"
    )
    assert (
        error_of(catalog, "SELECT user_id, url FROM clicks UNION ALL SELECT user_id FROM events").message
        == "UNION inputs must have the same number of columns: 2 (user_id, url) vs 1 (user_id)"
    )


def test_union_distinct_and_flattening(catalog):
    plan = plan_of(catalog, "SELECT user_id FROM clicks UNION SELECT user_id FROM events")
    assert isinstance(plan, Distinct) and isinstance(plan.input, Union)
    three = plan_of(
        catalog, "SELECT user_id FROM clicks UNION ALL SELECT user_id FROM events UNION ALL SELECT user_id FROM users"
    )
    assert isinstance(three, Union) and len(three.inputs) == 3


def test_limit_and_distinct(catalog):
    plan = plan_of(catalog, "SELECT DISTINCT url FROM clicks LIMIT 10")
    assert isinstance(plan, Limit) and plan.n == 10 and isinstance(plan.input, Distinct)


def test_ctes_see_earlier_ctes_and_shadow_the_catalog(catalog):
    plan = plan_of(
        catalog,
        """
        WITH clicks AS (SELECT user_id FROM events WHERE event_type = 'click'),
             counted AS (SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id)
        SELECT * FROM counted WHERE n > 2""",
    )
    assert isinstance(plan, Filter) and isinstance(plan.input, Aggregate)
    assert "Scan stream events" in render_plan(plan) and "clicks" not in render_plan(plan)


def test_duplicate_cte_in_a_hand_built_tree(catalog):
    # The parser refuses this text already; the binder checks trees built by other means too.
    inner = parse_statement("SELECT * FROM clicks").query
    tree = ast.QueryStatement(ast.Query(inner.body, ctes=(("a", inner), ("A", inner))))
    with pytest.raises(BindError, match="WITH defines 'A' twice"):
        bind(tree, catalog)


def test_views_are_inlined_and_subqueries_aliased(catalog):
    view = bind(
        parse_statement("CREATE VIEW views AS SELECT ad_id, event_time FROM events WHERE event_type = 'view'"), catalog
    )
    assert isinstance(view, BoundCreateView) and view.name == "views" and not view.replace
    catalog.add_view(view.name, view.plan)
    plan = plan_of(catalog, "SELECT v.ad_id FROM views v")
    assert plan == Project(view.plan, (E.NamedExpr("ad_id", col("ad_id", T.STRING)),))
    sub = plan_of(catalog, "SELECT s.ad_id FROM (SELECT ad_id, event_time FROM events WHERE event_type = 'view') AS s")
    assert sub == plan


def test_select_without_from_reads_one_row_and_star_needs_from(catalog):
    assert render_plan(plan_of(catalog, "SELECT 1 AS one")).splitlines()[-1].strip().startswith("Scan stream one_row")
    assert error_of(catalog, "SELECT *").message.startswith("SELECT * needs a FROM clause")


# ---------------------------------------------------------------- statements and DDL


def test_create_stream_binding():
    text = """CREATE STREAM IF NOT EXISTS readings (id BIGINT NOT NULL, device INTEGER, reading FLOAT,
      label VARCHAR(32), ok BOOL, taken_at TIMESTAMP, WATERMARK FOR taken_at AS taken_at - INTERVAL '3' SECOND)
      WITH (Connector = 'files', PATH = 'r/', format = 'csv')"""
    bound = bind(parse_statement(text), Catalog(check_files=False), text)  # 'r/' exists nowhere
    assert isinstance(bound, BoundCreateSource) and bound.if_not_exists and not bound.replace
    source = bound.source
    assert (source.name, source.kind) == ("readings", "stream")
    assert [f.dtype for f in source.schema] == [T.BIGINT, T.INT, T.DOUBLE, T.STRING, T.BOOLEAN, T.TIMESTAMP]
    assert source.options == (("connector", "files"), ("format", "csv"), ("path", "r/"))
    assert source.watermark == Watermark("taken_at", 3000)


def test_create_table_without_connector_and_watermark_without_delay():
    text = "CREATE OR REPLACE TABLE t (a TIMESTAMP, WATERMARK FOR a AS a)"
    bound = bind(parse_statement(text), Catalog(), text)
    assert bound.source.kind == "table" and bound.source.options == () and bound.replace
    assert bound.source.watermark == Watermark("a", 0)


def test_ddl_errors_point_at_the_problem():
    cat = Catalog()
    text = "CREATE STREAM s (a BIGINT,\n  b STRNG)"
    err = error_of(cat, text)
    assert err.message.startswith("unknown type 'STRNG'; known types:")
    assert (err.line, err.column) == (2, 5)
    assert (
        error_of(cat, "CREATE STREAM s (a BIGINT, WATERMARK FOR a AS a)").message
        == "the WATERMARK column 'a' must be a TIMESTAMP, not BIGINT"
    )
    assert error_of(cat, "CREATE STREAM s (a TIMESTAMP, WATERMARK FOR b AS b)").message == "unknown column 'b'"
    assert (
        error_of(cat, "CREATE STREAM s (a TIMESTAMP, WATERMARK FOR a AS a + INTERVAL '1' SECOND)").message
        == "unsupported watermark expression; write WATERMARK FOR a AS a - INTERVAL '...' <unit>"
    )
    assert error_of(cat, "CREATE STREAM s (a BIGINT, a STRING)").message == "duplicate column name 'a'"


def test_other_statements(catalog):
    def b(text):
        return bind(parse_statement(text), catalog, text)

    assert b("SHOW STREAMS") == BoundShow("streams")
    assert b("DESCRIBE clicks") == BoundDescribe("clicks")
    assert b("SET Group_Size = 'auto'") == BoundSet("group_size", "auto")
    assert b("DROP TABLE IF EXISTS nope") == BoundDrop("table", "nope", True)
    sink = b("CREATE SINK s2 WITH (connector = 'console')")
    assert isinstance(sink, BoundCreateSink) and sink.sink.options == (("connector", "console"),)
    insert = b("INSERT INTO out SELECT url FROM clicks")
    assert isinstance(insert, BoundInsert) and insert.sink.name == "out"
    explain = b("EXPLAIN ANALYZE SELECT url FROM clicks")
    assert isinstance(explain, BoundExplain) and explain.analyze and isinstance(explain.statement, BoundQuery)
    assert error_of(catalog, "SET wrkers = 3").message.startswith("unknown setting 'wrkers' (did you mean 'workers'?)")
    assert (
        error_of(catalog, "INSERT INTO outt SELECT * FROM clicks").message
        == "unknown sink 'outt' (did you mean 'out'?)"
    )
    assert error_of(catalog, "DESCRIBE clickz").message == "unknown stream or table 'clickz' (did you mean 'clicks'?)"


def test_binding_does_not_change_the_catalog(catalog):
    before = (dict(catalog.sources), dict(catalog.sinks), dict(catalog.views))
    for text in (
        "CREATE STREAM fresh (a BIGINT)",
        "CREATE VIEW v AS SELECT * FROM clicks",
        "DROP STREAM clicks",
        "CREATE SINK s3 WITH (connector = 'console')",
    ):
        bind(parse_statement(text), catalog, text)
    assert (catalog.sources, catalog.sinks, catalog.views) == before


@pytest.mark.parametrize(
    "text, position, message",
    [
        ("SELECT CAST(url AS STRNG) FROM clicks", (1, 20), "unknown type 'STRNG'"),
        ("SELECT url::blob FROM clicks", (1, 13), "unknown type 'BLOB'"),
        ("SELECT url, COUNT(*) FROM clicks\nGROUP BY url\nEMIT ON WINDOW CLOSE", (3, 1), "EMIT ON WINDOW CLOSE needs"),
        ("SELECT url FROM clicks EMIT CHANGES", (1, 24), "EMIT CHANGES needs an aggregation"),
        ("INSERT INTO outt SELECT url FROM clicks", (1, 13), "unknown sink 'outt'"),
        ("DESCRIBE clickz", (1, 10), "unknown stream or table 'clickz'"),
        ("SELECT * FROM events JOIN campaigns USING (ad_id, user_id)", (1, 51), "USING column 'user_id'"),
        ("SELECT url FROM clicks UNION ALL\nSELECT url, user_id FROM clicks", (2, 1), "same number of columns"),
        ("SELECT url FROM clicks UNION ALL\nSELECT duration_ms FROM clicks", (2, 8), "incompatible types"),
        ("CREATE STREAM r (ts TIMESTAMP,\n  WATERMARK FOR tss AS tss)", (2, 17), "unknown column 'tss'"),
        ("CREATE STREAM r (a BIGINT, WATERMARK FOR a AS a)", (1, 42), "must be a TIMESTAMP"),
    ],
)
def test_errors_point_inside_nodes(catalog, text, position, message):
    """Errors about a part of a node (a type, a name after a keyword) point at that part."""
    err = error_of(catalog, text)
    assert (err.line, err.column) == position and message in err.message
