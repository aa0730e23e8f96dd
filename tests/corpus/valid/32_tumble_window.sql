SELECT sensor_id, window_start, window_end, AVG(temperature) AS avg_temp, MAX(humidity) AS max_humidity
FROM sensors
GROUP BY sensor_id, TUMBLE(ts, INTERVAL '1' MINUTE);
