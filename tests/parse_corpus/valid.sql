-- Valid statements for tests/test_parser.py and the mutation fuzzer.
-- Each block starts with `-- expect: <ast class>` and ends with a line holding only `;`.
-- expect: CreateSource
CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'generator', kind = 'ysb', rate = '1000000', count = '5000000')
;
-- expect: CreateSource
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'files', path = 'data/campaigns.csv', format = 'csv')
;
-- expect: CreateSource
create or replace stream if not exists s (a bigint not null, b int, c integer, d double,
  e double precision, f float, g real, h varchar, i varchar(20), j text, k boolean, l bool,
  m timestamp, n smallint, o tinyint, p string)
  with (connector = 'files', rate = 1000, realtime = true, strict = FALSE, 'odd key' = 'v')
;
-- expect: CreateSource
CREATE STREAM clicks (ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '5 seconds', url STRING)
  WITH (connector = 'files', format.ignore_errors = 'true', dead_letter = 'dead/')
;
-- expect: CreateSource
CREATE TABLE IF NOT EXISTS t (x INT) WITH (connector = 'files', offset = -5, ratio = 0.5)
;
-- expect: CreateSource
CREATE STREAM typed ("Quoted Col" STRING, `back col` INT, type STRING, key STRING,
  value DOUBLE, data STRING, format STRING, timestamp TIMESTAMP)
  WITH (connector = 'generator')
;
-- expect: CreateSource
CREATE STREAM gen WITH (connector = 'generator', kind = 'ysb')
;
-- expect: CreateSink
CREATE SINK out WITH (connector = 'files', path = 'out/', format = 'parquet')
;
-- expect: CreateSink
create or replace sink if not exists redis_out with (connector = 'redis', stream = 'results')
;
-- expect: CreateView
CREATE VIEW views AS SELECT * FROM events WHERE event_type = 'view'
;
-- expect: CreateView
CREATE OR REPLACE VIEW v2 AS WITH a AS (SELECT 1 AS x) SELECT x FROM a
;
-- expect: CreateView
CREATE STREAM filtered AS SELECT user_id, ad_id FROM events WHERE ad_type <> 'banner'
;
-- expect: CreateView
CREATE OR REPLACE STREAM counts AS
SELECT ad_id, COUNT(*) AS n FROM events GROUP BY ad_id EMIT CHANGES
;
-- expect: Insert
INSERT INTO out
SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
EMIT ON WINDOW CLOSE
;
-- expect: Insert
insert into out (select 1 union all select 2)
;
-- expect: Insert
INSERT INTO out WITH x AS (SELECT a FROM t) SELECT * FROM x
;
-- expect: QueryStatement
SELECT 1
;
-- expect: QueryStatement
SELECT *
FROM events
;
-- expect: QueryStatement
SELECT e.*, c.campaign_id FROM events AS e INNER JOIN campaigns c ON e.ad_id = c.ad_id
;
-- expect: QueryStatement
SELECT DISTINCT user_id FROM events
;
-- expect: QueryStatement
SELECT a AS x, b y, c FROM t
;
-- expect: QueryStatement
SELECT a FROM t LEFT JOIN u ON t.id = u.id LEFT OUTER JOIN v USING (id, k) JOIN w ON w.a = t.a
;
-- expect: QueryStatement
SELECT s.n FROM (SELECT COUNT(*) AS n FROM events) AS s
;
-- expect: QueryStatement
SELECT n FROM (SELECT 1 AS n) s WHERE n > 0
;
-- expect: QueryStatement
SELECT ad_id, SUM(price) AS total, AVG(price), MIN(price), MAX(price)
FROM events GROUP BY ad_id HAVING SUM(price) > 100
;
-- expect: QueryStatement
SELECT COUNT(DISTINCT user_id) FROM events
;
-- expect: QueryStatement
SELECT window_start, window_end, count(*) FROM events
GROUP BY HOP(event_time, INTERVAL '5' SECOND, INTERVAL '10' SECONDS)
;
-- expect: QueryStatement
SELECT user_id, COUNT(*) FROM events
GROUP BY user_id, SESSION(event_time, INTERVAL '30' MINUTE) EMIT ON WINDOW CLOSE
;
-- expect: QueryStatement
SELECT a FROM t UNION ALL SELECT b FROM u UNION SELECT c FROM v
;
-- expect: QueryStatement
(SELECT a FROM t) UNION ALL (SELECT a FROM u) LIMIT 10
;
-- expect: QueryStatement
WITH a AS (SELECT 1 AS x), b AS (SELECT x FROM a) SELECT * FROM b
;
-- expect: QueryStatement
SELECT * FROM t LIMIT 5
;
-- expect: QueryStatement
SELECT CASE WHEN a > 0 THEN 'pos' WHEN a < 0 THEN 'neg' ELSE 'zero' END AS sign FROM t
;
-- expect: QueryStatement
SELECT CASE status WHEN 1 THEN 'on' WHEN 0 THEN 'off' END FROM t
;
-- expect: QueryStatement
SELECT CAST(a AS BIGINT), CAST(b AS VARCHAR(10)), c::DOUBLE, d::double precision, e::timestamp FROM t
;
-- expect: QueryStatement
SELECT * FROM t WHERE a IN (1, 2, 3) AND b NOT IN ('x') AND c BETWEEN 1 AND 10
;
-- expect: QueryStatement
SELECT * FROM t WHERE a NOT BETWEEN 1 AND 2 OR b LIKE 'a%' OR c NOT LIKE '%z'
;
-- expect: QueryStatement
SELECT * FROM t WHERE a IS NULL OR b IS NOT NULL
;
-- expect: QueryStatement
SELECT -a, +b, a % 2, a / b, a * b - c, a || '-' || b, 1.5, .5, 1e3, 2.5E-3 FROM t
;
-- expect: QueryStatement
SELECT * FROM t WHERE NOT a = b AND a <> b AND a != b AND a <= b AND a >= b AND a < b AND a > b
;
-- expect: QueryStatement
SELECT TRUE, FALSE, NULL, 'it''s', TIMESTAMP '2024-01-01 00:00:00' FROM t
;
-- expect: QueryStatement
SELECT INTERVAL '1' MILLISECOND, INTERVAL '2' MILLISECONDS, INTERVAL '3' minutes,
  INTERVAL '4' HOUR, INTERVAL '5' hours, INTERVAL '6' DAY, INTERVAL '7' days, INTERVAL 8 SECONDS
