-- error: BindError 2:17 APPROX_PERCENTILE's second argument must be a number from 0 to 1, got 1.5
SELECT user_id, APPROX_PERCENTILE(duration_ms, 1.5) AS p
FROM clicks GROUP BY user_id;
