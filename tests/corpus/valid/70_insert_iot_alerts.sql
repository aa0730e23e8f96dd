INSERT INTO out
SELECT sensor_id, window_end AS at, AVG(temperature) AS avg_temp
FROM sensors
GROUP BY sensor_id, TUMBLE(ts, INTERVAL '30' SECOND)
HAVING AVG(temperature) > 80.0;
