SELECT sensor_id,
       temperature * 9 / 5 + 32 AS temp_f,
       (humidity - 50) * 2 % 7 AS wobble,
       -temperature AS negated,
       2 + 3 * 4 - 1 AS thirteen,
       sensor_id * 2 AS doubled
FROM sensors;
