-- The Yahoo Streaming Benchmark query of DESIGN.md.
INSERT INTO out
SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM events JOIN campaigns USING (ad_id)
WHERE event_type = 'view'
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
EMIT ON WINDOW CLOSE;
