-- error: BindError 2:8 GROUP BY
SELECT TUMBLE(ts, INTERVAL '1' MINUTE), COUNT(*) FROM clicks;
