SELECT sensor_id, CASE WHEN temperature > 30 THEN 'hot' ELSE 'ok' END AS label, CAST(humidity AS BIGINT) AS h
FROM sensors WHERE ok AND NOT (sensor_id IN (1, 2))
