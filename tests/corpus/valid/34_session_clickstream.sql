-- Clickstream sessions: a session ends after 30 minutes without a click.
SELECT user_id,
       window_start AS session_start,
       window_end AS session_end,
       COUNT(*) AS clicks,
       SUM(duration_ms) AS dwell_ms,
       COUNT(DISTINCT url) AS pages
FROM clicks
GROUP BY user_id, SESSION(ts, INTERVAL '30' MINUTE);
