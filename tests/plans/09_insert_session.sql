EXPLAIN INSERT INTO out
SELECT user_id, window_start, COUNT(*) AS clicks FROM clicks
GROUP BY user_id, SESSION(ts, INTERVAL '30' SECOND)
