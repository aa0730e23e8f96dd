-- Windowed counts per user, then the busy windows only.
SELECT user_id, window_start, n
FROM (
  SELECT user_id, window_start, window_end, COUNT(*) AS n
  FROM clicks
  GROUP BY user_id, TUMBLE(ts, INTERVAL '1' MINUTE)
) per_minute
WHERE n > 20;
