SELECT ad_id, window_start, COUNT(*) AS n FROM events WHERE ad_type <> 'mail'
GROUP BY ad_id, HOP(event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
