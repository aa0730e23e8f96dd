SELECT sensor_id, temperature, humidity
FROM sensors
WHERE temperature BETWEEN -10 AND 45.5
  AND humidity NOT BETWEEN 95 AND 100;
