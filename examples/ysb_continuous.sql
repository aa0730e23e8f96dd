-- The YSB query as a continuous job, paced to the wall clock.
--
--   stream-dsl run examples/ysb_continuous.sql
--
-- Ad events arrive at 100,000 per second of real time, endlessly; every
-- 10-second window's counts per campaign are written to out/ysb/ (parquet,
-- exactly once) when the watermark passes the window's end. On a terminal
-- `stream-dsl run` draws a live status line (batches, rows in and per second,
-- rows out, watermark, latency, lag); Ctrl-C stops the query cleanly and
-- prints its summary. Run it again and it resumes from its newest checkpoint
-- in ckpt/ysb/: no window is written twice (`--fresh` starts over on
-- purpose; without a checkpoint directory the events would start again from
-- the first window, and a warning would say so). Read what it wrote with
--   stream-dsl run -c "CREATE STREAM o (campaign_id STRING, window_start TIMESTAMP, window_end TIMESTAMP, views BIGINT) WITH (connector = 'files', path = 'out/ysb'); SELECT * FROM o ORDER BY window_start, campaign_id"

SET checkpoint_dir = 'ckpt/ysb';

CREATE STREAM events (
  user_id STRING, page_id STRING, ad_id STRING, ad_type STRING,
  event_type STRING, event_time TIMESTAMP, ip_address STRING,
  WATERMARK FOR event_time AS event_time - INTERVAL '1' SECOND
) WITH (connector = 'generator', kind = 'ysb', rate = '100000', seed = '1', splits = 'workers');

CREATE TABLE campaigns (ad_id STRING, campaign_id STRING)
  WITH (connector = 'generator', kind = 'ysb_campaigns', seed = '1');

CREATE SINK out WITH (connector = 'files', path = 'out/ysb', format = 'parquet');

INSERT INTO out
SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
EMIT ON WINDOW CLOSE;