;
-- expect: QueryStatement
SELECT "Select", `from`, "a""b", type, key, value, data, format, timestamp FROM "My Table"
;
-- expect: QueryStatement
SELECT upper(name), lower(name), coalesce(a, b, 0), now() FROM t
;
-- expect: QueryStatement
select a from t where a = 1 emit changes
;
-- expect: QueryStatement
SELECT a FROM t /* block
comment */ WHERE a > 1 -- trailing comment
;
-- expect: QueryStatement
SELECT (a + b) * c, ((a)) FROM t
;
-- expect: QueryStatement
SELECT t.a.b FROM t
;
-- expect: QueryStatement
SELECT date_trunc('minute', ts) AS minute, COUNT(*) FROM t GROUP BY date_trunc('minute', ts)
;
-- expect: Explain
EXPLAIN SELECT * FROM events
;
-- expect: Explain
EXPLAIN ANALYZE SELECT ad_id, COUNT(*) FROM events GROUP BY ad_id
;
-- expect: Explain
EXPLAIN INSERT INTO out SELECT * FROM events
;
-- expect: Explain
explain analyze insert into out select * from events
;
-- expect: Show
SHOW STREAMS
;
-- expect: Show
SHOW TABLES
;
-- expect: Show
show sinks
;
-- expect: Show
SHOW VIEWS
;
-- expect: Show
SHOW FUNCTIONS
;
-- expect: Describe
DESCRIBE events
;
-- expect: Describe
desc "Mixed Case"
;
-- expect: SetOption
SET group_size = 'auto'
;
-- expect: SetOption
SET batch.interval TO '100ms'
;
-- expect: SetOption
set workers = 4
;
-- expect: SetOption
SET optimize = false
;
-- expect: SetOption
SET executor TO inline
;
-- expect: Drop
DROP STREAM events
;
-- expect: Drop
DROP TABLE IF EXISTS campaigns
;
-- expect: Drop
drop sink out
;
-- expect: Drop
DROP VIEW IF EXISTS v
;
