-- IoT: average temperature and humidity per sensor over the last 5 minutes, every minute.
SELECT sensor_id,
       window_start,
       window_end,
       AVG(temperature) AS avg_temp,
       AVG(humidity) AS avg_humidity,
       COUNT(*) AS readings
FROM sensors
WHERE ok
GROUP BY HOP(ts, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE), sensor_id;
