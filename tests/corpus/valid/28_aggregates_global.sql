-- A global aggregate over a stream: a changelog with one row.
SELECT COUNT(*) AS clicks,
       COUNT(DISTINCT user_id) AS users,
       SUM(duration_ms) AS total_ms,
       AVG(duration_ms) AS mean_ms,
       MIN(ts) AS first_ts,
       MAX(ts) AS last_ts
FROM clicks;
