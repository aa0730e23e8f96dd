EXPLAIN ANALYZE
SELECT sensor_id, window_start, AVG(temperature) AS avg_temp
FROM sensors
GROUP BY sensor_id, TUMBLE(ts, INTERVAL '10' SECOND);
