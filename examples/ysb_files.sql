-- The YSB query over files written by `stream-dsl gen`:
--
--   stream-dsl gen ysb --events 1000000 --files 4 --out data/ysb
--   stream-dsl run examples/ysb_files.sql
--
-- The files connector reads the files present when the query starts (a
-- bounded source), so the SELECT prints final counts. Add watch = 'true' to
-- keep reading files as they appear (then use INSERT INTO a sink).

CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'files', path = 'data/ysb/events', format = 'ndjson');

CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'files', path = 'data/ysb/campaigns.csv', format = 'csv');

SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
EMIT ON WINDOW CLOSE;
