-- A clickstream source read from ndjson files, with a 3 second watermark delay.
CREATE STREAM page_views (
  user_id STRING,
  page STRING,
  referrer STRING,
  view_time TIMESTAMP,
  WATERMARK FOR view_time AS view_time - INTERVAL '3' SECOND
) WITH (connector = 'files', path = 'data/page_views/', format = 'ndjson');
