-- error: BindError 4:17 TIMESTAMP
SELECT window_start, COUNT(*) AS n
FROM clicks
GROUP BY TUMBLE(duration_ms, INTERVAL '1' MINUTE);
