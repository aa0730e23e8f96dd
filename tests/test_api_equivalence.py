"""The DSL and the dataframe API build equal plans; and the Context front end behaves as documented."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

import stream_dsl as sd
from stream_dsl.ir.definitions import Watermark
from stream_dsl.ir.plan import Aggregate, Filter, Project, Scan

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
CREATE STREAM transactions (tx_id BIGINT, account STRING, amount DOUBLE, merchant STRING, ts TIMESTAMP)
  WITH (connector = 'files', path = 't/', format = 'ndjson');
CREATE SINK out WITH (connector = 'files', path = 'out/', format = 'parquet');
"""


@pytest.fixture
def ctx() -> sd.Context:
    context = sd.Context(executor="inline", workers=1, check_files=False)  # its files exist nowhere
    assert context.sql(DDL) is None
    return context


col = sd.col


# Each case: (DSL query, function building the same query with the API).
CASES = {
    "filter": (
        "SELECT * FROM clicks WHERE duration_ms > 100",
        lambda c: c.stream("clicks").filter(col("duration_ms") > 100),
    ),
    "filter_predicates_and_constraints": (
        "SELECT * FROM events WHERE event_type = 'view' AND ad_type = 'banner'",
        lambda c: c.stream("events").filter(col("event_type") == "view", ad_type="banner"),
    ),
    "boolean_logic": (
        "SELECT * FROM sensors WHERE NOT ok AND temperature > 40 OR humidity < 10",
        lambda c: c.stream("sensors").filter((~col("ok") & (col("temperature") > 40)) | (col("humidity") < 10)),
    ),
    "projection": ("SELECT url, user_id FROM clicks", lambda c: c.stream("clicks").select("url", "user_id")),
    "computed_columns": (
        "SELECT sensor_id, temperature * 9 / 5 + 32 AS temp_f, -humidity AS neg FROM sensors",
        lambda c: c.stream("sensors").select(
            "sensor_id", (col("temperature") * 9 / 5 + 32).alias("temp_f"), neg=-col("humidity")
        ),
    ),
    "with_columns_replace_and_append": (
        "SELECT user_id, url, ts, duration_ms / 1000 AS duration_ms, upper(url) AS big FROM clicks",
        lambda c: c.stream("clicks").with_columns(col("duration_ms") / 1000, big=col("url").str.to_uppercase()),
    ),
    "star_plus_column": (
        "SELECT *, length(url) AS n FROM clicks",
        lambda c: c.stream("clicks").select(sd.all(), col("url").str.len_chars().alias("n")),
    ),
    "case_when": (
        "SELECT tx_id, CASE WHEN amount >= 10000 THEN 'high' WHEN amount >= 1000 THEN 'medium' ELSE 'low' END "
        "AS band FROM transactions",
        lambda c: c.stream("transactions").select(
            "tx_id",
            sd.when(col("amount") >= 10000)
            .then("high")
            .when(col("amount") >= 1000)
            .then("medium")
            .otherwise("low")
            .alias("band"),
        ),
    ),
    "simple_case_without_else": (
        "SELECT CASE event_type WHEN 'view' THEN 1 WHEN 'click' THEN 2 END AS code FROM events",
        lambda c: c.stream("events").select(
            sd.when(col("event_type") == "view").then(1).when(col("event_type") == "click").then(2).alias("code")
        ),
    ),
    "cast": (
        "SELECT CAST(duration_ms AS DOUBLE) AS d, CAST(duration_ms AS VARCHAR) AS s, duration_ms::INT AS i FROM clicks",
        lambda c: c.stream("clicks").select(
            col("duration_ms").cast(sd.Float64).alias("d"),
            col("duration_ms").cast(str).alias("s"),
            col("duration_ms").cast(pl.Int32).alias("i"),
        ),
    ),
    "in_and_not_in": (
        "SELECT tx_id FROM transactions WHERE merchant IN ('casino', 'crypto') AND account NOT IN ('internal')",
        lambda c: (
            c.stream("transactions")
            .filter(col("merchant").is_in(["casino", "crypto"]), col("account").is_not_in(["internal"]))
            .select("tx_id")
        ),
    ),
    "between": (
        "SELECT * FROM sensors WHERE temperature BETWEEN -10 AND 45.5 AND humidity NOT BETWEEN 95 AND 100",
        lambda c: c.stream("sensors").filter(
            col("temperature").is_between(-10, 45.5), ~col("humidity").is_between(95, 100)
        ),
    ),
    "like": (
        "SELECT * FROM clicks WHERE url LIKE 'https://%' AND url NOT LIKE '%/checkout_'",
        lambda c: c.stream("clicks").filter(col("url").str.like("https://%"), col("url").not_like("%/checkout_")),
    ),
    "is_null": (
        "SELECT user_id FROM events WHERE ip_address IS NULL OR ad_id IS NOT NULL",
        lambda c: c.stream("events").filter(col("ip_address").is_null() | col("ad_id").is_not_null()).select("user_id"),
    ),
    "string_functions": (
        "SELECT upper(user_id) AS u, lower(url) AS l, trim(url) AS t, substring(url, 1, 8) AS s, "
        "replace(url, 'http:', 'https:') AS r, starts_with(url, 'https') AS sw, contains(url, 'shop') AS c "
        "FROM clicks",
        lambda c: c.stream("clicks").select(
            col("user_id").str.to_uppercase().alias("u"),
            col("url").str.to_lowercase().alias("l"),
            col("url").str.strip_chars().alias("t"),
            col("url").str.slice(0, 8).alias("s"),
            col("url").str.replace("http:", "https:").alias("r"),
            col("url").str.starts_with("https").alias("sw"),
            col("url").str.contains("shop", literal=True).alias("c"),
        ),
    ),
    "time_and_text_functions": (
        "SELECT year(ts) AS y, date_trunc('hour', ts) AS h, ts + INTERVAL '30' MINUTE AS o, "
        "(dayofweek(ts) + 6) % 7 + 1 AS wd, regexp_matches(url, 'sh.p') AS m, regexp_extract(url, '/(\\w+)', 1) AS e, "
        "regexp_replace(url, '/', '_', 'g') AS r, split_part(url, '/', -1) AS p, lpad(user_id, 8, '0') AS l, "
        "concat_ws('-', user_id, duration_ms) AS cw, greatest(duration_ms, 0) AS g, "
        "date_diff('day', ts, ts) AS dd FROM clicks",
        lambda c: c.stream("clicks").select(
            col("ts").dt.year().alias("y"),
            col("ts").dt.truncate("1h").alias("h"),
            col("ts").dt.offset_by("30m").alias("o"),
            col("ts").dt.weekday().alias("wd"),
            col("url").str.contains("sh.p").alias("m"),
            col("url").str.extract(r"/(\w+)").alias("e"),
            col("url").str.replace_regex("/", "_", n=-1).alias("r"),
            col("url").str.split_part("/", -1).alias("p"),
            col("user_id").str.pad_start(8, "0").alias("l"),
            sd.concat_ws("-", col("user_id"), col("duration_ms")).alias("cw"),
            sd.greatest(col("duration_ms"), 0).alias("g"),
            sd.func("date_diff", "day", col("ts"), col("ts")).alias("dd"),
        ),
    ),
    "math_functions": (
        "SELECT abs(temperature) AS a, round(temperature, 1) AS r, round(humidity) AS r0, floor(humidity) AS f, "
        "ceil(humidity) AS c, sqrt(humidity) AS q, power(temperature, 2) AS p, ln(humidity) AS l, "
        "exp(humidity) AS e FROM sensors",
        lambda c: c.stream("sensors").select(
            col("temperature").abs().alias("a"),
            col("temperature").round(1).alias("r"),
            col("humidity").round().alias("r0"),
            col("humidity").floor().alias("f"),
            col("humidity").ceil().alias("c"),
            col("humidity").sqrt().alias("q"),
            col("temperature").pow(2).alias("p"),
            col("humidity").log().alias("l"),
            col("humidity").exp().alias("e"),
        ),
    ),
    "timestamps_and_intervals": (
        "SELECT tx_id, ts + INTERVAL '5' MINUTE AS settle_by FROM transactions "
        "WHERE ts >= TIMESTAMP '2024-01-01 00:00:00'",
        lambda c: (
            c.stream("transactions")
            .filter(col("ts") >= dt.datetime(2024, 1, 1))
            .select("tx_id", (col("ts") + dt.timedelta(minutes=5)).alias("settle_by"))
        ),
    ),
    "join_using": (
        "SELECT * FROM events JOIN campaigns USING (ad_id)",
        lambda c: c.stream("events").join(c.table("campaigns"), on="ad_id"),
    ),
    "join_on_keys": (
        "SELECT * FROM clicks c JOIN users u ON c.user_id = u.user_id",
        # SQL names a repeated column by its alias (join_names.py); the API keeps polars' suffix
        lambda c: (
            c.stream("clicks")
            .join(c.table("users"), left_on="user_id", right_on="user_id")
            .rename({"user_id_right": "u.user_id"})
        ),
    ),
    "left_join_using": (
        "SELECT c.user_id, c.url, u.country FROM clicks AS c LEFT JOIN users AS u USING (user_id)",
        lambda c: (
            c.stream("clicks").join(c.table("users"), on="user_id", how="left").select("user_id", "url", "country")
        ),
    ),
    "left_join_on_keys": (
        "SELECT * FROM clicks c LEFT JOIN users u ON c.user_id = u.user_id",
        lambda c: (
            c.stream("clicks")
            .join(c.table("users"), left_on=col("user_id"), right_on="user_id", how="left")
            .rename({"user_id_right": "u.user_id"})
        ),
    ),
    "right_join_using": (
        "SELECT * FROM clicks RIGHT JOIN users USING (user_id)",
        lambda c: c.stream("clicks").join(c.table("users"), on="user_id", how="right"),
    ),
    "full_join_on_keys": (
        "SELECT c.url, u.country FROM clicks c FULL OUTER JOIN users u ON c.user_id = u.user_id",
        lambda c: (
            c.stream("clicks")
            .join(c.table("users"), left_on="user_id", right_on="user_id", how="full")
            .select("url", "country")
        ),
    ),
    "table_left_join_stream": (
        "SELECT * FROM users LEFT JOIN clicks USING (user_id)",
        lambda c: c.table("users").join(c.stream("clicks"), on="user_id", how="left"),
    ),
    "cross_join": (
        "SELECT c.url, u.country FROM clicks c CROSS JOIN users u",
        lambda c: c.stream("clicks").join(c.table("users"), how="cross").select("url", "country"),
    ),
    "table_joined_with_stream_on_the_right": (
        "SELECT * FROM campaigns JOIN events USING (ad_id)",
        lambda c: c.table("campaigns").join(c.stream("events"), on="ad_id"),
    ),
    "group_by_column": (
        "SELECT url, COUNT(*) AS hits, SUM(duration_ms) AS dwell FROM clicks GROUP BY url",
        lambda c: c.stream("clicks").group_by("url").agg(sd.count().alias("hits"), dwell=sd.sum("duration_ms")),
    ),
    "group_by_generated_names": (
        "SELECT url, COUNT(*), SUM(duration_ms), MIN(ts), MAX(ts) FROM clicks GROUP BY url",
        lambda c: (
            c.stream("clicks").group_by("url").agg(sd.count(), col("duration_ms").sum(), sd.min("ts"), col("ts").max())
        ),
    ),
    "group_by_expression": (
        "SELECT upper(url) AS u, COUNT(*) AS n FROM clicks GROUP BY upper(url)",
        lambda c: c.stream("clicks").group_by(col("url").str.to_uppercase().alias("u")).agg(sd.count().alias("n")),
    ),
    "tumble": (
        "SELECT sensor_id, window_start, window_end, AVG(temperature) AS avg_temp, MAX(humidity) AS max_h "
        "FROM sensors GROUP BY sensor_id, TUMBLE(ts, INTERVAL '1' MINUTE)",
        lambda c: (
            c.stream("sensors")
            .group_by("sensor_id", sd.tumble("ts", "1m"))
            .agg(col("temperature").mean().alias("avg_temp"), max_h=sd.max("humidity"))
        ),
    ),
    "hop": (
        "SELECT sensor_id, window_start, window_end, AVG(humidity) AS avg_h, COUNT(*) AS readings "
        "FROM sensors WHERE ok GROUP BY HOP(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE), sensor_id",
        lambda c: (
            c.stream("sensors")
            .filter("ok")
            .group_by(sd.hop("ts", "1m", dt.timedelta(minutes=5)), "sensor_id")
            .agg(sd.mean("humidity").alias("avg_h"), sd.count().alias("readings"))
        ),
    ),
    "session": (
        "SELECT user_id, window_start, window_end, COUNT(*) AS clicks, COUNT(DISTINCT url) AS pages "
        "FROM clicks GROUP BY user_id, SESSION(ts, INTERVAL '30' MINUTE)",
        lambda c: (
            c.stream("clicks")
            .group_by("user_id", sd.session("ts", dt.timedelta(minutes=30)))
            .agg(sd.count().alias("clicks"), col("url").n_unique().alias("pages"))
        ),
    ),
    "having": (
        "SELECT url, COUNT(*) AS hits FROM clicks GROUP BY url HAVING COUNT(*) > 100",
        lambda c: c.stream("clicks").group_by("url").agg(sd.count().alias("hits")).filter(col("hits") > 100),
    ),
    "emit_changes": (
        "SELECT ad_id, window_start, window_end, COUNT(*) AS views FROM events "
        "GROUP BY ad_id, TUMBLE(event_time, INTERVAL '1' MINUTE) EMIT CHANGES",
        lambda c: (
            c.stream("events")
            .group_by("ad_id", sd.tumble("event_time", "1m"), emit="changes")
            .agg(sd.count().alias("views"))
        ),
    ),
    "emit_method": (
        "SELECT ad_id, window_start, window_end, COUNT(*) AS views FROM events "
        "GROUP BY ad_id, TUMBLE(event_time, INTERVAL '1' MINUTE) EMIT CHANGES",
        lambda c: (
            c.stream("events")
            .group_by("ad_id", sd.tumble("event_time", "1m"))
            .agg(sd.count().alias("views"))
            .emit("changes")
        ),
    ),
    "global_aggregates": (
        "SELECT COUNT(*) AS clicks, COUNT(DISTINCT user_id) AS users, AVG(duration_ms) AS mean_ms, "
        "MIN(ts) AS first_ts, MAX(ts) AS last_ts FROM clicks",
        lambda c: c.stream("clicks").select(
            sd.count().alias("clicks"),
            sd.n_unique("user_id").alias("users"),
            sd.avg("duration_ms").alias("mean_ms"),
            sd.min("ts").alias("first_ts"),
            sd.max("ts").alias("last_ts"),
        ),
    ),
    "distinct": (
        "SELECT DISTINCT event_type, ad_type FROM events",
        lambda c: c.stream("events").select("event_type", "ad_type").distinct(),
    ),
    "union_all_with_widening": (
        "SELECT sensor_id AS id, ts FROM sensors UNION ALL SELECT tx_id, ts FROM transactions",
        lambda c: (
            c.stream("sensors")
            .select(col("sensor_id").alias("id"), "ts")
            .union(c.stream("transactions").select("tx_id", "ts"))
        ),
    ),
    "union_of_three": (
        "SELECT user_id FROM clicks UNION ALL SELECT user_id FROM events UNION ALL SELECT user_id FROM users",
        lambda c: (
            c.stream("clicks")
            .select("user_id")
            .union(c.stream("events").select("user_id"), c.table("users").select("user_id"))
        ),
    ),
    "union_distinct": (
        "SELECT user_id FROM clicks UNION SELECT user_id FROM events",
        lambda c: c.stream("clicks").select("user_id").union(c.stream("events").select("user_id"), distinct=True),
    ),
    "limit": (
        "SELECT tx_id, amount FROM transactions WHERE amount > 0 LIMIT 10",
        lambda c: c.stream("transactions").filter(col("amount") > 0).select("tx_id", "amount").limit(10),
    ),
    "order_by_then_limit": (
        "SELECT account, amount FROM transactions ORDER BY amount DESC NULLS FIRST, 1 LIMIT 3",
        lambda c: (
            c.stream("transactions")
            .select("account", "amount")
            .sort("amount", "account", descending=[True, False], nulls_last=[False, True])
            .limit(3)
        ),
    ),
    "cte_and_subquery": (
        "WITH big AS (SELECT account, amount, ts FROM transactions WHERE amount > 1000) "
        "SELECT account, window_start, window_end, COUNT(*) AS n FROM big "
        "GROUP BY account, TUMBLE(ts, INTERVAL '1' HOUR)",
        lambda c: (
            c.stream("transactions")
            .filter(col("amount") > 1000)
            .select("account", "amount", "ts")
            .group_by("account", sd.tumble("ts", "1h"))
            .agg(sd.count().alias("n"))
        ),
    ),
    "ysb": (
        "SELECT campaign_id, window_start, window_end, COUNT(*) AS views "
        "FROM events JOIN campaigns USING (ad_id) WHERE event_type = 'view' "
        "GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND) EMIT ON WINDOW CLOSE",
        lambda c: (
            c.stream("events")
            .join(c.table("campaigns"), on="ad_id")
            .filter(col("event_type") == "view")
            .group_by(sd.tumble("event_time", "10s"), "campaign_id")
            .agg(sd.count().alias("views"))
        ),
    ),
    "ysb_as_in_design_md": (
        "SELECT campaign_id, window_start, window_end, COUNT(*) AS views "
        "FROM (SELECT * FROM events WHERE event_type = 'view') JOIN campaigns USING (ad_id) "
        "GROUP BY TUMBLE(event_time, INTERVAL '10' SECOND), campaign_id",
        lambda c: (
            c.stream("events")
            .filter(col("event_type") == "view")
            .join(c.table("campaigns"), on="ad_id")
            .group_by(sd.tumble("event_time", "10s"), "campaign_id")
            .agg(sd.count().alias("views"))
        ),
    ),
    "sql_expr": (
        "SELECT * FROM clicks WHERE duration_ms * 2 > 10 AND url LIKE '%.html'",
        lambda c: c.stream("clicks").filter(sd.sql_expr("duration_ms * 2 > 10 AND url LIKE '%.html'")),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_dsl_and_api_build_equal_plans(ctx, name):
    text, build = CASES[name]
    from_dsl = ctx.sql(text)
    from_api = build(ctx)
    assert from_api.plan == from_dsl.plan, f"DSL:\n{from_dsl.plan_text()}\nAPI:\n{from_api.plan_text()}"
    assert from_api.columns == from_dsl.columns


def test_registered_stream_is_a_view_in_sql(ctx):
    views = ctx.stream("events").filter(col("event_type") == "view")
    ctx.register("views", views)
    assert ctx.sql("SELECT * FROM views").plan == views.plan
    assert ctx.stream("views").plan == views.plan
    assert ctx.sql("SHOW VIEWS").rows() == [("views", "stream")]


# ---------------------------------------------------------------- the API on its own


def test_schema_columns_and_kinds(ctx):
    clicks = ctx.stream("clicks")
    assert clicks.columns == ["user_id", "url", "ts", "duration_ms"]
    assert clicks.schema == {"user_id": pl.String, "url": pl.String, "ts": pl.Datetime("ms"), "duration_ms": pl.Int64}
    assert isinstance(clicks, sd.Stream) and not isinstance(clicks, sd.Table)
    users = ctx.table("users")
    assert isinstance(users, sd.Table) and isinstance(users.filter(col("age") > 1), sd.Table)
    assert not isinstance(clicks.join(users, on="user_id"), sd.Table)


def test_polars_style_names(ctx):
    clicks = ctx.stream("clicks")
    assert clicks.select(col("duration_ms") * 2, col("url").str.to_uppercase()).columns == ["duration_ms", "url"]
    assert clicks.group_by("url").agg(sd.count(), sd.col("duration_ms").sum()).columns == [
        "url",
        "count",
        "sum_duration_ms",
    ]
    with pytest.raises(sd.DSLError, match="duplicate output column name 'url'"):
        clicks.select("url", col("url").str.to_lowercase())


def test_api_errors_match_dsl_messages(ctx):
    clicks = ctx.stream("clicks")
    with pytest.raises(sd.BindError) as api_err:
        clicks.select("urll")
    with pytest.raises(sd.BindError) as dsl_err:
        ctx.sql("SELECT urll FROM clicks")
    assert api_err.value.message == dsl_err.value.message == "unknown column 'urll' (did you mean 'url'?)"
    with pytest.raises(sd.BindError, match="a CROSS JOIN of two streams is not supported"):
        clicks.join(ctx.stream("events"), how="cross")
    with pytest.raises(sd.BindError, match="must appear in GROUP BY"):
        clicks.group_by("url").agg(col("user_id"))
    with pytest.raises(sd.BindError, match="EMIT ON WINDOW CLOSE needs a windowed aggregate"):
        clicks.group_by("url").agg(sd.count()).emit("final")
    with pytest.raises(sd.DSLError, match="emit\\(\\) applies to an aggregation"):
        clicks.emit("changes")
    with pytest.raises(sd.BindError, match="filter needs a BOOLEAN condition"):
        clicks.filter(col("duration_ms"))
    with pytest.raises(sd.DSLError, match="join needs on="):
        clicks.join(ctx.table("users"))
    with pytest.raises(TypeError, match="ambiguous"):
        bool(col("a") > 1)


def test_expr_repr_is_readable():
    expr = sd.when(col("amount") > 100).then("high").otherwise("low").alias("band")
    assert repr(expr) == "<Expr CASE WHEN amount > 100 THEN 'high' ELSE 'low' END AS band>"
    assert repr(sd.tumble("ts", "10s")) == "<Expr TUMBLE(ts, INTERVAL '10000ms')>"


def test_rename_and_drop(ctx):
    clicks = ctx.stream("clicks")
    assert clicks.rename({"url": "page"}).columns == ["user_id", "page", "ts", "duration_ms"]
    assert clicks.drop("url", "ts").plan == ctx.sql("SELECT user_id, duration_ms FROM clicks").plan


# ---------------------------------------------------------------- the Context


def test_context_config_and_set(ctx):
    assert sd.Context(batch_interval="1s").config.batch_interval_ms == 1000
    assert sd.Context(batch_interval=250).config.batch_interval_ms == 250
    assert ctx.sql("SET group_size = 'auto'; SET workers TO 4; SET batch_interval = '2s'; SET optimize = false") is None
    c = ctx.config
    assert (c.group_size, c.workers, c.batch_interval_ms, c.optimize) == ("auto", 4, 2000, False)
    with pytest.raises(sd.DSLError, match="workers must be a positive integer"):
        ctx.sql("SET workers = 'many'")
    with pytest.raises(sd.DSLError, match="unknown executor"):
        sd.Context(executor="spark")
    ctx.sql("SET checkpoint_dir = 'ckpt/q1'; SET heartbeat_timeout = '2500ms'")
    assert (ctx.config.checkpoint_dir, ctx.config.heartbeat_timeout) == ("ckpt/q1", 2.5)
    ctx.sql("SET checkpoint_dir = ''; SET heartbeat_timeout = '4'")
    assert (ctx.config.checkpoint_dir, ctx.config.heartbeat_timeout) == (None, 4.0)
    with pytest.raises(sd.DSLError, match="heartbeat_timeout must be a positive number"):
        sd.Context(heartbeat_timeout=0)


def test_sql_results_by_statement_kind(ctx):
    assert isinstance(ctx.sql("SELECT * FROM clicks"), sd.Stream)
    assert isinstance(ctx.sql("SELECT * FROM users"), sd.Table)
    explain = ctx.sql("EXPLAIN SELECT url FROM clicks")
    assert isinstance(explain, str) and "Scan stream clicks" in explain
    assert ctx.sql("SHOW TABLES").rows() == [("campaigns", "table"), ("users", "table")]
    assert ctx.sql("DESCRIBE users").rows() == [("user_id", "STRING"), ("country", "STRING"), ("age", "INT")]
    assert ctx.sql("SHOW SINKS").rows() == [("out", "files")]
    functions = dict(ctx.sql("SHOW FUNCTIONS").select("name", "kind").rows())
    assert (functions["upper"], functions["count"], functions["tumble"]) == ("scalar", "aggregate", "window")
    # several statements: the last result is returned, DDL applied in order
    result = ctx.sql("CREATE TABLE t (a BIGINT) WITH (connector = 'files', path = 'x'); SELECT a FROM t;")
    assert isinstance(result, sd.Table) and result.columns == ["a"]
    assert ctx.sql("DROP TABLE t") is None
    with pytest.raises(sd.BindError, match="unknown stream or table 't'"):
        ctx.sql("SELECT * FROM t")


def test_sql_errors_carry_the_text(ctx):
    with pytest.raises(sd.BindError) as info:
        ctx.sql("CREATE VIEW ok AS SELECT url FROM clicks;\nSELECT prce FROM ok")
    assert str(info.value) == ("line 2, col 8: unknown column 'prce'\n  SELECT prce FROM ok\n         ^")
    assert "ok" in ctx.catalog.views  # statements before the failing one were applied
    with pytest.raises(sd.ParseError) as parse_info:
        ctx.sql("SELEC 1")
    assert parse_info.value.line == 1


def test_stream_and_table_lookups(ctx):
    with pytest.raises(sd.BindError, match="'users' is a table, not a stream; use ctx.table\\('users'\\)"):
        ctx.stream("users")
    with pytest.raises(sd.BindError, match="'clicks' is a stream, not a table"):
        ctx.table("clicks")
    with pytest.raises(sd.BindError, match="did you mean 'clicks'"):
        ctx.stream("clickz")


def test_from_polars_registers_memory_data(ctx):
    from stream_dsl.connectors import memory

    t0 = dt.datetime(2024, 1, 1)
    frame = pl.DataFrame(
        {"k": ["a", "b", "c"], "v": [1, 2, 3], "ts": [t0, t0, t0]},
        schema={"k": pl.String, "v": pl.Int32, "ts": pl.Datetime("us")},
    )
    stream = ctx.from_polars(frame, name="mem", watermark="ts", watermark_delay="2s", batch_size=2)
    source = stream.plan.source
    assert (source.name, source.kind, source.option("connector")) == ("mem", "stream", "memory")
    assert [o[0] for o in source.options] == ["connector", "id"]
    assert source.watermark == Watermark("ts", 2000)
    stored = memory.frames(source.option("id"))
    assert [f.height for f in stored] == [2, 1]
    assert stored[0].schema == {"k": pl.String, "v": pl.Int32, "ts": pl.Datetime("ms")}
    assert ctx.sql("SELECT k FROM mem WHERE v > 1").plan == stream.filter(col("v") > 1).select("k").plan
    table = ctx.table_from_polars("dims", pl.DataFrame({"k": ["a"], "label": ["x"]}))
    assert isinstance(table, sd.Table) and ctx.sql("SHOW TABLES").rows()[-1] == ("dims", "table")
    unnamed = ctx.from_polars([frame, frame])
    assert unnamed.plan.source.name not in ctx.catalog.sources
    with pytest.raises(sd.DSLError, match="must be a TIMESTAMP"):
        ctx.from_polars(frame, watermark="v")


def test_a_memory_source_reads_each_frame_in_the_declared_columns_and_types():
    """A frame already in them comes as it is (no polars query per batch); any other is selected and cast."""
    from stream_dsl.connectors import memory
    from stream_dsl.ir.types import DataType, Field, Schema

    t = dt.datetime(2024, 1, 1, 0, 0, 0, 123456)
    schema = Schema((Field("k", DataType.STRING), Field("ts", DataType.TIMESTAMP)))
    declared = [pl.col("k").cast(pl.String), pl.col("ts").cast(pl.Datetime("ms"))]
    frames = [
        pl.DataFrame({"k": ["a", None], "ts": [t, None]}, schema={"k": pl.String, "ts": pl.Datetime("ms")}),
        pl.DataFrame(
            {"ts": [t], "x": [1], "k": ["b"]}, schema={"ts": pl.Datetime("ms"), "x": pl.Int64, "k": pl.String}
        ),
        pl.DataFrame({"k": ["c"], "ts": [t]}, schema={"k": pl.Categorical, "ts": pl.Datetime("us")}),
    ]
    source = memory.MemorySource(memory.source_def("m", frames, schema=schema))
    source.open(["k", "ts"])
    for frame in frames:
        read = source.next_batch(100).frame
        assert read.schema == {"k": pl.String, "ts": pl.Datetime("ms")}
        assert read.equals(frame.select(declared), null_equal=True)


def test_from_iterable(ctx):
    stream = ctx.from_iterable([(1, "a"), (2, None)], schema={"id": "BIGINT", "tag": sd.STRING}, name="rows")
    assert stream.schema == {"id": pl.Int64, "tag": pl.String}
    dicts = ctx.from_iterable([{"x": 1.5}], schema=[("x", pl.Float64)])
    assert dicts.schema == {"x": pl.Float64}


def test_plan_shapes_from_the_api(ctx):
    q = ctx.stream("clicks").filter(col("duration_ms") > 1).filter(col("url") != "x")
    assert isinstance(q.plan, Filter) and isinstance(q.plan.input, Filter)
    agg = ctx.stream("clicks").group_by(sd.tumble("ts", "1m")).agg(n=sd.count())
    assert isinstance(agg.plan, Aggregate) and agg.columns == ["window_start", "window_end", "n"]
    projected = ctx.stream("clicks").select("url")
    assert isinstance(projected.plan, Project) and isinstance(projected.plan.input, Scan)


def test_collect_and_insert_go_through_the_executor(ctx):
    from stream_dsl.connectors import memory

    ctx.from_polars(pl.DataFrame({"a": [1, 2, 3]}), name="nums")
    assert ctx.sql("SELECT a * 2 AS b FROM nums WHERE a > 1").collect()["b"].to_list() == [4, 6]
    ctx.sql("CREATE SINK mem_out WITH (connector = 'memory', id = 'test_api_equivalence_sink')")
    handle = ctx.sql("INSERT INTO mem_out SELECT a FROM nums WHERE a < 3")
    handle.await_termination()
    assert memory.sink_output("test_api_equivalence_sink")["a"].to_list() == [1, 2]
