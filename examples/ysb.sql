-- The Yahoo Streaming Benchmark query on the built-in generator.
--
--   stream-dsl run examples/ysb.sql
--
-- Ad events (2,000,000 of them, 1,000,000 per second of event time) are
-- filtered to views, joined to the campaign each ad belongs to, and counted
-- per campaign in 10-second tumbling windows. The stream is bounded (it has a
-- count), so the end of input closes every window and the SELECT prints the
-- final counts: one row per campaign and window (100 campaigns, one window).
-- Drop `count` to make the stream endless, and INSERT INTO a sink instead
-- (see the end of this file). `splits = 'workers'` reads the stream in one
-- part per worker, so every worker generates events.

CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'generator', kind = 'ysb', rate = '1000000', count = '2000000', seed = '1',
        splits = 'workers');

-- The 1000 ads of 100 campaigns the generated events refer to (same seed).
CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '1');

SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
EMIT ON WINDOW CLOSE;

-- The same query as a continuous job printing each batch's closed windows:
--
-- CREATE SINK out WITH (connector = 'console');
-- INSERT INTO out
-- SELECT campaign_id, window_start, window_end, COUNT(*) AS views
-- FROM events JOIN campaigns USING (ad_id)
-- WHERE event_type = 'view'
-- GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
-- EMIT ON WINDOW CLOSE;
