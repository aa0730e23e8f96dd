SELECT *
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start, window_end ORDER BY clicks DESC, user_id) AS rn
  FROM (
    SELECT user_id, window_start, window_end, COUNT(*) AS clicks
    FROM clicks
    GROUP BY user_id, TUMBLE(ts, INTERVAL '1' MINUTE)
  )
)
WHERE rn <= 3;
