-- Early results: every batch emits the new value of each window it changed.
SELECT ad_id, window_start, window_end, COUNT(*) AS views
FROM events
WHERE event_type = 'view'
GROUP BY ad_id, TUMBLE(event_time, INTERVAL '1' MINUTE)
EMIT CHANGES;
