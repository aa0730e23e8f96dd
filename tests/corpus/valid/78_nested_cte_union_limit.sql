WITH merged AS (
  SELECT user_id, ts FROM clicks
  UNION ALL
  SELECT user_id, event_time FROM events
)
SELECT user_id, COUNT(*) AS actions
FROM merged
GROUP BY user_id
LIMIT 100;
