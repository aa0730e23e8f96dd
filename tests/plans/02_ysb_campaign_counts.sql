SELECT campaign_id, window_start, window_end, COUNT(*) AS views
FROM (SELECT * FROM (SELECT * FROM events WHERE ad_type <> 'mail') WHERE event_type = 'view' AND 1 = 1)
JOIN campaigns USING (ad_id)
GROUP BY campaign_id, TUMBLE(event_time, INTERVAL '10' SECOND)
