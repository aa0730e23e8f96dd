-- AND binds tighter than OR; NOT tighter than AND.
SELECT sensor_id, temperature
FROM sensors
WHERE NOT ok AND temperature > 40 OR humidity < 10 AND (sensor_id = 1 OR sensor_id = 2);
